"""Model families: one module per pipeline family, looked up by name or by pipeline class.

A family module provides: ``FAMILY``, ``PIPELINE_CLASS_NAME``, ``HUB_IDS``, ``CONSTRAINTS``,
``published_description(hub_id)``, ``meta_unet``/``meta_vae`` and ``unet_trace_inputs`` for memory
tracing, ``load_pipeline``, ``encode_prompts``, ``initial_latents``, ``denoise`` and ``decode``.
Adding a family is adding a module here and a line to ``_FAMILIES``.
"""

from __future__ import annotations

from types import ModuleType

from . import i2vgen_xl

_FAMILIES: dict[str, ModuleType] = {i2vgen_xl.FAMILY: i2vgen_xl}


def get(family: str) -> ModuleType:
    return _FAMILIES[family]


def family_for_pipeline(class_name: str) -> str | None:
    for name, module in _FAMILIES.items():
        if module.PIPELINE_CLASS_NAME == class_name:
            return name
    return None


def family_for_hub_id(hub_id: str) -> str | None:
    for name, module in _FAMILIES.items():
        if hub_id in module.HUB_IDS:
            return name
    return None


def supported_pipelines() -> list[str]:
    return [module.PIPELINE_CLASS_NAME for module in _FAMILIES.values()]


def known_hub_ids() -> list[str]:
    return [hub_id for module in _FAMILIES.values() for hub_id in module.HUB_IDS]
