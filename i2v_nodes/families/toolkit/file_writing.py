"""Writing pipelines as ComfyUI's single files (how the tiny models exist as files too): the formats
ComfyUI stores weights in, and saving that never leaves a half-written file nor overwrites one."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from i2v_nodes.families.toolkit.file_headers import CONFIG_KEY
from i2v_nodes.families.toolkit.float8 import quantize_fp8_scaled
from i2v_nodes.lazy import torch

CHECKPOINTS = "checkpoints"  # ComfyUI's folder for checkpoints (CheckpointLoaderSimple's)
HALF = {"bf16": "bfloat16", "fp16": "float16"}  # formats stored whole in a half precision (torch names)


def to_format(state: dict[str, torch.Tensor], fmt: str, linear: set[str]) -> dict[str, torch.Tensor]:
    """As ComfyUI's files store a model: everything in bf16 or fp16; or the Linear matrices in
    float8 (with a per-tensor scale and the ``scaled_fp8`` marker for fp8_scaled), the rest bf16."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if fmt == "fp32" or not tensor.is_floating_point():
            out[name] = tensor.contiguous()
        elif fmt in HALF:
            out[name] = tensor.to(getattr(torch, HALF[fmt])).contiguous()
        elif name not in linear:
            out[name] = tensor.to(torch.bfloat16).contiguous()
        elif fmt == "fp8_e4m3fn":
            out[name] = tensor.to(torch.float8_e4m3fn)
        else:
            out[name], out[name.removesuffix(".weight") + ".scale_weight"] = quantize_fp8_scaled(tensor)
    if fmt == "fp8_scaled":
        out["scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)
    return out


def linear_weights(module: torch.nn.Module, rename: Callable[[str], str] = str) -> set[str]:
    return {
        rename(f"{name}.weight")
        for name, layer in module.named_modules()
        if isinstance(layer, torch.nn.Linear)
    }



def save_atomically(path: Path, state: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    """Write a safetensors file atomically (a half-written file never carries the final name), and
    never over a file already there: tiny models are seeded, so the one there is the one this would
    write."""
    from safetensors.torch import save_file

    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    os.close(fd)
    try:
        save_file({name: tensor.contiguous() for name, tensor in state.items()}, staging, metadata=metadata)
        os.replace(staging, path)
    finally:
        if os.path.exists(staging):
            os.unlink(staging)
    return path


def save_with_configs(path: Path, state: dict[str, torch.Tensor], configs: dict[str, Any]) -> Path:
    """:func:`save_atomically`, with the configs of every component the file holds under the pack's
    own metadata key (what its readers take over configs read off the shapes)."""
    return save_atomically(path, state, {CONFIG_KEY: json.dumps(configs, sort_keys=True)})


def component_config(module: torch.nn.Module) -> dict[str, Any]:
    config = module.config
    items = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    return {
        k: v
        for k, v in items.items()
        if not k.startswith("_") and k not in ("architectures", "transformers_version")
    }
