"""The host bridge: ComfyUI's modules when present, clean fallbacks when not.

The fakes below implement only the calls ComfyUI 0.3.64 offers and the pack uses (progress bar,
interrupt flag and exception, memory figures, folders, ModelPatcher with ON_DETACH callbacks,
load_models_gpu); the real ComfyUI is checked by hand (see the issue notes).
"""

from __future__ import annotations

import dataclasses
import gc
import types
import weakref
from pathlib import Path

import pytest
import torch

from i2v_nodes import host
from i2v_nodes.nodes import NODE_CLASS_MAPPINGS
from i2v_nodes.runtime import sampling


class FakeComfy:
    """comfy.model_management, comfy.utils, comfy.model_patcher and folder_paths, in miniature."""

    def __init__(self, root: Path):
        self.events: list[tuple] = []
        self.flag = False
        self.patchers: list = []
        fake = self

        class InterruptProcessingException(Exception):  # ComfyUI 0.3.64: a plain Exception
            pass

        mm = types.ModuleType("comfy.model_management")
        mm.InterruptProcessingException = InterruptProcessingException
        mm.interrupt_current_processing = lambda value=True: setattr(fake, "flag", value)
        mm.processing_interrupted = lambda: fake.flag

        def throw_if_interrupted():
            if fake.flag:
                fake.flag = False
                raise InterruptProcessingException()

        mm.throw_exception_if_processing_interrupted = throw_if_interrupted
        mm.get_torch_device = lambda: torch.device("cpu")
        mm.get_free_memory = lambda dev=None, torch_free_too=False: 64 * 2**30
        mm.get_total_memory = lambda dev=None, torch_total_too=False: 128 * 2**30

        # ComfyUI 0.3.64's bookkeeping of loaded models, step for step where unloading is concerned:
        # weak references to patchers, a finalizer on each loaded model that prunes dead entries,
        # a re-request detaching the patcher as a "clone" of itself, and free_memory unloading in a
        # loop and popping by index only after it.
        fake.current_loaded_models = []

        class LoadedModel:
            def __init__(self, patcher):
                self._model = weakref.ref(patcher)
                self.real_model = None
                self.model_finalizer = None

            @property
            def model(self):
                return self._model()

            def model_load(self):
                self.real_model = weakref.ref(self.model.model)
                self.model_finalizer = weakref.finalize(self.model.model, cleanup_models)

            def model_unload(self, memory_to_free=None, unpatch_weights=True):
                self.model.detach(unpatch_weights)
                self.model_finalizer.detach()
                self.model_finalizer = None
                self.real_model = None
                return True

            def is_dead(self):
                return self.real_model is not None and self.real_model() is not None and self.model is None

        def cleanup_models():
            dead = [i for i, m in enumerate(fake.current_loaded_models)
                    if m.real_model is not None and m.real_model() is None]
            for i in reversed(dead):
                fake.current_loaded_models.pop(i)

        def load_models_gpu(models, memory_required=0, force_full_load=False, **kwargs):
            fake.events.append(("load_models_gpu", len(models), memory_required, force_full_load))
            for patcher in models:
                found = [m for m in fake.current_loaded_models if m.model is patcher]
                loaded = found[0] if found else LoadedModel(patcher)
                for i in range(len(fake.current_loaded_models) - 1, -1, -1):
                    other = fake.current_loaded_models[i]
                    if other.model is not None and other.model.model is patcher.model:  # is_clone
                        fake.current_loaded_models.pop(i)
                        other.model.detach(unpatch_all=False)
                        other.model_finalizer.detach()
                loaded.model_load()
                fake.current_loaded_models.insert(0, loaded)

        def unload_all_models():  # free_memory(1e30, device)
            chosen = [i for i in range(len(fake.current_loaded_models) - 1, -1, -1)
                      if not fake.current_loaded_models[i].is_dead()]
            unloaded = []
            for i in chosen:
                if fake.current_loaded_models[i].model_unload():
                    unloaded.append(i)
                gc.collect()  # anything may collect garbage here (ComfyUI's own code, another thread)
            for i in sorted(unloaded, reverse=True):
                fake.current_loaded_models.pop(i)

        mm.current_loaded_models = fake.current_loaded_models
        mm.load_models_gpu = load_models_gpu
        mm.unload_all_models = unload_all_models

        utils = types.ModuleType("comfy.utils")

        class ProgressBar:
            def __init__(self, total, node_id=None):
                self.total = total
                fake.events.append(("progress_total", total))

            def update_absolute(self, value, total=None, preview=None):
                fake.events.append(("progress", value))

        utils.ProgressBar = ProgressBar

        patcher_module = types.ModuleType("comfy.model_patcher")

        class CallbacksMP:
            ON_DETACH = "on_detach"

        class ModelPatcher:
            def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
                self.model, self.load_device, self.size = model, load_device, size
                self.callbacks = []
                fake.patchers.append(self)

            def add_callback(self, kind, callback):
                self.callbacks.append((kind, callback))

            def detach(self, unpatch_all=True):  # what ComfyUI's unload does, callbacks included
                for kind, callback in self.callbacks:
                    if kind == CallbacksMP.ON_DETACH:
                        callback(self, unpatch_all)
                return self.model

        patcher_module.CallbacksMP = CallbacksMP
        patcher_module.ModelPatcher = ModelPatcher

        folder_paths = types.ModuleType("folder_paths")
        folder_paths.models_dir = str(root / "models")
        diffusers = str(root / "models" / "diffusers")
        folder_paths.folder_names_and_paths = {"diffusers": ([diffusers], {"folder"})}

        def add_model_folder_path(name, path, is_default=False):
            folder_paths.folder_names_and_paths.setdefault(name, ([], set()))[0].append(path)

        folder_paths.add_model_folder_path = add_model_folder_path
        folder_paths.get_folder_paths = lambda name: folder_paths.folder_names_and_paths[name][0]
        folder_paths.get_output_directory = lambda: str(root / "comfy-output")
        folder_paths.get_temp_directory = lambda: str(root / "comfy-temp")
        comfy = types.ModuleType("comfy")
        self.modules = {"comfy": comfy, "comfy.model_management": mm, "comfy.utils": utils,
                        "comfy.model_patcher": patcher_module, "folder_paths": folder_paths}
        self.InterruptProcessingException = InterruptProcessingException


@pytest.fixture
def comfy(tmp_path, monkeypatch):
    fake = FakeComfy(tmp_path)
    for name, module in fake.modules.items():
        monkeypatch.setitem(__import__("sys").modules, name, module)
    return fake


def test_outside_comfy_folders_come_from_the_environment(session_dirs, monkeypatch, tmp_path):
    assert not host.comfy_present()
    assert host.output_dir() == session_dirs["output"]
    monkeypatch.setenv("I2V_TEMP_DIR", str(tmp_path / "temp"))
    assert host.temp_dir() == tmp_path / "temp" == host.services().temp_dir()
    assert host.model_dirs() == [session_dirs["models"] / "i2v", session_dirs["models"] / "diffusers"]


def test_inside_comfy_folders_come_from_folder_paths(comfy, tmp_path):
    assert host.comfy_present()
    assert host.output_dir() == tmp_path / "comfy-output"
    assert host.temp_dir() == tmp_path / "comfy-temp" == host.services().temp_dir()
    assert host.model_dirs() == [tmp_path / "models" / "i2v", tmp_path / "models" / "diffusers"]
    registered = comfy.modules["folder_paths"].folder_names_and_paths
    assert "i2v" in registered  # registered for ComfyUI too
    # a folder the file loader lists that this ComfyUI lacks (AnimateDiff-Evolved's) is registered too
    assert registered["animatediff_models"][0] == [str(tmp_path / "models" / "animatediff_models")]


def test_local_interrupt_flag_raises_once():
    host.request_interrupt()
    with pytest.raises(host.Interrupted):
        host.check_interrupt()
    host.check_interrupt()  # cleared: the next run is not cancelled


def test_comfy_interrupt_reaches_comfy_unchanged(comfy, tiny_path, still_image, small_settings):
    """A cancel inside ComfyUI must surface as ComfyUI's own exception, not wrapped or swallowed."""
    loader = NODE_CLASS_MAPPINGS["LoadI2VModel"]()
    (model,) = loader.load("tiny-i2vgen-xl", "auto", "auto", "cpu", "none", False)
    comfy.modules["comfy.model_management"].interrupt_current_processing(True)
    with pytest.raises(comfy.InterruptProcessingException):
        NODE_CLASS_MAPPINGS["I2VSample"]().sample(model, still_image, "x", "", 64, 64, 8, 2, 9.0, 0, 1, 8, 0)
    assert comfy.InterruptProcessingException in host.interrupt_exceptions()


def test_progress_and_registration_go_through_comfy(comfy, tiny_handle, still_image, small_settings,
                                                   fresh_cache):
    settings = dataclasses.replace(small_settings, steps=3, batch_size=2)
    sampling.sample(tiny_handle, still_image, settings, host.services(), cache=fresh_cache)
    totals = [e[1] for e in comfy.events if e[0] == "progress_total"]
    steps = [e[1] for e in comfy.events if e[0] == "progress"]
    assert totals == [3 + 2] and steps == [1, 2, 3, 4, 5]
    loads = [e for e in comfy.events if e[0] == "load_models_gpu"]
    assert loads and loads[0][2] > 0 and loads[0][3] is True  # our working memory, full load
    (patcher,) = comfy.patchers
    assert set(patcher.model.keys()) == {"unet", "text_encoder", "image_encoder", "vae"}
    assert patcher.size > 0


def test_comfy_unloading_our_model_empties_the_cache(comfy, tiny_handle, still_image, small_settings,
                                                    fresh_cache):
    sampling.sample(tiny_handle, still_image, small_settings, host.services(), cache=fresh_cache)
    assert fresh_cache.stats().entries == 1
    comfy.patchers[0].detach(unpatch_all=False)  # ComfyUI re-loading a model it holds: keep it
    assert fresh_cache.stats().entries == 1
    comfy.patchers[0].detach()  # "Unload models" / /free / the OOM handler
    assert fresh_cache.stats().entries == 0
    sampling.sample(tiny_handle, still_image, small_settings, host.services(), cache=fresh_cache)
    assert fresh_cache.loads == 2


def test_comfy_unload_all_survives_and_frees_after_it_returns(comfy, tiny_handle, still_image, small_settings,
                                                              fresh_cache):
    """The model must outlive ComfyUI's unload loop (its finalizer would prune the list the loop
    pops from), then go at the pack's next call into the host."""
    sampling.sample(tiny_handle, still_image, small_settings, host.services(), cache=fresh_cache)
    key = dataclasses.replace(tiny_handle.cache_key, offload="none")
    pipeline = weakref.ref(fresh_cache.peek(key).pipeline)
    comfy.modules["comfy.model_management"].unload_all_models()  # would raise IndexError before the fix
    assert fresh_cache.stats().entries == 0 and comfy.current_loaded_models == []
    host.services()  # the next node to run
    gc.collect()
    assert pipeline() is None


def test_our_own_eviction_unloads_through_comfy(comfy, tiny_handle, still_image, small_settings, fresh_cache):
    """When the pack drops a model (explicit unload, LRU), ComfyUI's list must not keep an entry
    whose model dies later behind its back: that would crash ComfyUI's next unload loop."""
    sampling.sample(tiny_handle, still_image, small_settings, host.services(), cache=fresh_cache)
    assert len(comfy.current_loaded_models) == 1
    fresh_cache.unload()
    assert comfy.current_loaded_models == []
    sampling.sample(tiny_handle, still_image, small_settings, host.services(), cache=fresh_cache)
    comfy.modules["comfy.model_management"].unload_all_models()  # must not raise
    assert comfy.current_loaded_models == [] and fresh_cache.stats().entries == 0


def test_repeated_runs_keep_one_comfy_entry_and_one_load(comfy, tiny_handle, still_image, small_settings,
                                                         fresh_cache):
    for seed in range(3):
        settings = dataclasses.replace(small_settings, seed=seed)
        sampling.sample(tiny_handle, still_image, settings, host.services(), cache=fresh_cache)
    assert fresh_cache.loads == 1 and len(comfy.current_loaded_models) == 1
