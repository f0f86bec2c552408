"""Wan's stock pipeline built from ComfyUI's single files.

Each component is built on the meta device from the config its file's header gave, and its
tensors are assigned straight from the file (renamed to diffusers' names): nothing is allocated
twice and nothing is initialised only to be overwritten. Weights are cast as ``from_pretrained``
would (the compute dtype, with the class's fp32-kept parts in fp32), except float8 matrices, which
stay float8 (a 14B expert stays 14 GB, not 28): their layers compute in the compute dtype one
layer at a time, with ComfyUI's per-tensor scale where the file has one.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias

from i2v_nodes.errors import ModelError
from i2v_nodes.runtime.families.base import (
    FilePart,
    FileSet,
    LoadSpec,
    refuse_missing_tokenizer,
    tokenizer_in,
)
from i2v_nodes.runtime.families.wan_files import VAE22
from i2v_nodes.runtime.families.wan_keys import (
    transformer_to_diffusers,
    vae21_to_original,
    vae22_to_original,
    vae_to_diffusers,
)
from i2v_nodes.runtime.loading.precision import FLOAT8

log = logging.getLogger(__name__)

TOKENIZER_HUB_ID = "google/umt5-xxl"
TOKENIZER_FOLDER = "umt5-xxl"  # looked for under each tokenizer root
TEXT_TOKENS = 512


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file (never pickle), or a clear error if it is cut short."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            return {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 - not a dict
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types; named here
        raise ModelError(f"cannot read the tensors of {path.name}: {exc}") from exc


# --- fp8 layers ------------------------------------------------------------------------------------


def _float8_forward(module: torch.nn.Linear, dtype: torch.dtype) -> Callable[[torch.Tensor], torch.Tensor]:
    def forward(x: torch.Tensor) -> torch.Tensor:
        weight = module.weight.to(dtype)
        scale = getattr(module, "fp8_scale", None)
        if scale is not None:
            weight = weight * scale.to(dtype)
        return F.linear(x, weight, module.bias)

    return forward


def keep_float8(module: torch.nn.Module, scales: Mapping[str, torch.Tensor], dtype: torch.dtype) -> int:
    """Let every Linear layer whose weight is float8 compute in ``dtype`` (times its ComfyUI scale,
    kept as a buffer so it moves with the layer). Returns how many layers stay in float8."""
    count = 0
    for name, layer in module.named_modules():
        if isinstance(layer, torch.nn.Linear) and layer.weight.dtype in FLOAT8:
            if name in scales:
                layer.register_buffer("fp8_scale", scales[name].float().reshape(()), persistent=False)
            layer.forward = _float8_forward(layer, dtype)
            count += 1
    return count


def _cast(
    module: torch.nn.Module,
    state: dict[str, torch.Tensor],
    scales: dict[str, torch.Tensor],
    dtype: torch.dtype,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Cast a checkpoint as from_pretrained(dtype) would, but keep float8 Linear matrices float8.

    A float8 tensor anywhere else (an embedding, or a part the class keeps in fp32, whose callers
    cast their input to the weight's dtype) is dequantised with its scale. ``state`` is consumed,
    so a file read whole is never held twice. Returns the weights and the scales of the layers that
    stay float8.
    """
    linear = {
        f"{name}.weight" for name, layer in module.named_modules() if isinstance(layer, torch.nn.Linear)
    }
    patterns = set(getattr(type(module), "_keep_in_fp32_modules", None) or ())
    weights, kept_scales = {}, dict(scales)
    for name in list(state):
        tensor = state.pop(name)  # so the file's copy goes as soon as its cast is made
        keep_fp32 = bool(patterns & set(name.split(".")))
        if tensor.dtype in FLOAT8 and name in linear and not keep_fp32:
            weights[name] = tensor
            continue
        if tensor.dtype in FLOAT8:
            scale = kept_scales.pop(name.removesuffix(".weight"), None)
            tensor = tensor.float() * (scale.float() if scale is not None else 1.0)
        if tensor.is_floating_point():
            tensor = tensor.to(torch.float32 if keep_fp32 else dtype)
        weights[name] = tensor
    return weights, kept_scales


def _empty_weights():
    """Build a module with its parameters on the meta device (they are assigned from the file next)
    but its buffers computed for real (rope tables, position ids), as from_pretrained does."""
    from accelerate import init_empty_weights

    return init_empty_weights(include_buffers=False)


def _assign(meta_model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> torch.nn.Module:
    try:
        meta_model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise ModelError(f"{path.name} does not fit the model its header describes: {exc}") from exc
    return meta_model.eval()


def _split_scales(
    checkpoint: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """ComfyUI's fp8_scaled files: weights, and per-layer scales keyed by the layer's name."""
    weights, scales = {}, {}
    for name, tensor in checkpoint.items():
        if name.endswith("scaled_fp8") or name.endswith(".scale_input"):
            continue  # the format marker; input scales only matter to fp8 matrix multiplies
        if name.endswith(".scale_weight"):
            scales[name.removesuffix(".scale_weight")] = tensor
        else:
            weights[name] = tensor
    return weights, scales


# --- components ------------------------------------------------------------------------------------


def load_transformer(part: FilePart, dtype: torch.dtype) -> torch.nn.Module:
    from diffusers import WanTransformer3DModel

    weights, scales = _split_scales(read_tensors(part.path))
    weights, scales = _split_scales(
        transformer_to_diffusers({**weights, **{k + ".scale_weight": v for k, v in scales.items()}})
    )
    with _empty_weights():
        model = WanTransformer3DModel.from_config(part.config)
    weights, scales = _cast(model, weights, scales, dtype)
    kept = keep_float8(_assign(model, weights, part.path), scales, dtype)
    if kept:
        log.info("%s: %d layers keep float8 weights", part.path.name, kept)
    return model


def load_vae(part: FilePart, dtype: torch.dtype) -> torch.nn.Module:
    from diffusers import AutoencoderKLWan

    with _empty_weights():
        model = AutoencoderKLWan.from_config(part.config)
    layout = vae22_to_original if part.variant == VAE22 else vae21_to_original
    to_original = functools.partial(layout, num_res_blocks=model.config.num_res_blocks)
    try:
        state = vae_to_diffusers(read_tensors(part.path), model.state_dict().keys(), to_original)
    except KeyError as exc:
        raise ModelError(f"{part.path.name} does not fit the {part.variant} layout: {exc}") from exc
    return _assign(
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
    weights, scales = _split_scales(_strip_prefix(checkpoint, "encoder.final_layer_norm.weight"))
    for one, other in (
        ("shared.weight", "encoder.embed_tokens.weight"),
        ("encoder.embed_tokens.weight", "shared.weight"),
    ):
        if one in weights and other not in weights:
            weights[other] = weights[one]  # one tied tensor, saved under one of its names
    with _empty_weights():
        model = UMT5EncoderModel(UMT5Config(**part.config))
    weights, scales = _cast(model, weights, scales, dtype)
    keep_float8(_assign(model, weights, part.path), scales, dtype)
    return model, bytes(spiece.numpy().tobytes()) if spiece is not None else None


def load_image_encoder(part: FilePart, dtype: torch.dtype) -> torch.nn.Module:
    """CLIP vision as the stock pipeline has it (no projection: it reads the hidden states)."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    marker = "embeddings.patch_embedding.weight"
    weights, scales = _split_scales(_strip_prefix(read_tensors(part.path), "vision_model." + marker))
    with _empty_weights():
        model = CLIPVisionModel(CLIPVisionConfig(**part.config))
    # transformers 4 names the tower "vision_model."; 5 drops the prefix
    own = next(name for name in model.state_dict() if name.endswith(marker)).removesuffix(marker)
    weights = {
        own + name.removeprefix("vision_model."): tensor
        for name, tensor in weights.items()
        if name.startswith("vision_model.")
    }
    scales = {own + name.removeprefix("vision_model."): scale for name, scale in scales.items()}
    weights, scales = _cast(model, weights, scales, dtype)
    keep_float8(_assign(model, weights, part.path), scales, dtype)
    return model


# --- the tokenizer ---------------------------------------------------------------------------------


def tokenizer_from_spiece(model_proto: bytes) -> Any:
    """The UMT5 tokenizer from a sentencepiece model's bytes (what ComfyUI embeds in its text
    encoder files): its pieces and scores as a unigram tokenizer, with its normalisation."""
    from tokenizers import normalizers
    from transformers import T5Tokenizer

    pieces, charsmap = _spiece_pieces(model_proto)
    tokenizer = T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=TEXT_TOKENS)
    if charsmap:
        tokenizer.backend_tokenizer.normalizer = normalizers.Sequence(
            [normalizers.Precompiled(charsmap), normalizers.Replace(" {2,}", " ")]
        )
    return tokenizer


def _spiece_pieces(model_proto: bytes) -> tuple[list[tuple[str, float]], bytes]:
    try:
        from transformers.convert_slow_tokenizer import import_protobuf

        proto = import_protobuf().ModelProto()
        proto.ParseFromString(model_proto)
        return [(p.piece, p.score) for p in proto.pieces], proto.normalizer_spec.precompiled_charsmap
    except ImportError:
        pass
    try:  # without protobuf, sentencepiece itself lists the pieces (not the normalisation table)
        import sentencepiece

        processor = sentencepiece.SentencePieceProcessor(model_proto=model_proto)
        return [
            (processor.id_to_piece(i), processor.get_score(i)) for i in range(processor.get_piece_size())
        ], b""
    except ImportError as exc:
        raise ModelError(
            "reading the tokenizer embedded in the text encoder file needs the protobuf package "
            "(pip install protobuf)"
        ) from exc


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
        return tokenizer_from_spiece(spiece), "the tokenizer embedded in the text encoder file"
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
