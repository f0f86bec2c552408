"""What a safetensors file holds, from its header alone: tensor names, shapes, dtypes and metadata.

No tensor data is read, so a 28 GB checkpoint is described in milliseconds, and a file that is
not safetensors (or is cut short) is a clear error before any load starts.
"""

from __future__ import annotations

import functools
import json
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from i2v_nodes.errors import ModelError

MAX_HEADER = 100_000_000  # bytes; the format's own limit
# safetensors dtype names -> bytes per element
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I64": 8, "I32": 4,
               "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


@dataclass(frozen=True)
class TensorInfo:
    dtype: str  # safetensors' name: "BF16", "F8_E4M3", ...
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Header:
    path: Path
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str] = field(default_factory=dict)
    size: int = 0  # file size in bytes
    mtime_ns: int = 0

    def has(self, name: str) -> bool:
        return name in self.tensors

    def shape(self, name: str) -> tuple[int, ...]:
        return self.tensors[name].shape

    @property
    def numel(self) -> int:
        return sum(t.numel for t in self.tensors.values())

    def dtypes(self) -> dict[str, int]:
        """Elements per dtype."""
        counts: dict[str, int] = {}
        for tensor in self.tensors.values():
            counts[tensor.dtype] = counts.get(tensor.dtype, 0) + tensor.numel
        return counts

    @property
    def identity(self) -> tuple[str, int, int]:
        """What identifies this file in a cache key: its path, size and modification time."""
        return str(self.path), self.size, self.mtime_ns


def read_header(path: str | os.PathLike) -> Header:
    """The header of a safetensors file; remembered until the file changes."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
    return _read(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=128)
def _read(path: Path, size: int, mtime_ns: int) -> Header:
    with open(path, "rb") as fh:
        raw = fh.read(8)
        if len(raw) != 8:
            raise ModelError(f"{path} is not a safetensors file (too short)")
        (length,) = struct.unpack("<Q", raw)
        if length > MAX_HEADER or length > size - 8:
            raise ModelError(f"{path} is not a safetensors file (header length {length})")
        try:
            header = json.loads(fh.read(length))
        except ValueError as exc:
            raise ModelError(f"{path} has a corrupt safetensors header: {exc}") from exc
    if not isinstance(header, dict):
        raise ModelError(f"{path} has a corrupt safetensors header: not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    try:
        tensors = {name: TensorInfo(str(entry["dtype"]), tuple(int(d) for d in entry["shape"]))
                   for name, entry in header.items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{path} has a corrupt safetensors header: {exc}") from exc
    return Header(path, tensors, {str(k): str(v) for k, v in metadata.items()}, size, mtime_ns)
