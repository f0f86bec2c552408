"""One stock pipeline call for one image and all its clips, with progress, cancel, the speed levers and
the sampler."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import torch

from i2v_nodes.errors import I2VError, NonFiniteError
from i2v_nodes.families.contract.family import Family
from i2v_nodes.families.contract.jobs import Denoised, DenoiseJob, Keyframe
from i2v_nodes.runtime import speed
from i2v_nodes.runtime.loading.handle import ModelHandle
from i2v_nodes.runtime.loading.precision import nonfinite_summary
from i2v_nodes.runtime.memory import guard
from i2v_nodes.runtime.options import sampler_of, speed_of
from i2v_nodes.runtime.sampling import denoiser_hook, samplers
from i2v_nodes.runtime.sampling.loaded import Loaded
from i2v_nodes.runtime.sampling.settings import SampleSettings, cfg_steps
from i2v_nodes.runtime.services import HostServices


@dataclass(frozen=True)
class SampleRun:
    """One I2VSample call, resolved: what every image's pipeline call shares."""

    handle: ModelHandle
    settings: SampleSettings
    family_settings: Any
    plan: guard.Plan
    seeds: list[int]
    services: HostServices
    progress: Any
    notes: list[str] = field(default_factory=list)  # what the speed settings did, for the report
    timings: dict[str, float] = field(default_factory=dict)  # seconds: load, lora, denoise, decode
    # I2VExtend: the frames (uint8 [k, H, W, 3]) a segment continues from through the family's video
    # conditioning (its ``continuation``); None: the image conditions the run
    continue_from: Any = None

    @property
    def cfg(self) -> bool:
        return self.handle.family.uses_cfg(self.settings.guidance_scale, self.family_settings)

    @property
    def sampler(self) -> str:
        return sampler_of(self.settings.options).sampler


def pipeline_calls(family: Family, sampler: str, clips: int) -> int:
    """Stock pipeline calls (step loops) for one image's clips: what progress counts the steps of."""
    return clips if samplers.draws_noise(sampler) else family.pipeline_calls(clips)


def denoise_image(run: SampleRun, loaded: Loaded, image: Any, prompt: torch.Tensor,
                  negative: torch.Tensor | None, keyframes: tuple[Keyframe, ...] = ()) -> Denoised:
    """The stock pipeline for one image (and its ``keyframes``: an end image) and all its clips, with
    progress and cancel: one call, or one per clip with a sampler that draws noise each step (each
    clip's from its own seed, so a clip of a batch still equals a single run with its seed)."""
    if samplers.draws_noise(run.sampler) and len(run.seeds) > 1:
        return _joined([_denoise(run, loaded, (image, keyframes), prompt, negative, [seed])
                        for seed in run.seeds])
    return _denoise(run, loaded, (image, keyframes), prompt, negative, run.seeds)


def _denoise(run: SampleRun, loaded: Loaded, images: tuple[Any, tuple[Keyframe, ...]], prompt: torch.Tensor,
             negative: torch.Tensor | None, seeds: list[int]) -> Denoised:
    """One stock pipeline call for ``seeds``' clips of one image and its keyframes."""
    image, keyframes = images
    handle, s, services, options = run.handle, run.settings, run.services, run.plan.options
    family, pipe = handle.family, loaded.pipeline
    services.check_interrupt()
    stopped: list[bool] = []

    def step_end() -> bool:  # the pipeline's step callback: count the step, stop on a cancel request
        run.progress.update(1)
        if services.interrupt_requested():
            stopped.append(True)
        return bool(stopped)

    guided = cfg_steps(s)
    noise = family.initial_latents(pipe, handle.variant, seeds, s.num_frames, s.height, s.width,
                                   loaded.device)
    job = DenoiseJob(image=image, prompt_embeds=prompt, negative_embeds=negative, latents=noise,
                     width=s.width, height=s.height, num_frames=s.num_frames, steps=s.steps,
                     guidance_scale=s.guidance_scale, target_fps=s.target_fps, options=run.family_settings,
                     step_end=step_end if family.spec.uses_step_callback else None, seeds=tuple(seeds),
                     variant=handle.variant, cfg_steps=guided, keyframes=keyframes)
    halves = 2 if run.cfg and family.spec.cfg_in_one_call else 1
    # clips per stock pipeline call: a family that loops over its clips calls with one at a time
    clips = len(seeds) // family.pipeline_calls(len(seeds))
    layout = {"clips": clips, "halves": halves, "clips_per_call": options.clips_per_call,
              "split_halves": options.split_cfg and halves == 2}
    with ExitStack() as stack:
        if not family.spec.uses_step_callback:  # one denoiser call per step: the hook counts and cancels
            stack.enter_context(denoiser_hook.hooked(denoisers_of(pipe, handle), **layout,
                                                     before_call=services.check_interrupt,
                                                     after_call=run.progress.update))
        elif denoiser_hook.needed(**layout):
            stack.enter_context(denoiser_hook.hooked(denoisers_of(pipe, handle), **layout))
        # MagCache's calibration holds per-step ratios: another sampler steps other timesteps
        key = (s.steps, handle.loras, repr(run.family_settings), guided, run.cfg, run.sampler)
        notes = speed.levers(stack, handle=handle, pipe=pipe, device=loaded.device,
                             settings=speed_of(s.options), steps=s.steps, state=loaded.speed,
                             split=denoiser_hook.needed(**layout), calibration_key=key)
        notes.append(stack.enter_context(samplers.using(pipe, name=run.sampler, seeds=seeds)))
        run.notes.extend(note for note in notes if note and note not in run.notes)
        denoised = family.denoise(_conditioned(run, pipe), job, loaded.device)
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


def _conditioned(run: SampleRun, pipe: Any) -> Any:
    """The pipeline this call runs: the loaded one, or for a segment that continues from frames, the
    family's video-conditioned pipeline on the same components (made now, with the sampler set)."""
    if run.continue_from is None:
        return pipe
    return run.handle.family.continuation.pipeline(pipe, run.continue_from)


def _joined(parts: list[Denoised]) -> Denoised:
    """Clips denoised one call at a time, as one batch."""
    audio = torch.cat([part.audio for part in parts]) if parts[0].audio is not None else None
    extras = {name: torch.cat([part.extras[name] for part in parts]) for name in parts[0].extras}
    return Denoised(torch.cat([part.video for part in parts]), audio, extras)


def denoisers_of(pipe: Any, handle: ModelHandle) -> list[torch.nn.Module]:
    return [module for name in handle.roles.denoisers if (module := getattr(pipe, name, None)) is not None]
