"""Step caching: diffusers' cache hooks on the denoisers, for one run.

Video denoisers change little from one step to the next, so some steps can reuse (or predict)
the previous step's block outputs instead of computing them. diffusers ships the methods as hooks
on a transformer's blocks (``CacheMixin.enable_cache``); this module picks the method and its
settings from I2VSpeedOptions, turns it on around one pipeline call and off afterwards, so a run
without caching is never touched by an earlier one. The families say which methods their
transformer supports (``FamilySpec.step_caches``).

MagCache needs the model's "magnitude ratios" (how much the blocks' residual shrinks per step).
They depend on the weights, LoRAs and schedule, so the pack measures them: the first MagCache run
with a given model and settings computes every step and records them (its output equals the run
without caching), and later runs skip with them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from i2v_nodes.errors import InputError
from i2v_nodes.lazy import torch
from i2v_nodes.runtime.speed.settings import SpeedSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Method:
    """One caching method, its defaults (None: the knob does not apply) and its memory."""

    name: str
    title: str
    threshold: float | None = None
    interval: int | None = None
    start: float | None = None
    kept_states: int = 0  # hidden-state-sized tensors it keeps per cache context
    per_block: bool = False  # kept_states counts once per block (attention caches), not once per model


METHODS = {m.name: m for m in (
    # the first block's output change decides whether the others run (head output, residuals)
    Method("first_block", "First Block Cache", threshold=0.05, kept_states=3),
    # lite mode: blocks skipped, the output projection predicted from a Taylor series (small state)
    Method("taylorseer", "TaylorSeer", interval=4, start=0.1, kept_states=0),
    Method("magcache", "MagCache", threshold=0.06, interval=3, start=0.2, kept_states=1),
    # attention outputs of the last two computes, in every block (attention part only)
    Method("fastercache", "FasterCache", interval=2, kept_states=4, per_block=True),
)}


@dataclass(frozen=True)
class Request:
    """A resolved step-cache setting: the method and its knobs with defaults filled in."""

    method: Method
    threshold: float
    interval: int
    start: float
    steps: int

    def describe(self) -> str:
        knobs = [f"threshold {self.threshold:g}" if self.method.threshold is not None else "",
                 f"interval {self.interval}" if self.method.interval is not None else "",
                 f"start {self.start:g}" if self.method.start is not None else ""]
        return f"{self.method.title} ({', '.join(k for k in knobs if k)})"


def request(speed: SpeedSettings, steps: int) -> Request | None:
    """The run's step cache (None: off). Raises :class:`InputError` for values out of range."""
    if speed.step_cache == "off":
        return None
    if speed.step_cache not in METHODS:
        raise InputError("step_cache", f"expected one of off, {', '.join(METHODS)}, got {speed.step_cache!r}")
    method = METHODS[speed.step_cache]
    _check_number("cache_threshold", speed.cache_threshold, 0.0, 10.0)
    _check_number("cache_start", speed.cache_start, 0.0, 0.9)
    interval = speed.cache_interval
    if isinstance(interval, bool) or not isinstance(interval, int) or not 0 <= interval <= 20:
        raise InputError("cache_interval", f"expected a whole number from 0 (the method's own) to 20, "
                                           f"got {interval!r}")
    return Request(method, speed.cache_threshold or method.threshold or 0.0, interval or method.interval or 0,
                   speed.cache_start or method.start or 0.0, steps)


def _check_number(name: str, value: object, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise InputError(name, f"expected a number from {low:g} to {high:g} (0 = the method's own), "
                               f"got {value!r}")


def refuse_unsupported(req: Request, supported: Sequence[str], model: str, able: str) -> None:
    """An :class:`InputError` naming ``step_cache`` when the model's family cannot take the method."""
    if req.method.name not in supported:
        raise InputError("step_cache", f"{req.method.title} works on {able or 'no'} models; {model} cannot "
                                       f"use it: pick one of {', '.join(('off', *supported))}")


def kept_bytes(req: Request | None, *, hidden_bytes: int, contexts: int, blocks: int, denoisers: int) -> int:
    """Memory the cache keeps during denoising: ``hidden_bytes`` is one call's hidden state at the blocks."""
    if req is None:
        return 0
    per_context = req.method.kept_states * hidden_bytes * (blocks if req.method.per_block else 1)
    return per_context * contexts * denoisers


# --- turning it on for one run ---------------------------------------------------------------------


@contextmanager
def cached(denoisers: Sequence[tuple[str, torch.nn.Module]], req: Request | None, pipe: Any,
           calibrations: dict[str, list[float]] | None) -> Iterator[list[str]]:
    """Caching on each denoiser for the duration of one pipeline call; yields notes for the report.

    ``calibrations`` holds MagCache's ratios per denoiser role for this model and settings; an empty
    dict is filled by this run (which then computes every step).
    """
    notes: list[str] = []
    if req is None:
        yield notes
        return
    from i2v_nodes.runtime.speed import magcache_calibration  # imports diffusers: only when a run caches

    measured: dict[str, list[float]] = {}
    with ExitStack() as stack:
        if req.method.name == "magcache" and not calibrations:
            for role, module in denoisers:
                measured[role] = stack.enter_context(magcache_calibration.calibrating(module))
            notes.append("MagCache calibrated this model and settings in this run (every step computed); "
                         "the next run with them skips steps")
        else:
            for role, module in denoisers:
                ratios = (calibrations or {}).get(role)
                if req.method.name == "magcache" and not ratios:
                    continue  # an expert that ran no step in the calibration run
                module.enable_cache(_config(req, pipe, ratios))
                stack.callback(module.disable_cache)
            notes.append(f"step cache {req.describe()}")
        yield notes
    # only a run that finished gets here (the lists are filled as the hooks come off)
    if calibrations is not None:
        calibrations.update(measured)


def _config(req: Request, pipe: Any, ratios: list[float] | None) -> Any:
    from diffusers.hooks import (
        FasterCacheConfig,
        FirstBlockCacheConfig,
        MagCacheConfig,
        TaylorSeerCacheConfig,
    )

    name, first = req.method.name, max(1, round(req.start * req.steps))
    if name == "first_block":
        return FirstBlockCacheConfig(threshold=req.threshold)
    if name == "taylorseer":
        return TaylorSeerCacheConfig(cache_interval=req.interval, disable_cache_before_step=first,
                                     use_lite_mode=True)
    if name == "magcache":
        assert ratios, "MagCache runs after calibration"
        return MagCacheConfig(threshold=req.threshold, max_skip_steps=req.interval, mag_ratios=ratios,
                              num_inference_steps=len(ratios), retention_ratio=req.start)
    # FasterCache's unconditional-batch skipping needs 5-D hidden states in one CFG batch, which
    # these transformers do not have: only its attention caching is used (the "distilled" mode).
    return FasterCacheConfig(spatial_attention_block_skip_range=req.interval,
                             current_timestep_callback=lambda: pipe.current_timestep,
                             attention_weight_callback=lambda _module: 0.5, is_guidance_distilled=True)
