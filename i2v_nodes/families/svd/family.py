"""Stable Video Diffusion image-to-video through diffusers' stock ``StableVideoDiffusionPipeline``.

Two variants, one pipeline: ``svd`` (stable-video-diffusion-img2vid, trained on 14 frames) and
``svd-xt`` (img2vid-xt and img2vid-xt-1-1, 25 frames); the UNet's ``num_frames`` tells them apart.

What sets SVD apart from the other families, and how the pack handles it:

- no text at all: the image (its CLIP embedding and its VAE latents) is the only conditioning, so
  the family says it takes no prompt (``takes_prompt``); the engine encodes none and the report says
  the prompt inputs were ignored;
- its guidance ramps linearly over the frames, from ``min_guidance_scale`` on the first to
  I2VSample's ``guidance_scale`` (the pipeline's ``max_guidance_scale``) on the last; the motion
  bucket, the noise augmentation of the image and the ramp's start come from the SVDOptions node,
  and I2VSample's ``target_fps`` is the fps conditioning;
- the pipeline draws from its generator before the initial latents (the noise augmentation of the
  image), so a batched call cannot give clip i the noise of a single run with seed + i: the pack
  calls the pipeline once per clip (``pipeline_calls``) with ``torch.Generator("cpu").manual_seed``
  of the clip's seed, exactly as a plain stock call would;
- the pipeline has a step callback but no ``interrupt`` flag: a cancel raises a private exception
  from the callback, which ``denoise`` catches, so the run stops within one step;
- decoding happens outside the pipeline (``output_type="latent"``) with the temporal decoder in the
  VAE's own dtype (fp32 by default: it overflows in fp16, where the engine's NaN retry catches it),
  ``decode_chunk_size`` frames per call; the temporal decoder mixes the frames of one call, so the
  chunk changes the frames (a little), not only memory. The VAE has no tiled mode (``vae_tiling``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from i2v_nodes.errors import InputError
from i2v_nodes.families.contract.family import CallSettings, Family
from i2v_nodes.families.contract.files import LoadSpec
from i2v_nodes.families.contract.jobs import Denoised, DenoiseJob, StepCancelled, StockOutput, StockRun
from i2v_nodes.families.contract.traces import MemoryTraces
from i2v_nodes.families.svd import components
from i2v_nodes.families.svd.configs import SVD, SVD_XT, XT_FRAMES
from i2v_nodes.families.svd.spec import OPTION_INPUTS, OWN, ROLES, SPEC, SVDSettings
from i2v_nodes.families.svd.tiers import TIERS
from i2v_nodes.families.toolkit.frames import video_to_frames
from i2v_nodes.families.toolkit.options import check_own_or_range, with_own
from i2v_nodes.lazy import torch


class SVDFamily(Family):
    spec = SPEC
    traces_file = Path(__file__).with_name("traces.py")
    tiers = TIERS

    @functools.cached_property
    def traces(self) -> MemoryTraces:
        from i2v_nodes.families.svd.traces import SVDTraces  # builds models on the meta device: torch

        return SVDTraces()

    def variant_of(self, index: Mapping[str, Any], configs: Mapping[str, Any],
                   source: str = "") -> str | None:
        if index.get("_class_name") not in self.spec.pipeline_classes:
            return None
        frames = configs.get("unet", {}).get("num_frames", XT_FRAMES)
        return SVD_XT if frames >= XT_FRAMES else SVD

    def pipeline_class(self, variant: str = "") -> type:
        from diffusers import StableVideoDiffusionPipeline

        return StableVideoDiffusionPipeline

    def load_kwargs(self, source: str, local: bool, spec: LoadSpec) -> dict[str, Any]:
        # Stability's repos ship fp16 files beside the fp32 ones: half the bytes to read
        if spec.dtype != torch.float16:
            return {}
        if not local:
            return {"variant": "fp16"} if source in self.hub_ids else {}
        return {"variant": "fp16"} if _has_fp16_files(Path(source)) else {}

    def encode_prompt(self, pipe: Any, text: str, device: torch.device) -> torch.Tensor:
        raise NotImplementedError("Stable Video Diffusion takes no prompt (takes_prompt is False)")

    def uses_cfg(self, guidance_scale: float, options: Any = None) -> bool:
        # The pipeline decides on guidance from max_guidance_scale alone when it encodes the image,
        # but from the whole ramp in the loop: a ramp starting above 1 with guidance_scale at 1 or
        # less would break it. Refused here, the first place that sees both, before anything loads.
        start = with_own(options, OWN).min_guidance_scale
        if start > 1 >= guidance_scale:
            raise InputError("min_guidance_scale", f"{start} needs guidance above 1: the guidance ramps from "
                                                   "min_guidance_scale on the first frame to guidance_scale "
                                                   f"on the last, and guidance_scale {guidance_scale} turns "
                                                   "guidance off; raise guidance_scale or set "
                                                   "min_guidance_scale to 1 or less")
        return guidance_scale > 1

    def initial_latents(self, pipe, variant, seeds, frames, height, width, device) -> torch.Tensor:
        # What each clip's generator draws for the latents, after the image's noise augmentation.
        # The pipeline draws both itself from the same seed (see the module docstring); this is the
        # noise the pack's seed stands for, laid out [clips, C, frames, h, w].
        dtype = pipe.image_encoder.dtype
        scale = pipe.vae_scale_factor
        shape = (1, frames, pipe.unet.config.in_channels // 2, height // scale, width // scale)
        noise = []
        for seed in seeds:
            generator = torch.Generator("cpu").manual_seed(seed)
            torch.randn((1, 3, height, width), generator=generator)  # the image's noise augmentation
            noise.append(torch.randn(shape, generator=generator, dtype=dtype))
        return torch.cat(noise).permute(0, 2, 1, 3, 4).to(device)

    def pipeline_calls(self, clips: int) -> int:
        return clips

    def denoise(self, pipe: Any, job: DenoiseJob, device: torch.device) -> Denoised:
        def step_end(_pipe, _step, _timestep, tensors) -> dict:
            if job.step_end is not None and job.step_end():
                raise StepCancelled(tensors["latents"])
            return {}

        videos = []
        for seed in job.seeds:
            try:
                latents = pipe(
                    **self.call_arguments(pipe, job),
                    generator=torch.Generator("cpu").manual_seed(seed),
                    output_type="latent",
                    return_dict=False,
                    callback_on_step_end=step_end,
                )
            except StepCancelled as cancel:
                pipe.maybe_free_model_hooks()  # what the pipeline does at its end, for offload modes
                videos.append(cancel.latents)
                break
            videos.append(latents)
        # the pipeline keeps latents [clips, frames, C, h, w]; the contract is [clips, C, frames, h, w]
        return Denoised(torch.cat(videos).permute(0, 2, 1, 3, 4))

    def decode(self, pipe: Any, clip: Denoised, chunk: int, vae_dtype: torch.dtype) -> torch.Tensor:
        latents = clip.video.permute(0, 2, 1, 3, 4).to(vae_dtype)
        video = pipe.decode_latents(latents, num_frames=latents.shape[1], decode_chunk_size=chunk)
        return video_to_frames(video)  # [1, 3, F, H, W] -> [F, H, W, 3]

    def stock_output(self, pipe: Any, run: StockRun) -> StockOutput:
        video = pipe(
            **self.call_arguments(pipe, run),
            generator=torch.Generator("cpu").manual_seed(run.seed),
            decode_chunk_size=run.decode_chunk,
            output_type="pt",
        ).frames
        return StockOutput(video[0].permute(0, 2, 3, 1))

    def make_options(self, values: Mapping[str, Any]) -> SVDSettings:
        for name, (kind, spec) in OPTION_INPUTS.items():
            check_own_or_range(name, kind, values.get(name, spec["default"]), spec["max"])
        own = SVDSettings()
        return SVDSettings(
            motion_bucket_id=int(values.get("motion_bucket_id", own.motion_bucket_id)),
            noise_aug_strength=float(values.get("noise_aug_strength", own.noise_aug_strength)),
            min_guidance_scale=float(values.get("min_guidance_scale", own.min_guidance_scale)),
        )

    def check_options(self, variant: str, options: Any) -> None:
        if options is not None and not isinstance(options, SVDSettings):
            raise InputError("options",
                             f"expected Stable Video Diffusion settings, got {type(options).__name__}")

    def random_pipeline(self, configs: Mapping[str, Any]) -> Any:
        return components.build(configs)

    def call_arguments(self, pipe: Any, call: CallSettings) -> dict[str, Any]:
        settings = with_own(call.options, OWN)
        return {
            "image": call.image,
            "width": call.width,
            "height": call.height,
            "num_frames": call.num_frames,
            "num_inference_steps": call.steps,
            "min_guidance_scale": settings.min_guidance_scale,
            "max_guidance_scale": call.guidance_scale,
            "fps": call.target_fps,  # the pipeline conditions on fps - 1, as the models were trained
            "motion_bucket_id": settings.motion_bucket_id,
            "noise_aug_strength": settings.noise_aug_strength,
        }


FAMILY = SVDFamily()


# --- helpers -------------------------------------------------------------------------------------






def _has_fp16_files(root: Path) -> bool:
    """Use the ``fp16`` weight files when every weighted component ships them."""
    components = [d for d in ROLES.weighted if (root / d).is_dir()]
    return bool(components) and all(any((root / d).glob("*.fp16.safetensors")) for d in components)
