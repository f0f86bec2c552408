"""LTX-Video's memory traces: one transformer call (two of its blocks: depth leaves the peak unchanged),
the VAE's encode of the image and decode of the clip, and the T5 text encoder."""

from __future__ import annotations

import json

import torch

from i2v_nodes.families.contract.jobs import Trace
from i2v_nodes.families.contract.traces import MemoryTraces
from i2v_nodes.families.ltx_video.components import meta_component, meta_vae_of
from i2v_nodes.families.ltx_video.spec import RULES, TEXT_TOKENS

TRACE_BLOCKS = 2  # one denoiser call's peak does not grow with depth (each block frees its intermediates)


class LTXVideoTraces(MemoryTraces):
    def meta_component(self, role: str, config_json: str, dtype: torch.dtype) -> torch.nn.Module:
        return meta_component(role, config_json, dtype)

    def block_state(self, variant, configs, frames, height, width) -> tuple[int, int, int]:
        config, rules = json.loads(configs)["transformer"], RULES[variant]
        tokens = (rules.latent_frames(frames) * (height // rules.vae_spatial) * (width // rules.vae_spatial))
        inner = config.get("num_attention_heads", 32) * config.get("attention_head_dim", 64)
        return tokens, inner, config.get("num_layers", 28)

    def denoiser(self, variant, configs, dtype, rows, frames, height, width, full_depth=False) -> Trace:
        all_configs = json.loads(configs)
        config = dict(all_configs["transformer"])
        if not full_depth:
            config["num_layers"] = min(TRACE_BLOCKS, config.get("num_layers", 28))
        model = meta_component("transformer", json.dumps(config, sort_keys=True), dtype)
        rules = RULES[variant]
        lf, lh, lw = rules.latent_frames(frames), height // rules.vae_spatial, width // rules.vae_spatial
        tokens, text = lf * lh * lw, TEXT_TOKENS[variant]
        with torch.device("meta"):
            kwargs = {
                "hidden_states": torch.empty(rows, tokens, model.config.in_channels, dtype=dtype),
                "encoder_hidden_states": torch.empty(rows, text, model.config.caption_channels, dtype=dtype),
                "timestep": torch.empty(rows, tokens),  # per token: the conditioned frame's are lower
                "encoder_attention_mask": torch.empty(rows, text, dtype=dtype),
                "num_frames": lf,
                "height": lh,
                "width": lw,
                "rope_interpolation_scale": (rules.vae_temporal / rules.default_fps, rules.vae_spatial,
                                             rules.vae_spatial),
                "return_dict": False,
            }
        return Trace(model, (), kwargs)

    def vae(self, variant, configs, dtype, direction, frames, height, width, tiling) -> Trace:
        vae = meta_vae_of(json.dumps(json.loads(configs)["vae"], sort_keys=True), dtype, tiling)
        rules = RULES[variant]
        with torch.device("meta"):
            if direction == "decode":
                latents = torch.empty(1, vae.config.latent_channels, rules.latent_frames(frames),
                                      height // rules.vae_spatial, width // rules.vae_spatial, dtype=dtype)
                timestep = torch.empty(1, dtype=dtype) if vae.config.timestep_conditioning else None
                return Trace(vae.decode, (latents, timestep), {"return_dict": False},
                             repeat=((vae, "blend_v"), (vae, "blend_h")))
            image = torch.empty(1, 3, 1, height, width, dtype=dtype)  # the pipelines encode the image alone
        return Trace(vae.encode, (image,), {"return_dict": False},
                     repeat=((vae, "blend_v"), (vae, "blend_h")))

    def encoders(self, variant, configs, dtype) -> list[Trace]:
        config = json.loads(configs)["text_encoder"]
        text = meta_component("text_encoder", json.dumps(config, sort_keys=True), dtype)
        with torch.device("meta"):
            ids = torch.empty(1, TEXT_TOKENS[variant], dtype=torch.long)
        return [Trace(text, (ids,))]
