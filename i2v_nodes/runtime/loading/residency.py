"""Which weights are resident: a pipeline streamed per phase.

A streamed component's weights are file-backed: mapped read-only from their safetensors or GGUF file
where they are used as stored, or (converted on load: cast, fused, dequantised) copied once into a
private spill file and mapped from there. Releasing a component is then a hint to the kernel
(``madvise(MADV_DONTNEED)``, and ``posix_fadvise`` for the page cache): its pages go, its tensors stay
valid with the very same bytes at the very same addresses, and the next use faults them back from
the file. So a released component needs no reload code, no device bookkeeping (it never becomes
meta), and a stream never changes the output; and under pressure the kernel may drop such pages by
itself instead of ending the process.

Linux only (``/proc/self/maps``, ``madvise``); elsewhere every component stays resident.
"""

from __future__ import annotations

import bisect
import ctypes
import ctypes.util
import logging
import mmap
import os
import sys
import tempfile
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from i2v_nodes.lazy import torch

log = logging.getLogger(__name__)

PAGE = mmap.PAGESIZE
MADV_DONTNEED = 4
SPILL_AT_LEAST = 64 * 1024  # smaller tensors are not worth a mapping: they stay where they are
SUPPORTED = sys.platform.startswith("linux")


@dataclass(frozen=True)
class Mapping:
    start: int
    end: int
    offset: int  # of ``start`` in the file
    path: str  # "" for anonymous memory; ends with " (deleted)" for a spill file
    written: bool  # a private mapping some of whose pages were written (copied): those are not the file's


def mappings() -> list[Mapping]:
    """This process's memory mappings, in address order (empty where /proc is not there).

    safetensors and GGUF map files private and writable; a page of such a mapping stays the file's
    until something writes it, which ``/proc/self/smaps`` counts as "Anonymous"."""
    try:
        lines = Path("/proc/self/smaps").read_text().splitlines()
    except OSError:
        return []
    out: list[Mapping] = []
    for line in lines:
        head = line.split(maxsplit=5)
        if "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
            start, end = (int(part, 16) for part in head[0].split("-"))
            path = head[5] if len(head) == 6 else ""
            out.append(Mapping(start, end, int(head[2], 16), path, written=False))
        elif head[0] == "Anonymous:" and out and int(head[1]) > 0:
            last = out[-1]
            out[-1] = Mapping(last.start, last.end, last.offset, last.path, written=True)
    return out


class MemoryMap:
    """A snapshot of the mappings, asked where a tensor's bytes live."""

    def __init__(self, maps: list[Mapping] | None = None):
        self.maps = maps if maps is not None else mappings()
        self.starts = [m.start for m in self.maps]

    def backing(self, tensor: torch.Tensor) -> Mapping | None:
        """The file mapping holding all of ``tensor``'s bytes, none of them written, if one does."""
        start, end = span(tensor)
        index = bisect.bisect_right(self.starts, start) - 1
        if index < 0 or end <= start:
            return None
        found = self.maps[index]
        if found.end < end or found.written or not found.path.startswith("/"):
            return None
        return found


def span(tensor: torch.Tensor) -> tuple[int, int]:
    """The byte range a tensor's elements occupy (a view: its part of the storage)."""
    if tensor.numel() == 0 or tensor.device.type != "cpu":
        return 0, 0
    start = tensor.data_ptr()
    strides = zip(tensor.shape, tensor.stride(), strict=True)
    reach = 1 + sum((size - 1) * abs(stride) for size, stride in strides)
    return start, start + reach * tensor.element_size()


def tensors(module: torch.nn.Module) -> Iterable[tuple[torch.nn.Module, str, torch.Tensor, bool]]:
    """(owner, name, tensor, is_parameter) for each distinct parameter and buffer (tied ones once)."""
    seen: set[int] = set()
    for owner in module.modules():
        for table, is_param in ((owner._parameters, True), (owner._buffers, False)):
            for name, tensor in table.items():
                if tensor is None or id(tensor) in seen:
                    continue
                seen.add(id(tensor))
                yield owner, name, tensor, is_param


@dataclass
class Footprint:
    """Bytes of a component's weights in system RAM, by how the kernel can treat them."""

    file_backed: int = 0  # mapped from a file: droppable and re-read on use
    anonymous: int = 0  # private memory: stays until freed
    elsewhere: int = 0  # on another device

    @property
    def total(self) -> int:
        return self.file_backed + self.anonymous


def footprint(module: torch.nn.Module, memory_map: MemoryMap | None = None) -> Footprint:
    memory_map = memory_map or MemoryMap()
    result = Footprint()
    for _owner, _name, tensor, _param in tensors(module):
        size = tensor.numel() * tensor.element_size()
        if tensor.device.type != "cpu":
            result.elsewhere += size
        elif memory_map.backing(tensor) is not None:
            result.file_backed += size
        else:
            result.anonymous += size
    return result


def spill_folder() -> Path:
    """Where converted weights are spilled: I2V_SPILL_DIR, else the pack's cache folder (never a
    temporary folder, which is often memory itself)."""
    if os.environ.get("I2V_SPILL_DIR"):
        return Path(os.environ["I2V_SPILL_DIR"])
    if os.environ.get("I2V_CACHE_DIR"):
        return Path(os.environ["I2V_CACHE_DIR"]) / "spill"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "i2v-nodes" / "spill"


def make_file_backed(module: torch.nn.Module, folder: Path | None = None) -> int:
    """Move each private CPU tensor of ``module`` (from SPILL_AT_LEAST bytes) into one spill file,
    mapped read-only in its place: the same dtype, shape and bytes, at a page boundary (as aligned
    as the allocator's). The file is unlinked at once, so it lives exactly as long as the mapping and
    nothing is left behind, even after a crash. Returns the bytes moved."""
    if not SUPPORTED:
        return 0
    memory_map = MemoryMap()
    private = [(owner, name, tensor, is_param) for owner, name, tensor, is_param in tensors(module)
               if tensor.device.type == "cpu" and tensor.is_contiguous() and not _quantised(tensor)
               and tensor.numel() * tensor.element_size() >= SPILL_AT_LEAST
               and memory_map.backing(tensor) is None]
    if not private:
        return 0
    folder = folder or spill_folder()
    folder.mkdir(parents=True, exist_ok=True)
    offsets, size = [], 0
    for _owner, _name, tensor, _param in private:
        offsets.append(size)
        size += -(-tensor.numel() * tensor.element_size() // PAGE) * PAGE
    base = _spill_file(folder, size, [t for _o, _n, t, _p in private], offsets)
    for (owner, name, tensor, is_param), offset in zip(private, offsets, strict=True):
        nbytes = tensor.numel() * tensor.element_size()
        mapped = base[offset:offset + nbytes].view(tensor.dtype).view(tensor.shape)
        if is_param:
            tensor.data = mapped  # the same Parameter object: hooks and optimisers keep seeing it
        else:
            owner._buffers[name] = mapped
    log.info("spilled %.1f MiB of converted weights to a private file in %s", size / 2**20, folder)
    return size


def _quantised(tensor: torch.Tensor) -> bool:
    return hasattr(tensor, "quant_type")  # a GGUF block tensor: the file's own pages already


def _spill_file(folder: Path, size: int, parts: list[torch.Tensor], offsets: list[int]) -> torch.Tensor:
    fd, name = tempfile.mkstemp(prefix=".i2v-spill-", dir=folder)
    try:
        os.unlink(name)
        os.ftruncate(fd, size)
        for tensor, offset in zip(parts, offsets, strict=True):
            raw = tensor.detach().reshape(-1).view(torch.uint8).numpy()
            written = os.pwrite(fd, memoryview(raw), offset)
            while written < raw.nbytes:  # a short write: go on where it stopped
                written += os.pwrite(fd, memoryview(raw[written:]), offset + written)
        mapped = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
    finally:
        os.close(fd)
    with warnings.catch_warnings():  # read-only on purpose: a write would be a bug, and faults
        warnings.simplefilter("ignore", UserWarning)
        return torch.frombuffer(mapped, dtype=torch.uint8)


def release(module: torch.nn.Module, memory_map: MemoryMap | None = None) -> int:
    """Let the kernel drop the pages of ``module``'s file-backed tensors (they come back from the
    file when next used). Returns the bytes released; private tensors are left as they are."""
    if not SUPPORTED:
        return 0
    memory_map = memory_map or MemoryMap()
    released = 0
    for _owner, _name, tensor, _param in tensors(module):
        found = memory_map.backing(tensor)
        if found is None:
            continue
        start, end = span(tensor)
        first = max(found.start, start - start % PAGE)  # whole pages, never past the file's mapping:
        last = min(found.end, end + (-end) % PAGE)  # advice on private memory would zero it
        if _madvise(first, last - first) == 0:
            released += end - start
            _drop_cache(found, first, last)
    return released


def resident_bytes(module: torch.nn.Module, memory_map: MemoryMap | None = None) -> int:
    """Bytes of ``module``'s file-backed tensors mapped into this process now (counted in its RSS):
    the pages /proc/self/pagemap marks present."""
    if not SUPPORTED:
        return 0
    memory_map = memory_map or MemoryMap()
    pages: set[int] = set()
    with open("/proc/self/pagemap", "rb") as pagemap:
        for _owner, _name, tensor, _param in tensors(module):
            if memory_map.backing(tensor) is None:
                continue
            start, end = span(tensor)
            first, count = start // PAGE, -(-end // PAGE) - start // PAGE
            pagemap.seek(first * 8)
            entries = memoryview(pagemap.read(count * 8)).cast("Q")
            pages.update(first + i for i, entry in enumerate(entries) if entry >> 63)
    return len(pages) * PAGE


_LIBC = None


def _libc() -> ctypes.CDLL:
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        _LIBC.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    return _LIBC


def _madvise(address: int, length: int) -> int:
    return _libc().madvise(ctypes.c_void_p(address), ctypes.c_size_t(length), MADV_DONTNEED)


def _drop_cache(found: Mapping, first: int, last: int) -> None:
    """Also drop the file's cached pages (what a memory limit counts), where the file can be opened."""
    if found.path.endswith(" (deleted)"):
        return
    try:
        fd = os.open(found.path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.posix_fadvise(fd, found.offset + first - found.start, last - first, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
