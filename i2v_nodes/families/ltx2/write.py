"""LTX-2 pipelines written as ComfyUI's single files: the tiny model's files for tests and trials.

The layout is that of the files ComfyUI loads (see :mod:`.ltx2_files`): one checkpoint in
``checkpoints`` with the transformer and the text connectors under ``model.diffusion_model.`` (the
connectors' input projection at the top), the video VAE under ``vae.``, the audio VAE under
``audio_vae.`` and the vocoder under ``vocoder.``, all in Lightricks' key names; and Gemma 3 in
``text_encoders`` in ComfyUI's names with its tokenizer embedded as a sentencepiece model
(``spiece_model``), as ComfyUI's own Gemma file carries it. ``fmt`` applies to the transformer (fp8
formats to its matrices, the rest bf16) and, as a half format, to the whole checkpoint; fp8 formats
leave the checkpoint's other parts in bf16. Each file carries its components' configs in its
``diffusers_config`` metadata, for the settings no shape shows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from i2v_nodes.families.contract.files import FILE_FOLDERS, FILE_FORMATS
from i2v_nodes.families.ltx2.files import PROJECTION
from i2v_nodes.families.ltx2.keys import (
    audio_vae_name,
    connector_name,
    gemma_name,
    transformer_name,
    vae_name,
    vocoder_name,
)
from i2v_nodes.families.toolkit.file_writing import (
    CHECKPOINTS,
    component_config,
    linear_weights,
    save_with_configs,
    to_format,
)
from i2v_nodes.lazy import torch

TRANSFORMER = "model.diffusion_model."
BYTE_PIECE, CONTROL, UNKNOWN, NORMAL = 6, 3, 2, 1  # sentencepiece piece types
BPE = 2  # sentencepiece model type


def write_files(pipe: Any, models_dir: Path, stem: str, fmt: str = "fp32") -> dict[str, Path]:
    """Write an LTX-2 pipeline as ComfyUI's single files under ``models_dir``; returns the file of
    each loader slot (the checkpoint as ``diffusion_model``, Gemma as ``text_encoder``)."""
    if fmt not in FILE_FORMATS:
        raise ValueError(f"format must be one of {FILE_FORMATS}, got {fmt!r}")
    rest = fmt if fmt in ("fp32", "bf16", "fp16") else "bf16"  # what the non-transformer parts are stored in
    checkpoint: dict[str, torch.Tensor] = {}
    checkpoint.update(_transformer(pipe.transformer, fmt))
    checkpoint.update(_connectors(pipe.connectors, rest))
    down_blocks = len(pipe.vae.encoder.down_blocks)
    for prefix, module, rename in (
        ("vae.", pipe.vae, lambda k: vae_name(k, down_blocks, reverse=True)),
        ("audio_vae.", pipe.audio_vae, lambda k: audio_vae_name(k, reverse=True)),
        ("vocoder.", pipe.vocoder, lambda k: vocoder_name(k, reverse=True)),
    ):
        state = to_format({rename(k): v for k, v in module.state_dict().items()}, rest, set())
        checkpoint.update({prefix + k: v for k, v in state.items()})
    roles = ("transformer", "connectors", "vae", "audio_vae", "vocoder")
    metadata = {role: component_config(getattr(pipe, role)) for role in roles}
    checkpoint_path = models_dir / CHECKPOINTS / f"{stem}_{fmt}.safetensors"
    files = {"diffusion_model": save_with_configs(checkpoint_path, checkpoint, metadata)}
    files["text_encoder"] = save_with_configs(
        models_dir / FILE_FOLDERS["text_encoder"] / f"{stem}_gemma3_{fmt}.safetensors",
        _gemma(pipe.text_encoder, pipe.tokenizer, fmt),
        {"text_encoder": component_config(pipe.text_encoder)},
    )
    return files




def _transformer(module: torch.nn.Module, fmt: str) -> dict[str, torch.Tensor]:
    rename = lambda k: transformer_name(k, reverse=True)  # noqa: E731 - a short local renamer
    state = {rename(k): v for k, v in module.state_dict().items()}
    state = to_format(state, fmt, linear_weights(module, rename))
    return {TRANSFORMER + k: v for k, v in state.items()}


def _connectors(module: torch.nn.Module, fmt: str) -> dict[str, torch.Tensor]:
    out = {}
    state = to_format(dict(module.state_dict()), fmt, set())
    for name, tensor in state.items():
        original = connector_name(name, reverse=True)
        out[original if original == PROJECTION else TRANSFORMER + original] = tensor
    return out


def _gemma(model: torch.nn.Module, tokenizer: Any, fmt: str) -> dict[str, torch.Tensor]:
    """Gemma in ComfyUI's names: the language model's head is its embedding (tied), saved once."""
    vision = _vision_prefix(model)
    rename = lambda k: gemma_name(k, vision, reverse=True)  # noqa: E731 - a short local renamer
    state = {rename(k): v for k, v in model.state_dict().items() if k != "lm_head.weight"}
    state = to_format(state, fmt, linear_weights(model, rename) - {"lm_head.weight"})
    state["spiece_model"] = torch.frombuffer(bytearray(spiece_bytes(tokenizer)), dtype=torch.uint8)
    return state


def _vision_prefix(model: torch.nn.Module) -> str:
    """The SigLIP tower's prefix in this transformers version's names (4 and 5 differ)."""
    mark = "embeddings.patch_embedding.weight"
    return next(name for name in model.state_dict() if name.endswith(mark)).removesuffix(mark)


def spiece_bytes(tokenizer: Any) -> bytes:
    """A sentencepiece BPE model of a Gemma tokenizer (byte fallback), as ComfyUI embeds Gemma's.

    Pieces keep their ids; a merged piece scores by the rank of the merge that makes it (first
    merges highest), so the merges rebuilt from the scores are those of the tokenizer.
    """
    from transformers.convert_slow_tokenizer import import_protobuf

    model = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    rank = {"".join(pair if isinstance(pair, list) else pair.split(" ")): i
            for i, pair in enumerate(model["merges"])}
    control = {tokenizer.pad_token, tokenizer.eos_token, tokenizer.bos_token, tokenizer.mask_token}
    proto = import_protobuf().ModelProto()
    for piece, _index in sorted(model["vocab"].items(), key=lambda item: item[1]):
        entry = proto.pieces.add()
        entry.piece, entry.score = piece, -1.0 - rank[piece] if piece in rank else 0.0
        entry.type = (CONTROL if piece in control else UNKNOWN if piece == tokenizer.unk_token
                      else BYTE_PIECE if piece.startswith("<0x") and len(piece) == 6 else NORMAL)
    spec = proto.trainer_spec
    spec.model_type, spec.byte_fallback = BPE, True
    spec.unk_id, spec.bos_id = tokenizer.unk_token_id, tokenizer.bos_token_id
    spec.eos_id, spec.pad_id = tokenizer.eos_token_id, tokenizer.pad_token_id
    proto.normalizer_spec.name = "identity"
    proto.normalizer_spec.add_dummy_prefix = False  # Gemma adds no prefix space
    return proto.SerializeToString()
