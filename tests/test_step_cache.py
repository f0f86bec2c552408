"""Step caching (I2VSpeedOptions' step_cache): each method cuts the blocks' work by the amount its
settings imply, leaves no trace on later runs, and is refused where the family cannot use it."""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager

import pytest
import torch

from i2v_nodes.errors import I2VError, InputError
from i2v_nodes.runtime import memory, sampling, services
from i2v_nodes.runtime.loading import models
from i2v_nodes.runtime.loading.cache import ModelCache
from i2v_nodes.runtime.speed import block_compile, step_cache
from i2v_nodes.runtime.speed.settings import SpeedSettings
from tests.test_speed import with_speed

CPU = torch.device("cpu")
STEPS = 8


@pytest.fixture(scope="module")
def ltx(model_dirs):
    return models.open_model("tiny-ltx-video", models.LoadOptions(), model_dirs, CPU)


@pytest.fixture(scope="module")
def settings():
    return sampling.SampleSettings(prompt="waves", negative_prompt="blurry", width=64, height=64,
                                   num_frames=9, steps=STEPS, guidance_scale=5.0, seed=3, target_fps=16)


@contextmanager
def counting_attention(pipe):
    """Counts the first attention's query projections in every block: one per block computed."""
    calls: list[int] = []
    blocks = block_compile.repeated_blocks(pipe.transformer)
    hooks = [b.attn1.to_q.register_forward_pre_hook(lambda *_: calls.append(1)) for b in blocks]
    try:
        yield calls
    finally:
        for hook in hooks:
            hook.remove()


def run(handle, image, s, cache):
    """Frames, block computes, and the report of one run (the model loaded beforehand)."""
    sampling.sample(handle, image, dataclasses.replace(s, options=None), services.standalone(), cache=cache)
    with counting_attention(cache.peek(handle.cache_key).pipeline) as calls:
        result = sampling.sample(handle, image, s, services.standalone(), cache=cache)
    return result.frames, len(calls), result.report


@pytest.fixture(scope="module")
def wan_plain(wan, still_image, settings):
    cache = ModelCache(lambda device: 2**40)
    yield run(wan, still_image, settings, cache)
    cache.unload()


def test_plain_wan_computes_every_block_of_both_cfg_calls(wan_plain):
    assert wan_plain[1] == STEPS * 2 * 2  # steps x (cond, uncond) x 2 blocks


@pytest.mark.parametrize(("knobs", "computed_steps"), [
    # the first step computes both blocks, every later step only the first (nothing counts as changed)
    ({"step_cache": "first_block", "cache_threshold": 10.0}, None),
    # full steps before step 2 (0.25 x 8), then every 3rd after it: steps 0, 1, 3, 6
    ({"step_cache": "taylorseer", "cache_interval": 3, "cache_start": 0.25}, 4),
])
def test_a_step_cache_cuts_block_computes_by_what_its_settings_imply(
        wan, still_image, settings, wan_plain, fresh_cache, knobs, computed_steps):
    frames, calls, report = run(wan, still_image, with_speed(settings, **knobs), fresh_cache)
    expected = 2 * (2 + (STEPS - 1)) if computed_steps is None else computed_steps * 2 * 2
    assert calls == expected < wan_plain[1]
    assert torch.isfinite(frames).all() and not torch.equal(frames, wan_plain[0])
    assert "step cache" in report
    after, after_calls, _ = run(wan, still_image, settings, fresh_cache)  # the hooks come off
    assert torch.equal(after, wan_plain[0]) and after_calls == wan_plain[1]


def test_magcache_calibrates_on_the_first_run_then_skips(wan, still_image, settings, wan_plain, fresh_cache):
    # retention 0.25: steps 0 and 1 always; then at most 2 skipped in a row: steps 0, 1, 4, 7 computed
    s = with_speed(settings, step_cache="magcache", cache_threshold=10.0, cache_interval=2, cache_start=0.25)
    first, first_calls, report = run(wan, still_image, s, fresh_cache)
    assert torch.equal(first, wan_plain[0]) and first_calls == wan_plain[1]  # measuring changes nothing
    assert "MagCache calibrated" in report
    (ratios,) = fresh_cache.peek(wan.cache_key).speed.calibrations.values()
    assert len(ratios["transformer"]) == STEPS and ratios["transformer"][0] == 1.0
    second, second_calls, report = run(wan, still_image, s, fresh_cache)
    assert second_calls == 4 * 2 * 2 and "step cache MagCache" in report
    assert torch.isfinite(second).all() and not torch.equal(second, wan_plain[0])
    # other steps are another schedule: measured again
    _, calls, report = run(wan, still_image, dataclasses.replace(s, steps=6), fresh_cache)
    assert calls == 6 * 2 * 2 and "MagCache calibrated" in report


def test_a_cancelled_calibration_run_records_nothing(wan, still_image, settings, fresh_cache):
    s = with_speed(settings, step_cache="magcache")
    asked = []

    def cancel_after_three_steps() -> bool:
        asked.append(1)
        return len(asked) > 3

    host = dataclasses.replace(services.standalone(), interrupt_requested=cancel_after_three_steps)
    with pytest.raises(I2VError, match="cancelled"):
        sampling.sample(wan, still_image, s, host, cache=fresh_cache)
    assert not any(fresh_cache.peek(wan.cache_key).speed.calibrations.values())
    _, _, report = run(wan, still_image, s, fresh_cache)  # the next run measures from scratch
    assert "MagCache calibrated" in report


def test_fastercache_skips_attention_on_ltx_video_within_its_timestep_range(ltx, still_image, settings,
                                                                             fresh_cache):
    s = dataclasses.replace(settings, num_frames=9)
    plain, plain_calls, _ = run(ltx, still_image, s, fresh_cache)
    assert plain_calls == STEPS * 2  # CFG halves in one call; 2 blocks
    pipe = fresh_cache.peek(ltx.cache_key).pipeline
    timesteps = []
    hook = pipe.transformer.register_forward_pre_hook(
        lambda *_: timesteps.append(float(pipe.current_timestep)))
    try:
        frames, calls, report = run(ltx, still_image, with_speed(s, step_cache="fastercache"), fresh_cache)
    finally:
        hook.remove()
    timesteps = timesteps[len(timesteps) // 2:]  # the second (counted) run's
    # diffusers' FasterCache: attention is reused inside the timestep range (-1, 681) except every
    # 2nd step (and the first)
    skipped = sum(1 for i, t in enumerate(timesteps) if -1 < t < 681 and not (i > 0 and i % 2 == 0))
    assert 0 < skipped and calls == plain_calls - 2 * skipped
    assert torch.isfinite(frames).all() and "FasterCache" in report


def test_families_and_methods_that_do_not_fit_are_refused_naming_the_input(wan, model_dirs, still_image,
                                                                             settings):
    with pytest.raises(InputError, match=r"'step_cache': FasterCache works on LTX-Video models; "
                                         r"tiny-wan2.1-i2v \(wan\) cannot use it"):
        sampling.sample(wan, still_image, with_speed(settings, step_cache="fastercache"),
                        services.standalone())
    svd = models.open_model("tiny-svd", models.LoadOptions(), model_dirs, CPU)
    s = dataclasses.replace(settings, width=64, height=64, num_frames=4)
    for knobs, name in (({"step_cache": "first_block"}, "step_cache"), ({"compile": "blocks"}, "compile"),
                        ({"attention": "sage"}, "attention")):
        with pytest.raises(InputError, match=f"input '{name}'.*tiny-svd"):
            sampling.sample(svd, still_image, with_speed(s, **knobs), services.standalone())
    for knobs, name in (({"cache_threshold": -1.0}, "cache_threshold"),
                        ({"cache_interval": 99}, "cache_interval"), ({"cache_start": 0.95}, "cache_start")):
        with pytest.raises(InputError, match=f"input '{name}': expected"):
            sampling.sample(wan, still_image, with_speed(settings, step_cache="first_block", **knobs),
                            services.standalone())
    with pytest.raises(InputError, match="input 'step_cache': expected one of off"):
        sampling.sample(wan, still_image, with_speed(settings, step_cache="teacache"), services.standalone())


def test_the_estimate_counts_what_a_cache_keeps(model_dirs):
    handle = models.open_model("tiny-wan2.2-i2v-a14b", models.LoadOptions(), model_dirs, CPU)
    plain = memory.RunShape(64, 64, 9, 1, cfg=True)
    cached = dataclasses.replace(plain, speed=SpeedSettings(step_cache="first_block"))
    tokens, inner, _ = handle.family.traces.block_state(handle.variant, handle.configs_json, 9, 64, 64)
    hidden = tokens * inner * 4  # fp32
    # three hidden states per cache context (cond, uncond) and expert
    assert memory.speed_bytes(handle, cached) == 3 * hidden * 2 * 2
    options = memory.default_options(handle, plain)
    added = (memory.device_phase(handle, cached, options, "denoise").buffers
             - memory.device_phase(handle, plain, options, "denoise").buffers)
    assert added == 3 * hidden * 2 * 2
    taylor = dataclasses.replace(plain, speed=SpeedSettings(step_cache="taylorseer", compile="blocks"))
    assert memory.speed_bytes(handle, taylor) == memory.COMPILE_DEVICE_BYTES + memory.COMPILE_RAM_BYTES
    assert step_cache.kept_bytes(None, hidden_bytes=1, contexts=1, blocks=1, denoisers=1) == 0
