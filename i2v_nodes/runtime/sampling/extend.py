"""Longer videos (I2VExtend): a clip continued for more segments, each one run of the sampling path.

Every segment is a one-clip run of :mod:`.run` (the cached pipeline, the plan, progress, cancel, the
speed levers, the sampler, the checked decode), conditioned on the clip so far: on its last ``overlap``
frames through the family's video conditioning where the variant has it (``Family.continuation``),
else on its last frame as the input image. A segment starts with those frames again; they are dropped,
so the video holds each frame once. With ``color_match`` each segment's colours are matched to the
first segment's last frames (:mod:`.color_match`) before the next segment continues from it, so drift does not
accumulate. Segment i draws its noise from its own seed, derived from the node's seed, so a run
reproduces and no segment repeats the noise of the clip (seed) it continues.

One plan covers every segment (the same shape); what grows is the frames in RAM, checked before any
work (:mod:`.extend_checks`). The sound of a model with sound is each segment's, less the overlap's
length; the clip given in is joined with its own ``audio``, or silence.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from i2v_nodes.errors import InputError
from i2v_nodes.runtime import memory
from i2v_nodes.runtime.loading import models
from i2v_nodes.runtime.loading.cache import ModelCache
from i2v_nodes.runtime.loading.handle import ModelHandle
from i2v_nodes.runtime.memory import guard
from i2v_nodes.runtime.options import sampler_of
from i2v_nodes.runtime.output import audio
from i2v_nodes.runtime.sampling import color_match
from i2v_nodes.runtime.sampling.denoise import SampleRun, pipeline_calls
from i2v_nodes.runtime.sampling.extend_checks import (
    ExtendSettings,
    check_ram,
    check_size,
    overlap_of,
    takes_frames,
    video_of,
)
from i2v_nodes.runtime.sampling.plan import plan_for_run
from i2v_nodes.runtime.sampling.run import _clips, default_cache
from i2v_nodes.runtime.sampling.settings import (
    SampleResult,
    SampleSettings,
    images_to_pil,
    validate_settings,
)
from i2v_nodes.runtime.services import HostServices

log = logging.getLogger(__name__)

__all__ = ["ExtendSettings", "extend", "segment_seed"]

_SEED_STRIDE = 0x9E37_79B9_7F4A_7C15  # the golden-ratio stride: segment seeds far from seed + i (a batch's)
_SEED_BITS = 0x7FFF_FFFF_FFFF_FFFF  # 63 bits: a seed some pipelines keep in an int64 tensor


def segment_seed(seed: int, index: int) -> int:
    """The seed of segment ``index`` (0 = the first one added) of an I2VExtend with ``seed``."""
    return (seed + (index + 1) * _SEED_STRIDE) & _SEED_BITS


@dataclass
class _Extension:
    """One I2VExtend call, resolved."""

    handle: ModelHandle
    settings: SampleSettings  # one segment's (size from the frames, batch 1, the node's seed)
    extend: ExtendSettings
    family_settings: Any
    plan: guard.Plan
    overlap: int
    services: HostServices
    progress: Any
    notes: list[str] = dataclasses.field(default_factory=list)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)


def extend(handle: ModelHandle, frames: torch.Tensor, s: SampleSettings, e: ExtendSettings,
           services: HostServices, given_audio: dict[str, Any] | None = None,
           cache: ModelCache | None = None) -> SampleResult:
    """``frames`` (one clip) and ``e.segments`` more segments of ``s.num_frames`` frames each, the
    overlap removed: one IMAGE batch and one AUDIO of the whole video."""
    cache = cache or default_cache()
    fresh = models.as_on_disk(handle)
    if fresh is not handle:  # the cached weights may be mapped from the file that changed: never reuse them
        cache.unload_source(handle.source)
        handle = fresh
    video = video_of(frames)
    check_size(handle, video)
    s = dataclasses.replace(s, width=video.shape[2], height=video.shape[1], batch_size=1)
    family_settings = validate_settings(handle, s)
    overlap = overlap_of(handle, s, e, len(video))
    plan = plan_for_run(handle, s, services, cache, family_settings)
    held = check_ram(plan, s, e, overlap, len(video))
    calls = pipeline_calls(handle.family, sampler=sampler_of(s.options).sampler, clips=1)
    steps = handle.family.steps_run(s.steps, family_settings) * calls
    progress = services.progress(e.segments * (steps + 1), "I2VExtend")
    run = _Extension(handle, s, e, family_settings, plan, overlap, services, progress)
    loads_before = cache.loads
    try:
        pieces, sounds = _segments(run, video, cache)
    finally:
        progress.close()
    whole = torch.cat(pieces).contiguous()
    del pieces
    sound = _whole_sound(run, given_audio, sounds, len(video), len(whole))
    drift = [color_match.mean_colour_distance(whole[start], video[-1]) for start in
             range(len(video), len(whole), s.num_frames - overlap)]
    report = _report(run, len(video), len(whole), drift, held, cache.loads - loads_before)
    log.info("%s", report)
    return SampleResult(whole, len(whole), float(s.target_fps), 1, report, run.timings, sound)


def _segments(run: _Extension, video: torch.Tensor,
              cache: ModelCache) -> tuple[list[torch.Tensor], list[dict[str, Any] | None]]:
    """Each segment's new frames (after the clip given), and each segment's sound (None: none)."""
    s, overlap = run.settings, run.overlap
    reference = color_match.reference_of(video[-overlap:]) if run.extend.color_match else None
    by_frames = takes_frames(run.handle)
    pieces, sounds, tail = [video], [], video[-overlap:]
    for index in range(run.extend.segments):
        seed = segment_seed(s.seed, index)
        segment_run = SampleRun(run.handle, dataclasses.replace(s, seed=seed), run.family_settings, run.plan,
                                [seed], run.services, run.progress, run.notes, run.timings,
                                continue_from=_levels(tail) if by_frames else None)
        clips, clip_sounds, _ = _clips(segment_run, images_to_pil(tail[-1:]), [], cache)
        segment = clips[0]
        if reference is not None:
            segment = color_match.matched(segment, reference)
        pieces.append(segment[overlap:])
        sounds.append(clip_sounds[0])
        tail = segment[-overlap:]
    return pieces, sounds


def _levels(frames: torch.Tensor) -> np.ndarray:
    """Frames as the 8-bit RGB a pipeline's condition takes, uint8 [k, H, W, 3]."""
    return np.ascontiguousarray((frames.clamp(0, 1) * 255).round().to(torch.uint8).numpy())


def _whole_sound(run: _Extension, given: dict[str, Any] | None, sounds: list[dict[str, Any] | None],
                 previous: int, total: int) -> dict[str, Any]:
    """One AUDIO of the whole video: the given clip's sound (its ``audio``, or silence), then each
    segment's less the overlap's length (silence for a model without sound), fitted to the video."""
    fps, s = float(run.settings.target_fps), run.settings
    made = [audio.for_clips(sound, 1, s.num_frames / fps)[0] for sound in sounds if sound is not None]
    first = audio.for_clips(given, 1, previous / fps)[0] if given is not None else None
    rate = made[0].sample_rate if made else first.sample_rate if first is not None else audio.SILENCE_RATE
    channels = max([clip.channels for clip in made] + ([first.channels] if first is not None else [1]))
    if first is not None and first.sample_rate != rate:
        raise InputError("audio", f"the audio is at {first.sample_rate} Hz and {run.handle.name} makes its "
                                  f"sound at {rate} Hz: give the clip's own sound (I2VSample's audio), or "
                                  "none (silence under the clip given)")
    parts = [_channels(first.waveform, channels) if first is not None
             else torch.zeros(channels, round(previous / fps * rate))]
    cut = round(run.overlap / fps * rate)
    made_by_segment = iter(made)
    for sound in sounds:
        if sound is None:
            parts.append(torch.zeros(channels, round((s.num_frames - run.overlap) / fps * rate)))
        else:
            parts.append(_channels(next(made_by_segment).waveform, channels)[:, cut:])
    joined = {"waveform": torch.cat(parts, dim=-1).unsqueeze(0), "sample_rate": rate}
    fitted = audio.for_clips(joined, 1, total / fps)[0]
    return {"waveform": fitted.waveform.unsqueeze(0), "sample_rate": rate}


def _channels(waveform: torch.Tensor, channels: int) -> torch.Tensor:
    """A mono track spread over ``channels``; a track with as many channels unchanged."""
    if waveform.shape[0] == channels:
        return waveform
    if waveform.shape[0] == 1:
        return waveform.expand(channels, -1)
    raise InputError("audio", f"the audio has {waveform.shape[0]} channels and the model's sound {channels}: "
                              "give a mono track or one with as many channels")


def _report(run: _Extension, previous: int, total: int, drift: list[float], held: int, loads: int) -> str:
    s, e, t = run.settings, run.extend, run.timings
    continuation = run.handle.family.continuation
    how = (f"continued from the last {run.overlap} frame(s) through {continuation.description}"
           if takes_frames(run.handle) else "continued from the last frame as the image")
    distances = ", ".join(f"{d:.3f}" for d in drift)
    report = (f"I2VExtend: {previous} frames + {e.segments} segment(s) of {s.num_frames} frames less an "
              f"overlap of {run.overlap} = {total} frames ({total / s.target_fps:.2f} s) at "
              f"{s.width}x{s.height}, {s.steps} steps, seed {s.seed}; {how}; colour match "
              f"{'on' if e.color_match else 'off'} (mean colour distance of each segment's first frame to "
              f"the clip's last: {distances}); load {t.get('load', 0):.2f} s "
              f"({'loaded' if loads else 'cached'}), denoise {t.get('denoise', 0):.2f} s, decode "
              f"{t.get('decode', 0):.2f} s; planned peak {memory.gib(run.plan.estimate.peak)}, frames in RAM "
              f"{memory.gib(held)}")
    if run.notes:
        report += "; " + "; ".join(run.notes)
    return report
