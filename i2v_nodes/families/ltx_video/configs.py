"""LTX-Video's published configurations and its tiny test models, as data.

The published values come from diffusers' conversion script (``scripts/convert_ltx_to_diffusers.py``:
transformer and VAE per release, the scheduler settings it saves) and Google's T5 v1.1 XXL, whose
encoder every LTX-Video release uses as its text encoder.
"""

from __future__ import annotations

from typing import Any

LEGACY, DEV, DISTILLED = "ltx-video-0.9.1", "ltx-video", "ltx-video-distilled"

# The VAE blocks of 0.9.5 and later; older VAEs (0.9.0, 0.9.1) have "LTXVideoDownBlock3D".
BLOCK_095 = "LTXVideo095DownBlock3D"

_T5_XXL_ENCODER = {
    "d_model": 4096,
    "d_kv": 64,
    "d_ff": 10240,
    "num_layers": 24,
    "num_heads": 64,
    "vocab_size": 32128,
    "feed_forward_proj": "gated-gelu",
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "layer_norm_epsilon": 1e-6,
}

_TRANSFORMER_COMMON = {
    "in_channels": 128,
    "out_channels": 128,
    "patch_size": 1,
    "patch_size_t": 1,
    "num_attention_heads": 32,
    "activation_fn": "gelu-approximate",
    "qk_norm": "rms_norm_across_heads",
    "norm_elementwise_affine": False,
    "norm_eps": 1e-6,
    "caption_channels": 4096,
    "attention_bias": True,
    "attention_out_bias": True,
}
TRANSFORMER_2B = {**_TRANSFORMER_COMMON, "attention_head_dim": 64, "cross_attention_dim": 2048,
                  "num_layers": 28}
TRANSFORMER_13B = {**_TRANSFORMER_COMMON, "attention_head_dim": 128, "cross_attention_dim": 4096,
                   "num_layers": 48}

_VAE_COMMON = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 128,
    "patch_size": 4,
    "patch_size_t": 1,
    "resnet_norm_eps": 1e-6,
    "scaling_factor": 1.0,
    "encoder_causal": True,
    "decoder_causal": False,
}
VAE_091 = {
    **_VAE_COMMON,
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("LTXVideoDownBlock3D",) * 4,
    "decoder_block_out_channels": (256, 512, 1024),
    "layers_per_block": (4, 3, 3, 3, 4),
    "decoder_layers_per_block": (5, 6, 7, 8),
    "spatio_temporal_scaling": (True, True, True, False),
    "decoder_spatio_temporal_scaling": (True, True, True),
    "decoder_inject_noise": (True, True, True, False),
    "downsample_type": ("conv", "conv", "conv", "conv"),
    "upsample_residual": (True, True, True),
    "upsample_factor": (2, 2, 2),
    "timestep_conditioning": True,
}
VAE_095 = {
    **_VAE_COMMON,
    "block_out_channels": (128, 256, 512, 1024, 2048),
    "down_block_types": (BLOCK_095,) * 4,
    "decoder_block_out_channels": (256, 512, 1024),
    "layers_per_block": (4, 6, 6, 2, 2),
    "decoder_layers_per_block": (5, 5, 5, 5),
    "spatio_temporal_scaling": (True, True, True, True),
    "decoder_spatio_temporal_scaling": (True, True, True),
    "decoder_inject_noise": (False, False, False, False),
    "downsample_type": ("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
    "upsample_residual": (True, True, True),
    "upsample_factor": (2, 2, 2),
    "timestep_conditioning": True,
    "spatial_compression_ratio": 32,
    "temporal_compression_ratio": 8,
}
SCHEDULER_095 = {"use_dynamic_shifting": False}
SCHEDULER_091 = {
    "use_dynamic_shifting": True,
    "base_shift": 0.95,
    "max_shift": 2.05,
    "base_image_seq_len": 1024,
    "max_image_seq_len": 4096,
    "shift_terminal": 0.1,
}


def _published(transformer: dict, vae: dict, scheduler: dict) -> dict[str, dict[str, Any]]:
    return {"transformer": transformer, "vae": vae, "text_encoder": _T5_XXL_ENCODER, "scheduler": scheduler}


PUBLISHED = {
    "Lightricks/LTX-Video": _published(TRANSFORMER_2B, VAE_091, SCHEDULER_091),
    "Lightricks/LTX-Video-0.9.5": _published(TRANSFORMER_2B, VAE_095, SCHEDULER_095),
    "Lightricks/LTX-Video-0.9.7-dev": _published(TRANSFORMER_13B, VAE_095, SCHEDULER_095),
    "Lightricks/LTX-Video-0.9.7-distilled": _published(TRANSFORMER_13B, VAE_095, SCHEDULER_095),
    "Lightricks/LTX-Video-0.9.8-13B-distilled": _published(TRANSFORMER_13B, VAE_095, SCHEDULER_095),
}
VARIANT_OF_HUB = {
    "Lightricks/LTX-Video": LEGACY,
    "Lightricks/LTX-Video-0.9.5": DEV,
    "Lightricks/LTX-Video-0.9.7-dev": DEV,
    "Lightricks/LTX-Video-0.9.7-distilled": DISTILLED,
    "Lightricks/LTX-Video-0.9.8-13B-distilled": DISTILLED,
}

# Tiny models: the real layouts (32x spatial and 8x temporal compression, 128 latent channels,
# timestep-conditioned decoding) at toy widths, so sampling takes the published models' code paths.
_TINY_TRANSFORMER = {
    **_TRANSFORMER_COMMON,
    "num_attention_heads": 2,
    "attention_head_dim": 8,
    "cross_attention_dim": 16,
    "num_layers": 2,
    "caption_channels": 16,
}
_TINY_TEXT = {"d_model": 16, "d_kv": 8, "d_ff": 32, "num_layers": 1, "num_heads": 2}
_TINY_VAE_095 = {
    **VAE_095,
    "block_out_channels": (8, 8, 16, 16, 32),
    "decoder_block_out_channels": (8, 16, 32),
    "layers_per_block": (1, 1, 1, 1, 1),
    "decoder_layers_per_block": (1, 1, 1, 1),
}
_TINY_VAE_091 = {
    **VAE_091,
    "block_out_channels": (8, 8, 16, 16),
    "decoder_block_out_channels": (8, 16, 32),
    "layers_per_block": (1, 1, 1, 1, 1),
    "decoder_layers_per_block": (1, 1, 1, 1),
}
TINY = {
    "tiny-ltx-video": {"transformer": _TINY_TRANSFORMER, "vae": _TINY_VAE_095, "text_encoder": _TINY_TEXT,
                       "scheduler": SCHEDULER_095},
    "tiny-ltx-video-distilled": {"transformer": _TINY_TRANSFORMER, "vae": _TINY_VAE_095,
                                 "text_encoder": _TINY_TEXT, "scheduler": SCHEDULER_095},
    "tiny-ltx-video-0.9.1": {"transformer": _TINY_TRANSFORMER, "vae": _TINY_VAE_091,
                             "text_encoder": _TINY_TEXT, "scheduler": SCHEDULER_091},
}
