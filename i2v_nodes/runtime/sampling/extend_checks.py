"""I2VExtend's checks, before any work: the frames it continues, its segments and overlap, and the RAM
the whole video takes as it accumulates."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from i2v_nodes.errors import InputError
from i2v_nodes.families import registry
from i2v_nodes.runtime import memory
from i2v_nodes.runtime.loading.handle import ModelHandle
from i2v_nodes.runtime.loading.precision import nonfinite_summary
from i2v_nodes.runtime.memory import guard
from i2v_nodes.runtime.sampling.settings import MAX_FRAMES, SampleSettings

MAX_SEGMENTS = 100
FRAME_BYTES_PER_PIXEL = 3 * 4  # an IMAGE frame: three float32 channels


@dataclass(frozen=True)
class ExtendSettings:
    """I2VExtend's own widgets; the rest of a segment's settings are a :class:`SampleSettings`."""

    segments: int = 1
    overlap: int = 0  # 0: the model's own (see :func:`overlap_of`)
    color_match: bool = True


def video_of(frames: object) -> torch.Tensor:
    """The clip to continue, ComfyUI IMAGE ``[F, H, W, 3]`` float 0..1 (an alpha channel dropped)."""
    if not isinstance(frames, torch.Tensor):
        raise InputError("frames", f"expected an IMAGE tensor, got {type(frames).__name__}")
    if frames.dim() == 3:
        frames = frames.unsqueeze(0)
    if frames.dim() != 4 or frames.shape[-1] not in (3, 4) or min(frames.shape[:3]) == 0:
        raise InputError("frames", f"expected an IMAGE of shape [frames, height, width, 3] with no empty "
                                   f"dimension, got {list(frames.shape)}")
    if not frames.is_floating_point():
        raise InputError("frames", f"expected float values in 0..1, got dtype {frames.dtype}")
    problem = nonfinite_summary(frames)
    if problem:
        raise InputError("frames", f"the frames are corrupt: {problem}")
    return frames[..., :3].float().clamp(0, 1).cpu()


def check_size(handle: ModelHandle, video: torch.Tensor) -> None:
    """The segments are made at the frames' size: refuse a size the model cannot make."""
    height, width, step = video.shape[1], video.shape[2], handle.rules.size_multiple
    if width % step or height % step:
        raise InputError("frames", f"the frames are {width}x{height}; this model ({handle.variant}) makes "
                                   f"sizes in multiples of {step}, so it cannot continue them: extend frames "
                                   "made at a size it takes (an I2VSample's output)")


def takes_frames(handle: ModelHandle) -> bool:
    """Whether the model continues from frames through its video conditioning (else its last frame)."""
    continuation = handle.family.continuation
    return continuation is not None and continuation.takes(handle.variant)


def overlap_of(handle: ModelHandle, s: SampleSettings, e: ExtendSettings, previous: int) -> int:
    """The overlap to run, checked: 0 means the model's own (one latent frame past the first, 1 +
    frame_step, with video conditioning; 1 without); a model without video conditioning takes 1 only."""
    _whole("segments", e.segments, 1, MAX_SEGMENTS)
    _whole("overlap", e.overlap, 0, MAX_FRAMES)
    step, video = handle.rules.frame_step, takes_frames(handle)
    overlap = e.overlap or (1 + step if video and 1 + step < s.num_frames else 1)
    if overlap >= s.num_frames:
        raise InputError("overlap", f"{overlap} frames is not smaller than a segment (num_frames "
                                    f"{s.num_frames}): at most {s.num_frames - 1}")
    if not video and overlap != 1:
        variants = _video_variants()
        raise InputError("overlap", f"this model ({handle.variant}) continues from the last frame as its "
                                    f"image: overlap 1 (or 0), got {overlap}. {variants}")
    if video and (overlap - 1) % step:
        low = (overlap - 1) // step * step + 1
        raise InputError("overlap", f"this model ({handle.variant}) takes {step}k+1 overlap frames, got "
                                    f"{overlap}; nearest valid: {low} or {low + step}")
    if overlap > previous:
        raise InputError("frames", f"{previous} frame(s) to continue, fewer than the overlap of {overlap}")
    return overlap


def check_ram(plan: guard.Plan, s: SampleSettings, e: ExtendSettings, overlap: int, previous: int) -> int:
    """RAM the frames take as they accumulate: each segment's kept frames, then the whole video joined
    from them (the frames given are held already). Beside the plan's RAM peak, it must fit the RAM the
    plan found usable (policy off only reports). Returns the bytes."""
    frame = s.width * s.height * FRAME_BYTES_PER_PIXEL
    per_segment = s.num_frames - overlap
    new = e.segments * per_segment
    held = frame * (new + previous + new)
    if plan.policy == "off" or plan.ram.peak + held <= plan.ram_usable:
        return held
    room = plan.ram_usable - plan.ram.peak
    fit = max(0, (room // frame - previous) // (2 * per_segment))
    raise InputError("segments", f"{e.segments} segments would hold {memory.gib(held)} of frames in RAM "
                                 f"({previous + new} frames at {s.width}x{s.height}, kept then joined) "
                                 f"beside the run's planned {memory.gib(plan.ram.peak)}, over the "
                                 f"{memory.gib(plan.ram_usable)} usable: at most {fit} segment(s) fit. Fewer "
                                 "segments, or extend in several I2VExtend nodes, each encoding its part")


def video_conditioned() -> list[str]:
    """The models that continue from several frames (their variants' titles), from the registry."""
    names = [family.spec.variant_titles.get(variant, family.title) for family in registry.REGISTERED
             if family.continuation is not None for variant in family.continuation.variants]
    return list(dict.fromkeys(names))


def _video_variants() -> str:
    return f"Models with video conditioning take more ({', '.join(video_conditioned())})."


def _whole(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(name, f"expected a whole number, got {value!r}")
    if not low <= value <= high:
        raise InputError(name, f"expected {low} to {high}, got {value}")
