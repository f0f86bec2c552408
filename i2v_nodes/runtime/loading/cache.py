"""The process-wide model cache: each pipeline is loaded once and shared.

- Keyed by :class:`~.handle.CacheKey` (source, dtype, VAE dtype, device, offload mode).
- Thread-safe and single-flight: concurrent requests for one key wait for one load.
- One run at a time per pipeline (a diffusers pipeline keeps per-call state in its scheduler).
- LRU eviction of idle entries when a new load would exceed the memory budget.
- Explicit unload, and unload requested by the host (ComfyUI's "Unload models" / ``/free``):
  an entry in use is dropped as soon as its run ends.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from i2v_nodes.runtime.loading.handle import CacheKey

log = logging.getLogger(__name__)


@dataclass
class Entry:
    key: CacheKey
    value: Any  # what the loader returned (a pipeline and its host registration)
    size_bytes: int
    run_lock: threading.Lock = field(default_factory=threading.Lock)
    users: int = 0
    stale: bool = False  # unload requested while in use
    on_drop: Callable[[], None] | None = None  # e.g. release the host registration
    loaded_at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class CacheStats:
    loads: int
    hits: int
    entries: int
    bytes: int


class ModelCache:
    def __init__(self, budget_bytes: Callable[[str], int]):
        """``budget_bytes(device)`` gives the most the cache may hold on a device."""
        self._budget = budget_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[CacheKey, Entry] = OrderedDict()
        self._loading: dict[CacheKey, threading.Event] = {}
        self.loads = 0
        self.hits = 0

    # -- use ------------------------------------------------------------------------------------

    @contextmanager
    def use(self, key: CacheKey, size_bytes: int,
            loader: Callable[[], tuple[Any, Callable[[], None] | None]]) -> Iterator[Any]:
        """Yield the value for ``key`` with its run lock held, loading it first if needed.

        ``loader()`` returns the value and an optional callback run when it is dropped. ``size_bytes``:
        what the entry holds on its device after this use (a run may stream what an earlier one kept).
        """
        entry = self._acquire(key, size_bytes, loader)
        try:
            with entry.run_lock:
                yield entry.value
        finally:
            with self._lock:
                entry.users -= 1
                drop = entry.stale and entry.users == 0
            if drop:
                self._drop(entry)

    def _acquire(self, key: CacheKey, size_bytes: int, loader) -> Entry:
        while True:
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None and not entry.stale:
                    self._entries.move_to_end(key)
                    entry.users += 1
                    entry.size_bytes = size_bytes
                    self.hits += 1
                    return entry
                pending = self._loading.get(key)
                if pending is None:
                    pending = self._loading[key] = threading.Event()
                    break
            pending.wait()  # another thread is loading this key; then look again
        try:
            self._make_room(key.device, size_bytes)
            log.info("loading %s (%s, VAE %s) on %s, offload %s", key.source, key.dtype, key.vae_dtype,
                     key.device, key.offload)
            started = time.perf_counter()
            value, on_drop = loader()
            log.info("loaded %s in %.1f s", key.source, time.perf_counter() - started)
            entry = Entry(key, value, size_bytes, on_drop=on_drop, users=1)
            with self._lock:
                self._entries[key] = entry
                self.loads += 1
            return entry
        finally:
            with self._lock:
                self._loading.pop(key, None)
            pending.set()

    # -- eviction -------------------------------------------------------------------------------

    def _make_room(self, device: str, size_bytes: int) -> None:
        budget = self._budget(device)
        while True:
            with self._lock:
                used = sum(e.size_bytes for e in self._entries.values() if e.key.device == device)
                if used + size_bytes <= budget:
                    return
                idle = [e for e in self._entries.values() if e.key.device == device and e.users == 0]
                if not idle:
                    log.warning("model cache over budget on %s (%.2f GiB + %.2f GiB > %.2f GiB) and "
                                "every entry is in use; loading anyway", device, used / 2**30,
                                size_bytes / 2**30, budget / 2**30)
                    return
                victim = idle[0]  # least recently used
                del self._entries[victim.key]
            log.info("evicting %s to stay within the cache budget", victim.key.source)
            self._drop(victim)

    def unload(self, key: CacheKey | None = None, collect: bool = True) -> int:
        """Drop one entry (or all); entries in use go as soon as their run ends. Returns the count.

        ``collect=False`` skips the garbage collection, for callers inside a host's own unload
        (collecting there can fire the host's finalizers mid-loop); the host collects later.
        """
        return self._unload_where(lambda k: key is None or k == key, collect)

    def unload_source(self, source: str) -> int:
        """Drop every entry of one model source (whatever its dtypes or offload)."""
        return self._unload_where(lambda k: k.source == source, True)

    def _unload_where(self, chosen_key: Callable[[CacheKey], bool], collect: bool) -> int:
        with self._lock:
            chosen = [e for k, e in self._entries.items() if chosen_key(k)]
            now = []
            for entry in chosen:
                entry.stale = True
                if entry.users == 0:
                    del self._entries[entry.key]
                    now.append(entry)
                # in use: `use` drops it when the run ends; it stays listed until then
        for entry in now:
            self._drop(entry, collect)
        return len(chosen)

    def _drop(self, entry: Entry, collect: bool = True) -> None:
        with self._lock:
            if self._entries.get(entry.key) is entry:
                del self._entries[entry.key]
        callback, entry.on_drop = entry.on_drop, None
        entry.value = None
        if callback is not None:
            callback()
        if collect:
            gc.collect()  # pipelines hold reference cycles (hooks, configs); free them now
            if entry.key.device.startswith("cuda") and torch.cuda.is_available():
                torch.cuda.empty_cache()
        log.info("unloaded %s", entry.key.source)

    # -- queries --------------------------------------------------------------------------------

    def peek(self, key: CacheKey) -> Any:
        """The cached value for ``key`` without taking it (diagnostics and tests), or None."""
        with self._lock:
            entry = self._entries.get(key)
            return entry.value if entry is not None and not entry.stale else None

    def is_loaded(self, key: CacheKey) -> bool:
        with self._lock:
            entry = self._entries.get(key)
            return entry is not None and not entry.stale

    def held_bytes(self, key: CacheKey) -> int:
        """Bytes the entry for ``key`` holds on its device between runs (0 when it is not loaded)."""
        with self._lock:
            entry = self._entries.get(key)
            return entry.size_bytes if entry is not None and not entry.stale else 0

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self.loads, self.hits, len(self._entries),
                              sum(e.size_bytes for e in self._entries.values()))
