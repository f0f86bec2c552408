"""I2VSample's settings and the checks that refuse what a model cannot take, before any work."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from i2v_nodes.errors import InputError
from i2v_nodes.runtime import speed
from i2v_nodes.runtime.loading.handle import ModelHandle
from i2v_nodes.runtime.loading.precision import nonfinite_summary
from i2v_nodes.runtime.options import Options, sampler_of, speed_of
from i2v_nodes.runtime.sampling import samplers
from i2v_nodes.runtime.shapes import MAX_FRAMES, validate_shape
from i2v_nodes.runtime.shapes import int_in_range as _int_in_range

MAX_SEED = 0xFFFF_FFFF_FFFF_FFFF




@dataclass(frozen=True)
class SampleSettings:
    """I2VSample's widgets, and its optional options chain."""

    prompt: str
    negative_prompt: str = ""
    width: int = 512
    height: int = 512
    num_frames: int = 16
    steps: int = 40
    guidance_scale: float = 9.0
    seed: int = 0
    batch_size: int = 1
    target_fps: int = 8
    decode_chunk_size: int = 0  # 0 = as planned
    options: Options | None = None


@dataclass(frozen=True)
class SampleResult:
    frames: torch.Tensor  # [clips * frames_per_clip, H, W, 3] float32 in 0..1, on the CPU
    frames_per_clip: int
    fps: float
    clips: int
    report: str
    timings: dict[str, float]  # seconds: load, denoise, decode
    # ComfyUI's AUDIO, one entry per clip: the family's sound, or silence of the clip's length
    audio: dict[str, Any] = field(default_factory=dict)


def validate_settings(handle: ModelHandle, s: SampleSettings) -> Any:
    """Raise :class:`InputError` for the first setting the model cannot take; return its family's options."""
    validate_shape(handle, s.width, s.height, s.num_frames, s.batch_size)
    _int_in_range("steps", s.steps, 1, 200)
    _int_in_range("seed", s.seed, 0, MAX_SEED)
    _int_in_range("target_fps", s.target_fps, 1, 240)
    _int_in_range("decode_chunk_size", s.decode_chunk_size, 0, MAX_FRAMES)
    if not isinstance(s.guidance_scale, (int, float)) or not math.isfinite(s.guidance_scale) \
            or not 0 <= s.guidance_scale <= 100:
        raise InputError("guidance_scale", f"expected a number from 0 to 100 (1 = no guidance), "
                                           f"got {s.guidance_scale!r}")
    for name in ("prompt", "negative_prompt"):
        if not isinstance(getattr(s, name), str):
            raise InputError(name, f"expected text, got {type(getattr(s, name)).__name__}")
    if s.options is not None and not isinstance(s.options, Options):
        raise InputError("options", "expected I2V_OPTIONS from an option node, got "
                                    f"{type(s.options).__name__}")
    settings = s.options.for_family(handle.family.name, handle.name) if s.options is not None else None
    handle.family.check_options(handle.variant, settings)
    speed.check(handle, speed_of(s.options), s.steps)
    samplers.check(handle, settings=sampler_of(s.options))
    return settings


def cfg_steps(s: SampleSettings) -> int:
    """How many of the steps run guidance under CFG truncation (0: all of them)."""
    until = speed_of(s.options).guidance_until
    return 0 if until >= 1 else max(1, round(until * s.steps))


def images_to_pil(images: torch.Tensor, name: str = "image") -> list[Image.Image]:
    """ComfyUI IMAGE ``[N, H, W, 3]`` (or one ``[H, W, 3]``) float 0..1 to RGB PIL images; errors name
    the input ``name``."""
    if not isinstance(images, torch.Tensor):
        raise InputError(name, f"expected an IMAGE tensor, got {type(images).__name__}")
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dim() != 4 or images.shape[-1] not in (3, 4) or min(images.shape[:3]) == 0:
        raise InputError(name, f"expected an IMAGE of shape [count, height, width, 3] with no empty "
                               f"dimension, got {list(images.shape)}")
    if not images.is_floating_point():
        raise InputError(name, f"expected float values in 0..1, got dtype {images.dtype}")
    problem = nonfinite_summary(images)
    if problem:
        raise InputError(name, f"the image is corrupt: {problem}")
    pixels = (images[..., :3].float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return [Image.fromarray(np.ascontiguousarray(p), mode="RGB") for p in pixels]
