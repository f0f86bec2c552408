"""I2VGen-XL's published layout and its tiny model's configs, as data."""

from __future__ import annotations

from typing import Any

from i2v_nodes.families.toolkit.meta import CLIP_VISION_H14

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
