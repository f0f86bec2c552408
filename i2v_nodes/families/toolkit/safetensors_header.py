"""What a safetensors file holds, from its header alone: tensor names, shapes, dtypes and metadata.

No tensor data is read, so a 28 GB checkpoint is described in milliseconds, and a file that is
not safetensors, or is truncated (its tensors end past the end of the file), is a clear error
before any load starts. GGUF files are described by the same :class:`Header` (see :mod:`.gguf_header`).
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
    dtype: str  # safetensors' name: "BF16", "F8_E4M3", ...; in a GGUF file its type: "Q4_K", "F32", ...
    shape: tuple[int, ...]
    stored: int = -1  # bytes in the file; -1: numel times the dtype's size (safetensors)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.stored if self.stored >= 0 else self.numel * DTYPE_BYTES.get(self.dtype, 0)


@dataclass(frozen=True)
class Header:
    path: Path
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str] = field(default_factory=dict)
    size: int = 0  # file size in bytes
    mtime_ns: int = 0
    container: str = "safetensors"  # or "gguf"

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
    def nbytes(self) -> int:
        """Bytes of tensor data (what the weights take as stored)."""
        return sum(t.nbytes for t in self.tensors.values())

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
            raise ModelError(f"{path} is not a safetensors file, or is truncated (header length {length}, "
                             f"file {size} bytes)")
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
        end = max((int(entry["data_offsets"][1]) for entry in header.values()), default=0)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ModelError(f"{path} has a corrupt safetensors header: {exc}") from exc
    if 8 + length + end > size:
        raise ModelError(f"{path} is truncated: its header describes {8 + length + end} bytes, the file has "
                         f"{size} (an interrupted download or copy?); fetch the file again")
    return Header(path, tensors, {str(k): str(v) for k, v in metadata.items()}, size, mtime_ns)
