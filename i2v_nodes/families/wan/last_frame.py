"""Wan's end image (first-last-frame), through the stock pipeline's ``last_image``.

The pipeline encodes the start image, empty frames and the end image as one video, so the end image
costs no extra VAE pass. Wan 2.2 A14B has no image encoder and needs nothing more. Wan 2.1
FLF2V-14B-720P gets both images' CLIP states, with the positions it was trained with
(``pos_embed_seq_len``), from the same ``last_image``. Wan 2.1 I2V (480P, 720P) has no such
positions: the stock pipeline would hand its transformer the two images' states as two batch rows
(a shape error), and it takes ``image_embeds`` only without an ``image``, which its VAE condition
needs; so the spec leaves it without keyframes (ComfyUI's WanFirstLastFrameToVideo does run it, on
both states joined along the tokens).
"""

from __future__ import annotations

from typing import Any


def end_arguments(call: Any) -> dict[str, Any]:
    """The stock call's keyword arguments for the run's end image (none without one)."""
    if not call.keyframes:
        return {}
    (end,) = call.keyframes  # the spec allows Wan one keyframe, on the last frame
    return {"last_image": end.image}
