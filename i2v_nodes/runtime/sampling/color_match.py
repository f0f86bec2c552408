"""Colour match of a continued segment to the clip it continues (I2VExtend), with scikit-image.

Each colour channel of the whole segment (every frame pooled) is histogram-matched to the same channel
of the first segment (``skimage.exposure.match_histograms``): one monotone mapping per channel and
segment, so the colour and contrast that drift from segment to segment come back to the first's, while
changes within a segment (light, motion) keep their course. The mapping is computed on 8-bit levels,
what a video file keeps.
"""

from __future__ import annotations

import numpy as np
import torch

REFERENCE_FRAMES = 16  # the first segment's frames the reference pools, evenly spread (bounds the work)


def reference_of(frames: torch.Tensor) -> np.ndarray:
    """The reference a segment is matched to: up to ``REFERENCE_FRAMES`` frames of ``frames`` [F, H, W, 3]
    (0..1), evenly spread, as 8-bit levels."""
    picks = np.unique(np.linspace(0, len(frames) - 1, num=min(len(frames), REFERENCE_FRAMES)).round())
    return _levels(frames[torch.from_numpy(picks.astype(np.int64))])


def matched(frames: torch.Tensor, reference: np.ndarray) -> torch.Tensor:
    """``frames`` [F, H, W, 3] (float 0..1) with each channel's histogram, all frames pooled, matched to
    ``reference``'s: float32 0..1."""
    from skimage.exposure import match_histograms  # scikit-image: only when a run matches colours

    out = match_histograms(_levels(frames), reference, channel_axis=-1)
    return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32)) / 255


def mean_colour_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Euclidean distance between two frames' mean RGB colours (0..1 per channel; at most sqrt 3)."""
    return float((a.float().mean(dim=(0, 1)) - b.float().mean(dim=(0, 1))).norm())


def _levels(frames: torch.Tensor) -> np.ndarray:
    return (frames.float().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
