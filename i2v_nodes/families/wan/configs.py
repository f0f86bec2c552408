"""Wan configurations as data: the published models (for sizes without a download) and the tiny ones.

Published layouts follow the Wan team's configs (``wan/configs/*.py`` in Wan2.1 and Wan2.2) and
diffusers' conversion script (``scripts/convert_wan_to_diffusers.py``): transformer widths and
depths, the two VAEs, UMT5-XXL and CLIP ViT-H/14. They are for counting parameters and tracing
memory on the meta device; the VAE's latent statistics are left at neutral values. ``pipeline``
holds the pipeline's own settings, as model_index.json does.
"""

from __future__ import annotations

from typing import Any

from i2v_nodes.families.toolkit.meta import CLIP_VISION_H14

_TRANSFORMER_14B = {
    "patch_size": [1, 2, 2],
    "num_attention_heads": 40,
    "attention_head_dim": 128,
    "in_channels": 36,
    "out_channels": 16,
    "text_dim": 4096,
    "freq_dim": 256,
    "ffn_dim": 13824,
    "num_layers": 40,
    "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads",
    "eps": 1e-6,
}
_UMT5_XXL = {
    "vocab_size": 256384,
    "d_model": 4096,
    "d_kv": 64,
    "d_ff": 10240,
    "num_layers": 24,
    "num_heads": 64,
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "feed_forward_proj": "gated-gelu",
    "tie_word_embeddings": False,
}
_VAE_21: dict[str, Any] = {}  # AutoencoderKLWan's defaults are the Wan 2.1 VAE (z 16, 4x8x8)
_VAE_22 = {
    "base_dim": 160,
    "decoder_base_dim": 256,
    "z_dim": 48,
    "is_residual": True,
    "in_channels": 12,
    "out_channels": 12,
    "scale_factor_temporal": 4,
    "scale_factor_spatial": 16,
    "patch_size": 2,
    "latents_mean": [0.0] * 48,
    "latents_std": [1.0] * 48,
}


def _scheduler(flow_shift: float) -> dict[str, Any]:
    return {
        "prediction_type": "flow_prediction",
        "use_flow_sigmas": True,
        "num_train_timesteps": 1000,
        "flow_shift": flow_shift,
    }


_WAN21 = {
    "transformer": {**_TRANSFORMER_14B, "image_dim": 1280, "added_kv_proj_dim": 5120},
    "vae": _VAE_21,
    "text_encoder": _UMT5_XXL,
    "image_encoder": CLIP_VISION_H14,
    "image_processor": {"crop_size": 224, "size": {"shortest_edge": 224}},
}

FLF2V_HUB = "Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers"

PUBLISHED: dict[str, dict[str, Any]] = {
    "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers": {**_WAN21, "scheduler": _scheduler(3.0)},
    "Wan-AI/Wan2.1-I2V-14B-720P-Diffusers": {**_WAN21, "scheduler": _scheduler(5.0)},
    "Wan-AI/Wan2.2-I2V-A14B-Diffusers": {
        "transformer": _TRANSFORMER_14B,
        "transformer_2": _TRANSFORMER_14B,
        "vae": _VAE_21,
        "text_encoder": _UMT5_XXL,
        "scheduler": _scheduler(5.0),
        "pipeline": {"boundary_ratio": 0.9},
    },
    "Wan-AI/Wan2.2-TI2V-5B-Diffusers": {
        "transformer": {
            **_TRANSFORMER_14B,
            "num_attention_heads": 24,
            "in_channels": 48,
            "out_channels": 48,
            "ffn_dim": 14336,
            "num_layers": 30,
        },
        "vae": _VAE_22,
        "text_encoder": _UMT5_XXL,
        "scheduler": _scheduler(5.0),
        "pipeline": {"expand_timesteps": True},
    },
    # two images' CLIP states (257 tokens each) with positions; flow shift 16, the Wan team's for FLF2V
    FLF2V_HUB: {**_WAN21, "transformer": {**_WAN21["transformer"], "pos_embed_seq_len": 2 * 257},
                "scheduler": _scheduler(16.0)},
}

VARIANT_OF_HUB = {
    "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers": "wan2.1-i2v",
    "Wan-AI/Wan2.1-I2V-14B-720P-Diffusers": "wan2.1-i2v",
    "Wan-AI/Wan2.2-I2V-A14B-Diffusers": "wan2.2-i2v-a14b",
    "Wan-AI/Wan2.2-TI2V-5B-Diffusers": "wan2.2-ti2v-5b",
    FLF2V_HUB: "wan2.1-flf2v",
}

# Tiny models: the published structure (patching, VAE strides, two experts, per-token timesteps)
# at the smallest widths the classes take, like diffusers' own Wan pipeline tests.
_TINY_TRANSFORMER = {
    "patch_size": [1, 2, 2],
    # 128-wide heads, as in every published Wan file: single-file loaders (ComfyUI's, the pack's)
    # read the head count as width / 128
    "num_attention_heads": 1,
    "attention_head_dim": 128,
    "in_channels": 36,
    "out_channels": 16,
    "text_dim": 32,
    "freq_dim": 256,
    "ffn_dim": 32,
    "num_layers": 2,
    "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads",
    "rope_max_seq_len": 1024,  # the published length: the planner traces up to the most frames a model takes
}
_TINY_VAE = {
    "base_dim": 3,
    "z_dim": 16,
    "dim_mult": [1, 1, 1, 1],
    "num_res_blocks": 2,  # the published count: the single-file layout (and its converters) assume it
    "temperal_downsample": [False, True, True],
}
_TINY_UMT5 = {
    "d_model": 32,
    "d_kv": 8,
    "d_ff": 32,
    "num_layers": 2,
    "num_heads": 2,
    "relative_attention_num_buckets": 8,
    "relative_attention_max_distance": 16,
    "feed_forward_proj": "gated-gelu",
    "dropout_rate": 0.0,
}

_TINY_CLIP = {
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": 32,
    "patch_size": 4,
    "projection_dim": 32,
}
_TINY_WAN21 = {
    "transformer": {**_TINY_TRANSFORMER, "image_dim": 32, "added_kv_proj_dim": 128},
    "vae": _TINY_VAE,
    "text_encoder": _TINY_UMT5,
    "scheduler": _scheduler(3.0),
    "image_encoder": _TINY_CLIP,
    "image_processor": {"crop_size": 32, "size": {"shortest_edge": 32}},
}

TINY: dict[str, dict[str, Any]] = {
    "tiny-wan2.1-i2v": _TINY_WAN21,
    "tiny-wan2.2-i2v-a14b": {
        "transformer": _TINY_TRANSFORMER,
        "transformer_2": _TINY_TRANSFORMER,
        "vae": _TINY_VAE,
        "text_encoder": _TINY_UMT5,
        # the published scheduler and boundary, as ComfyUI's files (which carry neither) get them
        "scheduler": _scheduler(5.0),
        "pipeline": {"boundary_ratio": 0.9},
    },
    "tiny-wan2.2-ti2v-5b": {
        "transformer": {**_TINY_TRANSFORMER, "in_channels": 48, "out_channels": 48},
        "vae": {
            **_TINY_VAE,
            "z_dim": 48,
            "in_channels": 12,
            "out_channels": 12,
            "is_residual": True,
            "patch_size": 2,
            "latents_mean": [0.0] * 48,
            "latents_std": [1.0] * 48,
            "scale_factor_spatial": 16,
            "scale_factor_temporal": 4,
        },
        "text_encoder": _TINY_UMT5,
        "scheduler": _scheduler(5.0),
        "pipeline": {"expand_timesteps": True},
    },
    # positions for two images' CLIP states: (32 / 4)^2 patches and the class token, twice
    "tiny-wan2.1-flf2v": {
        **_TINY_WAN21,
        "transformer": {**_TINY_WAN21["transformer"], "pos_embed_seq_len": 130},
        "scheduler": _scheduler(16.0),
    },
}
