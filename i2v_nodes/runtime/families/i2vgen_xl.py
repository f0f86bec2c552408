"""I2VGen-XL (ali-vilab/i2vgen-xl) through diffusers' stock ``I2VGenXLPipeline``.

Sampling calls the stock pipeline, so its numerics are upstream's; the pack only adds, from
outside, what the pipeline lacks:

- prompt embeddings computed the way upstream's default ``clip_skip=1`` does (penultimate hidden
  state, then the final layer norm). The stock path crashes on transformers >= 5 (CLIPTextModel
  lost ``.text_model``), and ``clip_skip=None`` would silently change the conditioning;
- initial noise drawn per clip from its own seed, and the image-latent sample (which the
  pipeline draws from the global RNG) drawn under a forked, fixed-seed RNG, so runs reproduce;
- per-step progress and cancel through a UNet hook (the pipeline has no step callback);
- decoding outside the pipeline (``output_type="latent"``) so NaNs from a half-precision VAE can
  be caught and the decode retried in fp32.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from i2v_nodes.family_kit import tiny
from i2v_nodes.runtime.families.base import (
    CLIP_VISION_H14,
    Denoised,
    DenoiseJob,
    Family,
    LoadSpec,
    Roles,
    Rules,
    StockOutput,
    StockRun,
    Trace,
    bridge_vae_encoder,
    cast_inputs_to,
    meta_module,
    meta_transformers_model,
    meta_vae,
)

# Fixed seed for the one global-RNG draw the stock pipeline makes (the VAE's latent sample of
# the input image). Fixed rather than derived from the clip seed, so that clip i of a batch is
# the same as a single run with seed + i (the pipeline encodes the image once per batch).
IMAGE_LATENT_SEED = 0

RULES = Rules(
    size_multiple=8,
    vae_spatial=8,
    vae_temporal=1,
    latent_channels=4,
    frame_step=1,
    min_frames=2,
    max_frames=128,
    trained_frames=16,
    default_width=1280,
    default_height=704,
    default_frames=16,
    default_fps=16,
    default_steps=50,
    default_guidance=9.0,
    default_precision="fp16",
    default_negative="Distorted, discontinuous, ugly, blurry, low resolution, motionless, static",
)
ROLES = Roles(denoisers=("unet",), encoders=("text_encoder", "image_encoder"))

_CLIP_TEXT_H14 = {
    "vocab_size": 49408,
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 23,
    "num_attention_heads": 16,
    "max_position_embeddings": 77,
    "projection_dim": 1024,
    "hidden_act": "gelu",
}
# The real model's scheduler settings, also used by the tiny model so sampling takes the same path.
_SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "rescale_betas_zero_snr": True,
    "timestep_spacing": "leading",
}

# The published model's layout, reconstructed from the UNet class defaults and the CLIP ViT-H/14
# towers it uses; enough to count parameters and trace memory on the meta device.
PUBLISHED_CONFIGS: dict[str, dict[str, Any]] = {
    "ali-vilab/i2vgen-xl": {
        "unet": {},  # the class defaults are the published layout (1.42 B parameters)
        "vae": {
            "block_out_channels": [128, 256, 512, 512],
            "down_block_types": ["DownEncoderBlock2D"] * 4,
            "up_block_types": ["UpDecoderBlock2D"] * 4,
            "latent_channels": 4,
            "layers_per_block": 2,
            "sample_size": 768,
            "scaling_factor": 0.18215,
            "force_upcast": True,
        },
        "text_encoder": _CLIP_TEXT_H14,
        "image_encoder": CLIP_VISION_H14,
        "feature_extractor": {"crop_size": 224, "size": {"shortest_edge": 224}},
        "scheduler": _SCHEDULER,
    }
}

# As small as the real classes allow while keeping the real structure: four VAE levels (latents
# 1/8 of the image, as in the real model), a UNet with one cross-attention level, two-layer CLIP.
TINY_CONFIGS: dict[str, Any] = {
    "unet": {
        "sample_size": 8,
        "in_channels": 4,
        "out_channels": 4,
        "down_block_types": ["CrossAttnDownBlock3D", "DownBlock3D"],
        "up_block_types": ["UpBlock3D", "CrossAttnUpBlock3D"],
        "block_out_channels": [4, 8],
        "layers_per_block": 1,
        "norm_num_groups": 2,
        "cross_attention_dim": 4,
        "attention_head_dim": 4,
        "num_attention_heads": None,
    },
    "vae": {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
        "block_out_channels": [8, 8, 8, 8],
        "layers_per_block": 1,
        "latent_channels": 4,
        "norm_num_groups": 2,
        "sample_size": 64,
        "scaling_factor": 0.18215,
        "force_upcast": True,
    },
    "text_encoder": {
        "hidden_size": 4,
        "intermediate_size": 8,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 77,
        "projection_dim": 4,
        "hidden_act": "gelu",
    },
    "image_encoder": {
        "hidden_size": 4,
        "intermediate_size": 8,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 32,
        "patch_size": 1,
        "projection_dim": 4,
        "hidden_act": "gelu",
    },
    "feature_extractor": {"crop_size": 32, "size": {"shortest_edge": 32}},
    "scheduler": _SCHEDULER,
}


@functools.cache
def _pipeline_class() -> type:
    """The pipeline class, wherever the installed diffusers keeps it (deprecated since 0.33)."""
    try:
        from diffusers.pipelines.deprecated.i2vgen_xl.pipeline_i2vgen_xl import I2VGenXLPipeline
    except ImportError:
        from diffusers import I2VGenXLPipeline
    return I2VGenXLPipeline


def _unet_class() -> type:
    from diffusers.models.unets.unet_i2vgen_xl import I2VGenXLUNet

    return I2VGenXLUNet


class I2VGenXL(Family):
    name = "i2vgen-xl"
    title = "I2VGen-XL"
    pipeline_classes = ("I2VGenXLPipeline",)
    hub_variants = {"ali-vilab/i2vgen-xl": "i2vgen-xl"}
    published = PUBLISHED_CONFIGS
    tiny = {"tiny-i2vgen-xl": TINY_CONFIGS}
    fit_image = False  # the pipeline centre-crops the image to the size itself
    uses_step_callback = False  # no callback_on_step_end: progress and cancel through a UNet hook
    cfg_in_one_call = True  # one UNet call per step holds both CFG halves, unconditional rows first

    # -- identity -----------------------------------------------------------------------------

    def variant_of(self, index, configs, source="") -> str | None:
        return "i2vgen-xl" if index.get("_class_name") in self.pipeline_classes else None

    def rules(self, variant: str) -> Rules:
        return RULES

    def roles(self, variant: str) -> Roles:
        return ROLES

    # -- configurations and tiny models -------------------------------------------------------

    def meta_component(self, role: str, config_json: str, dtype: torch.dtype) -> torch.nn.Module:
        return _meta_component(role, config_json, dtype)

    def random_pipeline(self, configs) -> Any:
        return build(configs)

    # -- loading and sampling -----------------------------------------------------------------

    def pipeline_class(self, variant: str = "") -> type:
        return _pipeline_class()

    def load_kwargs(self, source: str, local: bool, spec: LoadSpec) -> dict[str, Any]:
        if spec.dtype != torch.float16:
            return {}
        if not local:  # a download: the published repo ships fp16 files, half the bytes
            return {"variant": "fp16"} if source in self.hub_ids else {}
        return {"variant": "fp16"} if _has_fp16_files(Path(source)) else {}

    def prepare(self, pipe: Any) -> None:
        bridge_vae_dtype(pipe)

    def encode_prompt(self, pipe: Any, text: str, device: torch.device) -> torch.Tensor:
        """Prompt embeddings as upstream's default ``clip_skip=1`` computes them.

        Penultimate hidden state of the CLIP text tower, then its final layer norm. Padded to the
        tokenizer's max length and truncated like the stock ``encode_prompt``.
        """
        tokens = pipe.tokenizer(
            [text],
            padding="max_length",
            max_length=pipe.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        encoder = pipe.text_encoder
        mask = (
            tokens.attention_mask.to(device) if getattr(encoder.config, "use_attention_mask", False) else None
        )
        hidden = encoder(tokens.input_ids.to(device), attention_mask=mask, output_hidden_states=True)
        tower = getattr(encoder, "text_model", encoder)  # transformers < 5 nests the tower
        embeds = tower.final_layer_norm(hidden.hidden_states[-2])
        return embeds.to(dtype=encoder.dtype, device=device)

    def initial_latents(self, pipe, variant, seeds, frames, height, width, device) -> torch.Tensor:
        shape = (
            1,
            pipe.unet.config.in_channels,
            frames,
            height // pipe.vae_scale_factor,
            width // pipe.vae_scale_factor,
        )
        noise = [
            torch.randn(shape, generator=torch.Generator("cpu").manual_seed(s), dtype=torch.float32)
            for s in seeds
        ]
        return torch.cat(noise).to(device=device, dtype=pipe.text_encoder.dtype)

    def denoise(self, pipe: Any, job: DenoiseJob, device: torch.device) -> Denoised:
        with _fixed_global_rng(device):
            out = pipe(
                image=job.image,
                prompt_embeds=job.prompt_embeds,
                negative_prompt_embeds=job.negative_embeds,
                latents=job.latents,
                num_videos_per_prompt=job.latents.shape[0],
                width=job.width,
                height=job.height,
                num_frames=job.num_frames,
                num_inference_steps=job.steps,
                guidance_scale=job.guidance_scale,
                target_fps=job.target_fps,
                output_type="latent",
                return_dict=False,
            )
        return Denoised(out[0])

    def decode(self, pipe: Any, clip: Denoised, chunk: int, vae_dtype: torch.dtype) -> torch.Tensor:
        latents = clip.video
        video = pipe.decode_latents(latents.to(vae_dtype), decode_chunk_size=chunk)  # [1, 3, F, H, W]
        return video_to_frames(video)

    def stock_output(self, pipe: Any, run: StockRun) -> StockOutput:
        # transformers 5 dropped CLIPTextModel.text_model; let the stock clip_skip=1 path find it
        if not hasattr(pipe.text_encoder, "text_model"):
            object.__setattr__(pipe.text_encoder, "text_model", pipe.text_encoder)
        with _fixed_global_rng(run.latents.device):
            video = pipe(
                image=run.image,
                prompt=run.prompt,
                negative_prompt=run.negative_prompt,
                latents=run.latents,
                width=run.width,
                height=run.height,
                num_frames=run.num_frames,
                num_inference_steps=run.steps,
                guidance_scale=run.guidance_scale,
                target_fps=run.target_fps,
                decode_chunk_size=run.decode_chunk,
                output_type="pt",
                clip_skip=1,
            ).frames
        return StockOutput(video[0].permute(0, 2, 3, 1))

    # -- memory traces ------------------------------------------------------------------------

    def denoiser_trace(self, variant, configs, dtype, rows, frames, height, width, full_depth=False) -> Trace:
        unet_config = json.loads(configs)["unet"]
        unet = self.meta_component("unet", json.dumps(unet_config, sort_keys=True), dtype)
        lh, lw = height // RULES.vae_spatial, width // RULES.vae_spatial
        channels, cross = unet.config.in_channels, unet.config.cross_attention_dim
        with torch.device("meta"):
            sample = torch.empty(rows, channels, frames, lh, lw, dtype=dtype)
            kwargs = {
                "encoder_hidden_states": torch.empty(rows, 77, cross, dtype=dtype),
                "fps": torch.empty(rows, dtype=torch.long),
                "image_latents": torch.empty(rows, channels, frames, lh, lw, dtype=dtype),
                "image_embeddings": torch.empty(rows, 1, cross, dtype=dtype),
                "return_dict": False,
            }
            timestep = torch.empty((), dtype=torch.long)
        return Trace(unet, (sample, timestep), kwargs)

    def vae_trace(self, variant, configs, dtype, direction, frames, height, width, tiling) -> Trace:
        vae = _meta_vae(json.dumps(json.loads(configs)["vae"], sort_keys=True), dtype, tiling)
        scale = RULES.vae_spatial
        with torch.device("meta"):
            if direction == "decode":  # a chunk of frames decodes as a batch of images
                latents = torch.empty(
                    frames, vae.config.latent_channels, height // scale, width // scale, dtype=dtype
                )
                return Trace(vae.decode, (latents,))
            return Trace(vae.encode, (torch.empty(1, 3, height, width, dtype=dtype),))


FAMILY = I2VGenXL()


# --- helpers -------------------------------------------------------------------------------------


def video_to_frames(video: torch.Tensor) -> torch.Tensor:
    """``[1, 3, F, H, W]`` in -1..1 to ComfyUI IMAGE frames ``[F, H, W, 3]`` float32 in 0..1.

    The same mapping as diffusers' video processor ((x / 2 + 0.5).clamp(0, 1)), laid out as
    ComfyUI's IMAGE: frames first, channels last.
    """
    frames = video[0].permute(1, 2, 3, 0)
    return (frames.float() / 2 + 0.5).clamp_(0, 1)


@contextmanager
def _fixed_global_rng(device: torch.device) -> Iterator[None]:
    """Fork the global RNG and seed it, around the pipeline's one draw from it."""
    devices = [device] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(IMAGE_LATENT_SEED)
        yield


def _has_fp16_files(root: Path) -> bool:
    """Use the ``fp16`` weight files when every weighted component ships them (half the read)."""
    components = [d for d in ROLES.weighted if (root / d).is_dir()]
    return bool(components) and all(any((root / d).glob("*.fp16.safetensors")) for d in components)


def bridge_vae_dtype(pipe: Any) -> None:
    """Let the VAE run in another dtype than the UNet and encoders.

    The stock pipeline feeds the VAE pixels in the image encoder's dtype, and the UNet the VAE's
    image latents as they come; with an fp32 VAE beside an fp16 UNet both calls would fail. Two
    pre-hooks cast the inputs to the receiving module's dtype.
    """
    if bridge_vae_encoder(pipe, "unet"):
        pipe.unet.register_forward_pre_hook(cast_inputs_to(pipe.unet), with_kwargs=True)


@functools.lru_cache(maxsize=16)
def _meta_component(role: str, config_json: str, dtype: torch.dtype) -> torch.nn.Module:
    config = json.loads(config_json)
    if role == "unet":
        return meta_module(_unet_class(), config, dtype)
    if role == "vae":
        return _meta_vae(config_json, dtype, False)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPVisionConfig, CLIPVisionModelWithProjection

    if role == "text_encoder":
        return meta_transformers_model(CLIPTextModel, CLIPTextConfig, config, dtype)
    return meta_transformers_model(CLIPVisionModelWithProjection, CLIPVisionConfig, config, dtype)


def _meta_vae(config_json: str, dtype: torch.dtype, tiling: bool) -> torch.nn.Module:
    from diffusers import AutoencoderKL

    return meta_vae(AutoencoderKL, config_json, dtype, tiling)


def build(configs: dict[str, Any], seed: int = tiny.BUILD_SEED) -> Any:
    """An I2VGen-XL pipeline with random weights (fixed seed) from component configs.

    With :data:`TINY_CONFIGS`, the tiny test model; with a published config, a full-size model
    for benchmarks without downloading its weights.
    """
    from diffusers import AutoencoderKL, DDIMScheduler
    from transformers import (
        CLIPImageProcessor,
        CLIPTextConfig,
        CLIPTextModel,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    tokenizer = tiny.build_clip_tokenizer()
    with tiny.seeded(seed):
        special = {
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        }
        # a full-size config brings CLIP's own vocab size; our offline ids fit inside it
        text_config = CLIPTextConfig(**{"vocab_size": len(tokenizer), **special, **configs["text_encoder"]})
        components = {
            "unet": _unet_class()(**configs["unet"]),
            "vae": AutoencoderKL(**configs["vae"]),
            "text_encoder": CLIPTextModel(text_config),
            "image_encoder": CLIPVisionModelWithProjection(CLIPVisionConfig(**configs["image_encoder"])),
        }
    return _pipeline_class()(
        tokenizer=tokenizer,
        feature_extractor=CLIPImageProcessor(**configs["feature_extractor"]),
        scheduler=DDIMScheduler(**configs["scheduler"]),
        **components,
    )
