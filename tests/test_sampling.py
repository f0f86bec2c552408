"""Sampling: reproducibility, equality with the stock pipeline, NaN handling, interrupt, bad input."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from i2v_nodes.errors import InputError, NonFiniteError
from i2v_nodes.families.registry import I2VGEN_XL
from i2v_nodes.runtime import sampling, services
from i2v_nodes.runtime.sampling import loaded as loaded_module
from i2v_nodes.runtime.sampling.loaded import Loaded


def run(handle, image, settings, cache=None, svc=None):
    return sampling.sample(handle, image, settings, svc or services.standalone(), cache=cache)


def test_frames_are_comfy_images(tiny_handle, still_image, small_settings):
    result = run(tiny_handle, still_image, small_settings)
    assert result.frames.shape == (8, 64, 64, 3)
    assert result.frames.dtype == torch.float32 and result.frames.device.type == "cpu"
    assert 0 <= float(result.frames.min()) and float(result.frames.max()) <= 1
    assert result.frames_per_clip == 8 and result.fps == 8.0 and result.clips == 1
    assert not result.frames.requires_grad


def test_several_images_give_image_major_clips(tiny_handle, still_image, small_settings):
    flipped = still_image.flip(2)
    both = torch.cat([still_image, flipped])
    result = run(tiny_handle, both, dataclasses.replace(small_settings, batch_size=2))
    assert result.clips == 4 and result.frames.shape[0] == 32
    second_image_first_seed = run(tiny_handle, flipped, small_settings).frames
    assert torch.equal(result.frames[16:24], second_image_first_seed)


def test_prompt_embeddings_follow_upstream_clip_skip_1(tiny_path):
    pipe = I2VGEN_XL.pipeline_class().from_pretrained(tiny_path)
    ours = I2VGEN_XL.encode_prompt(pipe, "a dog running", torch.device("cpu"))
    ids = pipe.tokenizer(["a dog running"], padding="max_length", max_length=77, truncation=True,
                         return_tensors="pt").input_ids
    hidden = pipe.text_encoder(ids, output_hidden_states=True).hidden_states
    last = pipe.text_encoder(ids).last_hidden_state
    assert torch.equal(ours, pipe.text_encoder.final_layer_norm(hidden[-2]))
    assert not torch.allclose(ours, last)  # clip_skip=None (the last layer) would be different


def _sampled_pipeline(cache, handle):
    key = dataclasses.replace(handle.cache_key, offload=handle.offload)
    loaded = cache.peek(key)
    assert loaded is not None
    return loaded.pipeline


def test_nan_from_half_precision_vae_is_retried_in_fp32(tiny_handle, still_image, small_settings, fresh_cache,
                                                       caplog):
    handle = dataclasses.replace(tiny_handle, vae_precision="bf16")
    clean = run(handle, still_image, small_settings, cache=fresh_cache).frames
    pipe = _sampled_pipeline(fresh_cache, handle)
    calls = []

    def poison_in_bf16(module, args, output):
        calls.append(module.conv_in.weight.dtype)
        if module.conv_in.weight.dtype == torch.bfloat16:
            return output * float("nan")
        return output

    hook = pipe.vae.decoder.register_forward_hook(poison_in_bf16)
    try:
        retried = run(handle, still_image, small_settings, cache=fresh_cache).frames
    finally:
        hook.remove()
    assert torch.bfloat16 in calls and torch.float32 in calls
    assert torch.isfinite(retried).all()
    assert pipe.vae.dtype == torch.bfloat16  # restored after the retry
    assert "retrying in fp32" in caplog.text
    assert (retried - clean).abs().max() < 0.05  # the fp32 decode of the same latents


def test_nan_from_fp32_vae_fails_with_where(tiny_handle, still_image, small_settings, fresh_cache):
    run(tiny_handle, still_image, small_settings, cache=fresh_cache)
    pipe = _sampled_pipeline(fresh_cache, tiny_handle)
    hook = pipe.vae.decoder.register_forward_hook(lambda m, a, out: out * float("nan"))
    try:
        with pytest.raises(NonFiniteError, match="VAE decode of clip 0 .* NaN .* even in fp32"):
            run(tiny_handle, still_image, small_settings, cache=fresh_cache)
    finally:
        hook.remove()


def test_nan_from_the_denoiser_names_the_denoiser(tiny_handle, still_image, small_settings, fresh_cache):
    run(tiny_handle, still_image, small_settings, cache=fresh_cache)
    pipe = _sampled_pipeline(fresh_cache, tiny_handle)
    hook = pipe.unet.conv_out.register_forward_hook(lambda m, a, out: out * float("nan"))
    try:
        with pytest.raises(NonFiniteError, match="denoised latents .* NaN .*denoiser in fp32"):
            run(tiny_handle, still_image, small_settings, cache=fresh_cache)
    finally:
        hook.remove()


def test_guidance_off_runs_one_denoiser_row_per_clip(tiny_handle, still_image, small_settings, fresh_cache):
    """guidance_scale 1 turns classifier-free guidance off: the UNet sees one row per clip instead of
    two, and the frames differ from a guided run."""
    guided = run(tiny_handle, still_image, small_settings, cache=fresh_cache).frames
    pipe = _sampled_pipeline(fresh_cache, tiny_handle)
    rows = []
    hook = pipe.unet.register_forward_pre_hook(lambda module, args: rows.append(args[0].shape[0]))
    try:
        run(tiny_handle, still_image, small_settings, cache=fresh_cache)
        guided_rows, rows[:] = list(rows), []
        unguided = run(tiny_handle, still_image, dataclasses.replace(small_settings, guidance_scale=1.0),
                       cache=fresh_cache).frames
    finally:
        hook.remove()
    assert set(guided_rows) == {2} and set(rows) == {1}
    assert unguided.shape == guided.shape and not torch.equal(unguided, guided)


@pytest.mark.parametrize("field, value, message", [
    ("width", 60, r"input 'width': must be a multiple of 8 for this model \(i2vgen-xl\), .* nearest valid: "
                  r"56 or 64"),
    ("height", 100, "input 'height': must be a multiple of 8 .* nearest valid: 96 or 104"),
    ("width", 0, "input 'width': expected 8 to"),
    ("num_frames", 1, "input 'num_frames': expected 2 to 128"),
    ("num_frames", 129, "input 'num_frames': expected 2 to 128"),
    ("steps", 0, "input 'steps': expected 1 to 200"),
    ("steps", 201, "input 'steps': expected 1 to 200"),
    ("seed", -1, "input 'seed'"),
    ("batch_size", 0, "input 'batch_size'"),
    ("target_fps", 0, "input 'target_fps'"),
    ("guidance_scale", float("nan"), "input 'guidance_scale'"),
    ("steps", 2.5, "input 'steps': expected a whole number"),
])
def test_bad_settings_are_refused_before_loading(tiny_handle, still_image, small_settings, fresh_cache, field,
                                                 value, message):
    with pytest.raises(InputError, match=message):
        bad = dataclasses.replace(small_settings, **{field: value})
        run(tiny_handle, still_image, bad, cache=fresh_cache)
    assert fresh_cache.loads == 0


@pytest.mark.parametrize("image, message", [
    (torch.zeros(0, 64, 64, 3), "input 'image': expected an IMAGE of shape"),
    (torch.zeros(1, 0, 64, 3), "input 'image': expected an IMAGE of shape"),
    (torch.zeros(1, 64, 64), "input 'image': expected an IMAGE of shape"),
    (torch.full((1, 8, 8, 3), float("nan")), "input 'image': the image is corrupt: 192 NaN"),
    (torch.zeros(1, 8, 8, 3, dtype=torch.uint8), "input 'image': expected float values"),
    ("not an image", "input 'image': expected an IMAGE tensor"),
])
def test_bad_images_are_refused_before_loading(tiny_handle, small_settings, fresh_cache, image, message):
    with pytest.raises(InputError, match=message):
        run(tiny_handle, image, small_settings, cache=fresh_cache)
    assert fresh_cache.loads == 0


def test_group_offload_hooks_compose_with_ours(tiny_handle, still_image, small_settings, fresh_cache):
    """diffusers' group offload also replaces forward methods; on CPU (onload = offload device) it
    must give the same frames, with progress, through our UNet hook and a recorded device."""
    plain = run(tiny_handle, still_image, small_settings, cache=fresh_cache).frames
    grouped_handle = dataclasses.replace(tiny_handle, offload="group")  # open_model refuses this on CPU
    grouped = run(grouped_handle, still_image, dataclasses.replace(small_settings, batch_size=2),
                  cache=fresh_cache).frames
    assert fresh_cache.loads == 2  # offload mode is part of the cache key
    assert torch.allclose(grouped[:8], plain, atol=1e-5)


def test_remembered_prompts_stay_under_their_byte_budget_and_keep_the_last_two(monkeypatch):
    class Family:  # each prompt encodes to 1 MiB
        def encode_prompt(self, pipe, text, device):
            return torch.zeros(2**18)

    monkeypatch.setattr(loaded_module, "PROMPT_MEMORY_BYTES", 3 * 2**20)
    loaded = Loaded(pipeline=None, device=torch.device("cpu"), vae_dtype=torch.float32)
    for text in "abcde":
        loaded.prompt_embeddings(Family(), text)
    assert list(loaded.prompts) == ["c", "d", "e"]
    monkeypatch.setattr(loaded_module, "PROMPT_MEMORY_BYTES", 1)  # even one prompt is too big: keep two
    loaded.prompt_embeddings(Family(), "f")
    assert list(loaded.prompts) == ["e", "f"]
