"""LTX-2's images at frames: the start image alone through the stock ``LTX2ImageToVideoPipeline``, or,
with keyframes (an end image on the last frame, or any later frame), the stock
``LTX2ConditionPipeline`` on the same loaded components, each image an ``LTX2VideoCondition``.

The condition pipeline writes the start image over the first latent frame, as the image-to-video
one does, and appends each later keyframe to the sequence as one more latent frame of tokens at its
frame's position (the spec's ``appended_frames``), held at full strength; every image is
re-compressed at the same CRF as the start image (LTX2Options' ``image_crf``). The pipeline places a
condition by *latent* frame (as the original LTX-2 code does): output frame f goes to latent frame
ceil(f / 8), so the last frame (8k) is the last latent frame and a frame between two latent
boundaries goes to the next one.
"""

from __future__ import annotations

import inspect
from typing import Any

from i2v_nodes.families.ltx2.spec import RULES
from i2v_nodes.lazy import torch


def pipeline_for(pipe: Any, call: Any) -> Any:
    """The stock pipeline that runs ``call``: ``pipe`` itself, or with keyframes the condition pipeline
    built on ``pipe``'s components as they are now (a sampler's scheduler included; no weight moves)."""
    if not call.keyframes:
        return pipe
    from diffusers import LTX2ConditionPipeline

    takes = inspect.signature(LTX2ConditionPipeline.__init__).parameters
    runner = LTX2ConditionPipeline(**{name: part for name, part in pipe.components.items() if name in takes})
    runner.set_progress_bar_config(**getattr(pipe, "_progress_bar_config", {}))
    return runner


def image_arguments(call: Any, crf: int) -> dict[str, Any]:
    """The stock call's image keyword arguments: ``image`` and its CRF, or every image as a condition."""
    if not call.keyframes:
        return {"image": call.image, "image_crf": crf}
    from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition

    temporal = RULES[call.variant].vae_temporal
    images = [(call.image, 0), *((k.image, -(-k.frame // temporal)) for k in call.keyframes)]
    return {"conditions": [LTX2VideoCondition(frames=image, index=latent, strength=1.0, crf=crf)
                           for image, latent in images]}


def video_tokens(pipe: Any, packed: torch.Tensor, frames: int, height: int, width: int) -> torch.Tensor:
    """The video's own tokens of packed latents (``frames`` x ``height`` x ``width`` latent positions),
    without the keyframes' tokens the condition pipeline appends after them."""
    patch, patch_t = pipe.transformer_spatial_patch_size, pipe.transformer_temporal_patch_size
    return packed[:, :(frames // patch_t) * (height // patch) * (width // patch)]
