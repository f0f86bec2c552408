"""``python -m host_stub batch WORKFLOW --sweep SWEEP``: a sweep of jobs over 1..N processes.

Every process reads the sweep, checks every row and reads the records; they agree on what is
left, group it into calls and take their share with accelerate's ``split_between_processes``;
rank 0 gathers the results, writes ``batch-report.jsonl`` and prints the summary.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import socket
import sys
import time
from pathlib import Path
from typing import Any

from host_stub.api import Host
from host_stub.batch import dist
from host_stub.batch.jobs import Job, RecordStore, merge_known
from host_stub.batch.plan import find_target, plan_units
from host_stub.batch.prepare import prepare_jobs
from host_stub.batch.progress import Progress
from host_stub.batch.report import REPORT_NAME, exit_code, report_entries, summary, write_report
from host_stub.batch.runner import Runner
from host_stub.batch.sweep import SweepError, load_rows
from host_stub.errors import WorkflowError

EXIT_OK, EXIT_ERROR, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130
log = logging.getLogger("host_stub.batch")


class Stop(Exception):
    """Every process stops before any work: the messages say why (printed once, by rank 0)."""

    def __init__(self, messages: list[str]):
        self.messages = messages
        super().__init__("; ".join(messages))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The batch options (the host's --packs and folder options come from the CLI's parent parser)."""
    parser.add_argument("workflow", help="workflow JSON file, API or UI format")
    parser.add_argument(
        "--sweep", required=True, metavar="SWEEP", help="JSONL or CSV rows of NODE.input overrides"
    )
    parser.add_argument(
        "--batch-seeds",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run consecutive seeds of otherwise equal rows as one call of batch_size clips (default on)",
    )
    parser.add_argument(
        "--max-batch", type=int, default=4, metavar="N", help="most seeds in one call (default 4)"
    )
    parser.add_argument("--seed-input", metavar="NODE.input", help="the seed to batch (default: found)")
    parser.add_argument("--batch-size-input", metavar="NODE.input", help="the clip count (default: found)")
    parser.add_argument("--retry-failed", action="store_true", help="run jobs recorded as failed again")
    parser.add_argument(
        "--report", metavar="FILE", help=f"the gathered report (default OUTPUT_DIR/{REPORT_NAME})"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="check the sweep and print the plan; run nothing"
    )
    parser.add_argument(
        "--wait-timeout",
        type=float,
        default=dist.DEFAULT_WAIT_SECONDS,
        metavar="S",
        help="how long a finished process waits for the others (default one day)",
    )


def main(args: argparse.Namespace) -> int:
    state = dist.start(args.wait_timeout)
    _logging(args.verbose, state.process_index)
    try:
        code = _run(args, state)
    except Stop as exc:
        if state.is_main_process:
            for message in dict.fromkeys(exc.messages):
                print(f"error: {message}", file=sys.stderr)
        code = EXIT_INVALID
    except KeyboardInterrupt:
        print(
            f"rank {state.process_index}: interrupted; finished jobs are recorded, run the same command "
            "again to resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    dist.finish(state, code)  # every process got here together: leave the group only then
    return code


def _logging(verbose: bool, rank: int) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        stream=sys.stderr,
        format=f"%(levelname)s rank {rank} %(name)s: %(message)s",
    )


def _agree(state: Any, step: Any) -> Any:
    """Run ``step()`` on every process; if it fails on any, all of them stop with the reasons."""
    value, message = None, None
    try:
        value = step()
    except (WorkflowError, OSError) as exc:
        message = str(exc)
    errors = dist.gather_errors(state, message)
    if errors:
        raise Stop(errors)
    return value


def _run(args: argparse.Namespace, state: Any) -> int:
    output_dir = Path(args.output_dir or "output").expanduser().resolve()
    store = RecordStore(output_dir)
    _agree(state, store.check_writable)
    host = Host(args.packs, args.input_dir, output_dir, args.models_dir, args.temp_dir)
    for load in host.failed_packs:
        log.warning("pack %s failed to load: %s", load.path, load.error)
    source, jobs = _agree(state, lambda: _read(host, args))
    target = _agree(state, lambda: _target(host, jobs, args))
    known = merge_known(dist.all_gather(state, store.known([job.job_id for job in jobs])))
    pending = [j for j in jobs if _to_run(known.get(j.job_id), args.retry_failed)]
    units = plan_units(pending, target)
    if state.is_main_process:
        print(
            f"batch: {len(jobs)} jobs, {len(jobs) - len(pending)} already recorded, {len(pending)} to run "
            f"in {len(units)} calls on {state.num_processes} process(es)",
            flush=True,
        )
    if args.dry_run:
        return _dry_run(state, units, target)
    runner = Runner(host, source, store, state.process_index, target)
    ran, ranks, wall = _share(
        state, runner, units, _progress(store, pending) if state.is_main_process else None
    )
    entries = report_entries(jobs, ran, known)
    if state.is_main_process:
        report = Path(args.report) if args.report else output_dir / REPORT_NAME
        write_report(report, entries)
        print(summary(entries, ranks, wall, report), flush=True)
    return exit_code(entries)


def _share(
    state: Any, runner: Runner, units: list[list[Job]], progress: Progress | None
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]], float]:
    """This process's share of the calls; then every process's records (by job id) and rank figures."""
    started = time.monotonic()
    with state.split_between_processes(_in_call_order(units)) as mine:
        if progress is not None:
            progress.start()
        records = runner.run(plan_units(mine, runner.target))
    stat = _rank_stat(state, runner, records, time.monotonic() - started)
    gathered = dist.all_gather(state, (records, stat))
    ran = {r["job_id"]: r for recs, _ in gathered for r in recs}
    if progress is not None:
        progress.finish(list(ran.values()))
    return ran, [s for _, s in gathered], time.monotonic() - started


def _read(host: Host, args: argparse.Namespace) -> tuple[Any, list[Job]]:
    try:
        source = json.loads(Path(args.workflow).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WorkflowError(f"cannot read workflow {args.workflow}: {exc}") from exc
    base = host.convert(copy.deepcopy(source))
    rows, problems = load_rows(args.sweep, host.folders.input_directory)
    return source, prepare_jobs(host, base, rows, problems)


def _target(host: Host, jobs: list[Job], args: argparse.Namespace) -> Any:
    if not args.batch_seeds or args.max_batch < 2:
        return None
    base = jobs[0].prompt
    try:
        return find_target(host, base, args.seed_input, args.batch_size_input, args.max_batch)
    except WorkflowError as exc:
        raise SweepError([f"--seed-input/--batch-size-input: {exc}"]) from exc


def _to_run(record: dict[str, Any] | None, retry_failed: bool) -> bool:
    if record is None:
        return True
    if record.get("status") == "failed":
        return retry_failed
    return not record.get("complete", False)  # done, but an output file is gone or changed


def _progress(store: RecordStore, pending: list[Job]) -> Progress:
    bar = sys.stderr if sys.stderr.isatty() else None
    return Progress(store, {j.job_id: j.row.id for j in pending}, sys.stdout, bar)


def _rank_stat(state: Any, runner: Runner, records: list[dict[str, Any]], wall: float) -> dict[str, Any]:
    return {
        "rank": state.process_index,
        "host": socket.gethostname(),
        "jobs": len(records),
        "calls": runner.calls,
        "busy_seconds": round(runner.busy_seconds, 3),
        "wall_seconds": round(wall, 3),
    }


def _in_call_order(units: list[list[Job]]) -> list[Job]:
    """The jobs in call order: each process takes a contiguous slice (an even share of jobs) and
    groups it into calls again, so only a call cut by a slice's edge gets smaller."""
    return [job for unit in units for job in unit]


def _dry_run(state: Any, units: list[list[Job]], target: Any) -> int:
    with state.split_between_processes(_in_call_order(units)) as mine:
        shares = dist.all_gather(state, [[job.row.id for job in unit] for unit in plan_units(mine, target)])
    if state.is_main_process:
        for rank, share in enumerate(shares):
            calls = ", ".join("+".join(unit) for unit in share) or "nothing"
            print(f"rank {rank}: {calls}")
    return EXIT_OK
