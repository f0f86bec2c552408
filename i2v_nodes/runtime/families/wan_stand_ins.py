"""Header-only stand-ins for the files ComfyUI's Wan templates download: the published shapes,
dtypes and key names, and no tensor data.

Everything the pack decides before loading (what a file is, whether files fit together, how much
memory a run needs) reads only headers, so a stand-in answers exactly as the real 14 GB file
would. The tier workflows' Notes are sized from them, and the tests recognise them.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..safetensors_header import DTYPE_BYTES
from .base import CLIP_VISION_H14, FILE_FOLDERS, config_json
from .wan_configs import PUBLISHED
from .wan_keys import transformer_to_original, vae21_to_original, vae22_to_original

A14B_HUB = "Wan-AI/Wan2.2-I2V-A14B-Diffusers"
TI2V_HUB = "Wan-AI/Wan2.2-TI2V-5B-Diffusers"
WAN21_HUB = "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers"
SPIECE_BYTES = 4_548_313  # about the size of UMT5's sentencepiece model, which ComfyUI embeds
UMT5 = "umt5_xxl_fp8_e4m3fn_scaled.safetensors"

# What ComfyUI's own templates download, by the model they make: loader slot -> file name.
TEMPLATE_FILES: dict[str, dict[str, str]] = {
    "wan2.2-i2v-a14b": {
        "diffusion_model": "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors",
        "diffusion_model_2": "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors",
        "text_encoder": UMT5,
        "vae": "wan_2.1_vae.safetensors",
    },
    "wan2.2-ti2v-5b": {
        "diffusion_model": "wan2.2_ti2v_5B_fp16.safetensors",
        "text_encoder": UMT5,
        "vae": "wan2.2_vae.safetensors",
    },
    "wan2.1-i2v": {
        "diffusion_model": "wan2.1_i2v_480p_14B_fp16.safetensors",
        "text_encoder": UMT5,
        "vae": "wan_2.1_vae.safetensors",
        "clip_vision": "clip_vision_h.safetensors",
    },
}
HUB_OF_VARIANT = {"wan2.2-i2v-a14b": A14B_HUB, "wan2.2-ti2v-5b": TI2V_HUB, "wan2.1-i2v": WAN21_HUB}

Tensors = dict[str, tuple[str, tuple[int, ...]]]  # name -> (safetensors dtype, shape)


def write_header(path: Path, tensors: Tensors, metadata: dict[str, str] | None = None) -> Path:
    """A safetensors file with this header and no tensor data."""
    header: dict[str, Any] = {}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        size = math.prod(shape) * DTYPE_BYTES[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    return path


def stored(shapes: dict[str, tuple[int, ...]], fmt: str) -> Tensors:
    """Tensors as a file of this format stores them: the matrices in the format's dtype (with
    ComfyUI's per-tensor scales and marker for fp8_scaled), embeddings and the rest in bf16."""
    dtype = {"bf16": "BF16", "fp16": "F16", "fp8_e4m3fn": "F8_E4M3", "fp8_scaled": "F8_E4M3"}[fmt]
    out: Tensors = {}
    for name, shape in shapes.items():
        matrix = len(shape) == 2 and name.endswith(".weight") and not any(
            part in name for part in ("embed", "shared", "relative_attention_bias")  # embedding tables
        )
        out[name] = (dtype if matrix else "BF16", shape)
        if matrix and fmt == "fp8_scaled":
            out[name.removesuffix(".weight") + ".scale_weight"] = ("F32", ())
    if fmt == "fp8_scaled":
        out["scaled_fp8"] = ("F8_E4M3", (0,))
    return out


def _shapes(
    role: str, config: dict[str, Any], rename: Callable[[str], str] = str
) -> dict[str, tuple[int, ...]]:
    from . import WAN

    module = WAN.meta_component(role, config_json(config), torch.float32)
    return {rename(name): tuple(t.shape) for name, t in module.state_dict().items()}


def transformer_file(path: Path, config: dict[str, Any], fmt: str) -> Path:
    return write_header(path, stored(_shapes("transformer", config, transformer_to_original), fmt))


def umt5_file(path: Path) -> Path:
    shapes = _shapes("text_encoder", PUBLISHED[A14B_HUB]["text_encoder"])
    shapes.pop("encoder.embed_tokens.weight", None)  # tied to shared.weight: stored once
    tensors = stored(shapes, "fp8_scaled")
    tensors["spiece_model"] = ("U8", (SPIECE_BYTES,))
    return write_header(path, tensors)


def vae_file(path: Path, hub: str) -> Path:
    config = PUBLISHED[hub]["vae"]
    layout = vae22_to_original if config.get("z_dim") == 48 else vae21_to_original
    num_res_blocks = config.get("num_res_blocks", 2)
    shapes = _shapes("vae", config, lambda name: layout(name, num_res_blocks=num_res_blocks))
    return write_header(path, {name: ("BF16", shape) for name, shape in shapes.items()})


def clip_vision_file(path: Path) -> Path:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    with torch.device("meta"):
        model = CLIPVisionModelWithProjection(CLIPVisionConfig(**CLIP_VISION_H14))
    shapes = {
        "vision_model." + name.removeprefix("vision_model.") if "projection" not in name else name: tuple(
            t.shape
        )
        for name, t in model.state_dict().items()
    }
    return write_header(path, {name: ("F16", shape) for name, shape in shapes.items()})


def write_template_files(models_dir: Path, variant: str) -> dict[str, Path]:
    """Stand-ins for one template's files, in ComfyUI's folders under ``models_dir`` (loader slot
    -> path). A file already there is kept: it may be the real one."""
    hub = HUB_OF_VARIANT[variant]
    paths = {}
    for slot, name in TEMPLATE_FILES[variant].items():
        path = Path(models_dir) / FILE_FOLDERS[slot] / name
        paths[slot] = path
        if path.exists():
            continue
        if slot.startswith("diffusion_model"):
            fmt = "fp16" if name.endswith("_fp16.safetensors") else "fp8_scaled"
            transformer_file(path, PUBLISHED[hub]["transformer"], fmt)
        elif slot == "text_encoder":
            umt5_file(path)
        elif slot == "vae":
            vae_file(path, hub)
        else:
            clip_vision_file(path)
    return paths
