"""Finding models and describing them without loading weights.

A model is named in one of three ways: a built-in tiny model (``tiny-i2vgen-xl``), the name of a
folder with ``model_index.json`` under one of the model folders, or a known hub id. Resolving a
name gives a light :class:`ModelHandle`: the resolved source, the family, the component configs
and the parameter counts read from safetensors headers (or, for a hub id with no local copy,
counted from the family's published config on the meta device). Weights load later, through the
cache, after the memory guard has planned the run.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import families
from .errors import InputError, ModelError
from .precision import resolve_precision, resolve_vae_precision
from .tiny import TINY_MODELS, ensure_tiny_model

log = logging.getLogger(__name__)

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
WEIGHT_COMPONENTS = ("unet", "vae", "text_encoder", "image_encoder", "transformer", "transformer_2")
OFFLOAD_CHOICES = ["none", "model", "sequential", "group"]
DEVICE_CHOICES = ["auto", "cuda", "cpu"]


@dataclass(frozen=True)
class CacheKey:
    """What makes two loaded pipelines interchangeable."""

    source: str
    dtype: str
    vae_dtype: str
    device: str
    offload: str


@dataclass(frozen=True)
class ModelHandle:
    """What LoadI2VModel outputs (type ``I2V_MODEL``): a description, never the weights.

    Holding a handle pins nothing in memory, so ComfyUI's output cache can keep it for free.
    ``plan`` is attached by VRAMGuard (see :mod:`memory`).
    """

    name: str
    source: str  # a local folder (absolute) or a hub id
    family: str
    local: bool
    precision: str  # fp32 / fp16 / bf16, already resolved from "auto"
    vae_precision: str
    device: str  # "cpu", "cuda", "cuda:1"
    offload: str
    allow_download: bool = False
    params: tuple[tuple[str, int], ...] = ()  # (component, parameter count)
    configs: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)
    plan: Any = field(default=None, compare=False, hash=False, repr=False)

    @property
    def cache_key(self) -> CacheKey:
        return CacheKey(self.source, self.precision, self.vae_precision, self.device, self.offload)

    def param_count(self, component: str) -> int:
        return dict(self.params).get(component, 0)

    @property
    def total_params(self) -> int:
        return sum(n for _, n in self.params)

    def with_plan(self, plan: Any) -> ModelHandle:
        return dataclasses.replace(self, plan=plan)


# --- listing ---------------------------------------------------------------------------------


def list_model_names(model_dirs: list[Path]) -> list[str]:
    """Names for the LoadI2VModel combo: tiny models, local folders, then known hub ids."""
    names = list(TINY_MODELS)
    for folder in _local_model_folders(model_dirs):
        if folder.name not in names:
            names.append(folder.name)
    names += [hub_id for hub_id in families.known_hub_ids() if hub_id not in names]
    return names


def _local_model_folders(model_dirs: list[Path]) -> list[Path]:
    found = []
    for root in model_dirs:
        if not root.is_dir():
            continue
        for child in sorted(root.iterdir()):
            if child.name.startswith("."):
                continue
            if (child / "model_index.json").is_file() and child.name not in TINY_MODELS:
                found.append(child)
    return found


# --- resolving -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    name: str
    location: str  # folder path or hub id
    local: bool


def resolve_source(name: str, model_dirs: list[Path], allow_download: bool) -> Source:
    """Turn a combo value into a local folder or a hub id, or explain what is missing."""
    if name in TINY_MODELS:
        return Source(name, str(ensure_tiny_model(name, model_dirs[0])), True)
    for folder in _local_model_folders(model_dirs):
        if folder.name == name:
            return Source(name, str(folder.resolve()), True)
    for root in model_dirs:
        candidate = root / name
        if candidate.is_dir() and not (candidate / "model_index.json").is_file():
            raise ModelError(
                f"model folder {candidate} has no model_index.json: it is not a diffusers-format "
                "pipeline folder (save one with pipeline.save_pretrained, or download the full repo)"
            )
    if name in families.known_hub_ids():
        cached = _hub_cache_folder(name)
        if cached is not None:
            return Source(name, str(cached), True)
        if allow_download:
            return Source(name, name, False)
        target = model_dirs[0] / name.split("/")[-1]
        raise ModelError(
            f"{name} is not on this machine and allow_download is off. Download it once, e.g. "
            f"`huggingface-cli download {name} --local-dir {target}` (then pick "
            f"'{target.name}' in the list), or turn allow_download on."
        )
    searched = ", ".join(str(d) for d in model_dirs)
    raise ModelError(
        f"unknown model {name!r}: not a tiny model ({', '.join(TINY_MODELS)}), not a folder with "
        f"model_index.json in {searched}, and not a known hub id ({', '.join(families.known_hub_ids())})"
    )


def _hub_cache_folder(repo_id: str) -> Path | None:
    """The local snapshot of a hub repo, if the Hugging Face cache already has one."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    hit = try_to_load_from_cache(repo_id, "model_index.json")
    return Path(hit).parent if isinstance(hit, str) else None


# --- describing ------------------------------------------------------------------------------


def describe_folder(folder: Path) -> tuple[str, dict[str, Any], tuple[tuple[str, int], ...]]:
    """Family, component configs and parameter counts of a local pipeline folder.

    Refuses folders whose weights exist only in pickle formats: loading those runs arbitrary code.
    Remembered per folder until one of its config or weight files changes.
    """
    return _describe_folder(folder, _folder_signature(folder))


def _folder_signature(folder: Path) -> tuple:
    files = [folder / "model_index.json", *folder.glob("*/*.json"), *folder.glob("*/*.safetensors")]
    signature = []
    for path in sorted(files):
        try:
            stat = path.stat()
        except OSError:
            continue
        signature.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(signature)


@functools.lru_cache(maxsize=32)
def _describe_folder(folder: Path,
                     _signature: tuple) -> tuple[str, dict[str, Any], tuple[tuple[str, int], ...]]:
    index = _read_json(folder / "model_index.json")
    family = families.family_for_pipeline(str(index.get("_class_name", "")))
    if family is None:
        raise ModelError(
            f"{folder} holds a {index.get('_class_name')!r} pipeline; supported: "
            f"{', '.join(families.supported_pipelines())}"
        )
    configs: dict[str, Any] = {}
    params: list[tuple[str, int]] = []
    for component in index:
        sub = folder / component
        if component.startswith("_") or not sub.is_dir():
            continue
        for config_name in ("config.json", "scheduler_config.json"):
            if (sub / config_name).is_file():
                configs[component] = _read_json(sub / config_name)
        if component in WEIGHT_COMPONENTS:
            params.append((component, count_safetensors_params(sub)))
    return family, configs, tuple(params)


def count_safetensors_params(component_dir: Path) -> int:
    """Parameter count of one component from its safetensors headers (no tensor data read).

    Sharded and variant files (``*.fp16.safetensors``) are counted once: the largest set wins.
    """
    files = sorted(component_dir.glob("*.safetensors"))
    if not files:
        pickles = [p.name for p in component_dir.iterdir() if p.suffix in PICKLE_SUFFIXES]
        if pickles:
            raise ModelError(
                f"{component_dir} has weights only in pickle format ({', '.join(pickles)}), which can run "
                "arbitrary code when loaded; this pack loads safetensors only. Convert them with "
                "`pipeline.save_pretrained(folder, safe_serialization=True)` in a trusted environment."
            )
        raise ModelError(f"{component_dir} has no .safetensors weights")
    by_variant: dict[str, int] = {}
    for path in files:
        variant = _variant_of(path.name)
        by_variant[variant] = by_variant.get(variant, 0) + _safetensors_numel(path)
    return max(by_variant.values())


def _variant_of(filename: str) -> str:
    # diffusion_pytorch_model.fp16.safetensors, model-00001-of-00002.safetensors
    parts = filename.split(".")
    return parts[-2] if len(parts) >= 3 else ""


def _safetensors_numel(path: Path) -> int:
    with open(path, "rb") as fh:
        raw = fh.read(8)
        if len(raw) != 8:
            raise ModelError(f"{path} is not a safetensors file (too short)")
        (length,) = struct.unpack("<Q", raw)
        if length > 100_000_000:
            raise ModelError(f"{path} is not a safetensors file (header length {length})")
        try:
            header = json.loads(fh.read(length))
        except ValueError as exc:
            raise ModelError(f"{path} has a corrupt safetensors header: {exc}") from exc
    total = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        count = 1
        for dim in entry.get("shape", []):
            count *= int(dim)
        total += count
    return total


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc


# --- opening ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadOptions:
    """LoadI2VModel's widgets, as given."""

    precision: str = "auto"
    vae_precision: str = "auto"
    device: str = "auto"
    offload: str = "none"
    allow_download: bool = False


def open_model(name: str, options: LoadOptions, model_dirs: list[Path],
               default_device: torch.device) -> ModelHandle:
    """Validate the load options and describe the model, reading no weights."""
    device = resolve_device(options.device, default_device)
    if options.offload not in OFFLOAD_CHOICES:
        raise InputError("offload", f"expected one of {OFFLOAD_CHOICES}, got {options.offload!r}")
    if options.offload != "none" and device.type != "cuda":
        raise InputError(
            "offload",
            f"offload '{options.offload}' moves weights between system RAM and a GPU; the device is "
            f"{device.type}, where every weight already lives in RAM: choose 'none'",
        )
    precision = resolve_precision(options.precision, device)
    vae_precision = resolve_vae_precision(options.vae_precision)
    if not name or not isinstance(name, str):
        raise InputError("model", "expected a model name from the list")
    try:
        source = resolve_source(name, model_dirs, options.allow_download)
    except ModelError as exc:
        raise InputError("model", str(exc)) from exc
    if source.local:
        family, configs, params = describe_folder(Path(source.location))
    else:
        family = families.family_for_hub_id(source.location)
        configs, params = families.get(family).published_description(source.location)
    return ModelHandle(
        name=name,
        source=source.location,
        family=family,
        local=source.local,
        precision=precision,
        vae_precision=vae_precision,
        device=str(device),
        offload=options.offload,
        allow_download=options.allow_download,
        params=params,
        configs=configs,
    )


def describe_published(hub_id: str, precision: str = "fp16", vae_precision: str = "fp32",
                       device: str = "cuda", offload: str = "none") -> ModelHandle:
    """A handle for a known hub model from its published config alone (sizes, no weights).

    What the tier checks use to plan a full-size run on a GPU this machine does not have.
    """
    family = families.family_for_hub_id(hub_id)
    if family is None:
        raise ModelError(f"{hub_id} is not a known hub id ({', '.join(families.known_hub_ids())})")
    configs, params = families.get(family).published_description(hub_id)
    return ModelHandle(name=hub_id, source=hub_id, family=family, local=False, precision=precision,
                       vae_precision=vae_precision, device=device, offload=offload, params=params,
                       configs=configs)


def resolve_device(name: str, default_device: torch.device) -> torch.device:
    if name == "auto":
        return torch.device(default_device)
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError("device", "CUDA was asked for but torch sees no CUDA device here; "
                             "use 'cpu' or 'auto'")
        return torch.device(name)
    raise InputError("device", f"expected one of {DEVICE_CHOICES}, got {name!r}")
