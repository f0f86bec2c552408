"""A hook around the denoisers' forward: sub-batched calls, and step progress and cancel for
pipelines without a step callback.

Diffusers' video pipelines call a denoiser with every clip of the batch at once, either with both
classifier-free-guidance halves in one call (all unconditional rows, then all conditional rows)
or once per half. Wrapping the forward gives the pipeline what it lacks without rewriting its loop:

- ``before_call`` / ``after_call`` run around each call (used for the interrupt check and the
  progress bar by families whose pipeline has no ``callback_on_step_end``: one call per step);
- the rows can be split into groups run one after another. A group holds whole clips with their
  CFG halves in the pipeline's own order, so a group of one clip is exactly the call a
  single-clip run makes: that keeps clip i of a batch bit-identical to a run with seed + i on
  CPU, and bounds activation memory on a GPU.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import torch


def row_groups(clips: int, halves: int, clips_per_call: int, split_halves: bool) -> list[list[int]]:
    """Row indices of each call. Rows are laid out half-major: [half0 clips..., half1 clips...]."""
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
    """Run ``inner`` once per row group and put the outputs back in row order. A tensor with several
    consecutive rows per batch row (a first-last-frame model's two image embeddings of each clip) is
    split with its rows."""
    def take(value: Any, index: torch.Tensor) -> Any:
        if not isinstance(value, torch.Tensor) or value.dim() == 0 or value.shape[0] % total_rows:
            return value
        each = value.shape[0] // total_rows
        if each > 1:
            index = (index[:, None] * each + torch.arange(each)).flatten()
        return value.index_select(0, index.to(value.device))

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


def _no_op() -> None:
    pass


@contextmanager
def hooked(modules: Sequence[torch.nn.Module], *, clips: int, halves: int, clips_per_call: int,
           split_halves: bool, before_call: Callable[[], None] = _no_op,
           after_call: Callable[[], None] = _no_op) -> Iterator[None]:
    """Install the hook on each denoiser for the duration of one pipeline call.

    ``halves`` is the number of CFG halves in one call (2 when the pipeline batches them, else 1).
    The hook replaces the instance's ``forward`` and restores whatever was there (offload hooks
    from accelerate or diffusers also live on the instance), even when the call raises.
    """
    groups = row_groups(clips, halves, clips_per_call, split_halves)
    with ExitStack() as stack:
        for module in modules:
            stack.enter_context(_hook_one(module, groups, clips * halves, before_call, after_call))
        yield


def needed(*, clips: int, halves: int, clips_per_call: int, split_halves: bool) -> bool:
    """Whether the calls must be split at all."""
    groups = row_groups(clips, halves, clips_per_call, split_halves)
    return not (len(groups) == 1 and groups[0] == list(range(clips * halves)))


@contextmanager
def _hook_one(module: torch.nn.Module, groups: list[list[int]], total_rows: int,
              before_call: Callable[[], None], after_call: Callable[[], None]) -> Iterator[None]:
    single = len(groups) == 1 and groups[0] == list(range(total_rows))
    had_own = "forward" in module.__dict__
    previous = module.__dict__.get("forward")
    inner = module.forward

    def forward(*args: Any, **kwargs: Any) -> Any:
        before_call()
        if single:
            out = inner(*args, **kwargs)
        elif kwargs.get("return_dict", True):
            raise RuntimeError("split denoiser calls need the pipeline to pass return_dict=False")
        else:
            out = _split_call(inner, groups, total_rows, args, kwargs)
        after_call()
        return out

    module.forward = forward
    try:
        yield
    finally:
        if had_own:
            module.forward = previous
        else:
            del module.forward
