"""Header-only stand-ins of published files: a safetensors header with every tensor's name, dtype and
shape and no data written, so recognition, assembly and memory plans are tested on the published
layouts without a download. The file has its full size (the data a hole of zeros, sparse where the
file system allows), so it is not a file cut short."""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path
from typing import Any

from i2v_nodes.families.toolkit.safetensors_header import DTYPE_BYTES

Tensors = dict[str, tuple[str, tuple[int, ...]]]  # name -> (safetensors dtype, shape)


def write_header(path: Path, tensors: Tensors, metadata: dict[str, str] | None = None) -> Path:
    """A safetensors file with this header and its tensor data never written (zeros, sparse)."""
    header: dict[str, Any] = {}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        size = math.prod(shape) * DTYPE_BYTES[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.part")  # whole or not there: others may read it
    staging.write_bytes(struct.pack("<Q", len(raw)) + raw)
    os.truncate(staging, 8 + len(raw) + offset)
    os.replace(staging, path)
    return path


def stored(shapes: dict[str, tuple[int, ...]], fmt: str) -> Tensors:
    """Tensors as a file of this format stores them: the matrices in the format's dtype (with
    ComfyUI's per-tensor scales and marker for fp8_scaled), embeddings and the rest in bf16."""
    dtype = {"bf16": "BF16", "fp16": "F16", "fp8_e4m3fn": "F8_E4M3", "fp8_scaled": "F8_E4M3"}[fmt]
    out: Tensors = {}
    for name, shape in shapes.items():
        matrix = len(shape) == 2 and name.endswith(".weight") and not any(
            part in name for part in ("embed", "shared", "relative_attention_bias")  # embedding tables
        )
        out[name] = (dtype if matrix else "BF16", shape)
        if matrix and fmt == "fp8_scaled":
            out[name.removesuffix(".weight") + ".scale_weight"] = ("F32", ())
    if fmt == "fp8_scaled":
        out["scaled_fp8"] = ("F8_E4M3", (0,))
    return out
