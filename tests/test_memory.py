"""The memory tracer, the estimator and the guard's policies."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from i2v_nodes.errors import MemoryGuardError
from i2v_nodes.runtime import memory
from i2v_nodes.runtime.loading import models
from i2v_nodes.runtime.memory import guard
from i2v_nodes.runtime.memory import trace as memtrace

GiB = 2**30


@pytest.fixture(scope="module")
def full_size():
    """The published I2VGen-XL, sized from its config, as if on a CUDA card (fp16, VAE fp32)."""
    return models.describe_published("ali-vilab/i2vgen-xl", precision="fp16", device="cuda")


def card(gib: float, ram_gib: float = 64, headroom: float = 0.10) -> guard.Budget:
    """A GPU with ``gib`` free and total, in a machine with ``ram_gib`` of RAM."""
    return guard.Budget(free=int(gib * GiB), total=int(gib * GiB), headroom=headroom,
                        ram_free=int(ram_gib * GiB), ram_total=int(ram_gib * GiB))


def test_tracer_counts_live_tensors_not_all_allocations():
    def steps(x):
        a = x * 2  # 4 MiB live
        b = a + 1  # 8 MiB live
        del a  # back to 4 MiB
        return b * 3  # 8 MiB: b and the result

    with torch.device("meta"):
        x = torch.empty(1024, 1024)  # 4 MiB of float32
    assert memtrace.peak_bytes(steps, x) == 8 * 2**20


def test_tracer_treats_attention_as_a_fused_kernel():
    def attend(q, k, v):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v)

    with torch.device("meta"):
        q = k = v = torch.empty(1, 8, 4096, 64)
    # the output only (8 MiB), not the 4096 x 4096 score matrix per head (512 MiB)
    assert memtrace.peak_bytes(attend, q, k, v) == 8 * 4096 * 64 * 4


def test_a_trace_for_cuda_counts_rms_norm_as_its_fused_kernel():
    norm = torch.nn.RMSNorm(5120, device="meta", dtype=torch.bfloat16)
    with torch.device("meta"):
        x = torch.empty(1, 4096, 5120, dtype=torch.bfloat16)  # 40 MiB
    out = 4096 * 5120 * 2
    # CUDA's kernel allocates the output alone; a CPU (and meta) computes in float32 temporaries
    assert memtrace.peak_bytes(norm, x, kernels="cuda") == out
    assert memtrace.peak_bytes(norm, x, kernels="cpu") >= 2 * 4096 * 5120 * 4
    # with a weight of another dtype CUDA decomposes it too
    wide = torch.nn.RMSNorm(5120, device="meta", dtype=torch.float32)
    assert memtrace.peak_bytes(wide, x, kernels="cuda") > out


def test_estimate_grows_with_every_dimension(full_size):
    base = memory.RunShape(256, 256, 8, batch_size=1)
    options = memory.MemoryOptions(decode_chunk=1)
    peak = memory.estimate(full_size, base, options).peak
    for change in ({"width": 320}, {"height": 320}, {"num_frames": 12}, {"batch_size": 2}):
        bigger = memory.estimate(full_size, dataclasses.replace(base, **change), options).peak
        assert bigger > peak, change
    no_cfg = memory.estimate(full_size, dataclasses.replace(base, cfg=False), options).peak
    assert no_cfg < peak
    fp32 = memory.estimate(dataclasses.replace(full_size, precision="fp32"), base, options).peak
    assert fp32 > peak
    offloaded = memory.estimate(full_size, base, dataclasses.replace(options, offload="model")).peak
    assert offloaded < peak


def test_weights_follow_the_real_parameter_bytes(full_size):
    estimate = memory.estimate(full_size, memory.RunShape(256, 256, 8), memory.MemoryOptions(decode_chunk=1))
    counts = dict(full_size.params)
    expected = 2 * (counts["unet"] + counts["text_encoder"] + counts["image_encoder"]) + 4 * counts["vae"]
    assert estimate.weights == expected


def test_seed_tiers_fit_their_cards_in_fp16(full_size):
    for side, frames, card in ((512, 16, 12), (768, 24, 24), (1024, 32, 40)):
        budget = guard.Budget(free=card * GiB, total=card * GiB, headroom=0.10, ram_free=64 * GiB,
                              ram_total=64 * GiB)
        plan = guard.plan_run(full_size, memory.RunShape(side, side, frames), "off", budget)
        assert plan.fits and plan.estimate.peak <= budget.usable, (side, frames)


def test_error_policy_fails_with_the_largest_settings_that_fit(full_size):
    budget = card(12)
    shape = memory.RunShape(768, 768, 24)
    with pytest.raises(MemoryGuardError) as caught:
        guard.plan_run(full_size, shape, "error", budget)
    message = str(caught.value)
    assert "DOES NOT FIT" in message
    frames = int(message.split("- ")[1].split(" frames fit")[0])
    assert 2 <= frames < 24
    fits = memory.estimate(full_size, dataclasses.replace(shape, num_frames=frames),
                           memory.default_options(full_size, shape)).peak
    assert fits <= budget.usable
    assert "fits with 24 frames" in message
    assert "policy 'adapt' picks this" in message


def test_adapt_policy_changes_memory_options_only(full_size):
    budget = card(12)
    shape = memory.RunShape(768, 768, 24)
    plan = guard.plan_run(full_size, shape, "adapt", budget)
    assert plan.fits and plan.changes
    assert plan.shape == shape  # never resolution or frames
    assert plan.options != memory.default_options(full_size, shape)
    assert "adapted:" in plan.report


def test_adapt_on_cpu_never_offers_offload():
    handle = models.describe_published("ali-vilab/i2vgen-xl", precision="fp32", device="cpu")
    budget = guard.Budget(free=8 * GiB, total=16 * GiB, headroom=0.10)
    with pytest.raises(MemoryGuardError) as caught:
        guard.plan_run(handle, memory.RunShape(512, 512, 16), "adapt", budget)
    assert "offload" not in str(caught.value).split("adapted:")[-1].split("\n")[0]


def test_off_policy_only_reports(full_size):
    budget = dataclasses.replace(card(12), free=1 * GiB)
    plan = guard.plan_run(full_size, memory.RunShape(512, 512, 16), "off", budget)
    assert not plan.fits and "DOES NOT FIT" in plan.report


def test_already_loaded_weights_count_as_available(full_size):
    shape = memory.RunShape(512, 512, 16)
    need = memory.estimate(full_size, shape, memory.default_options(full_size, shape)).peak
    free = need - 2 * GiB  # the model's own 4.7 GiB of weights already sit in the "used" part
    cold = dataclasses.replace(card(12, headroom=0.0), free=free)
    warm = dataclasses.replace(cold, already_loaded=int(4.7 * GiB))
    assert not guard.plan_run(full_size, shape, "off", cold).fits
    assert guard.plan_run(full_size, shape, "off", warm).fits


def test_default_decode_chunk_never_raises_the_peak(full_size):
    shape = memory.RunShape(1024, 1024, 32)
    options = memory.default_options(full_size, shape)
    phases = memory.estimate_phases(full_size, shape, options)
    assert phases["decode"] <= phases["denoise"]
    assert options.decode_chunk > 1


# --- system RAM, fp8, offload of two experts -----------------------------------------------------


@pytest.fixture(scope="module")
def a14b():
    return models.describe_published("Wan-AI/Wan2.2-I2V-A14B-Diffusers", device="cuda")


def test_offload_keeps_one_expert_on_the_device_and_both_in_ram(a14b):
    shape = memory.RunShape(832, 480, 81)
    sizes = memory.weight_bytes(a14b)
    none = memory.MemoryOptions(offload="none")
    model = memory.MemoryOptions(offload="model")
    assert memory.resident_weights(a14b, "none")["denoise"] == sum(sizes.values())
    assert memory.resident_weights(a14b, "model")["denoise"] == sizes["transformer"]  # one expert at a time
    assert memory.ram_phases(a14b, shape, model)["run"] > sizes["transformer"] + sizes["transformer_2"]
    # without offload the weights went to the device
    assert memory.ram_phases(a14b, shape, none)["run"] < sizes["transformer"]


def test_a_run_that_would_exhaust_ram_is_refused_with_advice(a14b):
    shape = memory.RunShape(832, 480, 81)
    budget = card(80, ram_gib=32)
    with pytest.raises(MemoryGuardError) as caught:
        guard.plan_run(dataclasses.replace(a14b, offload="model"), shape, "error", budget)
    message = str(caught.value)
    # the device holds one expert at a time: only RAM is short, and each line says which memory it judges
    assert "usable after 10% headroom 72.00 GiB: fits" in message
    assert "system RAM: peak" in message and message.count("DOES NOT FIT") == 1
    advice = message.split("What would fit:")[1]
    assert "GGUF Q4_K_M" in advice and "of RAM needed, fits" in advice and "fp8" in advice


def test_adapt_never_switches_to_fp8_but_error_advice_names_it(a14b):
    shape = memory.RunShape(832, 480, 81)
    # fits only with fp8 weights: bf16 experts streamed one at a time need 31 GiB of RAM, kept on disk
    # 17.2 (the bf16 text encoder); fp8 experts streamed one at a time with sequential offload 16.0
    budget = card(24, ram_gib=18.5)
    with pytest.raises(MemoryGuardError) as caught:
        guard.plan_run(a14b, shape, "adapt", budget)
    assert "with LoadI2VModel's weights set to fp8" in str(caught.value)
    plan = guard.plan_run(dataclasses.replace(a14b, weights="fp8"), shape, "adapt", budget)
    assert plan.fits and "fp8" in plan.report


def test_guard_reports_ram_beside_the_device(a14b):
    plan = guard.plan_run(a14b, memory.RunShape(832, 480, 81), "off", card(80, ram_gib=128))
    assert "system RAM: peak" in plan.report and plan.ram.phase in ("load", "run")


# --- the tracer's replay of repeated calls ----------------------------------------------------------


@pytest.mark.parametrize("direction, tiling, frames", [("decode", False, 17), ("decode", True, 13),
                                                       ("encode", False, 17), ("encode", True, 9)])
def test_replayed_vae_trace_equals_the_full_trace(a14b, direction, tiling, frames):
    """Replaying repeated per-frame and per-tile calls must give exactly the peak of running them all."""
    family = a14b.family
    trace = family.traces.vae(a14b.variant, a14b.configs_json, torch.float32, direction, frames, 320, 576,
                             tiling)
    full = memtrace.peak_bytes(trace.fn, *trace.args, **trace.kwargs)
    assert trace.repeat and trace.peak_bytes() == full
    assert trace.peak_bytes() == full  # and again, from the records the first one left


def test_tracing_never_changes_the_shared_meta_vae(a14b):
    """The tiled trace uses its own meta VAE: no trace toggles state another thread could see."""
    family = a14b.family
    plain = family.traces.vae(a14b.variant, a14b.configs_json, torch.float32, "decode", 5, 256, 256, False)
    tiled = family.traces.vae(a14b.variant, a14b.configs_json, torch.float32, "decode", 5, 256, 256, True)
    plain_vae, tiled_vae = plain.fn.__self__, tiled.fn.__self__
    assert plain_vae is not tiled_vae and not plain_vae.use_tiling and tiled_vae.use_tiling
    tiled.peak_bytes()
    plain.peak_bytes()
    assert not plain_vae.use_tiling and tiled_vae.use_tiling


def test_group_offload_on_cuda_counts_the_pinned_copies_of_two_groups_in_ram(a14b):
    from i2v_nodes.runtime.memory import weights

    shape = memory.RunShape(832, 480, 81)
    group = memory.MemoryOptions(offload="group")
    pinned = weights.pinned_bytes(a14b, "group")
    block = sum(p.numel() for p in a14b.family.traces.meta_component(
        "transformer", json.dumps(a14b.configs["transformer"], sort_keys=True), torch.float32).blocks[0]
        .parameters()) * 2
    assert pinned >= 2 * block  # two blocks of an expert at least (here UMT5's table, pinned leaf by leaf)
    model = memory.ram_phases(a14b, shape, memory.MemoryOptions(offload="model"))["run"]
    assert memory.ram_phases(a14b, shape, group)["run"] - model == pinned  # the same weights in RAM
    assert weights.pinned_bytes(a14b, "model") == weights.pinned_bytes(a14b, "sequential") == 0
    assert weights.pinned_bytes(dataclasses.replace(a14b, device="cpu"), "group") == 0
