"""LTX-2 continues a clip through ``LTX2ConditionPipeline``: the last frames of the clip as a video
condition at latent index 0 (``LTX2VideoCondition(frames, index=0)``), where the image-to-video pipeline
puts its image. The condition pipeline loads the same components, so the continuing pipeline is made on
the loaded one's modules, and the family's own ``denoise`` and ``stock_output`` call it with their usual
keyword arguments: ``image`` and ``image_crf`` become the condition (one frame is re-compressed at that
CRF as the image is; several frames are a video and are not, as in the stock pipeline).
"""

from __future__ import annotations

import functools
from typing import Any

from i2v_nodes.families.contract.continuation import Continuation
from i2v_nodes.families.ltx2.spec import LTX2
from i2v_nodes.families.toolkit.pipelines import on_same_components


@functools.cache
def _continuing_class() -> type:
    """``LTX2ConditionPipeline`` called as the image-to-video pipeline is, conditioned on ``i2v_frames``."""
    from diffusers import LTX2ConditionPipeline
    from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition

    def __call__(self, image: Any = None, image_crf: int | None = None, **kwargs: Any) -> Any:  # noqa: N807
        condition = LTX2VideoCondition(frames=self.i2v_frames, index=0, strength=1.0, crf=image_crf)
        return LTX2ConditionPipeline.__call__(self, conditions=[condition], **kwargs)

    return type("LTX2ContinuingPipeline", (LTX2ConditionPipeline,), {"__call__": __call__})


def continuing(pipe: Any, frames: Any) -> Any:
    """An LTX-2 condition pipeline on ``pipe``'s components, conditioned on ``frames`` (uint8
    [k, H, W, 3]) at its first frames."""
    made = on_same_components(pipe, _continuing_class())
    made.i2v_frames = frames
    return made


CONTINUATION = Continuation(variants=(LTX2,), pipeline=continuing,
                            description="LTX2ConditionPipeline, the frames as a condition at latent index 0")
