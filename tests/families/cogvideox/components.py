"""CogVideoX's components: weightless modules for memory traces and parameter counts, and pipelines with
random weights (the tiny model, or a full-size one for benchmarks)."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

import torch

from i2v_nodes.families.toolkit import tiny
from i2v_nodes.families.toolkit.meta import meta_module, meta_transformers_model, meta_vae
from tests.families.cogvideox.spec import TEXT_TOKENS


@functools.lru_cache(maxsize=32)
def meta_component(role: str, config_json: str, dtype: torch.dtype) -> torch.nn.Module:
    config = json.loads(config_json)
    if role == "transformer":
        from diffusers import CogVideoXTransformer3DModel

        return meta_module(CogVideoXTransformer3DModel, config, dtype)
    if role == "vae":
        return meta_vae_of(config_json, dtype, False)
    from transformers import T5Config, T5EncoderModel

    return meta_transformers_model(T5EncoderModel, T5Config, config, dtype)


def meta_vae_of(config_json: str, dtype: torch.dtype, tiling: bool) -> torch.nn.Module:
    from diffusers import AutoencoderKLCogVideoX

    return meta_vae(AutoencoderKLCogVideoX, config_json, dtype, tiling)


def build(configs: Mapping[str, Any], seed: int = tiny.BUILD_SEED) -> Any:
    """A CogVideoX image-to-video pipeline with random weights (fixed seed) from component configs."""
    from diffusers import (
        AutoencoderKLCogVideoX,
        CogVideoXDDIMScheduler,
        CogVideoXImageToVideoPipeline,
        CogVideoXTransformer3DModel,
    )
    from transformers import T5Config, T5EncoderModel

    tokenizer = tiny.build_t5_tokenizer(max_length=TEXT_TOKENS)
    with tiny.seeded(seed):
        text = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
                "eos_token_id": tokenizer.eos_token_id, **configs["text_encoder"]}
        parts = {
            "text_encoder": T5EncoderModel(T5Config(**text)).eval(),
            "vae": AutoencoderKLCogVideoX(**configs["vae"]),
            "transformer": CogVideoXTransformer3DModel(**configs["transformer"]),
        }
    return CogVideoXImageToVideoPipeline(
        tokenizer=tokenizer, scheduler=CogVideoXDDIMScheduler(**configs["scheduler"]), **parts
    )
