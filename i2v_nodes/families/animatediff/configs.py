"""AnimateDiff image-to-video (PIA)'s published configurations and its tiny test model, as data.

A PIA model is two published things: a Stable Diffusion 1.5 base and PIA's motion adapter. Where the
values come from:

- the base: ``stable-diffusion-v1-5/stable-diffusion-v1-5`` (the copy of ``runwayml/stable-diffusion-v1-5``
  that diffusers' examples now name): its ``unet/config.json`` (320, 640, 1280, 1280 channels, 8 heads,
  cross-attention 768, 64-pixel latents), ``vae/config.json`` (128, 256, 512, 512 channels, 4 latent
  channels, scale 0.18215) and ``text_encoder/config.json`` (OpenAI CLIP ViT-L/14's text tower, 12
  layers of 768, quick_gelu);
- the adapter: ``openmmlab/PIA-condition-adapter``'s ``MotionAdapter``, PIA's own motion-module settings
  (``example/config/base.yaml`` in open-mmlab/PIA: 8 heads, one temporal transformer of two temporal
  self-attentions per layer, positional encoding up to 32 frames, motion modules at every resolution
  and none in the mid block) and its 9-channel input layer (noisy latents 4 + mask 1 + image latents 4);
- the scheduler: PIA's own sampling settings from the same file (DDIM, linear betas 0.00085 to 0.012,
  no clipping, steps offset 1, the rest DDIMScheduler's defaults as PIA builds it; 25 steps,
  512 x 512 x 16 frames).

The UNet that runs is the base's UNet with the adapter's motion modules and input layer merged in
(diffusers' ``UNetMotionModel.from_unet2d``): the family builds that config from these two.
"""

from __future__ import annotations

from typing import Any

PIA = "pia"  # the one variant: an SD 1.5 base animated by PIA's image-conditioned motion adapter
HUB_ID = "openmmlab/PIA-condition-adapter"
BASE_HUB_ID = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # the base a published PIA loads with

SD15_UNET = {
    "_class_name": "UNet2DConditionModel",
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
}
SD15_VAE = {
    "_class_name": "AutoencoderKL",
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 512,
    "scaling_factor": 0.18215,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}
SD15_TEXT_ENCODER = {  # a transformers CLIPTextConfig
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "projection_dim": 768,
    "hidden_act": "quick_gelu",
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
}
PIA_ADAPTER = {
    "_class_name": "MotionAdapter",
    "block_out_channels": [320, 640, 1280, 1280],
    "conv_in_channels": 9,
    "motion_layers_per_block": 2,
    "motion_max_seq_length": 32,
    "motion_mid_block_layers_per_block": 1,
    "motion_norm_num_groups": 32,
    "motion_num_attention_heads": 8,
    "motion_transformer_layers_per_block": 1,
    "motion_transformer_layers_per_mid_block": 1,
    "use_motion_mid_block": False,
}
PIA_SCHEDULER = {
    "_class_name": "DDIMScheduler",
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "linear",
    "clip_sample": False,
    "steps_offset": 1,
    "timestep_spacing": "leading",
}

# Published models by hub id: the base and the adapter as published. The family merges them into the
# UNet that runs (``unet``) and keeps the adapter's config beside it (``motion_adapter``).
PUBLISHED: dict[str, dict[str, dict[str, Any]]] = {
    HUB_ID: {
        "unet": SD15_UNET,
        "motion_adapter": PIA_ADAPTER,
        "vae": SD15_VAE,
        "text_encoder": SD15_TEXT_ENCODER,
        "scheduler": PIA_SCHEDULER,
    }
}
BASE_OF_HUB = {HUB_ID: BASE_HUB_ID}

# The tiny model: the real layout (an SD-style UNet with one cross-attention level, PIA's 9-channel
# input, motion modules at every level and none in the mid block, four VAE levels so latents are 1/8 of
# the image, a two-layer CLIP text tower) at toy widths. Group norms need channels divisible by their
# groups, so the widths are multiples of 4.
TINY: dict[str, dict[str, dict[str, Any]]] = {
    "tiny-animatediff-i2v": {
        "unet": {
            "_class_name": "UNet2DConditionModel",
            "block_out_channels": [8, 16],
            "layers_per_block": 1,
            "sample_size": 8,
            "in_channels": 4,
            "out_channels": 4,
            "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
            "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
            "cross_attention_dim": 16,
            "attention_head_dim": 2,
            "norm_num_groups": 4,
        },
        "motion_adapter": {
            "block_out_channels": [8, 16],
            "motion_layers_per_block": 1,
            "motion_norm_num_groups": 4,
            "motion_num_attention_heads": 2,
            "motion_max_seq_length": 32,
            "use_motion_mid_block": False,
            "conv_in_channels": 9,
        },
        "vae": {
            "block_out_channels": [8, 8, 8, 8],
            "in_channels": 3,
            "out_channels": 3,
            "down_block_types": ["DownEncoderBlock2D"] * 4,
            "up_block_types": ["UpDecoderBlock2D"] * 4,
            "latent_channels": 4,
            "layers_per_block": 1,
            "norm_num_groups": 2,
            "sample_size": 64,
            "scaling_factor": 0.18215,
        },
        "text_encoder": {
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
            "projection_dim": 16,
            "hidden_act": "quick_gelu",
        },
        "scheduler": PIA_SCHEDULER,
    }
}
