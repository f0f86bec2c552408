"""Finding models and describing them without loading weights.

A model is named in one of three ways: a built-in tiny model (``tiny-<family-variant>``), the name
of a folder with ``model_index.json`` under one of the model folders, or a known hub id. Resolving
a name gives a light :class:`ModelHandle`: the resolved source, the family and its variant, the
component configs and the parameter counts read from safetensors headers (or, for a hub id with
no local copy, counted from the family's published config on the meta device). Weights load
later, through the cache, after the memory guard has planned the run.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

from i2v_nodes.errors import InputError, ModelError
from i2v_nodes.families import registry
from i2v_nodes.families.contract.family import Family
from i2v_nodes.families.contract.files import FileSet
from i2v_nodes.families.toolkit.tiny import ensure_built, first_use_lock
from i2v_nodes.lazy import torch
from i2v_nodes.runtime.loading.describe import (
    Description,
    describe_files,
    describe_folder,
    describe_hub,
    files_source,
)
from i2v_nodes.runtime.loading.handle import ModelHandle
from i2v_nodes.runtime.loading.precision import (
    check_names,
    resolve_precision,
    resolve_vae_precision,
    resolve_weights,
)

log = logging.getLogger(__name__)


MODEL_FOLDER = "i2v"  # the pack's own folder in a models directory (tiny models are built there)




OFFLOAD_CHOICES = ["none", "model", "sequential", "group"]


DEVICE_CHOICES = ["auto", "cuda", "cpu"]


def list_model_names(model_dirs: list[Path]) -> list[str]:
    """Names for the LoadI2VModel combo: tiny models, local folders, then known hub ids."""
    names = list(registry.tiny_builders())
    for folder in _local_model_folders(model_dirs):
        if folder.name not in names:
            names.append(folder.name)
    names += [hub_id for hub_id in registry.known_hub_ids() if hub_id not in names]
    return names


def _local_model_folders(model_dirs: list[Path]) -> list[Path]:
    found = []
    for root in model_dirs:
        if not root.is_dir():
            continue
        for child in sorted(root.iterdir()):
            if child.name.startswith("."):
                continue
            if (child / "model_index.json").is_file() and child.name not in registry.tiny_builders():
                found.append(child)
    return found


@dataclass(frozen=True)
class Source:
    name: str
    location: str  # folder path or hub id
    local: bool


def resolve_source(name: str, model_dirs: list[Path], allow_download: bool) -> Source:
    """Turn a combo value into a local folder or a hub id, or explain what is missing."""
    tiny = registry.tiny_builders()
    if name in tiny:
        return Source(name, str(tiny_model_folder(name, model_dirs[0])), True)
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
    if name in registry.known_hub_ids():
        cached = _hub_cache_folder(name)
        if cached is not None:
            return Source(name, str(cached), True)
        if allow_download:
            return Source(name, name, False)
        repos = registry.for_hub_id(name).hub_repos(name)
        if len(repos) > 1:  # a model assembled from several repositories when it loads
            raise ModelError(
                f"{name} is not on this machine and allow_download is off. It is made of "
                f"{' and '.join(repos)}: turn allow_download on to fetch them into the Hugging Face cache "
                "(once; later runs read the cache), or save them as one pipeline folder in the models folder "
                "and pick that."
            )
        target = model_dirs[0] / name.split("/")[-1]
        raise ModelError(
            f"{name} is not on this machine and allow_download is off. Download it once, e.g. "
            f"`huggingface-cli download {name} --local-dir {target}` (then pick "
            f"'{target.name}' in the list), or turn allow_download on."
        )
    searched = ", ".join(str(d) for d in model_dirs)
    raise ModelError(
        f"unknown model {name!r}: not a tiny model ({', '.join(tiny)}), not a folder with "
        f"model_index.json in {searched}, and not a known hub id ({', '.join(registry.known_hub_ids())})"
    )


def tiny_model_folder(name: str, models_dir: Path) -> Path:
    """The folder of built-in tiny model ``name`` under ``models_dir``, built on first use."""
    builders = registry.tiny_builders()
    if name not in builders:
        raise KeyError(f"unknown tiny model {name!r}; known: {sorted(builders)}")
    return ensure_built(name, models_dir, builders[name][1])


def tiny_single_files(name: str, models_dir: Path, fmt: str = "fp32") -> dict[str, Path]:
    """Built-in tiny model ``name`` written as ComfyUI's single files (in ComfyUI's folders under
    ``models_dir``), on first use; returns the file for each loader slot."""
    family, _build = registry.tiny_builders()[name]
    folder = tiny_model_folder(name, models_dir / MODEL_FOLDER)
    pipe = family.pipeline_class(describe_folder(folder).variant).from_pretrained(str(folder))
    with first_use_lock(Path(models_dir) / f"{name}-{fmt}-files"):  # each file atomic; the set under a lock
        return family.files.write(pipe, models_dir, name, fmt)


def _hub_cache_folder(repo_id: str) -> Path | None:
    """The local snapshot of a hub repo, if the Hugging Face cache already has one."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    hit = try_to_load_from_cache(repo_id, "model_index.json")
    return Path(hit).parent if isinstance(hit, str) else None


@dataclass(frozen=True)
class LoadOptions:
    """LoadI2VModel's widgets, as given."""

    precision: str = "auto"
    vae_precision: str = "auto"
    device: str = "auto"
    offload: str = "none"
    allow_download: bool = False
    weights: str = "default"


def _checked_device(options: LoadOptions, default_device: torch.device) -> torch.device:
    device = resolve_device(options.device, default_device)
    if options.offload not in OFFLOAD_CHOICES:
        raise InputError("offload", f"expected one of {OFFLOAD_CHOICES}, got {options.offload!r}")
    if options.offload != "none" and device.type != "cuda":
        raise InputError(
            "offload",
            f"offload '{options.offload}' moves weights between system RAM and a GPU; the device is "
            f"{device.type}, where every weight already lives in RAM: choose 'none'",
        )
    return device


def open_model(name: str, options: LoadOptions, model_dirs: list[Path],
               default_device: torch.device) -> ModelHandle:
    """Validate the load options and describe the model, reading no weights."""
    device = _checked_device(options, default_device)
    check_names(options.precision, options.vae_precision, options.weights)
    weights = resolve_weights(options.weights, device)
    if not name or not isinstance(name, str):
        raise InputError("model", "expected a model name from the list")
    try:
        source = resolve_source(name, model_dirs, options.allow_download)
        found = describe_folder(Path(source.location)) if source.local else describe_hub(source.location)
    except ModelError as exc:
        raise InputError("model", str(exc)) from exc
    rules = found.family.rules(found.variant)
    return ModelHandle(
        name=name,
        source=source.location,
        family=found.family,
        variant=found.variant,
        local=source.local,
        precision=resolve_precision(options.precision, device, rules.default_precision),
        vae_precision=resolve_vae_precision(options.vae_precision),
        device=str(device),
        offload=options.offload,
        allow_download=options.allow_download,
        weights=weights,
        params=found.params,
        configs=found.configs,
        stored=found.stored,
    )


def open_files(paths: dict[str, Path], options: LoadOptions, default_device: torch.device,
               tokenizer_roots: list[Path] = ()) -> ModelHandle:
    """Validate the load options and describe the model single files make, reading no weights.

    ``tokenizer_roots``: folders searched (``<root>/<tokenizer name>``) when a text encoder file
    carries no tokenizer."""
    device = _checked_device(options, default_device)
    check_names(options.precision, options.vae_precision, options.weights)
    found, fileset = describe_files(paths)
    weights = resolve_weights(_files_weights(found.family, fileset, options.weights), device)
    handle = _files_handle(found, fileset, options, device, weights)
    handle.family.files.check_tokenizer(fileset, list(tokenizer_roots), options.allow_download)
    return dataclasses.replace(handle, tokenizer_roots=tuple(str(p) for p in tokenizer_roots),
                               opened=tuple((slot, str(path)) for slot, path in paths.items()))


def as_on_disk(handle: ModelHandle) -> ModelHandle:
    """The handle of single files as they are now: itself, or, when a file changed on disk since it
    was opened (a new download, a file written over), the files opened again, headers and all. The
    new handle has another cache key, so its weights load anew and never mix with the old ones."""
    if handle.files is None or not handle.opened:
        return handle
    try:
        now = files_source(handle.files)
    except OSError as exc:
        raise ModelError(f"{handle.name}: a file of this model is gone since it was opened: {exc}") from exc
    if now == handle.source:
        return handle
    log.warning("%s changed on disk since it was opened: reading the files again", handle.name)
    options = LoadOptions(handle.precision, handle.vae_precision, handle.device, handle.offload,
                          handle.allow_download, handle.weights)
    fresh = open_files({slot: Path(path) for slot, path in handle.opened}, options,
                       torch.device(handle.device), [Path(p) for p in handle.tokenizer_roots])
    return dataclasses.replace(fresh, loras=handle.loras, plan=handle.plan)


def handle_for_files(paths: dict[str, Path], *, precision: str = "auto", vae_precision: str = "auto",
                     device: str = "cuda", offload: str = "none", weights: str = "default") -> ModelHandle:
    """A handle to plan with, from single files' headers, for a device this machine need not have."""
    check_names(precision, vae_precision, weights)
    found, fileset = describe_files(paths)
    options = LoadOptions(precision, vae_precision, device, offload, False, weights)
    weights = _files_weights(found.family, fileset, weights)
    return _files_handle(found, fileset, options, torch.device(device), weights)


def _files_weights(family: Family, fileset: FileSet, asked: str) -> str:
    """fp8 denoiser files stay fp8 (expanding them would double their memory), whatever was asked.
    (Other fp8 files, such as a text encoder, stay fp8 too: see ModelHandle.fp8_roles.) GGUF denoiser
    files stay quantised as stored: fp8 storage is never laid over them."""
    parts = [fileset.parts[role] for role in family.roles(fileset.variant).denoisers if role in fileset.parts]
    if any(part.gguf for part in parts):
        if asked == "fp8":
            log.info("weights fp8 ignored: the GGUF files stay quantised as stored")
        return "default"
    return "fp8" if any(part.fp8 for part in parts) else asked


def _files_handle(found: Description, fileset: FileSet, options: LoadOptions, device: torch.device,
                  weights: str) -> ModelHandle:
    default = found.family.rules(found.variant).default_precision
    name = " + ".join(dict.fromkeys(part.path.name for part in fileset.parts.values()))  # a file once
    return ModelHandle(name=name, source=files_source(fileset), family=found.family, variant=found.variant,
                       local=True, precision=resolve_precision(options.precision, device, default),
                       vae_precision=resolve_vae_precision(options.vae_precision), device=str(device),
                       offload=options.offload, allow_download=options.allow_download, weights=weights,
                       params=found.params, configs=found.configs, files=fileset)


def describe_published(hub_id: str, precision: str | None = None, vae_precision: str = "fp32",
                       device: str = "cuda", offload: str = "none", weights: str = "default") -> ModelHandle:
    """A handle for a known hub model from its published config alone (sizes, no weights).

    What the tier checks and the planner use to plan a full-size run on a machine that has
    neither the weights nor the GPU. ``precision`` None is the family's default on that device.
    """
    found = describe_hub(hub_id)
    default = found.family.rules(found.variant).default_precision
    return ModelHandle(name=hub_id, source=hub_id, family=found.family, variant=found.variant, local=False,
                       precision=precision or resolve_precision("auto", torch.device(device), default),
                       vae_precision=vae_precision, device=device, offload=offload, weights=weights,
                       params=found.params, configs=found.configs, stored=found.stored)


def handle_for_planning(name: str, model_dirs: list[Path], *, precision: str = "auto",
                        vae_precision: str = "auto", device: str = "cuda", offload: str = "none",
                        weights: str = "default") -> ModelHandle:
    """A handle to plan with, for a device this machine need not have: a known hub id is sized from
    its published configuration (no download), a local folder or tiny model from its files."""
    check_names(precision, vae_precision, weights)
    if name in registry.known_hub_ids():
        found = describe_hub(name)
    else:
        try:
            found = describe_folder(Path(resolve_source(name, model_dirs, allow_download=False).location))
        except ModelError as exc:
            raise InputError("model", str(exc)) from exc
    rules = found.family.rules(found.variant)
    return ModelHandle(name=name, source=name, family=found.family, variant=found.variant, local=False,
                       precision=resolve_precision(precision, device, rules.default_precision),
                       vae_precision=resolve_vae_precision(vae_precision), device=device,
                       offload=offload, weights=weights, params=found.params, configs=found.configs,
                       stored=found.stored)


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
