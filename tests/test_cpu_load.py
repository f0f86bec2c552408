"""On a CPU the RAM is the device, and a run's load is one of its phases: a denoiser stored in bf16 and
run in fp32 is cast into a private fp32 copy while its file's pages are mapped. The guard counts that
load (measured at full width in a memory cgroup: the load, not the steps, set the peak)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from i2v_nodes.runtime import memory, sampling
from i2v_nodes.runtime.loading import models
from i2v_nodes.runtime.memory import guard

CPU = torch.device("cpu")
NAME = "tiny-wan2.1-i2v"


def files_handle(models_root, fmt):
    paths = models.tiny_single_files(NAME, models_root, fmt)
    return models.open_files(paths, models.LoadOptions(precision="fp32", device="cpu"), CPU)


@pytest.fixture(scope="module")
def shape():
    s = sampling.SampleSettings("a boat", "blurry", width=64, height=48, num_frames=5, steps=2,
                                guidance_scale=5.0, seed=1, target_fps=16)
    return s


def test_a_cast_denoiser_is_counted_private_and_its_file_mapped_while_it_loads(session_dirs):
    half = files_handle(session_dirs["models"], "bf16")
    params = dict(half.params)["transformer"]
    for residency in ("resident", "phase"):
        load = memory.cpu_load(half, memory.MemoryOptions(residency=residency))
        assert load.phase == "load"
        assert load.anonymous - memory.CPU_RUNTIME_BYTES >= params * 4  # the fp32 copy it keeps
        assert load.file_backed >= params * 2  # the bf16 file read beside it
    full = files_handle(session_dirs["models"], "fp32")
    streamed = memory.cpu_load(full, memory.MemoryOptions(residency="phase"))
    # stored as kept: used where it lies, nothing private passes through
    assert streamed.anonymous - memory.CPU_RUNTIME_BYTES < dict(full.params)["transformer"]


def test_the_guard_refuses_a_run_whose_load_does_not_fit_though_its_steps_do(session_dirs, shape):
    tiny = files_handle(session_dirs["models"], "bf16")
    # the tiny files' denoiser counted at the 1.3B's width: the estimate reads counts, not weights
    params = tuple((n, c * 20_000 if n == "transformer" else c) for n, c in tiny.params)
    handle = dataclasses.replace(tiny, params=params)
    run = sampling.plan.run_shape(handle, shape)
    options = memory.default_options(handle, run)
    phases = memory.estimate_phases(handle, run, options)
    steps = max(peak for phase, peak in phases.items() if phase != "load")
    assert phases["load"] > steps  # tiny frames: the load is the peak
    between = guard.Budget(free=(steps + phases["load"]) // 2, total=2**40, headroom=0.0)
    with pytest.raises(guard.MemoryGuardError) as refused:
        guard.plan_run(handle, run, "error", dataclasses.replace(between, ram_free=between.free))
    assert "at load" in str(refused.value)
    ample = guard.Budget(free=phases["load"] + 2**20, total=2**40, headroom=0.0)
    assert guard.plan_run(handle, run, "error", ample).fits
