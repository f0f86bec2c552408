"""LTX-2 single files as ComfyUI users have them, recognised from their safetensors headers alone.

ComfyUI runs LTX-2 (19B, video with sound) from two files:

- a checkpoint in ``checkpoints`` (CheckpointLoaderSimple), Lightricks' own release files such as
  ``ltx-2-19b-dev.safetensors``, ``ltx-2-19b-distilled.safetensors`` or their fp8 forms, in
  Lightricks' key names: the audio-video transformer under ``model.diffusion_model.``
  (``patchify_proj``, ``adaln_single``, ``av_ca_*``), with the text connectors beside it
  (``model.diffusion_model.video_embeddings_connector.``, ``...audio_embeddings_connector.``) and
  their input projection at the top level (``text_embedding_projection.aggregate_embed.weight``);
  the video VAE under ``vae.``, the audio VAE under ``audio_vae.`` and the vocoder under
  ``vocoder.``. A file holding the transformer alone (no prefix) is recognised too, and refused: it
  cannot run without the connectors, the audio VAE and the vocoder only a checkpoint carries. A
  video VAE file of its own has LTX-Video 0.9.5's shapes and cannot be told from one by its header:
  the ``vae`` input stays none, the checkpoint brings its own;
- Gemma 3 12B in ``text_encoders`` (LTXAVTextEncoderLoader), ``gemma_3_12B_it.safetensors`` and
  its fp8 forms, in ComfyUI's names (``model.layers.N.self_attn.q_proj.weight``,
  ``model.embed_tokens.weight``; the SigLIP tower as ``vision_model.``, which some exports leave
  out), with its sentencepiece model embedded as a ``spiece_model`` tensor.

Shapes give every width and depth; settings no shape shows (attention heads, the VAE's layout)
come from the pack's own ``diffusers_config`` metadata where a file carries it (the tiny test files
do), else from the published LTX-2 configuration. Distilled checkpoints have the dev weights'
shapes, so "distilled" in the file name tells them apart (they sample with their own sigmas, no
resolution-dependent shift).

The key names (both ways) live here too: the loader renames the file's tensors to diffusers'
names, and the tiny files are written by renaming the other way. The transformer, VAE and audio VAE
names are those diffusers' single-file converters use; the connector and vocoder names follow
diffusers' conversion script (``scripts/convert_ltx2_to_diffusers.py``), which the single-file
loader lacks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from i2v_nodes.errors import ModelError
from i2v_nodes.families.contract.files import FilePart
from i2v_nodes.families.ltx2.components import meta_component
from i2v_nodes.families.ltx2.configs import PUBLISHED
from i2v_nodes.families.ltx2.keys import STATISTICS, VISION
from i2v_nodes.families.toolkit.file_headers import CONFIG_KEY, count_numbered, float8_params, own_config
from i2v_nodes.families.toolkit.safetensors_header import Header
from i2v_nodes.lazy import torch

HUB = "Lightricks/LTX-2"
LTX2 = "ltx2"
GEMMA = "gemma3"
TRANSFORMER_PREFIXES = ("model.diffusion_model.", "")
CONNECTOR_PARTS = ("video_embeddings_connector.", "audio_embeddings_connector.")
PROJECTION = "text_embedding_projection.aggregate_embed.weight"
PROJECTION_PART = "text_embedding_projection."
SECTIONS = {"vae": "vae.", "audio_vae": "audio_vae.", "vocoder": "vocoder."}  # checkpoint prefixes
TIMESTEP_MARK = "decoder.last_time_embedder.timestep_embedder.linear_1.weight"  # a timestep-aware decoder
# keys only LTX-2.3 and later have (gated attention, prompt modulation, per-modality projections)
LATER = ("to_gate_logits", "prompt_adaln_single", "video_aggregate_embed")
# quantisation bookkeeping beside the weights: ComfyUI's scaled fp8 (old and new) and input scales
SCALE_SUFFIXES = (".scale_weight", ".weight_scale")
QUANT_EXTRAS = (".scale_input", ".input_scale", ".comfy_quant", "scaled_fp8")
FORMATS = {"F8_E4M3": "fp8_e4m3fn", "BF16": "bf16", "F16": "fp16", "F32": "fp32"}
DISTILLED_SCHEDULER = {  # what diffusers' conversion script saves for a distilled checkpoint
    "use_dynamic_shifting": False,
    "base_shift": 0.95,
    "max_shift": 2.05,
    "base_image_seq_len": 1024,
    "max_image_seq_len": 4096,
    "shift_terminal": None,
}


def identify(header: Header) -> FilePart | None:
    for recognise in (_checkpoint, _gemma):
        part = recognise(header)
        if part is not None:
            return part
    return None


# --- reading a header -------------------------------------------------------------------------------


def subset(header: Header, prefix: str, exclude: tuple[str, ...] = ()) -> Header:
    """The tensors under ``prefix`` (taken off their names), but those whose remaining name starts
    with one of ``exclude``: one component of a checkpoint."""
    tensors = {name.removeprefix(prefix): t for name, t in header.tensors.items()
               if name.startswith(prefix) and not name.removeprefix(prefix).startswith(exclude)}
    return Header(header.path, tensors, header.metadata, header.size, header.mtime_ns)


def _is_bookkeeping(name: str) -> bool:
    return name.endswith(SCALE_SUFFIXES) or name.endswith(QUANT_EXTRAS) or name == "spiece_model"


def file_format(header: Header) -> str:
    """bf16 / fp16 / fp32 / fp8_e4m3fn, or fp8_scaled (float8 with per-tensor scales, in ComfyUI's
    old ``scale_weight`` or new ``weight_scale`` names); anything else is refused naming the file."""
    weights: dict[str, int] = {}
    for name, tensor in header.tensors.items():
        if len(tensor.shape) >= 2 and not _is_bookkeeping(name):
            weights[tensor.dtype] = weights.get(tensor.dtype, 0) + tensor.numel
    unreadable = sorted(set(weights) - set(FORMATS))
    if unreadable:  # int8, nvfp4 (packed in U8), float8_e5m2: in all or some layers
        raise ModelError(
            f"{header.path.name} stores weights as {', '.join(unreadable)}, a format this pack cannot "
            "read; it reads bf16, fp16, fp32, fp8_e4m3fn and ComfyUI's scaled fp8 files"
        )
    if not weights:
        raise ModelError(f"{header.path.name} holds no weight matrices")
    main = FORMATS[max(weights, key=weights.get)]
    scales = [t for name, t in header.tensors.items() if name.endswith(SCALE_SUFFIXES)]
    if any(t.numel > 1 for t in scales):  # per-block scales (mxfp8 and the like), not one per tensor
        raise ModelError(f"{header.path.name} stores block-scaled fp8 weights, a format this pack cannot "
                         "read; it reads fp8 with one scale per tensor (ComfyUI's fp8_scaled)")
    scaled = bool(scales)
    return "fp8_scaled" if main == "fp8_e4m3fn" and scaled else main


def weight_params(header: Header) -> int:
    """Weights only: no fp8 scales or markers, no embedded tokenizer, no latent statistics."""
    return sum(t.numel for name, t in header.tensors.items()
               if not _is_bookkeeping(name) and STATISTICS not in name)






def _refuse_later(header: Header) -> None:
    if any(marker in name for name in header.tensors for marker in LATER):
        raise ModelError(f"{header.path.name} is an LTX-2.3 (or later) checkpoint; this pack runs LTX-2.0 "
                         "(ltx-2-19b-dev or ltx-2-19b-distilled and their fp8 forms)")


# --- the checkpoint --------------------------------------------------------------------------------


def _transformer_prefix(header: Header) -> str | None:
    marks = ("audio_patchify_proj.weight", "av_ca_a2v_gate_adaln_single.linear.weight")
    return next((p for p in TRANSFORMER_PREFIXES if all(header.has(p + m) for m in marks)), None)


def _checkpoint(header: Header) -> FilePart | None:
    prefix = _transformer_prefix(header)
    if prefix is None:
        return None
    _refuse_later(header)
    # what is not the transformer's: the connectors beside it and, without a prefix, the other parts
    others = CONNECTOR_PARTS if prefix else (*CONNECTOR_PARTS, *SECTIONS.values(), PROJECTION_PART)
    own = subset(header, prefix, exclude=others)
    bundled = tuple(part for part in (_connectors(header, prefix), *_sections(header)) if part is not None)
    return FilePart(
        header.path,
        "denoiser",
        LTX2,
        file_format(own),
        _transformer_config(own),
        weight_params(own),
        hint="distilled" if "distilled" in header.path.name.lower() else "",
        float8_params=float8_params(own),  # the transformer keeps no part in fp32
        bundled=bundled,
    )


def _transformer_config(own: Header) -> dict[str, Any]:
    shape = own.shape
    inner, in_channels = shape("patchify_proj.weight")
    audio_inner, audio_in = shape("audio_patchify_proj.weight")
    config = {
        **PUBLISHED[HUB]["transformer"],
        "in_channels": in_channels,
        "out_channels": shape("proj_out.weight")[0],
        "audio_in_channels": audio_in,
        "audio_out_channels": shape("audio_proj_out.weight")[0],
        "cross_attention_dim": shape("transformer_blocks.0.attn2.to_k.weight")[1],
        "audio_cross_attention_dim": shape("transformer_blocks.0.audio_attn2.to_k.weight")[1],
        "caption_channels": shape("caption_projection.linear_1.weight")[1],
        "num_layers": count_numbered(own, r"transformer_blocks\.(\d+)\."),
    }
    # the published 32 heads a stream (128 wide for video, 64 for sound) unless the file says otherwise
    config["attention_head_dim"] = inner // config["num_attention_heads"]
    config["audio_attention_head_dim"] = audio_inner // config["audio_num_attention_heads"]
    config.update(own_config(own, "transformer"))
    for stream, width in (("", inner), ("audio_", audio_inner)):
        heads, dim = config[f"{stream}num_attention_heads"], config[f"{stream}attention_head_dim"]
        if heads * dim != width:
            raise ModelError(f"{own.path.name}: an LTX-2 {stream or 'video '}stream {width} wide, not "
                             f"{heads} heads of {dim}")
    return config


def _connectors(header: Header, prefix: str) -> FilePart | None:
    """The text connectors: beside the transformer, their input projection at the top level (or,
    in some files, under the transformer's prefix)."""
    video = subset(header, prefix + CONNECTOR_PARTS[0])
    if not video.tensors:
        return None
    projection = next((n for n in (PROJECTION, prefix + PROJECTION) if header.has(n)), None)
    if projection is None:
        raise ModelError(f"{header.path.name}: text connectors without their input projection ({PROJECTION})")
    names = [n for n in header.tensors if n.startswith(tuple(prefix + p for p in CONNECTOR_PARTS))]
    own = Header(header.path, {n: header.tensors[n] for n in (*names, projection)}, header.metadata,
                 header.size, header.mtime_ns)
    caption, stacked = header.shape(projection)
    audio = subset(header, prefix + CONNECTOR_PARTS[1])
    config = {
        **PUBLISHED[HUB]["connectors"],
        "caption_channels": caption,
        "text_proj_in_factor": stacked // caption,
        "video_connector_num_layers": count_numbered(video, r"transformer_1d_blocks\.(\d+)\."),
        "audio_connector_num_layers": count_numbered(audio, r"transformer_1d_blocks\.(\d+)\."),
    }
    for stream, part in (("video", video), ("audio", audio)):
        key = f"{stream}_connector_"
        registers = part.tensors.get("learnable_registers")
        config[key + "num_learnable_registers"] = None if registers is None else registers.shape[0]
        width = part.shape("transformer_1d_blocks.0.attn1.to_q.weight")[0]
        config[key + "attention_head_dim"] = width // config[key + "num_attention_heads"]
    config.update(own_config(header, "connectors"))
    return FilePart(header.path, "connectors", LTX2, file_format(own), config, weight_params(own),
                    float8_params=float8_params(own))


def _sections(header: Header) -> list[FilePart | None]:
    return [_video_vae(header, SECTIONS["vae"]), _audio_vae(header), _vocoder(header)]


def _video_vae(header: Header, prefix: str) -> FilePart | None:
    own = subset(header, prefix)
    if not own.has("encoder.conv_in.conv.weight") or not own.has(STATISTICS + "mean-of-means"):
        return None
    config = own_config(header, "vae")
    if not config:  # the published layout; its widths and timestep conditioning from the shapes
        config = dict(PUBLISHED[HUB]["vae"])
        widths = (own.shape("encoder.conv_out.conv.weight")[1], *own.shape("decoder.conv_in.conv.weight")[:2])
        if widths != (config["block_out_channels"][-1], config["decoder_block_out_channels"][-1],
                      config["latent_channels"]):
            raise ModelError(f"{header.path.name}: an LTX-2 video VAE of widths {widths}, not the published "
                             f"ones; a VAE of another layout needs its config in the file's {CONFIG_KEY!r} "
                             "metadata")
        config["timestep_conditioning"] = own.has(TIMESTEP_MARK)
    return FilePart(header.path, "vae", "ltx2-vae", file_format(own), config, weight_params(own))


def _audio_vae(header: Header) -> FilePart | None:
    own = subset(header, SECTIONS["audio_vae"])
    if not own.has("decoder.conv_in.conv.weight"):
        return None
    config = own_config(header, "audio_vae")
    if not config:
        config = dict(PUBLISHED[HUB]["audio_vae"])
        widths = (own.shape("encoder.conv_in.conv.weight")[0], own.shape("decoder.conv_in.conv.weight")[1])
        if widths != (config["base_channels"], config["latent_channels"]):
            raise ModelError(f"{header.path.name}: an LTX-2 audio VAE of widths {widths}, not the published "
                             f"ones; one of another layout needs its config in the file's {CONFIG_KEY!r} "
                             "metadata")
    return FilePart(header.path, "audio_vae", "ltx2-audio-vae", file_format(own), config, weight_params(own))


def _vocoder(header: Header) -> FilePart | None:
    own = subset(header, SECTIONS["vocoder"])
    if not own.has("conv_pre.weight"):
        return None
    if any(".downsample." in n or "bwe" in n for n in own.tensors):
        raise ModelError(f"{header.path.name} carries LTX-2.3's bandwidth-extending vocoder; this pack runs "
                         "LTX-2.0")
    config = own_config(header, "vocoder")
    if not config:
        config = dict(PUBLISHED[HUB]["vocoder"])
        widths = own.shape("conv_pre.weight")[:2]
        if widths != (config["hidden_channels"], config["in_channels"]):
            raise ModelError(f"{header.path.name}: an LTX-2 vocoder of widths {widths}, not the published "
                             f"ones; one of another layout needs its config in the file's {CONFIG_KEY!r} "
                             "metadata")
    return FilePart(header.path, "vocoder", "ltx2-vocoder", file_format(own), config, weight_params(own))


# --- Gemma 3 -------------------------------------------------------------------------------------------

GEMMA_MARK = "model.layers.0.self_attn.q_norm.weight"
GEMMA_GLOBAL_V = "model.layers.5.self_attn.v_proj.weight"


def _gemma(header: Header) -> FilePart | None:
    prefix = next((n.removesuffix(GEMMA_MARK) for n in header.tensors if n.endswith(GEMMA_MARK)), None)
    if prefix is None or not header.has(prefix + "model.layers.0.post_feedforward_layernorm.weight"):
        return None  # not Gemma 3 (Gemma 2 has no q_norm; Llama and Qwen no post-feedforward norm)
    own = subset(header, prefix)
    layers = count_numbered(own, r"model\.layers\.(\d+)\.")
    # Gemma 4 12B has the same depth; it has a layer scalar and no value projection in its global layers
    gemma4 = own.has("model.layers.0.layer_scalar") or (layers > 5 and not own.has(GEMMA_GLOBAL_V))
    if gemma4:
        raise ModelError(f"{header.path.name} is Gemma 4 (LTX-2.3 and later); LTX-2.0 uses Gemma 3 12B "
                         "(gemma_3_12B_it.safetensors)")
    config = own_config(header, "text_encoder") or _gemma_config(own, layers)
    return FilePart(
        header.path,
        "text_encoder",
        GEMMA,
        file_format(own),
        config,
        weight_params(own) + (0 if own.has(VISION + "post_layernorm.weight") else _vision_params(config)),
        tokenizer=header.has("spiece_model"),
        float8_params=float8_params(own, ("embed_tokens", "mm_input_projection")),
    )


def _gemma_config(own: Header, layers: int) -> dict[str, Any]:
    """Gemma 3's config from the shapes (and the published 12B's settings no shape shows)."""
    vocab, hidden = own.shape("model.embed_tokens.weight")
    head = own.shape("model.layers.0.self_attn.q_norm.weight")[0]
    published = PUBLISHED[HUB]["text_encoder"]
    text = {
        **published["text_config"],
        "vocab_size": vocab,
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "intermediate_size": own.shape("model.layers.0.mlp.gate_proj.weight")[0],
        "head_dim": head,
        "query_pre_attn_scalar": head,
        "num_attention_heads": own.shape("model.layers.0.self_attn.q_proj.weight")[0] // head,
        "num_key_value_heads": own.shape("model.layers.0.self_attn.k_proj.weight")[0] // head,
    }
    vision = dict(published["vision_config"])
    if own.has(VISION + "embeddings.patch_embedding.weight"):
        width, _channels, patch, _ = own.shape(VISION + "embeddings.patch_embedding.weight")
        positions = own.shape(VISION + "embeddings.position_embedding.weight")[0]
        vision.update(hidden_size=width, patch_size=patch, image_size=round(positions ** 0.5) * patch,
                      intermediate_size=own.shape(VISION + "encoder.layers.0.mlp.fc1.weight")[0],
                      num_hidden_layers=count_numbered(own, re.escape(VISION) + r"encoder\.layers\.(\d+)\."))
    return {**published, "text_config": text, "vision_config": vision}


def _vision_params(config: Mapping[str, Any]) -> int:
    """Parameters of the SigLIP tower and projector a file left out: the loader still builds them
    (zeros; LTX-2 reads text only), so they take memory all the same."""
    full = meta_component("text_encoder", json.dumps(config, sort_keys=True), torch.float32)
    return sum(p.numel() for name, p in full.named_parameters() if "vision" in name or "multi_modal" in name)
