"""LTX-2's memory traces: one transformer call with its video and audio streams (two of its blocks:
depth leaves the peak unchanged), the video decode followed by the sound's (audio VAE and vocoder),
and Gemma with the text connectors."""

from __future__ import annotations

import json
from typing import Any

import torch

from i2v_nodes.families.contract.jobs import Trace
from i2v_nodes.families.contract.traces import MemoryTraces
from i2v_nodes.families.ltx2.components import meta_component, vae_class
from i2v_nodes.families.ltx2.spec import RULES, TEXT_TOKENS
from i2v_nodes.families.toolkit.meta import meta_vae

TRACE_BLOCKS = 2  # as Wan: each block frees its intermediates, so two of real width set the peak


class LTX2Traces(MemoryTraces):
    def meta_component(self, role: str, config_json: str, dtype: torch.dtype) -> torch.nn.Module:
        return meta_component(role, config_json, dtype)

    def denoiser(self, variant, configs, dtype, rows, frames, height, width, full_depth=False) -> Trace:
        all_configs = json.loads(configs)
        config = dict(all_configs["transformer"])
        if not full_depth:
            config["num_layers"] = min(TRACE_BLOCKS, config.get("num_layers", 48))
        model = meta_component("transformer", json.dumps(config, sort_keys=True), dtype)
        cfg, rules = model.config, RULES[variant]
        lf, lh, lw = rules.latent_frames(frames), height // rules.vae_spatial, width // rules.vae_spatial
        tokens = lf * lh * lw // (cfg.patch_size**2 * cfg.patch_size_t)
        sound = _audio_frames(frames, rules.default_fps, cfg)
        with torch.device("meta"):
            kwargs = {
                "hidden_states": torch.empty(rows, tokens, cfg.in_channels, dtype=dtype),
                "audio_hidden_states": torch.empty(rows, sound, cfg.audio_in_channels, dtype=dtype),
                "encoder_hidden_states": torch.empty(rows, TEXT_TOKENS, cfg.caption_channels, dtype=dtype),
                "audio_encoder_hidden_states": torch.empty(rows, TEXT_TOKENS, cfg.caption_channels,
                                                           dtype=dtype),
                "timestep": torch.empty(rows, tokens),  # per token: the image's frame is clean
                "audio_timestep": torch.empty(rows),
                "sigma": torch.empty(rows),
                "encoder_attention_mask": torch.empty(rows, TEXT_TOKENS, dtype=torch.long),
                "audio_encoder_attention_mask": torch.empty(rows, TEXT_TOKENS, dtype=torch.long),
                "num_frames": lf, "height": lh, "width": lw, "fps": float(rules.default_fps),
                "audio_num_frames": sound,
                "return_dict": False,
            }
        return Trace(model, (), kwargs)

    def vae(self, variant, configs, dtype, direction, frames, height, width, tiling) -> Trace:
        all_configs = json.loads(configs)
        rules = RULES[variant]
        vae = meta_vae(vae_class(), json.dumps(all_configs["vae"], sort_keys=True), dtype, tiling)
        repeat = ((vae.decoder if direction == "decode" else vae.encoder, "forward"),
                  (vae, "blend_v"), (vae, "blend_h"), (vae, "blend_t"))
        if direction == "encode":  # the pipeline encodes the image alone, as one frame
            with torch.device("meta"):
                image = torch.empty(1, 3, 1, height, width, dtype=dtype)
            return Trace(vae.encode, (image,), {"return_dict": False}, repeat=repeat)
        sound = {role: meta_component(role, json.dumps(all_configs[role], sort_keys=True), dtype)
                 for role in ("audio_vae", "vocoder")}
        # The decoder's reflection padding needs two latent pixels a side (64 px): the planner's
        # search probes down to 32 px, which is sized as 64.
        side = [max(2, n // rules.vae_spatial) for n in (height, width)]
        with torch.device("meta"):
            latents = torch.empty(1, rules.latent_channels, rules.latent_frames(frames), *side, dtype=dtype)
            timestep = torch.empty(1, dtype=dtype) if vae.config.timestep_conditioning else None
        return Trace(_decode_clip, (vae, sound["audio_vae"], sound["vocoder"], latents, timestep, frames,
                                    rules.default_fps, dtype), repeat=repeat)

    def encoders(self, variant, configs, dtype) -> list[Trace]:
        all_configs = json.loads(configs)
        text = meta_component("text_encoder", json.dumps(all_configs["text_encoder"], sort_keys=True), dtype)
        connectors = meta_component("connectors", json.dumps(all_configs["connectors"], sort_keys=True),
                                     dtype)
        width = connectors.config.caption_channels * connectors.config.text_proj_in_factor
        with torch.device("meta"):
            ids = torch.empty(1, TEXT_TOKENS, dtype=torch.long)
            # both CFG halves go through the connectors together, with their masks
            embeds = torch.empty(2, TEXT_TOKENS, width, dtype=dtype)
            mask = torch.empty(2, TEXT_TOKENS, dtype=torch.long)
        return [Trace(_encode_text, (text, ids)), Trace(connectors, (embeds, mask))]


def _audio_frames(frames: int, fps: float, transformer_config: Any) -> int:
    """Sound latents of a clip, as the pipeline counts them (25 a second for LTX-2)."""
    per_second = (transformer_config.audio_sampling_rate / transformer_config.audio_hop_length
                  / transformer_config.audio_scale_factor)
    return round(frames / fps * per_second)


def _decode_clip(vae: torch.nn.Module, audio_vae: torch.nn.Module, vocoder: torch.nn.Module,
                 latents: torch.Tensor, timestep: torch.Tensor | None, frames: int, fps: float,
                 dtype: torch.dtype) -> None:
    """One clip's decode as the engine runs it (traced on meta): the video, whose frames leave the
    device before the sound is decoded, then the audio VAE and the vocoder."""
    vae.decode(latents, timestep, return_dict=False)
    config = audio_vae.config
    per_second = config.sample_rate / config.mel_hop_length / audio_vae.temporal_compression_ratio
    bins = config.mel_bins // audio_vae.mel_compression_ratio
    with torch.device("meta"):
        sound = torch.empty(1, config.latent_channels, round(frames / fps * per_second), bins, dtype=dtype)
    mel = audio_vae.decode(sound, return_dict=False)[0]
    vocoder(mel)


def _encode_text(text_encoder: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """What the pipeline does with Gemma (traced on meta): every hidden state, stacked and flattened,
    while the output (with its logits) is still alive."""
    out = text_encoder(input_ids=ids, output_hidden_states=True)
    return torch.stack(out.hidden_states, dim=-1).flatten(2, 3)
