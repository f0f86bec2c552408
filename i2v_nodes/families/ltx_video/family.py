"""LTX-Video 0.9.x image-to-video through diffusers' stock pipelines.

Every LTX-Video release is one model for text- and image-to-video (its folders are saved as
``LTXPipeline`` or ``LTXConditionPipeline``), so the release picks the pipeline:

- ``ltx-video-0.9.1``: 0.9.0 and 0.9.1 (the older VAE), through ``LTXImageToVideoPipeline``;
- ``ltx-video``: 0.9.5 and later dev releases (2B and 13B), through ``LTXConditionPipeline``, the
  image as a condition on frame 0;
- ``ltx-video-distilled``: the guidance- and timestep-distilled releases (0.9.7, 0.9.8): the same
  pipeline at 8 steps without guidance, on the timesteps the release was distilled for. Their
  configs are the dev ones, so the name tells them apart (hub id, or "distilled" in the folder path).

These pipelines draw noise from the generator well past the initial latents (the VAE's sample of the
image, the conditioning noise of every step, the decode noise of the timestep-aware VAE). Only a
generator per clip keeps each clip equal to a stock call with its seed, so the pack calls the
stock pipeline once per clip (``pipeline_calls``) with ``torch.Generator("cpu").manual_seed(seed)``,
and draws the decode noise from the same generator after the loop, exactly as the stock code does.

ComfyUI's own files (a checkpoint with the transformer and the VAE, the T5 XXL text encoder) load
through :mod:`.files` (what a file is, from its header), :mod:`.load` and
:mod:`.write` (the tiny models as such files), into the same stock pipelines.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from i2v_nodes.errors import InputError
from i2v_nodes.families.contract.family import CallSettings, Family
from i2v_nodes.families.contract.files import SingleFiles
from i2v_nodes.families.contract.jobs import Denoised, DenoiseJob, PromptEncoding, StockOutput, StockRun
from i2v_nodes.families.contract.traces import MemoryTraces
from i2v_nodes.families.ltx_video import components, conditions, files, load, write
from i2v_nodes.families.ltx_video.configs import BLOCK_095, DEV, DISTILLED, LEGACY
from i2v_nodes.families.ltx_video.continuation import CONTINUATION
from i2v_nodes.families.ltx_video.spec import (
    CONDITION,
    CONDITION_ONLY,
    DISTILLED_TIMESTEPS,
    OPTION_INPUTS,
    OWN,
    RULES,
    SPEC,
    TEXT_TOKENS,
    LTXVideoSettings,
)
from i2v_nodes.families.ltx_video.tiers import TIERS
from i2v_nodes.families.toolkit.frames import bridge_vae_encoder, video_to_frames
from i2v_nodes.families.toolkit.options import with_own
from i2v_nodes.lazy import torch

FILES = SingleFiles(
    description=("ComfyUI's LTX-Video 0.9.x files: checkpoints (transformer and VAE), transformers, "
                 "LTX-Video VAEs, T5 v1.1 XXL text encoders"),
    identify=files.identify,
    assemble=files.assemble,
    load=load.load_pipeline,
    tokenizer_check=load.check_tokenizer,
    write=write.write_files,
    formats=write.FORMATS,
    gguf=files.GGUF_DESCRIPTION,
)


class LTXVideoFamily(Family):
    spec = SPEC
    traces_file = Path(__file__).with_name("traces.py")
    tiers = TIERS
    files = FILES
    continuation = CONTINUATION

    @functools.cached_property
    def traces(self) -> MemoryTraces:
        from i2v_nodes.families.ltx_video.traces import (
            LTXVideoTraces,  # builds models on the meta device: torch
        )

        return LTXVideoTraces()

    def variant_of(self, index: Mapping[str, Any], configs: Mapping[str, Any],
                   source: str = "") -> str | None:
        if index.get("_class_name") not in self.spec.pipeline_classes:
            return None
        if BLOCK_095 not in configs.get("vae", {}).get("down_block_types", (BLOCK_095,)):
            return LEGACY
        return DISTILLED if "distilled" in source.lower() else DEV

    def prepare(self, pipe: Any) -> None:
        bridge_vae_encoder(pipe, "transformer")  # an fp32 VAE beside a bf16 model (the default)

    def pipeline_class(self, variant: str = "") -> type:
        from diffusers import LTXConditionPipeline, LTXImageToVideoPipeline

        return LTXImageToVideoPipeline if variant == LEGACY else LTXConditionPipeline

    def encode_prompt(self, pipe: Any, text: str, device: torch.device) -> PromptEncoding:
        embeds, mask, _, _ = pipe.encode_prompt(
            prompt=text,
            do_classifier_free_guidance=False,
            num_videos_per_prompt=1,
            max_sequence_length=_text_tokens(pipe),
            device=device,
        )
        return PromptEncoding(embeds, mask)

    def initial_latents(self, pipe, variant, seeds, frames, height, width, device) -> torch.Tensor:
        # What each clip's generator draws first. The pipeline draws it itself from the same seed
        # (see the module docstring); this is the noise the pack's seed stands for.
        rules = RULES[variant]
        shape = (1, pipe.transformer.config.in_channels, rules.latent_frames(frames),
                 height // rules.vae_spatial, width // rules.vae_spatial)
        noise = [torch.randn(shape, generator=torch.Generator("cpu").manual_seed(s)) for s in seeds]
        return torch.cat(noise).to(device)

    def pipeline_calls(self, clips: int) -> int:
        return clips

    def denoise(self, pipe: Any, job: DenoiseJob, device: torch.device) -> Denoised:
        settings = with_own(job.options, OWN[job.variant])
        stopped = []

        def step_end(_pipe, _step, _timestep, _tensors) -> dict:
            if job.step_end is not None and job.step_end():
                pipe._interrupt = True  # the stock loop skips the remaining steps
                stopped.append(True)
            return {}

        videos, extras = [], []
        for seed in job.seeds:
            generator = torch.Generator("cpu").manual_seed(seed)
            negative = job.negative_embeds
            out = pipe(
                **self.call_arguments(pipe, job),
                prompt_embeds=job.prompt_embeds.embeds,
                prompt_attention_mask=job.prompt_embeds.mask,
                negative_prompt_embeds=negative.embeds if negative is not None else None,
                negative_prompt_attention_mask=negative.mask if negative is not None else None,
                generator=generator,
                output_type="latent",
                return_dict=False,
                callback_on_step_end=step_end,
            )
            dtype = job.prompt_embeds.embeds.dtype
            latents, timestep = _decode_inputs(pipe, _unpacked(pipe, out[0], job), dtype, generator, settings)
            videos.append(latents)
            extra = {"seed": torch.tensor([seed])}  # the decoder's own noise (0.9.1) is seeded from it
            if timestep is not None:
                extra["timestep"] = timestep
            extras.append(extra)
            if stopped:
                break
        joined = {name: torch.cat([extra[name] for extra in extras]) for name in extras[0]}
        return Denoised(torch.cat(videos), extras=joined)

    def decode(self, pipe: Any, clip: Denoised, chunk: int, vae_dtype: torch.dtype) -> torch.Tensor:
        timestep = clip.extras.get("timestep")
        if timestep is not None:
            timestep = timestep.to(vae_dtype)
        with _decoder_noise(int(clip.extras["seed"][0])):
            video = pipe.vae.decode(clip.video.to(vae_dtype), timestep, return_dict=False)[0]
        return video_to_frames(video)

    def stock_output(self, pipe: Any, run: StockRun) -> StockOutput:
        settings = with_own(run.options, OWN[run.variant])
        with _decoder_noise(run.seed):  # the stock call's only global-RNG draws are the decoder's noise
            video = pipe(
                **self.call_arguments(pipe, run),
                prompt=run.prompt,
                negative_prompt=run.negative_prompt,
                generator=torch.Generator("cpu").manual_seed(run.seed),
                decode_timestep=settings.decode_timestep,
                decode_noise_scale=settings.decode_noise_scale,
                output_type="pt",
            ).frames
        return StockOutput(video[0].permute(0, 2, 3, 1))

    def make_options(self, values: Mapping[str, Any]) -> LTXVideoSettings:
        for name, (_kind, spec) in OPTION_INPUTS.items():
            value = values.get(name, spec["default"])
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    value == -1 or 0 <= value <= spec["max"]):
                raise InputError(name, f"expected -1 (the model's own) or a number from 0 to {spec['max']}, "
                                       f"got {value!r}")
        return LTXVideoSettings(**{name: float(values.get(name, -1.0)) for name in OPTION_INPUTS})

    def check_options(self, variant: str, options: Any) -> None:
        if options is None:
            return
        if not isinstance(options, LTXVideoSettings):
            raise InputError("options", f"expected LTX-Video settings, got {type(options).__name__}")
        if variant == LEGACY:
            used = [name for name in CONDITION_ONLY if getattr(options, name) != -1]
            if used:
                raise InputError("options", f"{' and '.join(used)} condition the image the way LTX-Video "
                                            f"0.9.5 and later do; this model ({variant}) cannot use them: "
                                            "set -1")

    def random_pipeline(self, configs) -> Any:
        return components.build(configs)

    def call_arguments(self, pipe: Any, call: CallSettings) -> dict[str, Any]:
        settings = with_own(call.options, OWN[call.variant])
        return {
            **conditions.image_arguments(call, settings.image_strength),
            "height": call.height,
            "width": call.width,
            "num_frames": call.num_frames,
            "frame_rate": call.target_fps,
            "num_inference_steps": call.steps,
            "guidance_scale": call.guidance_scale,
            "max_sequence_length": _text_tokens(pipe),
            **_call_settings(pipe, call.variant, call.steps, settings),
        }


FAMILY = LTXVideoFamily()


# --- helpers -------------------------------------------------------------------------------------


@contextmanager
def _decoder_noise(seed: int) -> Iterator[None]:
    """The 0.9.1 VAE decoder injects noise from the global RNG (no generator reaches it): seed it from
    the clip's seed for the decode, so clips reproduce, without touching the caller's RNG state."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _text_tokens(pipe: Any) -> int:
    return TEXT_TOKENS[DEV if type(pipe).__name__ == CONDITION else LEGACY]




def _call_settings(pipe: Any, variant: str, steps: int, settings: LTXVideoSettings) -> dict[str, Any]:
    """The keyword arguments the variant and its settings add to a stock call."""
    kwargs: dict[str, Any] = {"guidance_rescale": settings.guidance_rescale}
    if type(pipe).__name__ == CONDITION:
        kwargs["image_cond_noise_scale"] = settings.image_noise_scale
        kwargs["strength"] = settings.image_strength
    if variant == DISTILLED and steps == len(DISTILLED_TIMESTEPS):
        kwargs["timesteps"] = list(DISTILLED_TIMESTEPS)
    return kwargs


def _unpacked(pipe: Any, latents: torch.Tensor, job: DenoiseJob) -> torch.Tensor:
    """[1, C, f, h, w] latents (LTXImageToVideoPipeline returns them packed as tokens)."""
    if latents.dim() == 5:
        return latents
    rules = RULES[job.variant]
    return pipe._unpack_latents(latents, rules.latent_frames(job.num_frames), job.height // rules.vae_spatial,
                                job.width // rules.vae_spatial, pipe.transformer_spatial_patch_size,
                                pipe.transformer_temporal_patch_size)


def _decode_inputs(pipe: Any, latents: torch.Tensor, dtype: torch.dtype, generator: torch.Generator,
                   settings: LTXVideoSettings) -> tuple[torch.Tensor, torch.Tensor | None]:
    """What the stock pipeline hands its VAE after the loop: un-normalised latents, for a timestep-aware
    VAE mixed with decode noise from the clip's generator, and the decode timestep."""
    from diffusers.utils.torch_utils import randn_tensor

    vae = pipe.vae
    latents = pipe._denormalize_latents(latents, vae.latents_mean, vae.latents_std, vae.config.scaling_factor)
    latents = latents.to(dtype)
    if not vae.config.timestep_conditioning:
        return latents, None
    noise = randn_tensor(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
    timestep = torch.tensor([settings.decode_timestep], device=latents.device, dtype=latents.dtype)
    scale = torch.tensor([settings.decode_noise_scale], device=latents.device, dtype=latents.dtype)
    scale = scale[:, None, None, None, None]
    return (1 - scale) * latents + scale * noise, timestep
