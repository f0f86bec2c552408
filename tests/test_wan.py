"""Wan specifics beyond the family contract: its options, two experts, fp8 weights, folder checks,
and out-of-memory faults mid-run."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch

from i2v_nodes.errors import InputError
from i2v_nodes.families.registry import WAN
from i2v_nodes.families.wan.spec import WanSettings
from i2v_nodes.nodes import NODE_CLASS_MAPPINGS
from i2v_nodes.runtime import memory, sampling, services
from i2v_nodes.runtime.loading import models
from i2v_nodes.runtime.options import Options, OptionSet

CPU = torch.device("cpu")


def open_named(name, model_dirs, **options):
    return models.open_model(name, models.LoadOptions(**options), model_dirs, CPU)


@pytest.fixture(scope="module")
def a14b(model_dirs):
    return open_named("tiny-wan2.2-i2v-a14b", model_dirs)


@pytest.fixture(scope="module")
def ti2v(model_dirs):
    return open_named("tiny-wan2.2-ti2v-5b", model_dirs)


@pytest.fixture(scope="module")
def wan_settings():
    return sampling.SampleSettings(
        prompt="waves on the beach",
        negative_prompt="blurry",
        width=64,
        height=48,
        num_frames=9,
        steps=4,
        guidance_scale=5.0,
        seed=7,
        batch_size=1,
        target_fps=16,
    )


def run(handle, image, settings, cache=None):
    return sampling.sample(handle, image, settings, services.standalone(), cache=cache)


def wan_options(**values) -> Options:
    (options,) = NODE_CLASS_MAPPINGS["WanOptions"]().build(
        **{"guidance_scale_2": 0.0, "boundary_ratio": 0.0, "flow_shift": 0.0, **values}
    )
    return options


# --- the options node --------------------------------------------------------------------------


@pytest.mark.parametrize("values", [{"guidance_scale_2": 2.0}, {"flow_shift": 8.0}, {"boundary_ratio": 0.5}])
def test_each_wan_option_changes_the_output_and_matches_the_stock_pipeline(
    a14b, still_image, wan_settings, fresh_cache, values
):
    plain = run(a14b, still_image, wan_settings, cache=fresh_cache).frames
    options = wan_options(**values)
    ours = run(
        a14b, still_image, dataclasses.replace(wan_settings, options=options), cache=fresh_cache
    ).frames
    assert not torch.equal(ours, plain)

    stock = WAN.pipeline_class().from_pretrained(a14b.source)
    stock.set_progress_bar_config(disable=True)
    reference = sampling.stock_reference(a14b, stock, still_image,
                                         dataclasses.replace(wan_settings, options=options)).frames
    assert torch.equal(ours, reference)
    # the shared, cached pipeline is left as it was found
    cached = fresh_cache.peek(dataclasses.replace(a14b.cache_key, offload="none")).pipeline
    assert cached.config.boundary_ratio == 0.9 and cached.scheduler.config.flow_shift == 5.0


def test_both_experts_run_each_on_its_side_of_the_boundary(a14b, still_image, wan_settings, fresh_cache):
    run(a14b, still_image, wan_settings, cache=fresh_cache)
    pipe = fresh_cache.peek(dataclasses.replace(a14b.cache_key, offload="none")).pipeline
    calls = {"transformer": 0, "transformer_2": 0}
    hooks = [
        getattr(pipe, name).register_forward_hook(
            lambda *_, name=name: calls.__setitem__(name, calls[name] + 1)
        )
        for name in calls
    ]
    try:
        run(a14b, still_image, wan_settings, cache=fresh_cache)
    finally:
        for hook in hooks:
            hook.remove()
    assert calls["transformer"] > 0 and calls["transformer_2"] > 0
    assert calls["transformer"] + calls["transformer_2"] == 2 * wan_settings.steps  # two CFG halves per step


def test_second_expert_options_on_a_single_transformer_model_are_refused(
    ti2v, still_image, wan_settings, fresh_cache
):
    settings = dataclasses.replace(
        wan_settings, width=64, height=64, options=wan_options(guidance_scale_2=3.0)
    )
    with pytest.raises(InputError, match="input 'options': guidance_scale_2 .* Wan 2.2 A14B"):
        run(ti2v, still_image, settings, cache=fresh_cache)
    assert fresh_cache.loads == 0


def test_options_of_another_family_are_refused_naming_the_node(
    tiny_handle, still_image, small_settings, fresh_cache
):
    settings = dataclasses.replace(small_settings, options=wan_options(flow_shift=5.0))
    with pytest.raises(
        InputError,
        match="input 'options': WanOptions holds settings for wan models, but the "
        "model is tiny-i2vgen-xl \\(i2vgen-xl\\)",
    ):
        run(tiny_handle, still_image, settings, cache=fresh_cache)
    node = NODE_CLASS_MAPPINGS["I2VSample"]()
    with pytest.raises(InputError, match=r"^I2VSample \(node 5\): input 'options': WanOptions holds"):
        node.sample(
            tiny_handle,
            still_image,
            "x",
            "",
            64,
            64,
            8,
            2,
            9.0,
            0,
            1,
            8,
            0,
            options=wan_options(flow_shift=5.0),
            unique_id="5",
        )
    assert fresh_cache.loads == 0


def test_option_nodes_chain_and_check_their_ranges():
    first = wan_options(flow_shift=5.0)
    (chained,) = NODE_CLASS_MAPPINGS["WanOptions"]().build(
        options=first, guidance_scale_2=2.0, boundary_ratio=0.0, flow_shift=0.0
    )
    assert chained.for_family("wan", "m") == WanSettings(guidance_scale_2=2.0)  # the later node replaces
    with pytest.raises(
        InputError, match=r"^WanOptions \(node 3\): input 'boundary_ratio': expected a number"
    ):
        NODE_CLASS_MAPPINGS["WanOptions"]().build(
            guidance_scale_2=0.0, boundary_ratio=1.5, flow_shift=0.0, unique_id="3"
        )
    mixed = Options((OptionSet("wan", "WanOptions", WanSettings()), OptionSet("other", "OtherOptions", None)))
    with pytest.raises(InputError, match="OtherOptions holds settings for other models"):
        mixed.for_family("wan", "m")


# --- fp8 weight storage ------------------------------------------------------------------------


def test_fp8_weights_store_float8_and_compute_close_to_full_precision(
    a14b, model_dirs, still_image, wan_settings, fresh_cache
):
    fp8 = open_named("tiny-wan2.2-i2v-a14b", model_dirs, weights="fp8")
    assert fp8.cache_key != a14b.cache_key
    full = run(a14b, still_image, wan_settings, cache=fresh_cache).frames
    stored = run(fp8, still_image, wan_settings, cache=fresh_cache).frames
    assert fresh_cache.loads == 2
    pipe = fresh_cache.peek(dataclasses.replace(fp8.cache_key, offload="none")).pipeline
    dtypes = {
        p.dtype
        for name in ("transformer", "transformer_2")
        for p in getattr(pipe, name).blocks.parameters()
        if p.dim() == 2
    }
    assert dtypes == {torch.float8_e4m3fn}
    assert torch.isfinite(stored).all() and not torch.equal(stored, full)
    assert (stored - full).abs().mean() < 0.1  # the same video, give or take fp8's rounding


def test_fp8_halves_the_denoiser_bytes_in_the_estimate():
    bf16 = models.describe_published("Wan-AI/Wan2.2-I2V-A14B-Diffusers", device="cuda")
    fp8 = dataclasses.replace(bf16, weights="fp8")
    sizes, halved = memory.weight_bytes(bf16), memory.weight_bytes(fp8)
    assert (
        halved["transformer"] * 2 == sizes["transformer"] and halved["text_encoder"] == sizes["text_encoder"]
    )


def test_fp8_is_refused_where_torch_cannot_store_it(model_dirs, monkeypatch):
    monkeypatch.delattr(torch, "float8_e4m3fn")
    with pytest.raises(
        InputError,
        match="input 'weights': fp8 weight storage is not available here: torch .* has no float8_e4m3fn",
    ):
        open_named("tiny-wan2.2-i2v-a14b", model_dirs, weights="fp8")


# --- folders -------------------------------------------------------------------------------------


def test_a14b_folder_without_its_second_expert_is_refused(tmp_path, a14b):
    broken = tmp_path / "i2v" / "half-a14b"
    shutil.copytree(a14b.source, broken)
    shutil.rmtree(broken / "transformer_2")
    with pytest.raises(
        InputError,
        match="input 'model': .*has no 'transformer_2' folder, but a wan2.2-i2v-a14b model needs one",
    ):
        open_named("half-a14b", [tmp_path / "i2v"])


def test_text_to_video_folder_is_refused(tmp_path, a14b):
    t2v = tmp_path / "i2v" / "t2v"
    shutil.copytree(a14b.source, t2v)
    index = json.loads((t2v / "model_index.json").read_text())
    index.update({"_class_name": "WanPipeline", "transformer_2": [None, None], "boundary_ratio": None})
    (t2v / "model_index.json").write_text(json.dumps(index))
    config = json.loads((t2v / "transformer" / "config.json").read_text())
    (t2v / "transformer" / "config.json").write_text(json.dumps({**config, "in_channels": 16}))
    with pytest.raises(
        InputError, match="input 'model': .*'WanPipeline' pipeline that is not an image-to-video"
    ):
        open_named("t2v", [tmp_path / "i2v"])


def test_published_variants_and_sizes(model_dirs):
    counts = {hub: dict(models.describe_published(hub).params) for hub in WAN.hub_ids}
    a14b = counts["Wan-AI/Wan2.2-I2V-A14B-Diffusers"]
    assert a14b["transformer"] == a14b["transformer_2"] and 14.0e9 < a14b["transformer"] < 14.5e9
    assert 5.6e9 < a14b["text_encoder"] < 5.8e9  # UMT5-XXL's encoder
    assert 4.9e9 < counts["Wan-AI/Wan2.2-TI2V-5B-Diffusers"]["transformer"] < 5.1e9
    assert 0.6e9 < counts["Wan-AI/Wan2.1-I2V-14B-480P-Diffusers"]["image_encoder"] < 0.7e9  # CLIP ViT-H/14
    flf2v = counts["Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers"]  # Wan 2.1's, and the two images' positions
    flf2v_720p = counts["Wan-AI/Wan2.1-I2V-14B-720P-Diffusers"]
    assert flf2v["transformer"] - flf2v_720p["transformer"] == 514 * 1280
    variants = {hub: models.describe_published(hub).variant for hub in WAN.hub_ids}
    assert set(variants.values()) == {"wan2.1-i2v", "wan2.2-i2v-a14b", "wan2.2-ti2v-5b", "wan2.1-flf2v"}


# --- out of memory mid-run -----------------------------------------------------------------------


@pytest.mark.parametrize("where", ["denoise", "decode"])
def test_out_of_memory_mid_run_leaves_the_cache_usable_and_says_what_to_change(
    a14b, still_image, wan_settings, fresh_cache, where
):
    run(a14b, still_image, wan_settings, cache=fresh_cache)
    pipe = fresh_cache.peek(dataclasses.replace(a14b.cache_key, offload="none")).pipeline
    target = pipe.transformer if where == "denoise" else pipe.vae.decoder
    calls = []

    def fail_on_second_call(module, args):
        calls.append(1)
        if len(calls) == 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    hook = target.register_forward_pre_hook(fail_on_second_call)
    try:
        with pytest.raises(
            sampling.DeviceOutOfMemory,
            match=f"ran out of device memory during {where} .* VRAMGuard with "
            "policy 'adapt' .* torch: CUDA out of memory",
        ) as caught:
            run(a14b, still_image, wan_settings, cache=fresh_cache)
    finally:
        hook.remove()
    assert isinstance(caught.value, torch.OutOfMemoryError)  # hosts that react to OOM still see one
    stats = fresh_cache.stats()
    assert stats.entries == 1 and fresh_cache.is_loaded(dataclasses.replace(a14b.cache_key, offload="none"))
    assert "forward" not in pipe.transformer.__dict__ and pipe.scheduler.config.flow_shift == 5.0
    again = run(a14b, still_image, wan_settings, cache=fresh_cache)  # the next run works, loading nothing
    assert fresh_cache.loads == 1 and again.frames.shape[0] == wan_settings.num_frames


def test_out_of_memory_in_a_graph_writes_no_file(
    a14b, model_dirs, still_image, wan_settings, session_dirs, monkeypatch
):
    loader, sampler = NODE_CLASS_MAPPINGS["LoadI2VModel"](), NODE_CLASS_MAPPINGS["I2VSample"]()
    (model,) = loader.load("tiny-wan2.2-i2v-a14b", "auto", "auto", "cpu", "none", False)
    before = sorted(session_dirs["output"].rglob("*"))

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(WAN, "decode", out_of_memory)
    with pytest.raises(
        sampling.DeviceOutOfMemory, match=r"^I2VSample \(node 8\): ran out of device memory during decode"
    ):
        sampler.sample(model, still_image, "waves", "", 64, 48, 9, 2, 5.0, 0, 1, 16, 0, unique_id="8")
    assert sorted(session_dirs["output"].rglob("*")) == before


def test_group_offload_of_both_experts_composes_with_the_step_callback(a14b, still_image, wan_settings,
                                                                      fresh_cache):
    """diffusers' group offload hooks on both experts (and the leaf-level offload of the text encoder)
    give the same frames on a CPU, where onload and offload devices are one."""
    plain = run(a14b, still_image, wan_settings, cache=fresh_cache).frames
    grouped_handle = dataclasses.replace(a14b, offload="group")  # open_model refuses this on CPU
    grouped = run(grouped_handle, still_image, wan_settings, cache=fresh_cache).frames
    assert fresh_cache.loads == 2  # offload mode is part of the cache key
    assert torch.allclose(grouped, plain, atol=1e-5)
