"""I2VSpeedOptions at run time: each setting checked against the model's family before any work,
then compile, the attention backend and the step cache turned on around one pipeline call.

Settings a family cannot use are refused naming the input (never silently ignored); what each
lever did, fell back from or measured goes into the run's report as a short note.
"""

from __future__ import annotations

from collections.abc import Hashable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from i2v_nodes.errors import InputError
from i2v_nodes.families import registry
from i2v_nodes.lazy import torch
from i2v_nodes.runtime.loading.handle import ModelHandle
from i2v_nodes.runtime.speed import attention, step_cache
from i2v_nodes.runtime.speed.block_compile import CompiledBlocks
from i2v_nodes.runtime.speed.settings import ATTENTION_BACKENDS, COMPILE_MODES, SpeedSettings


def check(handle: ModelHandle, speed: SpeedSettings, steps: int) -> None:
    family, model = handle.family, f"{handle.name} ({handle.family.name})"
    until = speed.guidance_until
    if isinstance(until, bool) or not isinstance(until, (int, float)) or not 0.05 <= until <= 1:
        raise InputError("guidance_until", f"expected a share of the steps from 0.05 to 1, got {until!r}")
    if until < 1 and not family.spec.cfg_truncation:
        raise InputError("guidance_until", f"CFG truncation works on {_able('cfg_truncation')} models; "
                                           f"{model} cannot stop guidance part-way: set it to 1")
    req = step_cache.request(speed, steps)
    if req is not None:
        able = ", ".join(f.title for f in registry.REGISTERED if req.method.name in f.spec.step_caches)
        step_cache.refuse_unsupported(req, family.spec.step_caches, model, able)
    _check_choice("compile", speed.compile, COMPILE_MODES, family, "compile_blocks", model)
    _check_choice("attention", speed.attention, ATTENTION_BACKENDS, family, "attention_backends", model)


def _able(flag: str) -> str:
    return ", ".join(f.title for f in registry.REGISTERED if getattr(f.spec, flag))


def _check_choice(name: str, value: object, allowed: tuple[str, ...], family: Any, flag: str,
                  model: str) -> None:
    """``value`` must be one of ``allowed``; any but the first (off) needs the family's ``flag``."""
    if value not in allowed:
        raise InputError(name, f"expected one of {', '.join(allowed)}, got {value!r}")
    if value != allowed[0] and not getattr(family.spec, flag):
        raise InputError(name, f"{name} {value} works on {_able(flag)} models; {model} cannot use it: "
                               f"set it to {allowed[0]}")


@dataclass
class State:
    """What the levers keep with a loaded pipeline across runs."""

    compiled: CompiledBlocks = field(default_factory=CompiledBlocks)
    # MagCache's measured ratios: (what changes them) -> denoiser role -> ratios
    calibrations: dict[Hashable, dict[str, list[float]]] = field(default_factory=dict)


def levers(stack: ExitStack, *, handle: ModelHandle, pipe: Any, device: torch.device, settings: SpeedSettings,
           steps: int, state: State, split: bool, calibration_key: Hashable) -> list[str]:
    """Compile, the attention backend and the step cache, on for one pipeline call (entered on
    ``stack``); returns notes for the report. ``split``: the plan splits the denoiser calls."""
    named = [(role, getattr(pipe, role)) for role in handle.roles.denoisers
             if getattr(pipe, role, None) is not None]
    modules = [module for _, module in named]
    if settings.compile == "blocks":
        state.compiled.install(modules)
    else:
        state.compiled.uninstall()
    notes = list(stack.enter_context(attention.chosen(modules, settings.attention, device)))
    req = step_cache.request(settings, steps)
    if req is not None and split:
        notes.append("step cache off: this plan splits each denoiser call (clips per call or CFG halves), "
                     "which a cache's per-call state cannot follow")
        req = None
    calibrations = state.calibrations.setdefault(calibration_key, {}) if req is not None else None
    notes += stack.enter_context(step_cache.cached(named, req, pipe, calibrations))
    return notes
