"""CogVideoX's published layout and its tiny model's configs, as data.

The published layout is THUDM/CogVideoX-5b-I2V as diffusers' conversion script
(``scripts/convert_cogvideox_to_diffusers.py``, 5B with ``--i2v``) saves it: the transformer at 48 heads
of 64 over 42 layers with twice the latent channels in (noise and image latents side by side), rotary
and learned positional embeddings; the CogVideoX VAE at its class defaults with the 5B's scaling factor;
Google's T5 v1.1 XXL encoder. Enough to count parameters and trace memory on the meta device.
"""

from __future__ import annotations

from typing import Any

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

_DOWN, _UP = ["CogVideoXDownBlock3D"] * 4, ["CogVideoXUpBlock3D"] * 4  # 8x spatial, 4x temporal (two levels)

# The published scheduler (v-prediction DDIM on zero-SNR betas, trailing steps); the tiny model uses it too,
# so sampling takes the real path.
SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": True,
    "steps_offset": 0,
    "prediction_type": "v_prediction",
    "rescale_betas_zero_snr": True,
    "timestep_spacing": "trailing",
    "snr_shift_scale": 1.0,
}

PUBLISHED: dict[str, dict[str, Any]] = {
    "THUDM/CogVideoX-5b-I2V": {
        "transformer": {
            "num_attention_heads": 48,
            "attention_head_dim": 64,
            "in_channels": 32,
            "out_channels": 16,
            "num_layers": 42,
            "text_embed_dim": 4096,
            "time_embed_dim": 512,
            "sample_width": 90,
            "sample_height": 60,
            "sample_frames": 49,
            "patch_size": 2,
            "max_text_seq_length": 226,
            "use_rotary_positional_embeddings": True,
            "use_learned_positional_embeddings": True,
        },
        "vae": {"down_block_types": _DOWN, "up_block_types": _UP, "scaling_factor": 0.7},
        "text_encoder": _T5_XXL_ENCODER,
        "scheduler": SCHEDULER,
    }
}

VARIANT_OF_HUB = {"THUDM/CogVideoX-5b-I2V": "cogvideox"}

# As small as the classes allow, keeping the published structure: 16 latent channels (32 in), patches of
# 2, four VAE levels (8x spatial; the first two also 4x temporal), a two-layer T5. Heads 16 wide: the 3-D
# rotary embedding splits a head in 4 + 6 + 6. No learned positional embeddings: those pin the published
# model to 720x480, and the contract runs other sizes.
TINY: dict[str, dict[str, Any]] = {
    "tiny-cogvideox": {
        "transformer": {
            "num_attention_heads": 2,
            "attention_head_dim": 16,
            "in_channels": 32,
            "out_channels": 16,
            "num_layers": 1,
            "text_embed_dim": 32,
            "time_embed_dim": 8,
            "patch_size": 2,
            "max_text_seq_length": 226,
            "use_rotary_positional_embeddings": True,
            "use_learned_positional_embeddings": False,
        },
        "vae": {
            "down_block_types": _DOWN,
            "up_block_types": _UP,
            "block_out_channels": [4, 4, 4, 4],
            "latent_channels": 16,
            "layers_per_block": 1,
            "norm_num_groups": 2,
            "scaling_factor": 0.7,
        },
        "text_encoder": {
            "d_model": 32,
            "d_kv": 8,
            "d_ff": 32,
            "num_layers": 2,
            "num_heads": 2,
            "relative_attention_num_buckets": 8,
            "relative_attention_max_distance": 16,
            "feed_forward_proj": "gated-gelu",
            "dropout_rate": 0.0,
        },
        "scheduler": SCHEDULER,
    }
}
