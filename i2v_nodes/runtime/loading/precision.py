"""Precision policy: which dtype a name means on a device, and finite-value checks."""

from __future__ import annotations

import functools
import os

from i2v_nodes.errors import InputError
from i2v_nodes.lazy import torch

# each precision name's torch dtype (by attribute name: this module is read without importing torch)
_DTYPE_NAMES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
ELEMENT_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "fp8": 1}  # "fp8": float8 weight storage
PRECISION_CHOICES = ["auto", "fp16", "bf16", "fp32"]
VAE_PRECISION_CHOICES = ["auto", "fp32", "fp16", "bf16"]
WEIGHTS_CHOICES = ["default", "fp8"]
FP8_STORAGE = "float8_e4m3fn"  # weight storage with 'weights' fp8; computation stays in the precision


def check_names(precision: str, vae_precision: str, weights: str) -> None:
    """Raise :class:`InputError` for a precision or weight-storage name that is not one of the choices."""
    for input_name, value, choices in (("precision", precision, PRECISION_CHOICES),
                                       ("vae_precision", vae_precision, VAE_PRECISION_CHOICES),
                                       ("weights", weights, WEIGHTS_CHOICES)):
        if value not in choices:
            raise InputError(input_name, f"expected one of {choices}, got {value!r}")


# Overrides what ``auto`` means on a CPU: "fp32" or "bf16" (the test suite pins fp32 for bit-identity)
CPU_PRECISION_ENV = "I2V_CPU_AUTO_PRECISION"
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # the CPU computes bf16 natively


def resolve_precision(name: str, device: torch.device | str, family_default: str = "fp16") -> str:
    """``auto`` is the family's choice on CUDA (fp16, or bf16 for models trained in it). On a CPU it is
    bf16 where the CPU computes bf16 natively (measured 2.9-3.6x faster than fp32 per denoiser call,
    bench/bench_cpu_bf16.py) and fp32 elsewhere (fp16 on CPUs is 3-30x slower, bf16 without those
    instructions is slow too). ``I2V_CPU_AUTO_PRECISION`` overrides the CPU's choice."""
    check_names(name, "auto", "default")
    if name != "auto":
        return name
    if device_type(device) == "cuda":
        return family_default
    asked = os.environ.get(CPU_PRECISION_ENV, "").strip().lower()
    if asked in ("fp32", "bf16"):
        return asked
    return "bf16" if cpu_computes_bf16() else "fp32"


@functools.lru_cache(maxsize=1)
def cpu_computes_bf16() -> bool:
    """Whether this CPU has native bf16 arithmetic (AVX512-BF16 or AMX), from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            flags = next((line.split(":", 1)[1].split() for line in fh if line.startswith("flags")), [])
    except OSError:  # not Linux: keep fp32
        return False
    return any(flag in flags for flag in CPU_BF16_FLAGS)


def resolve_weights(name: str, device: torch.device) -> str:
    """``fp8`` needs a torch with float8 and a device that can hold it (CUDA or CPU)."""
    check_names("auto", "auto", name)
    if name == "fp8":
        problem = fp8_problem(torch.device(device))
        if problem:
            raise InputError("weights", f"fp8 weight storage is not available here: {problem}; "
                                        "choose 'default'")
    return name


def fp8_problem(device: torch.device) -> str | None:
    """Why float8 weight storage cannot work on ``device`` with this torch, or None."""
    storage = getattr(torch, FP8_STORAGE, None)
    if storage is None:
        return f"torch {torch.__version__} has no {FP8_STORAGE} (needs torch 2.1 or newer)"
    if device.type not in ("cuda", "cpu"):
        return f"{device.type} devices cannot hold {FP8_STORAGE} tensors"
    try:
        from diffusers.hooks import apply_layerwise_casting  # noqa: F401 - only probing
    except ImportError:
        return "the installed diffusers has no layerwise casting (needs diffusers 0.33 or newer)"
    return None


def resolve_vae_precision(name: str) -> str:
    """``auto`` is fp32: video VAEs overflow in fp16 (black frames) and are cheap anyway."""
    check_names("auto", name, "default")
    return "fp32" if name == "auto" else name


def dtype_of(name: str) -> torch.dtype:
    """The torch dtype of a precision name (fp32 / fp16 / bf16)."""
    return getattr(torch, _DTYPE_NAMES[name])


def bytes_per_element(name: str) -> int:
    """Bytes of one element of a precision name (fp32 / fp16 / bf16, or fp8 storage)."""
    return ELEMENT_BYTES[name]


def device_type(device: torch.device | str) -> str:
    """A device's type ("cpu", "cuda") from a device or its name ("cuda:1"), with no torch needed."""
    return str(device).partition(":")[0]


def nonfinite_summary(tensor: torch.Tensor) -> str | None:
    """None if every value is finite, else a short description of what is not."""
    finite = torch.isfinite(tensor)
    if bool(finite.all()):
        return None
    nan = int(torch.isnan(tensor).sum())
    inf = int(finite.numel() - finite.sum()) - nan
    return f"{nan} NaN and {inf} Inf values out of {tensor.numel()}"
