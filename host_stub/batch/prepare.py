"""Checking every sweep row against the workflow before any work: overrides, then validation."""

from __future__ import annotations

from typing import Any

from host_stub.api import Host
from host_stub.batch.jobs import Job, job_identity
from host_stub.batch.sweep import SweepError, SweepRow, by_line
from host_stub.errors import OverrideError
from host_stub.validation import ValidationResult


def prepare_jobs(
    host: Host, base: dict[str, Any], rows: list[SweepRow], problems: list[str] | None = None
) -> list[Job]:
    """One job per row, in row order; raises SweepError listing every row that cannot run (with
    ``problems`` found while reading the sweep)."""
    jobs, problems = [], list(problems or [])
    first_of: dict[str, SweepRow] = {}
    for row in rows:
        label = f"{row.where} (id {row.id!r})"
        try:
            prompt = host.apply_overrides(base, row.override_list())
        except OverrideError as exc:
            problems.append(f"{label}: {exc}")
            continue
        check = host.validate(prompt)
        if not check.ok:
            problems += [f"{label}: {reason}" for reason in validation_reasons(check)]
            continue
        job = Job(row, job_identity(prompt), prompt)
        if job.job_id in first_of:
            earlier = first_of[job.job_id]
            problems.append(f"{label}: the same job as {earlier.where} (id {earlier.id!r})")
            continue
        first_of[job.job_id] = row
        jobs.append(job)
    if problems:
        raise SweepError(by_line(problems))
    return jobs


def validation_reasons(check: ValidationResult) -> list[str]:
    """One line per reason a prompt is invalid, as ``python -m host_stub validate`` words them."""
    reasons = []
    for node_id, entry in check.node_errors.items():
        for reason in entry.get("errors", []):
            details = f": {reason['details']}" if reason.get("details") else ""
            reasons.append(f"#{node_id} {entry.get('class_type')}: {reason['message']}{details}")
    if not reasons and check.error:
        details = f" ({check.error['details']})" if check.error.get("details") else ""
        reasons.append(f"{check.error.get('message')}{details}")
    return reasons
