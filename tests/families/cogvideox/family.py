"""CogVideoX image-to-video (THUDM/CogVideoX-5b-I2V) through diffusers' stock
``CogVideoXImageToVideoPipeline``: a family kept outside the pack, on the contract alone.

What the pipeline does, and how the family meets the contract:

- the image conditions through the VAE: the pipeline encodes it and takes a *sample* of its latent
  distribution, drawn from the call's generator before the initial noise. A batched call would draw
  every clip's sample from one generator, so clip i could not equal a single run with seed + i: the
  family calls the pipeline once per clip (``pipeline_calls``) with ``torch.Generator("cpu")
  .manual_seed(seed)``, exactly as a plain stock call with that seed would;
- ``initial_latents`` is what that generator draws for the noise after the image's sample, so the pack's
  seed means what the stock pipeline's does; it is laid out ``[clips, C, frames, h, w]`` as the contract
  wants, while the pipeline keeps ``[clips, frames, C, h, w]`` (``call_arguments`` and ``decode`` permute
  at the boundary);
- both CFG halves go through one transformer call per step (``cfg_in_one_call``); progress and cancel
  through ``callback_on_step_end`` and the pipeline's ``_interrupt`` flag;
- decoding happens outside the pipeline (``output_type="latent"``) with the pipeline's own
  ``decode_latents``, so NaNs from a half-precision VAE can be caught and retried; the 3-D VAE decodes
  the whole clip in one call (``chunked_decode`` is off);
- the pipeline has no frame-rate input (CogVideoX 1.0 is not conditioned on it): ``target_fps`` only sets
  the output's rate.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

from i2v_nodes.families.contract.family import CallSettings, Family
from i2v_nodes.families.contract.jobs import Denoised, DenoiseJob, StockOutput, StockRun
from i2v_nodes.families.toolkit.calls import common_arguments
from i2v_nodes.families.toolkit.frames import bridge_vae_encoder, video_to_frames
from tests.families.cogvideox import components
from tests.families.cogvideox.spec import SPEC, TEXT_TOKENS, VARIANT
from tests.families.cogvideox.traces import CogVideoXTraces


class CogVideoXFamily(Family):
    spec = SPEC
    traces = CogVideoXTraces()

    def variant_of(self, index: Mapping[str, Any], configs: Mapping[str, Any],
                   source: str = "") -> str | None:
        if index.get("_class_name") not in self.spec.pipeline_classes:
            return None
        # CogVideoX 1.5 patches time too and pads its latent frames: other rules, not this variant
        return VARIANT if configs.get("transformer", {}).get("patch_size_t") is None else None

    def pipeline_class(self, variant: str = "") -> type:
        from diffusers import CogVideoXImageToVideoPipeline

        return CogVideoXImageToVideoPipeline

    def random_pipeline(self, configs: Mapping[str, Any]) -> Any:
        return components.build(configs)

    def prepare(self, pipe: Any) -> None:
        # the pipeline hands the VAE the image in the model's dtype (the VAE is kept in fp32)
        bridge_vae_encoder(pipe, "transformer")

    def encode_prompt(self, pipe: Any, text: str, device: torch.device) -> torch.Tensor:
        embeds, _ = pipe.encode_prompt(
            prompt=text,
            do_classifier_free_guidance=False,
            num_videos_per_prompt=1,
            max_sequence_length=TEXT_TOKENS,
            device=device,
        )
        return embeds

    def initial_latents(self, pipe, variant, seeds, frames, height, width, device) -> torch.Tensor:
        # What each clip's generator draws for the noise in prepare_latents, after the VAE's sample of the
        # image (drawn in the VAE's dtype); the noise in the prompt embeddings' dtype, as the pipeline does.
        spatial, temporal = pipe.vae_scale_factor_spatial, pipe.vae_scale_factor_temporal
        h, w = height // spatial, width // spatial
        image = (1, pipe.vae.config.latent_channels, 1, h, w)
        shape = (1, (frames - 1) // temporal + 1, pipe.transformer.config.in_channels // 2, h, w)
        noise = []
        for seed in seeds:
            generator = torch.Generator("cpu").manual_seed(seed)
            torch.randn(image, generator=generator, dtype=pipe.vae.dtype)
            noise.append(torch.randn(shape, generator=generator, dtype=pipe.text_encoder.dtype))
        return torch.cat(noise).permute(0, 2, 1, 3, 4).to(device)  # [clips, C, frames, h, w]

    def pipeline_calls(self, clips: int) -> int:
        return clips

    def call_arguments(self, pipe: Any, call: CallSettings) -> dict[str, Any]:
        return {
            **common_arguments(call),
            "latents": call.latents.permute(0, 2, 1, 3, 4),  # the pipeline's [clips, frames, C, h, w]
            "max_sequence_length": TEXT_TOKENS,
        }

    def denoise(self, pipe: Any, job: DenoiseJob, device: torch.device) -> Denoised:
        stopped = []

        def step_end(_pipe, _step, _timestep, _tensors) -> dict:
            if job.step_end is not None and job.step_end():
                pipe._interrupt = True  # the stock loop skips the remaining steps
                stopped.append(True)
            return {}

        videos = []
        for index, seed in enumerate(job.seeds):
            clip = dataclasses.replace(job, latents=job.latents[index:index + 1])
            out = pipe(
                **self.call_arguments(pipe, clip),
                prompt_embeds=job.prompt_embeds,
                negative_prompt_embeds=job.negative_embeds,
                generator=torch.Generator("cpu").manual_seed(seed),
                output_type="latent",
                return_dict=False,
                callback_on_step_end=step_end,
            )
            videos.append(out[0])
            if stopped:  # the cancelled clip is the last one
                break
        return Denoised(torch.cat(videos).permute(0, 2, 1, 3, 4))  # [clips, C, frames, h, w]

    def decode(self, pipe: Any, clip: Denoised, chunk: int, vae_dtype: torch.dtype) -> torch.Tensor:
        latents = clip.video.permute(0, 2, 1, 3, 4).to(vae_dtype)  # back to [1, frames, C, h, w]
        return video_to_frames(pipe.decode_latents(latents))  # [1, 3, F, H, W] -> [F, H, W, 3]

    def stock_output(self, pipe: Any, run: StockRun) -> StockOutput:
        video = pipe(
            **self.call_arguments(pipe, run),
            prompt=run.prompt,
            negative_prompt=run.negative_prompt,
            generator=torch.Generator("cpu").manual_seed(run.seed),
            output_type="pt",
        ).frames
        return StockOutput(video[0].permute(0, 2, 3, 1))


FAMILY = CogVideoXFamily()
