"""LoadImage, SaveImage, PreviewImage and RebatchImages."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_png(path, mode="RGBA", size=(6, 4), color=(255, 0, 0, 128)):
    Image.new(mode, size, color[: len(mode)]).save(path)


def test_load_image_gives_image_and_mask(host, node, tmp_path):
    write_png(tmp_path / "input" / "rgba.png")
    result = host.run(
        {"1": node("LoadImage", image="rgba.png"), "2": node("ImageSize", image=["1", 0], mask=["1", 1])}
    )
    assert result.ok, result.error
    image, mask = result.node_outputs["1"][0][0], result.node_outputs["1"][1][0]
    assert list(image.shape) == [1, 4, 6, 3] and str(image.dtype) == "torch.float32"
    assert image[0, 0, 0].tolist() == [1.0, 0.0, 0.0]
    assert list(mask.shape) == [1, 4, 6]
    assert abs(float(mask[0, 0, 0]) - (1 - 128 / 255)) < 1e-6  # ComfyUI's mask: 1 - alpha


def test_an_opaque_image_gets_comfyuis_empty_mask(host, node, tmp_path):
    write_png(tmp_path / "input" / "rgb.png", mode="RGB")
    result = host.run(
        {"1": node("LoadImage", image="rgb.png"), "2": node("ImageSize", image=["1", 0], mask=["1", 1])}
    )
    assert result.ui["2"]["mask_shape"] == [[1, 64, 64]]


def test_an_animation_loads_as_a_batch(host, node, tmp_path):
    frames = [Image.new("RGB", (5, 3), (i * 60, 0, 0)) for i in range(3)]
    frames[0].save(tmp_path / "input" / "anim.gif", save_all=True, append_images=frames[1:])
    result = host.run({"1": node("LoadImage", image="anim.gif"), "2": node("ImageSize", image=["1", 0])})
    assert result.ui["2"]["shape"] == [[3, 3, 5, 3]]


def test_load_image_rejects_a_missing_file(host, node):
    result = host.validate({"1": node("LoadImage", image="nope.png"), "2": node("ImageSize", image=["1", 0])})
    (error,) = result.node_errors["1"]["errors"]
    assert (
        error["type"] == "custom_validation_failed"
        and error["details"] == "image - Invalid image file: nope.png"
    )


def test_load_image_reruns_when_the_file_changes(host, node, tmp_path):
    prompt = {"1": node("LoadImage", image="pic.png"), "2": node("ImageSize", image=["1", 0])}
    write_png(tmp_path / "input" / "pic.png")
    host.run(prompt)
    assert host.run(prompt).executed == []
    write_png(tmp_path / "input" / "pic.png", size=(2, 2))
    result = host.run(prompt)
    assert result.executed == ["1", "2"] and result.ui["2"]["shape"] == [[1, 2, 2, 3]]


def test_save_image_numbers_files_like_comfyui_and_embeds_metadata(host, node, tmp_path):
    out = tmp_path / "output"
    (out / "clips").mkdir(parents=True)
    (out / "clips" / "shot_00004_.png").write_bytes(b"not ours")
    prompt = {
        "1": node("Gradient", width=4, height=2, batch=2),
        "2": node("SaveImage", images=["1", 0], filename_prefix="clips/shot"),
    }
    result = host.run(prompt)
    assert result.ok
    assert result.ui["2"] == {
        "images": [
            {"filename": "shot_00005_.png", "subfolder": "clips", "type": "output"},
            {"filename": "shot_00006_.png", "subfolder": "clips", "type": "output"},
        ]
    }
    assert result.files == [out / "clips" / "shot_00005_.png", out / "clips" / "shot_00006_.png"]
    assert (out / "clips" / "shot_00004_.png").read_bytes() == b"not ours"
    with Image.open(out / "clips" / "shot_00005_.png") as img:
        assert json.loads(img.info["prompt"])["2"]["inputs"]["filename_prefix"] == "clips/shot"
        pixels = np.array(img)
    assert pixels.shape == (2, 4, 3) and pixels[0, 0, 0] == 0 and pixels[0, 3, 0] == 255


def test_save_image_never_overwrites(host, node, tmp_path):
    prompt = {
        "1": node("Gradient", width=2, height=2, batch=1),
        "2": node("SaveImage", images=["1", 0], filename_prefix="x"),
    }
    host.run(prompt)
    host.free(free_memory=True)
    host.run(prompt)
    assert sorted(p.name for p in (tmp_path / "output").iterdir()) == ["x_00001_.png", "x_00002_.png"]


def test_save_image_without_hard_links_still_never_overwrites(host, node, tmp_path, monkeypatch):
    def no_links(src, dst):
        raise OSError(errno.EPERM, "no hard links here")

    monkeypatch.setattr(os, "link", no_links)
    (tmp_path / "output").mkdir()
    (tmp_path / "output" / "x_00001_.png").write_bytes(b"not ours")
    prompt = {
        "1": node("Gradient", width=2, height=2, batch=2),
        "2": node("SaveImage", images=["1", 0], filename_prefix="x"),
    }
    assert host.run(prompt).ui["2"]["images"][0]["filename"] == "x_00002_.png"
    assert sorted(p.name for p in (tmp_path / "output").iterdir()) == [
        "x_00001_.png",
        "x_00002_.png",
        "x_00003_.png",
    ]
    assert (tmp_path / "output" / "x_00001_.png").read_bytes() == b"not ours"


def test_save_image_refuses_to_write_outside_the_output_folder(host, node, tmp_path):
    prompt = {
        "1": node("Gradient", width=2, height=2, batch=1),
        "2": node("SaveImage", images=["1", 0], filename_prefix="../escaped"),
    }
    result = host.run(prompt)
    assert result.status == "error" and "outside the output folder" in result.error["exception_message"]
    assert not list(tmp_path.glob("escaped*"))


def test_preview_image_writes_into_the_temp_folder_inside_output(host, node, tmp_path):
    result = host.run(
        {"1": node("Gradient", width=2, height=2, batch=1), "2": node("PreviewImage", images=["1", 0])}
    )
    (image,) = result.ui["2"]["images"]
    assert image["type"] == "temp" and image["filename"].startswith("ComfyUI_temp_")
    assert result.files == [tmp_path / "output" / "temp" / image["filename"]]


def test_rebatch_images_regroups_a_list_of_batches():
    import torch

    from host_stub.core_nodes import RebatchImages

    batches = [torch.full((2, 3, 4, 3), 0.0), torch.full((3, 3, 4, 3), 1.0)]
    (out,) = RebatchImages().rebatch(batches, [2])
    assert [list(b.shape) for b in out] == [[2, 3, 4, 3], [2, 3, 4, 3], [1, 3, 4, 3]]
    assert [b[:, 0, 0, 0].tolist() for b in out] == [[0.0, 0.0], [1.0, 1.0], [1.0]]
    (whole,) = RebatchImages().rebatch(batches, [10])
    assert [list(b.shape) for b in whole] == [[5, 3, 4, 3]]


def test_rebatch_images_runs_as_comfyuis_list_node(host, node):
    prompt = {
        "1": node("Gradient", width=4, height=2, batch=5),
        "2": node("RebatchImages", images=["1", 0], batch_size=2),
        "3": node("ImageSize", image=["2", 0]),
    }
    result = host.run(prompt)
    assert result.ok, result.error
    assert result.ui["3"]["shape"] == [[2, 2, 4, 3], [2, 2, 4, 3], [1, 2, 4, 3]]
    info = host.object_info("RebatchImages")["RebatchImages"]
    assert info["input"]["required"]["batch_size"] == ["INT", {"default": 1, "min": 1, "max": 4096}]
    assert info["output_is_list"] == [True] and info["category"] == "image/batch"
    assert info["display_name"] == "Rebatch Images"


def test_save_image_leaves_no_partial_file_when_the_write_fails(host, node, tmp_path, monkeypatch):
    def full_disk(self, fh, **kwargs):
        fh.write(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)  # part of the file, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Image.Image, "save", full_disk)
    prompt = {
        "1": node("Gradient", width=4, height=2, batch=1),
        "2": node("SaveImage", images=["1", 0], filename_prefix="full/x"),
    }
    result = host.run(prompt)
    assert result.status == "error" and "No space left on device" in result.error["exception_message"]
    assert result.history["status"]["messages"][-1][0] == "execution_error"
    assert [p.name for p in (tmp_path / "output" / "full").iterdir()] == []  # no partial, no staging file


def test_save_image_on_a_really_full_disk_leaves_no_file(tmp_path):
    """A real ENOSPC: the output folder is a full tmpfs, in a user and mount namespace."""
    out = tmp_path / "out"
    out.mkdir()
    if (
        shutil.which("unshare") is None
        or subprocess.run(
            ["unshare", "-Urm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {out}"], capture_output=True
        ).returncode
    ):
        pytest.skip("no unprivileged mount namespace here (unshare -Urm)")
    packs = Path(__file__).parent / "packs" / "features"
    workflow = tmp_path / "wf.json"
    workflow.write_text(
        json.dumps(
            {
                "1": {"class_type": "Gradient", "inputs": {"width": 64, "height": 64, "batch": 1}},
                "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
            }
        )
    )
    listing, history = tmp_path / "listing.txt", tmp_path / "history.json"
    script = (
        f"mount -t tmpfs -o size=64k tmpfs {out} && dd if=/dev/zero of={out}/filler bs=4k 2>/dev/null\n"
        f'"$@"; status=$?; (cd {out} && find . -type f > {listing}); exit $status\n'
    )
    command = [sys.executable, "-m", "host_stub", "run", str(workflow), "--packs", str(packs)]
    command += ["--output-dir", str(out), "--input-dir", str(tmp_path), "--history", str(history)]
    done = subprocess.run(
        ["unshare", "-Urm", "sh", "-c", script, "sh", *command], capture_output=True, text=True
    )
    assert done.returncode == 1, done.stderr
    assert listing.read_text().split() == ["./filler"]
    (entry,) = json.loads(history.read_text()).values()
    event, error = entry["status"]["messages"][-1]
    assert event == "execution_error" and "No space left on device" in error["exception_message"]
