"""A hook around the UNet's forward: per-step progress, cancel, and sub-batched calls.

Diffusers' video pipelines call the denoiser exactly once per step, with every clip of the
batch (twice over with classifier-free guidance: all unconditional rows, then all conditional
rows). Wrapping that one call gives the pipeline what it lacks without rewriting its loop:

- ``before_step`` runs before each step (the interrupt check, so a cancel lands within a step);
- ``after_step`` runs after it (the progress bar);
- the rows can be split into groups run one after another. A group holds whole clips with
  their CFG halves in the pipeline's own order, so a group of one clip is exactly the call a
  single-clip run makes: that keeps clip i of a batch bit-identical to a run with seed + i on
  CPU, and bounds activation memory on a GPU.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch


def row_groups(clips: int, halves: int, clips_per_call: int, split_halves: bool) -> list[list[int]]:
    """Row indices of each UNet call. Rows are laid out half-major: [half0 clips..., half1 clips...]."""
    per_call = clips if clips_per_call <= 0 else min(clips_per_call, clips)
    groups = []
    for first in range(0, clips, per_call):
        members = range(first, min(first + per_call, clips))
        halves_rows = [[h * clips + c for c in members] for h in range(halves)]
        if split_halves:
            groups += halves_rows
        else:
            groups.append([row for rows in halves_rows for row in rows])
    return groups


def _split_call(inner: Callable, groups: list[list[int]], total_rows: int, args: tuple, kwargs: dict) -> Any:
    """Run ``inner`` once per row group and put the outputs back in row order."""
    def take(value: Any, index: torch.Tensor) -> Any:
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == total_rows:
            return value.index_select(0, index.to(value.device))
        return value

    outputs = []
    for rows in groups:
        index = torch.tensor(rows)
        out = inner(*(take(a, index) for a in args), **{k: take(v, index) for k, v in kwargs.items()})
        outputs.append(out[0] if isinstance(out, tuple) else out.sample)
    order = torch.tensor([row for rows in groups for row in rows])
    merged = torch.cat(outputs)
    result = torch.empty_like(merged)
    result[order.to(merged.device)] = merged
    return (result,)


@contextmanager
def hooked_unet(unet: torch.nn.Module, *, clips: int, halves: int, clips_per_call: int, split_halves: bool,
                before_step: Callable[[], None], after_step: Callable[[], None]) -> Iterator[None]:
    """Install the hook on ``unet`` for the duration of one pipeline call.

    The hook replaces the instance's ``forward`` and restores whatever was there (offload hooks
    from accelerate or diffusers also live on the instance), even when the call raises.
    """
    groups = row_groups(clips, halves, clips_per_call, split_halves)
    total_rows = clips * halves
    single = len(groups) == 1 and groups[0] == list(range(total_rows))
    had_own = "forward" in unet.__dict__
    previous = unet.__dict__.get("forward")
    inner = unet.forward

    def forward(*args: Any, **kwargs: Any) -> Any:
        before_step()
        if single:
            out = inner(*args, **kwargs)
        elif kwargs.get("return_dict", True):
            raise RuntimeError("split UNet calls need the pipeline to pass return_dict=False")
        else:
            out = _split_call(inner, groups, total_rows, args, kwargs)
        after_step()
        return out

    unet.forward = forward
    try:
        yield
    finally:
        if had_own:
            unet.forward = previous
        else:
            del unet.forward
