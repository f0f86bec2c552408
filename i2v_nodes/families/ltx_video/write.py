"""LTX-Video pipelines written as ComfyUI's single files, and header-only stand-ins of the published ones.

The tiny models' files have the layout of the files ComfyUI users load: one checkpoint (in
``checkpoints``) with the transformer under ``model.diffusion_model.`` and the VAE under ``vae.``,
in Lightricks' key names; and the T5 encoder (in ``text_encoders``) in transformers' key names.
Unlike ComfyUI's t5xxl files, the tiny T5 file embeds its (tiny, offline) tokenizer as a
``spiece_model`` tensor, as ComfyUI's UMT5 files do, so it loads with nothing else on disk. Each
file carries the diffusers configs of its components in its ``diffusers_config`` metadata, for
the settings no shape shows (attention heads, the tiny VAE's layout). ``gguf-Q8_0`` writes the
transformer as a ComfyUI-GGUF file (in ``unet``, typed as city96's tools type LTX-Video) beside a
VAE file and an fp32 T5 file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from i2v_nodes.families.contract.files import FILE_FOLDERS, FILE_FORMATS, GGUF, GGUF_FOLDER
from i2v_nodes.families.ltx_video.components import meta_component
from i2v_nodes.families.ltx_video.configs import TRANSFORMER_2B, TRANSFORMER_13B
from i2v_nodes.families.ltx_video.files import (
    PUBLISHED_VAES,
    VAE091,
    VAE095,
    transformer_to_original,
    vae_names_to_original,
)
from i2v_nodes.families.toolkit.file_headers import CONFIG_KEY
from i2v_nodes.families.toolkit.file_writing import (
    CHECKPOINTS,
    component_config,
    linear_weights,
    save_with_configs,
    to_format,
)
from i2v_nodes.families.toolkit.gguf_writing import quantised, tensor_types, write_gguf
from i2v_nodes.families.toolkit.meta import config_json
from i2v_nodes.families.toolkit.stand_ins import Tensors, stored, write_header
from i2v_nodes.families.toolkit.tokenizers import unigram_spiece_bytes
from i2v_nodes.lazy import torch

TRANSFORMER_PREFIX, VAE_PREFIX = "model.diffusion_model.", "vae."
FORMATS = (*FILE_FORMATS, GGUF + "Q8_0")
# city96's tools on LTX-Video: what llama-quantize never quantises, and what convert.py keeps in F32
GGUF_UNQUANTISED = ("adaln_single.", "caption_projection.", "patchify_proj.", "proj_out.",
                    "scale_shift_table")
GGUF_HIGH_PRECISION = ("scale_shift_table",)




def _original_checkpoint(pipe: Any) -> tuple[dict[str, torch.Tensor], set[str]]:
    """Transformer and VAE in one state dict of Lightricks' names, and the transformer's Linear weights."""
    def original(name: str) -> str:
        return TRANSFORMER_PREFIX + transformer_to_original(name)

    state = {original(name): tensor for name, tensor in pipe.transformer.state_dict().items()}
    vae = pipe.vae.state_dict()
    state.update({VAE_PREFIX + old: vae[name] for name, old in vae_names_to_original(vae).items()})
    return state, linear_weights(pipe.transformer, original)


def write_files(pipe: Any, models_dir: Path, stem: str, fmt: str = "fp32") -> dict[str, Path]:
    """Write an LTX-Video pipeline as a ComfyUI checkpoint and a T5 file under ``models_dir``; returns
    the file of each loader slot (the checkpoint carries the VAE: no vae file). ``fmt`` (one of
    FILE_FORMATS) applies to both files: float8 formats store the Linear matrices in float8, the
    rest (and the VAE) in bf16, as ComfyUI's fp8 files do."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if fmt.startswith(GGUF):
        return {**_gguf_files(pipe, Path(models_dir), stem, fmt.removeprefix(GGUF)),
                "text_encoder": write_files(pipe, models_dir, stem)["text_encoder"]}
    state, linear = _original_checkpoint(pipe)
    configs = {"transformer": component_config(pipe.transformer), "vae": component_config(pipe.vae)}
    checkpoint = save_with_configs(Path(models_dir) / CHECKPOINTS / f"{stem}_{fmt}.safetensors",
                                   to_format(state, fmt, linear), configs)
    text = dict(pipe.text_encoder.state_dict())
    text.pop("encoder.embed_tokens.weight", None)  # tied to shared.weight: saved once, as ComfyUI's files do
    text = to_format(text, fmt, linear_weights(pipe.text_encoder))
    spiece = unigram_spiece_bytes(pipe.tokenizer)
    text["spiece_model"] = torch.frombuffer(bytearray(spiece), dtype=torch.uint8)
    encoder_path = Path(models_dir) / FILE_FOLDERS["text_encoder"] / f"{stem}_t5_{fmt}.safetensors"
    encoder = save_with_configs(encoder_path, text, {"text_encoder": component_config(pipe.text_encoder)})
    return {"diffusion_model": checkpoint, "text_encoder": encoder}


def _gguf_files(pipe: Any, models_dir: Path, stem: str, file_type: str) -> dict[str, Path]:
    """The transformer as a GGUF file (Lightricks' names, no prefix), the VAE as a VAE file."""
    state, _linear = _original_checkpoint(pipe)
    transformer = {k.removeprefix(TRANSFORMER_PREFIX): v for k, v in state.items()
                   if k.startswith(TRANSFORMER_PREFIX)}
    tensors = tensor_types({k: tuple(v.shape) for k, v in transformer.items()}, file_type,
                           GGUF_UNQUANTISED, GGUF_HIGH_PRECISION)
    metadata = {CONFIG_KEY: json.dumps({"transformer": component_config(pipe.transformer)}, sort_keys=True)}
    gguf = write_gguf(models_dir / GGUF_FOLDER / f"{stem}-{file_type}.gguf", tensors, "ltxv", file_type,
                      lambda name, kind, _shape: quantised(transformer[name].float().numpy(), kind), metadata)
    vae = {k.removeprefix(VAE_PREFIX): v for k, v in state.items() if k.startswith(VAE_PREFIX)}
    vae_path = save_with_configs(models_dir / FILE_FOLDERS["vae"] / f"{stem}_vae.safetensors", vae,
                                 {"vae": component_config(pipe.vae)})
    return {"diffusion_model": gguf, "vae": vae_path}


# --- header-only stand-ins of the published files ----------------------------------------------------

# Published files by name: (transformer config, VAE release) of ComfyUI's LTX-Video checkpoints.
T5_FILES = {"t5xxl_fp16.safetensors": "fp16", "t5xxl_fp8_e4m3fn_scaled.safetensors": "fp8_scaled"}
CHECKPOINT_FILES = {
    "ltx-video-2b-v0.9.1.safetensors": (TRANSFORMER_2B, VAE091),
    "ltx-video-2b-v0.9.5.safetensors": (TRANSFORMER_2B, VAE095),
    "ltxv-13b-0.9.7-dev.safetensors": (TRANSFORMER_13B, VAE095),
    "ltxv-13b-0.9.7-distilled.safetensors": (TRANSFORMER_13B, VAE095),
}


def _shapes(role: str, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    module = meta_component(role, config_json(config), torch.float32)
    return {name: tuple(t.shape) for name, t in module.state_dict().items()}


def checkpoint_file(path: Path, transformer: dict[str, Any], vae: str, fmt: str = "bf16") -> Path:
    """A checkpoint's header (transformer in ``fmt``, the VAE in bf16), no tensor data."""
    tensors: Tensors = {TRANSFORMER_PREFIX + transformer_to_original(k): v
                        for k, v in stored(_shapes("transformer", transformer), fmt).items()}
    vae_shapes = _shapes("vae", PUBLISHED_VAES[vae])
    tensors.update({VAE_PREFIX + original: ("BF16", vae_shapes[name])
                    for name, original in vae_names_to_original(vae_shapes).items()})
    tensors[VAE_PREFIX + "per_channel_statistics.channel"] = ("I64", (128,))  # kept by the original, unused
    return write_header(path, tensors)


def t5_file(path: Path, fmt: str = "fp16") -> Path:
    """ComfyUI's T5 v1.1 XXL file's header (no tokenizer), no tensor data."""
    from i2v_nodes.families.ltx_video.configs import PUBLISHED

    shapes = _shapes("text_encoder", PUBLISHED["Lightricks/LTX-Video-0.9.5"]["text_encoder"])
    shapes.pop("encoder.embed_tokens.weight", None)  # tied to shared.weight: stored once
    if fmt == "fp16":
        return write_header(path, {name: ("F16", shape) for name, shape in shapes.items()})
    return write_header(path, stored(shapes, fmt))


def write_published_files(models_dir: Path) -> dict[str, Path]:
    """Stand-ins of ComfyUI's LTX-Video files in its folders under ``models_dir`` (file name -> path);
    a file already there is kept (it may be the real one)."""
    paths = {}
    for name, (transformer, vae) in CHECKPOINT_FILES.items():
        paths[name] = path = Path(models_dir) / CHECKPOINTS / name
        if not path.exists():
            checkpoint_file(path, transformer, vae)
    for name, fmt in T5_FILES.items():
        paths[name] = path = Path(models_dir) / FILE_FOLDERS["text_encoder"] / name
        if not path.exists():
            t5_file(path, fmt)
    return paths
