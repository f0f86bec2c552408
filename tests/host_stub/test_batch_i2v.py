"""A sweep of 12 clips on the tiny Wan 2.1 model, in 2 processes under torchrun (gloo): the i2v pack's
VRAMGuard -> I2VSample batch_size link is found and consecutive seeds run as one call, each clip
gets its own file, each process loads the model once, and a batched clip is the very file the
same row makes alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from PIL import Image, ImageOps

from host_stub.cli import main
from i2v_nodes.runtime.output import video
from tests.host_stub.batch_support.helpers import REPO, Workspace, torchrun
from tests.i2v_graph import tiny_wan_graph

PROBE = Path(__file__).parent / "batch_support" / "i2v_probe.py"
WORKFLOW = tiny_wan_graph("a.png", "i2v/clip", seed=0, target_fps=8, save_metadata=False)
GRID = {"id": "w", "LoadImage.image": ["a.png", "b.png"], "I2VSample.prompt": ["waves", "a storm"],
        "I2VSample.seed": {"range": [10, 13]}}  # fmt: skip


def test_twelve_tiny_wan_clips_in_two_processes_batch_seeds_and_load_the_model_once_each(
    session_dirs, model_dirs, tmp_path
):
    from i2v_nodes.runtime.loading.models import tiny_model_folder

    tiny_model_folder("tiny-wan2.1-i2v", model_dirs[0])  # built once here, not by both ranks at once
    ws = Workspace(tmp_path)
    ws.input.mkdir(parents=True)
    ws.log.mkdir()
    shutil.copy(REPO / "examples" / "i2v-example.png", ws.input / "a.png")
    ImageOps.mirror(Image.open(ws.input / "a.png").convert("RGB")).save(ws.input / "b.png")
    ws.workflow.write_text(json.dumps(WORKFLOW), encoding="utf-8")
    sweep = ws.sweep([GRID])
    args = ws.args(sweep, "--models-dir", str(session_dirs["models"]), packs=(REPO,))

    run = torchrun(args, ws.env(I2V_CPU_AUTO_PRECISION="fp32"), script=str(PROBE), timeout=400)
    assert run.returncode == 0, run.stderr[-4000:]
    entries = ws.entries()
    assert len(entries) == 12 and {e["status"] for e in entries} == {"done"}
    assert {e["rank"] for e in entries} == {0, 1}
    assert {e["batch"] for e in entries} == {3}  # 10, 11, 12 of each image and prompt: one call
    files = [f for e in entries for f in e["files"]]
    assert len(files) == len(set(files)) == 12 and all(len(e["files"]) == 1 for e in entries)
    for path in files:
        info = video.probe_video(ws.output / path)
        assert (info.frame_count, info.width, info.height) == (9, 64, 48)
    loads = [json.loads(p.read_text()) for p in sorted(ws.log.glob("i2v-loads-*.json"))]
    assert [(p["rank"], p["loads"], p["threads"]) for p in loads] == [(0, 1, 1), (1, 1, 1)]

    # The same three rows one call each, here: the same files, byte for byte
    alone = Workspace(tmp_path / "alone")
    three = ws.sweep([{**GRID, "LoadImage.image": "b.png", "I2VSample.prompt": "a storm"}], "three.jsonl")
    assert main(["batch", *ws.args(three, "--models-dir", str(session_dirs["models"]), "--no-batch-seeds",
                                   "--output-dir", str(alone.output), packs=(REPO,))]) == 0  # fmt: skip
    batched = {e["job_id"]: (ws.output / e["files"][0]).read_bytes() for e in entries}
    singles = alone.entries()
    assert [e["batch"] for e in singles] == [1, 1, 1]
    for entry in singles:
        assert (alone.output / entry["files"][0]).read_bytes() == batched[entry["job_id"]]


def test_two_processes_on_a_fresh_models_folder_both_finish_every_job(tmp_path):
    """Nothing built beforehand: both ranks ask for the tiny model at once; one builds it (under the
    first-use lock), the other waits and uses it, and every job is done."""
    ws = Workspace(tmp_path)
    ws.input.mkdir(parents=True)
    ws.log.mkdir()
    shutil.copy(REPO / "examples" / "i2v-example.png", ws.input / "a.png")
    ImageOps.mirror(Image.open(ws.input / "a.png").convert("RGB")).save(ws.input / "b.png")
    ws.workflow.write_text(json.dumps(WORKFLOW), encoding="utf-8")
    sweep = ws.sweep([{"id": "f", "LoadImage.image": ["a.png", "b.png"], "I2VSample.seed": 7}])
    fresh = tmp_path / "models"
    run = torchrun(ws.args(sweep, "--models-dir", str(fresh), packs=(REPO,)),
                   ws.env(I2V_CPU_AUTO_PRECISION="fp32"), timeout=400)
    assert run.returncode == 0, run.stderr[-4000:]
    entries = ws.entries()
    assert len(entries) == 2 and {e["status"] for e in entries} == {"done"}
    assert {e["rank"] for e in entries} == {0, 1}
    assert (fresh / "i2v" / "tiny-wan2.1-i2v" / "model_index.json").is_file()
    assert not [p for p in (fresh / "i2v").iterdir() if p.name.startswith(".")]
