"""The sizes, frame counts and batches a model takes: checked before any work, by I2VSample, VRAMGuard
and ``plan`` (a light module: ``plan`` imports it without the sampling machinery)."""

from __future__ import annotations

from i2v_nodes.errors import InputError
from i2v_nodes.runtime.loading.handle import ModelHandle

MAX_SIDE = 4096
MAX_FRAMES = 257  # the widest frame range of any family (each family checks its own)
MAX_BATCH = 64


def validate_shape(handle: ModelHandle, width: object, height: object, num_frames: object,
                   batch_size: object) -> None:
    """Raise :class:`InputError` for a size, frame count or batch the model cannot take."""
    rules = handle.rules
    step = rules.size_multiple
    for name, value in (("width", width), ("height", height)):
        int_in_range(name, value, step, MAX_SIDE)
        if value % step:
            low, high = value // step * step, (value // step + 1) * step
            raise InputError(name, f"must be a multiple of {step} for this model ({handle.variant}), got "
                                   f"{value}; nearest valid: {low} or {high}")
    int_in_range("num_frames", num_frames, rules.min_frames, rules.max_frames)
    if not rules.frames_valid(num_frames):
        nearest = " or ".join(str(n) for n in rules.nearest_frames(num_frames))
        raise InputError("num_frames", f"this model ({handle.variant}) takes {rules.frame_step}k+1 frames "
                                       f"({rules.min_frames}, {rules.min_frames + rules.frame_step}, ...), "
                                       f"got {num_frames}; nearest valid: {nearest}")
    int_in_range("batch_size", batch_size, 1, MAX_BATCH)


def int_in_range(name: str, value: object, low: int, high: int) -> None:
    """Raise :class:`InputError` unless ``value`` is a whole number from ``low`` to ``high``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(name, f"expected a whole number, got {value!r}")
    if not low <= value <= high:
        raise InputError(name, f"expected {low} to {high}, got {value}")
