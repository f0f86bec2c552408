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

import dataclasses
import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from i2v_nodes.errors import InputError
from i2v_nodes.family_kit import tiny
from i2v_nodes.runtime.families.base import (
    Denoised,
    DenoiseJob,
    Family,
    LoadSpec,
    Roles,
    Rules,
    StepCancelled,
    StockOutput,
    StockRun,
    Trace,
    meta_module,
    meta_transformers_model,
    meta_vae,
)
from i2v_nodes.runtime.families.i2vgen_xl import video_to_frames
from i2v_nodes.runtime.families.svd_configs import PUBLISHED, SVD, SVD_XT, TINY, VARIANT_OF_HUB, XT_FRAMES

_SVD_RULES = Rules(
    size_multiple=8,
    vae_spatial=8,
    vae_temporal=1,
    latent_channels=4,
    frame_step=1,
    min_frames=2,
    max_frames=128,
    trained_frames=14,
    default_width=1024,
    default_height=576,
    default_frames=14,
    default_fps=7,  # the pipeline's default: the UNet is conditioned on fps - 1 = 6
    default_steps=25,
    default_guidance=3.0,  # the pipeline's max_guidance_scale
    default_precision="fp16",
)
RULES = {
    SVD: _SVD_RULES,
    SVD_XT: dataclasses.replace(_SVD_RULES, trained_frames=XT_FRAMES, default_frames=XT_FRAMES),
}
ROLES = Roles(denoisers=("unet",), encoders=("image_encoder",))
MAX_MOTION_BUCKET = 255  # motion buckets the models were trained with


@dataclass(frozen=True)
class SVDSettings:
    """What the SVDOptions node sets; -1 means "the model's own value" (see :data:`OWN`)."""

    motion_bucket_id: int = -1
    noise_aug_strength: float = -1.0
    min_guidance_scale: float = -1.0


# The stock pipeline's defaults, which the diffusers examples run every checkpoint with. (Stability's
# own sampling configs start the XT models' guidance ramp at 1.5, the 14-frame model's at 1.0.)
OWN = SVDSettings(motion_bucket_id=127, noise_aug_strength=0.02, min_guidance_scale=1.0)


class StableVideoDiffusion(Family):
    name = "svd"
    title = "SVD"
    pipeline_classes = ("StableVideoDiffusionPipeline",)
    hub_variants = VARIANT_OF_HUB
    published = PUBLISHED
    tiny = TINY
    options_node = "SVDOptions"
    cfg_in_one_call = True  # one UNet call per step holds both CFG halves, unconditional rows first
    takes_prompt = False  # the image is the only conditioning
    vae_tiling = False  # AutoencoderKLTemporalDecoder has no tiled mode

    # -- identity -----------------------------------------------------------------------------

    def variant_of(self, index: Mapping[str, Any], configs: Mapping[str, Any],
                   source: str = "") -> str | None:
        if index.get("_class_name") not in self.pipeline_classes:
            return None
        frames = configs.get("unet", {}).get("num_frames", XT_FRAMES)
        return SVD_XT if frames >= XT_FRAMES else SVD

    def rules(self, variant: str) -> Rules:
        return RULES[variant]

    def roles(self, variant: str) -> Roles:
        return ROLES

    # -- configurations and tiny models -------------------------------------------------------

    def meta_component(self, role: str, config_json: str, dtype: torch.dtype) -> torch.nn.Module:
        return _meta_component(role, config_json, dtype)

    def random_pipeline(self, configs: Mapping[str, Any]) -> Any:
        return build(configs)

    # -- loading and sampling -----------------------------------------------------------------

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
        start = _settings(options).min_guidance_scale
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
        settings = _settings(job.options)

        def step_end(_pipe, _step, _timestep, tensors) -> dict:
            if job.step_end is not None and job.step_end():
                raise StepCancelled(tensors["latents"])
            return {}

        videos = []
        for seed in job.seeds:
            try:
                latents = pipe(
                    **_call_arguments(job.image, job.width, job.height, job.num_frames, job.steps,
                                      job.guidance_scale, job.target_fps, settings),
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
        settings = _settings(run.options)
        video = pipe(
            **_call_arguments(run.image, run.width, run.height, run.num_frames, run.steps, run.guidance_scale,
                              run.target_fps, settings),
            generator=torch.Generator("cpu").manual_seed(run.seed),
            decode_chunk_size=run.decode_chunk,
            output_type="pt",
        ).frames
        return StockOutput(video[0].permute(0, 2, 3, 1))

    # -- options --------------------------------------------------------------------------------

    def option_inputs(self) -> dict[str, tuple[str, dict[str, Any]]]:
        own = " -1 = the model's own ({})."
        return {
            "motion_bucket_id": ("INT", {
                "default": -1, "min": -1, "max": MAX_MOTION_BUCKET,
                "tooltip": "How much motion, 0-255: higher moves more (camera and subject); too high "
                           "breaks the picture up." + own.format(OWN.motion_bucket_id)}),
            "noise_aug_strength": ("FLOAT", {
                "default": -1.0, "min": -1.0, "max": 1.0, "step": 0.01,
                "tooltip": "Noise added to the input image before it conditions the video: more lets the "
                           "video move away from the image (more motion, less likeness). Also raise it "
                           "for images larger than the output." + own.format(OWN.noise_aug_strength)}),
            "min_guidance_scale": ("FLOAT", {
                "default": -1.0, "min": -1.0, "max": 100.0, "step": 0.1,
                "tooltip": "Guidance on the first frame: it ramps linearly to I2VSample's guidance_scale "
                           "on the last. Stability's own settings start the XT models at 1.5."
                           + own.format(OWN.min_guidance_scale)}),
        }

    def make_options(self, values: Mapping[str, Any]) -> SVDSettings:
        for name, (kind, spec) in self.option_inputs().items():
            _check_option(name, kind, values.get(name, spec["default"]), spec["max"])
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

    # -- memory traces ------------------------------------------------------------------------

    def denoiser_trace(self, variant, configs, dtype, rows, frames, height, width, full_depth=False) -> Trace:
        unet = _meta_component("unet", _config_of(configs, "unet"), dtype)
        scale = RULES[variant].vae_spatial
        with torch.device("meta"):
            sample = torch.empty(rows, frames, unet.config.in_channels, height // scale, width // scale,
                                 dtype=dtype)
            timestep = torch.empty((), dtype=torch.float32)  # continuous (EDM) timesteps
            kwargs = {
                "encoder_hidden_states": torch.empty(rows, 1, unet.config.cross_attention_dim, dtype=dtype),
                "added_time_ids": torch.empty(rows, 3, dtype=dtype),  # fps, motion bucket, noise
                "return_dict": False,
            }
        return Trace(unet, (sample, timestep), kwargs)

    def vae_trace(self, variant, configs, dtype, direction, frames, height, width, tiling) -> Trace:
        # no tiled mode: tiling changes nothing (vae_tiling is False, so nothing asks for it)
        vae = _meta_component("vae", _config_of(configs, "vae"), dtype)
        scale = RULES[variant].vae_spatial
        with torch.device("meta"):
            if direction == "decode":  # one chunk of frames per call, decoded together
                latents = torch.empty(frames, vae.config.latent_channels, height // scale, width // scale,
                                      dtype=dtype)
                return Trace(vae.decode, (latents, frames), {"return_dict": False})
            image = torch.empty(1, 3, height, width, dtype=dtype)  # the input image, once per clip
        return Trace(vae.encode, (image,), {"return_dict": False})

    def encoder_traces(self, variant, configs, dtype) -> list[Trace]:
        encoder = _meta_component("image_encoder", _config_of(configs, "image_encoder"), dtype)
        side = encoder.config.image_size
        with torch.device("meta"):
            pixels = torch.empty(1, 3, side, side, dtype=dtype)
        return [Trace(encoder, (pixels,))]


FAMILY = StableVideoDiffusion()


# --- helpers -------------------------------------------------------------------------------------


def _settings(options: SVDSettings | None) -> SVDSettings:
    """The options with every -1 replaced by the model's own value."""
    if options is None:
        return OWN
    return SVDSettings(**{f.name: getattr(OWN, f.name) if getattr(options, f.name) == -1
                          else getattr(options, f.name) for f in dataclasses.fields(options)})


def _call_arguments(image: Any, width: int, height: int, frames: int, steps: int, guidance: float, fps: int,
                    settings: SVDSettings) -> dict[str, Any]:
    """The keyword arguments the pack's call and the plain stock call share."""
    return {
        "image": image,
        "width": width,
        "height": height,
        "num_frames": frames,
        "num_inference_steps": steps,
        "min_guidance_scale": settings.min_guidance_scale,
        "max_guidance_scale": guidance,
        "fps": fps,  # the pipeline conditions on fps - 1, as the models were trained
        "motion_bucket_id": settings.motion_bucket_id,
        "noise_aug_strength": settings.noise_aug_strength,
    }


def _check_option(name: str, kind: str, value: object, high: float) -> None:
    """Raise InputError unless ``value`` is -1 (the model's own) or in 0..high (whole for INT)."""
    number = isinstance(value, int) if kind == "INT" else isinstance(value, (int, float))
    if isinstance(value, bool) or not number or not math.isfinite(value) \
            or not (value == -1 or 0 <= value <= high):
        whole = "a whole number" if kind == "INT" else "a number"
        raise InputError(name, f"expected -1 (the model's own) or {whole} from 0 to {high:g}, got {value!r}")


def _config_of(configs: str, role: str) -> str:
    return json.dumps(json.loads(configs)[role], sort_keys=True)


def _has_fp16_files(root: Path) -> bool:
    """Use the ``fp16`` weight files when every weighted component ships them."""
    components = [d for d in ROLES.weighted if (root / d).is_dir()]
    return bool(components) and all(any((root / d).glob("*.fp16.safetensors")) for d in components)


@functools.lru_cache(maxsize=32)
def _meta_component(role: str, config_json: str, dtype: torch.dtype) -> torch.nn.Module:
    config = json.loads(config_json)
    if role == "unet":
        from diffusers import UNetSpatioTemporalConditionModel

        return _all_meta(meta_module(UNetSpatioTemporalConditionModel, config, dtype))
    if role == "vae":
        from diffusers import AutoencoderKLTemporalDecoder

        return _all_meta(meta_vae(AutoencoderKLTemporalDecoder, config_json, dtype, False))
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    return meta_transformers_model(CLIPVisionModelWithProjection, CLIPVisionConfig, config, dtype)


def _all_meta(module: torch.nn.Module) -> torch.nn.Module:
    """The spatio-temporal blocks' mix factors are made with ``torch.Tensor([alpha])``, which ignores the
    meta device context: move them too, or a trace mixes devices."""
    return torch.nn.Module.to(module, torch.device("meta"))


def build(configs: Mapping[str, Any], seed: int = tiny.BUILD_SEED) -> Any:
    """A Stable Video Diffusion pipeline with random weights (fixed seed) from component configs: the
    tiny model from :data:`~.svd_configs.TINY`, a full-size one (benchmarks, no download) from a
    published configuration."""
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    with tiny.seeded(seed):
        image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**configs["image_encoder"]))
        parts = {
            "image_encoder": image_encoder.eval(),
            "unet": UNetSpatioTemporalConditionModel(**configs["unet"]),
            "vae": AutoencoderKLTemporalDecoder(**configs["vae"]),
        }
    return StableVideoDiffusionPipeline(
        feature_extractor=CLIPImageProcessor(**configs["feature_extractor"]),
        scheduler=EulerDiscreteScheduler(**configs["scheduler"]),
        **parts,
    )
