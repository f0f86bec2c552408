"""``python -m host_stub batch`` in one process: sweep files and grids, checks before any work, seed
batching, resuming, failures, an unwritable output folder and a killed run."""

from __future__ import annotations

import json
import signal
from collections import Counter
from pathlib import Path

import pytest

from host_stub.batch.sweep import read_sweep
from host_stub.cli import main
from tests.host_stub.batch_support.helpers import Workspace, clips_called, grey_mean, job_key, run_cli

GRID = {
    "id": "g",
    "LoadImage.image": ["a.png", "b.png"],
    "SweepSample.prompt": ["sun", "rain"],
    "SweepSample.seed": {"range": [0, 4]},
}  # 2 images x 2 prompts x 4 seeds = 16 jobs


@pytest.fixture
def ws(tmp_path, monkeypatch) -> Workspace:
    space = Workspace(tmp_path).setup()
    monkeypatch.setenv("SWEEP_TEST_LOG", str(space.log))
    return space


def batch(ws: Workspace, sweep: Path, *extra: str) -> int:
    return main(["batch", *ws.args(sweep, *extra)])


def clip_of(ws: Workspace, entry: dict) -> dict:
    (path,) = entry["files"]
    return json.loads((ws.output / path).read_text(encoding="utf-8"))


# --- sweep files ----------------------------------------------------------------------------------


def test_list_range_and_glob_values_expand_to_images_x_prompts_x_seeds(ws):
    rows = read_sweep(ws.sweep([{**GRID, "LoadImage.image": {"glob": "[ab].png"}}]), ws.input)
    assert [r.id for r in rows] == [f"g-{n:02d}" for n in range(16)]
    assert rows[0].overrides == {
        "LoadImage.image": "a.png",
        "SweepSample.prompt": "sun",
        "SweepSample.seed": "0",
    }
    assert rows[5].overrides == {
        "LoadImage.image": "a.png",
        "SweepSample.prompt": "rain",
        "SweepSample.seed": "1",
    }
    assert [r.index for r in rows] == list(range(16))


def test_a_grid_object_and_fixed_values_expand_the_same_way(ws):
    row = {
        "grid": {"SweepSample.seed": [7, 8], "SweepSample.prompt": ["p"]},
        "SweepModel.name": "m",
        "x.flag": True,
    }
    rows = read_sweep(ws.sweep([row]), ws.input)
    assert [r.id for r in rows] == ["line1-0", "line1-1"]
    assert rows[1].overrides == {
        "SweepModel.name": "m",
        "x.flag": "true",
        "SweepSample.seed": "8",
        "SweepSample.prompt": "p",
    }


def test_csv_rows_are_plain_and_an_empty_cell_leaves_the_input_alone(ws):
    path = ws.root / "sweep.csv"
    path.write_text("id,SweepSample.prompt,SweepSample.seed\none,a cat,3\ntwo,,4\n", encoding="utf-8")
    rows = read_sweep(path, ws.input)
    assert [(r.id, r.overrides) for r in rows] == [
        ("one", {"SweepSample.prompt": "a cat", "SweepSample.seed": "3"}),
        ("two", {"SweepSample.seed": "4"}),
    ]


def test_every_bad_row_is_listed_before_any_work(ws, capsys):
    sweep = ws.root / "bad.jsonl"
    lines = [
        json.dumps({"id": "ok", "SweepSample.seed": 1}),
        json.dumps({"id": "node", "NoSuchNode.seed": 1}),
        json.dumps({"id": "input", "SweepSample.steps": 4}),
        json.dumps({"id": "image", "LoadImage.image": "missing.png"}),
        "{not json",
        json.dumps({"id": "ok", "SweepSample.seed": 2}),
        json.dumps({"id": "same", "4.seed": 1}),
        json.dumps({"id": "value", "SweepSample.seed": "many"}),
    ]
    sweep.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert batch(ws, sweep) == 2
    err = capsys.readouterr().err
    assert "error: 7 bad sweep row(s)" in err
    assert "line 2 (id 'node'): --set: no node has the id, title or class 'NoSuchNode'" in err
    assert "line 3 (id 'input'): --set: #4 SweepSample has no input 'steps'" in err
    assert "line 4 (id 'image'): #1 LoadImage: " in err and "missing.png" in err
    assert "line 5: not JSON" in err
    assert "line 6: id 'ok' is already used at line 1" in err
    assert "line 7 (id 'same'): the same job as line 1 (id 'ok')" in err
    assert "line 8 (id 'value'): --set: 'many' is not a valid INT" in err
    assert ws.logged("calls") == []
    assert not list((ws.output / ".batch" / "jobs").glob("*.json"))


def test_an_unwritable_output_folder_stops_at_once(ws, capsys):
    blocker = ws.root / "a-file"
    blocker.write_text("", encoding="utf-8")
    sweep = ws.sweep([GRID])
    code = main(["batch", *ws.args(sweep), "--output-dir", str(blocker / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert f"error: the output folder {blocker / 'out'} is not writable" in err
    assert ws.logged("calls") == []


# --- running --------------------------------------------------------------------------------------


def test_a_sweep_of_16_jobs_runs_in_one_process_with_consecutive_seeds_batched(ws, capsys):
    assert batch(ws, ws.sweep([GRID])) == 0
    entries = ws.entries()
    assert [e["id"] for e in entries] == [f"g-{n:02d}" for n in range(16)]
    assert {e["status"] for e in entries} == {"done"}
    for entry in entries:  # each job's file holds its own clip: image, prompt and seed
        clip = clip_of(ws, entry)
        assert (clip["image"], clip["prompt"], clip["seed"]) == job_key(entry)
        assert entry["seconds"] > 0 and entry["peak_rss_bytes"] > 0 and entry["error"] is None
    calls = ws.logged("calls")
    # 4 seeds per image and prompt, at most 3 per call (SweepGuard's batch_size max): 3 + 1, four times
    assert sorted(c["batch_size"] for c in calls) == [1, 1, 1, 1, 3, 3, 3, 3]
    assert sorted(clips_called(calls)) == sorted(job_key(e) for e in entries)
    out = capsys.readouterr().out
    assert "batch: 16 jobs, 0 already recorded, 16 to run in 8 calls on 1 process(es)" in out
    assert "batch: 16 jobs: 16 done, 0 failed, 0 skipped" in out and "clips/hour" in out
    assert out.count(" done ") == 16  # one line per finished job
    assert "rank 0 (" in out and ": 16 jobs in 8 calls" in out


def test_without_seed_batching_each_row_is_one_call_with_the_same_clips(ws, tmp_path):
    assert batch(ws, ws.sweep([GRID])) == 0
    batched = {e["job_id"]: clip_of(ws, e) for e in ws.entries()}
    ws.clear_log()
    single = Workspace(tmp_path / "single")
    assert batch(ws, ws.sweep([GRID]), "--no-batch-seeds", "--output-dir", str(single.output)) == 0
    assert [c["batch_size"] for c in ws.logged("calls")] == [1] * 16
    assert {e["job_id"]: clip_of(single, e) for e in single.entries()} == batched


def test_a_rerun_skips_recorded_jobs_and_redoes_one_whose_output_is_gone(ws, capsys):
    sweep = ws.sweep([GRID])
    assert batch(ws, sweep) == 0
    ws.clear_log()
    assert batch(ws, sweep) == 0
    assert ws.logged("calls") == []
    assert {e["status"] for e in ws.entries()} == {"skipped"}
    assert {e["previous"] for e in ws.entries()} == {"done"}
    gone = ws.entries()[5]
    (ws.output / gone["files"][0]).unlink()
    capsys.readouterr()
    assert batch(ws, sweep) == 0
    assert clips_called(ws.logged("calls")) == [job_key(gone)]
    assert [e["id"] for e in ws.entries() if e["status"] == "done"] == [gone["id"]]
    assert "16 jobs, 15 already recorded, 1 to run in 1 calls" in capsys.readouterr().out


def test_a_failing_row_is_recorded_while_the_others_finish_and_retry_failed_reruns_only_it(ws, capsys):
    rows = [GRID, {"id": "bad", "SweepSample.prompt": "fail", "SweepSample.seed": 9}]
    sweep = ws.sweep(rows)
    assert batch(ws, sweep) == 1
    entries = {e["id"]: e for e in ws.entries()}
    assert entries["bad"]["status"] == "failed" and entries["bad"]["files"] == []
    assert entries["bad"]["error"] == "#4 SweepSample: ValueError: cannot sample 'fail'"
    assert sum(e["status"] == "done" for e in entries.values()) == 16
    assert "16 done, 1 failed, 0 skipped" in capsys.readouterr().out
    ws.clear_log()
    assert batch(ws, sweep) == 1  # still failed: recorded, not run again
    assert ws.logged("calls") == []
    assert {e["id"]: e.get("previous") for e in ws.entries()}["bad"] == "failed"
    assert "--retry-failed runs them again" in capsys.readouterr().out
    assert batch(ws, sweep, "--retry-failed") == 1
    assert clips_called(ws.logged("calls")) == [(grey_mean("a.png"), "fail", 9)]


def test_a_failing_batched_call_runs_its_rows_one_by_one(ws):
    rows = [{"id": "f", "SweepSample.prompt": ["fail", "fine"], "SweepSample.seed": {"range": [0, 3]}}]
    assert batch(ws, ws.sweep(rows)) == 1
    status = {e["id"]: e["status"] for e in ws.entries()}
    assert status == {
        "f-0": "failed",
        "f-1": "failed",
        "f-2": "failed",
        "f-3": "done",
        "f-4": "done",
        "f-5": "done",
    }
    sizes = Counter((c["prompt"], c["batch_size"]) for c in ws.logged("calls"))
    assert sizes == {("fail", 3): 1, ("fail", 1): 3, ("fine", 3): 1}


def test_only_consecutive_seeds_of_otherwise_equal_rows_share_a_call(ws, capsys):
    rows = [
        {"id": "s", "SweepSample.seed": [0, 1, 2, 5, 6, 9]},
        {"id": "x", "SweepSample.seed": 3, "4.prompt": "y"},
        {"id": "two", "SweepSample.seed": 7, "SweepGuard.batch_size": 2},  # two clips already: alone
        {"id": "t", "SweepSample.seed": 3},
    ]
    assert batch(ws, ws.sweep(rows), "--dry-run") == 0
    assert "rank 0: s-0+s-1+s-2, t, s-3+s-4, s-5, x, two" in capsys.readouterr().out
    assert batch(ws, ws.sweep(rows), "--dry-run", "--max-batch", "2") == 0
    assert "rank 0: s-0+s-1, s-2+t, s-3+s-4, s-5, x, two" in capsys.readouterr().out
    assert batch(ws, ws.sweep(rows), "--dry-run", "--no-batch-seeds") == 0
    assert "rank 0: s-0, s-1, s-2, s-3, s-4, s-5, x, two, t" in capsys.readouterr().out
    assert ws.logged("calls") == [] and not ws.report.exists()


def test_a_killed_run_resumes_without_running_a_job_twice(ws):
    sweep = ws.sweep([GRID])
    killed = run_cli(ws.args(sweep), ws.env(SWEEP_TEST_DIE_AT="rain:3"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    recorded = {p.stem for p in (ws.output / ".batch" / "jobs").glob("*.json")}
    assert 0 < len(recorded) < 16
    before = clips_called(ws.logged("calls"))
    ws.clear_log()
    resumed = run_cli(ws.args(sweep), ws.env())
    assert resumed.returncode == 0, resumed.stderr
    entries = ws.entries()
    assert {e["job_id"] for e in entries if e["status"] == "skipped"} == recorded
    again = clips_called(ws.logged("calls"))
    done_before = {job_key(e) for e in entries if e["job_id"] in recorded}
    assert not done_before & set(again)  # nothing recorded ran again
    assert sorted(done_before | set(again)) == sorted(job_key(e) for e in entries)
    assert len(again) == len(set(again)) and set(before) >= done_before
