"""Streaming per phase (issue 20, item 1): converted weights spilled once to a private file, released
components dropped by the kernel and faulted back with the same bytes, the experts never resident
together, and a streamed run's frames equal a resident run's bit for bit."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from i2v_nodes.errors import MemoryGuardError
from i2v_nodes.runtime import memory, sampling, services
from i2v_nodes.runtime.loading import models, residency, streaming
from i2v_nodes.runtime.memory import devices, guard

pytestmark = pytest.mark.skipif(not residency.SUPPORTED, reason="streaming needs Linux's /proc and madvise")
MiB = 2**20


def rss_file() -> int:
    return int(re.search(r"RssFile:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) * 1024


def mapped_module(tmp_path: Path) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """A module with one tensor used in place from its safetensors file and one converted on load."""
    generator = torch.Generator().manual_seed(0)
    save_file({"kept": torch.randn(16 * MiB // 4, generator=generator),
               "cast": torch.randn(8 * MiB // 2, generator=generator).to(torch.bfloat16)},
              str(tmp_path / "weights.safetensors"))
    with safe_open(str(tmp_path / "weights.safetensors"), framework="pt", device="cpu") as handle:
        kept, cast = handle.get_tensor("kept"), handle.get_tensor("cast").float()
    module = torch.nn.Module()
    module.kept = torch.nn.Parameter(kept, requires_grad=False)
    module.register_buffer("cast", cast)
    return module, {"kept": kept.clone(), "cast": cast.clone()}


def test_weights_used_in_place_are_file_backed_and_converted_ones_are_spilled_once(tmp_path):
    module, before = mapped_module(tmp_path)
    assert residency.footprint(module) == residency.Footprint(file_backed=16 * MiB, anonymous=16 * MiB)
    pointer = module.kept.data_ptr()
    spill = tmp_path / "spill"
    assert residency.make_file_backed(module, spill) == 16 * MiB
    assert residency.footprint(module) == residency.Footprint(file_backed=32 * MiB)
    assert module.kept.data_ptr() == pointer  # what was the file's already is not copied
    assert module.cast.data_ptr() % 4096 == 0  # a page boundary: as aligned as the allocator's
    assert list(spill.iterdir()) == []  # the spill file is unlinked: it goes with its mapping
    assert residency.make_file_backed(module, spill) == 0  # once
    assert torch.equal(module.kept, before["kept"]) and torch.equal(module.cast, before["cast"])


def test_a_released_component_leaves_memory_and_comes_back_with_the_same_bytes(tmp_path):
    module, before = mapped_module(tmp_path)
    residency.make_file_backed(module, tmp_path)
    float(module.kept.sum() + module.cast.sum())  # every page in
    resident = rss_file()
    assert residency.release(module) == 32 * MiB
    assert resident - rss_file() > 28 * MiB  # the pages went (other mappings move a little meanwhile)
    assert torch.equal(module.kept, before["kept"]) and torch.equal(module.cast, before["cast"])
    assert rss_file() - (resident - 32 * MiB) > 28 * MiB  # and came back from the files on use


def test_a_written_private_mapping_is_not_taken_for_the_file(tmp_path):
    module, _ = mapped_module(tmp_path)
    module.kept.data[0] = 1.0  # a page copied on write now differs from the file
    assert residency.footprint(module).file_backed == 0
    assert residency.release(module) == 0  # advice would throw the write away: none is given


# --- runs ------------------------------------------------------------------------------------------


SETTINGS = sampling.SampleSettings(prompt="waves on the beach", negative_prompt="blurry", width=64, height=48,
                                   num_frames=9, steps=4, guidance_scale=5.0, seed=7, batch_size=2,
                                   target_fps=16)


def planned(handle, residency_mode: str):
    shape = sampling.plan.run_shape(handle, SETTINGS)
    budget = guard.Budget(free=2**40, total=2**40, headroom=0.0, ram_free=2**40, ram_total=2**40)
    plan = guard.plan_run(handle, shape, "off", budget)
    options = dataclasses.replace(plan.options, residency=residency_mode)
    return dataclasses.replace(handle, plan=dataclasses.replace(plan, options=options))


@pytest.mark.parametrize("name", ["tiny-wan2.2-i2v-a14b", "tiny-wan2.1-i2v"])
def test_a_streamed_run_equals_a_resident_run_bit_for_bit(name, model_dirs, still_image, fresh_cache,
                                                         monkeypatch):
    monkeypatch.setattr(residency, "SPILL_AT_LEAST", 0)  # the tiny weights are small: spill them all
    handle = models.open_model(name, models.LoadOptions(), model_dirs, torch.device("cpu"))
    resident = sampling.sample(planned(handle, "resident"), still_image, SETTINGS, services.standalone(),
                               cache=fresh_cache)
    loaded = fresh_cache.peek(handle.cache_key)
    loaded.prompts.clear()  # so the streamed run encodes its prompt too
    others_resident: list[int] = []
    original = streaming.Streaming.entering

    def entering(self, role):
        original(self, role)
        others = [module for other, module in self.components.items() if other != role]
        others_resident.append(sum(residency.resident_bytes(module) for module in others))

    monkeypatch.setattr(streaming.Streaming, "entering", entering)
    streamed = sampling.sample(planned(handle, "phase"), still_image, SETTINGS, services.standalone(),
                               cache=fresh_cache)
    assert fresh_cache.loads == 1  # the same cached pipeline, streamed
    assert torch.equal(streamed.frames, resident.frames)
    assert "streamed per phase" in streamed.report
    state = loaded.streaming
    assert set(state.entered) == set(streaming.hooked_roles(handle.roles)) and state.spilled > 0
    if name == "tiny-wan2.2-i2v-a14b":  # prompt, negative prompt; both clips in one call: one swap
        assert state.entered == ["text_encoder", "text_encoder", "transformer", "transformer_2"]
    assert others_resident and max(others_resident) == 0  # whatever runs, it runs alone
    assert state.current is None and all(residency.resident_bytes(m) == 0 for m in state.components.values())
    # what a later plan may take as free: what the entry holds now, not its whole weights
    total = sum(memory.weight_bytes(handle).values())
    assert fresh_cache.held_bytes(handle.cache_key) == 0
    again = sampling.sample(planned(handle, "resident"), still_image, SETTINGS, services.standalone(),
                            cache=fresh_cache)
    assert loaded.streaming is None and torch.equal(again.frames, resident.frames)
    assert fresh_cache.held_bytes(handle.cache_key) == total


@pytest.mark.parametrize("policy", ["error", "adapt"])
def test_the_guard_streams_whatever_its_policy_when_only_streaming_fits(policy, model_dirs):
    handle = models.open_model("tiny-wan2.2-i2v-a14b", models.LoadOptions(), model_dirs, torch.device("cpu"))
    shape = sampling.plan.run_shape(handle, SETTINGS)
    options = memory.default_options(handle, shape)
    streamed = dataclasses.replace(options, residency="phase")
    resident_peak = memory.estimate(handle, shape, options).peak
    streamed_peak = memory.estimate(handle, shape, streamed).peak
    assert streamed_peak < resident_peak
    between = (resident_peak + streamed_peak) // 2
    budget = guard.Budget(free=between, total=between, headroom=0.0, ram_free=between, ram_total=between)
    plan = guard.plan_run(handle, shape, policy, budget)
    assert plan.fits and plan.options.residency == "phase" and plan.options.offload == options.offload
    assert "streamed per phase" in plan.report and "everything resident needs" in plan.report
    roomy = guard.Budget(free=resident_peak, total=resident_peak, headroom=0.0, ram_free=resident_peak,
                         ram_total=resident_peak)
    assert guard.plan_run(handle, shape, policy, roomy).options.residency == "resident"  # the fastest
    short = streamed_peak - 1
    with pytest.raises(MemoryGuardError, match="DOES NOT FIT"):
        guard.plan_run(handle, shape, "error", guard.Budget(free=short, total=short, headroom=0.0,
                                                            ram_free=short, ram_total=short))


def test_the_budget_counts_the_process_runtime_once(model_dirs, monkeypatch):
    """Free memory measured from inside the process has already taken its runtime away, which the
    estimates count too: the budget gives back what this process holds, up to that runtime."""
    handle = models.open_model("tiny-wan2.2-i2v-a14b", models.LoadOptions(), model_dirs, torch.device("cpu"))
    free = 8 * 2**30
    host = dataclasses.replace(services.standalone(), free_bytes=lambda device: free)
    assert devices.process_resident_bytes() > 100 * 2**20  # torch is imported
    budget = sampling.budget_for(handle, host, 0.1, held=0)
    assert budget.free == budget.ram_free == free + min(devices.process_resident_bytes(),
                                                         memory.CPU_RUNTIME_BYTES)


def test_out_of_memory_in_a_streamed_phase_leaves_the_cache_consistent(model_dirs, still_image, fresh_cache,
                                                                        monkeypatch):
    """Out of memory in the low-noise expert's steps: the named error, nothing left resident, the
    cached pipeline kept, and the next streamed run gives the frames of a resident one."""
    monkeypatch.setattr(residency, "SPILL_AT_LEAST", 0)
    handle = models.open_model("tiny-wan2.2-i2v-a14b", models.LoadOptions(), model_dirs, torch.device("cpu"))
    resident = sampling.sample(planned(handle, "resident"), still_image, SETTINGS, services.standalone(),
                               cache=fresh_cache)
    loaded = fresh_cache.peek(handle.cache_key)
    expert = loaded.pipeline.transformer_2
    original = type(expert).forward

    def out_of_memory(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CPU out of memory (simulated)")

    monkeypatch.setattr(type(expert), "forward", out_of_memory)
    with pytest.raises(sampling.DeviceOutOfMemory, match="denoise"):
        sampling.sample(planned(handle, "phase"), still_image, SETTINGS, services.standalone(),
                        cache=fresh_cache)
    state = loaded.streaming
    assert state is not None and state.current is None
    assert all(residency.resident_bytes(module) == 0 for module in state.components.values())
    monkeypatch.setattr(type(expert), "forward", original)
    again = sampling.sample(planned(handle, "phase"), still_image, SETTINGS, services.standalone(),
                            cache=fresh_cache)
    assert fresh_cache.loads == 1 and torch.equal(again.frames, resident.frames)
