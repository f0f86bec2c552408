"""Rank 0's progress: one line per finished job (any rank's), and a live bar on a terminal.

Jobs of other processes are seen through their records as they land in the output folder (a
watcher thread looks every half second); jobs of machines with their own folders show up when
the results are gathered at the end.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, TextIO

from host_stub.batch.jobs import RecordStore

BAR_WIDTH = 24
POLL_SECONDS = 0.5


class Progress:
    def __init__(self, store: RecordStore, pending: dict[str, str], out: TextIO, bar: TextIO | None):
        self.store = store
        self.names = pending  # job id -> row id, for the jobs this run will do
        self.out = out
        self.bar = bar  # a terminal for the live bar, or None
        self.total = len(pending)
        self.done = self.failed = 0
        self.shown: set[str] = set()
        self.started = time.monotonic()
        self.before = self._stamps()  # records already there (failed ones about to be retried)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="batch-progress", daemon=True)

    def start(self) -> None:
        self._draw()
        self._thread.start()

    def finish(self, records: list[dict[str, Any]]) -> None:
        """Stop watching; show every gathered record not shown yet; clear the bar."""
        self._stop.set()
        self._thread.join(timeout=5)
        for record in records:
            self.show(record)
        if self.bar is not None:
            self.bar.write("\r\033[K")
            self.bar.flush()

    def show(self, record: dict[str, Any]) -> None:
        with self._lock:
            job_id = record["job_id"]
            if job_id in self.shown or job_id not in self.names:
                return
            self.shown.add(job_id)
            ok = record["status"] == "done"
            self.done += ok
            self.failed += not ok
            if self.bar is not None:
                self.bar.write("\r\033[K")
                self.bar.flush()
            self.out.write(self._line(record) + "\n")
            self.out.flush()
            self._draw()

    # --- internals ------------------------------------------------------------------------------

    def _line(self, record: dict[str, Any]) -> str:
        count = len(self.shown)
        width = len(str(self.total))
        what = (
            record.get("error")
            if record["status"] != "done"
            else " ".join(f["path"] for f in record["files"])
        )
        batch = f" (x{record['batch']})" if record.get("batch", 1) > 1 else ""
        return (
            f"[{count:>{width}}/{self.total}] {record['status']:<6} {record['id']}  rank {record['rank']}  "
            f"{record['seconds']:.2f}s{batch}  {what or ''}".rstrip()
        )

    def _draw(self) -> None:
        if self.bar is None:
            return
        count = len(self.shown)
        filled = int(BAR_WIDTH * count / self.total) if self.total else BAR_WIDTH
        elapsed = time.monotonic() - self.started
        eta = f"  eta {_clock(elapsed / count * (self.total - count))}" if 0 < count < self.total else ""
        self.bar.write(
            f"\r\033[K[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {count}/{self.total} "
            f"done {self.done} failed {self.failed}  {_clock(elapsed)}{eta}"
        )
        self.bar.flush()

    def _stamps(self) -> dict[str, int]:
        stamps = {}
        try:
            with os.scandir(self.store.folder) as entries:
                for entry in entries:
                    if entry.name.endswith(".json"):
                        stamps[entry.name[: -len(".json")]] = entry.stat().st_mtime_ns
        except OSError:
            pass  # no folder yet: nothing recorded
        return stamps

    def _watch(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            for job_id, stamp in self._stamps().items():
                if job_id in self.names and job_id not in self.shown and stamp != self.before.get(job_id):
                    record = self.store.read(job_id)
                    if record is not None:
                        self.show(record)
            with self._lock:
                self._draw()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
