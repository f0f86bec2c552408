"""AnimateDiff image-to-video (PIA) specifics beyond the family contract: the tiny model, the options node,
a base + adapter folder and an adapter that does not fit its base, frames beyond the trained length,
and the published pair (its sizes, its plan and how it loads)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from i2v_nodes.errors import InputError, ModelError
from i2v_nodes.families.animatediff import components as animatediff_components
from i2v_nodes.families.animatediff import family as animatediff
from i2v_nodes.families.animatediff.configs import HUB_ID, TINY
from i2v_nodes.families.contract.files import LoadSpec
from i2v_nodes.families.registry import get
from i2v_nodes.nodes import NODE_CLASS_MAPPINGS
from i2v_nodes.runtime import memory, sampling, services
from i2v_nodes.runtime.loading import models, placement
from i2v_nodes.runtime.memory import guard, planner

CPU = torch.device("cpu")
AD = get("animatediff")
GiB = 2**30
TINY_NAME = "tiny-animatediff-i2v"
BIG = guard.Budget(free=2**40, total=2**40, headroom=0.1, ram_free=2**40, ram_total=2**40)


@pytest.fixture(scope="module")
def ad(model_dirs):
    return models.open_model(TINY_NAME, models.LoadOptions(), model_dirs, CPU)


@pytest.fixture(scope="module")
def stock(ad):
    pipe = AD.pipeline_class(ad.variant).from_pretrained(ad.source)  # offline: a local folder
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def settings():
    # every frame in one VAE call, as the plain stock call decodes them (the chunk moves the VAE's last bits)
    return sampling.SampleSettings(prompt="a cat walking on the beach", negative_prompt="blurry", width=64,
                                   height=48, num_frames=8, steps=4, guidance_scale=5.0, seed=7, batch_size=1,
                                   target_fps=8, decode_chunk_size=8)


def run(handle, image, s, cache=None):
    return sampling.sample(handle, image, s, services.standalone(), cache=cache)


def ad_options(**values):
    defaults = {name: spec["default"] for name, (_kind, spec) in AD.spec.option_inputs.items()}
    (options,) = NODE_CLASS_MAPPINGS["AnimateDiffOptions"]().build(**{**defaults, **values})
    return options


def write_base_and_adapter(folder: Path, adapter: dict | None = None, index_adapter: bool = True) -> Path:
    """A base + adapter folder from the tiny model's own parts (the base's UNet and the adapter apart),
    optionally with another adapter config."""
    from diffusers import MotionAdapter

    parts = animatediff_components.random_components(TINY[TINY_NAME])
    if adapter is not None:
        parts["motion_adapter"] = MotionAdapter(**adapter)
    classes = {"unet": ["diffusers", "UNet2DConditionModel"],
               "motion_adapter": ["diffusers", "MotionAdapter"],
               "vae": ["diffusers", "AutoencoderKL"], "text_encoder": ["transformers", "CLIPTextModel"],
               "tokenizer": ["transformers", "CLIPTokenizer"], "scheduler": ["diffusers", "DDIMScheduler"]}
    for name in classes:
        parts[name].save_pretrained(folder / name)
    if not index_adapter:
        del classes["motion_adapter"]
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "PIAPipeline", **classes}))
    return folder


# --- the tiny model --------------------------------------------------------------------------------


def test_the_tiny_model_is_a_saved_pia_pipeline_and_reloads_offline(ad, stock):
    rules = ad.rules
    assert (ad.family.name, ad.variant, rules.trained_frames, rules.max_frames) == \
        ("animatediff", "pia", 16, 32)
    assert (type(stock).__name__, type(stock.unet).__name__) == ("PIAPipeline", "UNetMotionModel")
    assert stock.unet.config.in_channels == 9  # latents, mask and image latents
    # counted from the safetensors headers: the weights and the motion modules' positional encodings
    assert dict(ad.params)["unet"] == sum(t.numel() for t in stock.unet.state_dict().values())
    weights = {path.suffix for path in Path(ad.source).rglob("*.*")
               if path.suffix in (".safetensors", ".bin", ".pt", ".ckpt", ".pth")}
    assert weights == {".safetensors"}


def test_the_loaded_pipeline_keeps_no_second_copy_of_the_adapter(ad, still_image, settings):
    run(ad, still_image, settings)  # loaded (or already warm)
    pipe = sampling.default_cache().peek(dataclasses.replace(ad.cache_key, offload="none")).pipeline
    assert pipe.motion_adapter is None and type(pipe.unet).__name__ == "UNetMotionModel"


# --- the options node ----------------------------------------------------------------------------------


@pytest.mark.parametrize("options, changes", [
    ({"strength": 0.5}, {}),
    ({"motion_scale": 4}, {}),
    ({}, {"decode_chunk_size": 1}),  # chunked decode: the stock decode_latents, a frame at a time
], ids=["strength", "motion_scale", "decode_chunk_size"])
def test_each_setting_changes_the_output_and_matches_the_stock_pipeline(ad, stock, still_image, settings,
                                                                        options, changes):
    plain = run(ad, still_image, settings).frames
    s = dataclasses.replace(settings, options=ad_options(**options), **changes)
    ours = run(ad, still_image, s).frames
    assert not torch.equal(ours, plain)
    assert torch.equal(ours, sampling.stock_reference(ad, stock, still_image, s, s.decode_chunk_size).frames)


def test_the_models_own_values_equal_no_options(ad, still_image, settings):
    own = ad_options(strength=1.0, motion_scale=0)
    plain = run(ad, still_image, settings).frames
    assert torch.equal(run(ad, still_image, dataclasses.replace(settings, options=own)).frames, plain)


def test_bad_options_are_refused_naming_the_input(ad, still_image, settings, fresh_cache):
    with pytest.raises(InputError, match=r"input 'strength': expected -1 \(the model's own\) or a number "
                                         "from 0 to 1, got 1.5"):
        ad_options(strength=1.5)
    with pytest.raises(InputError, match="input 'strength': .* got -0.5"):
        ad_options(strength=-0.5)
    with pytest.raises(InputError, match="input 'motion_scale': .* a whole number from 0 to 8, got 9"):
        ad_options(motion_scale=9)
    with pytest.raises(InputError, match="input 'motion_scale': .* got 2.5"):
        ad_options(motion_scale=2.5)
    (svd,) = NODE_CLASS_MAPPINGS["SVDOptions"]().build(motion_bucket_id=-1, noise_aug_strength=-1.0,
                                                       min_guidance_scale=-1.0)
    with pytest.raises(InputError, match="input 'options': SVDOptions holds settings for svd models"):
        run(ad, still_image, dataclasses.replace(settings, options=svd), cache=fresh_cache)
    with pytest.raises(InputError, match="input 'height': must be a multiple of 8 .* valid: 40 or 48"):
        run(ad, still_image, dataclasses.replace(settings, height=44), cache=fresh_cache)
    assert fresh_cache.loads == 0
    # a strength that leaves no step to run (the pipeline runs int(steps * strength) of them)
    with pytest.raises(InputError, match="input 'strength': 0.2 of 4 steps runs no step at all"):
        run(ad, still_image, dataclasses.replace(settings, options=ad_options(strength=0.2)),
            cache=fresh_cache)


# --- frames beyond the trained length: allowed up to 32, with a warning ---------------------------------


def test_frames_beyond_the_trained_length_run_with_a_warning(ad, still_image, settings):
    s = dataclasses.replace(settings, num_frames=20, steps=2)
    plan = guard.plan_run(ad, sampling.run_shape(ad, s), "error", BIG)
    assert "note: 20 frames is above the 16 this model was trained on" in plan.report
    assert run(ad.with_plan(plan), still_image, s).frames.shape == (20, 48, 64, 3)


# --- a base and an adapter in one folder -----------------------------------------------------------------


def test_a_base_and_adapter_folder_equals_the_saved_pipeline(ad, still_image, settings, tmp_path):
    write_base_and_adapter(tmp_path / "pia-parts")
    parts = models.open_model("pia-parts", models.LoadOptions(), [tmp_path], CPU)
    assert (parts.family.name, parts.variant) == ("animatediff", "pia")
    # the UNet counts the base and the adapter (whose input layer replaces the base's 4-channel one)
    base_conv_in = 8 * 4 * 3 * 3 + 8
    assert dict(parts.params)["unet"] == dict(ad.params)["unet"] + base_conv_in
    assert torch.equal(run(parts, still_image, settings).frames, run(ad, still_image, settings).frames)


@pytest.mark.parametrize("adapter, index_adapter, message", [
    ({"block_out_channels": [16, 32], "motion_layers_per_block": 1, "motion_norm_num_groups": 4,
      "motion_num_attention_heads": 2, "use_motion_mid_block": False, "conv_in_channels": 9}, True,
     r"its motion adapter \(motion_adapter/\) does not match its base \(unet/\): "
     r"the adapter's motion modules are \[16, 32\] channels wide, "
     r"the base's UNet levels \[8, 16\]"),
    ({"block_out_channels": [8, 16], "motion_layers_per_block": 1, "motion_norm_num_groups": 4,
      "motion_num_attention_heads": 2, "use_motion_mid_block": False}, True,
     ".* it has no image input layer .* an AnimateDiff text-to-video motion module"),
    ({"block_out_channels": [8, 16], "motion_layers_per_block": 2, "motion_norm_num_groups": 4,
      "motion_num_attention_heads": 2, "use_motion_mid_block": False, "conv_in_channels": 9}, True,
     ".* the adapter has 2 motion modules per level, the base 1 layers"),
    (None, False, "unet/ is a plain Stable Diffusion UNet and model_index.json names no motion adapter"),
], ids=["channel widths", "text-to-video adapter", "layers per level", "no adapter"])
def test_an_adapter_that_does_not_fit_its_base_is_refused_before_loading(tmp_path, adapter, index_adapter,
                                                                         message, fresh_cache):
    write_base_and_adapter(tmp_path / "pia-bad", adapter, index_adapter)
    with pytest.raises(InputError, match="input 'model': .*pia-bad: " + message):
        models.open_model("pia-bad", models.LoadOptions(), [tmp_path], CPU)
    assert fresh_cache.loads == 0


# --- the published model -----------------------------------------------------------------------------------


def test_the_published_pia_is_sized_and_planned_at_512x512x16_in_fp16_with_no_download():
    handle = models.describe_published(HUB_ID, precision="fp16", device="cuda")
    params = dict(handle.params)
    assert 1.27e9 < params["unet"] < 1.28e9  # SD 1.5's UNet (0.86 B) with PIA's motion modules merged in
    assert 0.12e9 < params["text_encoder"] < 0.13e9  # CLIP ViT-L/14's text tower
    assert 0.08e9 < params["vae"] < 0.09e9
    assert handle.configs["unet"]["in_channels"] == 9
    assert (handle.precision, handle.vae_precision, handle.rules.default_steps) == ("fp16", "fp32", 25)
    plan = guard.plan_run(handle, memory.RunShape(512, 512, 16), "error", planner.Machine(12, 32).budget())
    assert plan.fits and plan.estimate.phase == "denoise"
    assert 4 * GiB < plan.estimate.peak < 10 * GiB


def test_the_published_pair_needs_both_repositories(model_dirs):
    assert AD.hub_repos(HUB_ID) == ("stable-diffusion-v1-5/stable-diffusion-v1-5", HUB_ID)
    with pytest.raises(ModelError, match="It is made of stable-diffusion-v1-5/stable-diffusion-v1-5 and "
                                         f"{HUB_ID}: turn allow_download on"):
        models.resolve_source(HUB_ID, model_dirs, allow_download=False)


def test_the_published_pair_loads_the_adapter_onto_the_base(ad, still_image, settings, tmp_path, monkeypatch):
    # local folders stand in for the two repositories: the tiny base as the base, its adapter as the adapter
    base = write_base_and_adapter(tmp_path / "base")
    adapter = str(base / "motion_adapter")
    monkeypatch.setitem(animatediff.BASE_OF_HUB, adapter, str(base))
    spec = LoadSpec(torch.float32, torch.float32)
    pipe = placement.load_pipeline(AD, ad.roles, adapter, False, spec, CPU, "none", "pia")
    assert type(pipe.unet).__name__ == "UNetMotionModel" and pipe.motion_adapter is None
    scheduler = pipe.scheduler
    assert type(scheduler).__name__ == "DDIMScheduler" and scheduler.config.beta_schedule == "linear"
    stock = AD.pipeline_class().from_pretrained(ad.source)
    assert all(torch.equal(a, b) for a, b in zip(pipe.unet.state_dict().values(),
                                                 stock.unet.state_dict().values(), strict=True))
    with pytest.raises(InputError, match="input 'weights': fp8 needs the UNet saved with its adapter merged"):
        AD.load_source(adapter, False, LoadSpec(torch.float32, torch.float32, "fp8"))


def test_progress_counts_the_steps_a_lower_strength_runs(ad, still_image, settings):
    seen = []

    class Progress:
        def __init__(self, total, description):
            seen.append(total)

        def update(self, n=1):
            seen.append(n)

        def close(self):
            pass

    svc = dataclasses.replace(services.standalone(), progress=Progress)
    s = dataclasses.replace(settings, steps=8, options=ad_options(strength=0.5))
    sampling.sample(ad, still_image, s, svc)
    assert seen[0] == 4 + 1 and sum(seen[1:]) == seen[0]  # int(8 * 0.5) steps, then one decode
