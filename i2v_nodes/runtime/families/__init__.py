"""Model families: one module per pipeline family, each one :class:`~.base.Family` instance.

Adding a family is adding its module and a line to ``REGISTERED``; the contract test suite then
runs over it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from i2v_nodes.runtime.families.animatediff import FAMILY as ANIMATEDIFF
from i2v_nodes.runtime.families.base import (
    Denoised,
    DenoiseJob,
    Family,
    FilePart,
    FileSet,
    LoadSpec,
    Roles,
    Rules,
    StockOutput,
    StockRun,
    Trace,
)
from i2v_nodes.runtime.families.i2vgen_xl import FAMILY as I2VGEN_XL
from i2v_nodes.runtime.families.ltx2 import FAMILY as LTX2
from i2v_nodes.runtime.families.ltx_video import FAMILY as LTX_VIDEO
from i2v_nodes.runtime.families.svd import FAMILY as SVD
from i2v_nodes.runtime.families.wan import FAMILY as WAN

REGISTERED: tuple[Family, ...] = (I2VGEN_XL, WAN, LTX_VIDEO, LTX2, SVD, ANIMATEDIFF)

__all__ = ["REGISTERED", "DenoiseJob", "Denoised", "Family", "FilePart", "FileSet", "LoadSpec", "Roles",
           "Rules", "StockOutput", "StockRun", "Trace", "get"]

_BY_NAME = {family.name: family for family in REGISTERED}


def get(name: str) -> Family:
    return _BY_NAME[name]


def identify(index: Mapping[str, Any], configs: Mapping[str, Any],
             source: str = "") -> tuple[Family, str] | None:
    """The family and variant of a pipeline folder (its model_index.json and configs, and its path),
    or None."""
    for family in REGISTERED:
        variant = family.variant_of(index, configs, source)
        if variant is not None:
            return family, variant
    return None


def for_hub_id(hub_id: str) -> Family | None:
    return next((family for family in REGISTERED if hub_id in family.hub_ids), None)


def supported_pipelines() -> list[str]:
    return [name for family in REGISTERED for name in family.pipeline_classes]


def known_hub_ids() -> list[str]:
    return [hub_id for family in REGISTERED for hub_id in family.hub_ids]


def tiny_builders() -> dict[str, tuple[Family, Callable[[], Any]]]:
    """Every built-in tiny model: name -> (its family, its builder)."""
    return {name: (family, build) for family in REGISTERED for name, build in family.tiny_models.items()}
