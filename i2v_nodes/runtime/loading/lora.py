"""LoRAs on a cached pipeline: which ones a handle asks for, and making the pipeline match.

A handle carries its LoRAs as :class:`LoraSpec` values (file, strength, target). They are part of
what the handle *is* (so ComfyUI re-runs downstream nodes when they change) but not of its cache key:
the base weights load once, and before each run :func:`sync` adds, re-weights or removes peft
adapters on the cached pipeline's denoisers until they match the handle. Nothing here names a family
or a component: the denoisers come from the family's roles, and diffusers' loaders (the pipeline's
``lora_state_dict``) convert the ComfyUI/kohya-style keys their family knows.

Removing every adapter leaves the base layers' own forward untouched (peft keeps them unfused), so
the base output comes back bit for bit.
"""

from __future__ import annotations

import logging
import math
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from i2v_nodes.errors import I2VError, InputError, ModelError
from i2v_nodes.families.toolkit.float8 import is_float8
from i2v_nodes.families.toolkit.safetensors_header import DTYPE_BYTES, Header, read_header
from i2v_nodes.lazy import torch

log = logging.getLogger(__name__)

TARGETS = ["both", "high_noise", "low_noise"]
MAX_STRENGTH = 4.0
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".pkl")
KEYS_SHOWN = 4  # keys quoted in an error


class LoraError(I2VError):
    """A LoRA file cannot be applied to this model; the base model is left as it was."""


@dataclass(frozen=True)
class LoraSpec:
    """One LoRA as a node asked for it. ``identity`` (path, size, mtime) changes when the file does."""

    path: str
    strength: float
    target: str = "both"
    identity: tuple[str, int, int] = ("", 0, 0)

    @property
    def name(self) -> str:
        return Path(self.path).name


# --- checking a file and a request (no weights read) ---------------------------------------------


def check_file(path: Path) -> Header:
    """The file's safetensors header; refuses pickles and files cut short, naming the file."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise InputError("lora_name", f"{path.name} is a pickle checkpoint, which can run arbitrary code "
                                      "when loaded; this pack reads LoRAs as .safetensors only (convert it "
                                      "in a trusted environment, or download the .safetensors release)")
    try:
        header = read_header(path)
    except ModelError as exc:
        raise InputError("lora_name", f"{path.name} is not a readable LoRA: {exc}") from exc
    needed = _header_bytes(path) + sum(DTYPE_BYTES.get(dtype, 0) * count
                                       for dtype, count in header.dtypes().items())
    if needed > header.size:  # the header promises more data than the file holds
        raise InputError("lora_name", f"{path.name} is truncated: its header describes {needed} bytes of "
                                      f"tensors but the file has {header.size} bytes; download it again")
    if not header.tensors:
        raise InputError("lora_name", f"{path.name} holds no tensors")
    return header


def _header_bytes(path: Path) -> int:
    """The 8-byte length field plus the JSON header it announces (read_header has checked both)."""
    with open(path, "rb") as fh:
        return 8 + struct.unpack("<Q", fh.read(8))[0]


def check_request(denoisers: tuple[str, ...], strength: object, target: str) -> None:
    """Refuse a strength out of range, or a target the model's denoisers cannot take."""
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength) \
            or abs(strength) > MAX_STRENGTH:
        raise InputError("strength", f"expected a number from {-MAX_STRENGTH} to {MAX_STRENGTH} (0 = off), "
                                     f"got {strength!r}")
    if target not in TARGETS:
        raise InputError("target", f"expected one of {TARGETS}, got {target!r}")
    if target != "both" and len(denoisers) < 2:
        raise InputError("target", f"'{target}' picks one expert of a two-expert model (Wan 2.2 A14B); this "
                                   "model has one denoiser: use 'both'")


def target_roles(denoisers: tuple[str, ...], target: str) -> tuple[str, ...]:
    """The denoiser roles a target names: the first expert runs the high-noise steps."""
    if target == "high_noise":
        return denoisers[:1]
    if target == "low_noise":
        return denoisers[1:2]
    return denoisers


def weight_bytes(loras: tuple[LoraSpec, ...], denoisers: tuple[str, ...], bytes_per: int) -> dict[str, int]:
    """Bytes each denoiser's adapters add, from the files' headers (adapters take the layer's dtype)."""
    sizes: dict[str, int] = {}
    for spec in loras:
        if spec.strength == 0:
            continue
        numel = read_header(spec.path).numel
        for role in target_roles(denoisers, spec.target):
            sizes[role] = sizes.get(role, 0) + numel * bytes_per
    return sizes


# --- making a pipeline match ------------------------------------------------------------------


@dataclass
class Applied:
    """What is on one cached pipeline now: adapter names by (file identity, role), and their weights."""

    adapters: dict[tuple[tuple[str, int, int], str], str] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)  # adapter name -> strength
    counter: int = 0

    def fresh_name(self) -> str:
        self.counter += 1
        return f"i2v_lora_{self.counter}"


def wanted(loras: tuple[LoraSpec, ...], denoisers: tuple[str, ...]) -> dict[tuple, float]:
    """(file identity, role) -> summed strength; strength 0 is no LoRA at all (never loaded)."""
    result: dict[tuple, float] = {}
    for spec in loras:
        for role in target_roles(denoisers, spec.target):
            key = (spec.identity, role)
            result[key] = result.get(key, 0.0) + float(spec.strength)
    return {key: strength for key, strength in result.items() if strength != 0}


def sync(pipe: Any, applied: Applied, loras: tuple[LoraSpec, ...], denoisers: tuple[str, ...],
         family: Any, compute_dtype: torch.dtype) -> bool:
    """Make ``pipe``'s denoisers carry exactly ``loras``; returns whether anything changed.
    ``compute_dtype`` is the run's: the adapters of float8-stored layers are made in it.

    On any failure every adapter is removed (the base model as loaded) and the error names the file.
    """
    target = wanted(loras, denoisers)
    current = {key: applied.weights[name] for key, name in applied.adapters.items()}
    if target == current:
        return False
    _require_peft()
    paths = {spec.identity: spec.path for spec in loras}
    try:
        leaving = [key for key in applied.adapters if key not in target]
        fresh = []
        for key in (key for key in target if key not in applied.adapters):
            path = Path(paths[key[0]])
            state, extra = _read(pipe, path, key[1], family)
            old = next((k for k in leaving if k[1] == key[1]), None)  # an adapter leaving the same denoiser
            if old is not None and _hotswap(pipe, applied, old, key, path, state, extra):
                leaving.remove(old)
            else:
                fresh.append((key, path, state, extra))
        _remove(pipe, applied, leaving)
        for key, path, state, extra in fresh:
            _load(pipe, applied, key, path, state, extra, compute_dtype)
        for key, strength in target.items():
            applied.weights[applied.adapters[key]] = strength
        _activate(pipe, applied, denoisers)
    except Exception:  # whatever failed (re-raised below), the cached base must come back clean
        _remove(pipe, applied, list(applied.adapters))
        raise
    log.info("LoRAs now on the model: %s", ", ".join(f"{Path(paths[k[0]]).name} ({k[1]}) x{s:g}"
                                                    for k, s in target.items()) or "none")
    return True


def _require_peft() -> None:
    from diffusers.utils import USE_PEFT_BACKEND

    if not USE_PEFT_BACKEND:
        raise LoraError("LoRAs load through diffusers' peft backend, and peft is not installed in this "
                        "Python: `pip install peft` (the pack's requirements.txt lists it), then restart")


def _remove(pipe: Any, applied: Applied, keys: list[tuple]) -> None:
    for key in keys:
        name = applied.adapters.pop(key)
        applied.weights.pop(name, None)
        module = getattr(pipe, key[1])
        if name in (getattr(module, "peft_config", None) or {}):
            module.delete_adapters([name])


def _activate(pipe: Any, applied: Applied, denoisers: tuple[str, ...]) -> None:
    """Each denoiser runs its own adapters at their strengths (a fresh load activates only itself)."""
    for role in denoisers:
        names = [name for (_ident, r), name in applied.adapters.items() if r == role]
        if names:
            getattr(pipe, role).set_adapters(names, [applied.weights[name] for name in names])


def _read(pipe: Any, path: Path, role: str, family: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The file's tensors in diffusers' keys, checked against ``role``'s layers, and the keyword
    that tells diffusers which denoiser they go to."""
    prefix, extra = family.lora_target(role)  # the keys' prefix, and how diffusers is told the denoiser
    state = _state_dict(pipe, path, prefix)
    _check_keys(path, state, getattr(pipe, role), prefix)
    return state, extra


def _hotswap(pipe: Any, applied: Applied, old: tuple, key: tuple, path: Path, state: dict[str, torch.Tensor],
             extra: dict[str, Any]) -> bool:
    """Load ``path`` into the adapter that ``old`` leaves behind (diffusers' hotswap copies the new
    matrices into the same LoRA layers: no layers made or removed, a fifth of a fresh load). False
    when it does not fit (other layers or rank): the caller removes ``old`` and loads it fresh."""
    name = applied.adapters[old]
    try:
        pipe.load_lora_weights(state, adapter_name=name, hotswap=True, **extra)
    except (ValueError, RuntimeError, KeyError) as exc:  # the old adapter leaves either way
        log.debug("LoRA %s cannot replace the adapter in place (%s); loading it fresh", path.name,
                  _first_line(exc))
        return False
    applied.adapters[key] = applied.adapters.pop(old)
    return True


def _load(pipe: Any, applied: Applied, key: tuple, path: Path, state: dict[str, torch.Tensor],
          extra: dict[str, Any], compute_dtype: torch.dtype) -> None:
    role = key[1]
    _float8_layers_compute_in(getattr(pipe, role), compute_dtype)
    name = applied.fresh_name()
    applied.adapters[key] = name  # before loading: a half-made adapter is removed on failure
    applied.weights[name] = 0.0
    try:
        with warnings.catch_warnings():  # several adapters on one model is what this module does
            warnings.filterwarnings("ignore", message="Already found a `peft_config`")
            # low_cpu_mem_usage: the adapters are made empty and take the file's tensors, instead of
            # being initialised at random first (half the time of a switch; the same result)
            pipe.load_lora_weights(state, adapter_name=name, low_cpu_mem_usage=True, **extra)
    except (ValueError, RuntimeError, KeyError, AttributeError) as exc:
        raise LoraError(f"LoRA {path.name} does not fit this model's {role}: {_first_line(exc)}") from exc


def _float8_layers_compute_in(module: torch.nn.Module, dtype: torch.dtype) -> None:
    """peft makes a LoRA's matrices in its base layer's dtype, or in the layer's ``compute_dtype``
    where it has one (its convention for quantized layers). A layer stored in float8 (weights fp8,
    ComfyUI's fp8 files) computes in the run's dtype: saying so keeps the LoRA out of float8, where
    it would lose its precision and its matrix multiplies do not run."""
    for layer in module.modules():
        weight = getattr(layer, "weight", None)
        stored_float8 = isinstance(weight, torch.Tensor) and is_float8(weight.dtype)
        if stored_float8 and not hasattr(layer, "compute_dtype"):
            layer.compute_dtype = dtype


def _state_dict(pipe: Any, path: Path, prefix: str) -> dict[str, torch.Tensor]:
    """The file's tensors in diffusers' key format (the family's loader converts ComfyUI/kohya keys)."""
    from safetensors import SafetensorError  # a heavy import only when a LoRA is used
    from safetensors.torch import load_file

    try:
        raw = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise LoraError(f"LoRA {path.name} is corrupt or truncated: {exc}") from exc
    if not any(k.startswith(f"{prefix}.") for k in raw) and any(".lora_" in k for k in raw) \
            and not any(k.startswith(("diffusion_model.", "lora_unet_")) for k in raw):
        raw = {f"{prefix}.{k}": v for k, v in raw.items()}  # diffusers keys saved without the prefix
    try:
        state = pipe.lora_state_dict(raw)
    except (ValueError, KeyError, RuntimeError, IndexError) as exc:
        raise LoraError(f"LoRA {path.name} is in no key format diffusers reads for this model "
                        f"({_first_line(exc)}); keys such as {_few(raw)}") from exc
    return state[0] if isinstance(state, tuple) else state


def _check_keys(path: Path, state: dict[str, torch.Tensor], module: torch.nn.Module, prefix: str) -> None:
    """Every LoRA key must name a layer of the denoiser; none matching is another model's LoRA."""
    prefix = f"{prefix}."
    layers = {name for name, _ in module.named_modules()}
    targets = {k.removeprefix(prefix).split(".lora_")[0] for k in state if ".lora_" in k}
    missing = sorted(t for t in targets if t not in layers)
    if not targets or len(missing) == len(targets):
        raise LoraError(f"LoRA {path.name} matches no layer of this model (a LoRA for another model family "
                        f"or size?); keys such as {_few(state)}")
    if missing:
        raise LoraError(f"LoRA {path.name} names {len(missing)} of its {len(targets)} layers that this model "
                        f"lacks (another size or expert layout?), e.g. {', '.join(missing[:KEYS_SHOWN])}")



def _few(state: dict) -> str:
    return ", ".join(sorted(state)[:KEYS_SHOWN])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
