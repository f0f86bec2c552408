"""AnimateDiff's memory traces: one merged motion UNet call with both CFG halves (the prompt repeated for
every frame), the VAE's 2-D encode and decode, and the CLIP text encoder."""

from __future__ import annotations

import json

import torch

from i2v_nodes.families.animatediff.components import meta_component
from i2v_nodes.families.animatediff.pairs import runnable_unet_config
from i2v_nodes.families.animatediff.spec import RULES
from i2v_nodes.families.contract.jobs import Trace
from i2v_nodes.families.contract.traces import MemoryTraces
from i2v_nodes.families.toolkit.meta import config_json, meta_vae


class AnimateDiffTraces(MemoryTraces):
    def meta_component(self, role: str, config_json: str, dtype: torch.dtype) -> torch.nn.Module:
        return meta_component(role, config_json, dtype)

    def denoiser(self, variant, configs, dtype, rows, frames, height, width, full_depth=False) -> Trace:
        unet = meta_component("unet", runnable_unet_config(configs), dtype)
        scale = RULES.vae_spatial
        with torch.device("meta"):
            # noisy latents, mask and image latents, concatenated on the channels
            sample = torch.empty(rows, unet.config.in_channels, frames, height // scale, width // scale,
                                 dtype=dtype)
            timestep = torch.empty((), dtype=torch.long)
            # the pipeline repeats the prompt for every frame
            text = torch.empty(rows * frames, 77, unet.config.cross_attention_dim, dtype=dtype)
        return Trace(unet, (sample, timestep), {"encoder_hidden_states": text, "return_dict": False})

    def vae(self, variant, configs, dtype, direction, frames, height, width, tiling) -> Trace:
        from diffusers import AutoencoderKL

        vae = meta_vae(AutoencoderKL, _config_of(configs, "vae"), dtype, tiling)
        scale = RULES.vae_spatial
        with torch.device("meta"):
            if direction == "decode":  # a chunk of frames decodes as a batch of images
                latents = torch.empty(frames, vae.config.latent_channels, height // scale, width // scale,
                                      dtype=dtype)
                return Trace(vae.decode, (latents,))
            image = torch.empty(1, 3, height, width, dtype=dtype)  # the input image, once per clip
        return Trace(vae.encode, (image,))

    def encoders(self, variant, configs, dtype) -> list[Trace]:
        encoder = meta_component("text_encoder", _config_of(configs, "text_encoder"), dtype)
        with torch.device("meta"):
            ids = torch.zeros(1, encoder.config.max_position_embeddings, dtype=torch.long)
        return [Trace(encoder, (ids,))]


def _config_of(configs: str, role: str) -> str:
    return config_json(json.loads(configs)[role])
