"""LTX-Video's components: weightless modules for memory traces and parameter counts, and pipelines
with random weights (the tiny models, or full-size ones for benchmarks)."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from i2v_nodes.families.ltx_video.configs import BLOCK_095, DEV, LEGACY
from i2v_nodes.families.ltx_video.spec import TEXT_TOKENS
from i2v_nodes.families.toolkit import tiny
from i2v_nodes.families.toolkit.meta import meta_module, meta_transformers_model, meta_vae
from i2v_nodes.lazy import torch


@functools.lru_cache(maxsize=32)
def meta_component(role: str, config_json: str, dtype: torch.dtype) -> torch.nn.Module:
    config = json.loads(config_json)
    if role == "transformer":
        from diffusers import LTXVideoTransformer3DModel

        return meta_module(LTXVideoTransformer3DModel, config, dtype)
    if role == "vae":
        return meta_vae_of(config_json, dtype, False)
    from transformers import T5Config, T5EncoderModel

    return meta_transformers_model(T5EncoderModel, T5Config, config, dtype)


def meta_vae_of(config_json: str, dtype: torch.dtype, tiling: bool) -> torch.nn.Module:
    from diffusers import AutoencoderKLLTXVideo

    return meta_vae(AutoencoderKLLTXVideo, config_json, dtype, tiling)


def _noisy(vae: torch.nn.Module) -> torch.nn.Module:
    """Random noise-injection scales: they start at zero, which would leave the decoder's noise path
    (0.9.1) untested."""
    for name, param in vae.named_parameters():
        if "per_channel_scale" in name:
            torch.nn.init.normal_(param, std=0.1)
    return vae


def build(configs: Mapping[str, Any], seed: int = tiny.BUILD_SEED) -> Any:
    """An LTX-Video image-to-video pipeline with random weights (fixed seed) from component configs:
    ``LTXConditionPipeline`` for the 0.9.5 VAE, ``LTXImageToVideoPipeline`` for the older one."""
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXConditionPipeline,
        LTXImageToVideoPipeline,
        LTXVideoTransformer3DModel,
    )
    from transformers import T5Config, T5EncoderModel

    legacy = BLOCK_095 not in configs["vae"]["down_block_types"]
    tokenizer = tiny.build_t5_tokenizer(max_length=TEXT_TOKENS[LEGACY if legacy else DEV])
    with tiny.seeded(seed):
        text = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
                "eos_token_id": tokenizer.eos_token_id, **configs["text_encoder"]}
        parts = {
            "text_encoder": T5EncoderModel(T5Config(**text)).eval(),
            "vae": _noisy(AutoencoderKLLTXVideo(**configs["vae"])),
            "transformer": LTXVideoTransformer3DModel(**configs["transformer"]),
        }
    pipeline = LTXImageToVideoPipeline if legacy else LTXConditionPipeline
    scheduler = FlowMatchEulerDiscreteScheduler(**configs["scheduler"])
    return pipeline(tokenizer=tokenizer, scheduler=scheduler, **parts)
