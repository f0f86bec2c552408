"""AnimateDiff image-to-video (PIA) from ComfyUI's own single files, recognised from their safetensors
headers alone.

ComfyUI users keep the two halves of a PIA model apart:

- a Stable Diffusion 1.5 checkpoint in ``checkpoints`` (CheckpointLoaderSimple's), e.g.
  ``v1-5-pruned-emaonly.safetensors`` or any fine-tune of it, in the original (LDM) key names: the UNet
  under ``model.diffusion_model.``, the VAE under ``first_stage_model.``, the CLIP ViT-L/14 text tower
  under ``cond_stage_model.transformer.`` (transformers' names). It carries no tokenizer. SD 2.x and SDXL
  checkpoints are recognised and refused: PIA's motion modules are made for SD 1.5's UNet;
- PIA's motion module in ``animatediff_models`` (AnimateDiff-Evolved's folder), as a safetensors file
  in the original AnimateDiff layout: ``down_blocks.N.motion_modules.M.temporal_transformer.`` (and
  ``up_blocks``) with ``attention_blocks.K``, ``norms.K``, ``ff_norm`` and a sinusoidal
  ``pos_encoder.pe`` per attention, plus PIA's 9-channel ``conv_in`` (noisy latents 4, mask 1, image
  latents 4). That is the layout of PIA's released ``pia.ckpt`` (a pickle, which this pack never loads:
  it has to be converted to safetensors first) and what AnimateDiff-Evolved reads; like
  AnimateDiff-Evolved, any other key in the file (PIA's spatial UNet layers) is ignored. diffusers'
  ``MotionAdapter`` layout (``transformer_blocks.K.attn1``, ``norm1``, ``pos_embed.pe``) reads too: diffusers'
  converter takes both. Plain AnimateDiff motion modules (v1/v2/v3, AnimateLCM, SDXL) have no image input:
  they are recognised and refused naming the input;
- optionally an SD VAE file in ``vae`` (e.g. ``vae-ft-mse-840000-ema-pruned``): LDM names, no prefix.

Key names go through diffusers' own single-file converters at load (:mod:`.animatediff_load`); the
inverse, which writes the tiny model as such files, is in :mod:`.animatediff_write`. Settings no shape
shows are SD 1.5's and PIA's published ones, unless the file carries the pack's own ``diffusers_config``
metadata (the tiny files do, and embed their tokenizer there).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from i2v_nodes.errors import InputError, ModelError
from i2v_nodes.families.animatediff.configs import (
    PIA,
    PIA_ADAPTER,
    PIA_SCHEDULER,
    SD15_TEXT_ENCODER,
    SD15_UNET,
    SD15_VAE,
)
from i2v_nodes.families.animatediff.pairs import pair_problem
from i2v_nodes.families.animatediff.spec import ADAPTER, IMAGE_CHANNELS, RULES
from i2v_nodes.families.contract.files import FilePart, FileSet
from i2v_nodes.families.toolkit.file_headers import count_numbered, file_format, only, own_config
from i2v_nodes.families.toolkit.safetensors_header import Header

UNET, VAE, TEXT = "model.diffusion_model.", "first_stage_model.", "cond_stage_model.transformer."
SD15, SD_VAE, CLIP_L, PIA_MODULE = "sd1.5", "sd-vae", "clip-vit-large-patch14", "pia"
TOKENIZER = "tokenizer"  # the embedded tokenizer's entry in the metadata configs (the tiny files have one)
BUFFERS = ("pos_encoder.pe", "pos_embed.pe", "position_ids")  # computed, not weights: never counted
VAE_MARKS = ("encoder.down.0.block.0.conv1.weight", "decoder.up.0.block.0.conv1.weight", "quant_conv.weight")
TEXT_TOWERS = (TEXT + "text_model.", TEXT)  # transformers' names; some early checkpoints lack "text_model."
MOTION = re.compile(r"(?:down_blocks\.\d+|up_blocks\.\d+|mid_block)\.motion_modules\.\d+\.")
READABLE = ("fp32", "fp16", "bf16")


def identify(header: Header) -> FilePart | None:
    for recognise in (_checkpoint, _motion_module, _vae_file):
        part = recognise(header)
        if part is not None:
            return part
    return None


def _format(header: Header, what: str) -> str:
    fmt = file_format(header)
    if fmt not in READABLE:
        raise ModelError(f"{header.path.name} stores its {what} as {fmt}; this pack reads {what}s in "
                         f"{', '.join(READABLE)}: use the fp16 or fp32 file")
    return fmt


def _params(header: Header) -> int:
    return sum(t.numel for name, t in header.tensors.items() if not name.endswith(BUFFERS))


def _part(header: Header, prefix: str) -> Header:
    return only(header, [name for name in header.tensors if name.startswith(prefix)])


# --- the SD 1.5 checkpoint ----------------------------------------------------------------------------


def _checkpoint(header: Header) -> FilePart | None:
    if not (header.has(UNET + "input_blocks.0.0.weight") and header.has(UNET + "out.2.weight")):
        return None
    if any(".time_stack." in name or ".time_mixer." in name for name in header.tensors):
        return None  # Stable Video Diffusion's checkpoint: a video UNet, not a base
    _refuse_other_bases(header)
    unet = _part(header, UNET)
    bundled = []
    if all(header.has(VAE + mark) for mark in VAE_MARKS):
        bundled.append(_vae(header, VAE))
    tower = next((p for p in TEXT_TOWERS if header.has(p + "final_layer_norm.weight")), None)
    if tower is not None:
        bundled.append(_text(header, tower))
    return FilePart(header.path, "denoiser", SD15, _format(unet, "UNet"), _unet_config(header),
                    _params(unet), bundled=tuple(bundled))


def _cross_attention_width(header: Header) -> int | None:
    key = next((n for n in header.tensors if n.startswith(UNET) and n.endswith("attn2.to_k.weight")), None)
    return header.shape(key)[1] if key is not None else None


def _refuse_other_bases(header: Header) -> None:
    name = header.path.name
    if header.has(UNET + "label_emb.0.0.weight") or any(n.startswith("conditioner.") for n in header.tensors):
        raise ModelError(f"{name} is an SDXL checkpoint; PIA animates Stable Diffusion 1.5 bases (its motion "
                         "modules are made for SD 1.5's UNet): pick an SD 1.5 checkpoint")
    open_clip = any(n.startswith("cond_stage_model.model.") for n in header.tensors)
    if open_clip or _cross_attention_width(header) == 1024:
        raise ModelError(f"{name} is a Stable Diffusion 2.x checkpoint (OpenCLIP text, 1024 wide); PIA "
                         "animates Stable Diffusion 1.5 bases: pick an SD 1.5 checkpoint")


def _unet_config(header: Header) -> dict[str, Any]:
    """UNet2DConditionModel's config, read off the LDM names: input block k holds level (k-1)//(L+1)'s
    resnet (``.0``) and attention (``.1``); each level but the last ends in a downsampler (``.0.op``)."""
    shape = lambda name: header.shape(UNET + name)  # noqa: E731 - a short local reader
    levels = count_numbered(header, re.escape(UNET) + r"input_blocks\.(\d+)\.0\.op\.weight") + 1
    per_level = count_numbered(header, re.escape(UNET) + r"input_blocks\.(\d+)\.") // levels  # L resnets + 1
    first = [1 + level * per_level for level in range(levels)]  # each level's first input block
    projections = [UNET + f"input_blocks.{k}.1.proj_in.weight" for k in first]
    attention = [header.has(name) for name in projections]
    up_attention = [header.has(UNET + f"output_blocks.{level * per_level}.1.proj_in.weight")
                    for level in range(levels)]
    proj = next((name for name in projections if header.has(name)), None)
    config = {
        **SD15_UNET,
        "in_channels": shape("input_blocks.0.0.weight")[1],
        "out_channels": shape("out.2.weight")[0],
        "block_out_channels": [shape(f"input_blocks.{k}.0.out_layers.3.weight")[0] for k in first],
        "layers_per_block": per_level - 1,
        "down_block_types": ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attention],
        "up_block_types": ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in up_attention],
        "cross_attention_dim": _cross_attention_width(header) or SD15_UNET["cross_attention_dim"],
    }
    if proj is not None and len(header.shape(proj)) == 2:
        config["use_linear_projection"] = True
    config.update(own_config(header, "unet"))
    config["_class_name"] = SD15_UNET["_class_name"]  # a base: the family merges the adapter into it
    return config


# --- the VAE and the text encoder ---------------------------------------------------------------------


def _vae_file(header: Header) -> FilePart | None:
    prefix = next((p for p in ("", VAE) if all(header.has(p + mark) for mark in VAE_MARKS)), None)
    return None if prefix is None else _vae(header, prefix)


def _vae(header: Header, prefix: str) -> FilePart:
    own = _part(header, prefix)
    shape = lambda name: own.shape(prefix + name)  # noqa: E731 - a short local reader
    levels = count_numbered(own, re.escape(prefix) + r"encoder\.down\.(\d+)\.")
    layers = count_numbered(own, re.escape(prefix) + r"encoder\.down\.0\.block\.(\d+)\.")
    config = {
        **SD15_VAE,
        "in_channels": shape("encoder.conv_in.weight")[1],
        "out_channels": shape("decoder.conv_out.weight")[0],
        "block_out_channels": [shape(f"encoder.down.{i}.block.{layers - 1}.conv2.weight")[0]
                               for i in range(levels)],
        "layers_per_block": layers,
        "latent_channels": shape("quant_conv.weight")[0] // 2,  # mean and log-variance
        "down_block_types": ["DownEncoderBlock2D"] * levels,
        "up_block_types": ["UpDecoderBlock2D"] * levels,
    }
    config.update(own_config(header, "vae"))
    return FilePart(header.path, "vae", SD_VAE, _format(own, "VAE"), config, _params(own))


def _text(header: Header, tower: str) -> FilePart:
    own = _part(header, TEXT)
    shape = lambda name: own.shape(tower + name)  # noqa: E731 - a short local reader
    vocab, width = shape("embeddings.token_embedding.weight")
    config = {
        **SD15_TEXT_ENCODER,
        "vocab_size": vocab,
        "hidden_size": width,
        "intermediate_size": shape("encoder.layers.0.mlp.fc1.weight")[0],
        "num_hidden_layers": count_numbered(own, re.escape(tower) + r"encoder\.layers\.(\d+)\."),
        "num_attention_heads": width // 64,  # CLIP's heads are 64 wide
        "max_position_embeddings": shape("embeddings.position_embedding.weight")[0],
    }
    config.update(own_config(header, "text_encoder"))
    return FilePart(header.path, "text_encoder", CLIP_L, _format(own, "text encoder"), config, _params(own),
                    tokenizer=bool(own_config(header, TOKENIZER)))


# --- the motion module --------------------------------------------------------------------------------


def _motion_module(header: Header) -> FilePart | None:
    head = "down_blocks.0.motion_modules.0."
    inner = next((i for i in ("temporal_transformer.", "") if header.has(f"{head}{i}proj_in.weight")), None)
    if inner is None:
        return None
    if any(n.startswith("controlnet_cond_embedding") for n in header.tensors):
        raise ModelError(f"{header.path.name} is an AnimateDiff SparseCtrl control model, not a motion "
                         "module; image-to-video here needs PIA's motion module")
    own = only(header, [n for n in header.tensors if MOTION.match(n) or n.startswith("conv_in.")])
    config = _motion_config(own, inner)
    return FilePart(header.path, "motion_module", _motion_variant(config, own), _format(own, "motion module"),
                    config, _params(own))


def _motion_config(own: Header, inner: str) -> dict[str, Any]:
    levels = count_numbered(own, r"down_blocks\.(\d+)\.motion_modules\.")
    blocks = re.escape(inner) + r"transformer_blocks\.(\d+)\."
    pe = next((t.shape for n, t in own.tensors.items() if n.endswith(BUFFERS[:2])), None)
    config = {
        **PIA_ADAPTER,
        "block_out_channels": [own.shape(f"down_blocks.{i}.motion_modules.0.{inner}proj_in.weight")[1]
                               for i in range(levels)],
        "motion_layers_per_block": count_numbered(own, r"down_blocks\.0\.motion_modules\.(\d+)\."),
        "motion_transformer_layers_per_block": count_numbered(
            own, r"down_blocks\.0\.motion_modules\.0\." + blocks),
        "motion_max_seq_length": pe[1] if pe is not None else PIA_ADAPTER["motion_max_seq_length"],
        "conv_in_channels": own.shape("conv_in.weight")[1] if own.has("conv_in.weight") else None,
        "use_motion_mid_block": own.has(f"mid_block.motion_modules.0.{inner}proj_in.weight"),
    }
    if config["use_motion_mid_block"]:
        config["motion_mid_block_layers_per_block"] = count_numbered(
            own, r"mid_block\.motion_modules\.(\d+)\.")
        config["motion_transformer_layers_per_mid_block"] = count_numbered(
            own, r"mid_block\.motion_modules\.0\."
                                                                   + blocks)
    config.update(own_config(own, ADAPTER))
    config["_class_name"] = "MotionAdapter"
    return config


def _motion_variant(config: Mapping[str, Any], own: Header) -> str:
    """``pia`` for PIA's image-conditioned module; the kind of plain AnimateDiff module otherwise."""
    if config["conv_in_channels"] == IMAGE_CHANNELS:
        return PIA_MODULE
    if len(config["block_out_channels"]) == 3:
        return "AnimateDiff SDXL"
    if not any(n.endswith(BUFFERS[:2]) for n in own.tensors):
        return "AnimateLCM"
    if config["use_motion_mid_block"]:
        return "AnimateDiff v2"
    return "AnimateDiff v3" if config["motion_max_seq_length"] == 32 else "AnimateDiff v1"


# --- which files make a model --------------------------------------------------------------------------

_SLOT_KIND = {"diffusion_model": "denoiser", "diffusion_model_2": "motion_module", "vae": "vae"}
_KIND_WORDS = {
    "denoiser": "a Stable Diffusion 1.5 checkpoint (checkpoints folder)",
    "motion_module": "an AnimateDiff motion module (animatediff_models folder)",
    "vae": "an SD VAE (vae folder)",
}


def assemble(parts: Mapping[str, FilePart]) -> FileSet:
    """The model the files make, or an error naming the input, the file and what was expected."""
    _refuse_unused(parts)
    for slot, part in parts.items():
        if part.kind != _SLOT_KIND[slot]:
            hint = ": put it in diffusion_model_2" if part.kind == "motion_module" else ""
            raise InputError(slot, f"{part.path.name} is {_KIND_WORDS.get(part.kind, 'a ' + part.kind)}, not "
                                   f"{_KIND_WORDS[_SLOT_KIND[slot]]}{hint}")
    base = parts["diffusion_model"]
    module = _check_module(base, parts.get("diffusion_model_2"))
    text = _bundled(base, "text_encoder")
    if text is None:
        raise InputError("diffusion_model", f"{base.path.name} holds no CLIP text encoder "
                                            "(cond_stage_model.transformer.): pick a full SD 1.5 checkpoint")
    if text.config["hidden_size"] != base.config["cross_attention_dim"]:
        raise InputError("diffusion_model", f"{base.path.name}: its text encoder is "
                                            f"{text.config['hidden_size']} wide, its UNet takes "
                                            f"{base.config['cross_attention_dim']}")
    vae = _pick_vae(base, parts.get("vae"))
    # The adapter's weights join the UNet when it loads (its input layer replaces the base's): they are
    # counted there, as the memory guard sizes the UNet that runs; the adapter's file is listed for the
    # cache key and the report.
    conv_in = base.config["block_out_channels"][0] * (base.config["in_channels"] * 9 + 1)
    roles = {"unet": dataclasses.replace(base, params=base.params - conv_in + module.params),
             ADAPTER: dataclasses.replace(module, params=0), "vae": vae, "text_encoder": text}
    configs: dict[str, Any] = {role: dict(part.config) for role, part in roles.items()}
    configs["scheduler"] = dict(PIA_SCHEDULER)  # checkpoints carry none: PIA's own sampler settings
    configs["pipeline"] = {}
    return FileSet(PIA, roles, configs)


def _refuse_unused(parts: Mapping[str, FilePart]) -> None:
    if "clip_vision" in parts:
        raise InputError("clip_vision", "AnimateDiff (PIA) uses no CLIP vision model: set clip_vision to "
                                        "none")
    if "text_encoder" in parts:
        raise InputError("text_encoder", "an SD 1.5 checkpoint carries its own CLIP text encoder: set "
                                         "text_encoder to none")


def _bundled(base: FilePart, kind: str) -> FilePart | None:
    return next((part for part in base.bundled if part.kind == kind), None)


def _check_module(base: FilePart, module: FilePart | None) -> FilePart:
    if module is None:
        raise InputError("diffusion_model_2", "an AnimateDiff image-to-video model needs PIA's motion module "
                                              "here (a safetensors file in animatediff_models)")
    if module.variant != PIA_MODULE:
        raise InputError("diffusion_model_2", f"{module.path.name} is an {module.variant} motion module "
                                              "(text-to-video): it has no image input. Image-to-video needs "
                                              "PIA's motion module, whose conv_in takes the image (pia.ckpt "
                                              "converted to safetensors)")
    if base.config["in_channels"] != RULES.latent_channels:
        raise InputError("diffusion_model", f"{base.path.name}'s UNet takes {base.config['in_channels']} "
                                            "input channels; a text-to-image SD 1.5 base takes "
                                            f"{RULES.latent_channels} (an inpainting checkpoint is no base "
                                            "for PIA)")
    problem = pair_problem(base.config, module.config)
    if problem is not None:
        raise InputError("diffusion_model_2", f"{module.path.name} does not fit {base.path.name}: {problem}")
    return module


def _pick_vae(base: FilePart, given: FilePart | None) -> FilePart:
    """The vae input's file, else the checkpoint's own VAE (as ComfyUI's VAELoader overrides it)."""
    vae = given if given is not None else _bundled(base, "vae")
    if vae is None:
        raise InputError("vae", f"{base.path.name} holds no VAE: give an SD VAE file here")
    if vae.config["latent_channels"] != base.config["out_channels"]:
        raise InputError("vae", f"{vae.path.name} has {vae.config['latent_channels']} latent channels; "
                                f"{base.path.name} works on {base.config['out_channels']} (an SD 1.5 VAE)")
    return vae
