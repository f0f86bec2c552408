"""The shipped tier workflows: they validate, convert, run in the stub and fit their cards."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from host_stub import Host
from i2v_nodes.runtime import memory, models, video

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((REPO / "workflows").glob("i2v-*.json"))
CARDS_GIB = {"i2v-preview": 8, "i2v-12gb": 12, "i2v-24gb": 24, "i2v-40gb": 40}
SCALED_DOWN = ["LoadI2VModel.model=tiny-i2vgen-xl", "VRAMGuard.width=64", "VRAMGuard.height=48",
               "VRAMGuard.num_frames=8", "I2VSample.steps=2"]


@pytest.fixture(scope="module")
def host(session_dirs) -> Host:
    shutil.copy(REPO / "examples" / "i2v-example.png", session_dirs["input"])
    folders = {f"{name}_dir": str(session_dirs[name]) for name in ("input", "output", "models")}
    return Host(packs=[str(REPO)], **folders)


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_one_workflow_per_tier():
    assert [p.stem for p in WORKFLOWS] == sorted(CARDS_GIB)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_validates_against_current_nodes(host, path):
    check = host.validate(host.convert(load(path)))
    assert check.ok, json.dumps(check.response(), indent=2)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_api_copy_is_what_the_converter_makes(host, path):
    api = load(REPO / "workflows" / "api" / path.name)
    assert api == host.convert(load(path))


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_runs_end_to_end_scaled_down(host, path, session_dirs):
    result = host.run(load(path), overrides=SCALED_DOWN)
    assert result.status == "success", result.error
    (video_file,) = [Path(f) for f in result.files if str(f).endswith(".mp4")]
    info = video.probe_video(video_file)
    api = load(REPO / "workflows" / "api" / path.name)
    fps = next(n["inputs"]["target_fps"] for n in api.values() if n["class_type"] == "I2VSample")
    assert (info.frame_count, info.width, info.height) == (8, 64, 48)
    assert info.fps == pytest.approx(fps)
    workflow = json.loads(video.read_video_metadata(video_file)["workflow"])
    assert {n["type"] for n in workflow["nodes"]} >= {"LoadI2VModel", "VRAMGuard", "I2VSample", "EncodeVideo"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_tier_fits_its_card_at_full_settings(path):
    """VRAMGuard's plan for the published model, at the workflow's own settings, on the tier's card."""
    api = load(REPO / "workflows" / "api" / path.name)
    guard = next(n["inputs"] for n in api.values() if n["class_type"] == "VRAMGuard")
    loader = next(n["inputs"] for n in api.values() if n["class_type"] == "LoadI2VModel")
    handle = models.describe_published(loader["model"], precision="fp16", device="cuda",
                                       offload=loader["offload"])
    card = CARDS_GIB[path.stem] * 2**30
    shape = memory.RunShape(guard["width"], guard["height"], guard["num_frames"], guard["batch_size"])
    plan = memory.plan_run(handle, shape, guard["policy"], memory.Budget(card, card, guard["headroom"]))
    assert guard["policy"] == "error" and plan.fits


def test_notes_and_api_copies_are_up_to_date(session_dirs):
    """The Notes quote the estimator; a change to it (or to a node) must be rebuilt into the files."""
    done = subprocess.run([sys.executable, str(REPO / "workflows" / "build.py"), "--check"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
