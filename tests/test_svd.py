"""Stable Video Diffusion specifics beyond the family contract: which checkpoint is which variant, no
prompt, the options node, frames beyond the trained length, and the published sizes and plan."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from i2v_nodes import host
from i2v_nodes.errors import InputError
from i2v_nodes.families.registry import SVD
from i2v_nodes.nodes import NODE_CLASS_MAPPINGS
from i2v_nodes.runtime import memory, sampling, services
from i2v_nodes.runtime.loading import models
from i2v_nodes.runtime.memory import guard, planner

CPU = torch.device("cpu")
XT = "stabilityai/stable-video-diffusion-img2vid-xt"
GiB = 2**30


@pytest.fixture(scope="module")
def svd(model_dirs):
    return models.open_model("tiny-svd", models.LoadOptions(), model_dirs, CPU)


@pytest.fixture(scope="module")
def stock(svd):
    pipe = SVD.pipeline_class(svd.variant).from_pretrained(svd.source)  # offline: a local folder
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def settings():
    # decode_chunk_size set: the temporal decoder mixes the frames of a chunk, so the stock call needs it
    return sampling.SampleSettings(prompt="", negative_prompt="", width=64, height=48, num_frames=8,
                                   steps=2, guidance_scale=3.0, seed=7, batch_size=1, target_fps=7,
                                   decode_chunk_size=4)


def run(handle, image, s, cache=None):
    return sampling.sample(handle, image, s, services.standalone(), cache=cache)


def svd_options(**values):
    defaults = {name: spec["default"] for name, (_kind, spec) in SVD.spec.option_inputs.items()}
    (options,) = NODE_CLASS_MAPPINGS["SVDOptions"]().build(**{**defaults, **values})
    return options


# --- variants and the tiny model -------------------------------------------------------------------


def test_checkpoints_are_their_variants_and_the_tiny_model_reloads_offline(svd, stock):
    assert (svd.family.name, svd.variant, svd.rules.trained_frames) == ("svd", "svd", 14)
    variants = {hub: models.describe_published(hub).variant for hub in SVD.hub_ids}
    assert variants == {"stabilityai/stable-video-diffusion-img2vid": "svd", XT: "svd-xt",
                        "stabilityai/stable-video-diffusion-img2vid-xt-1-1": "svd-xt"}
    xt = SVD.rules("svd-xt")
    assert (xt.trained_frames, xt.default_frames, xt.default_width, xt.default_height) == (25, 25, 1024, 576)
    assert type(stock).__name__ == "StableVideoDiffusionPipeline"
    weights = {path.suffix for path in Path(svd.source).rglob("*.*")
               if path.suffix in (".safetensors", ".bin", ".pt", ".ckpt", ".pth")}
    assert weights == {".safetensors"}


# --- no prompt -------------------------------------------------------------------------------------


def test_prompts_are_ignored_and_the_report_says_so_once(svd, still_image, settings):
    plain = run(svd, still_image, settings)
    texts = {"prompt": "a cat walking", "negative_prompt": "blurry"}
    prompted = run(svd, still_image, dataclasses.replace(settings, **texts))
    assert torch.equal(plain.frames, prompted.frames)  # the family's encode_prompt raises: never called
    assert "ignored" not in plain.report
    assert prompted.report.count("prompt and negative_prompt ignored") == 1
    assert "tiny-svd (svd) takes no prompt" in prompted.report


# --- the options node and fps ------------------------------------------------------------------------


@pytest.mark.parametrize("options, changes", [
    ({"motion_bucket_id": 200}, {}),
    ({"noise_aug_strength": 0.3}, {}),
    ({"min_guidance_scale": 2.5}, {}),
    ({}, {"target_fps": 14}),
    ({}, {"decode_chunk_size": 8}),
], ids=["motion_bucket_id", "noise_aug_strength", "min_guidance_scale", "target_fps", "decode_chunk_size"])
def test_each_setting_changes_the_output_and_matches_the_stock_pipeline(svd, stock, still_image, settings,
                                                                        options, changes):
    plain = run(svd, still_image, settings).frames
    s = dataclasses.replace(settings, options=svd_options(**options), **changes)
    ours = run(svd, still_image, s).frames
    assert not torch.equal(ours, plain)
    assert torch.equal(ours, sampling.stock_reference(svd, stock, still_image, s, s.decode_chunk_size).frames)


def test_the_models_own_values_equal_no_options(svd, still_image, settings):
    own = svd_options(motion_bucket_id=127, noise_aug_strength=0.02, min_guidance_scale=1.0)
    plain = run(svd, still_image, settings).frames
    assert torch.equal(run(svd, still_image, dataclasses.replace(settings, options=own)).frames, plain)


def test_bad_options_are_refused_naming_the_input(svd, still_image, settings, fresh_cache):
    with pytest.raises(InputError, match=r"input 'motion_bucket_id': expected -1 \(the model's own\) or a "
                                         "whole number from 0 to 255, got 256"):
        svd_options(motion_bucket_id=256)
    with pytest.raises(InputError, match="input 'motion_bucket_id': .* got 12.5"):
        svd_options(motion_bucket_id=12.5)
    with pytest.raises(InputError, match="input 'noise_aug_strength': .* a number from 0 to 1, got 1.5"):
        svd_options(noise_aug_strength=1.5)
    with pytest.raises(InputError, match="input 'min_guidance_scale': .* got -0.5"):
        svd_options(min_guidance_scale=-0.5)
    # a guidance ramp starting above 1 needs guidance on: refused before anything loads
    ramp = dataclasses.replace(settings, guidance_scale=1.0, options=svd_options(min_guidance_scale=2.0))
    with pytest.raises(InputError, match="input 'min_guidance_scale': 2.0 needs guidance above 1"):
        run(svd, still_image, ramp, cache=fresh_cache)
    (wan,) = NODE_CLASS_MAPPINGS["WanOptions"]().build(guidance_scale_2=0.0, boundary_ratio=0.0,
                                                       flow_shift=4.0)
    with pytest.raises(InputError, match="input 'options': WanOptions holds settings for wan models"):
        run(svd, still_image, dataclasses.replace(settings, options=wan), cache=fresh_cache)
    with pytest.raises(InputError, match="input 'height': must be a multiple of 8 .* valid: 40 or 48"):
        run(svd, still_image, dataclasses.replace(settings, height=44), cache=fresh_cache)
    assert fresh_cache.loads == 0


def test_guidance_off_runs_one_unet_pass_per_step(svd, stock, still_image, settings):
    s = dataclasses.replace(settings, guidance_scale=1.0)
    run(svd, still_image, s)  # loaded (or already warm)
    pipe = sampling.default_cache().peek(dataclasses.replace(svd.cache_key, offload="none")).pipeline
    rows = []
    hook = pipe.unet.register_forward_pre_hook(lambda _module, args: rows.append(args[0].shape[0]))
    try:
        ours = run(svd, still_image, s).frames
    finally:
        hook.remove()
    assert rows == [1] * s.steps and not sampling.run_shape(svd, s).cfg
    assert torch.equal(ours, sampling.stock_reference(svd, stock, still_image, s, s.decode_chunk_size).frames)


def test_a_cancel_in_the_second_clip_of_a_batch_stops_within_one_step(svd, still_image, settings):
    run(svd, still_image, settings)  # loaded (or already warm)
    pipe = sampling.default_cache().peek(dataclasses.replace(svd.cache_key, offload="none")).pipeline
    calls = []
    hook = pipe.unet.register_forward_hook(lambda *_: calls.append(1))

    class Progress:
        def __init__(self, total, description):
            self.done = 0

        def update(self, n=1):
            self.done += n
            if self.done == settings.steps + 1:  # during the first step of the second clip
                host.request_interrupt()

        def close(self):
            pass

    svc = dataclasses.replace(host.services(), progress=Progress)
    try:
        with pytest.raises(host.Interrupted):
            sampling.sample(svd, still_image, dataclasses.replace(settings, batch_size=3), svc)
    finally:
        hook.remove()
    assert len(calls) == settings.steps + 1  # one UNet call per step (both CFG halves); clip 3 never ran


# --- frames beyond the trained length: allowed, with a warning ----------------------------------------


def test_frames_beyond_the_trained_length_run_with_a_warning(svd, still_image, settings):
    s = dataclasses.replace(settings, num_frames=16)  # tiny-svd is the 14-frame variant
    budget = guard.Budget(free=2**40, total=2**40, headroom=0.1, ram_free=2**40, ram_total=2**40)
    plan = guard.plan_run(svd, sampling.run_shape(svd, s), "error", budget)
    assert "note: 16 frames is above the 14 this model was trained on" in plan.report
    assert run(svd.with_plan(plan), still_image, s).frames.shape == (16, 48, 64, 3)


# --- published sizes and the plan ----------------------------------------------------------------------


def test_the_published_xt_is_sized_and_planned_at_1024x576x25_in_fp16_with_no_download():
    handle = models.describe_published(XT, precision="fp16", device="cuda")
    params = dict(handle.params)
    assert 1.52e9 < params["unet"] < 1.53e9
    assert 0.63e9 < params["image_encoder"] < 0.64e9  # OpenCLIP ViT-H/14's vision tower
    assert 0.09e9 < params["vae"] < 0.1e9
    assert (handle.precision, handle.vae_precision) == ("fp16", "fp32")
    shape = memory.RunShape(1024, 576, 25)
    plan = guard.plan_run(handle, shape, "error", planner.Machine(24, 64).budget())
    assert plan.fits and plan.estimate.phase == "denoise"
    assert 10 * GiB < plan.estimate.peak < 20 * GiB
    assert not plan.options.vae_tiling
    # the temporal decoder has no tiled mode: no memory option turns it on
    assert not any("tiling" in step for step, _ in guard.ladder(handle, shape, plan.options))
    assert not any(options.vae_tiling for _, options in planner.ways_to_run(handle, shape))
