"""CogVideoX's memory traces: one transformer call with both CFG halves (two of its blocks: depth leaves
the peak unchanged), the 3-D VAE's encode of the image and decode of a clip, and the T5 encoder."""

from __future__ import annotations

import json

import torch

from i2v_nodes.families.contract.jobs import Trace
from i2v_nodes.families.contract.traces import MemoryTraces
from tests.families.cogvideox.components import meta_component, meta_vae_of
from tests.families.cogvideox.spec import RULES, TEXT_TOKENS

# Each block frees its intermediates before the next starts: this many blocks of the real width set the
# same peak as all of them.
TRACE_BLOCKS = 2


class CogVideoXTraces(MemoryTraces):
    def meta_component(self, role: str, config_json: str, dtype: torch.dtype) -> torch.nn.Module:
        return meta_component(role, config_json, dtype)

    def denoiser(self, variant, configs, dtype, rows, frames, height, width, full_depth=False) -> Trace:
        config = dict(json.loads(configs)["transformer"])
        if not full_depth:
            config["num_layers"] = min(TRACE_BLOCKS, config.get("num_layers", 30))
        # Learned positional embeddings refuse every size but the one they were trained at; the one
        # table they add is nothing beside a block's peak, so the trace runs without them at any size.
        config["use_learned_positional_embeddings"] = False
        model = meta_component("transformer", json.dumps(config, sort_keys=True), dtype)
        cfg = model.config
        lf = RULES.latent_frames(frames)
        lh, lw = height // RULES.vae_spatial, width // RULES.vae_spatial
        tokens = lf * (lh // cfg.patch_size) * (lw // cfg.patch_size)
        with torch.device("meta"):
            kwargs = {
                # noise and image latents side by side: [rows, frames, 2C, h, w]
                "hidden_states": torch.empty(rows, lf, cfg.in_channels, lh, lw, dtype=dtype),
                "encoder_hidden_states": torch.empty(rows, TEXT_TOKENS, cfg.text_embed_dim, dtype=dtype),
                "timestep": torch.empty(rows, dtype=torch.long),
                "return_dict": False,
            }
            if cfg.use_rotary_positional_embeddings:  # the pipeline's cos and sin tables, made once
                rotary = torch.empty(tokens, cfg.attention_head_dim)
                kwargs["image_rotary_emb"] = (rotary, rotary.clone())
        return Trace(model, (), kwargs)

    def vae(self, variant, configs, dtype, direction, frames, height, width, tiling) -> Trace:
        vae = meta_vae_of(json.dumps(json.loads(configs)["vae"], sort_keys=True), dtype, tiling)
        scale = RULES.vae_spatial
        with torch.device("meta"):
            if direction == "decode":  # the whole clip in one call
                latents = torch.empty(1, vae.config.latent_channels, RULES.latent_frames(frames),
                                      height // scale, width // scale, dtype=dtype)
                return Trace(vae.decode, (latents,), {"return_dict": False})
            image = torch.empty(1, 3, 1, height, width, dtype=dtype)  # the input image, once per clip
        return Trace(vae.encode, (image,), {"return_dict": False})

    def encoders(self, variant, configs, dtype) -> list[Trace]:
        config = json.dumps(json.loads(configs)["text_encoder"], sort_keys=True)
        text = meta_component("text_encoder", config, dtype)
        with torch.device("meta"):
            ids = torch.empty(1, TEXT_TOKENS, dtype=torch.long)
        return [Trace(text, (ids,))]  # no mask: the pipeline passes none
