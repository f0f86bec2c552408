"""Image + prompt to frames: validation, planning, loading through the cache, sampling, decoding.

The steps, in order, so that bad input and memory problems surface before anything heavy:
validate every setting and image, take the guard's plan (or make one) and re-check it against
the memory free right now, then load (once per process, through the cache), denoise each input
image's clips in one stock pipeline call, and decode each clip with a NaN check and an fp32
retry for half-precision VAEs. Everything model-specific is asked of the model's family.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from i2v_nodes.errors import I2VError
from i2v_nodes.families.contract.family import Family
from i2v_nodes.runtime import memory
from i2v_nodes.runtime.loading import lora, models, placement
from i2v_nodes.runtime.loading.cache import ModelCache
from i2v_nodes.runtime.loading.handle import ModelHandle
from i2v_nodes.runtime.loading.precision import dtype_of
from i2v_nodes.runtime.memory import guard
from i2v_nodes.runtime.memory.devices import cache_budget_bytes
from i2v_nodes.runtime.options import sampler_of
from i2v_nodes.runtime.output import audio
from i2v_nodes.runtime.sampling import keyframes
from i2v_nodes.runtime.sampling.decode import decode_checked
from i2v_nodes.runtime.sampling.denoise import SampleRun, denoise_image, pipeline_calls
from i2v_nodes.runtime.sampling.loaded import Loaded, cache_offload, pipeline_loader
from i2v_nodes.runtime.sampling.plan import held_bytes, plan_for_run
from i2v_nodes.runtime.sampling.settings import (
    MAX_SEED,
    SampleResult,
    SampleSettings,
    images_to_pil,
    validate_settings,
)
from i2v_nodes.runtime.services import HostServices

log = logging.getLogger(__name__)


class DeviceOutOfMemory(I2VError, torch.OutOfMemoryError):
    """The device ran out of memory mid-run. Still a torch out-of-memory error, so a host that
    reacts to those (ComfyUI frees its models) still does; the message adds what to change."""


_CACHE = ModelCache(cache_budget_bytes)


def default_cache() -> ModelCache:
    return _CACHE


def sample(handle: ModelHandle, images: torch.Tensor, s: SampleSettings, services: HostServices,
           cache: ModelCache | None = None, end_images: torch.Tensor | None = None) -> SampleResult:
    """Frames for every input image and seed: clip (image j, seed + i) is clip j * batch + i. With
    ``end_images`` (one per image, or one for all), each image's clips end on its end image."""
    cache = cache or default_cache()
    fresh = models.as_on_disk(handle)
    if fresh is not handle:  # the cached weights may be mapped from the file that changed: never reuse them
        cache.unload_source(handle.source)
        handle = fresh
    family_settings = validate_settings(handle, s)
    pil_images = images_to_pil(images)
    ends = keyframes.end_images(handle, end_images, len(pil_images))
    plan = plan_for_run(handle, s, services, cache, family_settings, keyframes.images_per_clip(end_images))
    seeds = [(s.seed + i) & MAX_SEED for i in range(s.batch_size)]
    calls = pipeline_calls(handle.family, sampler=sampler_of(s.options).sampler, clips=s.batch_size)
    steps = handle.family.steps_run(s.steps, family_settings) * calls
    progress = services.progress(len(pil_images) * (steps + s.batch_size), "I2VSample")
    run = SampleRun(handle, s, family_settings, plan, seeds, services, progress)
    loads_before = cache.loads
    try:
        clips, sounds, loaded = _clips(run, pil_images, ends, cache)
    finally:
        progress.close()
    report = _report(run, loaded, len(clips), cache.loads - loads_before)
    log.info("%s", report)
    sound = audio.join_clips(sounds, s.num_frames / s.target_fps)
    return SampleResult(torch.cat(clips).contiguous(), s.num_frames, float(s.target_fps), len(clips), report,
                        run.timings, sound)


def _clips(run: SampleRun, pil_images: list[Any], ends: list[Any],
           cache: ModelCache) -> tuple[list[torch.Tensor], list[dict[str, Any] | None], Loaded]:
    """Every clip's frames and sound, on the cached pipeline (loaded first if it is not); ``ends``: each
    image's end image, or none."""
    handle, s, plan, family, timings = run.handle, run.settings, run.plan, run.handle.family, run.timings
    chunk = s.decode_chunk_size or plan.options.decode_chunk
    disk = plan.options.residency == "disk"
    key = dataclasses.replace(handle.cache_key, offload=cache_offload(plan.options.offload, disk))
    clips: list[torch.Tensor] = []
    sounds: list[dict[str, Any] | None] = []
    started, phase = time.perf_counter(), "load"
    try:
        loader = pipeline_loader(handle, plan.options.offload, run.services, cache,
                                 streamed=plan.options.residency == "phase", disk=disk)
        held = held_bytes(handle, plan.options)
        with torch.no_grad(), cache.use(key, held, loader) as loaded, _released_after(loaded):
            timings["load"] = time.perf_counter() - started
            _ready(run, loaded)
            phase = "encode"
            prompt, negative = _prompt_embeddings(family, loaded, s, run.cfg)
            for index, image in enumerate(pil_images):
                phase = "denoise"
                with _timed(timings, "denoise"):
                    prepared = family.prepare_image(image, s.width, s.height)
                    end = family.prepare_image(ends[index], s.width, s.height) if ends else None
                    denoised = denoise_image(run, loaded, prepared, prompt, negative,
                                             keyframes.keyframes_of(end, s.num_frames))
                phase = "decode"
                with _timed(timings, "decode"):
                    for index in range(denoised.clips):
                        run.services.check_interrupt()
                        clip = denoised.clip(index)
                        clips.append(decode_checked(family, handle, loaded, clip, chunk, len(clips)))
                        sounds.append(family.decode_audio(loaded.pipeline, clip))
                        run.progress.update(1)
    except torch.OutOfMemoryError as exc:
        raise _out_of_memory(handle, plan, phase, exc) from exc
    return clips, sounds, loaded


def _ready(run: SampleRun, loaded: Loaded) -> None:
    """Make the cached pipeline this run's: the host's memory, the handle's LoRAs, the plan's tiling."""
    handle, plan = run.handle, run.plan
    if loaded.registration is not None:
        loaded.registration.ensure_loaded(plan.estimate.activations + plan.estimate.buffers)
    with _timed(run.timings, "lora"):  # inside the run lock: no other run sees half-changed adapters
        lora.sync(loaded.pipeline, loaded.loras, handle.loras, handle.roles.denoisers, handle.family,
                  dtype_of(handle.precision))
    placement.set_vae_tiling(loaded.pipeline, handle.roles, plan.options.vae_tiling)
    loaded.stream(handle.roles, per_phase=plan.options.residency in ("phase", "disk"))


def _prompt_embeddings(family: Family, loaded: Loaded, s: SampleSettings,
                       cfg: bool) -> tuple[Any, Any]:
    """The prompt's and (with guidance) the negative prompt's embeddings; neither for a family that
    takes no prompt."""
    if not family.spec.takes_prompt:
        return None, None
    prompt = loaded.prompt_embeddings(family, s.prompt)
    return prompt, loaded.prompt_embeddings(family, s.negative_prompt) if cfg else None


def _prompts_ignored(handle: ModelHandle, s: SampleSettings) -> bool:
    """Whether the run was given prompt text its model cannot use (the report says so)."""
    return not handle.family.spec.takes_prompt and bool(s.prompt.strip() or s.negative_prompt.strip())


@contextmanager
def _released_after(loaded: Loaded) -> Iterator[None]:
    """A streamed run's pipeline holds no encoder or expert once idle (RAM is short), also after a
    failure or a cancel mid-phase."""
    try:
        yield
    finally:
        if loaded.streaming is not None:
            loaded.streaming.release_all()


@contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - started


def _out_of_memory(handle: ModelHandle, plan: guard.Plan, phase: str,
                   exc: BaseException) -> DeviceOutOfMemory:
    """Free what the failed phase held and explain what to change. The cached model stays usable."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DeviceOutOfMemory(
        f"ran out of device memory during {phase} on {handle.device} (VRAMGuard planned a peak of "
        f"{memory.gib(plan.estimate.peak)} with {memory.gib(plan.usable)} usable; something else may have "
        "taken memory since). Nothing was written. To make it fit: VRAMGuard with policy 'adapt' turns on "
        "memory options by itself; or lower num_frames or the size; or set LoadI2VModel's offload to 'model' "
        f"(weights fp8 halves the denoiser). torch: {first_line}")


def _report(run: SampleRun, loaded: Loaded, clips: int, loads: int) -> str:
    """The run's one-line report, with what the speed settings and the loader chose."""
    handle, s = run.handle, run.settings
    chunk = s.decode_chunk_size or run.plan.options.decode_chunk
    report = _run_report(run.plan, s, clips, chunk, run.timings, loads)
    if loaded.streaming is not None:
        report += (f"; streamed per phase ({', '.join(loaded.streaming.components)} resident only while they "
                   f"run; {loaded.streaming.spilled / 2**20:.0f} MiB of converted weights in a spill file)")
    if run.notes:
        report += "; " + "; ".join(run.notes)
    if loaded.note:
        report += f"; {loaded.note}"
    if _prompts_ignored(handle, s):
        report += (f"; prompt and negative_prompt ignored: {handle.name} ({handle.family.name}) takes no "
                   "prompt")
    return report


def _run_report(plan: guard.Plan, s: SampleSettings, clips: int, chunk: int, timings: dict[str, float],
                loads: int) -> str:
    per_step = timings.get("denoise", 0.0) / max(s.steps, 1)
    return (f"I2VSample: {clips} clip(s) of {s.num_frames} frames at {s.width}x{s.height}, {s.steps} steps, "
            f"guidance {s.guidance_scale}, seed {s.seed}; load {timings.get('load', 0):.2f} s "
            f"({'loaded' if loads else 'cached'}), denoise {timings.get('denoise', 0):.2f} s "
            f"({per_step:.3f} s/step), decode {timings.get('decode', 0):.2f} s (chunk {chunk}); "
            f"planned peak {memory.gib(plan.estimate.peak)}")
