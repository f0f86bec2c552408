"""When nothing fits, VRAMGuard and plan name the smallest changes that would, each with its figure."""

from __future__ import annotations

import re

import pytest
import torch

from i2v_nodes.errors import MemoryGuardError
from i2v_nodes.runtime import memory
from i2v_nodes.runtime.loading import models
from i2v_nodes.runtime.memory import guard, planner
from i2v_nodes.runtime.memory.advice import GGUF_BITS, advice

SHAPE = memory.RunShape(64, 64, 9, 1, cfg=True)
GiB = 2**30


def budget_of(size: int) -> guard.Budget:
    return guard.Budget(free=size, total=size, headroom=0.0, ram_free=size, ram_total=size)


def cpu_handle(name: str, model_dirs):
    return models.open_model(name, models.LoadOptions(device="cpu"), model_dirs, torch.device("cpu"))


def test_the_shortfall_is_named_with_every_option_and_its_figure(model_dirs):
    handle = cpu_handle("tiny-wan2.2-i2v-a14b", model_dirs)
    options = memory.default_options(handle, SHAPE)
    frugal = [options, *(candidate for _label, candidate in guard.ladder(handle, SHAPE, options))][-1]
    need = memory.estimate(handle, SHAPE, frugal).peak
    short = budget_of(need // 2)
    with pytest.raises(MemoryGuardError) as caught:
        guard.plan_run(handle, SHAPE, "error", short)
    message = str(caught.value)
    line = next(x for x in message.splitlines() if "usable:" in x and "more" in x)
    assert frugal.describe() in line and "of RAM" in line
    figures = [float(f) for f in re.findall(r"([\d.]+) GiB", line)]
    assert figures == pytest.approx([need / GiB, need / 2 / GiB, need / 2 / GiB], abs=0.01)


def test_families_that_read_gguf_get_each_quantisation_with_its_figure(model_dirs):
    handle = cpu_handle("tiny-wan2.2-i2v-a14b", model_dirs)
    options = memory.default_options(handle, SHAPE)
    text = advice(handle, SHAPE, options, budget_of(1))
    gguf = [line for line in text.splitlines() if line.startswith("- GGUF")]
    assert [line.split()[2] for line in gguf] == ["Q4_K_M", "Q3_K_M"]
    params = dict(handle.params)["transformer"]
    each = float(re.search(r"hold ([\d.]+) GiB each", gguf[0]).group(1))
    assert each == pytest.approx(params * GGUF_BITS["Q4_K_M"] / 8 / GiB, abs=0.01)
    assert all(line.endswith("still short") for line in gguf)  # one byte is not enough for anything
    other = cpu_handle("tiny-i2vgen-xl", model_dirs)  # a family that reads no GGUF is not told to
    assert "GGUF" not in advice(other, SHAPE, memory.default_options(other, SHAPE), budget_of(1))


def test_plan_gives_the_advice_when_nothing_fits(model_dirs):
    handle = cpu_handle("tiny-wan2.2-i2v-a14b", model_dirs)
    result = planner.answer(handle, SHAPE, planner.Machine(0.001, 0.001), search=False)
    assert not result.first_fitting() and result.advice.startswith("What would fit:")
    assert result.as_data()["advice"] and "What would fit:" in planner.render(result)
    roomy = planner.answer(handle, SHAPE, planner.Machine(64, 64), search=False)
    assert roomy.fits and roomy.advice == "" and roomy.as_data()["advice"] == []
