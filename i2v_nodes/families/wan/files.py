"""Wan single files as ComfyUI users have them, recognised from their safetensors headers alone.

ComfyUI's Wan templates download one file per component into its model folders:

- ``diffusion_models``: a transformer in the original Wan key names (``blocks.N.self_attn.q.weight``,
  ``head.modulation``, ``img_emb.proj.*``), in bf16 / fp16, fp8_e4m3fn, or ComfyUI's fp8_scaled
  (float8 weights with a per-tensor ``scale_weight`` and a ``scaled_fp8`` marker); Wan 2.2 A14B
  comes as two files, the high-noise and the low-noise expert; Wan 2.1 FLF2V-14B-720P
  (``wan2.1_flf2v_720p_14B_fp16`` / ``_fp8_e4m3fn``) is Wan 2.1 I2V's layout plus ``img_emb.emb_pos``,
  the positions of its two images' CLIP states;
- ``text_encoders``: UMT5-XXL in transformers' key names, with its sentencepiece tokenizer
  embedded as a ``spiece_model`` tensor;
- ``vae``: the Wan 2.1 VAE (16 latent channels) or the Wan 2.2 VAE (48 channels, 16x), original
  key names;
- ``clip_vision``: CLIP ViT-H/14 in transformers' key names (Wan 2.1 I2V and FLF2V only);
- ``unet`` (ComfyUI-GGUF's folder) or ``diffusion_models``: the transformer as a GGUF file (city96's
  and QuantStack's, e.g. ``Wan2.2-I2V-A14B-HighNoise-Q4_K_M.gguf``), architecture ``wan``, in the same
  original key names and shapes, its matrices quantised (Q8_0, Q6_K, Q5_K_M, Q4_K_M, Q3_K_M, ...).

What a file is, which variant it belongs to and whether the files fit together is read from key
names, shapes and dtypes, never from tensor data. Shapes give every width and depth; settings a
shape cannot show (a VAE of an unpublished layout, rope lengths) come from a ``config`` JSON in
the header's metadata when the file carries one (the tiny test files do), else the published ones.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from i2v_nodes.errors import InputError, ModelError
from i2v_nodes.families.contract.files import FilePart, FileSet
from i2v_nodes.families.toolkit.file_headers import (
    count_numbered,
    file_format,
    float8_params,
    half_matrix_params,
    half_params,
    prefix_of,
    weight_params,
)
from i2v_nodes.families.toolkit.gguf_header import architecture, gguf_weights
from i2v_nodes.families.toolkit.safetensors_header import Header
from i2v_nodes.families.wan.configs import PUBLISHED

A14B, WAN21, TI2V, FLF2V = "wan2.2-i2v-a14b", "wan2.1-i2v", "wan2.2-ti2v-5b", "wan2.1-flf2v"
VAE21, VAE22 = "wan-vae-2.1", "wan-vae-2.2"
TRANSFORMER_PREFIXES = ("", "model.diffusion_model.")
# Models that share the Wan transformer layout but are not image-to-video from one image.
OTHER_WAN = {
    "vace_blocks.0.after_proj.weight": "VACE",
    "motion_encoder.dec.direction.weight": "Animate",
    "casual_audio_encoder.encoder.final_linear.weight": "speech-to-video (S2V)",
    "control_adapter.conv.weight": "camera control",
}


TEXT_TABLES = ("shared.", "embed_tokens", "relative_attention_bias")  # UMT5's embedding tables
GGUF_ARCHITECTURES = ("wan", "")  # ComfyUI-GGUF's name for Wan; "" for a file that names none
# what diffusers' WanTransformer3DModel keeps in fp32 (_keep_in_fp32_modules), in the original names
FP32_PARTS = ("time_embedding.", "modulation", ".norm3.", "img_emb.proj.0.", "img_emb.proj.4.")
GGUF_DESCRIPTION = "Wan 2.1 / 2.2 image-to-video transformers (architecture 'wan', ComfyUI-GGUF's files)"


def identify(header: Header) -> FilePart | None:
    if header.container == "gguf":  # a GGUF file: only a transformer, and only of Wan's architecture
        return _transformer(header) if architecture(header) in GGUF_ARCHITECTURES else None
    for recognise in (_transformer, _umt5, _vae, _clip_vision):
        part = recognise(header)
        if part is not None:
            return part
    return None


def _metadata_config(header: Header) -> dict[str, Any]:
    text = header.metadata.get("config")
    if not text:
        return {}
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise ModelError(f"{header.path.name}: its metadata 'config' is not JSON: {exc}") from exc
    return config if isinstance(config, dict) else {}


def _expert_hint(header: Header) -> str:
    name = header.path.name.lower()
    if "high_noise" in name or "high-noise" in name or "highnoise" in name:
        return "high"
    if "low_noise" in name or "low-noise" in name or "lownoise" in name:
        return "low"
    return ""


# --- what a file is -------------------------------------------------------------------------------


def _transformer(header: Header) -> FilePart | None:
    prefix = next((p for p in TRANSFORMER_PREFIXES if header.has(p + "head.modulation")), None)
    if prefix is None:
        return None
    for marker, what in OTHER_WAN.items():
        if header.has(prefix + marker):
            raise ModelError(
                f"{header.path.name} is a Wan {what} model, not an image-to-video one this pack runs"
            )
    if not header.has(prefix + "patch_embedding.weight"):  # 5-D: ComfyUI-GGUF's convert sets it aside
        raise ModelError(f"{header.path.name} has no patch_embedding.weight (a GGUF made without "
                         "ComfyUI-GGUF's fix_5d_tensors step?); get a complete file")
    shape = lambda name: header.shape(prefix + name)  # noqa: E731 - a short local reader
    dim, in_dim = shape("head.modulation")[-1], shape("patch_embedding.weight")[1]
    if dim % 128:
        raise ModelError(
            f"{header.path.name}: a Wan transformer of width {dim}, not a multiple of its 128-wide heads"
        )
    image = header.has(prefix + "img_emb.proj.0.weight")
    if in_dim == 16:
        raise ModelError(
            f"{header.path.name} is a Wan text-to-video model (16 input channels); image-to-video needs "
            "an I2V file (36 channels, or 48 for TI2V-5B)"
        )
    flf = header.has(prefix + "img_emb.emb_pos")  # FLF2V: positions for two images' CLIP states
    variant = {(36, True): FLF2V if flf else WAN21, (36, False): A14B, (48, False): TI2V}.get((in_dim, image))
    if variant is None:
        raise ModelError(
            f"{header.path.name}: a Wan transformer with {in_dim} input channels, a layout this pack "
            "does not know"
        )
    config = {
        "patch_size": [1, 2, 2],
        "num_attention_heads": dim // 128,
        "attention_head_dim": 128,
        "in_channels": in_dim,
        "out_channels": shape("head.head.weight")[0] // 4,
        "text_dim": shape("text_embedding.0.weight")[1],
        "freq_dim": shape("time_embedding.0.weight")[1],
        "ffn_dim": shape("blocks.0.ffn.0.weight")[0],
        "num_layers": count_numbered(header, re.escape(prefix) + r"blocks\.(\d+)\."),
        "cross_attn_norm": True,
        "qk_norm": "rms_norm_across_heads",
        "eps": 1e-6,
    }
    if image:
        config.update(image_dim=shape("img_emb.proj.0.weight")[0], added_kv_proj_dim=dim)
    if flf:
        config["pos_embed_seq_len"] = shape("img_emb.emb_pos")[1]
    config.update(_metadata_config(header))
    return FilePart(header.path, "denoiser", variant, file_format(header), config, weight_params(header),
                    hint=_expert_hint(header),
                    float8_params=float8_params(header, ("time_embedding.",)),  # diffusers keeps it in fp32
                    gguf=gguf_weights(header, FP32_PARTS))


def _umt5(header: Header) -> FilePart | None:
    prefix = prefix_of(header, "encoder.final_layer_norm.weight")
    if prefix is None:
        return None
    bias = prefix + "encoder.block.{}.layer.0.SelfAttention.relative_attention_bias.weight"
    if not (header.has(bias.format(0)) and header.has(bias.format(1))):
        return None  # a T5 (one shared position bias), not the UMT5 Wan uses
    embedding = next(
        (prefix + n for n in ("shared.weight", "encoder.embed_tokens.weight") if header.has(prefix + n)), None
    )
    if embedding is None:
        raise ModelError(f"{header.path.name}: a UMT5 encoder without its token embedding")
    vocab, d_model = header.shape(embedding)
    buckets, heads = header.shape(bias.format(0))
    layer = prefix + "encoder.block.0.layer."
    config = {
        "vocab_size": vocab,
        "d_model": d_model,
        "num_heads": heads,
        "relative_attention_num_buckets": buckets,
        "d_kv": header.shape(layer + "0.SelfAttention.q.weight")[0] // heads,
        "d_ff": header.shape(layer + "1.DenseReluDense.wi_0.weight")[0],
        "num_layers": count_numbered(header, re.escape(prefix) + r"encoder\.block\.(\d+)\."),
        "relative_attention_max_distance": 128,
        "feed_forward_proj": "gated-gelu",
        "tie_word_embeddings": False,
    }
    config.update(_metadata_config(header))
    # the token embedding is one tensor in the model, saved under both names by some tools
    both = [prefix + n for n in ("shared.weight", "encoder.embed_tokens.weight")]
    tied = (both[1],) if all(header.has(n) for n in both) else ()
    return FilePart(
        header.path,
        "text_encoder",
        "umt5",
        file_format(header),
        config,
        weight_params(header, tied),
        tokenizer=header.has("spiece_model"),
        # float8 embedding tables are dequantised (the output layers kept in fp32 stay float8)
        float8_params=float8_params(header, TEXT_TABLES),
        # the token table, and (from a bf16 / fp16 file) every matrix, stay in their stored half precision
        half_params=half_params(header, both) + half_matrix_params(header, TEXT_TABLES),
    )


def _vae(header: Header) -> FilePart | None:
    if not header.has("decoder.middle.0.residual.0.gamma"):
        return None
    z_dim = header.shape("conv1.weight")[0] // 2
    residual = header.has("encoder.downsamples.0.downsamples.0.residual.0.gamma")  # Wan 2.2's layout
    variant = {(16, False): VAE21, (48, True): VAE22}.get((z_dim, residual))
    if variant is None:
        raise ModelError(
            f"{header.path.name}: a Wan VAE with {z_dim} latent channels in a layout this pack does not "
            "know (it reads the Wan 2.1 and Wan 2.2 VAEs)"
        )
    config = _metadata_config(header)
    if not config:  # a published VAE: its layout is the published one, check the width
        hub = "Wan-AI/Wan2.2-TI2V-5B-Diffusers" if variant == VAE22 else "Wan-AI/Wan2.2-I2V-A14B-Diffusers"
        config = dict(PUBLISHED[hub]["vae"])
        base = config.get("base_dim", 96)
        if header.shape("encoder.conv1.weight")[0] != base:
            raise ModelError(
                f"{header.path.name}: a {variant} file of width {header.shape('encoder.conv1.weight')[0]},"
                f" not the published {base}; a VAE of another layout needs its config in the file's "
                "metadata"
            )
    return FilePart(header.path, "vae", variant, file_format(header), config, weight_params(header))


def _clip_vision(header: Header) -> FilePart | None:
    prefix = prefix_of(header, "vision_model.embeddings.patch_embedding.weight")
    if prefix is None or prefix_of(header, "model.embed_tokens.weight") is not None:
        return None  # none, or the vision tower of a language model (LTX-2's Gemma 3 file carries one)
    hidden, _channels, patch, _ = header.shape(prefix + "vision_model.embeddings.patch_embedding.weight")
    positions = header.shape(prefix + "vision_model.embeddings.position_embedding.weight")[0]
    layer = prefix + "vision_model.encoder.layers.0."
    config = {
        "hidden_size": hidden,
        "patch_size": patch,
        "image_size": math.isqrt(positions - 1) * patch,
        "intermediate_size": header.shape(layer + "mlp.fc1.weight")[0],
        "num_hidden_layers": count_numbered(
            header, re.escape(prefix) + r"vision_model\.encoder\.layers\.(\d+)\."),
        # not in any shape: ViT-H/14 has 16 heads of 80; other widths 64-wide heads
        "num_attention_heads": 16 if hidden == 1280 else max(1, hidden // 64),
        "hidden_act": "gelu",
    }
    if header.has(prefix + "visual_projection.weight"):
        config["projection_dim"] = header.shape(prefix + "visual_projection.weight")[0]
    config.update(_metadata_config(header))
    return FilePart(
        header.path,
        "image_encoder",
        "clip-vision",
        file_format(header),
        config,
        weight_params(header),
        float8_params=float8_params(header, ("embedding",)),
        # the position table and (from a bf16 / fp16 file) the matrices stay in their stored half precision
        half_params=half_params(header, (prefix + "vision_model.embeddings.position_embedding.weight",))
        + half_matrix_params(header, ("embedding", "visual_projection")),
    )


# --- which files make a model ------------------------------------------------------------------------

_SLOT_KIND = {
    "diffusion_model": "denoiser",
    "diffusion_model_2": "denoiser",
    "text_encoder": "text_encoder",
    "vae": "vae",
    "clip_vision": "image_encoder",
}
_KIND_WORDS = {
    "denoiser": "a diffusion model (diffusion_models folder)",
    "text_encoder": "a text encoder (text_encoders folder)",
    "vae": "a VAE (vae folder)",
    "image_encoder": "a CLIP vision model (clip_vision folder)",
}
_NAMES = {WAN21: "Wan 2.1 I2V 14B", A14B: "a Wan 2.2 I2V A14B expert", TI2V: "Wan 2.2 TI2V-5B",
          FLF2V: "Wan 2.1 FLF2V 14B"}


def assemble(parts: Mapping[str, FilePart]) -> FileSet:
    """The model the files make, or an error naming the slot, the file and what was expected."""
    for slot, part in parts.items():
        if part.kind != _SLOT_KIND[slot]:
            raise InputError(
                slot, f"{part.path.name} is {_KIND_WORDS[part.kind]}, not {_KIND_WORDS[_SLOT_KIND[slot]]}"
            )
    for slot in ("diffusion_model", "text_encoder", "vae"):
        if slot not in parts:
            raise InputError(slot, "a Wan model needs a file here")
    first = parts["diffusion_model"]
    variant = first.variant
    roles = {"transformer": first, "text_encoder": parts["text_encoder"], "vae": parts["vae"]}
    _check_experts(variant, first, parts.get("diffusion_model_2"), roles)
    _check_vae(variant, first, parts["vae"])
    text = parts["text_encoder"]
    if text.config["d_model"] != first.config["text_dim"]:
        raise InputError(
            "text_encoder",
            f"{text.path.name} gives {text.config['d_model']}-wide embeddings; "
            f"{first.path.name} takes {first.config['text_dim']} (UMT5-XXL's 4096)",
        )
    clip = parts.get("clip_vision")
    if variant in (WAN21, FLF2V):
        if clip is None:
            raise InputError(
                "clip_vision",
                f"{first.path.name} is Wan 2.1 {'FLF2V' if variant == FLF2V else 'I2V'}, which also needs "
                "its CLIP vision model (clip_vision_h.safetensors in ComfyUI's clip_vision folder)",
            )
        if clip.config["hidden_size"] != first.config["image_dim"]:
            raise InputError(
                "clip_vision",
                f"{clip.path.name} is {clip.config['hidden_size']} wide; "
                f"{first.path.name} takes {first.config['image_dim']} (ViT-H/14's 1280)",
            )
        roles["image_encoder"] = clip
    elif clip is not None:
        raise InputError(
            "clip_vision", f"{_NAMES[variant]} uses no CLIP vision model: set clip_vision to none"
        )
    return FileSet(variant, roles, _configs(variant, roles))


def _check_experts(
    variant: str, first: FilePart, second: FilePart | None, roles: dict[str, FilePart]
) -> None:
    if variant != A14B:
        if second is not None:
            raise InputError(
                "diffusion_model_2",
                f"{first.path.name} is {_NAMES[variant]}, one transformer: set diffusion_model_2 to none",
            )
        return
    if second is None:
        raise InputError(
            "diffusion_model_2",
            f"{first.path.name} is one of Wan 2.2 A14B's two experts: give the "
            "high-noise file as diffusion_model and the low-noise file here",
        )
    if second.variant != A14B or second.config != first.config:
        raise InputError(
            "diffusion_model_2",
            f"{second.path.name} is not the other expert of {first.path.name} "
            f"(expected a Wan 2.2 A14B expert of the same layout)",
        )
    if first.hint == "low" or second.hint == "high":
        raise InputError(
            "diffusion_model",
            f"the experts are swapped: {first.path.name} is given as the high-noise "
            f"expert and {second.path.name} as the low-noise one; put the high-noise "
            "file in diffusion_model and the low-noise file in diffusion_model_2",
        )
    roles["transformer_2"] = second


def _check_vae(variant: str, transformer: FilePart, vae: FilePart) -> None:
    wanted = VAE22 if variant == TI2V else VAE21
    if vae.variant != wanted:
        raise InputError(
            "vae",
            f"{vae.path.name} is the {vae.variant.replace('wan-vae-', 'Wan ')} VAE; "
            f"{_NAMES[variant]} needs the {wanted.replace('wan-vae-', 'Wan ')} VAE "
            f"({'wan2.2_vae' if wanted == VAE22 else 'wan_2.1_vae'}.safetensors)",
        )


def _configs(variant: str, roles: Mapping[str, FilePart]) -> dict[str, Any]:
    configs: dict[str, Any] = {role: dict(part.config) for role, part in roles.items()}
    # Wan 2.1's 480p and 720p files have the same shapes; only the name tells their flow shift apart
    wan21 = "720P" if "720p" in roles["transformer"].path.name.lower() else "480P"
    hub = {
        WAN21: f"Wan-AI/Wan2.1-I2V-14B-{wan21}-Diffusers",
        A14B: "Wan-AI/Wan2.2-I2V-A14B-Diffusers",
        TI2V: "Wan-AI/Wan2.2-TI2V-5B-Diffusers",
        FLF2V: "Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers",
    }[variant]
    published = PUBLISHED[hub]
    configs["scheduler"] = dict(published["scheduler"])
    configs["pipeline"] = dict(published.get("pipeline", {}))
    if "image_encoder" in roles:
        side = configs["image_encoder"]["image_size"]
        configs["image_processor"] = {"crop_size": side, "size": {"shortest_edge": side}}
    return configs
