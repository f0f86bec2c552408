"""Stable Video Diffusion's memory traces: one spatio-temporal UNet call with both CFG halves, the
temporal decoder over one chunk of frames, and the CLIP image encoder."""

from __future__ import annotations

import json

import torch

from i2v_nodes.families.contract.jobs import Trace
from i2v_nodes.families.contract.traces import MemoryTraces
from i2v_nodes.families.svd.components import meta_component
from i2v_nodes.families.svd.spec import RULES


class SVDTraces(MemoryTraces):
    def meta_component(self, role: str, config_json: str, dtype: torch.dtype) -> torch.nn.Module:
        return meta_component(role, config_json, dtype)

    def denoiser(self, variant, configs, dtype, rows, frames, height, width, full_depth=False) -> Trace:
        unet = meta_component("unet", _config_of(configs, "unet"), dtype)
        scale = RULES[variant].vae_spatial
        with torch.device("meta"):
            sample = torch.empty(rows, frames, unet.config.in_channels, height // scale, width // scale,
                                 dtype=dtype)
            timestep = torch.empty((), dtype=torch.float32)  # continuous (EDM) timesteps
            kwargs = {
                "encoder_hidden_states": torch.empty(rows, 1, unet.config.cross_attention_dim, dtype=dtype),
                "added_time_ids": torch.empty(rows, 3, dtype=dtype),  # fps, motion bucket, noise
                "return_dict": False,
            }
        return Trace(unet, (sample, timestep), kwargs)

    def vae(self, variant, configs, dtype, direction, frames, height, width, tiling) -> Trace:
        # no tiled mode: tiling changes nothing (vae_tiling is False, so nothing asks for it)
        vae = meta_component("vae", _config_of(configs, "vae"), dtype)
        scale = RULES[variant].vae_spatial
        with torch.device("meta"):
            if direction == "decode":  # one chunk of frames per call, decoded together
                latents = torch.empty(frames, vae.config.latent_channels, height // scale, width // scale,
                                      dtype=dtype)
                return Trace(vae.decode, (latents, frames), {"return_dict": False})
            image = torch.empty(1, 3, height, width, dtype=dtype)  # the input image, once per clip
        return Trace(vae.encode, (image,), {"return_dict": False})

    def encoders(self, variant, configs, dtype) -> list[Trace]:
        encoder = meta_component("image_encoder", _config_of(configs, "image_encoder"), dtype)
        side = encoder.config.image_size
        with torch.device("meta"):
            pixels = torch.empty(1, 3, side, side, dtype=dtype)
        return [Trace(encoder, (pixels,))]


def _config_of(configs: str, role: str) -> str:
    return json.dumps(json.loads(configs)[role], sort_keys=True)
