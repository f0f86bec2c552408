"""The family contract: every registered family, on each of its tiny models, must pass these.

A new family passes by being registered: the parameters come from the registry.
"""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch

from i2v_nodes import host
from i2v_nodes.errors import InputError
from i2v_nodes.families import registry
from i2v_nodes.runtime import memory, sampling, services
from i2v_nodes.runtime.loading import models
from i2v_nodes.runtime.memory import guard
from i2v_nodes.runtime.output import audio

TINY = [(name, family) for name, (family, _build) in registry.tiny_builders().items()]
IDS = [name for name, _ in TINY]


@pytest.fixture(scope="module", params=TINY, ids=IDS)
def tiny(request, model_dirs):
    name, family = request.param
    handle = models.open_model(name, models.LoadOptions(), model_dirs, torch.device("cpu"))
    assert handle.family.name == family.name
    return handle


def settings_for(handle, **changes) -> sampling.SampleSettings:
    """A small run that keeps the family's size and frame rules."""
    rules = handle.rules
    side = 2 * rules.size_multiple if rules.size_multiple >= 32 else 64
    frames = 2 * rules.frame_step + 1 if rules.frame_step > 1 else 8
    base = sampling.SampleSettings(
        prompt="a cat walking on the beach",
        negative_prompt="blurry",
        width=side,
        height=48 if rules.size_multiple <= 16 else side,
        num_frames=frames,
        steps=2,
        guidance_scale=5.0,
        seed=3,
        batch_size=1,
        target_fps=8,
    )
    return dataclasses.replace(base, **changes)


def run(handle, image, settings, cache=None, svc=None):
    """The pack's run; a model that needs an end image (first-last-frame) gets ``image`` mirrored."""
    return sampling.sample(handle, image, settings, svc or services.standalone(), cache=cache,
                           end_images=needed_end_image(handle, image))


def needed_end_image(handle, image):
    """For a model that needs an end image (first-last-frame), ``image`` mirrored; else None."""
    takes = handle.family.spec.keyframes.get(handle.variant)
    return _end_image(image) if takes is not None and takes.required else None


def test_estimate_then_sample_equals_the_stock_pipeline_given_the_same_noise(tiny, still_image, fresh_cache):
    s = settings_for(tiny)
    shape = sampling.run_shape(tiny, s)
    budget = guard.Budget(free=2**40, total=2**40, headroom=0.1, ram_free=2**40, ram_total=2**40)
    plan = guard.plan_run(tiny, shape, "error", budget)
    assert plan.fits and plan.estimate.peak > 0
    ours = run(tiny.with_plan(plan), still_image, s, cache=fresh_cache)
    assert ours.frames.shape == (s.num_frames, s.height, s.width, 3)

    stock = tiny.family.pipeline_class(tiny.variant).from_pretrained(tiny.source)
    stock.set_progress_bar_config(disable=True)
    reference = sampling.stock_reference(tiny, stock, still_image, s, plan.options.decode_chunk,
                                         end_image=needed_end_image(tiny, still_image))
    assert torch.equal(ours.frames, reference.frames)
    seconds = s.num_frames / s.target_fps
    if reference.audio is None:  # no sound: silence of the clip's length
        assert not ours.audio["waveform"].any()
        assert ours.audio["waveform"].shape[-1] == round(seconds * ours.audio["sample_rate"])
    else:  # the family's sound, fitted to the clip's length
        expected = audio.for_clips(reference.audio, 1, seconds)[0]
        assert ours.audio["sample_rate"] == expected.sample_rate
        assert torch.equal(ours.audio["waveform"][0], expected.waveform)


def test_seeds_reproduce_and_clip_i_of_a_batch_is_a_single_run_with_seed_plus_i(tiny, still_image):
    s = settings_for(tiny, seed=10)
    batch = run(tiny, still_image, dataclasses.replace(s, batch_size=3)).frames
    frames = s.num_frames
    assert batch.shape[0] == 3 * frames
    for i in range(3):
        single = run(tiny, still_image, dataclasses.replace(s, seed=10 + i)).frames
        assert torch.equal(batch[i * frames : (i + 1) * frames], single), (
            f"clip {i} differs from seed {10 + i}"
        )
    assert not torch.equal(batch[:frames], batch[frames : 2 * frames])


def test_an_interrupt_stops_within_one_step_and_the_cache_still_works(tiny, still_image, fresh_cache):
    s = settings_for(tiny, steps=8)
    run(tiny, still_image, s, cache=fresh_cache)
    loaded = fresh_cache.peek(dataclasses.replace(tiny.cache_key, offload="none"))
    calls = []
    # counted after each call returns: a call the cancel stopped never finished
    hooks = [
        getattr(loaded.pipeline, name).register_forward_hook(lambda *_: calls.append(1))
        for name in tiny.roles.denoisers
    ]

    class Progress:
        def __init__(self, total, description):
            self.done = 0

        def update(self, n=1):
            self.done += n
            if self.done == 3:
                host.request_interrupt()  # a user pressing cancel during step 3

        def close(self):
            pass

    svc = dataclasses.replace(host.services(), progress=Progress)
    try:
        with pytest.raises(host.Interrupted):
            run(tiny, still_image, s, cache=fresh_cache, svc=svc)
    finally:
        for hook in hooks:
            hook.remove()
    calls_per_step = 1 if tiny.family.spec.cfg_in_one_call else 2  # CFG on
    assert len(calls) == 3 * calls_per_step  # the steps after the cancel never ran
    for name in tiny.roles.denoisers:
        assert "forward" not in getattr(loaded.pipeline, name).__dict__  # no hook left behind
    loads = fresh_cache.loads
    assert run(tiny, still_image, settings_for(tiny), cache=fresh_cache).frames.shape[0] == s.num_frames
    assert fresh_cache.loads == loads


def test_progress_counts_steps_not_denoiser_calls(tiny, still_image):
    seen = []

    class Progress:
        def __init__(self, total, description):
            seen.append(total)

        def update(self, n=1):
            seen.append(n)

        def close(self):
            pass

    svc = dataclasses.replace(services.standalone(), progress=Progress)
    run(tiny, still_image, settings_for(tiny, steps=3, batch_size=2), svc=svc)
    loops = tiny.family.pipeline_calls(2)  # step loops: one for the batch, or one per clip
    assert seen[0] == 3 * loops + 2 and sum(seen[1:]) == seen[0]


def test_a_second_run_loads_nothing(tiny, still_image, fresh_cache):
    for seed in range(3):
        run(tiny, still_image, settings_for(tiny, seed=seed), cache=fresh_cache)
    assert fresh_cache.loads == 1


def test_bad_sizes_and_frame_counts_name_the_nearest_valid_values(tiny, still_image, fresh_cache):
    rules, good = tiny.rules, settings_for(tiny)
    step = rules.size_multiple
    with pytest.raises(
        InputError,
        match=f"input 'width': must be a multiple of {step} .* nearest valid: "
        f"{good.width} or {good.width + step}",
    ):
        run(tiny, still_image, dataclasses.replace(good, width=good.width + step // 2), cache=fresh_cache)
    if rules.frame_step > 1:
        frames = good.num_frames + 1
        low, high = good.num_frames, good.num_frames + rules.frame_step
        with pytest.raises(
            InputError,
            match=f"input 'num_frames': .*{rules.frame_step}k\\+1 frames .* got "
            f"{frames}; nearest valid: {low} or {high}",
        ):
            run(tiny, still_image, dataclasses.replace(good, num_frames=frames), cache=fresh_cache)
    with pytest.raises(InputError, match="input 'num_frames': expected"):
        run(tiny, still_image, dataclasses.replace(good, num_frames=rules.max_frames + 1), cache=fresh_cache)
    assert fresh_cache.loads == 0


def test_the_phases_grow_with_every_dimension(tiny):
    """Denoising grows with size, frames and batch, decoding with size and frames. (On a tiny model the
    text encoder's fixed cost can set the peak, so the phases are compared, not the peak.)"""
    shape = sampling.run_shape(tiny, settings_for(tiny))
    options = memory.default_options(tiny, shape)
    before = memory.estimate_phases(tiny, shape, options)
    frames = shape.num_frames + 4 * max(tiny.rules.frame_step, 2)
    for change, grown in (
        ({"width": shape.width * 4}, ("denoise", "decode")),
        ({"height": shape.height * 4}, ("denoise", "decode")),
        ({"num_frames": frames}, ("denoise", "decode")),
        ({"batch_size": 4}, ("denoise",)),
    ):
        after = memory.estimate_phases(tiny, dataclasses.replace(shape, **change), options)
        for phase in grown:
            assert after[phase] > before[phase], (change, phase)


def test_runs_in_bf16_beside_an_fp32_vae(tiny, still_image, model_dirs):
    """What precision auto gives on CUDA for bf16 families and on CPUs with native bf16: the model in
    bf16, the VAE in fp32. (No oracle: the stock call would be the same mixed dtypes it cannot take.)"""
    options = models.LoadOptions(precision="bf16")
    handle = models.open_model(tiny.name, options, model_dirs, torch.device("cpu"))
    s = settings_for(handle)
    frames = run(handle, still_image, s).frames
    assert frames.shape == (s.num_frames, s.height, s.width, 3) and torch.isfinite(frames).all()


def _end_image(still_image: torch.Tensor) -> torch.Tensor:
    """Another picture than ``still_image``, at another size (the end image is fitted as the start is)."""
    return still_image.flip(2)[:, :40, :72].contiguous()


def test_an_end_image_conditions_the_last_frame_as_the_stock_pipeline_does(tiny, still_image, fresh_cache):
    """Where the model takes an end image, the pack's frames with it equal the stock pipeline's given the
    same noise and the same end image, differ from the frames without it, and the same seed reproduces
    them. Elsewhere it is refused before anything loads, naming the input and the models that can."""
    end = _end_image(still_image)
    s = settings_for(tiny)
    takes = tiny.family.spec.keyframes.get(tiny.variant)
    if takes is None:
        with pytest.raises(InputError, match=f"input 'end_image': .*cannot condition on a last frame.*"
                                             f"{re.escape(sampling.capable_models())}"):
            sampling.sample(tiny, still_image, s, services.standalone(), cache=fresh_cache, end_images=end)
        assert fresh_cache.loads == 0
        return
    ours = sampling.sample(tiny, still_image, s, services.standalone(), cache=fresh_cache, end_images=end)
    stock = tiny.family.pipeline_class(tiny.variant).from_pretrained(tiny.source)
    stock.set_progress_bar_config(disable=True)
    reference = sampling.stock_reference(tiny, stock, still_image, s, end_image=end)
    assert torch.equal(ours.frames, reference.frames)
    again = sampling.sample(tiny, still_image, s, services.standalone(), cache=fresh_cache, end_images=end)
    assert torch.equal(ours.frames, again.frames)
    other = sampling.sample(tiny, still_image, s, services.standalone(), cache=fresh_cache,
                            end_images=still_image)
    assert not torch.equal(ours.frames, other.frames)  # the end image's content shows in the frames
    if not takes.required:
        alone = sampling.sample(tiny, still_image, s, services.standalone(), cache=fresh_cache)
        assert not torch.equal(ours.frames, alone.frames)
