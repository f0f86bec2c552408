"""PIA pipelines written as ComfyUI's single files, and header-only stand-ins of the published ones.

The tiny model's files have the layout ComfyUI users load: an SD 1.5 checkpoint (in ``checkpoints``)
with the UNet, the VAE and the CLIP text tower in the original (LDM) key names, and PIA's motion
module (in ``animatediff_models``) in the original AnimateDiff layout with PIA's 9-channel
``conv_in``. The names here are the inverse of diffusers' single-file converters (tests check that
the converters take them back). Each file carries its components' diffusers configs in its
``diffusers_config`` metadata, for the settings no shape shows; unlike a real SD 1.5 checkpoint the
tiny one also carries its (tiny, offline) CLIP tokenizer there, so it loads with nothing else on disk.

The pipeline's UNet holds the base and the adapter merged (``UNetMotionModel``): it is split back, the
base taking the first four input channels of ``conv_in`` and the adapter all nine, as PIA's own
``conv_in`` (whose first four the merge replaces by the base's) has them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from i2v_nodes.errors import InputError
from i2v_nodes.families.animatediff.configs import PIA_ADAPTER, SD15_TEXT_ENCODER, SD15_UNET, SD15_VAE
from i2v_nodes.families.animatediff.files import MOTION, TEXT, TOKENIZER, UNET, VAE
from i2v_nodes.families.animatediff.spec import ADAPTER
from i2v_nodes.families.contract.files import FILE_ALSO_FOLDERS
from i2v_nodes.families.toolkit.file_writing import (
    CHECKPOINTS,
    component_config,
    save_with_configs,
    to_format,
)
from i2v_nodes.families.toolkit.meta import config_json, meta_module
from i2v_nodes.families.toolkit.stand_ins import Tensors, write_header
from i2v_nodes.lazy import torch

MOTION_FOLDER = FILE_ALSO_FOLDERS["diffusion_model_2"][0]  # AnimateDiff-Evolved's animatediff_models
WRITABLE = ("fp32", "bf16", "fp16")
SAFETENSORS_DTYPES = {"fp32": "F32", "fp16": "F16", "bf16": "BF16"}

# --- key names: diffusers -> original -------------------------------------------------------------------

_UNET_TOP = {"time_embedding.linear_1.": "time_embed.0.", "time_embedding.linear_2.": "time_embed.2.",
             "conv_in.": "input_blocks.0.0.", "conv_norm_out.": "out.0.", "conv_out.": "out.2."}
_RESNET = {"norm1.": "in_layers.0.", "conv1.": "in_layers.2.", "norm2.": "out_layers.0.",
           "conv2.": "out_layers.3.", "time_emb_proj.": "emb_layers.1.", "conv_shortcut.": "skip_connection."}
_UNET_BLOCK = re.compile(r"(down|up)_blocks\.(\d+)\.(resnets|attentions|downsamplers|upsamplers)\.(\d+)\."
                         r"(.+)")
_UNET_MID = re.compile(r"mid_block\.(resnets|attentions)\.(\d+)\.(.+)")
_VAE_BLOCK = re.compile(r"(encoder|decoder)\.(down|up)_blocks\.(\d+)\."
                        r"(?:resnets\.(\d+)|(?:down|up)samplers\.0)\.(.+)")
_VAE_MID = re.compile(r"(encoder|decoder)\.mid_block\.(?:resnets\.(\d+)|attentions\.0)\.(.+)")
_VAE_ATTENTION = {"group_norm.": "norm.", "to_q.": "q.", "to_k.": "k.", "to_v.": "v.",
                  "to_out.0.": "proj_out."}


def _renamed(rest: str, table: Mapping[str, str]) -> str:
    return next((new + rest.removeprefix(old) for old, new in table.items() if rest.startswith(old)), rest)


def unet_names_to_original(names: Iterable[str], layers_per_block: int) -> dict[str, str]:
    """diffusers name -> LDM name (without the checkpoint's prefix), for a UNet2DConditionModel. Each
    level has ``layers_per_block + 1`` input blocks (its resnets, then its downsampler) and as many
    output blocks (its resnets, the last one with the upsampler)."""
    names = list(names)
    attended = {int(m.group(1)) for n in names if (m := re.match(r"up_blocks\.(\d+)\.attentions\.", n))}
    return {name: _unet_name(name, layers_per_block + 1, attended) for name in names}


def _unet_name(name: str, per_level: int, up_attended: set[int]) -> str:
    top = next((old for old in _UNET_TOP if name.startswith(old)), None)
    if top is not None:
        return _UNET_TOP[top] + name.removeprefix(top)
    mid = _UNET_MID.match(name)
    if mid is not None:
        kind, index, rest = mid.groups()
        if kind == "attentions":
            return f"middle_block.1.{rest}"
        return f"middle_block.{2 * int(index)}.{_renamed(rest, _RESNET)}"
    match = _UNET_BLOCK.match(name)
    if match is None:
        raise KeyError(f"{name}: not a name of an SD UNet")
    side, level, kind, index, rest = match.groups()
    level, index = int(level), int(index)
    if kind == "downsamplers":
        return f"input_blocks.{(level + 1) * per_level}.0.op.{rest.removeprefix('conv.')}"
    if kind == "upsamplers":  # after the level's last resnet, and its attention where it has one
        return f"output_blocks.{(level + 1) * per_level - 1}.{2 if level in up_attended else 1}.{rest}"
    block = f"input_blocks.{1 + level * per_level + index}" if side == "down" else \
        f"output_blocks.{level * per_level + index}"
    return f"{block}.0.{_renamed(rest, _RESNET)}" if kind == "resnets" else f"{block}.1.{rest}"


def vae_name_to_original(name: str, levels: int) -> str:
    """diffusers name -> LDM name, for an AutoencoderKL with ``levels`` levels (the decoder's are
    numbered from the bottom in the original)."""
    if ".conv_norm_out." in name:
        return name.replace(".conv_norm_out.", ".norm_out.")
    block = _VAE_BLOCK.match(name)
    if block is not None:
        side, direction, level, index, rest = block.groups()
        level = int(level) if direction == "down" else levels - 1 - int(level)
        if index is None:
            return f"{side}.{direction}.{level}.{direction}sample.{rest}"
        return f"{side}.{direction}.{level}.block.{index}.{rest.replace('conv_shortcut.', 'nin_shortcut.')}"
    mid = _VAE_MID.match(name)
    if mid is not None:
        side, index, rest = mid.groups()
        if index is None:
            return f"{side}.mid.attn_1.{_renamed(rest, _VAE_ATTENTION)}"
        return f"{side}.mid.block_{int(index) + 1}.{rest.replace('conv_shortcut.', 'nin_shortcut.')}"
    return name  # conv_in, conv_out, quant_conv, post_quant_conv


def motion_to_original(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A MotionAdapter's (or the merged UNet's motion modules') state in AnimateDiff's original names.
    diffusers keeps one sinusoidal table per transformer block; the original one per attention."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        match = MOTION.match(name)
        if match is None:
            out[name] = tensor  # PIA's conv_in
            continue
        head, rest = name[:match.end()] + "temporal_transformer.", name[match.end():]
        if rest.endswith("pos_embed.pe"):
            block = rest.removesuffix("pos_embed.pe")
            attentions = {m.group(1) for n in state if (m := re.match(re.escape(name[:match.end()] + block)
                                                                       + r"attn(\d)\.", n))}
            for k in sorted(attentions):
                out[f"{head}{block}attention_blocks.{int(k) - 1}.pos_encoder.pe"] = tensor.clone()  # one each
            continue
        out[head + re.sub(r"(?<=\.)(attn|norm)(\d)\.", _motion_part, rest)] = tensor
    return out


def _motion_part(match: re.Match[str]) -> str:
    kind, k = match.group(1), int(match.group(2))
    if kind == "attn":
        return f"attention_blocks.{k - 1}."
    return "ff_norm." if k == 3 else f"norms.{k - 1}."


# --- the merged UNet, split ---------------------------------------------------------------------------


def base_unet_config(motion: Mapping[str, Any], latent_channels: int) -> dict[str, Any]:
    """The SD UNet2DConditionModel config inside a merged UNetMotionModel's."""
    from diffusers import UNet2DConditionModel

    expected, optional = UNet2DConditionModel._get_signature_keys(UNet2DConditionModel)
    config = {k: v for k, v in motion.items() if k in expected | optional and k != "num_attention_heads"}
    config.update(
        attention_head_dim=motion["num_attention_heads"],  # what UNetMotionModel.from_unet2d renamed
        in_channels=latent_channels,
        down_block_types=[t.replace("Motion", "2D") for t in motion["down_block_types"]],
        up_block_types=[t.replace("Motion", "2D") for t in motion["up_block_types"]],
    )
    return config


def adapter_config(motion: Mapping[str, Any]) -> dict[str, Any]:
    """The MotionAdapter config inside a merged UNetMotionModel's (its motion modules use the UNet's
    group norm)."""
    return {**PIA_ADAPTER,
            "block_out_channels": list(motion["block_out_channels"]),
            "motion_layers_per_block": motion["layers_per_block"],
            "motion_transformer_layers_per_block": motion["temporal_transformer_layers_per_block"],
            "motion_mid_block_layers_per_block": motion.get("mid_block_layers") or 1,
            "motion_transformer_layers_per_mid_block": motion["temporal_transformer_layers_per_mid_block"],
            "motion_num_attention_heads": motion["motion_num_attention_heads"],
            "motion_norm_num_groups": motion["norm_num_groups"],
            "motion_max_seq_length": motion["motion_max_seq_length"],
            "use_motion_mid_block": motion["use_motion_mid_block"],
            "conv_in_channels": motion["in_channels"]}


def split_unet(unet: torch.nn.Module,
               latent_channels: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A merged UNet's state as the base's (diffusers names) and the motion module's (with conv_in)."""
    state = unet.state_dict()
    motion = {name: t for name, t in state.items() if MOTION.match(name)}
    base = {name: t for name, t in state.items() if not MOTION.match(name)}
    motion["conv_in.weight"], motion["conv_in.bias"] = base["conv_in.weight"], base["conv_in.bias"]
    base["conv_in.weight"] = base["conv_in.weight"][:, :latent_channels].contiguous()
    return base, motion


def checkpoint_state(unet: Mapping[str, torch.Tensor], vae: Mapping[str, torch.Tensor],
                     text: Mapping[str, torch.Tensor], layers_per_block: int,
                     vae_levels: int) -> dict[str, torch.Tensor]:
    """UNet, VAE and text tower in one state dict of an SD 1.5 checkpoint's names."""
    state = {UNET + original: unet[name]
             for name, original in unet_names_to_original(unet, layers_per_block).items()}
    for name, tensor in vae.items():
        original = vae_name_to_original(name, vae_levels)
        if ".mid.attn_1." in original and tensor.ndim == 2:  # 1x1 convolutions in the original
            tensor = tensor[:, :, None, None]
        state[VAE + original] = tensor
    # transformers 5 names the text tower's tensors without the "text_model." the checkpoints have
    state.update({TEXT + "text_model." + name.removeprefix("text_model."): tensor
                  for name, tensor in text.items()})
    return state


def tokenizer_data(tokenizer: Any) -> dict[str, Any]:
    """A CLIP tokenizer as JSON: its BPE vocabulary and merges, length and special tokens."""
    model = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    specials = {name: str(getattr(tokenizer, name))
                for name in ("bos_token", "eos_token", "pad_token", "unk_token")}
    return {"vocab": model["vocab"], "merges": model["merges"], **specials}


def write_files(pipe: Any, models_dir: Path, stem: str, fmt: str = "fp32") -> dict[str, Path]:
    """Write a PIA pipeline as an SD 1.5 checkpoint and a PIA motion module under ``models_dir``;
    returns the file of each loader slot (the checkpoint carries the VAE and the text encoder)."""
    if fmt not in WRITABLE:
        raise InputError("format", f"AnimateDiff files are written in {', '.join(WRITABLE)}, not {fmt}")
    latent = pipe.vae.config.latent_channels
    base, motion = split_unet(pipe.unet, latent)
    unet_config = base_unet_config(pipe.unet.config, latent)
    state = checkpoint_state(base, pipe.vae.state_dict(), pipe.text_encoder.state_dict(),
                             unet_config["layers_per_block"], len(pipe.vae.config.block_out_channels))
    configs = {"unet": unet_config, "vae": component_config(pipe.vae),
               "text_encoder": component_config(pipe.text_encoder),
               TOKENIZER: tokenizer_data(pipe.tokenizer)}
    checkpoint = save_with_configs(Path(models_dir) / CHECKPOINTS / f"{stem}_{fmt}.safetensors",
                                   to_format(state, fmt, set()), configs)
    module = save_with_configs(Path(models_dir) / MOTION_FOLDER / f"{stem}_pia_{fmt}.safetensors",
                               to_format(motion_to_original(motion), fmt, set()),
                               {ADAPTER: adapter_config(pipe.unet.config)})
    return {"diffusion_model": checkpoint, "diffusion_model_2": module}


# --- header-only stand-ins of the published files ------------------------------------------------------

SD15_FILE = "v1-5-pruned-emaonly.safetensors"
PIA_FILE = "pia.safetensors"  # pia.ckpt converted to safetensors, keys as they are
PLAIN_FILES = {"mm_sd_v15_v2.safetensors": {"use_motion_mid_block": True, "motion_max_seq_length": 32,
                                            "conv_in_channels": None},
               "v3_sd15_mm.safetensors": {"conv_in_channels": None}}


def _shapes(cls_name: str, config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    import diffusers

    if cls_name == "CLIPTextModel":
        from transformers import CLIPTextConfig, CLIPTextModel

        from i2v_nodes.families.toolkit.meta import meta_transformers_model

        module = meta_transformers_model(CLIPTextModel, CLIPTextConfig, config, torch.float32)
    else:
        module = meta_module(getattr(diffusers, cls_name), json.loads(config_json(config)))
    return {name: tuple(t.shape) for name, t in module.state_dict().items()}


def checkpoint_file(path: Path, fmt: str = "fp32") -> Path:
    """SD 1.5's published checkpoint's header (its UNet, VAE and text tower), no tensor data."""
    dtype = SAFETENSORS_DTYPES[fmt]
    unet = _shapes("UNet2DConditionModel", SD15_UNET)
    tensors: Tensors = {UNET + original: (dtype, unet[name]) for name, original in
                        unet_names_to_original(unet, SD15_UNET["layers_per_block"]).items()}
    levels = len(SD15_VAE["block_out_channels"])
    for name, shape in _shapes("AutoencoderKL", SD15_VAE).items():
        original = vae_name_to_original(name, levels)
        tensors[VAE + original] = (dtype, (*shape, 1, 1) if ".mid.attn_1." in original and len(shape) == 2
                                   else shape)
    tensors.update({TEXT + "text_model." + name.removeprefix("text_model."): (dtype, shape)
                    for name, shape in _shapes("CLIPTextModel", SD15_TEXT_ENCODER).items()})
    tensors[TEXT + "text_model.embeddings.position_ids"] = ("I64", (1, 77))  # the original keeps it
    return write_header(path, tensors)


def motion_file(path: Path, changes: Mapping[str, Any] | None = None, fmt: str = "fp16") -> Path:
    """A motion module's header in the original layout: PIA's, or a plain AnimateDiff one with
    ``changes`` (no conv_in, a mid block), no tensor data."""
    config = {**PIA_ADAPTER, **(changes or {})}
    shapes = _shapes("MotionAdapter", config)
    tensors = {name: (SAFETENSORS_DTYPES[fmt], tuple(t.shape)) for name, t in
               motion_to_original({n: torch.empty(s, device="meta") for n, s in shapes.items()}).items()}
    return write_header(path, tensors)


def write_published_files(models_dir: Path) -> dict[str, Path]:
    """Stand-ins of ComfyUI's SD 1.5 checkpoint and motion modules in its folders under ``models_dir``
    (file name -> path); a file already there is kept (it may be the real one)."""
    paths = {SD15_FILE: Path(models_dir) / CHECKPOINTS / SD15_FILE}
    if not paths[SD15_FILE].exists():
        checkpoint_file(paths[SD15_FILE])
    for name, changes in {PIA_FILE: None, **PLAIN_FILES}.items():
        paths[name] = path = Path(models_dir) / MOTION_FOLDER / name
        if not path.exists():
            motion_file(path, changes)
    return paths
