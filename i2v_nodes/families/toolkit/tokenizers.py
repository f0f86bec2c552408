"""Tokenizers for single-file text encoders: where to find one on disk, and the refusal when none
can be had."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from i2v_nodes.errors import InputError, ModelError


def tokenizer_in(roots: Iterable[Path], folders: Sequence[str],
                 marks: Sequence[Sequence[str]]) -> Path | None:
    """The first ``<root>/<folder>`` (folders in order of preference) holding a tokenizer: all the
    files of one of ``marks`` (e.g. ``("tokenizer.json",)`` or ``("vocab.json", "merges.txt")``)."""
    roots = list(roots)
    for name in folders:
        for folder in (Path(root) / name for root in roots):
            if any(all((folder / mark).is_file() for mark in files) for files in marks):
                return folder
    return None


def refuse_missing_tokenizer(roots: Iterable[Path], folder: str, problem: str, files: str) -> None:
    """The single-file loaders' refusal, before any weight loads, of a text encoder whose tokenizer
    is nowhere to be had: ``problem`` says why, ``files`` what to put in ``<root>/<folder>``."""
    where = " or ".join(str(Path(root) / folder) for root in roots) or \
        f"a {folder} folder in ComfyUI's text_encoders folder"
    raise InputError("text_encoder",
                     f"{problem}: put {files} in {where}, or turn allow_download on (a few MB)")


def t5_tokenizer_from_spiece(model_proto: bytes, max_length: int) -> Any:
    """A T5 / UMT5 tokenizer from a sentencepiece model's bytes (what ComfyUI embeds in its text
    encoder files): its pieces and scores as a unigram tokenizer, with its normalisation."""
    from tokenizers import normalizers
    from transformers import T5Tokenizer

    pieces, charsmap = spiece_pieces(model_proto)
    tokenizer = T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=max_length)
    if charsmap:
        tokenizer.backend_tokenizer.normalizer = normalizers.Sequence(
            [normalizers.Precompiled(charsmap), normalizers.Replace(" {2,}", " ")]
        )
    return tokenizer


def spiece_pieces(model_proto: bytes) -> tuple[list[tuple[str, float]], bytes]:
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


def unigram_spiece_bytes(tokenizer: Any) -> bytes:
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
