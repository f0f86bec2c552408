"""LTX-2's stock pipeline built from ComfyUI's single files (the checkpoint and Gemma 3).

As for Wan (:mod:`.wan_load`, whose fp8 helpers this reuses): each component is built on the meta
device from the config its file's header gave, and its tensors are assigned straight from the file,
renamed to diffusers' names (:mod:`.ltx2_files`). Casts are those of ``from_pretrained`` (the
compute dtype, the video VAE in the VAE dtype, parts a class keeps in fp32 in fp32); float8
matrices stay float8 and compute in the compute dtype one layer at a time, with ComfyUI's
per-tensor scale where the file has one (its old ``scale_weight`` or its new ``weight_scale``).
The checkpoint is read one component at a time, so no two are ever held as the file stores them.

The tokenizer: ComfyUI's Gemma file embeds its sentencepiece model (``spiece_model``), which is
rebuilt here as transformers' Gemma tokenizer without the sentencepiece package, the way
transformers converts one. Without it, ``<text_encoders>/gemma-3-12b-it/`` (a ``tokenizer.json``,
or a ``tokenizer.model``) is used, else the tokenizer of ``Lightricks/LTX-2`` is downloaded when
downloads are allowed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from i2v_nodes.errors import ModelError
from i2v_nodes.families.contract.files import FilePart, FileSet, LoadSpec
from i2v_nodes.families.ltx2.files import CONNECTOR_PARTS, PROJECTION, QUANT_EXTRAS, SCALE_SUFFIXES, SECTIONS
from i2v_nodes.families.ltx2.keys import (
    STATISTICS,
    audio_vae_name,
    connector_name,
    gemma_name,
    transformer_name,
    vae_name,
    vocoder_name,
)
from i2v_nodes.families.toolkit.file_tensors import aligned, assign, empty_weights, read_tensors
from i2v_nodes.families.toolkit.float8 import cast_keeping_float8, is_float8, keep_float8
from i2v_nodes.families.toolkit.tokenizers import refuse_missing_tokenizer, tokenizer_in
from i2v_nodes.lazy import torch

log = logging.getLogger(__name__)

TOKENIZER_HUB_ID = "Lightricks/LTX-2"  # its tokenizer subfolder is Gemma 3's, and not gated as Google's is
TOKENIZER_SUBFOLDER = "tokenizer"
TOKENIZER_FOLDER = "gemma-3-12b-it"  # looked for under each tokenizer root (ComfyUI's text_encoders)
TEXT_TOKENS = 1024


# --- reading ---------------------------------------------------------------------------------------






def split_quant(checkpoint: dict[str, torch.Tensor], rename: Callable[[str], str]
                ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Weights renamed to diffusers' names, and per-layer fp8 scales keyed by the renamed layer.
    Markers and input scales are dropped (they only matter to fp8 matrix multiplies)."""
    weights, scales = {}, {}
    for name, tensor in checkpoint.items():
        if name.endswith(QUANT_EXTRAS):
            continue
        suffix = next((s for s in SCALE_SUFFIXES if name.endswith(s)), None)
        if suffix is not None:  # the layer's name is its weight's, less ".weight"
            scales[rename(name.removesuffix(suffix) + ".weight").removesuffix(".weight")] = tensor
        else:
            weights[rename(name)] = tensor
    return weights, scales


def _build(cls: type, config: dict[str, Any]) -> torch.nn.Module:
    with empty_weights():
        return cls.from_config(config)


def _fill(model: torch.nn.Module, weights: dict[str, torch.Tensor], scales: dict[str, torch.Tensor],
          dtype: torch.dtype, part: FilePart) -> torch.nn.Module:
    weights, scales = cast_keeping_float8(model, weights, scales, dtype)
    kept = keep_float8(assign(model, aligned(weights), part.path), scales, dtype)
    if kept:
        log.info("%s: %s keeps %d layers in float8", part.path.name, type(model).__name__, kept)
    return model


def _prefix(path: Path, mark: str) -> str:
    """The prefix the file puts before a name (``model.diffusion_model.`` or none)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device="cpu") as handle:
        return next((n.removesuffix(mark) for n in handle.keys() if n.endswith(mark)), "")  # noqa: SIM118


# --- components ------------------------------------------------------------------------------------


def load_transformer(part: FilePart, dtype: torch.dtype) -> torch.nn.Module:
    from diffusers import LTX2VideoTransformer3DModel

    prefix = _prefix(part.path, "audio_patchify_proj.weight")
    others = (*CONNECTOR_PARTS, "text_embedding_projection.") if prefix else (
        *CONNECTOR_PARTS, *SECTIONS.values(), "text_embedding_projection.")

    def keep(name: str) -> bool:
        return name.startswith(prefix) and not name.removeprefix(prefix).startswith(others)

    checkpoint = {n.removeprefix(prefix): t for n, t in read_tensors(part.path, keep).items()}
    weights, scales = split_quant(checkpoint, transformer_name)
    return _fill(_build(LTX2VideoTransformer3DModel, part.config), weights, scales, dtype, part)


def load_connectors(part: FilePart, dtype: torch.dtype) -> torch.nn.Module:
    from diffusers.pipelines.ltx2 import LTX2TextConnectors

    prefix = _prefix(part.path, "audio_patchify_proj.weight")
    wanted = tuple(prefix + p for p in CONNECTOR_PARTS)

    def keep(name: str) -> bool:
        return name.startswith(wanted) or name.removeprefix(prefix) == PROJECTION

    checkpoint = {n.removeprefix(prefix) if n.startswith(prefix) else n: t
                  for n, t in read_tensors(part.path, keep).items()}
    weights, scales = split_quant(checkpoint, connector_name)
    return _fill(_build(LTX2TextConnectors, part.config), weights, scales, dtype, part)


def _section(part: FilePart, prefix: str) -> dict[str, torch.Tensor]:
    """One component of a checkpoint, its prefix taken off (a file of its own may have none)."""
    first = read_tensors(part.path, lambda name: name.startswith(prefix))
    if not first and part.kind == "vae":
        first = {prefix + n: t for n, t in read_tensors(part.path, lambda name: True).items()}
    # latent statistics the modules do not keep (the per-channel std of means is all they use)
    return {n.removeprefix(prefix): t for n, t in first.items()
            if not n.removeprefix(prefix).startswith(STATISTICS) or n.endswith(("-of-means",))}


def _widened(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Convolutions and norms have no float8 path: a float8 tensor (rare in a VAE) is widened."""
    for name, tensor in state.items():
        if is_float8(tensor.dtype):
            state[name] = tensor.float()
    return state


def load_vae(part: FilePart, dtype: torch.dtype) -> torch.nn.Module:
    from diffusers import AutoencoderKLLTX2Video

    model = _build(AutoencoderKLLTX2Video, part.config)
    down_blocks = len(model.encoder.down_blocks)
    state = _widened({vae_name(n, down_blocks): t for n, t in _section(part, SECTIONS["vae"]).items()})
    return _fill(model, state, {}, dtype, part)


def load_audio_vae(part: FilePart, dtype: torch.dtype) -> torch.nn.Module:
    from diffusers import AutoencoderKLLTX2Audio

    state = _widened({audio_vae_name(n): t for n, t in _section(part, SECTIONS["audio_vae"]).items()})
    return _fill(_build(AutoencoderKLLTX2Audio, part.config), state, {}, dtype, part)


def load_vocoder(part: FilePart, dtype: torch.dtype) -> torch.nn.Module:
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder

    state = _widened({vocoder_name(n): t for n, t in _section(part, SECTIONS["vocoder"]).items()})
    return _fill(_build(LTX2Vocoder, part.config), state, {}, dtype, part)


def load_text_encoder(part: FilePart, dtype: torch.dtype) -> tuple[torch.nn.Module, bytes | None]:
    """Gemma 3 (the class the pipeline holds, vision tower included), and the sentencepiece model
    ComfyUI embeds in the file. A tower the file left out is built as zeros: LTX-2 reads text only."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    checkpoint = read_tensors(part.path, lambda name: True)
    spiece = checkpoint.pop("spiece_model", None)
    mark = "model.layers.0.self_attn.q_norm.weight"
    prefix = next(n for n in checkpoint if n.endswith(mark)).removesuffix(mark)
    with empty_weights():
        model = Gemma3ForConditionalGeneration(Gemma3Config.from_dict(part.config))
    vision = _vision_prefix(model)
    weights, scales = split_quant({n.removeprefix(prefix): t for n, t in checkpoint.items()
                                   if n.startswith(prefix)}, lambda name: gemma_name(name, vision))
    _zeros_for_missing_tower(model, weights, part)
    weights, scales = cast_keeping_float8(model, weights, scales, dtype)
    try:  # not strict: the head is not in the file (it is the embedding, tied below)
        result = model.load_state_dict(aligned(weights), strict=False, assign=True)
    except RuntimeError as exc:
        raise ModelError(f"{part.path.name} does not fit the model its header describes: {exc}") from exc
    _check_loaded(model, result.unexpected_keys, part)
    model.get_output_embeddings().weight = model.get_input_embeddings().weight
    keep_float8(model.eval(), scales, dtype)
    return model, bytes(spiece.numpy().tobytes()) if spiece is not None else None


def _vision_prefix(model: torch.nn.Module) -> str:
    mark = "embeddings.patch_embedding.weight"
    return next(n for n, _ in model.named_parameters() if n.endswith(mark)).removesuffix(mark)


def _zeros_for_missing_tower(model: torch.nn.Module, weights: dict[str, torch.Tensor],
                             part: FilePart) -> None:
    vision = _vision_prefix(model)
    if any(name.startswith(vision) for name in weights):
        return
    log.info("%s has no vision tower: built as zeros (LTX-2 encodes text only)", part.path.name)
    for name, param in model.named_parameters():
        if name.startswith((vision, "model.multi_modal_projector.")):
            weights[name] = torch.zeros(param.shape, dtype=torch.float32)


def _check_loaded(model: torch.nn.Module, unexpected: list[str], part: FilePart) -> None:
    """Every parameter came from the file (but the tied head), and every tensor found its place."""
    missing = [n for n, p in model.named_parameters() if p.is_meta and n != "lm_head.weight"]
    if missing or unexpected:
        raise ModelError(f"{part.path.name} does not fit Gemma 3: {len(missing)} tensors missing "
                         f"{missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}")


# --- the tokenizer ---------------------------------------------------------------------------------


def tokenizer_from_spiece(model_proto: bytes) -> Any:
    """Gemma's tokenizer from its sentencepiece model (what ComfyUI embeds), as transformers
    converts one: the pieces with their ids, merges rebuilt from the piece scores, byte fallback;
    control and user-defined pieces as added tokens. Needs protobuf, not sentencepiece."""
    from tokenizers import AddedToken
    from transformers import GemmaTokenizer
    from transformers.convert_slow_tokenizer import import_protobuf
    from transformers.tokenization_utils_base import generate_merges

    proto = import_protobuf().ModelProto()
    try:
        proto.ParseFromString(model_proto)
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError; named here
        raise ModelError(f"the embedded tokenizer is not a sentencepiece model: {exc}") from exc
    spec = proto.trainer_spec
    names = {role: proto.pieces[i].piece for role, i in
             (("pad_token", spec.pad_id), ("eos_token", spec.eos_id), ("bos_token", spec.bos_id),
              ("unk_token", spec.unk_id)) if 0 <= i < len(proto.pieces)}
    vocab = {piece.piece: index for index, piece in enumerate(proto.pieces)}
    scores = {piece.piece: (0.0 if piece.piece in names.values() else piece.score) for piece in proto.pieces}
    extra = [AddedToken(p.piece, special=p.type == 3, normalized=False) for p in proto.pieces
             if p.type in (3, 4) and p.piece not in names.values()]
    tokenizer = GemmaTokenizer(vocab=vocab, merges=generate_merges(vocab, scores),
                               model_max_length=TEXT_TOKENS, add_bos_token=True, add_eos_token=False, **names)
    if extra:
        tokenizer.add_tokens(extra)
    return tokenizer


def tokenizer_folder(roots: Iterable[Path]) -> Path | None:
    """The first ``<root>/gemma-3-12b-it`` holding a tokenizer."""
    return tokenizer_in(roots, (TOKENIZER_FOLDER,), (("tokenizer.json",), ("tokenizer.model",)))


def check_tokenizer(embedded: bool, roots: Iterable[Path], allow_download: bool) -> None:
    """Refuse, before any weight loads, a Gemma file whose tokenizer is nowhere to be had."""
    roots = list(roots)
    if not (embedded or allow_download or tokenizer_folder(roots) is not None):
        refuse_missing_tokenizer(
            roots, TOKENIZER_FOLDER,
            "the Gemma 3 file carries no tokenizer (ComfyUI's gemma_3_12B_it files do)",
            f"Gemma 3's tokenizer.json (from the tokenizer folder of {TOKENIZER_HUB_ID}, or "
            "google/gemma-3-12b-it)")


def find_tokenizer(spiece: bytes | None, roots: Iterable[Path], allow_download: bool) -> tuple[Any, str]:
    """The tokenizer and where it came from: embedded in the file, else a tokenizer folder under one
    of ``roots``, else the hub if downloads are allowed."""
    from transformers import GemmaTokenizer

    if spiece is not None:
        return tokenizer_from_spiece(spiece), "the tokenizer embedded in the text encoder file"
    roots = list(roots)
    folder = tokenizer_folder(roots)
    if folder is not None:
        if (folder / "tokenizer.json").is_file():
            tokenizer = GemmaTokenizer.from_pretrained(str(folder), local_files_only=True)
        else:  # the sentencepiece model alone, read as the embedded one is
            tokenizer = tokenizer_from_spiece((folder / "tokenizer.model").read_bytes())
        return tokenizer, f"the tokenizer in {folder}"
    check_tokenizer(False, roots, allow_download)  # refuses unless downloads are allowed
    tokenizer = GemmaTokenizer.from_pretrained(TOKENIZER_HUB_ID, subfolder=TOKENIZER_SUBFOLDER)
    return tokenizer, f"{TOKENIZER_HUB_ID}'s tokenizer (downloaded)"


# --- the pipeline ----------------------------------------------------------------------------------


def load_pipeline(files: FileSet, spec: LoadSpec, tokenizer_roots: Iterable[Path], allow_download: bool,
                  settle: Callable[[torch.nn.Module], None]) -> tuple[Any, str]:
    """The stock LTX2ImageToVideoPipeline from single files, and a note for the report. The
    tokenizer is found first: a missing one is refused before any weight is read."""
    from diffusers import FlowMatchEulerDiscreteScheduler, LTX2ImageToVideoPipeline

    parts = files.parts
    check_tokenizer(parts["text_encoder"].tokenizer, tokenizer_roots, allow_download)
    transformer = load_transformer(parts["transformer"], spec.dtype)
    settle(transformer)
    text_encoder, spiece = load_text_encoder(parts["text_encoder"], spec.dtype)
    tokenizer, note = find_tokenizer(spiece, tokenizer_roots, allow_download)
    pipe = LTX2ImageToVideoPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**files.configs["scheduler"]),
        vae=load_vae(parts["vae"], spec.vae_dtype),
        audio_vae=load_audio_vae(parts["audio_vae"], spec.dtype),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        connectors=load_connectors(parts["connectors"], spec.dtype),
        transformer=transformer,
        vocoder=load_vocoder(parts["vocoder"], spec.dtype),
    )
    return pipe, f"tokenizer: {note}"
