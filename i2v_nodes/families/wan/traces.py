"""Wan's memory traces: one transformer call (two of its blocks: depth leaves the peak unchanged), the
VAE's causal 3-D encode and decode, and the text and image encoders."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import torch

from i2v_nodes.families.contract.jobs import Trace
from i2v_nodes.families.contract.traces import MemoryTraces
from i2v_nodes.families.wan.components import meta_component, meta_vae_of
from i2v_nodes.families.wan.spec import ROLES, RULES, TEXT_TOKENS, TI2V

# Depth does not change one denoiser call's activation peak (each block frees its intermediates
# before the next starts), so the memory trace runs this many blocks of the real width.
TRACE_BLOCKS = 2


class WanTraces(MemoryTraces):
    def meta_component(self, role: str, config_json: str, dtype: torch.dtype) -> torch.nn.Module:
        return meta_component(role, config_json, dtype)

    def block_state(self, variant, configs, frames, height, width) -> tuple[int, int, int]:
        config, rules = json.loads(configs)["transformer"], RULES[variant]
        _, patch_h, patch_w = config.get("patch_size", (1, 2, 2))
        tokens = (rules.latent_frames(frames) * (height // rules.vae_spatial // patch_h)
                  * (width // rules.vae_spatial // patch_w))
        inner = config.get("num_attention_heads", 40) * config.get("attention_head_dim", 128)
        return tokens, inner, config.get("num_layers", 40)

    def denoiser(self, variant, configs, dtype, rows, frames, height, width, full_depth=False) -> Trace:
        all_configs = json.loads(configs)
        rules = RULES[variant]
        config = dict(all_configs["transformer"])
        if not full_depth:
            config["num_layers"] = min(TRACE_BLOCKS, config.get("num_layers", 40))
        model = meta_component("transformer", json.dumps(config, sort_keys=True), dtype)
        cfg = model.config
        lf, lh, lw = rules.latent_frames(frames), height // rules.vae_spatial, width // rules.vae_spatial
        tokens = lf * (lh // cfg.patch_size[1]) * (lw // cfg.patch_size[2])
        with torch.device("meta"):
            kwargs = {
                "hidden_states": torch.empty(rows, cfg.in_channels, lf, lh, lw, dtype=dtype),
                # TI2V-5B passes a timestep per token (the first frame's are zero), the others one per row
                "timestep": torch.empty(rows, tokens) if variant == TI2V else torch.empty(rows),
                "encoder_hidden_states": torch.empty(rows, TEXT_TOKENS, cfg.text_dim, dtype=dtype),
                "return_dict": False,
            }
            if cfg.image_dim is not None:
                # FLF2V's embedding takes the start and end images' states as two rows of each clip's
                images = 2 if cfg.pos_embed_seq_len else 1
                kwargs["encoder_hidden_states_image"] = torch.empty(
                    rows * images, _image_tokens(all_configs), cfg.image_dim, dtype=dtype
                )
        return Trace(model, (), kwargs)

    def vae(self, variant, configs, dtype, direction, frames, height, width, tiling) -> Trace:
        all_configs = json.loads(configs)
        rules = RULES[variant]
        vae = meta_vae_of(json.dumps(all_configs["vae"], sort_keys=True), dtype, tiling)
        if direction == "decode":
            with torch.device("meta"):
                latents = torch.empty(
                    1,
                    rules.latent_channels,
                    rules.latent_frames(frames),
                    height // rules.vae_spatial,
                    width // rules.vae_spatial,
                    dtype=dtype,
                )
            return Trace(
                vae.decode,
                (latents,),
                {"return_dict": False},
                repeat=((vae.decoder, "forward"), (vae, "blend_v"), (vae, "blend_h")),
            )
        # the pipeline encodes the image followed by empty frames (TI2V-5B: the image alone)
        encoded = 1 if variant == TI2V else frames
        return Trace(
            _encode_condition,
            (vae, encoded, height, width, dtype),
            repeat=((vae.encoder, "forward"), (vae, "blend_v"), (vae, "blend_h")),
        )

    def encoders(self, variant, configs, dtype) -> list[Trace]:
        all_configs = json.loads(configs)
        text = meta_component("text_encoder", json.dumps(all_configs["text_encoder"], sort_keys=True), dtype)
        with torch.device("meta"):
            ids = torch.empty(1, TEXT_TOKENS, dtype=torch.long)
            traces = [Trace(text, (ids,))]  # no mask: asking a meta mask whether it masks anything fails
            if "image_encoder" in ROLES[variant].encoders:
                vision = meta_component(
                    "image_encoder", json.dumps(all_configs["image_encoder"], sort_keys=True), dtype
                )
                side = vision.config.image_size
                pixels = torch.empty(1, 3, side, side, dtype=dtype)
                traces.append(Trace(vision, (pixels,), {"output_hidden_states": True}))
        return traces


def _image_tokens(configs: Mapping[str, Any]) -> int:
    vision = configs.get("image_encoder", {})
    side, patch = vision.get("image_size", 224), vision.get("patch_size", 14)
    return (side // patch) ** 2 + 1  # patches plus the class token


def _encode_condition(vae: torch.nn.Module, frames: int, height: int, width: int, dtype: torch.dtype) -> Any:
    """What the pipeline encodes: the image, then empty frames, as one video (traced on meta)."""
    with torch.device("meta"):
        image = torch.empty(1, 3, 1, height, width, dtype=dtype)
        video = (
            torch.cat([image, image.new_zeros(1, 3, frames - 1, height, width)], dim=2)
            if frames > 1
            else image
        )
    return vae.encode(video, return_dict=False)
