"""Wan's stock pipeline built from ComfyUI's single files.

Each component is built on the meta device from the config its file's header gave, and its
tensors are assigned straight from the file (renamed to diffusers' names): nothing is allocated
twice and nothing is initialised only to be overwritten. Weights are cast as ``from_pretrained``
would (the compute dtype, with the class's fp32-kept parts in fp32), except float8 matrices, which
stay float8 (a 14B expert stays 14 GB, not 28): their layers compute in the compute dtype one
layer at a time, with ComfyUI's per-tensor scale where the file has one. The encoders' bf16 / fp16
matrices stay so too in an fp32 run (cast as each layer runs: the same values, half the bytes). A
GGUF transformer keeps its quantised matrices as they lie in the mapped file (toolkit.gguf_tensors:
diffusers' GGUF layers, without from_single_file's copy of the file); each is dequantised as its
layer runs.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from i2v_nodes.errors import ModelError
from i2v_nodes.families.contract.files import FilePart, FileSet, LoadSpec
from i2v_nodes.families.toolkit.file_tensors import assign, empty_weights, read_tensors
from i2v_nodes.families.toolkit.float8 import cast_keeping_float8, keep_float8, split_scales
from i2v_nodes.families.toolkit.gguf_tensors import assign_quantised, read_gguf_tensors
from i2v_nodes.families.toolkit.tokenizers import (
    refuse_missing_tokenizer,
    t5_tokenizer_from_spiece,
    tokenizer_in,
)
from i2v_nodes.families.wan.files import VAE22
from i2v_nodes.families.wan.keys import (
    transformer_to_diffusers,
    vae21_to_original,
    vae22_to_original,
    vae_to_diffusers,
)
from i2v_nodes.families.wan.spec import TEXT_TOKENS
from i2v_nodes.lazy import torch

log = logging.getLogger(__name__)

TOKENIZER_HUB_ID = "google/umt5-xxl"
TOKENIZER_FOLDER = "umt5-xxl"  # looked for under each tokenizer root




# --- fp8 layers ------------------------------------------------------------------------------------














# --- components ------------------------------------------------------------------------------------


def load_transformer(part: FilePart, dtype: torch.dtype) -> torch.nn.Module:
    from diffusers import WanTransformer3DModel

    if part.gguf is not None:
        weights = transformer_to_diffusers(read_gguf_tensors(part.path))
        with empty_weights():
            model = WanTransformer3DModel.from_config(part.config)
        log.info("%s: %s weights kept quantised", part.path.name, part.gguf.file_type)
        return assign_quantised(model, weights, dtype, part.path)
    weights, scales = split_scales(read_tensors(part.path))
    weights, scales = split_scales(
        transformer_to_diffusers({**weights, **{k + ".scale_weight": v for k, v in scales.items()}})
    )
    with empty_weights():
        model = WanTransformer3DModel.from_config(part.config)
    weights, scales = cast_keeping_float8(model, weights, scales, dtype)
    kept = keep_float8(assign(model, weights, part.path), scales, dtype)
    if kept:
        log.info("%s: %d layers keep float8 weights", part.path.name, kept)
    return model


def load_vae(part: FilePart, dtype: torch.dtype) -> torch.nn.Module:
    from diffusers import AutoencoderKLWan

    with empty_weights():
        model = AutoencoderKLWan.from_config(part.config)
    layout = vae22_to_original if part.variant == VAE22 else vae21_to_original
    to_original = functools.partial(layout, num_res_blocks=model.config.num_res_blocks)
    try:
        state = vae_to_diffusers(read_tensors(part.path), model.state_dict().keys(), to_original)
    except KeyError as exc:
        raise ModelError(f"{part.path.name} does not fit the {part.variant} layout: {exc}") from exc
    return assign(
        model, {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}, part.path
    )


def _strip_prefix(checkpoint: dict[str, torch.Tensor], marker: str) -> dict[str, torch.Tensor]:
    prefix = next((name[: -len(marker)] for name in checkpoint if name.endswith(marker)), "")
    return {
        name.removeprefix(prefix): tensor for name, tensor in checkpoint.items() if name.startswith(prefix)
    }


def load_text_encoder(part: FilePart, dtype: torch.dtype) -> tuple[torch.nn.Module, bytes | None]:
    """UMT5's encoder, and the sentencepiece model ComfyUI embeds in the file (if it does)."""
    from transformers import UMT5Config, UMT5EncoderModel

    checkpoint = read_tensors(part.path)
    spiece = checkpoint.pop("spiece_model", None)
    weights, scales = split_scales(_strip_prefix(checkpoint, "encoder.final_layer_norm.weight"))
    for one, other in (
        ("shared.weight", "encoder.embed_tokens.weight"),
        ("encoder.embed_tokens.weight", "shared.weight"),
    ):
        if one in weights and other not in weights:
            weights[other] = weights[one]  # one tied tensor, saved under one of its names
    with empty_weights():
        model = UMT5EncoderModel(UMT5Config(**part.config))
    weights, scales = cast_keeping_float8(model, weights, scales, dtype, keep_half=True)
    keep_float8(assign(model, weights, part.path), scales, dtype)
    return model, bytes(spiece.numpy().tobytes()) if spiece is not None else None


def load_image_encoder(part: FilePart, dtype: torch.dtype) -> torch.nn.Module:
    """CLIP vision as the stock pipeline has it (no projection: it reads the hidden states)."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    marker = "embeddings.patch_embedding.weight"
    weights, scales = split_scales(_strip_prefix(read_tensors(part.path), "vision_model." + marker))
    with empty_weights():
        model = CLIPVisionModel(CLIPVisionConfig(**part.config))
    # transformers 4 names the tower "vision_model."; 5 drops the prefix
    own = next(name for name in model.state_dict() if name.endswith(marker)).removesuffix(marker)
    weights = {
        own + name.removeprefix("vision_model."): tensor
        for name, tensor in weights.items()
        if name.startswith("vision_model.")
    }
    scales = {own + name.removeprefix("vision_model."): scale for name, scale in scales.items()}
    weights, scales = cast_keeping_float8(model, weights, scales, dtype, keep_half=True)
    keep_float8(assign(model, weights, part.path), scales, dtype)
    return model


# --- the tokenizer ---------------------------------------------------------------------------------






def tokenizer_folder(roots: Iterable[Path]) -> Path | None:
    """The first ``<root>/umt5-xxl`` holding a tokenizer."""
    return tokenizer_in(roots, (TOKENIZER_FOLDER,), (("tokenizer.json",), ("spiece.model",)))


def check_tokenizer(embedded: bool, roots: Iterable[Path], allow_download: bool) -> None:
    """Refuse, before any weight loads, a text encoder whose tokenizer is nowhere to be had."""
    roots = list(roots)
    if not (embedded or allow_download or tokenizer_folder(roots) is not None):
        refuse_missing_tokenizer(
            roots, TOKENIZER_FOLDER, "the text encoder file carries no tokenizer (ComfyUI's own files do)",
            f"tokenizer.json from the {TOKENIZER_HUB_ID} repo")


def find_tokenizer(spiece: bytes | None, roots: Iterable[Path], allow_download: bool) -> tuple[Any, str]:
    """The text encoder's tokenizer, and a note on where it came from: the one embedded in the
    file, else ``<root>/umt5-xxl`` under one of ``roots``, else the hub if downloads are allowed."""
    from transformers import AutoTokenizer

    if spiece is not None:
        tokenizer = t5_tokenizer_from_spiece(spiece, TEXT_TOKENS)
        return tokenizer, "the tokenizer embedded in the text encoder file"
    roots = list(roots)
    folder = tokenizer_folder(roots)
    if folder is not None:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True), f"the tokenizer in {folder}"
    check_tokenizer(False, roots, allow_download)  # refuses unless downloads are allowed
    return AutoTokenizer.from_pretrained(TOKENIZER_HUB_ID), f"{TOKENIZER_HUB_ID}'s tokenizer (downloaded)"


# --- the pipeline ----------------------------------------------------------------------------------


def load_pipeline(
    files: FileSet,
    spec: LoadSpec,
    tokenizer_roots: Iterable[Path],
    allow_download: bool,
    settle: Callable[[torch.nn.Module], None],
) -> tuple[Any, str]:
    """The stock WanImageToVideoPipeline from single files, and a note for the report.

    ``settle`` gets each denoiser as soon as it is loaded (to go to the device without offload),
    so system RAM holds one expert at a time.
    """
    from diffusers import UniPCMultistepScheduler, WanImageToVideoPipeline
    from transformers import CLIPImageProcessor

    parts = dict(files.parts)
    components: dict[str, Any] = {}
    for role in ("transformer", "transformer_2"):
        if role in parts:
            components[role] = load_transformer(parts[role], spec.dtype)
            settle(components[role])
    text_encoder, spiece = load_text_encoder(parts["text_encoder"], spec.dtype)
    tokenizer, note = find_tokenizer(spiece, tokenizer_roots, allow_download)
    components.update(
        text_encoder=text_encoder, tokenizer=tokenizer, vae=load_vae(parts["vae"], spec.vae_dtype)
    )
    if "image_encoder" in parts:
        components["image_encoder"] = load_image_encoder(parts["image_encoder"], spec.dtype)
        components["image_processor"] = CLIPImageProcessor(**files.configs["image_processor"])
    scheduler = UniPCMultistepScheduler(**files.configs["scheduler"])
    pipe = WanImageToVideoPipeline(scheduler=scheduler, **files.configs.get("pipeline", {}), **components)
    return pipe, f"tokenizer: {note}"
