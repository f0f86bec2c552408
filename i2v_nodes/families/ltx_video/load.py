"""LTX-Video's stock pipeline built from ComfyUI's single files.

As for Wan (:mod:`.wan_load`, whose helpers this reuses): each component is built on the meta device
from the config its header gave, and its tensors are assigned straight from the file, renamed to
diffusers' names; casts are those of ``from_pretrained``, and float8 matrices stay float8 (computing
in the compute dtype one layer at a time). A checkpoint is read one component at a time, so the
transformer and the VAE are never both held as the file stores them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from i2v_nodes.errors import ModelError
from i2v_nodes.families.contract.files import FilePart, FileSet, LoadSpec
from i2v_nodes.families.ltx_video.configs import LEGACY
from i2v_nodes.families.ltx_video.files import (
    TRANSFORMER_PREFIXES,
    VAE_PREFIXES,
    transformer_to_diffusers,
    vae_to_diffusers,
)
from i2v_nodes.families.toolkit.file_tensors import aligned, assign, empty_weights
from i2v_nodes.families.toolkit.float8 import cast_keeping_float8, is_float8, keep_float8, split_scales
from i2v_nodes.families.toolkit.gguf_tensors import assign_quantised, read_gguf_tensors
from i2v_nodes.families.toolkit.tokenizers import (
    refuse_missing_tokenizer,
    t5_tokenizer_from_spiece,
    tokenizer_in,
)
from i2v_nodes.lazy import torch

log = logging.getLogger(__name__)

TOKENIZER_HUB_ID = "google/t5-v1_1-xxl"
# looked for under each tokenizer root: the hub repo's name, then ComfyUI's own copy of it
T5_MAX_LENGTH = 512  # the T5 tokenizer's own model_max_length (the pipelines pad to their own length)
TOKENIZER_FOLDERS = ("t5-v1_1-xxl", "t5_tokenizer")


def read_prefixed(path: Path, prefixes: Iterable[str],
                  exclude: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """The tensors under the first of ``prefixes`` the file uses, the prefix taken off (never pickle)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            names = list(handle.keys())
            prefix = next(p for p in prefixes if any(n.startswith(p) for n in names))
            return {n.removeprefix(prefix): handle.get_tensor(n) for n in names
                    if n.startswith(prefix) and not n.startswith(exclude)}
    except StopIteration as exc:
        raise ModelError(f"{path.name} holds none of the tensors its header promised") from exc
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types; named here
        raise ModelError(f"cannot read the tensors of {path.name}: {exc}") from exc






# --- components ------------------------------------------------------------------------------------


def load_transformer(part: FilePart, dtype: torch.dtype) -> torch.nn.Module:
    from diffusers import LTXVideoTransformer3DModel

    if part.gguf is not None:  # quantised matrices kept as they lie in the mapped file
        weights = transformer_to_diffusers(read_gguf_tensors(part.path))
        with empty_weights():
            model = LTXVideoTransformer3DModel.from_config(part.config)
        return assign_quantised(model, weights, dtype, part.path)
    weights, scales = split_scales(read_prefixed(part.path, TRANSFORMER_PREFIXES,
                                                  ("vae.", "text_encoders.", "cond_stage_model.")))
    weights, scales = split_scales(
        transformer_to_diffusers({**weights, **{k + ".scale_weight": v for k, v in scales.items()}})
    )
    with empty_weights():
        model = LTXVideoTransformer3DModel.from_config(part.config)
    weights, scales = cast_keeping_float8(model, weights, scales, dtype)
    kept = keep_float8(assign(model, aligned(weights), part.path), scales, dtype)
    if kept:
        log.info("%s: %d layers keep float8 weights", part.path.name, kept)
    return model


def load_vae(part: FilePart, dtype: torch.dtype) -> torch.nn.Module:
    from diffusers import AutoencoderKLLTXVideo

    with empty_weights():
        model = AutoencoderKLLTXVideo.from_config(part.config)
    try:
        state = vae_to_diffusers(read_prefixed(part.path, VAE_PREFIXES), model.state_dict().keys())
    except KeyError as exc:
        raise ModelError(f"{part.path.name} does not fit the {part.variant} layout: {exc}") from exc
    for name, tensor in state.items():  # in place: the file's copy goes as soon as its cast is made
        if is_float8(tensor.dtype):  # (rare) its convolutions have no float8 path: widen first
            tensor = tensor.float()
        state[name] = tensor.to(dtype) if tensor.is_floating_point() else tensor
    return assign(model, aligned(state), part.path)


def load_text_encoder(part: FilePart, dtype: torch.dtype) -> tuple[torch.nn.Module, bytes | None]:
    """T5's encoder, and a sentencepiece model embedded in the file if it has one (ComfyUI's t5xxl
    files do not; the pack's tiny files do)."""
    from transformers import T5Config, T5EncoderModel

    checkpoint = read_prefixed(part.path, ("",))
    spiece = checkpoint.pop("spiece_model", None)
    prefix = next(n for n in checkpoint if n.endswith("encoder.final_layer_norm.weight")).removesuffix(
        "encoder.final_layer_norm.weight")
    checkpoint = {n.removeprefix(prefix): t for n, t in checkpoint.items()
                  if n.startswith((prefix + "encoder.", prefix + "shared.")) or n == "scaled_fp8"}
    weights, scales = split_scales(checkpoint)
    for one, other in (("shared.weight", "encoder.embed_tokens.weight"),
                       ("encoder.embed_tokens.weight", "shared.weight")):
        if one in weights and other not in weights:
            weights[other] = weights[one]  # one tied tensor, saved under one of its names
    with empty_weights():
        model = T5EncoderModel(T5Config(**part.config))
    weights, scales = cast_keeping_float8(model, weights, scales, dtype, keep_half=True)
    keep_float8(assign(model, aligned(weights), part.path), scales, dtype)
    return model, bytes(spiece.numpy().tobytes()) if spiece is not None else None


# --- the tokenizer ---------------------------------------------------------------------------------


def tokenizer_folder(roots: Iterable[Path]) -> Path | None:
    """The first ``<root>/t5-v1_1-xxl`` (or ComfyUI's ``t5_tokenizer``) holding a tokenizer."""
    return tokenizer_in(roots, TOKENIZER_FOLDERS, (("tokenizer.json",), ("spiece.model",)))


def check_tokenizer(embedded: bool, roots: Iterable[Path], allow_download: bool) -> None:
    """Refuse, before any weight loads, a text encoder whose tokenizer is nowhere to be had."""
    roots = list(roots)
    if not (embedded or allow_download or tokenizer_folder(roots) is not None):
        refuse_missing_tokenizer(
            roots, TOKENIZER_FOLDERS[0], "T5 text encoder files carry no tokenizer",
            f"the tokenizer files of {TOKENIZER_HUB_ID} (spiece.model, tokenizer_config.json and "
            "special_tokens_map.json; or a tokenizer.json)")


def find_tokenizer(spiece: bytes | None, roots: Iterable[Path], allow_download: bool) -> tuple[Any, str]:
    """The tokenizer and where it came from: embedded in the file, else a tokenizer folder under one of
    ``roots``, else the hub if downloads are allowed."""
    # the class is known: a folder needs no tokenizer_config.json to say it
    from transformers import T5Tokenizer

    if spiece is not None:
        tokenizer = t5_tokenizer_from_spiece(spiece, T5_MAX_LENGTH)
        return tokenizer, "the tokenizer embedded in the text encoder file"
    roots = list(roots)
    folder = tokenizer_folder(roots)
    if folder is not None:
        return T5Tokenizer.from_pretrained(str(folder), local_files_only=True), f"the tokenizer in {folder}"
    check_tokenizer(False, roots, allow_download)  # refuses unless downloads are allowed
    return T5Tokenizer.from_pretrained(TOKENIZER_HUB_ID), f"{TOKENIZER_HUB_ID}'s tokenizer (downloaded)"


# --- the pipeline ----------------------------------------------------------------------------------


def load_pipeline(files: FileSet, spec: LoadSpec, tokenizer_roots: Iterable[Path], allow_download: bool,
                  settle: Callable[[torch.nn.Module], None]) -> tuple[Any, str]:
    """The stock pipeline (LTXImageToVideoPipeline for 0.9.0/0.9.1, else LTXConditionPipeline) from
    single files, and a note for the report."""
    from diffusers import FlowMatchEulerDiscreteScheduler, LTXConditionPipeline, LTXImageToVideoPipeline

    parts = files.parts
    transformer = load_transformer(parts["transformer"], spec.dtype)
    settle(transformer)
    text_encoder, spiece = load_text_encoder(parts["text_encoder"], spec.dtype)
    tokenizer, note = find_tokenizer(spiece, tokenizer_roots, allow_download)
    pipeline = LTXImageToVideoPipeline if files.variant == LEGACY else LTXConditionPipeline
    scheduler = FlowMatchEulerDiscreteScheduler(**files.configs["scheduler"])
    vae = load_vae(parts["vae"], spec.vae_dtype)
    pipe = pipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                    transformer=transformer)
    return pipe, f"tokenizer: {note}"
