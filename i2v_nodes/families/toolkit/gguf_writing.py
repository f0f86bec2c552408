"""GGUF files written as ComfyUI-GGUF's tools write them: the tiny models' transformers for tests, and
stand-ins of published GGUFs (the header, and the data a sparse hole) to plan with.

Which tensor gets which type follows city96's tools: ``tools/convert.py`` keeps 1-D, small
(<= 1024 weights), high-precision and 5-D tensors in F32 and the rest as their source (F16 / BF16);
the patched ``llama-quantize`` (``tools/lcpp.patch``) then quantises every eligible matrix to the
file type's base type, with its K_M rules (attention ``.v.weight`` and ``ffn.2`` one step up), and
falls back to F16 where a row does not fill whole blocks. Streamed: one tensor's bytes at a time.

``gguf`` 0.19 quantises Q8_0, Q5_0, Q4_0 and the float types but not the K-quants
(``gguf.quants.quantize`` raises for them): :func:`random_blocks` writes random K-quant blocks with
small finite scales, for random-weight files that still run.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

# file type -> (base type, attention .v.weight, ffn.2): city96's lcpp.patch rules; "Q5_K/Q4_K" is
# Q5_K for the first two attention .v.weight matrices, Q4_K for the rest
FILE_TYPES = {
    "Q8_0": ("Q8_0", "Q8_0", "Q8_0"),
    "Q6_K": ("Q6_K", "Q6_K", "Q6_K"),
    "Q5_K_M": ("Q5_K", "Q6_K", "Q6_K"),
    "Q5_K_S": ("Q5_K", "Q5_K", "Q5_K"),
    "Q4_K_M": ("Q4_K", "Q6_K", "Q6_K"),
    "Q4_K_S": ("Q4_K", "Q5_K/Q4_K", "Q5_K"),
    "Q3_K_M": ("Q3_K", "Q5_K/Q4_K", "Q4_K"),
    "Q5_0": ("Q5_0", "Q5_0", "Q5_1"),
    "Q4_0": ("Q4_0", "Q4_0", "Q4_1"),
}
V_NAMES, FFN_DOWN = (".v.weight", ".to_v.weight", "attn_v.weight"), (".ffn.2.weight", ".ff.net.2.weight")
SMALL = 1024  # convert.py keeps tensors of at most this many weights in F32
# byte offsets of the fp16 scales in one block of each type (ggml's block layouts)
SCALES = {"Q8_0": (0,), "Q4_0": (0,), "Q5_0": (0,), "Q4_1": (0, 2), "Q5_1": (0, 2), "Q2_K": (80, 82),
          "Q3_K": (108,), "Q4_K": (0, 2), "Q5_K": (0, 2), "Q6_K": (208,), "IQ4_NL": (0,), "IQ4_XS": (0,)}
# the largest factor a block's scale is multiplied by (its sub-scales times its quant values)
REACH = {"Q8_0": 127, "Q4_0": 8, "Q5_0": 16, "Q4_1": 15, "Q5_1": 31, "Q2_K": 45, "Q3_K": 128, "Q4_K": 945,
         "Q5_K": 1953, "Q6_K": 4096, "IQ4_NL": 127, "IQ4_XS": 4064}

Tensors = dict[str, tuple[str, tuple[int, ...]]]  # name -> (GGUF type, shape in torch's order)


def tensor_types(shapes: dict[str, tuple[int, ...]], file_type: str, unquantised: Iterable[str] = (),
                 high_precision: Iterable[str] = (), source: str = "F16") -> Tensors:
    """Each tensor's type in a ``file_type`` file converted from ``source`` (F16 / BF16) weights:
    ``unquantised`` name parts are never quantised (llama-quantize's per-architecture list),
    ``high_precision`` ones are kept in F32 (convert.py's list)."""
    base, v_type, ffn_type = FILE_TYPES[file_type]
    unquantised, high_precision = tuple(unquantised), tuple(high_precision)
    out: Tensors = {}
    v_seen = 0
    for name, shape in shapes.items():
        kept = len(shape) <= 1 or len(shape) > 4 or math.prod(shape) <= SMALL or \
            any(part in name for part in high_precision)
        kind = "F32" if kept else source
        if not kept and len(shape) >= 2 and not any(part in name for part in unquantised):
            kind = base
            if name.endswith(V_NAMES):
                kind = v_type.split("/")[0 if v_seen < 2 else -1]
                v_seen += 1
            elif name.endswith(FFN_DOWN):
                kind = ffn_type
            if shape[-1] % block_size(kind):  # rows must fill whole blocks
                kind = "F16"
        out[name] = (kind, tuple(shape))
    return out


def block_size(kind: str) -> int:
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    return GGML_QUANT_SIZES[GGMLQuantizationType[kind]][0]


def stored_shape(kind: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of a tensor's bytes as GGUF stores them (rows of blocks for quantised types)."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    size, type_size = GGML_QUANT_SIZES[GGMLQuantizationType[kind]]
    return (*shape[:-1], shape[-1] // size * type_size)


def quantised(values: np.ndarray, kind: str) -> np.ndarray:
    """``values`` (float32) in GGUF type ``kind`` as ``gguf.quants`` quantises it (F32, F16, BF16,
    Q8_0, Q5_0, Q4_0, ...; not the K-quants)."""
    from gguf import GGMLQuantizationType
    from gguf.quants import quantize

    return quantize(np.ascontiguousarray(values, dtype=np.float32), GGMLQuantizationType[kind])


def random_blocks(kind: str, shape: tuple[int, ...], rng: np.random.Generator,
                  reach: float = 0.1) -> np.ndarray:
    """Random blocks of a quantised type whose weights stay within about ``reach``: random bytes,
    and every fp16 scale set to ``reach`` over the block's largest factor."""
    raw = rng.integers(0, 256, size=stored_shape(kind, shape), dtype=np.uint8)
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    blocks = raw.reshape(-1, GGML_QUANT_SIZES[GGMLQuantizationType[kind]][1])
    scale = np.frombuffer(np.float16(reach / REACH[kind]).tobytes(), dtype=np.uint8)
    for offset in SCALES[kind]:
        blocks[:, offset:offset + 2] = scale
    return raw


def write_gguf(path: Path, tensors: Tensors, architecture: str, file_type: str,
               data: Callable[[str, str, tuple[int, ...]], np.ndarray] | None = None,
               metadata: dict[str, str] | None = None) -> Path:
    """Write a GGUF file atomically, never over one already there: ``tensors`` in this order, each
    one's bytes from ``data(name, type, shape)`` (streamed); without ``data``, a stand-in whose
    tensor data is a sparse hole of zeros (the header is whole, the file its full size)."""
    from gguf import GGMLQuantizationType, GGUFWriter, LlamaFileType

    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = GGUFWriter(None, arch=architecture)
    writer.add_quantization_version(2)
    writer.add_file_type(LlamaFileType["ALL_F32" if file_type == "F32" else "MOSTLY_" + file_type])
    for key, value in (metadata or {}).items():
        writer.add_string(key, value)
    for name, (kind, shape) in tensors.items():
        if kind in ("F32", "F16"):
            item, nbytes = np.dtype(np.float32 if kind == "F32" else np.float16), math.prod(shape) * (
                4 if kind == "F32" else 2)
            writer.add_tensor_info(name, shape, item, nbytes)
        else:
            raw = stored_shape(kind, shape)
            writer.add_tensor_info(name, raw, np.dtype(np.uint8), math.prod(raw), GGMLQuantizationType[kind])
    fd, staging = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    os.close(fd)
    try:
        _write(writer, Path(staging), tensors, data)
        os.replace(staging, path)
    finally:
        if os.path.exists(staging):
            os.unlink(staging)
    return path


def _write(writer: Any, staging: Path, tensors: Tensors, data: Callable | None) -> None:
    writer.write_header_to_file(staging)
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    if data is None:
        start = writer.ggml_pad(writer.fout[0].tell(), writer.data_alignment)
        total = sum(writer.ggml_pad(ti.nbytes, writer.data_alignment) for ti in writer.tensors[0].values())
        writer.close()
        os.truncate(staging, start + total)
        return
    for name, (kind, shape) in tensors.items():
        writer.write_tensor_data(np.ascontiguousarray(data(name, kind, shape)))
    writer.close()
