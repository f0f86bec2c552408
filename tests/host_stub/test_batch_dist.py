"""``python -m host_stub batch`` in 2 processes under ``torchrun --standalone --nproc_per_node 2`` (gloo):
the rows split with no job run twice and none left out, the report gathered on rank 0, one model
load per process, and a crashed rank's rows picked up by the rerun."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.host_stub.batch_support.helpers import Workspace, clips_called, job_key, torchrun

# 3 images x 2 prompts x 2 seeds + 1 = 13 jobs in 7 calls: an odd count, so the shares differ
ROWS = [
    {"id": "g", "LoadImage.image": ["a.png", "b.png", "c.png"], "SweepSample.prompt": ["sun", "rain"],
     "SweepSample.seed": [0, 1]},
    {"id": "odd", "SweepSample.prompt": "odd", "SweepSample.seed": 5},
]  # fmt: skip


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return Workspace(tmp_path).setup()


def test_two_processes_split_the_rows_with_no_job_run_twice_and_gather_the_report(ws):
    run = torchrun(ws.args(ws.sweep(ROWS)), ws.env(SWEEP_TEST_SLEEP="0.05"))
    assert run.returncode == 0, run.stderr[-3000:]
    entries = ws.entries()
    assert len(entries) == 13 and {e["status"] for e in entries} == {"done"}
    calls = ws.logged("calls")
    clips = clips_called(calls)
    assert Counter(clips) == Counter(job_key(e) for e in entries)  # every job once, none twice
    by_rank = Counter(e["rank"] for e in entries)
    assert set(by_rank) == {0, 1} and abs(by_rank[0] - by_rank[1]) <= 1  # an even share of jobs
    assert {c["rank"] for c in calls} == {0, 1}
    assert any(c["batch_size"] == 2 for c in calls)  # seeds still batched within a share
    loads = ws.logged("loads")
    assert sorted(load["rank"] for load in loads) == [0, 1]  # each process loaded the model once
    assert len({load["pid"] for load in loads}) == 2
    # rank 0 alone prints: the plan, one line per job, and the summary with both ranks
    assert run.stdout.count("batch: 13 jobs, 0 already recorded") == 1
    assert run.stdout.count(" done ") == 13
    assert "13 done, 0 failed, 0 skipped" in run.stdout
    assert "rank 0 (" in run.stdout and "rank 1 (" in run.stdout


def test_a_crashed_rank_leaves_its_rows_to_the_rerun_and_no_job_runs_twice(ws):
    sweep = ws.sweep(ROWS)
    # "odd" is the last call, in rank 1's share: rank 1 dies there, torchrun stops rank 0 too
    crashed = torchrun(ws.args(sweep), ws.env(SWEEP_TEST_DIE_AT="odd:5", SWEEP_TEST_SLEEP="0.05"))
    assert crashed.returncode != 0
    recorded = {p.stem for p in (ws.output / ".batch" / "jobs").glob("*.json")}
    assert 0 < len(recorded) < 13
    ws.clear_log()
    rerun = torchrun(ws.args(sweep), ws.env())
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    entries = ws.entries()
    assert {e["job_id"] for e in entries if e["status"] == "skipped"} == recorded
    again = clips_called(ws.logged("calls"))
    done_before = {job_key(e) for e in entries if e["job_id"] in recorded}
    assert not done_before & set(again) and len(again) == len(set(again))
    assert sorted(done_before | set(again)) == sorted(job_key(e) for e in entries)
    assert f"{13 - len(recorded)} done, 0 failed, {len(recorded)} skipped" in rerun.stdout
