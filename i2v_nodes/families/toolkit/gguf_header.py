"""What a GGUF file holds, from its header alone: tensor names, shapes, quantisation types, stored
sizes and metadata (``general.architecture``, ``general.file_type``).

ComfyUI-GGUF's files (city96's and QuantStack's Wan, LTX-Video, ... GGUFs, in ComfyUI's ``unet`` or
``diffusion_models`` folder) keep the original model's key names and shapes, with the weight
matrices quantised into blocks (``Q8_0``, ``Q4_K``, ...) and the rest in F32 / F16 / BF16. The
``gguf`` package's reader maps the file and reads only its header: no tensor data is copied, so a
10 GB expert is described in a fraction of a second. The result is the same :class:`Header` a
safetensors file gives (``container`` "gguf", each tensor's ``dtype`` its GGUF type and ``stored``
its bytes), so a family reads both with the same key and shape helpers.

What the pack can compute from (:data:`READABLE`) is what diffusers' GGUF layers dequantise, plus
the plain F32 / F16 tensors; a file with any other type is refused before loading, naming the file,
its type and what is read.
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from i2v_nodes.errors import ModelError
from i2v_nodes.families.toolkit.safetensors_header import Header, TensorInfo

MAGIC = b"GGUF"
ARCHITECTURE = "general.architecture"
FILE_TYPE = "general.file_type"
ORIG_SHAPE = "comfy.gguf.orig_shape."  # ComfyUI-GGUF's key for a tensor reshaped to quantise it
PLAIN = ("F32", "F16")  # ordinary tensors
# block-quantised types diffusers' GGUF layers dequantise: their matrices stay quantised in memory
BLOCKS = ("Q8_0", "Q6_K", "Q5_K", "Q5_1", "Q5_0", "Q4_K", "Q4_1", "Q4_0", "Q3_K", "Q2_K", "IQ4_XS", "IQ4_NL")
# every type the pack computes from: diffusers' SUPPORTED_GGUF_QUANT_TYPES (BF16 and the blocks; a test
# keeps them equal) and the plain ones. BF16 is dequantised at load like the plain ones: as bf16 it is
# no smaller than the compute dtype, and dequantising it per call would cost 10 bytes a weight.
READABLE = (*PLAIN, "BF16", *BLOCKS)
# the file types (llama.cpp's names, general.file_type) made of those tensor types, for messages
READABLE_FILE_TYPES = ("Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q4_K_M", "Q4_K_S", "Q3_K_L", "Q3_K_M", "Q3_K_S",
                       "Q2_K", "Q5_1", "Q5_0", "Q4_1", "Q4_0", "IQ4_XS", "IQ4_NL", "BF16", "F16", "F32")
# Peak bytes per weight of dequantising one matrix and casting it to the compute dtype (the largest
# over bf16, fp16 and fp32), by block type: diffusers' dequantisation traced on the meta device
# (runtime.memory.trace), as tests/test_gguf.py does again to keep this table honest.
DEQUANTISE_PEAK = {"Q8_0": 6.0, "Q6_K": 6.0, "Q5_K": 7.1875, "Q5_1": 10.0, "Q5_0": 10.0, "Q4_K": 6.0,
                   "Q4_1": 6.0, "Q4_0": 6.0, "Q3_K": 6.0, "Q2_K": 6.0, "IQ4_XS": 12.21875, "IQ4_NL": 12.0}


def is_gguf(path: str | os.PathLike) -> bool:
    """Whether the file starts with GGUF's magic (whatever its name says)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == MAGIC
    except OSError:
        return False


def read_gguf_header(path: str | os.PathLike) -> Header:
    """The header of a GGUF file; remembered until the file changes. A file cut short, or that is no
    GGUF, is a ModelError naming it."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
    return _read(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _read(path: Path, size: int, mtime_ns: int) -> Header:
    from gguf import GGUFReader

    try:
        reader = GGUFReader(path, "r")
    except (ValueError, KeyError, IndexError, TypeError, OverflowError, OSError) as exc:
        # the reader slices its map as far as the header says; a file cut short ends the slice early
        raise ModelError(f"{path} is truncated or is not a GGUF file (its {size} bytes do not hold what its "
                         f"header describes: {exc}); fetch the file again") from exc
    metadata = _metadata(reader)
    tensors = {}
    end = 0
    for tensor in reader.tensors:
        original = metadata.get(ORIG_SHAPE + tensor.name)
        shape = tuple(json.loads(original)) if original else tuple(int(d) for d in reversed(tensor.shape))
        tensors[tensor.name] = TensorInfo(tensor.tensor_type.name, shape, int(tensor.n_bytes))
        end = max(end, int(tensor.data_offset) + int(tensor.n_bytes))
    if end > size:
        raise ModelError(f"{path} is truncated: its header describes {end} bytes, the file has {size}; "
                         "fetch the file again")
    del reader  # its map closes with it: the header is plain data
    return Header(path, tensors, metadata, size, mtime_ns, container="gguf")


def _metadata(reader: Any) -> dict[str, str]:
    """Scalar and string fields as text, integer arrays as JSON lists; other arrays (an LLM's
    vocabulary) are left out."""
    from gguf import GGUFValueType

    out: dict[str, str] = {}
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or not field.types:
            continue
        kind = field.types[0]
        if kind == GGUFValueType.STRING:
            out[name] = bytes(field.parts[field.data[-1]]).decode("utf-8", errors="replace")
        elif kind == GGUFValueType.ARRAY:
            if len(field.types) == 2 and field.types[1] not in (GGUFValueType.STRING, GGUFValueType.ARRAY):
                out[name] = json.dumps([field.parts[i].tolist()[0] for i in field.data])
        else:
            out[name] = str(field.parts[field.data[-1]].tolist()[0])
    return out


def architecture(header: Header) -> str:
    """``general.architecture`` ("wan", "ltxv", "flux", ...); "" where the file names none."""
    return header.metadata.get(ARCHITECTURE, "")


def file_type(header: Header) -> str:
    """How the file is quantised, in llama.cpp's names ("Q4_K_M"): its ``general.file_type``, else
    the name's (``...-Q4_K_M.gguf``), else its commonest matrix type."""
    from gguf import LlamaFileType

    code = header.metadata.get(FILE_TYPE, "")
    try:
        known = LlamaFileType(int(code)) if code.isdigit() else LlamaFileType.GUESSED
    except ValueError:  # a type newer than this gguf package
        known = LlamaFileType.GUESSED
    if known != LlamaFileType.GUESSED:
        return known.name.removeprefix("MOSTLY_").removeprefix("ALL_")
    named = re.search(r"(?<![A-Za-z0-9])((?:I?Q\d(?:_[A-Z0-9]+)*)|BF16|F16|F32)(?![A-Za-z0-9])",
                      header.path.stem, re.IGNORECASE)
    if named:
        return named.group(1).upper()
    counts: dict[str, int] = {}
    for tensor in header.tensors.values():
        if len(tensor.shape) == 2:
            counts[tensor.dtype] = counts.get(tensor.dtype, 0) + tensor.numel
    return max(counts, key=counts.get) if counts else "F32"


def gguf_format(header: Header) -> str:
    """The FilePart format of a GGUF file ("gguf-Q4_K_M"), once every tensor type in it is one the
    pack computes from; else a ModelError naming the file, its type and what is read."""
    unreadable = sorted({t.dtype for t in header.tensors.values() if t.dtype not in READABLE})
    kind = file_type(header)
    if unreadable:
        raise ModelError(
            f"{header.path.name} is a GGUF file of type {kind} whose tensors are stored as "
            f"{', '.join(unreadable)}, which this pack cannot compute from; it reads GGUF files of the "
            f"types {', '.join(READABLE_FILE_TYPES)} (tensor types {', '.join(READABLE)})"
        )
    return "gguf-" + kind


@dataclass(frozen=True)
class GGUFWeights:
    """How a GGUF transformer's weights sit in memory once loaded: the matrices that stay quantised
    (dequantised one at a time as each layer runs), the parts dequantised to fp32 at load, the
    rest cast to the compute dtype."""

    file_type: str  # "Q4_K_M"
    stored_bytes: int  # bytes of the matrices that stay quantised
    stored_params: int  # their weights
    fp32_params: int  # weights dequantised to fp32 at load (the parts the model class keeps in fp32)
    dequantise_peak: int  # bytes of dequantising the costliest single matrix (DEQUANTISE_PEAK)

    def loaded_bytes(self, params: int, bytes_per_element: int) -> int:
        """Bytes of all ``params`` weights once loaded in a compute dtype of ``bytes_per_element``."""
        rest = params - self.stored_params - self.fp32_params
        return self.stored_bytes + 4 * self.fp32_params + bytes_per_element * rest


def gguf_weights(header: Header, fp32: tuple[str, ...] = ()) -> GGUFWeights | None:
    """How a GGUF file's weights load (None for a safetensors header): every block-quantised 2-D
    ``.weight`` (a Linear's) stays quantised, except in the parts ``fp32`` names (dequantised to fp32
    at load, as the model class keeps them); everything else loads in the compute dtype."""
    if header.container != "gguf":
        return None
    stored = kept = peak = fp32_params = 0
    for name, tensor in header.tensors.items():
        if any(part in name for part in fp32):
            fp32_params += tensor.numel
        elif tensor.dtype in BLOCKS and len(tensor.shape) == 2 and name.endswith(".weight"):
            stored += tensor.nbytes
            kept += tensor.numel
            peak = max(peak, int(tensor.numel * DEQUANTISE_PEAK[tensor.dtype]))
    return GGUFWeights(file_type(header), stored, kept, fp32_params, peak)
