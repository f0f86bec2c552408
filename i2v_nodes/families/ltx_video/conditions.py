"""LTX-Video's images at frames: the start image on frame 0 and, from LTX-Video 0.9.5 on, keyframes at
any later frame (an end image on the last), as ``LTXVideoCondition`` items of the stock
``LTXConditionPipeline``.

The pipeline blends the start image into the first latent frame, and appends each later keyframe to
the sequence as one more latent frame of tokens at its frame's position (the spec's
``appended_frames``): the denoiser's work grows by one latent frame per keyframe. Each condition is
held as strongly as the start image (LTXVideoOptions' ``image_strength``).
"""

from __future__ import annotations

from typing import Any


def image_arguments(call: Any, strength: float) -> dict[str, Any]:
    """The stock call's image keyword arguments: ``image`` alone, or ``conditions`` with keyframes."""
    if not call.keyframes:
        return {"image": call.image}
    from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

    first = LTXVideoCondition(image=call.image, frame_index=0, strength=strength)
    later = [LTXVideoCondition(image=k.image, frame_index=k.frame, strength=strength) for k in call.keyframes]
    return {"conditions": [first, *later]}
