"""Key names between diffusers' Wan modules and the original Wan layout of ComfyUI's single files.

The transformer is read with diffusers' own converter (plain renames, any size). The VAEs are
mapped here from the module's own structure: diffusers' Wan 2.1 converter fits only the published
layout, and it has none for the Wan 2.2 VAE. The other direction (diffusers names to original ones)
also writes the tiny single files and the synthetic headers of the tests; tests check that every
name survives the round trip, and that the Wan 2.1 names agree with diffusers' converter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

# diffusers -> original, for the transformer: the reverse of diffusers' rename table, applied in
# this order (the longer, more specific names first)
_TRANSFORMER_TO_ORIGINAL = (
    ("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
    ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
    ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
    ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
    ("condition_embedder.time_proj", "time_projection.1"),
    ("condition_embedder.image_embedder.pos_embed", "img_emb.emb_pos"),
    ("condition_embedder.image_embedder.norm1", "img_emb.proj.0"),
    ("condition_embedder.image_embedder.ff.net.0.proj", "img_emb.proj.1"),
    ("condition_embedder.image_embedder.ff.net.2", "img_emb.proj.3"),
    ("condition_embedder.image_embedder.norm2", "img_emb.proj.4"),
    ("attn2", "cross_attn"),
    ("attn1", "self_attn"),
    (".to_out.0.", ".o."),
    (".to_q.", ".q."),
    (".to_k.", ".k."),
    (".to_v.", ".v."),
    (".add_k_proj.", ".k_img."),
    (".add_v_proj.", ".v_img."),
    (".norm_added_k.", ".norm_k_img."),
    ("ffn.net.0.proj", "ffn.0"),
    ("ffn.net.2", "ffn.2"),
)


def transformer_to_original(key: str) -> str:
    if key == "scale_shift_table":
        return "head.modulation"
    if key.startswith("proj_out."):
        return "head.head." + key.removeprefix("proj_out.")
    for new, old in _TRANSFORMER_TO_ORIGINAL:
        key = key.replace(new, old)
    key = key.replace(".scale_shift_table", ".modulation")
    # the original calls its norms norm1, norm3, norm2 in the order diffusers calls norm1, norm2, norm3
    return re.sub(r"\.norm([23])\.", lambda m: ".norm" + ("3" if m.group(1) == "2" else "2") + ".", key)


def transformer_to_diffusers(checkpoint: dict) -> dict:
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    converted = convert_wan_transformer_to_diffusers(dict(checkpoint))
    if "img_emb.emb_pos" in converted:  # FLF2V's image positions: diffusers' single-file converter skips them
        converted["condition_embedder.image_embedder.pos_embed"] = converted.pop("img_emb.emb_pos")
    return converted


# --- the VAEs ------------------------------------------------------------------------------------------

_RESNET = {
    "norm1.gamma": "residual.0.gamma",
    "conv1.weight": "residual.2.weight",
    "conv1.bias": "residual.2.bias",
    "norm2.gamma": "residual.3.gamma",
    "conv2.weight": "residual.6.weight",
    "conv2.bias": "residual.6.bias",
    "conv_shortcut.weight": "shortcut.weight",
    "conv_shortcut.bias": "shortcut.bias",
}
_TOP = {
    "quant_conv": "conv1",
    "post_quant_conv": "conv2",
    "encoder.conv_in": "encoder.conv1",
    "decoder.conv_in": "decoder.conv1",
    "encoder.norm_out": "encoder.head.0",
    "encoder.conv_out": "encoder.head.2",
    "decoder.norm_out": "decoder.head.0",
    "decoder.conv_out": "decoder.head.2",
}


def _common_vae_to_original(key: str) -> str | None:
    """Names both VAEs share (the ends, the middle); None for the down and up paths."""
    for new, old in _TOP.items():
        if key.startswith(new + "."):
            return old + key[len(new) :]
    match = re.match(r"(encoder|decoder)\.mid_block\.(resnets|attentions)\.(\d+)\.(.+)", key)
    if match:
        side, kind, index, rest = match.groups()
        if kind == "attentions":
            return f"{side}.middle.1.{rest}"
        return f"{side}.middle.{2 * int(index)}.{_RESNET[rest]}"
    return None


def vae21_to_original(key: str, num_res_blocks: int = 2) -> str:
    """Wan 2.1 VAE: the encoder's down path is one flat list in both; the decoder's up blocks are
    flattened in the original (each block's resnets, then its upsampler)."""
    common = _common_vae_to_original(key)
    if common is not None:
        return common
    match = re.match(r"encoder\.down_blocks\.(\d+)\.(.+)", key)
    if match:
        index, rest = match.groups()
        for new, old in _RESNET.items():
            if rest == new:
                return f"encoder.downsamples.{index}.{old}"
        return f"encoder.downsamples.{index}.{rest}"
    per_block = num_res_blocks + 2  # the resnets and the upsampler of one up block
    match = re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key)
    if match:
        block, resnet, rest = match.groups()
        return f"decoder.upsamples.{int(block) * per_block + int(resnet)}.{_RESNET[rest]}"
    match = re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(.+)", key)
    if match:
        block, rest = match.groups()
        return f"decoder.upsamples.{int(block) * per_block + num_res_blocks + 1}.{rest}"
    raise KeyError(f"no original Wan 2.1 VAE name for {key}")


def vae22_to_original(key: str, num_res_blocks: int = 2) -> str:
    """Wan 2.2 VAE: each down / up block is a nested list in the original (its resnets, then the
    resampler at the end)."""
    common = _common_vae_to_original(key)
    if common is not None:
        return common
    match = re.match(
        r"(encoder\.down|decoder\.up)_blocks\.(\d+)\.(resnets\.(\d+)|downsampler|upsampler)\.(.+)", key
    )
    if match is None:
        raise KeyError(f"no original Wan 2.2 VAE name for {key}")
    path, block, part, resnet, rest = match.groups()
    side, inner = ("encoder", "downsamples") if path.startswith("encoder") else ("decoder", "upsamples")
    resamples = num_res_blocks + (1 if side == "decoder" else 0)  # a decoder block has one resnet more
    if resnet is not None:
        return f"{side}.{inner}.{block}.{inner}.{resnet}.{_RESNET[rest]}"
    return f"{side}.{inner}.{block}.{inner}.{resamples}.{rest}"


def vae_to_diffusers(checkpoint: Mapping[str, Any], names: Iterable[str],
                     to_original: Callable[[str], str]) -> dict[str, Any]:
    """Rename a VAE checkpoint in the original layout to the diffusers names of the module it loads
    into (``names``), through the exact inverse of ``to_original`` for that module's layout.

    diffusers' own Wan 2.1 converter knows only the published layout (it places the decoder's
    shortcut convolutions by fixed index); going through the module's own names fits any layout.
    """
    original = {to_original(name): name for name in names}
    unknown = [key for key in checkpoint if key not in original]
    if unknown:
        raise KeyError(f"{len(unknown)} tensors the VAE does not have, e.g. {unknown[:3]}")
    return {original[key]: value for key, value in checkpoint.items()}
