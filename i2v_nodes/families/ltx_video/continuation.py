"""LTX-Video 0.9.5 and later continue a clip through ``LTXConditionPipeline`` (the pipeline they already
run): the last frames of the clip as a video condition at frame 0 (``LTXVideoCondition(video=frames,
frame_index=0)``) in place of the image, at the image's strength (LTXVideoOptions' image_strength).
0.9.0 and 0.9.1 run ``LTXImageToVideoPipeline``, which takes one image only: they continue from the last
frame as their image.

The continuing pipeline is the loaded one's class under the same name, on the same modules, so the
family's own ``denoise`` and ``stock_output`` call it with their usual keyword arguments.
"""

from __future__ import annotations

import functools
from typing import Any

from PIL import Image

from i2v_nodes.families.contract.continuation import Continuation
from i2v_nodes.families.ltx_video.configs import DEV, DISTILLED
from i2v_nodes.families.toolkit.pipelines import on_same_components


@functools.cache
def _continuing_class() -> type:
    """``LTXConditionPipeline`` whose calls condition on ``i2v_frames`` at frame 0 instead of the image."""
    from diffusers import LTXConditionPipeline
    from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

    def __call__(self, image: Any = None, strength: float = 1.0, **kwargs: Any) -> Any:  # noqa: N807
        condition = LTXVideoCondition(video=self.i2v_frames, frame_index=0, strength=strength)
        return LTXConditionPipeline.__call__(self, conditions=[condition], **kwargs)

    # the family tells its pipelines apart by class name: this one is still the condition pipeline
    return type(LTXConditionPipeline.__name__, (LTXConditionPipeline,), {"__call__": __call__})


def continuing(pipe: Any, frames: Any) -> Any:
    """An LTX-Video condition pipeline on ``pipe``'s components, conditioned on ``frames`` (uint8
    [k, H, W, 3]) from frame 0."""
    made = on_same_components(pipe, _continuing_class())
    made.i2v_frames = [Image.fromarray(frame) for frame in frames]
    return made


CONTINUATION = Continuation(variants=(DEV, DISTILLED), pipeline=continuing,
                            description="LTXConditionPipeline, the frames as a video condition at frame 0")
