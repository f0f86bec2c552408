"""Image + prompt to frames: validation, planning, loading through the cache, sampling, decoding.

The steps, in order, so that bad input and memory problems surface before anything heavy:
validate every setting and image, take the guard's plan (or make one) and re-check it against
the memory free right now, then load (once per process, through the cache), denoise each input
image's clips in one stock pipeline call, and decode each clip with a NaN check and an fp32
retry for half-precision VAEs.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from . import families, memory, placement
from .cache import ModelCache
from .devices import cache_budget_bytes
from .errors import InputError, MemoryGuardError, NonFiniteError
from .models import ModelHandle
from .precision import DTYPES, nonfinite_summary
from .services import HostServices
from .unet_hook import hooked_unet

log = logging.getLogger(__name__)

MAX_SEED = 0xFFFF_FFFF_FFFF_FFFF
MAX_SIDE = 4096
MAX_BATCH = 64


@dataclass(frozen=True)
class SampleSettings:
    """I2VSample's widgets."""

    prompt: str
    negative_prompt: str = ""
    width: int = 512
    height: int = 512
    num_frames: int = 16
    steps: int = 40
    guidance_scale: float = 9.0
    seed: int = 0
    batch_size: int = 1
    target_fps: int = 8
    decode_chunk_size: int = 0  # 0 = as planned


@dataclass(frozen=True)
class SampleResult:
    frames: torch.Tensor  # [clips * frames_per_clip, H, W, 3] float32 in 0..1, on the CPU
    frames_per_clip: int
    fps: float
    clips: int
    report: str
    timings: dict[str, float]  # seconds: load, denoise, decode


# --- the process-wide cache ---------------------------------------------------------------------

_CACHE = ModelCache(cache_budget_bytes)


def default_cache() -> ModelCache:
    return _CACHE


# --- validation --------------------------------------------------------------------------------


def validate_shape(handle: ModelHandle, width: object, height: object, num_frames: object,
                   batch_size: object) -> None:
    """Raise :class:`InputError` for a size, frame count or batch the model cannot take."""
    limits = families.get(handle.family).CONSTRAINTS
    step = limits.multiple_of
    for name, value in (("width", width), ("height", height)):
        _int_in_range(name, value, step, MAX_SIDE)
        if value % step:
            low, high = value // step * step, (value // step + 1) * step
            raise InputError(name, f"must be a multiple of {step} for this model, got {value}; "
                                   f"nearest valid: {low} or {high}")
    _int_in_range("num_frames", num_frames, limits.min_frames, limits.max_frames)
    _int_in_range("batch_size", batch_size, 1, MAX_BATCH)


def validate_settings(handle: ModelHandle, s: SampleSettings) -> None:
    """Raise :class:`InputError` for the first setting that the model cannot take."""
    validate_shape(handle, s.width, s.height, s.num_frames, s.batch_size)
    _int_in_range("steps", s.steps, 1, 200)
    _int_in_range("seed", s.seed, 0, MAX_SEED)
    _int_in_range("target_fps", s.target_fps, 1, 240)
    _int_in_range("decode_chunk_size", s.decode_chunk_size, 0,
                  families.get(handle.family).CONSTRAINTS.max_frames)
    if not isinstance(s.guidance_scale, (int, float)) or not math.isfinite(s.guidance_scale) \
            or not 0 <= s.guidance_scale <= 100:
        raise InputError("guidance_scale", f"expected a number from 0 to 100 (1 = no guidance), "
                                           f"got {s.guidance_scale!r}")
    for name in ("prompt", "negative_prompt"):
        if not isinstance(getattr(s, name), str):
            raise InputError(name, f"expected text, got {type(getattr(s, name)).__name__}")


def _int_in_range(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(name, f"expected a whole number, got {value!r}")
    if not low <= value <= high:
        raise InputError(name, f"expected {low} to {high}, got {value}")


def images_to_pil(images: torch.Tensor) -> list[Image.Image]:
    """ComfyUI IMAGE ``[N, H, W, 3]`` (or one ``[H, W, 3]``) float 0..1 to RGB PIL images."""
    if not isinstance(images, torch.Tensor):
        raise InputError("image", f"expected an IMAGE tensor, got {type(images).__name__}")
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dim() != 4 or images.shape[-1] not in (3, 4) or min(images.shape[:3]) == 0:
        raise InputError("image", f"expected an IMAGE of shape [count, height, width, 3] with no empty "
                                  f"dimension, got {list(images.shape)}")
    if not images.is_floating_point():
        raise InputError("image", f"expected float values in 0..1, got dtype {images.dtype}")
    problem = nonfinite_summary(images)
    if problem:
        raise InputError("image", f"the image is corrupt: {problem}")
    pixels = (images[..., :3].float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return [Image.fromarray(np.ascontiguousarray(p), mode="RGB") for p in pixels]


# --- planning ----------------------------------------------------------------------------------


def run_shape(s: SampleSettings) -> memory.RunShape:
    return memory.RunShape(s.width, s.height, s.num_frames, s.batch_size, cfg=s.guidance_scale > 1)


def budget_for(handle: ModelHandle, services: HostServices, headroom: float,
               key_loaded: bool) -> memory.Budget:
    device = torch.device(handle.device)
    return memory.Budget(free=services.free_bytes(device), total=services.total_bytes(device),
                         headroom=headroom, already_loaded=_weight_bytes(handle) if key_loaded else 0)


def plan_for_run(handle: ModelHandle, s: SampleSettings, services: HostServices,
                 cache: ModelCache) -> memory.Plan:
    """The guard's plan when it matches this run, re-checked against memory free now; else a new one."""
    shape = run_shape(s)
    attached: memory.Plan | None = handle.plan
    policy = attached.policy if attached is not None else "off"
    headroom = attached.headroom if attached is not None else 0.10
    offload = attached.options.offload if attached is not None else handle.offload
    key = dataclasses.replace(handle.cache_key, offload=offload)
    budget = budget_for(handle, services, headroom, cache.is_loaded(key))
    if attached is not None and attached.shape == shape:
        if policy != "off" and attached.estimate.peak > budget.usable:
            raise MemoryGuardError(
                f"free memory dropped since VRAMGuard planned this run: it needs "
                f"{memory.gib(attached.estimate.peak)}, {memory.gib(budget.usable)} is usable now. "
                "Free memory (close other GPU programs, unload other models) or run VRAMGuard again.")
        return attached
    if attached is not None:
        log.warning("I2VSample settings differ from what VRAMGuard planned (%s vs %s); planning again",
                    shape, attached.shape)
    return memory.plan_run(handle, shape, policy, budget)


# --- loading -----------------------------------------------------------------------------------


PROMPT_MEMORY = 16  # prompt embeddings remembered per loaded pipeline


@dataclass
class Loaded:
    """A cached pipeline, where it computes, and its registration with the host's memory management."""

    pipeline: object
    device: torch.device  # the execution device (asking the pipeline walks every module)
    vae_dtype: torch.dtype
    registration: object | None = None
    # text -> embeddings: a new seed with the same prompt (the usual next run) skips the text encoder
    prompts: OrderedDict = field(default_factory=OrderedDict)

    def prompt_embeddings(self, family, text: str) -> torch.Tensor:
        if text in self.prompts:
            self.prompts.move_to_end(text)
            return self.prompts[text]
        embeds = family.encode_prompts(self.pipeline, [text], self.device)
        self.prompts[text] = embeds
        if len(self.prompts) > PROMPT_MEMORY:
            self.prompts.popitem(last=False)
        return embeds

    def close(self) -> None:
        if self.registration is not None:
            self.registration.release()
            self.registration = None


def _loader(handle: ModelHandle, offload: str, services: HostServices, cache: ModelCache):
    def load() -> tuple[Loaded, object]:
        family = families.get(handle.family)
        pipe = family.load_pipeline(handle.source, handle.local, DTYPES[handle.precision],
                                    DTYPES[handle.vae_precision])
        placement.bridge_dtypes(pipe)
        device = torch.device(handle.device)
        placement.place(pipe, device, offload)
        # with offload hooks the pipeline knows best; without, it is where we put it
        loaded = Loaded(pipe, device if offload == "none" else pipe._execution_device, pipe.vae.dtype)
        if services.register_model is not None:
            key = dataclasses.replace(handle.cache_key, offload=offload)
            modules = {name: getattr(pipe, name) for name in placement.WEIGHTED if hasattr(pipe, name)}
            # called from inside the host's unload: no garbage collection there (see host.py)
            loaded.registration = services.register_model(modules, device, _weight_bytes(handle),
                                                          lambda: cache.unload(key, collect=False),
                                                          offload != "none")
        return loaded, loaded.close

    return load


def _weight_bytes(handle: ModelHandle) -> int:
    return sum(memory.weight_bytes(handle).values())


# --- sampling ----------------------------------------------------------------------------------


def sample(handle: ModelHandle, images: torch.Tensor, s: SampleSettings, services: HostServices,
           cache: ModelCache | None = None) -> SampleResult:
    """Frames for every input image and seed: clip (image j, seed + i) is clip j * batch + i."""
    cache = cache or default_cache()
    validate_settings(handle, s)
    pil_images = images_to_pil(images)
    plan = plan_for_run(handle, s, services, cache)
    options = plan.options
    chunk = s.decode_chunk_size or options.decode_chunk
    family = families.get(handle.family)
    key = dataclasses.replace(handle.cache_key, offload=options.offload)
    cfg = s.guidance_scale > 1
    seeds = [(s.seed + i) & MAX_SEED for i in range(s.batch_size)]

    timings: dict[str, float] = {}
    started = time.perf_counter()
    loads_before = cache.loads
    progress = services.progress(len(pil_images) * (s.steps + s.batch_size), "I2VSample")
    loader = _loader(handle, options.offload, services, cache)
    try:
        with torch.no_grad(), cache.use(key, _weight_bytes(handle), loader) as loaded:
            timings["load"] = time.perf_counter() - started
            if loaded.registration is not None:
                loaded.registration.ensure_loaded(plan.estimate.activations + plan.estimate.buffers)
            pipe = loaded.pipeline
            placement.set_vae_tiling(pipe, options.vae_tiling)
            prompt = loaded.prompt_embeddings(family, s.prompt)
            negative = loaded.prompt_embeddings(family, s.negative_prompt)
            clips: list[torch.Tensor] = []
            for image in pil_images:
                t0 = time.perf_counter()
                noise = family.initial_latents(pipe, seeds, s.num_frames, s.height, s.width, loaded.device)
                job = family.Denoise(image, prompt, negative, noise, s.width, s.height, s.num_frames, s.steps,
                                     s.guidance_scale, s.target_fps)
                with hooked_unet(pipe.unet, clips=len(seeds), halves=2 if cfg else 1,
                                 clips_per_call=options.clips_per_call, split_halves=options.split_cfg,
                                 before_step=services.check_interrupt, after_step=progress.update):
                    latents = family.denoise(pipe, job, loaded.device)
                timings["denoise"] = timings.get("denoise", 0.0) + time.perf_counter() - t0
                problem = nonfinite_summary(latents)
                if problem:
                    raise NonFiniteError(
                        f"the denoised latents contain {problem} (UNet in {handle.precision}); the UNet "
                        "overflowed: use precision bf16 or fp32, or a lower guidance_scale")
                t0 = time.perf_counter()
                for index in range(latents.shape[0]):
                    services.check_interrupt()
                    clips.append(_decode_checked(family, loaded, latents[index:index + 1], chunk, len(clips)))
                    progress.update(1)
                timings["decode"] = timings.get("decode", 0.0) + time.perf_counter() - t0
    finally:
        progress.close()
    frames = torch.cat(clips).contiguous()
    report = _run_report(plan, s, len(clips), chunk, timings, cache.loads - loads_before)
    log.info("%s", report)
    return SampleResult(frames, s.num_frames, float(s.target_fps), len(clips), report, timings)


def _decode_checked(family, loaded: Loaded, latents: torch.Tensor, chunk: int, clip: int) -> torch.Tensor:
    """Decode one clip; NaN from a half-precision VAE gets one retry in fp32, then a clear error."""
    pipe, vae_dtype = loaded.pipeline, loaded.vae_dtype
    frames = family.decode(pipe, latents, chunk, vae_dtype)
    problem = nonfinite_summary(frames)
    if problem is None:
        return frames.cpu()
    if vae_dtype == torch.float32:
        raise NonFiniteError(f"the VAE decode of clip {clip} gave {problem} even in fp32: the latents "
                             "are out of range for this VAE")
    log.warning("VAE decode in %s gave %s for clip %d; retrying in fp32 (set vae_precision to fp32 to "
                "skip this)", vae_dtype, problem, clip)
    pipe.vae.to(torch.float32)
    try:
        frames = family.decode(pipe, latents, chunk, torch.float32)
    finally:
        pipe.vae.to(vae_dtype)
    problem = nonfinite_summary(frames)
    if problem:
        raise NonFiniteError(f"the VAE decode of clip {clip} gave {problem} in {vae_dtype} and again "
                             "in fp32: the latents are out of range for this VAE")
    return frames.cpu()


def _run_report(plan: memory.Plan, s: SampleSettings, clips: int, chunk: int, timings: dict[str, float],
                loads: int) -> str:
    per_step = timings.get("denoise", 0.0) / max(s.steps, 1)
    return (f"I2VSample: {clips} clip(s) of {s.num_frames} frames at {s.width}x{s.height}, {s.steps} steps, "
            f"guidance {s.guidance_scale}, seed {s.seed}; load {timings.get('load', 0):.2f} s "
            f"({'loaded' if loads else 'cached'}), denoise {timings.get('denoise', 0):.2f} s "
            f"({per_step:.3f} s/step), decode {timings.get('decode', 0):.2f} s (chunk {chunk}); "
            f"planned peak {memory.gib(plan.estimate.peak)}")
