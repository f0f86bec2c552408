"""How a family continues a clip from its last frames (I2VExtend), through its stock pipeline's video
conditioning.

A family whose pipeline can take frames as a condition declares a :class:`Continuation` as its
``Family.continuation``. The engine then calls the family's own ``denoise`` (and the oracle its
``stock_output``) on the pipeline the continuation gives, exactly as it calls the loaded one: the
same seeds, step callback, levers and decode. A family without one, or a variant it does not list,
continues from the previous segment's last frame as its input image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Continuation:
    """A family's video conditioning, for continuing a clip."""

    # the variants whose stock pipeline takes frames as a condition
    variants: tuple[str, ...]
    # (the loaded image-to-video pipeline, the frames to continue from as uint8 [k, H, W, 3]) -> a
    # pipeline on the same components that the family's ``denoise`` and ``stock_output`` call as they
    # call the loaded one (same keyword arguments), conditioned on those frames at frame 0
    pipeline: Callable[[Any, Any], Any]
    # the stock class and how it conditions, for the report ("LTX2ConditionPipeline, frames at index 0")
    description: str = ""

    def takes(self, variant: str) -> bool:
        return variant in self.variants
