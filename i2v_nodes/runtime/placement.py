"""Putting a loaded pipeline on its device: whole, or with one of diffusers' offload modes."""

from __future__ import annotations

import logging
from typing import Any

import torch

log = logging.getLogger(__name__)

WEIGHTED = ("unet", "text_encoder", "image_encoder", "vae")


def place(pipe: Any, device: torch.device, offload: str) -> None:
    """``none``: everything on the device. ``model``: one component at a time. ``group``: one
    block at a time, prefetched on a CUDA stream. ``sequential``: one layer at a time (slowest)."""
    if offload == "none":
        pipe.to(device)
    elif offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    elif offload == "group":
        from diffusers.hooks import apply_group_offloading

        for name in WEIGHTED:
            module = getattr(pipe, name, None)
            if isinstance(module, torch.nn.Module):
                apply_group_offloading(module, onload_device=device, offload_device=torch.device("cpu"),
                                       offload_type="block_level", num_blocks_per_group=1,
                                       use_stream=device.type == "cuda")
    else:
        raise ValueError(f"unknown offload mode {offload!r}")


def bridge_dtypes(pipe: Any) -> None:
    """Let the VAE run in another dtype than the UNet and encoders.

    The stock pipeline feeds the VAE pixels in the image encoder's dtype, and the UNet the VAE's
    image latents as they come; with an fp32 VAE beside an fp16 UNet both calls would fail. Two
    pre-hooks cast the inputs to the receiving module's dtype.
    """
    if pipe.vae.dtype == pipe.unet.dtype:
        return
    pipe.vae.encoder.register_forward_pre_hook(_cast_inputs_to(pipe.vae.encoder), with_kwargs=True)
    pipe.unet.register_forward_pre_hook(_cast_inputs_to(pipe.unet), with_kwargs=True)


def _cast_inputs_to(module: torch.nn.Module):
    def hook(_module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        dtype = next(module.parameters()).dtype

        def cast(value: Any) -> Any:
            if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype != dtype:
                return value.to(dtype)
            return value

        return tuple(cast(a) for a in args), {k: cast(v) for k, v in kwargs.items()}

    return hook


def set_vae_tiling(pipe: Any, enabled: bool) -> None:
    # diffusers >= 0.42 dropped pipe.enable_vae_tiling; the VAE's own switch works everywhere
    if enabled:
        pipe.vae.enable_tiling()
    else:
        pipe.vae.disable_tiling()
