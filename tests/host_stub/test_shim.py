"""The ComfyUI module surface: installed only while a host is active, and what it offers."""

from __future__ import annotations

import importlib
import os
import sys
import types

import pytest

from host_stub import shim
from host_stub.shim import comfy_utils, folder_paths, model_management

SHIMS = ("comfy", "comfy.utils", "comfy.model_management", "folder_paths")


def test_modules_are_present_only_while_a_host_is_active(host, tmp_path):
    assert not any(name in sys.modules for name in SHIMS)
    with host.active():
        fp = importlib.import_module("folder_paths")
        assert fp.get_output_directory() == str(tmp_path / "output")
        assert importlib.import_module("comfy.utils").ProgressBar is comfy_utils.ProgressBar
        assert importlib.import_module("comfy.model_management") is model_management
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module("comfy.model_patcher")  # the stub has no model patching
    assert not any(name in sys.modules for name in SHIMS)


def test_whatever_was_there_before_is_put_back(host, monkeypatch):
    unrelated = types.ModuleType("comfy")
    monkeypatch.setitem(sys.modules, "comfy", unrelated)
    with host.active():
        assert sys.modules["comfy"] is not unrelated
    assert sys.modules["comfy"] is unrelated
    assert "folder_paths" not in sys.modules


def test_real_comfyui_modules_are_used_as_they_are(host, chain, monkeypatch):
    real_mm = types.ModuleType("comfy.model_management")
    for name in (
        "interrupt_current_processing",
        "throw_exception_if_processing_interrupted",
        "InterruptProcessingException",
        "unload_all_models",
    ):
        setattr(real_mm, name, getattr(model_management, name))
    real_fp = types.ModuleType("folder_paths")
    monkeypatch.setitem(sys.modules, "comfy.model_management", real_mm)
    monkeypatch.setitem(sys.modules, "folder_paths", real_fp)
    with host.active():
        assert sys.modules["folder_paths"] is real_fp
        assert sys.modules["comfy.model_management"] is real_mm
    result = host.run(chain)
    assert result.ok and result.ui["3"] == {"values": [8]}
    assert sys.modules["folder_paths"] is real_fp


def test_a_pack_keeps_its_import_time_folder_paths_and_sees_each_hosts_folders(make_host, tmp_path):
    first = make_host("arith")
    # look the marker up in each module's own namespace: a module-level __getattr__ (torch.ops has
    # one) answers any name
    pack = next(m for m in list(sys.modules.values())
                if "LOADED_WITH_FOLDER_PATHS" in (getattr(m, "__dict__", None) or {}))
    assert pack.LOADED_WITH_FOLDER_PATHS is folder_paths
    other = make_host("arith", output_dir=tmp_path / "elsewhere")
    with other.active():
        assert pack.LOADED_WITH_FOLDER_PATHS.get_output_directory() == str(tmp_path / "elsewhere")
    with first.active():
        assert pack.LOADED_WITH_FOLDER_PATHS.get_output_directory() == str(tmp_path / "output")


def test_model_folders(host, tmp_path):
    models = tmp_path / "models"
    (models / "diffusers" / "pipe").mkdir(parents=True)
    (models / "loras").mkdir()
    (models / "loras" / "b.safetensors").write_bytes(b"")
    (models / "loras" / "notes.txt").write_bytes(b"")
    with host.active():
        fp = sys.modules["folder_paths"]
        assert fp.models_dir == str(models)
        assert fp.get_folder_paths("diffusers") == [str(models / "diffusers")]
        assert fp.get_filename_list("loras") == ["b.safetensors"]
        assert fp.get_full_path("loras", "b.safetensors") == str(models / "loras" / "b.safetensors")
        assert fp.get_full_path("loras", "../loras/b.safetensors") is None  # cannot climb out
        fp.add_model_folder_path("i2v", str(models / "i2v"))
        fp.add_model_folder_path("i2v", "/elsewhere/i2v", is_default=True)
        assert fp.get_folder_paths("i2v") == ["/elsewhere/i2v", str(models / "i2v")]
        paths, exts = fp.folder_names_and_paths["diffusers"]
        assert paths == [str(models / "diffusers")] and exts == {"folder"}
        assert fp.get_folder_paths("unet") == fp.get_folder_paths("diffusion_models")


def test_folders_registered_in_one_host_do_not_leak_into_another(make_host):
    first = make_host()
    with first.active():
        sys.modules["folder_paths"].add_model_folder_path("extra", "/x")
    with make_host().active():
        assert "extra" not in sys.modules["folder_paths"].folder_names_and_paths


def test_annotated_paths(host, tmp_path):
    with host.active():
        fp = sys.modules["folder_paths"]
        assert fp.get_annotated_filepath("a.png") == str(tmp_path / "input" / "a.png")
        assert fp.get_annotated_filepath("a.png [output]") == str(tmp_path / "output" / "a.png")
        assert fp.get_annotated_filepath("a.png [temp]") == str(tmp_path / "output" / "temp" / "a.png")
        (tmp_path / "input" / "a.png").write_bytes(b"")
        assert fp.exists_annotated_filepath("a.png") and not fp.exists_annotated_filepath("b.png")


def test_save_image_path_counts_on_and_refuses_to_leave_the_output_folder(host, tmp_path):
    out = str(tmp_path / "output")
    with host.active():
        fp = sys.modules["folder_paths"]
        folder, name, counter, sub, _ = fp.get_save_image_path("clips/run", out, 8, 4)
        assert (folder, name, counter, sub) == (os.path.join(out, "clips"), "run", 1, "clips")
        for existing in ("run_00001_.png", "run_00007_.mp4", "runner_00099_.png", "run_x.png"):
            open(os.path.join(folder, existing), "w").close()
        assert fp.get_save_image_path("clips/run", out)[2] == 8
        assert fp.get_save_image_path("img_%width%x%height%", out, 8, 4)[1] == "img_8x4"
        with pytest.raises(Exception, match="outside the output folder"):
            fp.get_save_image_path("../escape", out)


def test_progress_bar_calls_the_hook_set_for_the_block(host):
    calls = []
    with host.active(), shim.progress_hook(lambda v, t, p, node_id=None: calls.append((v, t, node_id))):
        bar = comfy_utils.ProgressBar(3, node_id="7")
        bar.update(1)
        bar.update(5)  # clamped to the total
        bar.update_absolute(2, total=4)
        comfy_utils.ProgressBar(2).update_absolute(1, 2, None)
    assert comfy_utils.PROGRESS_BAR_HOOK is None
    comfy_utils.ProgressBar(2).update(1)  # no hook: nothing is called
    assert calls == [(1, 3, "7"), (3, 3, "7"), (2, 4, "7"), (1, 2, None)]


def test_interrupt_functions():
    assert issubclass(model_management.InterruptProcessingException, Exception)
    assert not model_management.processing_interrupted()
    model_management.throw_exception_if_processing_interrupted()  # nothing requested: no error
    model_management.interrupt_current_processing()
    assert model_management.processing_interrupted()
    with pytest.raises(model_management.InterruptProcessingException):
        model_management.throw_exception_if_processing_interrupted()
    assert not model_management.processing_interrupted()  # one request, one exception
    model_management.interrupt_current_processing(True)
    model_management.interrupt_current_processing(False)
    model_management.throw_exception_if_processing_interrupted()


def test_memory_functions_on_cpu():
    device = model_management.get_torch_device()
    assert device.type in ("cpu", "cuda")
    cpu = type(device)("cpu")
    free = model_management.get_free_memory(cpu)
    assert isinstance(free, int) and free > 0
    total_free, torch_free = model_management.get_free_memory(cpu, torch_free_too=True)
    assert total_free > 0 and torch_free > 0
    before = dict(model_management.calls)
    assert model_management.free_memory(1024, cpu, keep_loaded=[]) == []
    model_management.unload_all_models()
    model_management.soft_empty_cache()
    assert model_management.calls["unload_all_models"] == before["unload_all_models"] + 1
    assert model_management.calls["soft_empty_cache"] >= before["soft_empty_cache"] + 1
    assert model_management.OOM_EXCEPTION.__name__ == "OutOfMemoryError"
