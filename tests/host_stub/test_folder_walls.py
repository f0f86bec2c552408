"""Folders are walls (issue 19): file names from a prompt stay in the input, output and temp folders
and name regular files; a writer never goes through a symlink out of the output folder.

Every case uses the real thing: files, symlinks, FIFOs (os.mkfifo), /dev/zero. A refusal must come
at validation, at once, with a message naming the input, and leave no file behind.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time

import pytest
from PIL import Image

from host_stub import safe_paths
from host_stub.cli import main
from host_stub.core_nodes import LoadImage
from tests.host_stub.batch_support.helpers import Workspace

FAST = 3.0  # seconds: a refusal is a stat, never a read


def write_png(path, size=(4, 3), color=(10, 20, 30)):
    Image.new("RGB", size, color).save(path)


@pytest.fixture
def walls(tmp_path):
    """input/ with a good image, and outside/ (next to it) with a secret image."""
    (tmp_path / "input").mkdir(exist_ok=True)
    (tmp_path / "outside").mkdir()
    write_png(tmp_path / "input" / "good.png")
    write_png(tmp_path / "outside" / "secret.png", color=(1, 2, 3))
    return tmp_path


def load_and_save(node, image):
    return {
        "1": node("LoadImage", image=image),
        "2": node("SaveImage", images=["1", 0], filename_prefix="copy"),
    }


def within(seconds, call, *args):
    """``call(*args)`` in a thread that must finish within ``seconds`` (a FIFO must never block)."""
    box = {}

    def go():
        try:
            box["value"] = call(*args)
        except Exception as exc:  # noqa: BLE001 - handed back to the test
            box["error"] = exc

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{call} still running after {seconds}s"
    if "error" in box:
        raise box["error"]
    return box["value"]


def refused_at_validation(host, node, tmp_path, image, why):
    """Run LoadImage -> SaveImage: refused at validation, naming the input and why, nothing written."""
    started = time.perf_counter()
    result = within(FAST * 2, host.run, load_and_save(node, image))
    assert time.perf_counter() - started < FAST
    assert result.status == "invalid"
    (error,) = result.validation.node_errors["1"]["errors"]
    assert error["type"] == "custom_validation_failed"
    assert error["details"].startswith(f"image - Invalid image file: {image}: ")
    assert why in error["details"]
    assert result.validation.response()["error"]["type"] == "prompt_outputs_failed_validation"
    output = tmp_path / "output"
    assert not output.exists() or not list(output.rglob("*")), "no partial output"
    return error


# --- LoadImage: what is refused ------------------------------------------------------------------


def test_an_absolute_path_is_refused(host, node, walls):
    refused_at_validation(host, node, walls, str(walls / "outside" / "secret.png"), "absolute paths")


def test_dot_dot_is_refused(host, node, walls):
    refused_at_validation(host, node, walls, "../outside/secret.png", "'..' is not allowed")
    refused_at_validation(host, node, walls, "sub/../../outside/secret.png", "'..' is not allowed")


def test_a_symlink_out_of_the_input_folder_is_refused(host, node, walls):
    os.symlink(walls / "outside" / "secret.png", walls / "input" / "link.png")
    os.symlink(walls / "outside", walls / "input" / "linkdir")
    refused_at_validation(host, node, walls, "link.png", "leads outside the input folder")
    refused_at_validation(host, node, walls, "linkdir/secret.png", "leads outside the input folder")


def test_a_fifo_is_refused_without_blocking(host, node, walls):
    os.mkfifo(walls / "input" / "fifo.png")
    refused_at_validation(host, node, walls, "fifo.png", "it is a FIFO, not a regular file")
    with host.active():  # the node's own functions refuse it too, without opening it for long
        with pytest.raises(safe_paths.UnsafePath, match="image 'fifo.png': it is a FIFO"):
            within(FAST, LoadImage.IS_CHANGED, "fifo.png")
        with pytest.raises(safe_paths.UnsafePath, match="FIFO"):
            within(FAST, LoadImage().load_image, "fifo.png")


def test_a_fifo_swapped_in_after_the_check_does_not_block_the_open(walls):
    fifo = walls / "input" / "late.png"
    os.mkfifo(fifo)
    with pytest.raises(safe_paths.UnsafePath, match="FIFO"):
        within(FAST, safe_paths.open_regular, str(fifo))


def test_dev_zero_is_refused_at_once_and_memory_does_not_grow(host, node, walls):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    refused_at_validation(host, node, walls, "/dev/zero", "absolute paths")
    os.symlink("/dev/zero", walls / "input" / "zero.png")
    refused_at_validation(host, node, walls, "zero.png", "leads outside the input folder")
    with host.active():  # the change check reads nothing: it never hashes what it will not load
        with pytest.raises(safe_paths.UnsafePath):
            within(FAST, LoadImage.IS_CHANGED, "zero.png")
        with pytest.raises(safe_paths.UnsafePath):
            within(FAST, LoadImage.IS_CHANGED, "/dev/zero")
    with pytest.raises(safe_paths.UnsafePath, match="character device"):
        within(FAST, safe_paths.open_regular, "/dev/zero")
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 64 * 1024, f"memory grew by {grown_kib // 1024} MiB"


def test_a_directory_is_refused(host, node, walls):
    (walls / "input" / "folder.png").mkdir()
    refused_at_validation(host, node, walls, "folder.png", "it is a directory, not a regular file")


def test_a_missing_file_keeps_comfyuis_message(host, node, walls):
    result = host.validate(load_and_save(node, "nope.png"))
    (error,) = result.node_errors["1"]["errors"]
    assert error["details"] == "image - Invalid image file: nope.png"


# --- LoadImage: what still works -----------------------------------------------------------------


def test_annotated_names_inside_their_folders_load(host, node, walls):
    (walls / "output" / "temp").mkdir(parents=True)
    write_png(walls / "output" / "made.png", size=(5, 2))
    write_png(walls / "output" / "temp" / "preview.png", size=(3, 3))
    for image, shape in (("made.png [output]", [1, 2, 5, 3]), ("preview.png [temp]", [1, 3, 3, 3])):
        result = host.run({"1": node("LoadImage", image=image), "2": node("ImageSize", image=["1", 0])})
        assert result.ok, result.validation.node_errors or result.error
        assert result.ui["2"]["shape"] == [shape]


def test_subfolders_and_symlinks_that_stay_inside_load(host, node, walls):
    (walls / "input" / "sub").mkdir()
    write_png(walls / "input" / "sub" / "deep.png", size=(2, 2))
    os.symlink(walls / "input" / "good.png", walls / "input" / "alias.png")
    for image in ("good.png", "sub/deep.png", "alias.png", "good.png [input]"):
        result = host.run({"1": node("LoadImage", image=image), "2": node("ImageSize", image=["1", 0])})
        assert result.ok, (image, result.validation.node_errors, result.error)


def test_the_image_list_holds_only_regular_files_inside_the_folder(host, walls):
    os.symlink(walls / "outside" / "secret.png", walls / "input" / "link.png")
    os.symlink(walls / "input" / "good.png", walls / "input" / "alias.png")
    os.mkfifo(walls / "input" / "fifo.png")
    (walls / "input" / "folder.png").mkdir()
    choices = host.object_info("LoadImage")["LoadImage"]["input"]["required"]["image"][0]
    assert choices == ["alias.png", "good.png"]


def test_the_change_check_hashes_the_file_it_loads(host, walls):
    with host.active():
        first = LoadImage.IS_CHANGED("good.png")
        assert first == LoadImage.IS_CHANGED("good.png")
        write_png(walls / "input" / "good.png", color=(200, 0, 0))
        assert LoadImage.IS_CHANGED("good.png") != first


# --- folder_paths, as packs call it --------------------------------------------------------------


def test_folder_paths_keeps_packs_inside_the_folders(host, walls):
    os.symlink(walls / "outside" / "secret.png", walls / "input" / "link.png")
    os.mkfifo(walls / "input" / "fifo.png")
    with host.active():
        fp = sys.modules["folder_paths"]
        for name in (str(walls / "outside" / "secret.png"), "../outside/secret.png", "link.png", "fifo.png"):
            with pytest.raises(ValueError, match=f"{name!r}: "):
                fp.get_annotated_filepath(name)
            assert not fp.exists_annotated_filepath(name)
        assert fp.get_annotated_filepath("good.png") == str(walls / "input" / "good.png")
        assert fp.exists_annotated_filepath("good.png")
        assert fp.get_annotated_filepath("later.png") == str(walls / "input" / "later.png")  # may not exist


def test_get_full_path_never_leaves_the_model_folder(host, walls):
    loras = walls / "models" / "loras"
    loras.mkdir(parents=True)
    (loras / "style.safetensors").write_bytes(b"x")
    os.mkfifo(loras / "pipe.safetensors")
    (walls / "models" / "secret.safetensors").write_bytes(b"x")
    with host.active():
        fp = sys.modules["folder_paths"]
        assert fp.get_full_path("loras", "style.safetensors") == str(loras / "style.safetensors")
        assert fp.get_full_path("loras", "../secret.safetensors") is None
        assert fp.get_full_path("loras", str(walls / "models" / "secret.safetensors")) is None
        assert fp.get_full_path("loras", "pipe.safetensors") is None


# --- writers -------------------------------------------------------------------------------------


def test_save_image_refuses_a_symlinked_output_subfolder(host, node, walls):
    (walls / "output").mkdir()
    os.symlink(walls / "outside", walls / "output" / "linkdir")
    for prefix in ("linkdir/x", "linkdir/new/x"):
        result = host.run(
            {
                "1": node("Gradient", width=2, height=2, batch=1),
                "2": node("SaveImage", images=["1", 0], filename_prefix=prefix),
            }
        )
        assert result.status == "error"
        message = result.error["exception_message"]
        assert "filename_prefix: 'linkdir' leads outside the output folder" in message
        assert "Saving image outside the output folder is not allowed" in message
    assert sorted(p.name for p in (walls / "outside").iterdir()) == ["secret.png"]  # nothing made there


def test_save_image_through_a_symlink_that_stays_inside_is_fine(host, node, walls):
    (walls / "output" / "real").mkdir(parents=True)
    os.symlink(walls / "output" / "real", walls / "output" / "alias")
    result = host.run(
        {
            "1": node("Gradient", width=2, height=2, batch=1),
            "2": node("SaveImage", images=["1", 0], filename_prefix="alias/x"),
        }
    )
    assert result.ok, result.error
    assert [p.name for p in (walls / "output" / "real").iterdir()] == ["x_00001_.png"]


def test_get_save_image_path_refuses_symlinks_out_before_making_anything(host, walls):
    out = walls / "output"
    out.mkdir()
    os.symlink(walls / "outside", out / "linkdir")
    (out / "afile").write_text("")
    with host.active():
        fp = sys.modules["folder_paths"]
        with pytest.raises(ValueError, match="leads outside the output folder"):
            fp.get_save_image_path("linkdir/deeper/x", str(out))
        with pytest.raises(ValueError, match="'afile' is not a folder"):
            fp.get_save_image_path("afile/x", str(out))
    assert not (walls / "outside" / "deeper").exists()


# --- a sweep's --dry-run -------------------------------------------------------------------------


def test_a_sweep_row_with_an_escaping_path_is_a_bad_row_in_a_dry_run(tmp_path, monkeypatch, capsys):
    ws = Workspace(tmp_path / "ws").setup()
    monkeypatch.setenv("SWEEP_TEST_LOG", str(ws.log))
    write_png(tmp_path / "secret.png")
    os.symlink(tmp_path / "secret.png", ws.input / "link.png")
    os.symlink("/dev/zero", ws.input / "zero.png")
    os.mkfifo(ws.input / "fifo.png")
    rows = [
        {"id": "ok", "SweepSample.seed": 1},
        {"id": "abs", "LoadImage.image": str(tmp_path / "secret.png")},
        {"id": "up", "LoadImage.image": "../../secret.png"},
        {"id": "link", "LoadImage.image": "link.png"},
        {"id": "zero", "LoadImage.image": "/dev/zero"},
        {"id": "fifo", "LoadImage.image": "fifo.png"},
        {"id": "glob", "LoadImage.image": {"glob": "*.png"}, "SweepSample.seed": 9},
    ]
    started = time.perf_counter()
    assert main(["batch", *ws.args(ws.sweep(rows), "--dry-run")]) == 2
    assert time.perf_counter() - started < 60
    err = capsys.readouterr().err
    assert "error: 5 bad sweep row(s)" in err, err
    for line, row, why in (
        (2, "abs", "absolute paths are not allowed"),
        (3, "up", "'..' is not allowed"),
        (4, "link", "leads outside the input folder"),
        (5, "zero", "absolute paths are not allowed"),
        (6, "fifo", "it is a FIFO, not a regular file"),
    ):
        assert f"line {line} (id '{row}'): #1 LoadImage: Custom validation failed for node: image - " in err
        assert why in err.split(f"(id '{row}')")[1].splitlines()[0]
    assert "glob" not in err  # the glob lists what LoadImage lists: a.png, b.png, c.png only
    assert ws.logged("calls") == []
    assert not list(ws.output.rglob("*.json"))


def test_the_sweep_glob_skips_what_loadimage_would_refuse(tmp_path):
    from host_stub.batch.sweep import read_sweep

    ws = Workspace(tmp_path / "ws").setup()
    os.symlink(tmp_path, ws.input / "out.png")
    os.mkfifo(ws.input / "fifo.png")
    sweep = ws.sweep([{"id": "g", "LoadImage.image": {"glob": "*.png"}}])
    rows = read_sweep(sweep, ws.input)
    assert [json.dumps(r.overrides) for r in rows] == [
        json.dumps({"LoadImage.image": name}) for name in ("a.png", "b.png", "c.png")
    ]


def test_files_reported_outside_their_folder_are_not_listed(walls):
    from host_stub import files

    (walls / "output").mkdir()
    write_png(walls / "output" / "mine.png")
    ui = {
        "9": {
            "images": [
                {"filename": "mine.png", "subfolder": "", "type": "output"},
                {"filename": "secret.png", "subfolder": "../outside", "type": "output"},
                {"filename": "secret.png", "subfolder": str(walls / "outside"), "type": "output"},
            ]
        }
    }
    assert files.reported(ui, {"output": str(walls / "output")}) == [walls / "output" / "mine.png"]
