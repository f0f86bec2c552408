"""Wan pipelines written as ComfyUI's single files: the tiny models' files for tests and trials.

The layout is that of ComfyUI's repackaged files: the transformer in the original Wan key names,
UMT5 in transformers' names with its sentencepiece model embedded as ``spiece_model``, the VAE in
the original names, CLIP vision in transformers' names. ``fp8_scaled`` writes the matrices as
float8 with a per-tensor scale and the ``scaled_fp8`` marker, as ComfyUI's fp8_scaled files do.
Each file carries its component's config in its metadata, for the settings no shape shows.
``gguf-Q8_0`` writes the transformers as ComfyUI-GGUF's GGUF files (named as QuantStack names its Wan
2.2 experts, ``...-HighNoise-Q8_0.gguf``), quantised as city96's tools quantise Wan, and the text
encoder and VAE as fp32 safetensors.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from i2v_nodes.families.contract.files import FILE_FOLDERS, FILE_FORMATS, GGUF, GGUF_FOLDER
from i2v_nodes.families.toolkit.file_writing import (
    component_config,
    linear_weights,
    save_atomically,
    to_format,
)
from i2v_nodes.families.toolkit.gguf_writing import Tensors, quantised, tensor_types, write_gguf
from i2v_nodes.families.toolkit.tokenizers import unigram_spiece_bytes
from i2v_nodes.families.wan.keys import transformer_to_original, vae21_to_original, vae22_to_original
from i2v_nodes.lazy import torch

FORMATS = (*FILE_FORMATS, GGUF + "Q8_0")
# city96's tools on Wan: what llama-quantize never quantises, and what convert.py keeps in F32
GGUF_UNQUANTISED = ("modulation.", "patch_embedding.", "text_embedding.", "time_projection.",
                    "time_embedding.", "img_emb.", "head.")
GGUF_HIGH_PRECISION = (".modulation",)


def _save(path: Path, state: dict[str, torch.Tensor], config: dict[str, Any]) -> Path:
    """Wan's files carry their component's config under ``config`` in their metadata."""
    return save_atomically(path, state, {"config": json.dumps(config, sort_keys=True)})


def gguf_tensor_types(shapes: dict[str, tuple[int, ...]], file_type: str, source: str = "F16") -> Tensors:
    """The type of each tensor (original names) of a Wan transformer GGUF of ``file_type``."""
    return tensor_types(shapes, file_type, GGUF_UNQUANTISED, GGUF_HIGH_PRECISION, source)


def _save_gguf(path: Path, state: dict[str, torch.Tensor], config: dict[str, Any], file_type: str) -> Path:
    """A transformer (original names) as a GGUF file of ``file_type`` (one gguf.quants quantises)."""
    tensors = gguf_tensor_types({name: tuple(t.shape) for name, t in state.items()}, file_type)
    return write_gguf(path, tensors, "wan", file_type,
                      lambda name, kind, _shape: quantised(state[name].float().numpy(), kind),
                      {"config": json.dumps(config, sort_keys=True)})






def write_files(pipe: Any, models_dir: Path, stem: str, fmt: str = "fp32") -> dict[str, Path]:
    """Write a Wan pipeline as single files in ComfyUI's folders under ``models_dir``; returns the
    file of each loader slot. ``fmt`` (one of FILE_FORMATS) applies to the denoisers and the text
    encoder, and a half precision to CLIP vision too (ComfyUI's clip_vision_h is fp16); the VAE, and
    CLIP vision otherwise, stay fp32."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    gguf, fmt = (fmt.removeprefix(GGUF), "fp32") if fmt.startswith(GGUF) else ("", fmt)
    files: dict[str, Path] = {}
    for slot, role in (("diffusion_model", "transformer"), ("diffusion_model_2", "transformer_2")):
        module = getattr(pipe, role, None)
        if module is None:
            continue
        expert = (
            {"transformer": "_high_noise", "transformer_2": "_low_noise"}[role] if pipe.transformer_2 else ""
        )
        state = {transformer_to_original(k): v for k, v in module.state_dict().items()}
        if gguf:
            expert = {"_high_noise": "-HighNoise", "_low_noise": "-LowNoise"}.get(expert, "")
            files[slot] = _save_gguf(models_dir / GGUF_FOLDER / f"{stem}{expert}-{gguf}.gguf", state,
                                     component_config(module), gguf)
            continue
        state = to_format(state, fmt, linear_weights(module, transformer_to_original))
        files[slot] = _save(
            models_dir / FILE_FOLDERS[slot] / f"{stem}{expert}_{fmt}.safetensors", state,
            component_config(module)
        )
    text = dict(pipe.text_encoder.state_dict())
    text.pop("encoder.embed_tokens.weight", None)  # tied to shared.weight: saved once, as ComfyUI's files do
    text = to_format(text, fmt, linear_weights(pipe.text_encoder))
    spiece = unigram_spiece_bytes(pipe.tokenizer)
    text["spiece_model"] = torch.frombuffer(bytearray(spiece), dtype=torch.uint8)
    files["text_encoder"] = _save(
        models_dir / FILE_FOLDERS["text_encoder"] / f"{stem}_umt5_{fmt}.safetensors",
        text,
        component_config(pipe.text_encoder),
    )
    vae = pipe.vae
    layout = vae22_to_original if vae.config.z_dim == 48 else vae21_to_original
    to_original = functools.partial(layout, num_res_blocks=vae.config.num_res_blocks)
    files["vae"] = _save(
        models_dir / FILE_FOLDERS["vae"] / f"{stem}_vae.safetensors",
        {to_original(k): v.contiguous() for k, v in vae.state_dict().items()},
        component_config(vae),
    )
    if getattr(pipe, "image_encoder", None) is not None:
        half = fmt if fmt in ("bf16", "fp16") else ""
        name = f"{stem}_clip_vision_{half}" if half else f"{stem}_clip_vision"
        clip = {  # ComfyUI's clip_vision files name the tower "vision_model." (transformers 5 does not)
            "vision_model." + name.removeprefix("vision_model."): tensor
            for name, tensor in pipe.image_encoder.state_dict().items()
        }
        files["clip_vision"] = _save(
            models_dir / FILE_FOLDERS["clip_vision"] / f"{name}.safetensors",
            to_format(clip, half or "fp32", set()),
            component_config(pipe.image_encoder),
        )
    return files
