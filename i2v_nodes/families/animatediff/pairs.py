"""A base and a motion adapter: whether they fit (configs only, no weights), and the config of the UNet
that runs once diffusers has merged them."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from i2v_nodes.errors import ModelError
from i2v_nodes.families.animatediff.spec import ADAPTER, IMAGE_CHANNELS, RULES
from i2v_nodes.families.toolkit.meta import config_json, meta_module
from i2v_nodes.lazy import torch


def check_pair(unet: Mapping[str, Any], adapter: Mapping[str, Any], where: str = "") -> None:
    """Raise :class:`ModelError` unless the motion adapter fits the base UNet (configs only, no weights)."""
    problem = pair_problem(unet, adapter)
    if problem is None:
        try:  # what diffusers itself checks when it merges them, on weightless modules
            _merged_config(config_json(unet), config_json(adapter))
        except (ValueError, RuntimeError, TypeError) as exc:
            problem = str(exc)
    if problem is not None:
        raise ModelError(f"{where}: its motion adapter ({ADAPTER}/) does not match its base (unet/): "
                         f"{problem}")


def pair_problem(unet: Mapping[str, Any], adapter: Mapping[str, Any]) -> str | None:
    if adapter.get("conv_in_channels") != IMAGE_CHANNELS:
        return ("it has no image input layer (conv_in_channels "
                f"{adapter.get('conv_in_channels')}): it is an AnimateDiff text-to-video motion module, and "
                f"image-to-video needs PIA's image-conditioned adapter (openmmlab/PIA-condition-adapter)")
    if unet.get("in_channels", 4) != RULES.latent_channels:
        return (f"the base's UNet takes {unet.get('in_channels')} input channels, a Stable Diffusion 1.5 "
                f"text-to-image base takes {RULES.latent_channels} (inpainting bases are not bases for PIA)")
    base_widths, motion_widths = list(unet.get("block_out_channels", [])), list(adapter["block_out_channels"])
    if base_widths != motion_widths:
        return (f"the adapter's motion modules are {motion_widths} channels wide, the base's UNet levels "
                f"{base_widths}: the adapter was made for another kind of base (PIA's is Stable Diffusion "
                "1.5)")
    if unet.get("layers_per_block", 2) != adapter.get("motion_layers_per_block", 2):
        return (f"the adapter has {adapter.get('motion_layers_per_block')} motion modules per level, the "
                f"base {unet.get('layers_per_block')} layers")
    if adapter.get("motion_max_seq_length", 32) < RULES.max_frames:
        return (f"the adapter's positional encoding covers {adapter.get('motion_max_seq_length')} frames, "
                f"fewer than the {RULES.max_frames} this pack allows")
    return None


def read_config(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # the folder was read when the model was described; a problem here shows at load


def is_base_unet(unet: Mapping[str, Any]) -> bool:
    return unet.get("_class_name") == "UNet2DConditionModel"


def runnable_unet_config(configs: str) -> str:
    """The config of the UNet that runs (JSON), from a model's configs (JSON): the UNet's own when it is
    saved merged, else the base's merged with the adapter's as diffusers merges them."""
    parsed = json.loads(configs)
    if not is_base_unet(parsed["unet"]):
        return config_json(parsed["unet"])
    return _merged_config(config_json(parsed["unet"]), config_json(parsed[ADAPTER]))


@functools.lru_cache(maxsize=16)
def _merged_config(unet_json: str, adapter_json: str) -> str:
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

    base = meta_module(UNet2DConditionModel, json.loads(unet_json))
    adapter = meta_module(MotionAdapter, json.loads(adapter_json))
    with torch.device("meta"):
        merged = UNetMotionModel.from_unet2d(base, adapter, load_weights=False)
    return config_json(merged.config)
