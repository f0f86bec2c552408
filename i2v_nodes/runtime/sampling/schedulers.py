"""The samplers as diffusers schedulers, each built from the model's own scheduler config, so the model
keeps what it was trained with: a flow model's shift and dynamic shifting, a UNet model's betas,
prediction type and timestep spacing.

Three kinds of own scheduler, told apart by their config:

- flow matching (FlowMatchEuler, or UniPC / DPM-Solver with flow sigmas): euler is
  ``FlowMatchEulerDiscreteScheduler`` on ComfyUI's simple schedule (:class:`SimpleFlowMatchEuler`),
  unipc and dpmpp_2m the multistep solvers on flow sigmas, lcm
  ``FlowMatchLCMScheduler``, all with the model's shift;
- discrete time (DDIM and the other DDPM-style schedulers): euler is ``EulerDiscreteScheduler``, unipc
  ``UniPCMultistepScheduler``, dpmpp_2m ``DPMSolverMultistepScheduler`` (DPM-Solver++, second order),
  on the same betas;
- continuous (EDM) time with v-prediction (SVD's Euler): euler is the model's Euler, dpmpp_2m
  ``EDMDPMSolverMultistepScheduler`` on the same sigma range and spacing.

Imported when a run picks a sampler: diffusers' schedulers load with it, not when the nodes load.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import torch
from diffusers import (
    DPMSolverMultistepScheduler,
    EDMDPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    FlowMatchLCMScheduler,
    UniPCMultistepScheduler,
)

from i2v_nodes.errors import InputError

FLOW, DISCRETE, EDM = "flow matching", "discrete time", "continuous time"

# What pipelines read from their scheduler's config besides the scheduler's own settings (dynamic
# shifting's shift from the sequence length): kept where the chosen scheduler has no such parameter,
# or a flow model would be shifted differently than with its own scheduler
PIPELINE_KEYS = ("base_shift", "max_shift", "base_image_seq_len", "max_image_seq_len")

DPMPP_2M = {"algorithm_type": "dpmsolver++", "solver_order": 2}
FLOW_SOLVER = {"use_flow_sigmas": True, "prediction_type": "flow_prediction"}

_MIX = 0x9E37_79B9_7F4A_7C15  # odd: multiplying by it is a bijection of 64-bit seeds
_MASK = 0xFFFF_FFFF_FFFF_FFFF

_STEP_NOISE: ContextVar[torch.Generator | None] = ContextVar("i2v_step_noise", default=None)


class SeededFlowMatchLCMScheduler(FlowMatchLCMScheduler):
    """diffusers' ``FlowMatchLCMScheduler``, drawing each step's fresh noise from the run's generator
    (:func:`step_noise`). The stock pipelines pass ``step`` no generator: the noise would come from the
    global RNG, neither reproducible from the seed nor the same on every device."""

    def step(self, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor,
             generator: torch.Generator | None = None, return_dict: bool = True) -> Any:
        return super().step(model_output, timestep, sample, generator=generator or _STEP_NOISE.get(),
                            return_dict=return_dict)


class SimpleFlowMatchEuler(FlowMatchEulerDiscreteScheduler):
    """Euler on ComfyUI's ``simple`` schedule, what its Wan templates (and the lightx2v LoRAs' 4 steps)
    run: of the model's 1000 training sigmas, every (1000 / steps)-th from the top, then 0. diffusers'
    own spacing also reaches the smallest sigma (at 4 steps, shift 5: 1, 0.91, 0.72, 0.02 where
    ComfyUI steps 1, 0.94, 0.83, 0.63). A pipeline that passes its own sigmas keeps them."""

    def set_timesteps(self, num_inference_steps: int | None = None, device: Any = None,
                      sigmas: Any = None, mu: float | None = None, timesteps: Any = None) -> None:
        if sigmas is None and timesteps is None and num_inference_steps:
            total = self.config.num_train_timesteps
            sigmas = [1.0 - (x * total // num_inference_steps) / total for x in range(num_inference_steps)]
        super().set_timesteps(num_inference_steps, device=device, sigmas=sigmas, mu=mu, timesteps=timesteps)


@contextmanager
def step_noise(seed: int) -> Iterator[None]:
    """For one pipeline call: the fresh noise of a sampler that draws it each step comes from a CPU
    generator of the clip's seed."""
    # not the seed itself: the initial latents come from it, and the first step would re-add them
    token = _STEP_NOISE.set(torch.Generator("cpu").manual_seed((seed * _MIX + 1) & _MASK))
    try:
        yield
    finally:
        _STEP_NOISE.reset(token)


def _shift(config: Any) -> float:
    """A flow model's shift, whichever scheduler holds it."""
    return config["shift"] if "shift" in config else config.get("flow_shift", 1.0)


Recipe = Callable[[Any], tuple[type, dict[str, Any]]]  # own config -> the class and what it overrides

RECIPES: dict[str, dict[str, Recipe]] = {
    FLOW: {
        "euler": lambda c: (SimpleFlowMatchEuler, {"shift": _shift(c)}),
        "unipc": lambda c: (UniPCMultistepScheduler, {**FLOW_SOLVER, "flow_shift": _shift(c)}),
        "dpmpp_2m": lambda c: (DPMSolverMultistepScheduler,
                               {**FLOW_SOLVER, **DPMPP_2M, "flow_shift": _shift(c)}),
        "lcm": lambda c: (SeededFlowMatchLCMScheduler, {"shift": _shift(c)}),
    },
    DISCRETE: {
        "euler": lambda c: (EulerDiscreteScheduler, {}),
        "unipc": lambda c: (UniPCMultistepScheduler, {}),
        "dpmpp_2m": lambda c: (DPMSolverMultistepScheduler, dict(DPMPP_2M)),
    },
    EDM: {
        "euler": lambda c: (EulerDiscreteScheduler, {}),
        # sigma_data 1 is the preconditioning Euler's v-prediction uses (c_skip = 1 / (sigma^2 + 1))
        "dpmpp_2m": lambda c: (EDMDPMSolverMultistepScheduler, {
            **DPMPP_2M, "sigma_data": 1.0,
            "sigma_schedule": "karras" if c.get("use_karras_sigmas") else "exponential"}),
    },
}


def kind_of(scheduler: Any) -> str | None:
    """Which kind of schedule a scheduler steps (None: one no sampler is built from)."""
    config = scheduler.config
    if type(scheduler).__name__.startswith("FlowMatch") or config.get("use_flow_sigmas"):
        return FLOW
    if config.get("timestep_type") == "continuous":
        # the EDM solvers precondition as Euler does only for v-prediction
        return EDM if config.get("prediction_type") == "v_prediction" else None
    return DISCRETE if "beta_schedule" in config else None


def build(name: str, own: Any) -> Any:
    """The scheduler of sampler ``name``, made from ``own`` (the model's scheduler)'s config."""
    kind = kind_of(own)
    recipe = RECIPES.get(kind or "", {}).get(name)
    if recipe is None:
        known = ", ".join(RECIPES.get(kind or "", {})) or "none"
        raise InputError("sampler", f"the model's own scheduler ({type(own).__name__}, "
                                    f"{kind or 'a kind the pack does not know'}) gives no {name}; "
                                    f"from it the pack builds: {known}")
    cls, overrides = recipe(own.config)
    return _from_config(cls, own.config, overrides)


def _from_config(cls: type, config: Any, overrides: dict[str, Any]) -> Any:
    """``cls`` with every setting of ``config`` it takes, then ``overrides``, and the settings the
    pipelines read that it lacks. Unlike diffusers' ``from_config`` this keeps no foreign keys (a later
    ``from_config`` would carry them: a flow_shift on FlowMatchEuler would hide its shift) and logs no
    warning about them."""
    params = inspect.signature(cls.__init__).parameters
    kept = {key: value for key, value in config.items()
            if key in params and not (value is None and params[key].default is not None)}
    scheduler = cls(**{**kept, **overrides})
    extra = {key: config[key] for key in PIPELINE_KEYS if key in config and key not in params}
    if extra:
        scheduler.register_to_config(**extra)
    return scheduler

