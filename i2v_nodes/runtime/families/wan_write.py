"""Wan pipelines written as ComfyUI's single files: the tiny models' files for tests and trials.

The layout is that of ComfyUI's repackaged files: the transformer in the original Wan key names,
UMT5 in transformers' names with its sentencepiece model embedded as ``spiece_model``, the VAE in
the original names, CLIP vision in transformers' names. ``fp8_scaled`` writes the matrices as
float8 with a per-tensor scale and the ``scaled_fp8`` marker, as ComfyUI's fp8_scaled files do.
Each file carries its component's config in its metadata, for the settings no shape shows.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from i2v_nodes.runtime.families.base import FILE_FOLDERS, FILE_FORMATS
from i2v_nodes.runtime.families.wan_keys import transformer_to_original, vae21_to_original, vae22_to_original

FP8_MAX = 448.0  # the largest float8_e4m3fn value


_HALF = {"bf16": torch.bfloat16, "fp16": torch.float16}


def quantize_fp8_scaled(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A matrix as ComfyUI's fp8_scaled files hold it: float8_e4m3fn values and one fp32 scale."""
    scale = weight.abs().max().float().clamp(min=1e-12) / FP8_MAX
    return (weight.float() / scale).to(torch.float8_e4m3fn), scale.reshape(())


def _to_format(state: dict[str, torch.Tensor], fmt: str, linear: set[str]) -> dict[str, torch.Tensor]:
    """As ComfyUI's files store a model: everything in bf16 or fp16; or the Linear matrices in
    float8 (with a per-tensor scale and the ``scaled_fp8`` marker for fp8_scaled), the rest bf16."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if fmt == "fp32" or not tensor.is_floating_point():
            out[name] = tensor.contiguous()
        elif fmt in _HALF:
            out[name] = tensor.to(_HALF[fmt]).contiguous()
        elif name not in linear:
            out[name] = tensor.to(torch.bfloat16).contiguous()
        elif fmt == "fp8_e4m3fn":
            out[name] = tensor.to(torch.float8_e4m3fn)
        else:
            out[name], out[name.removesuffix(".weight") + ".scale_weight"] = quantize_fp8_scaled(tensor)
    if fmt == "fp8_scaled":
        out["scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)
    return out


def _linear_weights(module: torch.nn.Module, rename: Callable[[str], str] = str) -> set[str]:
    return {
        rename(f"{name}.weight")
        for name, layer in module.named_modules()
        if isinstance(layer, torch.nn.Linear)
    }


def _save(path: Path, state: dict[str, torch.Tensor], config: dict[str, Any]) -> Path:
    """Write atomically (a half-written file never carries the final name), and never over a file
    already there: tiny models are seeded, so the one there is the one this would write."""
    from safetensors.torch import save_file

    if path.exists():
        return path

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    os.close(fd)
    try:
        save_file(state, staging, metadata={"config": json.dumps(config, sort_keys=True)})
        os.replace(staging, path)
    finally:
        if os.path.exists(staging):
            os.unlink(staging)
    return path


def _config(module: torch.nn.Module) -> dict[str, Any]:
    config = module.config
    items = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    return {
        k: v
        for k, v in items.items()
        if not k.startswith("_") and k not in ("architectures", "transformers_version")
    }


def spiece_bytes(tokenizer: Any) -> bytes:
    """A sentencepiece model holding a unigram tokenizer's pieces and scores (what ComfyUI embeds)."""
    from transformers.convert_slow_tokenizer import import_protobuf

    model = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    proto = import_protobuf().ModelProto()
    specials = {tokenizer.pad_token: 3, tokenizer.eos_token: 3, tokenizer.unk_token: 2}
    for piece, score in model["vocab"]:
        entry = proto.pieces.add()
        entry.piece, entry.score, entry.type = piece, score, specials.get(piece, 1)
    proto.trainer_spec.model_type = 1  # unigram
    proto.trainer_spec.unk_id, proto.trainer_spec.eos_id = model.get("unk_id", 2), tokenizer.eos_token_id
    proto.trainer_spec.pad_id, proto.trainer_spec.bos_id = tokenizer.pad_token_id, -1
    proto.normalizer_spec.name = "identity"
    proto.normalizer_spec.add_dummy_prefix = True
    proto.normalizer_spec.escape_whitespaces = True
    return proto.SerializeToString()


def write_files(pipe: Any, models_dir: Path, stem: str, fmt: str = "fp32") -> dict[str, Path]:
    """Write a Wan pipeline as single files in ComfyUI's folders under ``models_dir``; returns the
    file of each loader slot. ``fmt`` (one of FILE_FORMATS) applies to the denoisers and the text
    encoder; the VAE and CLIP vision stay fp32."""
    if fmt not in FILE_FORMATS:
        raise ValueError(f"format must be one of {FILE_FORMATS}, got {fmt!r}")
    files: dict[str, Path] = {}
    for slot, role in (("diffusion_model", "transformer"), ("diffusion_model_2", "transformer_2")):
        module = getattr(pipe, role, None)
        if module is None:
            continue
        expert = (
            {"transformer": "_high_noise", "transformer_2": "_low_noise"}[role] if pipe.transformer_2 else ""
        )
        state = {transformer_to_original(k): v for k, v in module.state_dict().items()}
        state = _to_format(state, fmt, _linear_weights(module, transformer_to_original))
        files[slot] = _save(
            models_dir / FILE_FOLDERS[slot] / f"{stem}{expert}_{fmt}.safetensors", state, _config(module)
        )
    text = dict(pipe.text_encoder.state_dict())
    text.pop("encoder.embed_tokens.weight", None)  # tied to shared.weight: saved once, as ComfyUI's files do
    text = _to_format(text, fmt, _linear_weights(pipe.text_encoder))
    text["spiece_model"] = torch.frombuffer(bytearray(spiece_bytes(pipe.tokenizer)), dtype=torch.uint8)
    files["text_encoder"] = _save(
        models_dir / FILE_FOLDERS["text_encoder"] / f"{stem}_umt5_{fmt}.safetensors",
        text,
        _config(pipe.text_encoder),
    )
    vae = pipe.vae
    layout = vae22_to_original if vae.config.z_dim == 48 else vae21_to_original
    to_original = functools.partial(layout, num_res_blocks=vae.config.num_res_blocks)
    files["vae"] = _save(
        models_dir / FILE_FOLDERS["vae"] / f"{stem}_vae.safetensors",
        {to_original(k): v.contiguous() for k, v in vae.state_dict().items()},
        _config(vae),
    )
    if getattr(pipe, "image_encoder", None) is not None:
        files["clip_vision"] = _save(
            models_dir / FILE_FOLDERS["clip_vision"] / f"{stem}_clip_vision.safetensors",
            {  # ComfyUI's clip_vision files name the tower "vision_model." (transformers 5 does not)
                "vision_model." + name.removeprefix("vision_model."): tensor.contiguous()
                for name, tensor in pipe.image_encoder.state_dict().items()
            },
            _config(pipe.image_encoder),
        )
    return files
