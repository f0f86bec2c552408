"""Wan 2.2 I2V A14B at full published size with random weights, streamed to disk (issue 20, item 7).

Two sets, in ComfyUI's model folders under FOLDER (default /work/bench-files, outside the repo):
- ComfyUI's A14B template set (``stand_ins.TEMPLATE_FILES["wan2.2-i2v-a14b"]``): both 14.4 GB
  fp8_scaled experts in diffusion_models/, UMT5-XXL fp8_scaled in text_encoders/, the Wan 2.1 VAE
  (bf16) in vae/;
- QuantStack's GGUF Q4_K_M experts in unet/ (``stand_ins.GGUF_EXPERTS``), run with the same UMT5 and VAE.

The layouts are the header-only stand-ins' (names, dtypes, shapes, order), so the pack and ComfyUI
read these files as they read the published ones. The data is random but keeps activations finite:
small matrices (about 0.02), unit norms, zero biases; fp8_scaled matrices carry their fp32
``scale_weight`` as ComfyUI's files do; K-quant blocks have small scales and zero mean. UMT5 carries a
small sentencepiece model (ComfyUI's and the pack's tokenizers read it from the file).

Streamed: the header first, then each tensor's bytes in file order, so no whole file is ever in
memory (safetensors tensors go CHUNK values at a time; gguf's writer takes one whole tensor, at most
0.3 GB here); written pages are flushed and dropped from the page cache as they go, so the
machine's cache is not filled either. The script prints
its own peak RSS (VmHWM) at the end to show it. A file already there is kept (delete it to rewrite);
a file is staged under a hidden name and renamed when whole.

About 56 GB of disk: 2 x 14.37 GB + 6.73 GB + 0.25 GB + 2 x ~9.6 GB. To delete them:

    python bench/write_a14b_files.py --delete [FOLDER]     # or: rm -r /work/bench-files

    python bench/write_a14b_files.py [FOLDER] [--sets fp8_scaled gguf]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import struct
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from i2v_nodes.families.contract.files import FILE_FOLDERS, GGUF_FOLDER  # noqa: E402
from i2v_nodes.families.toolkit.float8 import FP8_MAX  # noqa: E402
from i2v_nodes.families.toolkit.gguf_writing import random_blocks, write_gguf  # noqa: E402
from i2v_nodes.families.toolkit.safetensors_header import read_header  # noqa: E402
from i2v_nodes.families.wan import stand_ins  # noqa: E402
from i2v_nodes.families.wan.write import gguf_tensor_types  # noqa: E402

log = logging.getLogger("write_a14b_files")

DEFAULT_FOLDER = Path("/work/bench-files")
VARIANT = "wan2.2-i2v-a14b"
GGUF_TYPE = "Q4_K_M"
CHUNK = 1 << 25  # elements generated at once (32 Mi: at most 128 MiB of fp32 per chunk)
FLUSH_EVERY = 1 << 30  # bytes written between flushing and dropping them from the page cache
WEIGHT_STD = 0.02
GGUF_REACH = 0.075  # Q4_K blocks with this reach (zero mean) have a standard deviation of about 0.02
SEEDS = {"diffusion_model": 1, "diffusion_model_2": 2, "text_encoder": 3, "vae": 4}
TORCH = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}


# --- the two sets: which files, where ----------------------------------------------------------------


def template_paths(folder: Path) -> dict[str, Path]:
    """ComfyUI's A14B template files under ``folder``: loader slot -> path."""
    names = stand_ins.TEMPLATE_FILES[VARIANT]
    return {slot: folder / FILE_FOLDERS[slot] / name for slot, name in names.items()}


def gguf_paths(folder: Path) -> dict[str, Path]:
    """QuantStack's Q4_K_M experts under ``folder`` (the same UMT5 and VAE go with them)."""
    names = stand_ins.GGUF_EXPERTS
    return {slot: folder / GGUF_FOLDER / name.format(GGUF_TYPE) for slot, name in names.items()}


# --- random data ---------------------------------------------------------------------------------------


def role_of(name: str, shape: tuple[int, ...]) -> str:
    """How a tensor is filled: 'zeros' (biases), 'ones' (norms, 1-D scales) or 'random'."""
    if name.endswith(".bias"):
        return "zeros"
    if "norm" in name or "gamma" in name or (len(shape) == 1 and name.endswith(".weight")):
        return "ones"
    return "random"


def float_chunks(name: str, shape: tuple[int, ...], dtype: torch.dtype,
                 generator: torch.Generator) -> Iterator[torch.Tensor]:
    """A float tensor's values in row chunks of at most CHUNK elements (flat, in file order)."""
    role = role_of(name, shape)
    total = math.prod(shape)
    row = math.prod(shape[1:]) if len(shape) > 1 else 1
    rows_per_chunk = max(1, CHUNK // max(row, 1))
    for first in range(0, total, rows_per_chunk * row):
        count = min(rows_per_chunk * row, total - first)
        if role == "zeros":
            yield torch.zeros(count, dtype=dtype)
        elif role == "ones":
            yield torch.ones(count, dtype=dtype)
        else:
            yield (torch.randn(count, generator=generator) * WEIGHT_STD).to(dtype)


def fp8_scaled(shape: tuple[int, ...], generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A random fp8_scaled matrix and its fp32 scale, chunk by chunk (the scale fixed in advance at
    the largest value a normal draw reaches here, 6 standard deviations, so no chunk needs another's)."""
    scale = torch.tensor(6 * WEIGHT_STD / FP8_MAX, dtype=torch.float32)
    parts = [(torch.randn(n, generator=generator) * WEIGHT_STD / scale).clamp(-FP8_MAX, FP8_MAX)
             .to(torch.float8_e4m3fn) for n in _split(math.prod(shape))]
    return torch.cat(parts), scale


def _split(total: int) -> list[int]:
    return [min(CHUNK, total - first) for first in range(0, total, CHUNK)]


# --- safetensors, streamed -----------------------------------------------------------------------------


class Sink:
    """An output file that flushes written pages and drops them from the page cache every
    FLUSH_EVERY bytes: a 14 GB file goes through about 1 GB of cache, not 14."""

    def __init__(self, handle):
        self.handle = handle
        self.pending = 0
        self.written = 0

    def write(self, raw: bytes | memoryview) -> None:
        self.handle.write(raw)
        self.pending += len(raw)
        self.written += len(raw)
        if self.pending >= FLUSH_EVERY:
            self.drop()

    def drop(self) -> None:
        self.handle.flush()
        os.fdatasync(self.handle.fileno())
        os.posix_fadvise(self.handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        self.pending = 0


def tensor_bytes(tensor: torch.Tensor) -> memoryview:
    return memoryview(tensor.contiguous().reshape(-1).view(torch.uint8).numpy())


def header_bytes(entries: list[tuple[str, str, tuple[int, ...], int]]) -> bytes:
    """The safetensors header for (name, dtype, shape, nbytes) in file order, padded to 8 bytes."""
    header, offset = {}, 0
    for name, dtype, shape, nbytes in entries:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw


def write_safetensors(path: Path, stand_in: Path, spiece: bytes | None = None, seed: int = 0) -> Path:
    """Write ``path`` with the stand-in's layout and random data, one tensor (chunk) at a time."""
    info = read_header(stand_in).tensors
    entries = []
    for name, tensor in info.items():
        shape = (len(spiece),) if name == "spiece_model" and spiece is not None else tensor.shape
        entries.append((name, tensor.dtype, shape, math.prod(shape) * _itemsize(tensor.dtype)))
    generator = torch.Generator().manual_seed(seed)
    scales: dict[str, torch.Tensor] = {}
    with _staged(path) as staging, open(staging, "wb") as handle:
        sink = Sink(handle)
        sink.write(header_bytes(entries))
        for name, dtype, shape, _nbytes in entries:
            _write_tensor(sink, name, dtype, shape, spiece, generator, scales)
        sink.drop()
    return path


def _write_tensor(sink: Sink, name: str, dtype: str, shape: tuple[int, ...], spiece: bytes | None,
                  generator: torch.Generator, scales: dict[str, torch.Tensor]) -> None:
    if name == "spiece_model":
        sink.write(spiece or bytes(math.prod(shape)))
    elif name == "scaled_fp8":
        return  # the marker: no data
    elif name.endswith(".scale_weight"):
        sink.write(tensor_bytes(scales.pop(name)))
    elif dtype == "F8_E4M3":
        values, scale = fp8_scaled(shape, generator)
        scales[name.removesuffix(".weight") + ".scale_weight"] = scale
        sink.write(tensor_bytes(values))
    else:
        for chunk in float_chunks(name, shape, TORCH[dtype], generator):
            sink.write(tensor_bytes(chunk))


def _itemsize(dtype: str) -> int:
    return {"F8_E4M3": 1, "U8": 1, "BF16": 2, "F16": 2, "F32": 4}[dtype]


class _staged:
    """A hidden staging name next to ``path``, renamed to ``path`` when whole, removed otherwise."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.staging = path.with_name(f".{path.name}.{os.getpid()}.part")

    def __enter__(self) -> Path:
        return self.staging

    def __exit__(self, kind, *_exc) -> None:
        if kind is None:
            os.replace(self.staging, self.path)
        elif self.staging.exists():
            self.staging.unlink()


# --- GGUF, streamed ------------------------------------------------------------------------------------


def write_gguf_expert(path: Path, stand_in_expert: Path, seed: int) -> Path:
    """A Q4_K_M expert as QuantStack's: the types city96's tools give each tensor of the published
    layout (read from the fp8 expert's stand-in header), random zero-mean blocks, streamed."""
    shapes = {name: info.shape for name, info in read_header(stand_in_expert).tensors.items()
              if not name.endswith(".scale_weight") and name != "scaled_fp8"}
    rng = np.random.default_rng(seed)
    trimmer = CacheTrimmer(path)

    def data(name: str, kind: str, shape: tuple[int, ...]) -> np.ndarray:
        out = (_k_blocks(kind, shape, rng) if kind not in TORCH else
               _float_array(name, kind, shape, rng))
        trimmer.wrote(out.nbytes)
        return out

    return write_gguf(path, gguf_tensor_types(shapes, GGUF_TYPE), "wan", GGUF_TYPE, data)


def _k_blocks(kind: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    raw = random_blocks(kind, shape, rng, GGUF_REACH)
    if kind == "Q4_K":  # w = d*sc*q - dmin*m: dmin = 7.5 d centres it (E[sc q] = 7.5 E[m], all uniform)
        blocks = raw.reshape(-1, 144)
        d = blocks[:, 0:2].copy().view(np.float16)
        blocks[:, 2:4] = (d * np.float16(7.5)).view(np.uint8)
    return raw


def _float_array(name: str, kind: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """gguf's writer takes a whole tensor: it is filled CHUNK values at a time (time_projection's
    157 M values would otherwise take 1.3 GB of fp32 temporaries for a 0.3 GB F16 tensor)."""
    dtype = np.float32 if kind == "F32" else np.float16
    role = role_of(name, shape)
    if role != "random":
        return np.full(shape, 0 if role == "zeros" else 1, dtype=dtype)
    out = np.empty(math.prod(shape), dtype=dtype)
    for first in range(0, out.size, CHUNK):
        chunk = rng.standard_normal(min(CHUNK, out.size - first), dtype=np.float32)
        chunk *= WEIGHT_STD
        out[first:first + chunk.size] = chunk
    return out.reshape(shape)


class CacheTrimmer:
    """gguf's writer owns its file: every FLUSH_EVERY bytes, flush and drop the staging file's pages
    from the page cache through a second descriptor (write_gguf stages as ``.{name}-*``)."""

    def __init__(self, path: Path):
        self.path = path
        self.pending = 0

    def wrote(self, nbytes: int) -> None:
        self.pending += nbytes
        if self.pending < FLUSH_EVERY:
            return
        self.pending = 0
        for staging in self.path.parent.glob(f".{self.path.name}-*"):
            fd = os.open(staging, os.O_RDONLY)
            try:
                os.fdatasync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


# --- the sets ------------------------------------------------------------------------------------------


def write_sets(folder: Path, sets: list[str]) -> dict[str, Path]:
    """Write what is missing of the asked sets; returns every file of them by a short name."""
    with tempfile.TemporaryDirectory(prefix="a14b-headers-") as stage:
        stand_in = stand_ins.write_template_files(Path(stage), VARIANT)  # header-only, sparse
        files = {}
        for slot, path in template_paths(folder).items():
            files[slot] = path
            needed = "fp8_scaled" in sets or slot in ("text_encoder", "vae")
            if needed and not path.exists():
                _timed(path, lambda p=path, s=slot: _write_template_file(p, stand_in[s], s))
        if "gguf" in sets:
            for index, (slot, path) in enumerate(gguf_paths(folder).items()):
                files[f"gguf_{slot}"] = path
                if not path.exists():
                    _timed(path, lambda p=path, i=index: write_gguf_expert(p, stand_in["diffusion_model"], i))
    return files


def _write_template_file(path: Path, stand_in: Path, slot: str) -> Path:
    spiece = _tiny_spiece() if slot == "text_encoder" else None
    return write_safetensors(path, stand_in, spiece, seed=SEEDS[slot])


def _tiny_spiece() -> bytes:
    """A small sentencepiece model whose ids fit UMT5's vocabulary (as bench/comfy_core_files.py)."""
    from i2v_nodes.families.registry import WAN
    from i2v_nodes.families.toolkit.tokenizers import unigram_spiece_bytes

    return unigram_spiece_bytes(WAN.tiny_models["tiny-wan2.1-i2v"]().tokenizer)


def _timed(path: Path, write) -> None:
    started = time.perf_counter()
    write()
    seconds = time.perf_counter() - started
    size = path.stat().st_size
    rate = size / seconds / 1e6
    print(f"wrote {path} ({size / 1e9:.2f} GB) in {seconds:.0f} s, {rate:.0f} MB/s", flush=True)


def peak_rss_gib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 2**30
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT_FOLDER)
    parser.add_argument("--sets", nargs="+", choices=["fp8_scaled", "gguf"], default=["fp8_scaled", "gguf"])
    parser.add_argument("--delete", action="store_true", help="delete the folder and every file in it")
    a = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if a.delete:
        shutil.rmtree(a.folder, ignore_errors=True)
        print(f"deleted {a.folder}")
        return 0
    torch.set_num_threads(2)
    files = write_sets(a.folder, a.sets)
    total = sum(p.stat().st_size for p in files.values() if p.exists())
    for name, path in files.items():
        if path.exists():
            print(f"{name:28} {path.stat().st_size / 1e9:6.2f} GB  {path}")
    print(f"total {total / 1e9:.2f} GB in {a.folder}; this process's peak RSS {peak_rss_gib():.2f} GiB")
    print(f"delete with: python bench/write_a14b_files.py --delete {a.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
