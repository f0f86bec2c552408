"""Sampling: image and prompt to frames, one module per step of a run.

:mod:`.settings` checks I2VSample's settings and images before any work, :mod:`.keyframes` its end
image; :mod:`.plan` takes
VRAMGuard's plan or makes one; :mod:`.loaded` is a pipeline in the process cache with what runs on
it remember; :mod:`.denoise` makes one stock pipeline call per image with progress, cancel and the
speed levers (:mod:`.denoiser_hook` counts denoiser calls where a pipeline has no step callback);
:mod:`.decode` turns latents into frames; :mod:`.run` puts them in order. :mod:`.oracle` is the plain
stock call the pack must equal. The names below are the package's front.
"""

from i2v_nodes.runtime.sampling.keyframes import capable_models
from i2v_nodes.runtime.sampling.oracle import stock_reference
from i2v_nodes.runtime.sampling.plan import budget_for, held_bytes, plan_for_run, run_shape
from i2v_nodes.runtime.sampling.run import DeviceOutOfMemory, default_cache, sample
from i2v_nodes.runtime.sampling.settings import MAX_SEED, SampleResult, SampleSettings, validate_settings
from i2v_nodes.runtime.shapes import MAX_BATCH, MAX_FRAMES, MAX_SIDE, validate_shape

__all__ = ["MAX_BATCH", "MAX_FRAMES", "MAX_SEED", "MAX_SIDE", "DeviceOutOfMemory", "SampleResult",
           "SampleSettings", "budget_for", "capable_models", "default_cache", "held_bytes", "plan_for_run",
           "run_shape", "sample", "stock_reference", "validate_settings", "validate_shape"]
