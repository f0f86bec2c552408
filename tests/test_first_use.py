"""What the pack builds on first use (tiny models, their single files) is written whole, once, even
when several processes start on a fresh models folder together (a sweep's processes do); a
half-written folder from a crash is built again, never loaded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from i2v_nodes.families.toolkit.tiny import COMPLETE, ensure_built
from i2v_nodes.runtime.loading import models

REPO = Path(__file__).resolve().parents[1]
NAME = "tiny-wan2.1-i2v"  # a tiny model with single files too
BUILD = """
import json, logging, sys, torch
torch.set_num_threads(1)
logging.basicConfig(level=logging.INFO)
sys.path.insert(0, {repo!r})
from pathlib import Path
from i2v_nodes.runtime.loading import models
root = Path({root!r})
folder = models.tiny_model_folder({name!r}, root / "i2v")
files = models.tiny_single_files({name!r}, root)
models.describe_folder(folder)  # readable as a model
print(json.dumps({{"folder": str(folder), "files": {{k: str(v) for k, v in files.items()}}}}))
"""


def start(root: Path) -> subprocess.Popen:
    code = BUILD.format(repo=str(REPO), root=str(root), name=NAME)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_two_processes_on_a_fresh_folder_both_get_the_whole_model_and_files(tmp_path):
    runs = [start(tmp_path), start(tmp_path)]
    outputs = [run.communicate(timeout=600) for run in runs]
    for run, (_out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err[-2000:]
    first, second = (json.loads(out.strip().splitlines()[-1]) for out, _err in outputs)
    assert first == second
    assert sum(err.count(f"building tiny model {NAME}") for _out, err in outputs) == 1  # one built it
    folder = Path(first["folder"])
    assert (folder / COMPLETE).is_file()
    assert all(any(p.iterdir()) for p in folder.iterdir() if p.is_dir())  # no empty component
    assert not [p for p in (tmp_path / "i2v").iterdir() if p.name.startswith(".")]  # no staging left
    assert all(Path(path).stat().st_size > 0 for path in first["files"].values())
    handle = models.open_model(NAME, models.LoadOptions(), [tmp_path / "i2v"], torch.device("cpu"))
    assert handle.variant == "wan2.1-i2v"


def test_a_half_written_folder_is_built_again_not_loaded(tmp_path):
    folder = models.tiny_model_folder("tiny-i2vgen-xl", tmp_path)
    index = (folder / "model_index.json").read_text()
    weights = sorted(p.relative_to(folder) for p in folder.rglob("*.safetensors"))
    half = tmp_path / "half"
    (half / "tiny-i2vgen-xl").mkdir(parents=True)
    (half / "tiny-i2vgen-xl" / "model_index.json").write_text(index)
    (half / "tiny-i2vgen-xl" / "text_encoder").mkdir()  # what a crash mid-write leaves: an empty part
    again = models.tiny_model_folder("tiny-i2vgen-xl", half)
    assert (again / COMPLETE).is_file()
    assert sorted(p.relative_to(again) for p in again.rglob("*.safetensors")) == weights
    assert not [p for p in half.iterdir() if p.name.startswith(".")]  # the broken copy is gone


def test_a_whole_folder_built_before_the_mark_is_used_as_it_is(tmp_path):
    folder = models.tiny_model_folder("tiny-i2vgen-xl", tmp_path)
    (folder / COMPLETE).unlink()  # as older versions left it
    stamp = (folder / "model_index.json").stat().st_mtime_ns
    assert models.tiny_model_folder("tiny-i2vgen-xl", tmp_path) == folder
    assert (folder / "model_index.json").stat().st_mtime_ns == stamp and (folder / COMPLETE).is_file()


def test_a_process_that_is_not_rank_0_still_writes_every_weight(tmp_path, monkeypatch):
    # transformers 5 skips writing weights off rank 0 of an initialised process group (a sweep's
    # processes form one); a first-use build is this process's own file and must be whole anyway.
    from transformers.distributed import mixin
    monkeypatch.setattr(mixin, "_is_torch_distributed_initialized", lambda: True)
    monkeypatch.setattr(mixin, "_get_torch_distributed_rank", lambda: 1)
    folder = models.tiny_model_folder("tiny-i2vgen-xl", tmp_path)
    parts = [p for p in folder.iterdir() if p.is_dir()]
    assert {"text_encoder", "image_encoder"} <= {p.name for p in parts}
    assert all(any(p.iterdir()) for p in parts) and (folder / COMPLETE).is_file()


def test_a_build_that_leaves_a_component_empty_fails_and_leaves_nothing(tmp_path):
    class Unfinished:  # what a library that silently skips a write leaves
        def save_pretrained(self, folder, **_):
            Path(folder, "model_index.json").write_text(json.dumps({"text_encoder": ["x", "Y"]}))
            Path(folder, "text_encoder").mkdir()

    with pytest.raises(RuntimeError, match="without weights"):
        ensure_built("unfinished", tmp_path, Unfinished)
    assert list(tmp_path.iterdir()) == []  # no staging folder, nothing at the target
