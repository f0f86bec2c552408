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
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from i2v_nodes.errors import InputError, ModelError
from i2v_nodes.family_kit.safetensors_header import Header
from i2v_nodes.runtime.families.base import FilePart, FileSet
from i2v_nodes.runtime.families.ltx2_configs import PUBLISHED
from i2v_nodes.runtime.families.wan_files import _count

HUB = "Lightricks/LTX-2"
LTX2 = "ltx2"
GEMMA = "gemma3"
CONFIG_KEY = "diffusers_config"  # the pack's own metadata: role -> diffusers / transformers config
TRANSFORMER_PREFIXES = ("model.diffusion_model.", "")
CONNECTOR_PARTS = ("video_embeddings_connector.", "audio_embeddings_connector.")
PROJECTION = "text_embedding_projection.aggregate_embed.weight"
PROJECTION_PART = "text_embedding_projection."
SECTIONS = {"vae": "vae.", "audio_vae": "audio_vae.", "vocoder": "vocoder."}  # checkpoint prefixes
STATISTICS = "per_channel_statistics."
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


def float8_params(header: Header, dequantised: tuple[str, ...] = ()) -> int:
    """Weights that stay float8 once loaded: float8 matrices, except in the parts ``dequantised``
    names (embedding tables and bare parameters the loader expands)."""
    return sum(t.numel for name, t in header.tensors.items()
               if t.dtype.startswith("F8") and len(t.shape) == 2 and name.endswith(".weight")
               and not any(part in name for part in dequantised))


def own_config(header: Header, role: str) -> dict[str, Any]:
    """The pack's own config for ``role``, where the file carries one (its tiny files do)."""
    text = header.metadata.get(CONFIG_KEY)
    if not text:
        return {}
    try:
        configs = json.loads(text)
    except ValueError as exc:
        raise ModelError(f"{header.path.name}: its metadata {CONFIG_KEY!r} is not JSON: {exc}") from exc
    config = configs.get(role) if isinstance(configs, dict) else None
    return dict(config) if isinstance(config, dict) else {}


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
        "num_layers": _count(own, r"transformer_blocks\.(\d+)\."),
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
        "video_connector_num_layers": _count(video, r"transformer_1d_blocks\.(\d+)\."),
        "audio_connector_num_layers": _count(audio, r"transformer_1d_blocks\.(\d+)\."),
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
VISION = "vision_model."


def _gemma(header: Header) -> FilePart | None:
    prefix = next((n.removesuffix(GEMMA_MARK) for n in header.tensors if n.endswith(GEMMA_MARK)), None)
    if prefix is None or not header.has(prefix + "model.layers.0.post_feedforward_layernorm.weight"):
        return None  # not Gemma 3 (Gemma 2 has no q_norm; Llama and Qwen no post-feedforward norm)
    own = subset(header, prefix)
    layers = _count(own, r"model\.layers\.(\d+)\.")
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
                      num_hidden_layers=_count(own, re.escape(VISION) + r"encoder\.layers\.(\d+)\."))
    return {**published, "text_config": text, "vision_config": vision}


def _vision_params(config: Mapping[str, Any]) -> int:
    """Parameters of the SigLIP tower and projector a file left out: the loader still builds them
    (zeros; LTX-2 reads text only), so they take memory all the same."""
    from i2v_nodes.runtime.families.ltx2 import FAMILY

    full = FAMILY.meta_component("text_encoder", json.dumps(config, sort_keys=True), torch.float32)
    return sum(p.numel() for name, p in full.named_parameters() if "vision" in name or "multi_modal" in name)


# --- which files make a model ------------------------------------------------------------------------

_SLOT_KIND = {"diffusion_model": "denoiser", "text_encoder": "text_encoder", "vae": "vae"}
_KIND_WORDS = {
    "denoiser": "an LTX-2 checkpoint (checkpoints folder)",
    "text_encoder": "a text encoder (text_encoders folder)",
    "vae": "a VAE (vae folder)",
}
_BUNDLED_ROLES = ("connectors", "vae", "audio_vae", "vocoder")


def assemble(parts: Mapping[str, FilePart]) -> FileSet:
    """The model the files make, or an error naming the slot, the file and what was expected."""
    for slot in ("diffusion_model_2", "clip_vision"):
        if slot in parts:
            raise InputError(slot, f"LTX-2 uses no {slot.replace('_', ' ')}: set {slot} to none")
    for slot, part in parts.items():
        if part.kind != _SLOT_KIND[slot]:
            what = _KIND_WORDS.get(part.kind, "an LTX-2 " + part.kind)
            raise InputError(slot, f"{part.path.name} is {what}, not {_KIND_WORDS[_SLOT_KIND[slot]]}")
    checkpoint = parts["diffusion_model"]
    roles: dict[str, FilePart] = {"transformer": checkpoint}
    roles.update({part.kind: part for part in checkpoint.bundled})
    _pick_vae(checkpoint, parts.get("vae"), roles)
    for role in _BUNDLED_ROLES:
        if role not in roles:
            missing = role.replace("_", " ")
            raise InputError("diffusion_model", f"{checkpoint.path.name} holds no {missing}: load the full "
                                                "LTX-2 checkpoint (ltx-2-19b-dev.safetensors or "
                                                "ltx-2-19b-distilled.safetensors, or an fp8 form) from "
                                                "checkpoints")
    roles["text_encoder"] = _check_text(roles, parts.get("text_encoder"))
    order = ("transformer", "text_encoder", "connectors", "vae", "audio_vae", "vocoder")  # names read so
    roles = {role: roles[role] for role in order}
    configs: dict[str, Any] = {role: dict(part.config) for role, part in roles.items()}
    distilled = checkpoint.hint == "distilled"
    configs["scheduler"] = dict(DISTILLED_SCHEDULER if distilled else PUBLISHED[HUB]["scheduler"])
    configs["pipeline"] = {}
    return FileSet(LTX2, roles, configs)


def _pick_vae(checkpoint: FilePart, given: FilePart | None, roles: dict[str, FilePart]) -> None:
    """LTX-2's video VAE comes with its checkpoint. A VAE file of its own has the shapes of LTX-Video
    0.9.5's and cannot be told from one by its header, so the vae input stays none."""
    if given is not None:
        raise InputError("vae", f"{checkpoint.path.name} carries its own video VAE: set vae to none")
    if "vae" not in roles:
        raise InputError("diffusion_model", f"{checkpoint.path.name} carries no video VAE: load the full "
                                            "LTX-2 checkpoint from checkpoints")


def _check_text(roles: Mapping[str, FilePart], text: FilePart | None) -> FilePart:
    if text is None:
        raise InputError("text_encoder", "an LTX-2 model needs the Gemma 3 12B text encoder here "
                                         "(gemma_3_12B_it.safetensors, or an fp8 form, in text_encoders)")
    connectors = roles["connectors"].config
    hidden = text.config["text_config"]["hidden_size"]
    stacked = text.config["text_config"]["num_hidden_layers"] + 1  # every layer's output and the embeddings
    wanted = (connectors["caption_channels"], connectors["text_proj_in_factor"])
    if (hidden, stacked) != wanted:
        raise InputError("text_encoder", f"{text.path.name} gives {stacked} hidden states {hidden} wide; "
                                         f"{roles['transformer'].path.name} takes {wanted[1]} of {wanted[0]} "
                                         "(Gemma 3 12B: 49 of 3840)")
    return text


# --- key names: Lightricks' (the files) <-> diffusers' ----------------------------------------------

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


def path_stem(path: Path) -> str:
    return path.name.removesuffix(".safetensors")
