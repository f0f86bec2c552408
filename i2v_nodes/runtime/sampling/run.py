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
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from . import (
    audio,
    denoiser_hook,
    guard,
    lora,
    memory,
    placement,
    speed,
)
from .cache import ModelCache
from .devices import cache_budget_bytes
from .errors import DeviceOutOfMemory, I2VError, InputError, MemoryGuardError, NonFiniteError
from .families import Denoised, DenoiseJob, Family, LoadSpec, StockOutput, StockRun
from .models import ModelHandle
from .options import Options, speed_of
from .precision import DTYPES, nonfinite_summary
from .services import HostServices

log = logging.getLogger(__name__)

MAX_SEED = 0xFFFF_FFFF_FFFF_FFFF
MAX_SIDE = 4096
MAX_FRAMES = 257  # the widest frame range of any family (each family checks its own)
MAX_BATCH = 64


@dataclass(frozen=True)
class SampleSettings:
    """I2VSample's widgets, and its optional options chain."""

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
    options: Options | None = None


@dataclass(frozen=True)
class SampleResult:
    frames: torch.Tensor  # [clips * frames_per_clip, H, W, 3] float32 in 0..1, on the CPU
    frames_per_clip: int
    fps: float
    clips: int
    report: str
    timings: dict[str, float]  # seconds: load, denoise, decode
    # ComfyUI's AUDIO, one entry per clip: the family's sound, or silence of the clip's length
    audio: dict[str, Any] = field(default_factory=dict)


# --- the process-wide cache ---------------------------------------------------------------------

_CACHE = ModelCache(cache_budget_bytes)


def default_cache() -> ModelCache:
    return _CACHE


# --- validation --------------------------------------------------------------------------------


def validate_shape(handle: ModelHandle, width: object, height: object, num_frames: object,
                   batch_size: object) -> None:
    """Raise :class:`InputError` for a size, frame count or batch the model cannot take."""
    rules = handle.rules
    step = rules.size_multiple
    for name, value in (("width", width), ("height", height)):
        _int_in_range(name, value, step, MAX_SIDE)
        if value % step:
            low, high = value // step * step, (value // step + 1) * step
            raise InputError(name, f"must be a multiple of {step} for this model ({handle.variant}), got "
                                   f"{value}; nearest valid: {low} or {high}")
    _int_in_range("num_frames", num_frames, rules.min_frames, rules.max_frames)
    if not rules.frames_valid(num_frames):
        nearest = " or ".join(str(n) for n in rules.nearest_frames(num_frames))
        raise InputError("num_frames", f"this model ({handle.variant}) takes {rules.frame_step}k+1 frames "
                                       f"({rules.min_frames}, {rules.min_frames + rules.frame_step}, ...), "
                                       f"got {num_frames}; nearest valid: {nearest}")
    _int_in_range("batch_size", batch_size, 1, MAX_BATCH)


def validate_settings(handle: ModelHandle, s: SampleSettings) -> Any:
    """Raise :class:`InputError` for the first setting the model cannot take; return its family's options."""
    validate_shape(handle, s.width, s.height, s.num_frames, s.batch_size)
    _int_in_range("steps", s.steps, 1, 200)
    _int_in_range("seed", s.seed, 0, MAX_SEED)
    _int_in_range("target_fps", s.target_fps, 1, 240)
    _int_in_range("decode_chunk_size", s.decode_chunk_size, 0, MAX_FRAMES)
    if not isinstance(s.guidance_scale, (int, float)) or not math.isfinite(s.guidance_scale) \
            or not 0 <= s.guidance_scale <= 100:
        raise InputError("guidance_scale", f"expected a number from 0 to 100 (1 = no guidance), "
                                           f"got {s.guidance_scale!r}")
    for name in ("prompt", "negative_prompt"):
        if not isinstance(getattr(s, name), str):
            raise InputError(name, f"expected text, got {type(getattr(s, name)).__name__}")
    if s.options is not None and not isinstance(s.options, Options):
        raise InputError("options", "expected I2V_OPTIONS from an option node, got "
                                    f"{type(s.options).__name__}")
    settings = s.options.for_family(handle.family, handle.name) if s.options is not None else None
    handle.family_impl.check_options(handle.variant, settings)
    speed.check(handle, speed_of(s.options), s.steps)
    return settings


def cfg_steps(s: SampleSettings) -> int:
    """How many of the steps run guidance under CFG truncation (0: all of them)."""
    until = speed_of(s.options).guidance_until
    return 0 if until >= 1 else max(1, round(until * s.steps))


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


def run_shape(handle: ModelHandle, s: SampleSettings, family_settings: Any = None) -> memory.RunShape:
    cfg = handle.family_impl.uses_cfg(s.guidance_scale, family_settings)
    return memory.RunShape(s.width, s.height, s.num_frames, s.batch_size, cfg=cfg, speed=speed_of(s.options))


def budget_for(handle: ModelHandle, services: HostServices, headroom: float,
               key_loaded: bool) -> guard.Budget:
    """Device memory and system RAM free now; this model's own weights count as free if loaded."""
    device, cpu = torch.device(handle.device), torch.device("cpu")
    weights = _weight_bytes(handle) if key_loaded else 0
    return guard.Budget(free=services.free_bytes(device), total=services.total_bytes(device),
                        headroom=headroom, already_loaded=weights, ram_free=services.free_bytes(cpu),
                        ram_total=services.total_bytes(cpu),
                        ram_already=weights if handle.offload != "none" else 0)


def plan_for_run(handle: ModelHandle, s: SampleSettings, services: HostServices, cache: ModelCache,
                 family_settings: Any = None) -> guard.Plan:
    """The guard's plan when it covers this run, re-checked against memory free now; else a new one."""
    shape = run_shape(handle, s, family_settings)
    attached: guard.Plan | None = handle.plan
    policy = attached.policy if attached is not None else "off"
    headroom = attached.headroom if attached is not None else 0.10
    offload = attached.options.offload if attached is not None else handle.offload
    key = dataclasses.replace(handle.cache_key, offload=offload)
    budget = budget_for(handle, services, headroom, cache.is_loaded(key))
    if attached is not None and attached.covers(shape):
        extra = memory.speed_bytes(handle, shape) - memory.speed_bytes(handle, attached.shape)
        if policy != "off" and extra > 0 and attached.estimate.peak + extra > budget.usable:
            log.info("the speed settings add %s to VRAMGuard's plan; planning again", memory.gib(extra))
            return guard.plan_run(handle, shape, policy, budget)
        if policy != "off" and attached.estimate.peak > budget.usable:
            raise MemoryGuardError(
                f"free memory dropped since VRAMGuard planned this run: it needs "
                f"{memory.gib(attached.estimate.peak)}, {memory.gib(budget.usable)} is usable now. "
                "Free memory (close other GPU programs, unload other models) or run VRAMGuard again.")
        return attached
    if attached is not None:
        log.warning("I2VSample settings differ from what VRAMGuard planned (%s vs %s); planning again",
                    shape, attached.shape)
    return guard.plan_run(handle, shape, policy, budget)


# --- loading -----------------------------------------------------------------------------------


PROMPT_MEMORY = 16  # prompt embeddings remembered per loaded pipeline
# ... and at most this many bytes of them (LTX-2's one prompt is ~385 MB: Gemma's 49 layers x 1024
# tokens), always keeping the two newest (a run's prompt and negative prompt)
PROMPT_MEMORY_BYTES = 2**30


@dataclass
class Loaded:
    """A cached pipeline, where it computes, and its registration with the host's memory management."""

    pipeline: Any
    device: torch.device  # the execution device (asking the pipeline walks every module)
    vae_dtype: torch.dtype
    registration: Any = None
    note: str = ""  # what loading chose that the report should say (single files: the tokenizer)
    # text -> embeddings: a new seed with the same prompt (the usual next run) skips the text encoder
    prompts: OrderedDict = field(default_factory=OrderedDict)
    loras: lora.Applied = field(default_factory=lora.Applied)  # the LoRA adapters on the denoisers now
    speed: speed.State = field(default_factory=speed.State)  # compiled blocks, MagCache calibrations

    def prompt_embeddings(self, family: Family, text: str) -> torch.Tensor:
        if text in self.prompts:
            self.prompts.move_to_end(text)
            return self.prompts[text]
        embeds = family.encode_prompt(self.pipeline, text, self.device)
        self.prompts[text] = embeds
        while len(self.prompts) > 2 and (len(self.prompts) > PROMPT_MEMORY
                                         or sum(map(_nbytes, self.prompts.values())) > PROMPT_MEMORY_BYTES):
            self.prompts.popitem(last=False)
        return embeds

    def close(self) -> None:
        if self.registration is not None:
            self.registration.release()
            self.registration = None


def _nbytes(encoding: Any) -> int:
    """Bytes of a prompt encoding: a tensor, or a dataclass of tensors."""
    if isinstance(encoding, torch.Tensor):
        return encoding.nbytes
    fields = dataclasses.fields(encoding) if dataclasses.is_dataclass(encoding) else ()
    return sum(_nbytes(getattr(encoding, f.name)) for f in fields)


def _loader(handle: ModelHandle, offload: str, services: HostServices, cache: ModelCache):
    def load() -> tuple[Loaded, Callable[[], None]]:
        roles, device = handle.roles, torch.device(handle.device)
        spec = LoadSpec(DTYPES[handle.precision], DTYPES[handle.vae_precision], handle.weights)
        note = ""
        if handle.files is not None:
            roots = [Path(root) for root in handle.tokenizer_roots]
            pipe, note = placement.load_files_pipeline(handle.family_impl, roles, handle.files, spec, device,
                                                       offload, roots, handle.allow_download)
            log.info("%s: %s", handle.name, note)
        else:
            pipe = placement.load_pipeline(handle.family_impl, roles, handle.source, handle.local, spec,
                                           device, offload, handle.variant)
        # with offload hooks the pipeline knows best; without, it is where we put it
        execution = device if offload == "none" else pipe._execution_device
        loaded = Loaded(pipe, execution, getattr(pipe, roles.vae).dtype, note=note)
        if services.register_model is not None:
            key = dataclasses.replace(handle.cache_key, offload=offload)
            modules = {name: getattr(pipe, name) for name in roles.weighted}
            # called from inside the host's unload: no garbage collection there (see host.py)
            loaded.registration = services.register_model(modules, device, _weight_bytes(handle),
                                                          lambda: cache.unload(key, collect=False),
                                                          offload != "none")
        return loaded, loaded.close

    return load


def _weight_bytes(handle: ModelHandle) -> int:
    return sum(memory.weight_bytes(handle).values())


# --- sampling ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Run:
    """One I2VSample call, resolved: what every image's pipeline call shares."""

    handle: ModelHandle
    settings: SampleSettings
    family_settings: Any
    plan: guard.Plan
    seeds: list[int]
    services: HostServices
    progress: Any
    notes: list[str] = field(default_factory=list)  # what the speed settings did, for the report

    @property
    def cfg(self) -> bool:
        return self.handle.family_impl.uses_cfg(self.settings.guidance_scale, self.family_settings)


def sample(handle: ModelHandle, images: torch.Tensor, s: SampleSettings, services: HostServices,
           cache: ModelCache | None = None) -> SampleResult:
    """Frames for every input image and seed: clip (image j, seed + i) is clip j * batch + i."""
    cache = cache or default_cache()
    family_settings = validate_settings(handle, s)
    pil_images = images_to_pil(images)
    plan = plan_for_run(handle, s, services, cache, family_settings)
    chunk = s.decode_chunk_size or plan.options.decode_chunk
    key = dataclasses.replace(handle.cache_key, offload=plan.options.offload)
    seeds = [(s.seed + i) & MAX_SEED for i in range(s.batch_size)]
    family = handle.family_impl

    timings: dict[str, float] = {}
    started = time.perf_counter()
    loads_before = cache.loads
    steps = family.steps_run(s.steps, family_settings) * family.pipeline_calls(s.batch_size)
    progress = services.progress(len(pil_images) * (steps + s.batch_size), "I2VSample")
    run = _Run(handle, s, family_settings, plan, seeds, services, progress)
    clips: list[torch.Tensor] = []
    sounds: list[dict[str, Any] | None] = []
    phase = "load"
    try:
        loader = _loader(handle, plan.options.offload, services, cache)
        with torch.no_grad(), cache.use(key, _weight_bytes(handle), loader) as loaded:
            timings["load"] = time.perf_counter() - started
            if loaded.registration is not None:
                loaded.registration.ensure_loaded(plan.estimate.activations + plan.estimate.buffers)
            with _timed(timings, "lora"):  # inside the run lock: no other run sees half-changed adapters
                lora.sync(loaded.pipeline, loaded.loras, handle.loras, handle.roles.denoisers, family,
                          DTYPES[handle.precision])
            placement.set_vae_tiling(loaded.pipeline, handle.roles, plan.options.vae_tiling)
            phase = "encode"
            prompt, negative = _prompt_embeddings(family, loaded, s, run.cfg)
            for image in pil_images:
                phase = "denoise"
                with _timed(timings, "denoise"):
                    prepared = family.prepare_image(image, s.width, s.height)
                    denoised = _denoise(run, loaded, prepared, prompt, negative)
                phase = "decode"
                with _timed(timings, "decode"):
                    for index in range(denoised.clips):
                        services.check_interrupt()
                        clip = denoised.clip(index)
                        clips.append(_decode_checked(family, handle, loaded, clip, chunk, len(clips)))
                        sounds.append(family.decode_audio(loaded.pipeline, clip))
                        progress.update(1)
    except torch.OutOfMemoryError as exc:
        raise _out_of_memory(handle, plan, phase, exc) from exc
    finally:
        progress.close()
    frames = torch.cat(clips).contiguous()
    report = _run_report(plan, s, len(clips), chunk, timings, cache.loads - loads_before)
    if run.notes:
        report += "; " + "; ".join(run.notes)
    if loaded.note:
        report += f"; {loaded.note}"
    if _prompts_ignored(handle, s):
        report += f"; prompt and negative_prompt ignored: {handle.name} ({handle.family}) takes no prompt"
    log.info("%s", report)
    sound = audio.join_clips(sounds, s.num_frames / s.target_fps)
    return SampleResult(frames, s.num_frames, float(s.target_fps), len(clips), report, timings, sound)


def _prompt_embeddings(family: Family, loaded: Loaded, s: SampleSettings,
                       cfg: bool) -> tuple[Any, Any]:
    """The prompt's and (with guidance) the negative prompt's embeddings; neither for a family that
    takes no prompt."""
    if not family.takes_prompt:
        return None, None
    prompt = loaded.prompt_embeddings(family, s.prompt)
    return prompt, loaded.prompt_embeddings(family, s.negative_prompt) if cfg else None


def _prompts_ignored(handle: ModelHandle, s: SampleSettings) -> bool:
    """Whether the run was given prompt text its model cannot use (the report says so)."""
    return not handle.family_impl.takes_prompt and bool(s.prompt.strip() or s.negative_prompt.strip())


@contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - started


def _denoise(run: _Run, loaded: Loaded, image: Any, prompt: torch.Tensor,
             negative: torch.Tensor | None) -> Denoised:
    """One stock pipeline call for one image and all its clips, with progress and cancel."""
    handle, s, services, options = run.handle, run.settings, run.services, run.plan.options
    family, pipe = handle.family_impl, loaded.pipeline
    services.check_interrupt()
    stopped: list[bool] = []

    def step_end() -> bool:  # the pipeline's step callback: count the step, stop on a cancel request
        run.progress.update(1)
        if services.interrupt_requested():
            stopped.append(True)
        return bool(stopped)

    guided = cfg_steps(s)
    noise = family.initial_latents(pipe, handle.variant, run.seeds, s.num_frames, s.height, s.width,
                                   loaded.device)
    job = DenoiseJob(image=image, prompt_embeds=prompt, negative_embeds=negative, latents=noise,
                     width=s.width, height=s.height, num_frames=s.num_frames, steps=s.steps,
                     guidance_scale=s.guidance_scale, target_fps=s.target_fps, options=run.family_settings,
                     step_end=step_end if family.uses_step_callback else None, seeds=tuple(run.seeds),
                     variant=handle.variant, cfg_steps=guided)
    halves = 2 if run.cfg and family.cfg_in_one_call else 1
    # clips per stock pipeline call: a family that loops over its clips calls with one at a time
    clips = len(run.seeds) // family.pipeline_calls(len(run.seeds))
    layout = {"clips": clips, "halves": halves, "clips_per_call": options.clips_per_call,
              "split_halves": options.split_cfg and halves == 2}
    with ExitStack() as stack:
        if not family.uses_step_callback:  # one denoiser call per step: the hook counts and cancels
            stack.enter_context(denoiser_hook.hooked(_denoisers(pipe, handle), **layout,
                                                     before_call=services.check_interrupt,
                                                     after_call=run.progress.update))
        elif denoiser_hook.needed(**layout):
            stack.enter_context(denoiser_hook.hooked(_denoisers(pipe, handle), **layout))
        key = (s.steps, handle.loras, repr(run.family_settings), guided, run.cfg)
        notes = speed.levers(stack, handle=handle, pipe=pipe, device=loaded.device,
                             settings=speed_of(s.options), steps=s.steps, state=loaded.speed,
                             split=denoiser_hook.needed(**layout), calibration_key=key)
        run.notes.extend(note for note in notes if note not in run.notes)
        denoised = family.denoise(pipe, job, loaded.device)
        if stopped:  # inside the levers: a cancelled run records no MagCache calibration
            services.check_interrupt()  # raises the host's own interrupt exception
            raise I2VError("the run was cancelled")
    run.notes.extend(note for note in [loaded.speed.compiled.note()] if note and note not in run.notes)
    problem = nonfinite_summary(denoised.video)
    if problem is None and denoised.audio is not None:
        problem = nonfinite_summary(denoised.audio)
    if problem:
        raise NonFiniteError(
            f"the denoised latents contain {problem} (denoiser in {handle.precision}); the denoiser "
            "overflowed: use precision bf16 or fp32, or a lower guidance_scale")
    return denoised


def _denoisers(pipe: Any, handle: ModelHandle) -> list[torch.nn.Module]:
    return [module for name in handle.roles.denoisers if (module := getattr(pipe, name, None)) is not None]


def _decode_checked(family: Family, handle: ModelHandle, loaded: Loaded, latents: Denoised, chunk: int,
                    clip: int) -> torch.Tensor:
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
    vae = getattr(pipe, handle.roles.vae)
    vae.to(torch.float32)
    try:
        frames = family.decode(pipe, latents, chunk, torch.float32)
    finally:
        vae.to(vae_dtype)
    problem = nonfinite_summary(frames)
    if problem:
        raise NonFiniteError(f"the VAE decode of clip {clip} gave {problem} in {vae_dtype} and again "
                             "in fp32: the latents are out of range for this VAE")
    return frames.cpu()


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


def stock_reference(handle: ModelHandle, pipe: Any, image: torch.Tensor, s: SampleSettings,
                    decode_chunk: int = 1) -> StockOutput:
    """Frames (and sound) of a plain stock pipeline call on the first image, with the prompt texts and
    the noise the pack draws for ``s.seed``: what :func:`sample` must return, bit for bit (the oracle
    of the tests and benchmarks)."""
    family = handle.family_impl
    settings = s.options.for_family(handle.family, handle.name) if s.options is not None else None
    noise = family.initial_latents(pipe, handle.variant, [s.seed], s.num_frames, s.height, s.width,
                                   torch.device(handle.device))
    prepared = family.prepare_image(images_to_pil(image)[0], s.width, s.height)
    return family.stock_output(pipe, StockRun(prepared, s.prompt, s.negative_prompt, noise, s.width, s.height,
                                              s.num_frames, s.steps, s.guidance_scale, s.target_fps,
                                              decode_chunk, settings, s.seed, handle.variant))


def _run_report(plan: guard.Plan, s: SampleSettings, clips: int, chunk: int, timings: dict[str, float],
                loads: int) -> str:
    per_step = timings.get("denoise", 0.0) / max(s.steps, 1)
    return (f"I2VSample: {clips} clip(s) of {s.num_frames} frames at {s.width}x{s.height}, {s.steps} steps, "
            f"guidance {s.guidance_scale}, seed {s.seed}; load {timings.get('load', 0):.2f} s "
            f"({'loaded' if loads else 'cached'}), denoise {timings.get('denoise', 0):.2f} s "
            f"({per_step:.3f} s/step), decode {timings.get('decode', 0):.2f} s (chunk {chunk}); "
            f"planned peak {memory.gib(plan.estimate.peak)}")
