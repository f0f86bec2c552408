"""The registered model families: each family package's one :class:`Family`, imported by name.

The engine asks the registry (by family name, pipeline folder, hub id or single file) and never
imports a family package itself. Adding a family is adding its package and a line to ``REGISTERED``;
the contract test suite then runs over it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from i2v_nodes.families.animatediff import FAMILY as ANIMATEDIFF
from i2v_nodes.families.contract.family import Family
from i2v_nodes.families.i2vgen_xl import FAMILY as I2VGEN_XL
from i2v_nodes.families.ltx2 import FAMILY as LTX2
from i2v_nodes.families.ltx_video import FAMILY as LTX_VIDEO
from i2v_nodes.families.svd import FAMILY as SVD
from i2v_nodes.families.wan import FAMILY as WAN

REGISTERED: tuple[Family, ...] = (I2VGEN_XL, WAN, LTX_VIDEO, LTX2, SVD, ANIMATEDIFF)


def register(family: Family) -> None:
    """Add a family after the built-in ones (a plugin, or a test's own family).

    Its name, tiny models and published models must be new: the first family to claim one would
    otherwise win silently. Register before ``i2v_nodes.nodes`` is imported for its options node and
    the node descriptions to include it (the input tooltips are made when a node is described).
    """
    global REGISTERED
    for known in REGISTERED:
        clash = ({known.name} & {family.name} or set(known.spec.tiny) & set(family.spec.tiny)
                 or set(known.spec.hub_variants) & set(family.spec.hub_variants))
        if clash:
            taken = ", ".join(sorted(clash))
            raise ValueError(f"{family.name}: {taken} is registered already, as the {known.name} family's")
    REGISTERED = (*REGISTERED, family)


def unregister(family: Family) -> None:
    """Remove a family :func:`register` added. Pipelines of its models stay in a model cache until it
    is unloaded."""
    global REGISTERED
    REGISTERED = tuple(known for known in REGISTERED if known is not family)


def get(name: str) -> Family:
    found = next((family for family in REGISTERED if family.name == name), None)
    if found is None:
        raise KeyError(f"no family named {name!r}; registered: {', '.join(f.name for f in REGISTERED)}")
    return found


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
    return [name for family in REGISTERED for name in family.spec.pipeline_classes]


def known_hub_ids() -> list[str]:
    return [hub_id for family in REGISTERED for hub_id in family.hub_ids]


def tiny_builders() -> dict[str, tuple[Family, Callable[[], Any]]]:
    """Every built-in tiny model: name -> (its family, its builder)."""
    return {name: (family, build) for family in REGISTERED for name, build in family.tiny_models.items()}


def file_readers() -> tuple[Family, ...]:
    """The families that read ComfyUI's single files."""
    return tuple(family for family in REGISTERED if family.files is not None)
