"""LTX-Video single files as ComfyUI users have them, recognised from their safetensors headers alone.

ComfyUI runs LTX-Video 0.9.x from two files:

- a checkpoint in ``checkpoints`` (CheckpointLoaderSimple), e.g. ``ltx-video-2b-v0.9.5.safetensors``
  or ``ltxv-13b-0.9.7-dev.safetensors``: the transformer under ``model.diffusion_model.`` and the VAE
  under ``vae.``, both in Lightricks' original key names (``patchify_proj``, ``adaln_single``,
  ``res_blocks``, ``per_channel_statistics``). Transformer-only files (no prefix) and VAE-only files
  (``vae`` folder, no prefix) are read too;
- the T5 v1.1 XXL encoder in ``text_encoders`` (CLIPLoader type "ltxv"), ``t5xxl_fp16`` and its fp8
  forms, in transformers' key names (``encoder.block.N.layer.0.SelfAttention.q.weight``, one shared
  ``relative_attention_bias`` in block 0), with no tokenizer.

ComfyUI-GGUF's LTX-Video transformers (architecture ``ltxv``, in ``unet``) have the transformer-only
files' names and shapes, their matrices quantised; their VAE comes from the vae input.

The release is read off key names and shapes: the 0.9.5+ VAE downsamples with a convolution of its
own (``encoder.down_blocks.1.conv.conv``), the 0.9.1 VAE decodes at a timestep
(``decoder.last_time_embedder``), the 0.9.0 VAE does neither; the 13B transformer is 4096 wide. The
distilled releases have the dev weights' shapes, so "distilled" in the file name tells them apart,
as the folder path does for diffusers folders. Settings no shape shows come from the pack's own
``diffusers_config`` metadata where a file carries it (the tiny test files do), else from
Lightricks' ``config`` metadata (attention heads), else the published values.

Key names: the transformer goes through diffusers' own converter (plain renames, any size). The VAE
names are mapped here from the module's own structure, in the order its blocks run: diffusers'
converter fixes block indices for the published widths (it tells the 0.9.5 VAE by its 2048-wide
last block), which no other layout fits. Tests check both agree on the published layouts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from i2v_nodes.errors import InputError, ModelError
from i2v_nodes.families.contract.files import FilePart, FileSet
from i2v_nodes.families.ltx_video.configs import (
    _TRANSFORMER_COMMON,
    DEV,
    DISTILLED,
    LEGACY,
    SCHEDULER_091,
    SCHEDULER_095,
    VAE_091,
    VAE_095,
)
from i2v_nodes.families.toolkit.file_headers import (
    CONFIG_KEY,
    count_numbered,
    file_format,
    float8_params,
    half_matrix_params,
    half_params,
    only,
    own_config,
    prefix_of,
    weight_params,
)
from i2v_nodes.families.toolkit.gguf_header import architecture, gguf_weights
from i2v_nodes.families.toolkit.safetensors_header import Header

TRANSFORMER_PREFIXES = ("model.diffusion_model.", "")
VAE_PREFIXES = ("vae.", "")
VAE090, VAE091, VAE095 = "ltx-vae-0.9.0", "ltx-vae-0.9.1", "ltx-vae-0.9.5"
T5 = "t5-v1_1"
OTHER_PARTS = ("vae.", "text_encoders.", "cond_stage_model.")  # what a checkpoint may hold besides
STATISTICS = "per_channel_statistics."
LTX2_MARKERS = ("audio_vae.", "audio_patchify_proj.", "av_ca_")  # keys only LTX-2's files have
MEAN, STD = STATISTICS + "mean-of-means", STATISTICS + "std-of-means"

# diffusers' conversion script's 0.9.0 VAE (the others are the family's published ones)
VAE_090 = {
    **{k: v for k, v in VAE_091.items() if k not in ("decoder_inject_noise", "timestep_conditioning")},
    "decoder_block_out_channels": (128, 256, 512, 512),
    "decoder_layers_per_block": (4, 3, 3, 3, 4),
    "decoder_spatio_temporal_scaling": (True, True, True, False),
    "decoder_inject_noise": (False, False, False, False, False),
    "upsample_residual": (False, False, False, False),
    "upsample_factor": (1, 1, 1, 1),
    "timestep_conditioning": False,
}
PUBLISHED_VAES = {VAE090: VAE_090, VAE091: VAE_091, VAE095: VAE_095}
_RELEASES = {VAE090: "0.9.0", VAE091: "0.9.1", VAE095: "0.9.5 and later"}


GGUF_DESCRIPTION = "LTX-Video 0.9.x transformers (architecture 'ltxv')"


def identify(header: Header) -> FilePart | None:
    if any(marker in name for name in header.tensors for marker in LTX2_MARKERS):
        return None  # LTX-2 (video with sound): another family's files
    if header.container == "gguf":  # a GGUF file: only a transformer of LTX-Video's architecture
        return _transformer(header) if architecture(header) in ("ltxv", "") else None
    for recognise in (_transformer, _vae_file, _t5):
        part = recognise(header)
        if part is not None:
            return part
    return None


# --- metadata -------------------------------------------------------------------------------------




def _lightricks_heads(header: Header) -> dict[str, int]:
    """Attention heads from Lightricks' own ``config`` metadata (its checkpoints carry one)."""
    try:
        transformer = json.loads(header.metadata.get("config", "{}")).get("transformer", {})
        heads, dim = int(transformer["num_attention_heads"]), int(transformer["attention_head_dim"])
    except (ValueError, TypeError, KeyError, AttributeError):
        return {}
    return {"num_attention_heads": heads, "attention_head_dim": dim}


# --- the transformer (and a checkpoint's VAE) -----------------------------------------------------


def _transformer(header: Header) -> FilePart | None:
    prefix = next((p for p in TRANSFORMER_PREFIXES if header.has(p + "patchify_proj.weight")
                   and header.has(p + "adaln_single.linear.weight")), None)
    if prefix is None:
        return None
    shape = lambda name: header.shape(prefix + name)  # noqa: E731 - a short local reader
    inner, in_channels = shape("patchify_proj.weight")
    config = {
        **_TRANSFORMER_COMMON,
        "in_channels": in_channels,
        "out_channels": shape("proj_out.weight")[0],
        "num_attention_heads": 32,  # every release: 32 heads (64 wide for 2B, 128 for 13B)
        "attention_head_dim": inner // 32,
        "cross_attention_dim": shape("transformer_blocks.0.attn2.to_k.weight")[1],
        "caption_channels": shape("caption_projection.linear_1.weight")[1],
        "num_layers": count_numbered(header, re.escape(prefix) + r"transformer_blocks\.(\d+)\."),
        "attention_bias": header.has(prefix + "transformer_blocks.0.attn1.to_q.bias"),
        "attention_out_bias": header.has(prefix + "transformer_blocks.0.attn1.to_out.0.bias"),
    }
    config.update(_lightricks_heads(header))
    config.update(own_config(header, "transformer"))
    if config["num_attention_heads"] * config["attention_head_dim"] != inner:
        raise ModelError(f"{header.path.name}: an LTX-Video transformer {inner} wide, not "
                         f"{config['num_attention_heads']} heads of {config['attention_head_dim']}")
    own = only(header, [n for n in header.tensors if n.startswith(prefix) and not n.startswith(OTHER_PARTS)])
    vae = _vae(header, "vae.") if _vae_prefix(header) == "vae." else None  # a checkpoint's own VAE
    return FilePart(
        header.path,
        "denoiser",
        release(header.path, vae.variant if vae is not None else None),
        file_format(own),
        config,
        weight_params(own),
        float8_params=float8_params(own, ()),  # every float8 matrix stays float8 (no fp32-kept parts)
        bundled=(vae,) if vae is not None else (),
        gguf=gguf_weights(own),
    )


def release(path: Path, vae: str | None) -> str:
    """The variant a transformer file makes with a VAE of this release (None: not known yet)."""
    if vae in (VAE090, VAE091):
        return LEGACY
    return DISTILLED if "distilled" in path.name.lower() else DEV




# --- the VAE ---------------------------------------------------------------------------------------


def _vae_prefix(header: Header) -> str | None:
    marks = ("decoder.up_blocks.0.res_blocks.0.conv1.conv.weight", "encoder.conv_out.conv.weight")
    return next((p for p in VAE_PREFIXES if all(header.has(p + mark) for mark in marks)), None)


def _vae_file(header: Header) -> FilePart | None:
    prefix = _vae_prefix(header)
    return None if prefix is None else _vae(header, prefix)


def _vae(header: Header, prefix: str) -> FilePart:
    own = only(header, [n for n in header.tensors if n.startswith(prefix)])
    if not own.has(prefix + MEAN) or not own.has(prefix + STD):
        raise ModelError(f"{header.path.name}: an LTX-Video VAE without its latent statistics "
                         f"({prefix}{MEAN}, {prefix}{STD})")
    if own.has(prefix + "encoder.down_blocks.1.conv.conv.weight"):
        variant = VAE095
    elif own.has(prefix + "decoder.last_time_embedder.timestep_embedder.linear_1.weight"):
        variant = VAE091
    else:
        variant = VAE090
    config = own_config(header, "vae")
    if not config:  # a published VAE: its layout is the published one; check the widths
        config = dict(PUBLISHED_VAES[variant])
        widths = (own.shape(prefix + "encoder.conv_in.conv.weight")[0],
                  own.shape(prefix + "encoder.conv_out.conv.weight")[1])
        if widths != (config["block_out_channels"][0], config["block_out_channels"][-1]):
            raise ModelError(f"{header.path.name}: an LTX-Video {_RELEASES[variant]} VAE of widths {widths}, "
                             "not the published ones; a VAE of another layout needs its config in the "
                             f"file's {CONFIG_KEY!r} metadata")
    # weights only: the latent statistics are buffers (as parameter counts of published models have it)
    params = sum(t.numel for n, t in own.tensors.items() if not n.startswith(prefix + STATISTICS))
    return FilePart(header.path, "vae", variant, file_format(own), config, params)


# --- the T5 encoder --------------------------------------------------------------------------------


def _t5(header: Header) -> FilePart | None:
    prefix = prefix_of(header, "encoder.final_layer_norm.weight")
    if prefix is None:
        return None
    bias = prefix + "encoder.block.{}.layer.0.SelfAttention.relative_attention_bias.weight"
    if not header.has(bias.format(0)) or header.has(bias.format(1)):
        return None  # a UMT5 (a position bias in every block) is Wan's
    embedding = next((prefix + n for n in ("shared.weight", "encoder.embed_tokens.weight")
                      if header.has(prefix + n)), None)
    if embedding is None:
        raise ModelError(f"{header.path.name}: a T5 encoder without its token embedding")
    buckets, heads = header.shape(bias.format(0))
    layer = prefix + "encoder.block.0.layer."
    gated = header.has(layer + "1.DenseReluDense.wi_0.weight")  # T5 v1.1 (the tiny files: plain)
    feed_forward = layer + ("1.DenseReluDense.wi_0.weight" if gated else "1.DenseReluDense.wi.weight")
    config = {
        "vocab_size": header.shape(embedding)[0],
        "d_model": header.shape(embedding)[1],
        "num_heads": heads,
        "relative_attention_num_buckets": buckets,
        "relative_attention_max_distance": 128,
        "d_kv": header.shape(layer + "0.SelfAttention.q.weight")[0] // heads,
        "d_ff": header.shape(feed_forward)[0],
        "num_layers": count_numbered(header, re.escape(prefix) + r"encoder\.block\.(\d+)\."),
        "feed_forward_proj": "gated-gelu" if gated else "relu",
        "layer_norm_epsilon": 1e-6,
    }
    config.update(own_config(header, "text_encoder"))
    encoder = only(header, [n for n in header.tensors  # a full T5's decoder is left out
                             if n.startswith((prefix + "encoder.", prefix + "shared.")) or n == "scaled_fp8"])
    both = [prefix + n for n in ("shared.weight", "encoder.embed_tokens.weight")]
    tied = (both[1],) if all(header.has(n) for n in both) else ()
    return FilePart(
        header.path,
        "text_encoder",
        T5,
        file_format(encoder),
        config,
        weight_params(encoder, tied),
        tokenizer=header.has("spiece_model"),
        float8_params=float8_params(encoder, ("shared.", "embed_tokens", "relative_attention_bias")),
        # the token table, and (from a bf16 / fp16 file) the matrices, stay in their stored half precision;
        # a plain (not gated) feed-forward's output layer is cast to fp32 (transformers keeps it so)
        half_params=half_params(encoder, both) + half_matrix_params(
            encoder, ("shared.", "embed_tokens", "relative_attention_bias", *(() if gated else (".wo.",)))),
    )


# --- key names ---------------------------------------------------------------------------------------

_VAE_TOP = {"latents_mean": MEAN, "latents_std": STD}
_DECODER_LAST = ("decoder.time_embedder.", "decoder.scale_shift_table")  # the decoder's own, "last_" there
# a block's parts in the order they run (diffusers' LTXVideoDownBlock3D / LTXVideoUpBlock3d)
_GROUPS = {"encoder": ("resnets", "downsamplers.0", "conv_out"),
           "decoder": ("conv_in", "upsamplers.0", "resnets")}
_BLOCK = re.compile(r"(encoder|decoder)\.(?:(down_blocks|up_blocks)\.(\d+)|mid_block)\."
                    r"(resnets|downsamplers\.0|conv_out|conv_in|upsamplers\.0|time_embedder)\.(.+)")


def transformer_to_original(key: str) -> str:
    """A diffusers transformer name in Lightricks' (the inverse of diffusers' converter)."""
    for new, old in (("proj_in.", "patchify_proj."), ("time_embed.", "adaln_single.")):
        if key.startswith(new):
            return old + key.removeprefix(new)
    return key.replace(".norm_q.", ".q_norm.").replace(".norm_k.", ".k_norm.")


def transformer_to_diffusers(checkpoint: dict[str, Any]) -> dict[str, Any]:
    from diffusers.loaders.single_file_utils import convert_ltx_transformer_checkpoint_to_diffusers

    return convert_ltx_transformer_checkpoint_to_diffusers(dict(checkpoint))


def _vae_groups(names: Iterable[str]) -> dict[tuple[str, str], int]:
    """(side, diffusers block + part) -> the original block index: the original numbers every part
    that runs on its own (resnets, a resampler, a channel change) in the order they run; the
    encoder's middle comes last, the decoder's first."""
    names = list(names)
    index: dict[tuple[str, str], int] = {}
    for side, blocks in (("encoder", "down_blocks"), ("decoder", "up_blocks")):
        count = sorted({int(m.group(1)) for n in names if (m := re.match(rf"{side}\.{blocks}\.(\d+)\.", n))})
        order = [f"{blocks}.{i}.{group}" for i in count for group in _GROUPS[side]]
        order = ["mid_block.resnets", *order] if side == "decoder" else [*order, "mid_block.resnets"]
        present = [part for part in order if any(n.startswith(f"{side}.{part}.") for n in names)]
        index.update({(side, part): i for i, part in enumerate(present)})
    return index


def vae_names_to_original(names: Iterable[str]) -> dict[str, str]:
    """diffusers name -> Lightricks name, for every tensor of an LTX-Video VAE module."""
    names = list(names)
    groups = _vae_groups(names)
    return {name: _vae_name(name, groups) for name in names}


def _vae_name(name: str, groups: Mapping[tuple[str, str], int]) -> str:
    if name in _VAE_TOP:
        return _VAE_TOP[name]
    if name.startswith(_DECODER_LAST):
        return "decoder.last_" + name.removeprefix("decoder.")
    match = _BLOCK.match(name)
    if match is None:
        return name  # the ends: conv_in, conv_out, the decoder's timestep scale
    side, blocks, block, part, rest = match.groups()
    owner = f"{blocks}.{block}" if blocks else "mid_block"
    # a block's time embedder belongs to its resnets (one "res_x" block in the original)
    group = groups[(side, f"{owner}.{'resnets' if part == 'time_embedder' else part}")]
    original = "down_blocks" if side == "encoder" else "up_blocks"
    inner = {"resnets": "res_blocks.", "time_embedder": "time_embedder."}.get(part, "")
    rest = rest.replace("conv_shortcut.conv.", "conv_shortcut.").replace("norm3.", "norm3.norm.")
    return f"{side}.{original}.{group}.{inner}{rest}"


def vae_to_diffusers(checkpoint: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """A VAE checkpoint in Lightricks' names renamed to the module's own (``names``); statistics the
    module does not keep are left out."""
    original = {old: new for new, old in vae_names_to_original(names).items()}
    unknown = [key for key in checkpoint if key not in original and not key.startswith(STATISTICS)]
    if unknown:
        raise KeyError(f"{len(unknown)} tensors the VAE does not have, e.g. {unknown[:3]}")
    return {original[key]: value for key, value in checkpoint.items() if key in original}


# --- which files make a model ------------------------------------------------------------------------

_SLOT_KIND = {"diffusion_model": "denoiser", "text_encoder": "text_encoder", "vae": "vae"}
_KIND_WORDS = {
    "denoiser": "an LTX-Video checkpoint or transformer (checkpoints or diffusion_models folder)",
    "text_encoder": "a text encoder (text_encoders folder)",
    "vae": "a VAE (vae folder)",
}
PUBLISHED_WIDTH = 4096  # T5 v1.1 XXL's, which every release's caption projection takes


def assemble(parts: Mapping[str, FilePart]) -> FileSet:
    """The model the files make, or an error naming the slot, the file and what was expected."""
    for slot in ("diffusion_model_2", "clip_vision"):
        if slot in parts:
            raise InputError(slot, f"LTX-Video uses no {slot.replace('_', ' ')}: set {slot} to none")
    for slot, part in parts.items():
        if part.kind != _SLOT_KIND[slot]:
            raise InputError(slot, f"{part.path.name} is {_KIND_WORDS.get(part.kind, 'a ' + part.kind)}, "
                                   f"not {_KIND_WORDS[_SLOT_KIND[slot]]}")
    transformer = parts["diffusion_model"]
    vae = _pick_vae(transformer, parts.get("vae"))
    text = _check_text(transformer, parts.get("text_encoder"))
    variant = release(transformer.path, vae.variant)
    if transformer.config["num_attention_heads"] * transformer.config["attention_head_dim"] >= 4096 \
            and vae.variant != VAE095:
        raise InputError("vae", f"{vae.path.name} is the LTX-Video {_RELEASES[vae.variant]} VAE; "
                                f"{transformer.path.name} (13B, 0.9.7 and later) needs the 0.9.5+ VAE")
    roles = {"transformer": transformer, "vae": vae, "text_encoder": text}
    configs: dict[str, Any] = {role: dict(part.config) for role, part in roles.items()}
    configs["scheduler"] = dict(SCHEDULER_091 if variant == LEGACY else SCHEDULER_095)
    configs["pipeline"] = {}
    return FileSet(variant, roles, configs)


def _pick_vae(transformer: FilePart, given: FilePart | None) -> FilePart:
    """The vae input's file, else the checkpoint's own VAE; a given VAE must be the release the
    checkpoint's is (its transformer was trained on that VAE's latents)."""
    bundled = transformer.bundled[0] if transformer.bundled else None
    if given is None and bundled is None:
        raise InputError("vae", f"{transformer.path.name} holds the transformer alone: give its LTX-Video "
                                "VAE here (or load the full checkpoint, which carries it)")
    if given is not None and bundled is not None and given.variant != bundled.variant:
        raise InputError("vae", f"{given.path.name} is the LTX-Video {_RELEASES[given.variant]} VAE, but "
                                f"{transformer.path.name} carries the {_RELEASES[bundled.variant]} VAE it "
                                "was trained with: set vae to none to use it")
    return given if given is not None else bundled


def _check_text(transformer: FilePart, text: FilePart | None) -> FilePart:
    if text is None:
        raise InputError("text_encoder", "an LTX-Video model needs the T5 v1.1 XXL text encoder here "
                                         "(t5xxl_fp16.safetensors, or an fp8 form, in text_encoders)")
    width, wanted = text.config["d_model"], transformer.config["caption_channels"]
    if width != wanted:
        raise InputError("text_encoder", f"{text.path.name} gives {width}-wide embeddings; "
                                         f"{transformer.path.name} takes {wanted} (T5 v1.1 XXL's 4096)")
    if width == PUBLISHED_WIDTH and text.config["feed_forward_proj"] != "gated-gelu":
        raise InputError("text_encoder", f"{text.path.name} is the original T5 XXL (t5xxl_old); LTX-Video "
                                         "uses T5 v1.1 XXL (t5xxl_fp16.safetensors)")
    return text
