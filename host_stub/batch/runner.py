"""One process's share of a sweep: its calls on one warm host, each job recorded as it finishes.

A call of several seeds is split back per job by its output nodes' reported files (each node's
list in equal parts, in clip order). When that split is not possible, or the batched call fails
(out of memory, a memory guard that refuses the batch), its rows run one by one.
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Any

from host_stub.api import Host
from host_stub.batch.jobs import STATE_DIR, Job, RecordStore, new_record
from host_stub.batch.plan import BatchTarget, Unit
from host_stub.batch.prepare import validation_reasons
from host_stub.results import RunResult

log = logging.getLogger(__name__)


class Runner:
    def __init__(self, host: Host, source: Any, store: RecordStore, rank: int, target: BatchTarget | None):
        self.host = host
        self.source = source  # the workflow as loaded (a dict), so every call runs the same one
        self.store = store
        self.rank = rank
        self.target = target
        self.busy_seconds = 0.0
        self.calls = 0

    def run(self, units: list[Unit]) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        for unit in units:
            records += self.run_unit(unit)
        return records

    def run_unit(self, unit: Unit) -> list[dict[str, Any]]:
        if len(unit) > 1 and self.target is not None:
            records = self._batched(unit, self.target)
            if records is not None:
                return records
        return [self._single(job) for job in unit]

    # --- calls ----------------------------------------------------------------------------------

    def _call(self, overrides: list[str], prompt_id: str) -> RunResult:
        started = time.perf_counter()
        result = self.host.run(copy.deepcopy(self.source), overrides=overrides, prompt_id=prompt_id)
        self.busy_seconds += time.perf_counter() - started
        self.calls += 1
        if result.status == "interrupted":
            raise KeyboardInterrupt(f"interrupted in job {prompt_id}")
        return result

    def _single(self, job: Job) -> dict[str, Any]:
        result = self._call(job.row.override_list(), job.job_id)
        groups = self._output_groups(result)
        files = [path for group in groups for path in group]
        return self._record(job, result, files, batch=1)

    def _batched(self, unit: Unit, target: BatchTarget) -> list[dict[str, Any]] | None:
        first = unit[0]
        result = self._call(first.row.override_list() + target.overrides(unit), f"{first.job_id}x{len(unit)}")
        if not result.ok:
            log.warning(
                "a call of %d seeds failed (%s); running its rows one by one", len(unit), _error_text(result)
            )
            return None
        groups = self._output_groups(result)
        if any(len(group) % len(unit) for group in groups):
            sizes = ", ".join(str(len(g)) for g in groups)
            log.warning(
                "a call of %d seeds wrote %s files per output, which does not split per seed; "
                "running its rows one by one",
                len(unit),
                sizes,
            )
            return None
        records = []
        for i, job in enumerate(unit):
            files = [path for group in groups for path in _part(group, i, len(unit))]
            records.append(self._record(job, result, files, batch=len(unit)))
        return records

    # --- results --------------------------------------------------------------------------------

    def _output_groups(self, result: RunResult) -> list[list[Path]]:
        """Each output's files in the order it reported them; unreported written files as one group."""
        root = Path(self.host.folders.output_directory)
        groups = []
        for ui in result.ui.values():
            for items in ui.values() if isinstance(ui, dict) else ():
                entries = items if isinstance(items, list) else []
                paths = [
                    root / (entry.get("subfolder") or "") / entry["filename"]
                    for entry in entries
                    if isinstance(entry, dict)
                    and "filename" in entry
                    and entry.get("type", "output") == "output"
                ]
                if paths:
                    groups.append(paths)
        if groups:
            return groups
        return [
            [p for p in result.files if _is_output(Path(p), root, Path(self.host.folders.temp_directory))]
        ]

    def _record(self, job: Job, result: RunResult, files: list[Path], batch: int) -> dict[str, Any]:
        ok = result.ok
        record = new_record(
            job,
            "done" if ok else "failed",
            self.rank,
            files=self.store.describe_files([p for p in files if Path(p).is_file()]) if ok else [],
            seconds=round(result.seconds / batch, 4),
            call_seconds=round(result.seconds, 4),
            batch=batch,
            peak_rss_bytes=_peak(result, "peak_rss_bytes"),
            peak_cuda_bytes=_peak(result, "peak_cuda_bytes"),
            error=None if ok else _error_text(result),
            prompt_id=result.prompt_id,
        )
        self.store.write(record)
        return record


def _part(group: list[Path], index: int, count: int) -> list[Path]:
    size = len(group) // count
    return group[index * size : (index + 1) * size]


def _is_output(path: Path, root: Path, temp: Path) -> bool:
    """A file the workflow wrote: under the output folder, not the temp folder or the batch state."""
    try:
        inside = path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return inside.parts[:1] != (STATE_DIR,) and not path.resolve().is_relative_to(temp.resolve())


def _peak(result: RunResult, name: str) -> int | None:
    values = [v for r in result.nodes if (v := getattr(r, name, None)) is not None]
    return max(values) if values else None


def _error_text(result: RunResult) -> str:
    error = result.error or {}
    if result.status == "invalid":
        return "invalid: " + "; ".join(validation_reasons(result.validation))
    if "exception_type" in error:
        message = str(error.get("exception_message", "")).strip()
        return f"#{error.get('node_id')} {error.get('node_type')}: {error['exception_type']}: {message}"
    return result.status
