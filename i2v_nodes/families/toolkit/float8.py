"""float8 weights: matrices kept in float8_e4m3fn (half of bf16) that compute in the run's dtype one
layer at a time, with ComfyUI's per-tensor scales (its fp8_scaled files); and how those files are made."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias

FLOAT8 = tuple(getattr(torch, name) for name in ("float8_e4m3fn", "float8_e5m2") if hasattr(torch, name))
FP8_MAX = 448.0  # the largest float8_e4m3fn value


def float8_forward(module: torch.nn.Linear, dtype: torch.dtype) -> Callable[[torch.Tensor], torch.Tensor]:
    def forward(x: torch.Tensor) -> torch.Tensor:
        weight = module.weight.to(dtype)
        scale = getattr(module, "fp8_scale", None)
        if scale is not None:
            weight = weight * scale.to(dtype)
        return F.linear(x, weight, module.bias)

    return forward


def keep_float8(module: torch.nn.Module, scales: Mapping[str, torch.Tensor], dtype: torch.dtype) -> int:
    """Let every Linear layer whose weight is float8 compute in ``dtype`` (times its ComfyUI scale,
    kept as a buffer so it moves with the layer). Returns how many layers stay in float8."""
    count = 0
    for name, layer in module.named_modules():
        if isinstance(layer, torch.nn.Linear) and layer.weight.dtype in FLOAT8:
            if name in scales:
                layer.register_buffer("fp8_scale", scales[name].float().reshape(()), persistent=False)
            layer.forward = float8_forward(layer, dtype)
            count += 1
    return count


def cast_keeping_float8(
    module: torch.nn.Module,
    state: dict[str, torch.Tensor],
    scales: dict[str, torch.Tensor],
    dtype: torch.dtype,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Cast a checkpoint as from_pretrained(dtype) would, but keep float8 Linear matrices float8.

    A float8 tensor anywhere else (an embedding, or a part the class keeps in fp32, whose callers
    cast their input to the weight's dtype) is dequantised with its scale. ``state`` is consumed,
    so a file read whole is never held twice. Returns the weights and the scales of the layers that
    stay float8.
    """
    linear = {
        f"{name}.weight" for name, layer in module.named_modules() if isinstance(layer, torch.nn.Linear)
    }
    patterns = set(getattr(type(module), "_keep_in_fp32_modules", None) or ())
    weights, kept_scales = {}, dict(scales)
    for name in list(state):
        tensor = state.pop(name)  # so the file's copy goes as soon as its cast is made
        keep_fp32 = bool(patterns & set(name.split(".")))
        if tensor.dtype in FLOAT8 and name in linear and not keep_fp32:
            weights[name] = tensor
            continue
        if tensor.dtype in FLOAT8:
            scale = kept_scales.pop(name.removesuffix(".weight"), None)
            tensor = tensor.float() * (scale.float() if scale is not None else 1.0)
        if tensor.is_floating_point():
            tensor = tensor.to(torch.float32 if keep_fp32 else dtype)
        weights[name] = tensor
    return weights, kept_scales


def split_scales(
    checkpoint: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """ComfyUI's fp8_scaled files: weights, and per-layer scales keyed by the layer's name."""
    weights, scales = {}, {}
    for name, tensor in checkpoint.items():
        if name.endswith("scaled_fp8") or name.endswith(".scale_input"):
            continue  # the format marker; input scales only matter to fp8 matrix multiplies
        if name.endswith(".scale_weight"):
            scales[name.removesuffix(".scale_weight")] = tensor
        else:
            weights[name] = tensor
    return weights, scales


def quantize_fp8_scaled(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A matrix as ComfyUI's fp8_scaled files hold it: float8_e4m3fn values and one fp32 scale."""
    scale = weight.abs().max().float().clamp(min=1e-12) / FP8_MAX
    return (weight.float() / scale).to(torch.float8_e4m3fn), scale.reshape(())
