"""Weightless modules on the meta device, built from configs: what parameter counts and memory
traces are measured on."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from i2v_nodes.lazy import torch

# A CLIP ViT-H/14 vision tower (the image encoder of I2VGen-XL and Wan 2.1), as a transformers config.
CLIP_VISION_H14 = {"hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32,
                   "num_attention_heads": 16, "patch_size": 14, "image_size": 224, "projection_dim": 1024,
                   "hidden_act": "gelu"}


def config_json(config: Mapping[str, Any]) -> str:
    """A config as a hashable, canonical string (the key of every per-config cache)."""
    return json.dumps(dict(config), sort_keys=True)


def meta_module(cls: type, config: Mapping[str, Any], dtype: torch.dtype | None = None) -> torch.nn.Module:
    """A weightless module of ``cls`` with this (diffusers) config, for sizes and memory traces (in
    ``dtype``, float32 by default)."""
    clean = {k: v for k, v in config.items() if not k.startswith("_")}
    with torch.device("meta"):
        module = cls.from_config(clean).eval()
    # nn.Module.to, not the diffusers override, which warns about fp32-pinned modules on every cast
    return torch.nn.Module.to(module, dtype or torch.float32)


@functools.lru_cache(maxsize=32)
def meta_vae(cls: type, config_json: str, dtype: torch.dtype, tiling: bool) -> torch.nn.Module:
    """One meta VAE per tiling setting, so no trace ever toggles state on a shared module."""
    vae = meta_module(cls, json.loads(config_json), dtype)
    if tiling:
        vae.enable_tiling()
    return vae


def meta_transformers_model(model_cls: type, config_cls: type, config: Mapping[str, Any],
                            dtype: torch.dtype) -> torch.nn.Module:
    """A weightless transformers model (text or image encoder) from its config."""
    with torch.device("meta"):
        return model_cls(config_cls(**config)).to(dtype)


def keep_fp32(module: torch.nn.Module) -> torch.nn.Module:
    """Put the parts its class keeps in fp32 (``_keep_in_fp32_modules``) back in fp32, as
    ``from_pretrained(dtype=...)`` does (a plain cast would not)."""
    patterns = set(getattr(type(module), "_keep_in_fp32_modules", None) or ())
    for name, param in module.named_parameters():
        if patterns & set(name.split(".")):
            param.data = param.data.float()
    return module


def numel(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
