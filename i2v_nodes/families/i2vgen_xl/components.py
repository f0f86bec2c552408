"""I2VGen-XL's components: the stock classes, weightless modules for memory traces, and pipelines with
random weights (the tiny model, or a full-size one for benchmarks)."""

from __future__ import annotations

import functools
import json
from typing import Any

from i2v_nodes.families.toolkit import tiny
from i2v_nodes.families.toolkit.meta import meta_module, meta_transformers_model, meta_vae
from i2v_nodes.lazy import torch


@functools.cache
def pipeline_class() -> type:
    """The pipeline class, wherever the installed diffusers keeps it (deprecated since 0.33)."""
    try:
        from diffusers.pipelines.deprecated.i2vgen_xl.pipeline_i2vgen_xl import I2VGenXLPipeline
    except ImportError:
        from diffusers import I2VGenXLPipeline
    return I2VGenXLPipeline


def unet_class() -> type:
    from diffusers.models.unets.unet_i2vgen_xl import I2VGenXLUNet

    return I2VGenXLUNet


@functools.lru_cache(maxsize=16)
def meta_component(role: str, config_json: str, dtype: torch.dtype) -> torch.nn.Module:
    config = json.loads(config_json)
    if role == "unet":
        return meta_module(unet_class(), config, dtype)
    if role == "vae":
        return meta_vae_of(config_json, dtype, False)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPVisionConfig, CLIPVisionModelWithProjection

    if role == "text_encoder":
        return meta_transformers_model(CLIPTextModel, CLIPTextConfig, config, dtype)
    return meta_transformers_model(CLIPVisionModelWithProjection, CLIPVisionConfig, config, dtype)


def meta_vae_of(config_json: str, dtype: torch.dtype, tiling: bool) -> torch.nn.Module:
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
            "unet": unet_class()(**configs["unet"]),
            "vae": AutoencoderKL(**configs["vae"]),
            "text_encoder": CLIPTextModel(text_config),
            "image_encoder": CLIPVisionModelWithProjection(CLIPVisionConfig(**configs["image_encoder"])),
        }
    return pipeline_class()(
        tokenizer=tokenizer,
        feature_extractor=CLIPImageProcessor(**configs["feature_extractor"]),
        scheduler=DDIMScheduler(**configs["scheduler"]),
        **components,
    )
