"""I2VGen-XL's memory traces: one UNet call with both CFG halves, and the VAE's 2-D encode and decode."""

from __future__ import annotations

import json

import torch

from i2v_nodes.families.contract.jobs import Trace
from i2v_nodes.families.contract.traces import MemoryTraces
from i2v_nodes.families.i2vgen_xl.components import meta_component, meta_vae_of
from i2v_nodes.families.i2vgen_xl.spec import RULES


class I2VGenXLTraces(MemoryTraces):
    def meta_component(self, role: str, config_json: str, dtype: torch.dtype) -> torch.nn.Module:
        return meta_component(role, config_json, dtype)

    def denoiser(self, variant, configs, dtype, rows, frames, height, width, full_depth=False) -> Trace:
        unet_config = json.loads(configs)["unet"]
        unet = self.meta_component("unet", json.dumps(unet_config, sort_keys=True), dtype)
        lh, lw = height // RULES.vae_spatial, width // RULES.vae_spatial
        channels, cross = unet.config.in_channels, unet.config.cross_attention_dim
        with torch.device("meta"):
            sample = torch.empty(rows, channels, frames, lh, lw, dtype=dtype)
            kwargs = {
                "encoder_hidden_states": torch.empty(rows, 77, cross, dtype=dtype),
                "fps": torch.empty(rows, dtype=torch.long),
                "image_latents": torch.empty(rows, channels, frames, lh, lw, dtype=dtype),
                "image_embeddings": torch.empty(rows, 1, cross, dtype=dtype),
                "return_dict": False,
            }
            timestep = torch.empty((), dtype=torch.long)
        return Trace(unet, (sample, timestep), kwargs)

    def vae(self, variant, configs, dtype, direction, frames, height, width, tiling) -> Trace:
        vae = meta_vae_of(json.dumps(json.loads(configs)["vae"], sort_keys=True), dtype, tiling)
        scale = RULES.vae_spatial
        with torch.device("meta"):
            if direction == "decode":  # a chunk of frames decodes as a batch of images
                latents = torch.empty(
                    frames, vae.config.latent_channels, height // scale, width // scale, dtype=dtype
                )
                return Trace(vae.decode, (latents,))
            return Trace(vae.encode, (torch.empty(1, 3, height, width, dtype=dtype),))
