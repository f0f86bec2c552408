"""Wan's components: weightless modules for memory traces and parameter counts, and pipelines with
random weights (the tiny models, or full-size ones for benchmarks)."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from i2v_nodes.families.toolkit import tiny
from i2v_nodes.families.toolkit.meta import keep_fp32, meta_module, meta_transformers_model, meta_vae
from i2v_nodes.families.wan.lean_blocks import lean_blocks
from i2v_nodes.families.wan.spec import TEXT_TOKENS
from i2v_nodes.lazy import torch


@functools.lru_cache(maxsize=32)
def meta_component(role: str, config_json: str, dtype: torch.dtype) -> torch.nn.Module:
    config = json.loads(config_json)
    if role in ("transformer", "transformer_2"):
        from diffusers import WanTransformer3DModel

        transformer = keep_fp32(meta_module(WanTransformer3DModel, config, dtype))
        lean_blocks(transformer)  # traced as it runs (see prepare in family.py)
        return transformer
    if role == "vae":
        return meta_vae_of(config_json, dtype, False)
    if role == "text_encoder":
        from transformers import UMT5Config, UMT5EncoderModel

        return meta_transformers_model(UMT5EncoderModel, UMT5Config, config, dtype)
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    return meta_transformers_model(CLIPVisionModelWithProjection, CLIPVisionConfig, config, dtype)


def meta_vae_of(config_json: str, dtype: torch.dtype, tiling: bool) -> torch.nn.Module:
    from diffusers import AutoencoderKLWan

    return meta_vae(AutoencoderKLWan, config_json, dtype, tiling)


def build(configs: Mapping[str, Any], seed: int = tiny.BUILD_SEED) -> Any:
    """A Wan image-to-video pipeline with random weights (fixed seed) from component configs."""
    from diffusers import (
        AutoencoderKLWan,
        UniPCMultistepScheduler,
        WanImageToVideoPipeline,
        WanTransformer3DModel,
    )
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        CLIPVisionModel,
        UMT5Config,
        UMT5EncoderModel,
    )

    tokenizer = tiny.build_t5_tokenizer(max_length=TEXT_TOKENS)
    with tiny.seeded(seed):
        text = {
            "vocab_size": len(tokenizer),
            "pad_token_id": tokenizer.pad_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            **configs["text_encoder"],
        }
        parts: dict[str, Any] = {
            "text_encoder": UMT5EncoderModel(UMT5Config(**text)).eval(),
            "vae": AutoencoderKLWan(**configs["vae"]),
            "transformer": WanTransformer3DModel(**configs["transformer"]),
        }
        if configs.get("transformer_2"):
            parts["transformer_2"] = WanTransformer3DModel(**configs["transformer_2"])
        if configs.get("image_encoder"):
            parts["image_encoder"] = CLIPVisionModel(CLIPVisionConfig(**configs["image_encoder"]))
            parts["image_processor"] = CLIPImageProcessor(**configs["image_processor"])
    return WanImageToVideoPipeline(
        tokenizer=tokenizer,
        scheduler=UniPCMultistepScheduler(**configs["scheduler"]),
        **configs.get("pipeline", {}),
        **parts,
    )
