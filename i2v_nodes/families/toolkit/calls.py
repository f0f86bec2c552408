"""The stock pipelines' common keyword arguments, from a run's settings.

Every image-to-video pipeline in diffusers takes these under the same names; a family's
``call_arguments`` starts from them and adds its own.
"""

from __future__ import annotations

from typing import Any


def common_arguments(call: Any) -> dict[str, Any]:
    """``image``, ``latents``, size, frames, steps and guidance of a run (a ``DenoiseJob`` or a
    ``StockRun``), as the stock pipelines name them. The latents go as the contract lays them out,
    ``[clips, C, frames, h, w]``: a pipeline that keeps frames before channels needs them permuted."""
    return {
        "image": call.image,
        "latents": call.latents,
        "width": call.width,
        "height": call.height,
        "num_frames": call.num_frames,
        "num_inference_steps": call.steps,
        "guidance_scale": call.guidance_scale,
    }
