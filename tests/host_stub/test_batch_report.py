"""The batch command's pieces on their own: rank 0's progress (lines and the live bar), records seen
from several machines' folders, and the summary."""

from __future__ import annotations

import io
import time
from pathlib import Path

from host_stub.batch.jobs import RecordStore, merge_known
from host_stub.batch.progress import Progress
from host_stub.batch.report import exit_code, summary


def record(job_id: str, status: str = "done", **extra) -> dict:
    return {"job_id": job_id, "id": f"row-{job_id}", "status": status, "rank": 1, "seconds": 0.5,
            "files": [], "batch": 1, "error": None, **extra}  # fmt: skip


def test_progress_prints_one_line_per_job_as_records_land_and_draws_a_bar(tmp_path):
    store = RecordStore(tmp_path)
    store.check_writable()
    out, bar = io.StringIO(), io.StringIO()
    progress = Progress(store, {"a": "row-a", "b": "row-b"}, out, bar)
    progress.start()
    store.write(record("a", files=[{"path": "clip_00001_.mp4", "size": 1}]))  # another rank's job
    deadline = time.monotonic() + 5
    while "row-a" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert out.getvalue() == "[1/2] done   row-a  rank 1  0.50s  clip_00001_.mp4\n"
    progress.finish([record("a"), record("b", "failed", error="#4 Sample: ValueError: no")])
    assert out.getvalue().splitlines()[1] == "[2/2] failed row-b  rank 1  0.50s  #4 Sample: ValueError: no"
    drawn = bar.getvalue()
    assert "[------------------------] 0/2" in drawn and "[############------------] 1/2 done 1" in drawn
    assert drawn.endswith("\r\033[K")  # the bar is cleared at the end


def test_without_a_terminal_there_is_no_bar(tmp_path):
    store = RecordStore(tmp_path)
    out = io.StringIO()
    progress = Progress(store, {"a": "row-a"}, out, None)
    progress.start()
    progress.finish([record("a")])
    assert out.getvalue() == "[1/1] done   row-a  rank 1  0.50s\n"


def test_records_from_several_folders_agree_a_complete_one_wins(tmp_path):
    here, there = RecordStore(tmp_path / "m0"), RecordStore(tmp_path / "m1")
    for store in (here, there):
        store.check_writable()
    (tmp_path / "m1" / "clip.mp4").write_bytes(b"xyz")
    here.write(record("j", files=[{"path": "clip.mp4", "size": 3}], finished_at=2.0))  # file not here
    there.write(record("j", files=[{"path": "clip.mp4", "size": 3}], finished_at=1.0))
    seen = [here.known(["j"]), there.known(["j"])]
    assert [s["j"]["complete"] for s in seen] == [False, True]
    assert merge_known(seen)["j"]["finished_at"] == 1.0
    (tmp_path / "m1" / "clip.mp4").write_bytes(b"changed")
    assert there.known(["j"])["j"]["complete"] is False  # a file of another size does not count


def test_summary_counts_clips_per_hour_and_rank_balance():
    entries = [
        {"status": "done"}, {"status": "done"}, {"status": "failed"},
        {"status": "skipped", "previous": "done"}, {"status": "skipped", "previous": "failed"},
    ]  # fmt: skip
    ranks = [
        {"rank": 0, "host": "a", "jobs": 2, "calls": 1, "busy_seconds": 9.0, "wall_seconds": 10.0},
        {"rank": 1, "host": "b", "jobs": 1, "calls": 1, "busy_seconds": 5.0, "wall_seconds": 10.0},
    ]
    text = summary(entries, ranks, 10.0, Path("out/batch-report.jsonl"))
    assert text.splitlines() == [
        "batch: 5 jobs: 2 done, 1 failed, 2 skipped in 10.0s",
        "  1 of the skipped failed before: --retry-failed runs them again",
        "  720.0 clips/hour (2 clips in 10.0s, 2 process(es))",
        "  rank 0 (a): 2 jobs in 1 calls, busy 9.0s of 10.0s (90%)",
        "  rank 1 (b): 1 jobs in 1 calls, busy 5.0s of 10.0s (50%)",
        "report: out/batch-report.jsonl",
    ]
    assert exit_code(entries) == 1 and exit_code(entries[:2]) == 0
