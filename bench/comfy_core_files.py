"""Random-weight Wan files that ComfyUI's core loaders and the pack's LoadI2VModelFiles both read.

ComfyUI's loaders fix some sizes: CLIPLoader(wan) always builds the full UMT5-XXL (24 layers,
4096 wide), CLIPVisionLoader the full ViT-H/14, and UNETLoader reads heads as width / 128. So the
text encoder (fp8_scaled, as ComfyUI ships it: 6.7 GB), CLIP vision and the VAE are written at
their published sizes, and the denoiser is a 1.3B-style Wan 2.1 I2V transformer (width 1536,
30 blocks, 12 heads of 128, image cross-attention), in bf16. The layout is that of the
header-only stand-ins (``i2v_nodes.families.wan.stand_ins``), with random data.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from i2v_nodes.families.toolkit.float8 import quantize_fp8_scaled  # noqa: E402
from i2v_nodes.families.wan import stand_ins as stand_ins  # noqa: E402
from i2v_nodes.families.wan.configs import PUBLISHED  # noqa: E402

DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32, "U8": torch.uint8}
FP8 = torch.float8_e4m3fn
TRANSFORMER_1_3B = {
    **PUBLISHED[stand_ins.WAN21_HUB]["transformer"],
    "num_attention_heads": 12,
    "ffn_dim": 8960,
    "num_layers": 30,
    "added_kv_proj_dim": 1536,
}
FILES = {
    "diffusion_model": "diffusion_models/bench_wan2.1_i2v_1.3B_bf16.safetensors",
    "text_encoder": "text_encoders/bench_umt5_xxl_fp8_e4m3fn_scaled.safetensors",
    "vae": "vae/bench_wan_2.1_vae.safetensors",
    "clip_vision": "clip_vision/bench_clip_vision_h.safetensors",
}


def _random(name: str, dtype: str, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Small weights, unit norms and zero biases: finite activations through every block."""
    if name.endswith(".bias"):
        return torch.zeros(shape, dtype=DTYPES[dtype])
    if "norm" in name or "gamma" in name or (len(shape) == 1 and name.endswith(".weight")):
        return torch.ones(shape, dtype=DTYPES[dtype])
    return (torch.randn(shape, generator=generator, dtype=torch.bfloat16) * 0.02).to(DTYPES[dtype])


def fill(header_path: Path, spiece: bytes | None = None) -> dict[str, torch.Tensor]:
    """Random tensors for every entry of a stand-in's header (fp8 matrices with their scales)."""
    from i2v_nodes.families.toolkit.safetensors_header import read_header

    generator = torch.Generator().manual_seed(0)
    tensors: dict[str, torch.Tensor] = {}
    entries = read_header(header_path).tensors
    for name, info in entries.items():
        if name == "scaled_fp8":
            tensors[name] = torch.empty(0, dtype=FP8)
        elif name == "spiece_model":
            tensors[name] = torch.frombuffer(bytearray(spiece or b""), dtype=torch.uint8)
        elif name.endswith(".scale_weight"):
            continue  # written with its matrix
        elif info.dtype == "F8_E4M3":
            weight = torch.randn(info.shape, generator=generator, dtype=torch.bfloat16) * 0.02
            scale_name = name.removesuffix(".weight") + ".scale_weight"
            tensors[name], tensors[scale_name] = quantize_fp8_scaled(weight)
        else:
            tensors[name] = _random(name, info.dtype, info.shape, generator)
    return tensors


def tiny_spiece() -> bytes:
    """A small sentencepiece model (ComfyUI's tokenizer reads it; its ids fit UMT5's vocabulary)."""
    from i2v_nodes.families.registry import WAN
    from i2v_nodes.families.toolkit.tokenizers import unigram_spiece_bytes

    return unigram_spiece_bytes(WAN.tiny_models["tiny-wan2.1-i2v"]().tokenizer)


def write(models_dir: Path) -> dict[str, Path]:
    """Write the four files (once; kept for later runs) and return them by loader slot."""
    from safetensors.torch import save_file

    paths = {slot: models_dir / relative for slot, relative in FILES.items()}
    stage = models_dir / ".headers"
    makers = {
        "diffusion_model": lambda p: stand_ins.transformer_file(p, TRANSFORMER_1_3B, "bf16"),
        "text_encoder": stand_ins.umt5_file,
        "vae": lambda p: stand_ins.vae_file(p, stand_ins.WAN21_HUB),
        "clip_vision": stand_ins.clip_vision_file,
    }
    for slot, path in paths.items():
        if path.exists():
            continue
        header = makers[slot](stage / path.name)
        tensors = fill(header, tiny_spiece() if slot == "text_encoder" else None)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(path.with_suffix(".partial")))
        path.with_suffix(".partial").rename(path)
        print(f"wrote {path} ({path.stat().st_size / 1e9:.2f} GB)", flush=True)
        del tensors
    return paths
