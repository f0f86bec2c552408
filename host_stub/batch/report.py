"""The gathered report (``batch-report.jsonl``, one line per sweep row) and the summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from host_stub.batch.jobs import Job, write_atomic

REPORT_NAME = "batch-report.jsonl"


def report_entries(
    jobs: list[Job], ran: dict[str, dict[str, Any]], known: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """One entry per job in sweep order: what this run did, or the record it skipped on."""
    entries = []
    for job in jobs:
        record = ran.get(job.job_id)
        status = record["status"] if record is not None else "skipped"
        record = record or known.get(job.job_id) or {}
        entry = {
            "id": job.row.id,
            "job_id": job.job_id,
            "overrides": job.row.overrides,
            "status": status,
            "files": [f["path"] for f in record.get("files", [])],
            "seconds": record.get("seconds"),
            "peak_rss_bytes": record.get("peak_rss_bytes"),
            "peak_cuda_bytes": record.get("peak_cuda_bytes"),
            "error": record.get("error"),
            "rank": record.get("rank"),
            "host": record.get("host"),
            "batch": record.get("batch"),
        }
        if status == "skipped":
            entry["previous"] = record.get("status")
        entries.append(entry)
    return entries


def write_report(path: Path, entries: list[dict[str, Any]]) -> None:
    write_atomic(path, "".join(json.dumps(e, default=str) + "\n" for e in entries))


def counts(entries: list[dict[str, Any]]) -> dict[str, int]:
    return {
        "jobs": len(entries),
        "done": sum(e["status"] == "done" for e in entries),
        "failed": sum(e["status"] == "failed" for e in entries),
        "skipped": sum(e["status"] == "skipped" for e in entries),
        "skipped_failed": sum(e.get("previous") == "failed" for e in entries),
    }


def summary(entries: list[dict[str, Any]], ranks: list[dict[str, Any]], wall: float, report: Path) -> str:
    """Jobs done, failed and skipped; clips per hour; and how evenly the ranks were loaded."""
    n = counts(entries)
    lines = [
        f"batch: {n['jobs']} jobs: {n['done']} done, {n['failed']} failed, {n['skipped']} skipped "
        f"in {wall:.1f}s",
    ]
    if n["skipped_failed"]:
        lines.append(f"  {n['skipped_failed']} of the skipped failed before: --retry-failed runs them again")
    rate = n["done"] / wall * 3600 if wall > 0 else 0.0
    lines.append(f"  {rate:.1f} clips/hour ({n['done']} clips in {wall:.1f}s, {len(ranks)} process(es))")
    for stat in ranks:
        busy = stat["busy_seconds"]
        share = busy / stat["wall_seconds"] if stat["wall_seconds"] else 0.0
        lines.append(
            f"  rank {stat['rank']} ({stat['host']}): {stat['jobs']} jobs in {stat['calls']} calls, "
            f"busy {busy:.1f}s of {stat['wall_seconds']:.1f}s ({share:.0%})"
        )
    lines.append(f"report: {report}")
    return "\n".join(lines)


def exit_code(entries: list[dict[str, Any]]) -> int:
    """0 when every job is done (now or before), 1 when one failed (now, or before and not retried)."""
    bad = [e for e in entries if e["status"] == "failed" or e.get("previous") == "failed"]
    return 1 if bad else 0
