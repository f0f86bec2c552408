"""I2VExtend (issue 21, item 2): a clip continued for more segments, on the tiny models.

Each segment is the stock pipeline's output given the same noise and conditioning: Wan from the last
frame as its image (``stock_reference`` with the segment's seed), LTX-2 and LTX-Video 0.9.5+ from the
last frames through a plain stock call of their condition pipelines written out here. Overlap frames
are dropped, seeds reproduce, progress counts every segment's steps, a cancel returns nothing, bad
input is refused naming the widget and the limit, and the colour match keeps drift small.
"""

from __future__ import annotations

import dataclasses
import inspect
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from host_stub import Host
from i2v_nodes import host
from i2v_nodes.errors import InputError
from i2v_nodes.families.contract.jobs import StockRun
from i2v_nodes.runtime import sampling, services
from i2v_nodes.runtime.output import audio
from i2v_nodes.runtime.sampling import color_match
from i2v_nodes.runtime.sampling.extend import ExtendSettings, extend, segment_seed
from tests.test_family_contract import settings_for

REPO = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
# the colour match keeps each segment's first frame within this mean-colour distance (0..1 RGB, Euclidean)
# of the first segment's last frame on the tiny models (measured: Wan 2.1 0.022, LTX-2 0.003-0.010)
DRIFT_BOUND = 0.03


@pytest.fixture(scope="module")
def example() -> torch.Tensor:
    pixels = np.asarray(Image.open(REPO / "examples" / "i2v-example.png").convert("RGB"))
    return torch.from_numpy(pixels.copy()).float()[None] / 255


def first_clip(handle, image, cache, **changes):
    s = settings_for(handle, **changes)
    return s, sampling.sample(handle, image, s, services.standalone(), cache=cache)


def levels(frames):
    return np.ascontiguousarray((frames.clamp(0, 1) * 255).round().to(torch.uint8).numpy())


def on_components(stock, cls):
    accepted = inspect.signature(cls.__init__).parameters
    pipe = cls(**{name: part for name, part in stock.components.items() if name in accepted})
    pipe.set_progress_bar_config(disable=True)
    return pipe


def stock_arguments(handle, pipe, s, seed):
    """The family's call arguments (what the oracle shares with the pack), for a stock call."""
    run = StockRun(None, s.prompt, s.negative_prompt, None, s.width, s.height, s.num_frames, s.steps,
                   s.guidance_scale, s.target_fps, 1, None, seed, handle.variant)
    return handle.family.call_arguments(pipe, run)


def test_wan_three_segments_drop_the_overlap_and_each_is_the_stock_pipeline_from_the_last_frame(
        opened, cache, example):
    handle, stock = opened("tiny-wan2.1-i2v")
    s, first = first_clip(handle, example, cache)
    e = ExtendSettings(segments=3, color_match=False)
    out = extend(handle, first.frames, s, e, services.standalone(), cache=cache)
    new = s.num_frames - 1  # Wan continues from the last frame: the segment's first frame is dropped
    assert out.frames.shape == (s.num_frames + 3 * new, s.height, s.width, 3) and out.frames_per_clip == 33
    assert torch.equal(out.frames[:s.num_frames], first.frames)
    tail = first.frames[-1:]
    for index in range(3):
        seeded = dataclasses.replace(s, seed=segment_seed(s.seed, index))
        reference = sampling.stock_reference(handle, stock, tail, seeded).frames
        start = s.num_frames + index * new
        assert torch.equal(out.frames[start:start + new], reference[1:]), index
        tail = reference[-1:]
    waveform = out.audio["waveform"]  # Wan makes no sound: silence as long as the video
    assert waveform.shape[-1] == round(33 / s.target_fps * out.audio["sample_rate"]) and not waveform.any()
    assert "continued from the last frame as the image" in out.report


def ltx2_stock_segment(handle, stock, tail, s, seed):
    """A plain LTX2ConditionPipeline call: the frames as a condition at latent index 0."""
    from diffusers import LTX2ConditionPipeline
    from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition

    pipe = on_components(stock, LTX2ConditionPipeline)
    arguments = stock_arguments(handle, pipe, s, seed)
    crf = arguments.pop("image_crf")
    del arguments["image"]
    condition = LTX2VideoCondition(frames=levels(tail), index=0, crf=crf)
    generator = torch.Generator("cpu").manual_seed(seed)
    video, sound = pipe(conditions=[condition], prompt=s.prompt, negative_prompt=s.negative_prompt,
                        generator=generator, output_type="pt", return_dict=False, **arguments)
    return video[0].permute(0, 2, 3, 1).float(), sound[:1].float()


def test_ltx2_three_segments_with_sound_as_long_as_the_video_each_a_stock_condition_call(
        opened, cache, example):
    handle, stock = opened("tiny-ltx2")
    s, first = first_clip(handle, example, cache)
    e = ExtendSettings(segments=3, overlap=9, color_match=False)
    out = extend(handle, first.frames, s, e, services.standalone(), given_audio=first.audio, cache=cache)
    new = s.num_frames - 9
    total = s.num_frames + 3 * new
    assert out.frames.shape[0] == out.frames_per_clip == total
    rate = out.audio["sample_rate"]
    fps = s.target_fps
    assert out.audio["waveform"].shape[-1] == round(total / fps * rate)
    given = first.audio["waveform"][0]
    assert torch.equal(out.audio["waveform"][0, :, :given.shape[-1]], given)
    tail = first.frames[-9:]
    sample_at = given.shape[-1]
    for index in range(3):
        frames, sound = ltx2_stock_segment(handle, stock, tail, s, segment_seed(s.seed, index))
        start = s.num_frames + index * new
        assert torch.equal(out.frames[start:start + new], frames[9:]), index
        fitted = audio.for_clips({"waveform": sound, "sample_rate": rate}, 1, s.num_frames / fps)[0].waveform
        kept = fitted[:, round(9 / fps * rate):]
        if index < 2:  # the last segment's is fitted to the video's end
            assert torch.equal(out.audio["waveform"][0, :, sample_at:sample_at + kept.shape[-1]], kept), index
        sample_at += kept.shape[-1]
        tail = frames[-9:]
    assert "LTX2ConditionPipeline" in out.report


def test_ltx_video_segment_is_a_stock_condition_call_and_0_9_1_continues_from_its_last_frame(
        opened, cache, example):
    from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

    from i2v_nodes.families.ltx_video.spec import OWN

    handle, stock = opened("tiny-ltx-video")
    s, first = first_clip(handle, example, cache)
    out = extend(handle, first.frames, s, ExtendSettings(segments=1, overlap=9, color_match=False),
                 services.standalone(), cache=cache)
    seed = segment_seed(s.seed, 0)
    arguments = stock_arguments(handle, stock, s, seed)
    del arguments["image"]
    video = [Image.fromarray(frame) for frame in levels(first.frames[-9:])]
    condition = LTXVideoCondition(video=video, frame_index=0, strength=arguments.pop("strength"))
    own = OWN[handle.variant]
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # the pack seeds the decoder's global-RNG noise from the clip's seed
        reference = stock(conditions=[condition], prompt=s.prompt, negative_prompt=s.negative_prompt,
                          generator=torch.Generator("cpu").manual_seed(seed), output_type="pt",
                          decode_timestep=own.decode_timestep, decode_noise_scale=own.decode_noise_scale,
                          **arguments).frames[0].permute(0, 2, 3, 1)
    assert torch.equal(out.frames[s.num_frames:], reference[9:])

    legacy, _ = opened("tiny-ltx-video-0.9.1")
    s, first = first_clip(legacy, example, cache)
    with pytest.raises(InputError, match=r"input 'overlap': this model \(ltx-video-0.9.1\) continues from "
                                         r"the last frame as its image: overlap 1 \(or 0\), got 9\. Models "
                                         r"with video conditioning take more \(LTX-Video 0\.9\.5\+"):
        extend(legacy, first.frames, s, ExtendSettings(overlap=9), services.standalone(), cache=cache)
    out = extend(legacy, first.frames, s, ExtendSettings(), services.standalone(), cache=cache)
    assert out.frames.shape[0] == 2 * s.num_frames - 1 and "from the last frame as the image" in out.report


def test_a_run_reproduces_and_no_segment_repeats_the_noise_of_the_clip(opened, cache, example):
    handle, _ = opened("tiny-wan2.1-i2v")
    s, first = first_clip(handle, example, cache)
    e = ExtendSettings(segments=2)
    once = extend(handle, first.frames, s, e, services.standalone(), cache=cache)
    again = extend(handle, first.frames, s, e, services.standalone(), cache=cache)
    assert torch.equal(once.frames, again.frames)
    seeds = {segment_seed(s.seed, index) for index in range(100)}
    assert len(seeds) == 100 and not seeds & {s.seed + i for i in range(64)} and max(seeds) < 2**63
    other = extend(handle, first.frames, dataclasses.replace(s, seed=s.seed + 1), e, services.standalone(),
                   cache=cache)
    assert not torch.equal(once.frames[s.num_frames:], other.frames[s.num_frames:])


def test_progress_counts_every_segments_steps_and_a_cancel_returns_nothing(opened, cache, example):
    handle, _ = opened("tiny-wan2.1-i2v")
    s, first = first_clip(handle, example, cache, steps=3)
    seen = []

    class Progress:
        def __init__(self, total, description):
            seen.append((description, total))
            self.done = 0

        def update(self, n=1):
            self.done += n
            seen.append(n)

        def close(self):
            pass

    svc = dataclasses.replace(services.standalone(), progress=Progress)
    extend(handle, first.frames, s, ExtendSettings(segments=3), svc, cache=cache)
    assert seen[0] == ("I2VExtend", 3 * (3 + 1)) and sum(seen[1:]) == 12  # one bar: 3 steps and a decode each

    class Cancelling(Progress):
        def update(self, n=1):
            super().update(n)
            if self.done == 6:  # a user pressing cancel in the second segment's second step
                host.request_interrupt()

    loaded = cache.peek(dataclasses.replace(handle.cache_key, offload="none"))
    calls = []
    hook = loaded.pipeline.transformer.register_forward_hook(lambda *_: calls.append(1))
    try:
        with pytest.raises(host.Interrupted):
            extend(handle, first.frames, s, ExtendSettings(segments=3),
                   dataclasses.replace(host.services(), progress=Cancelling), cache=cache)
    finally:
        hook.remove()
    assert len(calls) == 2 * (3 + 2)  # CFG: two calls a step; segment 1's 3 steps, segment 2's first 2


def test_bad_input_is_refused_naming_the_widget_and_the_limit(opened, cache, example):
    wan, _ = opened("tiny-wan2.1-i2v")
    s, first = first_clip(wan, example, cache)
    svc = services.standalone()

    def refused(handle, frames, settings, e, match):
        with pytest.raises(InputError, match=match):
            extend(handle, frames, settings, e, svc, cache=cache)

    refused(wan, first.frames, s, ExtendSettings(segments=0), r"input 'segments': expected 1 to 100, got 0")
    refused(wan, first.frames, s, ExtendSettings(overlap=9),
            r"input 'overlap': 9 frames is not smaller than a segment \(num_frames 9\): at most 8")
    refused(wan, first.frames, s, ExtendSettings(overlap=2),
            r"input 'overlap': this model \(wan2.1-i2v\) continues from the last frame as its image: "
            r"overlap 1")
    refused(wan, first.frames[:, :44], s, ExtendSettings(),
            r"input 'frames': the frames are 64x44; this model \(wan2.1-i2v\) makes sizes in multiples of 16")
    refused(wan, first.frames[:0], s, ExtendSettings(), r"input 'frames': expected an IMAGE")
    ltx2, _ = opened("tiny-ltx2")
    s2, clip = first_clip(ltx2, example, cache)
    refused(ltx2, clip.frames, s2, ExtendSettings(overlap=4),
            r"input 'overlap': this model \(ltx2\) takes 8k\+1 overlap frames, got 4; nearest valid: 1 or 9")
    refused(ltx2, clip.frames[:5], s2, ExtendSettings(overlap=9),
            r"input 'frames': 5 frame\(s\) to continue, fewer than the overlap of 9")
    # the guard plans one segment; the frames accumulate beside its RAM peak
    plan = sampling.plan_for_run(wan, s, svc, cache)
    frame = s.width * s.height * 12
    tight = dataclasses.replace(plan, policy="error", ram_usable=plan.ram.peak + frame * (9 + 2 * 8 * 4))
    planned = dataclasses.replace(wan, plan=tight)
    extend(planned, first.frames, s, ExtendSettings(segments=4), svc, cache=cache)  # fits exactly
    refused(planned, first.frames, s, ExtendSettings(segments=5),
            r"input 'segments': 5 segments would hold .* of frames in RAM \(49 frames at 64x48, kept then "
            r"joined\) beside the run's planned .*, over the .* usable: at most 4 segment\(s\) fit")


@pytest.mark.parametrize("name", ["tiny-wan2.1-i2v", "tiny-ltx2"])
def test_colour_match_keeps_each_segments_first_frame_near_the_first_segments_last(name, opened, cache,
                                                                                   example):
    """With colour match each segment's first frame stays within DRIFT_BOUND of the first segment's last
    frame (mean colour); without it the distances are reported (tiny Wan 2.1: 0.103 each; LTX-2:
    0.010, 0.019, 0.007)."""
    handle, _ = opened(name)
    s, first = first_clip(handle, example, cache, steps=3)
    distances = {}
    for on in (True, False):
        e = ExtendSettings(segments=3, color_match=on)
        out = extend(handle, first.frames, s, e, services.standalone(), cache=cache)
        starts = range(s.num_frames, len(out.frames), (len(out.frames) - s.num_frames) // 3)
        distances[on] = [color_match.mean_colour_distance(out.frames[i], first.frames[-1]) for i in starts]
        assert ", ".join(f"{d:.3f}" for d in distances[on]) in out.report
    print(f"{name}: mean colour distance with colour match {distances[True]}, without {distances[False]}")
    assert max(distances[True]) <= DRIFT_BOUND


@pytest.mark.parametrize(("name", "overlap"), [("tiny-wan2.1-i2v", 0), ("tiny-ltx2", 9)])
def test_in_the_stub_host_three_segments_give_the_frames_and_the_sound_of_the_whole_video(
        name, overlap, opened, session_dirs):
    handle, _ = opened(name)
    s = settings_for(handle)
    shutil.copy(REPO / "examples" / "i2v-example.png", session_dirs["input"])
    folders = {f"{kind}_dir": str(session_dirs[kind]) for kind in ("input", "output", "models")}
    widgets = {key: getattr(s, key) for key in ("prompt", "negative_prompt", "num_frames", "steps",
                                                "guidance_scale", "seed", "target_fps")}
    prompt = {
        "image": {"class_type": "LoadImage", "inputs": {"image": "i2v-example.png"}},
        "model": {"class_type": "LoadI2VModel", "inputs": {
            "model": name, "precision": "fp32", "vae_precision": "auto", "device": "cpu", "offload": "none",
            "allow_download": False, "weights": "default"}},
        "guard": {"class_type": "VRAMGuard", "inputs": {
            "model": ["model", 0], "width": s.width, "height": s.height, "num_frames": s.num_frames,
            "batch_size": 1, "policy": "error", "headroom": 0.1}},
        "sample": {"class_type": "I2VSample", "inputs": {
            **widgets, "model": ["guard", 0], "image": ["image", 0], "width": s.width, "height": s.height,
            "batch_size": 1, "decode_chunk_size": 0}},
        "extend": {"class_type": "I2VExtend", "inputs": {
            **widgets, "model": ["guard", 0], "frames": ["sample", 0], "audio": ["sample", 3], "segments": 3,
            "overlap": overlap, "color_match": True}},
        "video": {"class_type": "EncodeVideo", "inputs": {
            "frames": ["extend", 0], "fps": ["extend", 1], "frames_per_clip": ["extend", 2],
            "audio": ["extend", 3], "format": "mp4-h264", "crf": 19, "filename_prefix": f"extend/{name}",
            "loop_count": 0, "pingpong": False, "save_metadata": True}},
    }
    result = Host(packs=[str(REPO)], **folders).run(prompt)
    assert result.status == "success", result.error
    kept = overlap or 1
    total = s.num_frames + 3 * (s.num_frames - kept)
    frames, fps, per_clip, sound = (result.output("extend", i) for i in range(4))
    assert frames.shape == (total, s.height, s.width, 3) and per_clip == total and fps == s.target_fps
    assert sound["waveform"].shape[-1] == round(total / s.target_fps * sound["sample_rate"])
    assert torch.equal(frames[:s.num_frames], result.output("sample"))
    (path,) = result.output("video").splitlines()
    assert Path(path).stat().st_size > 0
