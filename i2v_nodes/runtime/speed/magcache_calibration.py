"""MagCache's calibration: the per-step magnitude ratios of a denoiser's block residual.

MagCache skips a step while the accumulated change of the blocks' residual, predicted from these
ratios, stays under its threshold. The ratios belong to the weights and the schedule, so the pack
measures them on the user's own model in one full run. Two small diffusers hooks do it, on the
first and last repeated block: the first keeps the blocks' input, the last divides the residual's
per-token norm by the previous step's, as MagCache's calibration defines it. They keep state per
cache context (the pipeline's "cond"/"uncond" calls), like diffusers' own cache hooks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from diffusers.hooks import HookRegistry, ModelHook
from diffusers.hooks.hooks import BaseState, CacheContext, StateManager

from i2v_nodes.runtime.speed.block_compile import repeated_blocks

HOOK_NAMES = ("i2v_magcache_head", "i2v_magcache_tail")


@contextmanager
def calibrating(module: torch.nn.Module) -> Iterator[list[float]]:
    """Record, per step, the mean ratio of the blocks' residual norm to the previous step's (the
    first cache context's calls: the conditional ones), as MagCache's calibration defines it."""
    blocks = repeated_blocks(module)
    contexts: list[_Residuals] = []
    states = StateManager(_Residuals, init_kwargs={"sink": contexts})
    head, tail = HookRegistry.check_if_exists_or_initialize(blocks[0]), \
        HookRegistry.check_if_exists_or_initialize(blocks[-1])
    head.register_hook(_HeadInput(states), HOOK_NAMES[0])
    tail.register_hook(_TailResidual(states), HOOK_NAMES[1])
    HookRegistry.check_if_exists_or_initialize(module).invalidate_child_registries_cache()
    ratios: list[float] = []
    try:
        yield ratios
        ratios.extend(contexts[0].ratios if contexts else [])
    finally:
        head.remove_hook(HOOK_NAMES[0])
        tail.remove_hook(HOOK_NAMES[1])
        HookRegistry.check_if_exists_or_initialize(module).invalidate_child_registries_cache()


class _Residuals(BaseState):
    def __init__(self, sink: list[_Residuals]) -> None:
        self.head_input: torch.Tensor | None = None
        self.previous_norm: torch.Tensor | None = None
        self.ratios: list[float] = []
        sink.append(self)

    def reset(self) -> None:
        # the pipeline resets stateful hooks as its call ends: keep the measured ratios (the result)
        self.head_input, self.previous_norm = None, None


class _Stateful(ModelHook):
    _is_stateful = True

    def __init__(self, states: Any) -> None:
        super().__init__()
        self.states = states

    def state(self) -> _Residuals:
        try:
            return self.states.get_state()
        except ValueError:  # a pipeline that sets no cache context: one context for every call
            self.states.set_context(CacheContext("inference"))
            return self.states.get_state()

    def reset_state(self, module: torch.nn.Module) -> torch.nn.Module:
        self.states.reset()
        return module


class _HeadInput(_Stateful):
    def pre_forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> tuple[tuple, dict]:
        self.state().head_input = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
        return args, kwargs


class _TailResidual(_Stateful):
    def post_forward(self, module: torch.nn.Module, output: Any) -> Any:
        state = self.state()
        hidden = output[0] if isinstance(output, tuple) else output
        norm = torch.linalg.norm((hidden - state.head_input).float(), dim=-1)
        previous = state.previous_norm
        state.ratios.append(1.0 if previous is None else (norm / (previous + 1e-8)).mean().item())
        state.previous_norm, state.head_input = norm, None
        return output
