"""Stable Video Diffusion's published configurations and its tiny test model, as data.

Where the values come from:

- the UNet: ``UNetSpatioTemporalConditionModel``'s class defaults are the published layout (320,
  640, 1280, 1280 channels, 5/10/20/20 heads, cross-attention 1024, three 256-wide added-time
  embeddings = 768); the checkpoints differ only in ``num_frames`` (14, or 25 for the XT models)
  and ``sample_size`` 96 (576 / 8). Stability's sampling configs (``scripts/sampling/configs/
  svd*.yaml`` in Stability-AI/generative-models: model_channels 320, channel_mult 1-2-4-4,
  num_head_channels 64, context_dim 1024, adm_in_channels 768) give the same network;
- the VAE: an SD 2.1 f8 encoder (ch 128, ch_mult 1-2-4-4, 2 res blocks, 4 latent channels, scale
  0.18215) with the temporal decoder (``video_kernel_size`` 3-1-1) as ``AutoencoderKLTemporalDecoder``;
- the image encoder: OpenCLIP ViT-H/14's vision tower with its 1024-wide projection
  (:data:`~.base.CLIP_VISION_H14`), preprocessed with CLIP's mean and std at 224 pixels;
- the scheduler: the published ``scheduler_config.json`` (EulerDiscreteScheduler, v-prediction,
  continuous timesteps, Karras sigmas from 0.002 to 700), the EDM discretisation of the sampling
  configs.
"""

from __future__ import annotations

from typing import Any

from i2v_nodes.families.toolkit.meta import CLIP_VISION_H14

SVD, SVD_XT = "svd", "svd-xt"  # the variants: trained on 14 and on 25 frames
XT_FRAMES = 25

_UNET = {
    "in_channels": 8,  # the noisy latents and the image latents, concatenated
    "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlockSpatioTemporal"] * 3 + ["DownBlockSpatioTemporal"],
    "up_block_types": ["UpBlockSpatioTemporal"] + ["CrossAttnUpBlockSpatioTemporal"] * 3,
    "block_out_channels": [320, 640, 1280, 1280],
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 768,  # fps, motion bucket and noise augmentation, 256 each
    "layers_per_block": 2,
    "cross_attention_dim": 1024,
    "transformer_layers_per_block": 1,
    "num_attention_heads": [5, 10, 20, 20],
    "sample_size": 96,
}
VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "latent_channels": 4,
    "sample_size": 768,
    "scaling_factor": 0.18215,
    "force_upcast": True,
}
FEATURE_EXTRACTOR = {
    "crop_size": {"height": 224, "width": 224},
    "size": {"shortest_edge": 224},
    "do_center_crop": True,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3,
    "rescale_factor": 1 / 255,
}
SCHEDULER = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "interpolation_type": "linear",
    "prediction_type": "v_prediction",
    "sigma_max": 700.0,
    "sigma_min": 0.002,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "timestep_type": "continuous",
    "trained_betas": None,
    "use_karras_sigmas": True,
}


def _published(frames: int) -> dict[str, dict[str, Any]]:
    return {"unet": {**_UNET, "num_frames": frames}, "vae": VAE, "image_encoder": CLIP_VISION_H14,
            "feature_extractor": FEATURE_EXTRACTOR, "scheduler": SCHEDULER}


PUBLISHED = {
    "stabilityai/stable-video-diffusion-img2vid": _published(14),
    "stabilityai/stable-video-diffusion-img2vid-xt": _published(XT_FRAMES),
    "stabilityai/stable-video-diffusion-img2vid-xt-1-1": _published(XT_FRAMES),
}
VARIANT_OF_HUB = {
    "stabilityai/stable-video-diffusion-img2vid": SVD,
    "stabilityai/stable-video-diffusion-img2vid-xt": SVD_XT,
    "stabilityai/stable-video-diffusion-img2vid-xt-1-1": SVD_XT,
}

# The tiny model: the real layout (8-channel UNet input, four VAE levels so latents are 1/8 of the
# image, three added-time embeddings, a projected CLIP vision tower) at toy widths. The UNet's and
# the temporal decoder's group norms have 32 groups, so 32 channels is their floor. The pipeline
# always resizes the image to 224 pixels for CLIP, so the tiny tower keeps 224 with large patches.
TINY = {
    "tiny-svd": {
        "unet": {
            "down_block_types": ["CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"],
            "up_block_types": ["UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"],
            "in_channels": 8,
            "out_channels": 4,
            "block_out_channels": [32, 64],
            "addition_time_embed_dim": 8,
            "projection_class_embeddings_input_dim": 24,
            "layers_per_block": 1,
            "cross_attention_dim": 16,
            "transformer_layers_per_block": 1,
            "num_attention_heads": [2, 4],
            "num_frames": 14,
            "sample_size": 8,
        },
        "vae": {**VAE, "block_out_channels": [32, 32, 32, 32], "layers_per_block": 1, "sample_size": 64},
        "image_encoder": {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
                          "num_attention_heads": 2, "image_size": 224, "patch_size": 32, "projection_dim": 16,
                          "hidden_act": "gelu"},
        "feature_extractor": FEATURE_EXTRACTOR,
        "scheduler": SCHEDULER,
    }
}
