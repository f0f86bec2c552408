"""AnimateDiff's components: weightless modules for memory traces and parameter counts, and pipelines
with random weights (the tiny model, or a full-size one for benchmarks)."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from i2v_nodes.families.animatediff.pairs import is_base_unet
from i2v_nodes.families.animatediff.spec import ADAPTER
from i2v_nodes.families.toolkit import tiny
from i2v_nodes.families.toolkit.meta import meta_module, meta_transformers_model, meta_vae
from i2v_nodes.lazy import torch


@functools.lru_cache(maxsize=32)
def meta_component(role: str, config_json: str, dtype: torch.dtype) -> torch.nn.Module:
    config = json.loads(config_json)
    if role == "unet":
        from diffusers import UNet2DConditionModel, UNetMotionModel

        # a base + adapter folder's unet/ is the plain base (offload shares only; traces use the merged one)
        cls = UNet2DConditionModel if is_base_unet(config) else UNetMotionModel
        return torch.nn.Module.to(meta_module(cls, config, dtype), torch.device("meta"))
    if role == "vae":
        from diffusers import AutoencoderKL

        return meta_vae(AutoencoderKL, config_json, dtype, False)
    from transformers import CLIPTextConfig, CLIPTextModel

    return meta_transformers_model(CLIPTextModel, CLIPTextConfig, config, dtype)


def build(configs: Mapping[str, Any], seed: int = tiny.BUILD_SEED) -> Any:
    """A PIA pipeline with random weights (fixed seed) from component configs: the tiny model from
    :data:`~.configs.TINY`, a full-size one (benchmarks, no download) from a published
    configuration. The base's UNet and the adapter are built apart and merged by the pipeline, as a
    real base and adapter are."""
    from diffusers import PIAPipeline

    return PIAPipeline(**random_components(configs, seed))


def random_components(configs: Mapping[str, Any], seed: int = tiny.BUILD_SEED) -> dict[str, Any]:
    """The pipeline's components with random weights (fixed seed), the base's UNet and the adapter
    apart (before the pipeline merges them) where the configs hold both."""
    from diffusers import AutoencoderKL, DDIMScheduler, MotionAdapter, UNet2DConditionModel, UNetMotionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = tiny.build_clip_tokenizer()
    special = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
               "pad_token_id": tokenizer.pad_token_id}
    with tiny.seeded(seed):
        # a full-size config brings CLIP's own vocab size; our offline ids fit inside it
        text_config = CLIPTextConfig(**{"vocab_size": len(tokenizer), **configs["text_encoder"], **special})
        parts = {"vae": AutoencoderKL(**_plain(configs["vae"])),
                 "text_encoder": CLIPTextModel(text_config).eval()}
        if is_base_unet(configs["unet"]):  # a base and an adapter: the pipeline merges them
            parts["unet"] = UNet2DConditionModel(**_plain(configs["unet"]))
            parts[ADAPTER] = MotionAdapter(**_plain(configs[ADAPTER]))
        else:  # merged already (published_configs' UNet)
            parts["unet"] = UNetMotionModel(**_plain(configs["unet"]))
    return {**parts, "tokenizer": tokenizer, "scheduler": DDIMScheduler.from_config(configs["scheduler"])}


def _plain(config: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if not k.startswith("_")}
