"""Stable Video Diffusion's components: weightless modules for memory traces and parameter counts,
and pipelines with random weights (the tiny model, or full-size ones for benchmarks)."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from i2v_nodes.families.toolkit import tiny
from i2v_nodes.families.toolkit.meta import meta_module, meta_transformers_model, meta_vae
from i2v_nodes.lazy import torch


@functools.lru_cache(maxsize=32)
def meta_component(role: str, config_json: str, dtype: torch.dtype) -> torch.nn.Module:
    config = json.loads(config_json)
    if role == "unet":
        from diffusers import UNetSpatioTemporalConditionModel

        return all_meta(meta_module(UNetSpatioTemporalConditionModel, config, dtype))
    if role == "vae":
        from diffusers import AutoencoderKLTemporalDecoder

        return all_meta(meta_vae(AutoencoderKLTemporalDecoder, config_json, dtype, False))
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    return meta_transformers_model(CLIPVisionModelWithProjection, CLIPVisionConfig, config, dtype)


def all_meta(module: torch.nn.Module) -> torch.nn.Module:
    """The spatio-temporal blocks' mix factors are made with ``torch.Tensor([alpha])``, which ignores the
    meta device context: move them too, or a trace mixes devices."""
    return torch.nn.Module.to(module, torch.device("meta"))


def build(configs: Mapping[str, Any], seed: int = tiny.BUILD_SEED) -> Any:
    """A Stable Video Diffusion pipeline with random weights (fixed seed) from component configs: the
    tiny model from :data:`~.configs.TINY`, a full-size one (benchmarks, no download) from a
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
