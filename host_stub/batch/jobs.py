"""Jobs: a sweep row checked against the workflow, its identity, and its record on disk.

A job's identity is a hash of the API prompt with the row's overrides applied (values read by
type, titles left out), so the same work has the same id whether a row names a node by id,
title or class. Finished jobs are recorded as ``<output>/.batch/jobs/<job id>.json``, written
atomically; a record of a done job counts only while every output file it lists is still there
with its recorded size.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from host_stub.batch.sweep import SweepRow

STATE_DIR = ".batch"
ID_LENGTH = 20


@dataclass(frozen=True)
class Job:
    row: SweepRow
    job_id: str
    prompt: dict[str, Any]  # the API prompt with the row's overrides applied

    @property
    def index(self) -> int:
        return self.row.index


def canonical(prompt: dict[str, Any]) -> str:
    """The prompt as canonical JSON, without ``_meta`` (titles do not change what runs)."""
    bare = {node_id: {k: v for k, v in node.items() if k != "_meta"} for node_id, node in prompt.items()}
    return json.dumps(bare, sort_keys=True, separators=(",", ":"), default=str)


def job_identity(prompt: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(prompt).encode("utf-8")).hexdigest()[:ID_LENGTH]


# --- records ------------------------------------------------------------------------------------


def new_record(job: Job, status: str, rank: int, **fields: Any) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "id": job.row.id,
        "overrides": job.row.overrides,
        "status": status,  # "done" or "failed"
        "rank": rank,
        "host": socket.gethostname(),
        "finished_at": time.time(),
        **fields,
    }


class RecordStore:
    """The per-job records under ``<output>/.batch/jobs``."""

    def __init__(self, output_dir: str | Path):
        self.output_dir = Path(output_dir)
        self.folder = self.output_dir / STATE_DIR / "jobs"

    def check_writable(self) -> None:
        """Make the folders and write a probe file; raises OSError with a clear message if it cannot."""
        probe = self.folder / f".probe-{os.getpid()}"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise OSError(
                f"the output folder {self.output_dir} is not writable: {exc.strerror or exc}"
            ) from exc

    def path(self, job_id: str) -> Path:
        return self.folder / f"{job_id}.json"

    def write(self, record: dict[str, Any]) -> None:
        write_atomic(self.path(record["job_id"]), json.dumps(record, indent=1, default=str) + "\n")

    def read(self, job_id: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.path(job_id).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return None  # unreadable (a torn copy from another tool): the job runs again

    def stamp(self, job_id: str) -> int | None:
        """The record's modification time (ns), or None: how a watcher sees that it changed."""
        try:
            return self.path(job_id).stat().st_mtime_ns
        except OSError:
            return None

    def known(self, job_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The records of these jobs, each with ``complete``: its outputs are all here."""
        found = {}
        for job_id in job_ids:
            record = self.read(job_id)
            if record is not None:
                record["complete"] = record.get("status") == "done" and self.outputs_present(record)
                found[job_id] = record
        return found

    def outputs_present(self, record: dict[str, Any]) -> bool:
        for item in record.get("files", []):
            path = self.output_dir / item["path"]
            try:
                if path.stat().st_size != item["size"]:
                    return False
            except OSError:
                return False
        return True

    def describe_files(self, paths: list[Path]) -> list[dict[str, Any]]:
        """Files as records keep them: the path inside the output folder (or absolute) and size."""
        described = []
        for path in paths:
            path = Path(path)
            with contextlib.suppress(ValueError):
                path = path.resolve().relative_to(self.output_dir.resolve())
            described.append({"path": path.as_posix(), "size": (self.output_dir / path).stat().st_size})
        return described


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so a reader sees the old file or the whole new one, never part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def merge_known(per_rank: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """One view of the records every rank sees (machines may have their own output folders):
    a complete record wins, then the latest."""
    merged: dict[str, dict[str, Any]] = {}
    for records in per_rank:
        for job_id, record in records.items():
            held = merged.get(job_id)
            key = (record.get("complete", False), record.get("finished_at", 0))
            if held is None or key > (held.get("complete", False), held.get("finished_at", 0)):
                merged[job_id] = record
    return merged
