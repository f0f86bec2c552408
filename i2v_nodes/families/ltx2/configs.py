"""LTX-2 configurations as data: the published model (for sizes without a download) and the tiny one.

The published layout is diffusers' conversion of LTX-2 19B dev (``scripts/convert_ltx2_to_diffusers.py``,
``--version 2.0``): the 48-block audio-video transformer, the text connectors, the video VAE (no
timestep conditioning, the script's default), the audio VAE and the vocoder; the scheduler is the
one the script saves for the non-distilled model. The text encoder is Gemma 3 12B
(``google/gemma-3-12b-it``: a 48-layer 3840-wide language model and a SigLIP vision tower, which
the class carries even though LTX-2 only reads the text hidden states). They are for counting
parameters and tracing memory on the meta device; latent statistics stay at the classes' defaults.

Also here, as data: Lightricks' sampling recipe, the default negative prompt and the widgets of the
LTX2Options node with the settings they make.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_TRANSFORMER_19B: dict[str, Any] = {
    "in_channels": 128,
    "out_channels": 128,
    "patch_size": 1,
    "patch_size_t": 1,
    "num_attention_heads": 32,
    "attention_head_dim": 128,
    "cross_attention_dim": 4096,
    "vae_scale_factors": [8, 32, 32],
    "pos_embed_max_pos": 20,
    "base_height": 2048,
    "base_width": 2048,
    "gated_attn": False,
    "cross_attn_mod": False,
    "audio_in_channels": 128,
    "audio_out_channels": 128,
    "audio_patch_size": 1,
    "audio_patch_size_t": 1,
    "audio_num_attention_heads": 32,
    "audio_attention_head_dim": 64,
    "audio_cross_attention_dim": 2048,
    "audio_scale_factor": 4,
    "audio_pos_embed_max_pos": 20,
    "audio_sampling_rate": 16000,
    "audio_hop_length": 160,
    "audio_gated_attn": False,
    "audio_cross_attn_mod": False,
    "num_layers": 48,
    "activation_fn": "gelu-approximate",
    "qk_norm": "rms_norm_across_heads",
    "norm_elementwise_affine": False,
    "norm_eps": 1e-6,
    "caption_channels": 3840,
    "attention_bias": True,
    "attention_out_bias": True,
    "rope_theta": 10000.0,
    "rope_double_precision": True,
    "causal_offset": 1,
    "timestep_scale_multiplier": 1000,
    "cross_attn_timestep_scale_multiplier": 1000,
    "rope_type": "split",
    "use_prompt_embeddings": True,
    "perturbed_attn": False,
}
_CONNECTORS: dict[str, Any] = {
    "caption_channels": 3840,
    "text_proj_in_factor": 49,  # Gemma 3 12B's 48 layers plus its embeddings
    "video_connector_num_attention_heads": 30,
    "video_connector_attention_head_dim": 128,
    "video_connector_num_layers": 2,
    "video_connector_num_learnable_registers": 128,
    "video_gated_attn": False,
    "audio_connector_num_attention_heads": 30,
    "audio_connector_attention_head_dim": 128,
    "audio_connector_num_layers": 2,
    "audio_connector_num_learnable_registers": 128,
    "audio_gated_attn": False,
    "connector_rope_base_seq_len": 4096,
    "rope_theta": 10000.0,
    "rope_double_precision": True,
    "causal_temporal_positioning": False,
    "rope_type": "split",
    "per_modality_projections": False,
    "proj_bias": False,
}
_VIDEO_VAE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 128,
    "block_out_channels": [256, 512, 1024, 2048],
    "down_block_types": ["LTX2VideoDownBlock3D"] * 4,
    "decoder_block_out_channels": [256, 512, 1024],
    "layers_per_block": [4, 6, 6, 2, 2],
    "decoder_layers_per_block": [5, 5, 5, 5],
    "spatio_temporal_scaling": [True, True, True, True],
    "decoder_spatio_temporal_scaling": [True, True, True],
    "decoder_inject_noise": [False, False, False, False],
    "downsample_type": ["spatial", "temporal", "spatiotemporal", "spatiotemporal"],
    "upsample_type": ["spatiotemporal", "spatiotemporal", "spatiotemporal"],
    "upsample_residual": [True, True, True],
    "upsample_factor": [2, 2, 2],
    "timestep_conditioning": False,
    "patch_size": 4,
    "patch_size_t": 1,
    "resnet_norm_eps": 1e-6,
    "encoder_causal": True,
    "decoder_causal": False,
    "encoder_spatial_padding_mode": "zeros",
    "decoder_spatial_padding_mode": "reflect",
    "spatial_compression_ratio": 32,
    "temporal_compression_ratio": 8,
}
_AUDIO_VAE: dict[str, Any] = {
    "base_channels": 128,
    "output_channels": 2,
    "ch_mult": [1, 2, 4],
    "num_res_blocks": 2,
    "attn_resolutions": None,
    "in_channels": 2,
    "resolution": 256,
    "latent_channels": 8,
    "norm_type": "pixel",
    "causality_axis": "height",
    "dropout": 0.0,
    "mid_block_add_attention": False,
    "sample_rate": 16000,
    "mel_hop_length": 160,
    "is_causal": True,
    "mel_bins": 64,
    "double_z": True,
}
_VOCODER: dict[str, Any] = {
    "in_channels": 128,
    "hidden_channels": 1024,
    "out_channels": 2,
    "upsample_kernel_sizes": [16, 15, 8, 4, 4],
    "upsample_factors": [6, 5, 2, 2, 2],
    "resnet_kernel_sizes": [3, 7, 11],
    "resnet_dilations": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
    "act_fn": "leaky_relu",
    "leaky_relu_negative_slope": 0.1,
    "antialias": False,
    "final_act_fn": "tanh",
    "final_bias": True,
    "output_sampling_rate": 24000,
}
# Gemma 3 12B (google/gemma-3-12b-it), as transformers' Gemma3Config takes it.
_GEMMA3_12B: dict[str, Any] = {
    "text_config": {
        "vocab_size": 262208,
        "hidden_size": 3840,
        "intermediate_size": 15360,
        "num_hidden_layers": 48,
        "num_attention_heads": 16,
        "num_key_value_heads": 8,
        "head_dim": 256,
        "query_pre_attn_scalar": 256,
        "sliding_window": 1024,
        "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-6,
        "hidden_activation": "gelu_pytorch_tanh",
    },
    "vision_config": {
        "hidden_size": 1152,
        "intermediate_size": 4304,
        "num_hidden_layers": 27,
        "num_attention_heads": 16,
        "image_size": 896,
        "patch_size": 14,
        "vision_use_head": False,
    },
    "mm_tokens_per_image": 256,
}


def _scheduler() -> dict[str, Any]:
    """What the conversion script saves for the non-distilled model (resolution-dependent shift)."""
    return {
        "use_dynamic_shifting": True,
        "base_shift": 0.95,
        "max_shift": 2.05,
        "base_image_seq_len": 1024,
        "max_image_seq_len": 4096,
        "shift_terminal": 0.1,
    }


PUBLISHED: dict[str, dict[str, Any]] = {
    "Lightricks/LTX-2": {
        "transformer": _TRANSFORMER_19B,
        "connectors": _CONNECTORS,
        "vae": _VIDEO_VAE,
        "audio_vae": _AUDIO_VAE,
        "vocoder": _VOCODER,
        "text_encoder": _GEMMA3_12B,
        "scheduler": _scheduler(),
    },
}

VARIANT_OF_HUB = {"Lightricks/LTX-2": "ltx2"}

# The tiny model: the published structure (32x spatial and 8x temporal video compression, 128 latent
# channels, learnable connector registers, the audio VAE and a vocoder) at the smallest widths the
# classes take. Its video VAE is timestep-conditioned so that the decode-noise path runs in tests;
# its vocoder upsamples each mel frame (1/100 s) by 80 samples: 8 kHz sound.
_TINY_GEMMA: dict[str, Any] = {
    "text_config": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 16,
        "query_pre_attn_scalar": 16,
        "sliding_window": 512,
        "max_position_embeddings": 2048,
    },
    "vision_config": {
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "image_size": 28,
        "patch_size": 14,
        "vision_use_head": False,
    },
    "mm_tokens_per_image": 4,
}

TINY: dict[str, dict[str, Any]] = {
    "tiny-ltx2": {
        "transformer": {
            **_TRANSFORMER_19B,
            "num_attention_heads": 2,
            "attention_head_dim": 8,
            "cross_attention_dim": 16,
            "audio_in_channels": 4,
            "audio_out_channels": 4,
            "audio_num_attention_heads": 2,
            "audio_attention_head_dim": 4,
            "audio_cross_attention_dim": 8,
            "num_layers": 2,
            "caption_channels": 32,
        },
        "connectors": {
            **_CONNECTORS,
            "caption_channels": 32,
            "text_proj_in_factor": 3,
            "video_connector_num_attention_heads": 2,
            "video_connector_attention_head_dim": 16,
            "video_connector_num_layers": 1,
            "audio_connector_num_attention_heads": 2,
            "audio_connector_attention_head_dim": 16,
            "audio_connector_num_layers": 1,
        },
        "vae": {
            **_VIDEO_VAE,
            "block_out_channels": [8, 8, 8, 8],
            # each width twice the one before, as published: up blocks then need no channel change
            "decoder_block_out_channels": [8, 16, 32],
            "layers_per_block": [1, 1, 1, 1, 1],
            "decoder_layers_per_block": [1, 1, 1, 1],
            "timestep_conditioning": True,
        },
        "audio_vae": {
            **_AUDIO_VAE,
            "base_channels": 4,
            "ch_mult": [1, 2],
            "num_res_blocks": 1,
            "resolution": 32,
            "latent_channels": 2,
            "mel_bins": 8,
        },
        "vocoder": {
            **_VOCODER,
            "in_channels": 16,  # the audio VAE's 2 output channels x 8 mel bins
            "hidden_channels": 32,
            "upsample_kernel_sizes": [10, 8, 8],
            "upsample_factors": [5, 4, 4],
            "resnet_kernel_sizes": [3],
            "resnet_dilations": [[1, 3, 5]],
            "output_sampling_rate": 8000,
        },
        "text_encoder": _TINY_GEMMA,
        "scheduler": _scheduler(),
    },
}


# --- the recipe and the options node ---------------------------------------------------------

# Lightricks' LTX-2 recipe (ltx-pipelines' LTX_2_PARAMS): audio CFG 7, rescale 0.7 for both streams,
# STG on block 29. The CRF is the H.264 re-compression the model saw its conditioning images with.
AUDIO_GUIDANCE = 7.0
GUIDANCE_RESCALE = 0.7
STG_BLOCK = 29
IMAGE_CRF = 33
# Lightricks' default negative prompt (ltx-pipelines' constants, as diffusers' ltx2 utils carry it).
NEGATIVE = (
    "blurry, out of focus, overexposed, underexposed, low contrast, washed out colors, excessive noise, "
    "grainy texture, poor lighting, flickering, motion blur, distorted proportions, unnatural skin tones, "
    "deformed facial features, asymmetrical face, missing facial features, extra limbs, disfigured hands, "
    "wrong hand count, artifacts around text, inconsistent perspective, camera shake, incorrect depth of "
    "field, background too sharp, background clutter, distracting reflections, harsh shadows, inconsistent "
    "lighting direction, color banding, cartoonish rendering, 3D CGI look, unrealistic materials, uncanny "
    "valley effect, incorrect ethnicity, wrong gender, exaggerated expressions, wrong gaze direction, "
    "mismatched lip sync, silent or muted audio, distorted voice, robotic voice, echo, background noise, "
    "off-sync audio, incorrect dialogue, added dialogue, repetitive speech, jittery movement, awkward "
    "pauses, incorrect timing, unnatural transitions, inconsistent framing, tilted camera, flat lighting, "
    "inconsistent tone, cinematic oversaturation, stylized filters, or AI artifacts."
)


@dataclass(frozen=True)
class LTX2Settings:
    """What the LTX2Options node sets; 0 means "the model's own value" (see the tooltips)."""

    audio_guidance_scale: float = 0.0  # 0 = 7.0
    guidance_rescale: float = 0.0  # 0 = 0.7; negative = off
    stg_scale: float = 0.0  # 0 = off
    stg_block: int = 0  # 0 = block 29
    modality_scale: float = 0.0  # 0 (or 1) = off
    decode_timestep: float = 0.0
    decode_noise_scale: float = 0.0  # 0 = the decode timestep
    image_crf: int = 0  # 0 = 33; negative = no re-compression


OPTION_SPECS: dict[str, tuple[str, float, float, float, str]] = {
    # name: (type, min, max, step, tooltip)
    "audio_guidance_scale": ("FLOAT", 0.0, 100.0, 0.1, (
        "Classifier-free guidance of the sound stream (I2VSample's guidance_scale guides the picture). "
        "LTX-2 wants it higher than the picture's. 0 = the model's own, 7.0; 1 = no guidance for sound.")),
    "guidance_rescale": ("FLOAT", -1.0, 1.0, 0.05, (
        "Rescales the guided prediction towards the unguided one's spread, against over-exposure and "
        "over-saturation at high guidance (both streams). 0 = the model's own, 0.7; a negative value "
        "turns rescaling off.")),
    "stg_scale": ("FLOAT", 0.0, 10.0, 0.1, (
        "Spatio-temporal guidance: steers away from a prediction with one block's self-attention "
        "skipped, for sharper, steadier motion (both streams). Costs one more transformer pass per "
        "step. 0 = off (this pack's default); Lightricks' full recipe uses 1.0.")),
    "stg_block": ("INT", 0, 47, 1, (
        "The transformer block whose self-attention STG skips (counted from 0). 0 = the model's own, "
        "block 29. Only used when stg_scale is above 0.")),
    "modality_scale": ("FLOAT", 0.0, 10.0, 0.1, (
        "Modality-isolation guidance: steers away from a prediction where picture and sound do not "
        "attend to each other, for better audio-video sync. Costs one more transformer pass per step. "
        "0 or 1 = off (this pack's default); Lightricks' full recipe uses 3.0.")),
    "decode_timestep": ("FLOAT", 0.0, 1.0, 0.005, (
        "For a timestep-conditioned video VAE only: the noise level the VAE decodes at, which "
        "smooths leftover noise. 0 = the model's own (none). LTX-2's published VAE has no timestep "
        "conditioning: leave it at 0 there.")),
    "decode_noise_scale": ("FLOAT", 0.0, 1.0, 0.005, (
        "For a timestep-conditioned video VAE only: how much fresh noise is mixed into the latents "
        "before decoding (from the clip's seed). 0 = the same as decode_timestep.")),
    "image_crf": ("INT", -1, 51, 1, (
        "The H.264 quality the input image is re-compressed with before conditioning, as LTX-2 saw "
        "its training images (needs PyAV, which ComfyUI ships). 0 = the model's own, 33; -1 = use the "
        "image as it is. Without PyAV the default is -1, with a warning.")),
}
