"""LTX-2's key names: Lightricks' (the checkpoint and ComfyUI's files) to diffusers' and back, for the
transformer, the text connectors, both VAEs, the vocoder and Gemma."""

from __future__ import annotations

import re
from collections.abc import Iterable

STATISTICS = "per_channel_statistics."  # the VAEs' latent statistics, a buffer in Lightricks' files
VISION = "vision_model."  # Gemma 3's SigLIP tower (transformers' name)

_TRANSFORMER_NAMES = (  # (Lightricks, diffusers), as substrings of a name
    ("av_ca_video_scale_shift_adaln_single", "av_cross_attn_video_scale_shift"),
    ("av_ca_a2v_gate_adaln_single", "av_cross_attn_video_a2v_gate"),
    ("av_ca_audio_scale_shift_adaln_single", "av_cross_attn_audio_scale_shift"),
    ("av_ca_v2a_gate_adaln_single", "av_cross_attn_audio_v2a_gate"),
    ("scale_shift_table_a2v_ca_video", "video_a2v_cross_attn_scale_shift_table"),
    ("scale_shift_table_a2v_ca_audio", "audio_a2v_cross_attn_scale_shift_table"),
    (".q_norm.", ".norm_q."),
    (".k_norm.", ".norm_k."),
)
_TRANSFORMER_STARTS = (  # (Lightricks, diffusers), at the start of a name
    ("audio_patchify_proj.", "audio_proj_in."),
    ("patchify_proj.", "proj_in."),
    ("audio_adaln_single.", "audio_time_embed."),
    ("adaln_single.", "time_embed."),
)
_CONNECTOR_NAMES = (
    ("video_embeddings_connector.", "video_connector."),
    ("audio_embeddings_connector.", "audio_connector."),
    (".transformer_1d_blocks.", ".transformer_blocks."),
    ("text_embedding_projection.aggregate_embed.", "text_proj_in."),
    (".q_norm.", ".norm_q."),
    (".k_norm.", ".norm_k."),
)
_VOCODER_NAMES = (("ups.", "upsamplers."), ("resblocks.", "resnets."), ("conv_pre.", "conv_in."),
                  ("conv_post.", "conv_out."))
_STATISTICS = ((STATISTICS + "mean-of-means", "latents_mean"), (STATISTICS + "std-of-means", "latents_std"))


def _swap(name: str, pairs: Iterable[tuple[str, str]], starts: Iterable[tuple[str, str]] = (),
          reverse: bool = False) -> str:
    for old, new in starts:
        old, new = (new, old) if reverse else (old, new)
        if name.startswith(old):
            name = new + name.removeprefix(old)
            break
    for old, new in pairs:
        old, new = (new, old) if reverse else (old, new)
        name = name.replace(old, new)
    return name


def transformer_name(name: str, reverse: bool = False) -> str:
    """A transformer tensor's diffusers name (its Lightricks name with ``reverse``), prefix excluded."""
    return _swap(name, _TRANSFORMER_NAMES, _TRANSFORMER_STARTS, reverse)


def connector_name(name: str, reverse: bool = False) -> str:
    """Lightricks' names after the transformer prefix (or, for the projection, at the top)."""
    return _swap(name, _CONNECTOR_NAMES, reverse=reverse)


def vocoder_name(name: str, reverse: bool = False) -> str:
    return _swap(name, _VOCODER_NAMES, reverse=reverse)


def audio_vae_name(name: str, reverse: bool = False) -> str:
    return _swap(name, _STATISTICS, reverse=reverse)


# The video VAE's stages: Lightricks numbers every part that runs on its own (a group of resnets,
# a resampler, the middle) in the order they run; diffusers nests resamplers in their blocks.
_VAE_NAMES = (*_STATISTICS, ("decoder.last_time_embedder.", "decoder.time_embedder."),
              ("decoder.last_scale_shift_table", "decoder.scale_shift_table"), (".res_blocks.", ".resnets."))
_VAE_STAGE = re.compile(r"(encoder\.down_blocks|decoder\.up_blocks)\.(\d+)\.(.*)")
_VAE_NEW = re.compile(r"(encoder|decoder)\.(?:(down_blocks|up_blocks)\.(\d+)\."
                      r"(?:(downsamplers|upsamplers)\.0\.)?|(mid_block)\.)(.*)")


def vae_name(name: str, down_blocks: int, reverse: bool = False) -> str:
    """A video VAE tensor's diffusers name (Lightricks' with ``reverse``); ``down_blocks`` is the
    encoder's count of diffusers blocks (4 published), each with its downsampler, the decoder's one
    fewer, each with its upsampler (LTX-2.0's layout)."""
    return _vae_to_original(name, down_blocks) if reverse else _vae_to_diffusers(name, down_blocks)


def _vae_to_diffusers(name: str, down_blocks: int) -> str:
    name = _swap(name, _VAE_NAMES)
    match = _VAE_STAGE.match(name)
    if match is None:
        return name
    side, stage, rest = match.group(1), int(match.group(2)), match.group(3)
    if side == "encoder.down_blocks":
        if stage == 2 * down_blocks:
            return f"encoder.mid_block.{rest}"
        return f"encoder.down_blocks.{stage // 2}.{'downsamplers.0.' if stage % 2 else ''}{rest}"
    if stage == 0:
        return f"decoder.mid_block.{rest}"
    return f"decoder.up_blocks.{(stage - 1) // 2}.{'' if stage % 2 == 0 else 'upsamplers.0.'}{rest}"


def _vae_to_original(name: str, down_blocks: int) -> str:
    match = _VAE_NEW.match(name)
    if match is not None:
        side, blocks, block, sampler, mid, rest = match.groups()
        if mid:
            stage = 2 * down_blocks if side == "encoder" else 0
        elif side == "encoder":
            stage = 2 * int(block) + (1 if sampler else 0)
        else:
            stage = 2 * int(block) + (1 if sampler else 2)
        name = f"{side}.{'down_blocks' if side == 'encoder' else 'up_blocks'}.{stage}.{rest}"
    return _swap(name, _VAE_NAMES, reverse=True)


def gemma_name(name: str, vision_prefix: str, reverse: bool = False) -> str:
    """A Gemma tensor's transformers name (ComfyUI's with ``reverse``); ``vision_prefix`` is the
    transformers model's own prefix of the SigLIP tower (transformers 4 and 5 differ)."""
    pairs = (("model.", "model.language_model."), ("multi_modal_projector.", "model.multi_modal_projector."),
             (VISION, vision_prefix))
    for old, new in pairs:
        old, new = (new, old) if reverse else (old, new)
        if name.startswith(old):
            return new + name.removeprefix(old)
    return name
