"""What I2VSpeedOptions sets: the speed levers and their knobs, as one frozen value."""

from __future__ import annotations

from dataclasses import dataclass

STEP_CACHES = ("off", "first_block", "taylorseer", "magcache", "fastercache")
COMPILE_MODES = ("off", "blocks")
ATTENTION_BACKENDS = ("sdpa", "flash_attn", "flash_attn_3", "sage", "xformers")


@dataclass(frozen=True)
class SpeedSettings:
    """What I2VSpeedOptions sets; 0 in a cache knob means "the method's own default"."""

    guidance_until: float = 1.0  # the share of the steps that run guidance (CFG truncation); 1 = all
    step_cache: str = "off"  # one of STEP_CACHES: diffusers' cache hooks on the denoiser's blocks
    cache_threshold: float = 0.0  # First Block Cache / MagCache: the error allowed before a step is computed
    cache_interval: int = 0  # TaylorSeer: steps between full computes; MagCache: most skips in a row;
    # FasterCache: attention computed every this many steps
    cache_start: float = 0.0  # share of the steps always computed before any caching (TaylorSeer, MagCache)
    compile: str = "off"  # one of COMPILE_MODES: "blocks" = torch.compile of the repeated blocks
    attention: str = "sdpa"  # one of ATTENTION_BACKENDS: the attention kernel, falling back to sdpa
