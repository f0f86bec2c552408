"""ComfyUI's single files read from their headers alone (safetensors or GGUF): how they store weights,
how many weights they hold, repeated blocks, and the configs the pack's own (tiny) files carry in
their metadata."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from typing import Any

from i2v_nodes.errors import ModelError
from i2v_nodes.families.toolkit.gguf_header import gguf_format, is_gguf, read_gguf_header
from i2v_nodes.families.toolkit.safetensors_header import Header, read_header

SCALE_SUFFIXES = (".scale_weight", ".scale_input")
FORMATS = {"F8_E4M3": "fp8_e4m3fn", "BF16": "bf16", "F16": "fp16", "F32": "fp32"}
CONFIG_KEY = "diffusers_config"  # the pack's own metadata: role -> diffusers config (tiny files)


def read_file_header(path: str | os.PathLike) -> Header:
    """The header of a single file: GGUF (told by its magic, whatever its name) or safetensors."""
    return read_gguf_header(path) if is_gguf(path) else read_header(path)


def file_format(header: Header) -> str:
    """bf16 / fp16 / fp32 / fp8_e4m3fn, or ComfyUI's fp8_scaled; a GGUF file's "gguf-<type>"; an
    unreadable format is an error."""
    if header.container == "gguf":
        return gguf_format(header)
    if any(name.endswith("scaled_fp8") or name.endswith(".scale_weight") for name in header.tensors):
        return "fp8_scaled"
    weights = {}
    for name, tensor in header.tensors.items():
        if len(tensor.shape) >= 2 and name != "spiece_model":
            weights[tensor.dtype] = weights.get(tensor.dtype, 0) + tensor.numel
    if not weights:
        raise ModelError(f"{header.path.name} holds no weight matrices")
    main = max(weights, key=weights.get)
    if main not in FORMATS:
        raise ModelError(
            f"{header.path.name} stores its weights as {main}, a format this pack cannot read; it reads "
            "bf16, fp16, fp32, fp8_e4m3fn and ComfyUI's fp8_scaled files"
        )
    return FORMATS[main]


def weight_params(header: Header, tied: tuple[str, ...] = ()) -> int:
    """Weights only: no fp8 scales, no embedded tokenizer, and a tied tensor saved twice counted once."""
    total = sum(
        t.numel
        for name, t in header.tensors.items()
        if not name.endswith(SCALE_SUFFIXES) and not name.endswith("scaled_fp8") and name != "spiece_model"
    )
    return total - sum(header.tensors[name].numel for name in tied)


def float8_params(header: Header, dequantised: tuple[str, ...] = ()) -> int:
    """Weights that stay float8 once loaded: the Linear matrices stored in float8, except in the
    parts ``dequantised`` names (embedding tables, and the parts the class keeps in fp32)."""
    return _matrix_params(header, lambda dtype: dtype.startswith("F8"), dequantised)


def half_params(header: Header, tables: tuple[str, ...]) -> int:
    """Weights of the embedding tables ``tables`` names (the first one present: tied tables are stored
    once) stored in bf16 or fp16: they stay so once loaded, looked up and then cast."""
    for name in tables:
        if name in header.tensors:
            tensor = header.tensors[name]
            return tensor.numel if tensor.dtype in HALF_DTYPES else 0
    return 0


def half_matrix_params(header: Header, excluded: tuple[str, ...] = ()) -> int:
    """Matrices (2-D weights, outside the parts ``excluded`` names) stored in bf16 or fp16: an encoder
    loaded with ``cast_keeping_float8(keep_half=True)`` keeps them so, cast as each layer runs."""
    return _matrix_params(header, lambda dtype: dtype in HALF_DTYPES, excluded)


HALF_DTYPES = ("BF16", "F16")


def _matrix_params(header: Header, stored: Callable[[str], bool], excluded: tuple[str, ...]) -> int:
    """Weights of the 2-D ``.weight`` tensors whose dtype ``stored`` accepts, outside ``excluded``."""
    return sum(
        t.numel
        for name, t in header.tensors.items()
        if stored(t.dtype)
        and len(t.shape) == 2
        and name.endswith(".weight")
        and not any(part in name for part in excluded)
    )


def count_numbered(header: Header, pattern: str) -> int:
    """How many distinct N a key pattern with one ``(\\d+)`` group has (blocks, layers)."""
    regex = re.compile(pattern)
    return len({m.group(1) for name in header.tensors if (m := regex.match(name))})


def prefix_of(header: Header, suffix: str) -> str | None:
    return next((name[: -len(suffix)] for name in header.tensors if name.endswith(suffix)), None)


def own_config(header: Header, role: str) -> dict[str, Any]:
    """The pack's own config for ``role``, where the file carries one (its tiny files do)."""
    text = header.metadata.get(CONFIG_KEY)
    if not text:
        return {}
    try:
        configs = json.loads(text)
    except ValueError as exc:
        raise ModelError(f"{header.path.name}: its metadata {CONFIG_KEY!r} is not JSON: {exc}") from exc
    config = configs.get(role) if isinstance(configs, dict) else None
    return dict(config) if isinstance(config, dict) else {}


def only(header: Header, names: Iterable[str]) -> Header:
    """The header reduced to some of its tensors (one component of a checkpoint)."""
    keep = set(names)
    return Header(header.path, {n: t for n, t in header.tensors.items() if n in keep}, header.metadata,
                  header.size, header.mtime_ns, header.container)
