"""Shared fixtures: a private models/output folder per session, the tiny model built once."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

# Two cores: two torch threads fight every other process on the machine (25-100x slowdowns).
torch.set_num_threads(1)
# Bit-identity with the stock pipelines needs fp32: pin what precision "auto" means on a CPU (it would
# be bf16 on CPUs that compute bf16 natively); tests of that choice set it themselves.
os.environ["I2V_CPU_AUTO_PRECISION"] = "fp32"
# Traces remembered on disk go to a folder of this session, never the user's cache.
if not os.environ.get("I2V_TRACE_CACHE"):
    os.environ["I2V_TRACE_CACHE"] = tempfile.mkdtemp(prefix="i2v-trace-cache-")
    atexit.register(shutil.rmtree, os.environ["I2V_TRACE_CACHE"], True)


@pytest.fixture(scope="session")
def session_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("i2v")
    dirs = {"models": root / "models", "output": root / "output", "input": root / "input"}
    for path in dirs.values():
        path.mkdir()
    saved = {k: os.environ.get(k) for k in ("I2V_MODELS_DIR", "I2V_OUTPUT_DIR")}
    os.environ["I2V_MODELS_DIR"] = str(dirs["models"])
    os.environ["I2V_OUTPUT_DIR"] = str(dirs["output"])
    yield dirs
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def model_dirs(session_dirs) -> list[Path]:
    from i2v_nodes import host

    return host.model_dirs()


@pytest.fixture(scope="session")
def wan(model_dirs):
    """The tiny Wan 2.1 I2V model's handle (the speed-lever tests' model)."""
    import torch

    from i2v_nodes.runtime.loading import models

    return models.open_model("tiny-wan2.1-i2v", models.LoadOptions(), model_dirs, torch.device("cpu"))


@pytest.fixture(scope="session")
def tiny_path(model_dirs) -> Path:
    from i2v_nodes.runtime.loading.models import tiny_model_folder

    return tiny_model_folder("tiny-i2vgen-xl", model_dirs[0])


@pytest.fixture(scope="session")
def tiny_handle(tiny_path, model_dirs):
    from i2v_nodes.runtime.loading import models

    return models.open_model("tiny-i2vgen-xl", models.LoadOptions(), model_dirs, torch.device("cpu"))


@pytest.fixture
def fresh_cache():
    """A private cache, for tests that count loads or unload (the process cache stays warm)."""
    from i2v_nodes.runtime.loading.cache import ModelCache

    cache = ModelCache(lambda device: 2**40)
    yield cache
    cache.unload()


@pytest.fixture(scope="module")
def cache():
    """One cache for a test module: each tiny model loads once per module."""
    from i2v_nodes.runtime.loading.cache import ModelCache

    cache = ModelCache(lambda device: 2**40)
    yield cache
    cache.unload()


@pytest.fixture(scope="module")
def opened(model_dirs):
    """``opened(name)``: a tiny model's handle and its stock pipeline (the oracle), each made once per
    test module."""
    from i2v_nodes.runtime.loading import models

    handles, stock = {}, {}

    def open_tiny(name):
        if name not in handles:
            handles[name] = handle = models.open_model(name, models.LoadOptions(), model_dirs,
                                                       torch.device("cpu"))
            stock[name] = pipe = handle.family.pipeline_class(handle.variant).from_pretrained(handle.source)
            pipe.set_progress_bar_config(disable=True)
        return handles[name], stock[name]

    return open_tiny


@pytest.fixture(scope="session")
def still_image() -> torch.Tensor:
    """A 1x48x80 IMAGE whose values are exact multiples of 1/255 (lossless to 8-bit)."""
    generator = torch.Generator().manual_seed(1234)
    return torch.randint(0, 256, (1, 48, 80, 3), generator=generator).float() / 255


@pytest.fixture(scope="session")
def small_settings():
    from i2v_nodes.runtime.sampling import SampleSettings

    return SampleSettings(prompt="a cat walking on the beach", negative_prompt="blurry", width=64, height=64,
                          num_frames=8, steps=2, guidance_scale=9.0, seed=3, batch_size=1, target_fps=8)
