"""Frames between a pipeline and ComfyUI, and dtype bridges for a VAE kept in another dtype than the
denoiser."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from i2v_nodes.lazy import torch


def cast_inputs_to(module: torch.nn.Module) -> Callable:
    """A forward pre-hook casting floating inputs to ``module``'s dtype: lets a VAE run in another
    dtype than the denoiser when the stock pipeline hands it tensors in the denoiser's dtype."""
    def hook(_module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        dtype = next(module.parameters()).dtype

        def cast(value: Any) -> Any:
            if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype != dtype:
                return value.to(dtype)
            return value

        return tuple(cast(a) for a in args), {k: cast(v) for k, v in kwargs.items()}

    return hook


def bridge_vae_encoder(pipe: Any, denoiser: str) -> bool:
    """Cast what reaches the VAE's encoder to the VAE's dtype when it differs from the denoiser's (the
    image-to-video pipelines hand it the image in the model's dtype; the VAE is kept in fp32).
    Returns whether the dtypes differ."""
    if pipe.vae.dtype == getattr(pipe, denoiser).dtype:
        return False
    pipe.vae.encoder.register_forward_pre_hook(cast_inputs_to(pipe.vae.encoder), with_kwargs=True)
    return True


def video_to_frames(video: torch.Tensor) -> torch.Tensor:
    """``[1, 3, F, H, W]`` in -1..1 to ComfyUI IMAGE frames ``[F, H, W, 3]`` float32 in 0..1.

    The same mapping as diffusers' video processor ((x / 2 + 0.5).clamp(0, 1)), laid out as
    ComfyUI's IMAGE: frames first, channels last.
    """
    frames = video[0].permute(1, 2, 3, 0)
    return (frames.float() / 2 + 0.5).clamp_(0, 1)


def bridge_vae_dtype(pipe: Any, denoiser: str) -> None:
    """Let the VAE run in another dtype than the denoiser and encoders.

    The stock UNet pipelines feed the VAE pixels in the image encoder's dtype, and the denoiser the
    VAE's image latents as they come; with an fp32 VAE beside an fp16 UNet both calls would fail. Two
    pre-hooks cast the inputs to the receiving module's dtype.
    """
    if bridge_vae_encoder(pipe, denoiser):
        module = getattr(pipe, denoiser)
        module.register_forward_pre_hook(cast_inputs_to(module), with_kwargs=True)
