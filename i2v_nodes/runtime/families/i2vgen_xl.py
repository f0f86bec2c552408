"""I2VGen-XL (ali-vilab/i2vgen-xl) through diffusers' stock ``I2VGenXLPipeline``.

Sampling calls the stock pipeline, so its numerics are upstream's; the pack only adds, from
outside, what the pipeline lacks:

- prompt embeddings computed the way upstream's default ``clip_skip=1`` does (penultimate hidden
  state, then the final layer norm). The stock path crashes on transformers >= 5 (CLIPTextModel
  lost ``.text_model``), and ``clip_skip=None`` would silently change the conditioning;
- initial noise drawn per clip from its own seed, and the image-latent sample (which the
  pipeline draws from the global RNG) drawn under a forked, fixed-seed RNG, so runs reproduce;
- per-step progress and cancel through a UNet hook (see :mod:`..unet_hook`);
- decoding outside the pipeline (``output_type="latent"``) so NaNs from a half-precision VAE can
  be caught and the decode retried in fp32.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

FAMILY = "i2vgen-xl"
PIPELINE_CLASS_NAME = "I2VGenXLPipeline"
HUB_IDS = ("ali-vilab/i2vgen-xl",)

# Fixed seed for the one global-RNG draw the stock pipeline makes (the VAE's latent sample of
# the input image). Fixed rather than derived from the clip seed, so that clip i of a batch is
# the same as a single run with seed + i (the pipeline encodes the image once per batch).
IMAGE_LATENT_SEED = 0


@dataclass(frozen=True)
class Constraints:
    multiple_of: int = 8  # the VAE downsamples by 8
    trained_frames: int = 16  # I2VGen-XL was trained on 16-frame clips
    min_frames: int = 2
    max_frames: int = 128
    default_width: int = 1280
    default_height: int = 704
    default_fps: int = 16
    default_steps: int = 50
    default_guidance: float = 9.0


CONSTRAINTS = Constraints()


@functools.cache
def pipeline_class() -> type:
    """The pipeline class, wherever the installed diffusers keeps it (deprecated since 0.33)."""
    try:
        from diffusers.pipelines.deprecated.i2vgen_xl.pipeline_i2vgen_xl import I2VGenXLPipeline
    except ImportError:
        from diffusers import I2VGenXLPipeline
    return I2VGenXLPipeline


@functools.cache
def unet_class() -> type:
    from diffusers.models.unets.unet_i2vgen_xl import I2VGenXLUNet

    return I2VGenXLUNet


# --- published configuration (for sizes without a download) -----------------------------------

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
        "text_encoder": {
            "vocab_size": 49408,
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "num_hidden_layers": 23,
            "num_attention_heads": 16,
            "max_position_embeddings": 77,
            "projection_dim": 1024,
            "hidden_act": "gelu",
        },
        "image_encoder": {
            "hidden_size": 1280,
            "intermediate_size": 5120,
            "num_hidden_layers": 32,
            "num_attention_heads": 16,
            "patch_size": 14,
            "image_size": 224,
            "projection_dim": 1024,
            "hidden_act": "gelu",
        },
    }
}


def published_description(hub_id: str) -> tuple[dict[str, Any], tuple[tuple[str, int], ...]]:
    """Component configs and parameter counts of a known hub model, built on the meta device."""
    configs = {name: dict(cfg) for name, cfg in PUBLISHED_CONFIGS[hub_id].items()}
    configs["unet"] = dict(meta_unet(json.dumps(configs["unet"], sort_keys=True)).config)
    configs["vae"] = dict(meta_vae(json.dumps(configs["vae"], sort_keys=True)).config)
    params = (
        ("unet", _numel(meta_unet(json.dumps(configs["unet"], sort_keys=True)))),
        ("vae", _numel(meta_vae(json.dumps(configs["vae"], sort_keys=True)))),
        ("text_encoder", _numel(_meta_clip_text(configs["text_encoder"]))),
        ("image_encoder", _numel(_meta_clip_vision(configs["image_encoder"]))),
    )
    return configs, params


def _numel(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@functools.lru_cache(maxsize=8)
def meta_unet(config_json: str, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """A weightless UNet with this config, for parameter counts and memory tracing."""
    return _on_meta(unet_class(), config_json, dtype)


@functools.lru_cache(maxsize=8)
def meta_vae(config_json: str, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    from diffusers import AutoencoderKL

    return _on_meta(AutoencoderKL, config_json, dtype)


def _on_meta(cls: type, config_json: str, dtype: torch.dtype) -> torch.nn.Module:
    config = {k: v for k, v in json.loads(config_json).items() if not k.startswith("_")}
    with torch.device("meta"):
        module = cls.from_config(config).eval()
    # nn.Module.to, not the diffusers override, which warns about fp32-pinned modules on every cast
    return torch.nn.Module.to(module, dtype)


def _meta_clip_text(config: dict[str, Any]) -> torch.nn.Module:
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.device("meta"):
        return CLIPTextModel(CLIPTextConfig(**config))


def _meta_clip_vision(config: dict[str, Any]) -> torch.nn.Module:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    with torch.device("meta"):
        return CLIPVisionModelWithProjection(CLIPVisionConfig(**config))


def unet_trace_inputs(unet_config: dict[str, Any], rows: int, frames: int, height: int, width: int,
                      dtype: torch.dtype, text_tokens: int = 77) -> tuple[tuple, dict]:
    """Meta tensors shaped like one UNet call of the pipeline with ``rows`` batch rows."""
    lh, lw = height // CONSTRAINTS.multiple_of, width // CONSTRAINTS.multiple_of
    channels = unet_config.get("in_channels", 4)
    cross = unet_config.get("cross_attention_dim", 1024)
    with torch.device("meta"):
        sample = torch.empty(rows, channels, frames, lh, lw, dtype=dtype)
        kwargs = {
            "encoder_hidden_states": torch.empty(rows, text_tokens, cross, dtype=dtype),
            "fps": torch.empty(rows, dtype=torch.long),
            "image_latents": torch.empty(rows, channels, frames, lh, lw, dtype=dtype),
            "image_embeddings": torch.empty(rows, 1, cross, dtype=dtype),
            "return_dict": False,
        }
        timestep = torch.empty((), dtype=torch.long)
    return (sample, timestep), kwargs


# --- loading -----------------------------------------------------------------------------------


def load_pipeline(source: str, local: bool, dtype: torch.dtype, vae_dtype: torch.dtype) -> Any:
    """Load the stock pipeline from a local folder or hub id, safetensors only, no remote code."""
    kwargs: dict[str, Any] = {
        "use_safetensors": True,
        "local_files_only": local,
        "dtype": {"default": dtype, "vae": vae_dtype},
    }
    if dtype != torch.float16:
        variant = None
    elif local:
        variant = _fp16_variant(source)
    else:  # a download: the published repo ships fp16 files, half the bytes
        variant = "fp16" if source in HUB_IDS else None
    if variant:
        kwargs["variant"] = variant
    pipe = pipeline_class().from_pretrained(source, **kwargs)
    pipe.set_progress_bar_config(disable=True)  # progress goes through the host's bar instead
    return pipe


def _fp16_variant(folder: str) -> str | None:
    """Use the ``fp16`` weight files when every weighted component ships them (half the read)."""
    root = Path(folder)
    components = [d for d in ("unet", "vae", "text_encoder", "image_encoder") if (root / d).is_dir()]
    if components and all(any((root / d).glob("*.fp16.safetensors")) for d in components):
        return "fp16"
    return None


# --- sampling ----------------------------------------------------------------------------------


def encode_prompts(pipe: Any, texts: list[str], device: torch.device) -> torch.Tensor:
    """Prompt embeddings as upstream's default ``clip_skip=1`` computes them.

    Penultimate hidden state of the CLIP text tower, then its final layer norm. Padded to the
    tokenizer's max length and truncated like the stock ``encode_prompt``.
    """
    tokens = pipe.tokenizer(
        texts,
        padding="max_length",
        max_length=pipe.tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    encoder = pipe.text_encoder
    mask = None
    if getattr(encoder.config, "use_attention_mask", False):
        mask = tokens.attention_mask.to(device)
    hidden = encoder(tokens.input_ids.to(device), attention_mask=mask, output_hidden_states=True)
    tower = getattr(encoder, "text_model", encoder)  # transformers < 5 nests the tower
    embeds = tower.final_layer_norm(hidden.hidden_states[-2])
    return embeds.to(dtype=encoder.dtype, device=device)


def initial_latents(pipe: Any, seeds: list[int], frames: int, height: int, width: int,
                    device: torch.device) -> torch.Tensor:
    """One noise tensor per clip, each from its own CPU generator (same on every device)."""
    shape = (1, pipe.unet.config.in_channels, frames, height // pipe.vae_scale_factor,
             width // pipe.vae_scale_factor)
    dtype = pipe.text_encoder.dtype
    noise = [torch.randn(shape, generator=torch.Generator("cpu").manual_seed(s), dtype=torch.float32)
             for s in seeds]
    return torch.cat(noise).to(device=device, dtype=dtype)


@dataclass(frozen=True)
class Denoise:
    """Everything one stock pipeline call needs, for one input image and its clips."""

    image: Any  # PIL image; the pipeline resizes and centre-crops it itself
    prompt_embeds: torch.Tensor
    negative_embeds: torch.Tensor
    latents: torch.Tensor  # [clips, C, F, h, w]
    width: int
    height: int
    num_frames: int
    steps: int
    guidance_scale: float
    target_fps: int


def denoise(pipe: Any, job: Denoise, device: torch.device) -> torch.Tensor:
    """Run the stock pipeline up to the final latents (decoding is done by the caller)."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(IMAGE_LATENT_SEED)
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
    return out[0]


def decode(pipe: Any, latents: torch.Tensor, chunk: int, vae_dtype: torch.dtype) -> torch.Tensor:
    """Latents of one clip ``[1, C, F, h, w]`` to frames ``[F, H, W, 3]`` float32 in 0..1."""
    video = pipe.decode_latents(latents.to(vae_dtype), decode_chunk_size=chunk)  # [1, 3, F, H, W]
    return _to_frames(video)


def _to_frames(video: torch.Tensor) -> torch.Tensor:
    # Same mapping as the pipeline's video processor ((x / 2 + 0.5).clamp(0, 1)), laid out as
    # ComfyUI's IMAGE: frames first, channels last.
    frames = video[0].permute(1, 2, 3, 0)
    return (frames.float() / 2 + 0.5).clamp_(0, 1)
