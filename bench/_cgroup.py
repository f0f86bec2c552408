"""A memory cgroup for one measured process, and a sampler of its memory while it runs.

A cgroup stands in for a smaller machine: the process sees the limit (the pack's guard reads it),
page cache of files it reads is charged to it but reclaimable, and anonymous memory over the limit
gets the process killed (``oom_kill`` counts it). Needs root. cgroup v1 (``memory.limit_in_bytes``
under /sys/fs/cgroup/memory) or v2 (``memory.max``); each run gets its own group, removed after.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

V1 = Path("/sys/fs/cgroup/memory")
V2 = Path("/sys/fs/cgroup")
GiB = 2**30
STAT_V1 = (("anon", "total_rss"), ("cache", "total_cache"), ("mapped", "total_mapped_file"))
STAT_V2 = (("anon", "anon"), ("cache", "file"), ("mapped", "file_mapped"))


class Cgroup:
    """A fresh memory cgroup with ``limit`` bytes (None: no limit, but still measured)."""

    def __init__(self, name: str, limit: int | None):
        self.v1 = V1.is_dir()
        self.path = (V1 if self.v1 else V2) / name
        self.path.mkdir()
        if limit is not None:
            self._write("memory.limit_in_bytes" if self.v1 else "memory.max", str(limit))
            if self.v1 and (self.path / "memory.memsw.limit_in_bytes").exists():
                self._write("memory.memsw.limit_in_bytes", str(limit))  # no swap to escape to
            if not self.v1 and (self.path / "memory.swap.max").exists():
                self._write("memory.swap.max", "0")
        self.limit = limit

    def _write(self, name: str, value: str) -> None:
        (self.path / name).write_text(value)

    def _read(self, name: str) -> str:
        return (self.path / name).read_text()

    def join(self) -> None:
        """Put the calling process here (a ``preexec_fn``: the child joins before it execs)."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def usage(self) -> int:
        return int(self._read("memory.usage_in_bytes" if self.v1 else "memory.current"))

    def peak(self) -> int:
        """The group's peak charge (anonymous memory and page cache together)."""
        return int(self._read("memory.max_usage_in_bytes" if self.v1 else "memory.peak"))

    def oom_kills(self) -> int:
        text = self._read("memory.oom_control" if self.v1 else "memory.events")
        return next((int(line.split()[1]) for line in text.splitlines() if line.startswith("oom_kill ")), 0)

    def stat(self) -> dict[str, int]:
        """anon / cache / mapped bytes now (v1's total_rss, total_cache, total_mapped_file)."""
        raw = dict(line.split() for line in self._read("memory.stat").splitlines())
        names = STAT_V1 if self.v1 else STAT_V2
        return {ours: int(raw.get(theirs, 0)) for ours, theirs in names}

    def remove(self) -> None:
        for _ in range(50):  # the killed or stopped process may take a moment to leave
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.2)
        log.warning("could not remove %s", self.path)


def proc_status(pid: int) -> dict[str, int]:
    """VmHWM, VmRSS, RssAnon, RssFile of a process in bytes (empty once it is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    wanted = ("VmHWM", "VmRSS", "RssAnon", "RssFile")
    return {key: int(rest.split()[0]) * 1024 for key, rest in (line.split(":", 1) for line in lines)
            if key in wanted}


def proc_read_bytes(pid: int) -> int:
    """Bytes the process made the kernel fetch from storage so far (/proc/PID/io read_bytes)."""
    try:
        text = Path(f"/proc/{pid}/io").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in text.splitlines() if line.startswith("read_bytes:")), 0)


@dataclass
class Sampler:
    """Samples a process and its cgroup every ``every`` seconds on a thread: the maxima, the
    breakdown at the group's highest charge, and a coarse timeline (to tell which phase peaked)."""

    pid: int
    group: Cgroup
    every: float = 0.5
    peaks: dict[str, int] = field(default_factory=dict)
    at_peak: dict[str, int] = field(default_factory=dict)
    timeline: list[dict[str, float]] = field(default_factory=list)
    read_bytes: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._started = time.perf_counter()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        last_kept = -10.0
        while not self._stop.wait(self.every):
            sample = self.sample()
            if not sample:
                continue
            for key, value in sample.items():
                self.peaks[key] = max(self.peaks.get(key, 0), value)
            if sample.get("usage", 0) >= self.at_peak.get("usage", 0):
                self.at_peak = sample
            now = time.perf_counter() - self._started
            if now - last_kept >= 5:
                gib = {key: round(value / GiB, 2) for key, value in sample.items()}
                self.timeline.append({"t": round(now, 1), **gib})
                last_kept = now

    def sample(self) -> dict[str, int]:
        status = proc_status(self.pid)
        if not status:
            return {}
        self.read_bytes = max(self.read_bytes, proc_read_bytes(self.pid))
        try:
            return {**status, "usage": self.group.usage(), **self.group.stat()}
        except OSError:
            return status

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
