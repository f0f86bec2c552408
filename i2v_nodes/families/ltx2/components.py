"""LTX-2's components: weightless modules for memory traces and parameter counts, and pipelines with
random weights (the tiny model, or a full-size one for benchmarks)."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from i2v_nodes.families.ltx2.spec import TEXT_TOKENS
from i2v_nodes.families.toolkit import tiny
from i2v_nodes.families.toolkit.meta import keep_fp32, meta_module, meta_vae
from i2v_nodes.lazy import torch


def vae_class() -> type:
    from diffusers import AutoencoderKLLTX2Video

    return AutoencoderKLLTX2Video


@functools.lru_cache(maxsize=32)
def meta_component(role: str, config_json: str, dtype: torch.dtype) -> torch.nn.Module:
    config = json.loads(config_json)
    if role == "transformer":
        from diffusers import LTX2VideoTransformer3DModel

        return keep_fp32(meta_module(LTX2VideoTransformer3DModel, config, dtype))
    if role == "vae":
        return meta_vae(vae_class(), config_json, dtype, False)
    if role == "connectors":
        from diffusers.pipelines.ltx2 import LTX2TextConnectors

        return meta_module(LTX2TextConnectors, config, dtype)
    if role == "audio_vae":
        from diffusers import AutoencoderKLLTX2Audio

        return meta_module(AutoencoderKLLTX2Audio, config, dtype)
    if role == "vocoder":
        from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder

        return meta_module(LTX2Vocoder, config, dtype)
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    with torch.device("meta"):
        return Gemma3ForConditionalGeneration(Gemma3Config.from_dict(config)).to(dtype).eval()


def build(configs: Mapping[str, Any], seed: int = tiny.BUILD_SEED) -> Any:
    """An LTX-2 image-to-video pipeline with random weights (fixed seed) from component configs."""
    from diffusers import (
        AutoencoderKLLTX2Audio,
        AutoencoderKLLTX2Video,
        FlowMatchEulerDiscreteScheduler,
        LTX2ImageToVideoPipeline,
        LTX2VideoTransformer3DModel,
    )
    from diffusers.pipelines.ltx2 import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    tokenizer = tiny.build_gemma_tokenizer(max_length=TEXT_TOKENS)
    text = dict(configs["text_encoder"])
    text["text_config"] = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
                           "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
                           **text["text_config"]}
    with tiny.seeded(seed):
        parts = {
            "text_encoder": Gemma3ForConditionalGeneration(Gemma3Config.from_dict(text)).eval(),
            "connectors": LTX2TextConnectors(**configs["connectors"]),
            "transformer": LTX2VideoTransformer3DModel(**configs["transformer"]),
            "vae": AutoencoderKLLTX2Video(**configs["vae"]),
            "audio_vae": AutoencoderKLLTX2Audio(**configs["audio_vae"]),
            "vocoder": LTX2Vocoder(**configs["vocoder"]),
        }
    return LTX2ImageToVideoPipeline(
        tokenizer=tokenizer, scheduler=FlowMatchEulerDiscreteScheduler(**configs["scheduler"]), **parts
    )
