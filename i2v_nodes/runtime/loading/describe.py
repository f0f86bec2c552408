"""What a model is, read without its weights: a pipeline folder's configs and safetensors headers, a
published model's configuration, or single files' headers."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from i2v_nodes.errors import InputError, ModelError
from i2v_nodes.families import registry
from i2v_nodes.families.contract import files as contract_files
from i2v_nodes.families.contract.family import Family
from i2v_nodes.families.contract.files import FilePart, FileSet
from i2v_nodes.families.toolkit import gguf_header
from i2v_nodes.families.toolkit.file_headers import read_file_header
from i2v_nodes.families.toolkit.safetensors_header import Header, read_header
from i2v_nodes.runtime.memory import trace_cache, trace_table

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


@dataclass(frozen=True)
class Description:
    """What a model is, read from its files or its published configuration (no weights)."""

    family: Family
    variant: str
    configs: dict[str, Any]
    params: tuple[tuple[str, int], ...]
    stored: tuple[tuple[str, str], ...] = ()  # (component, the precision most of its weights are stored in)


def describe_folder(folder: Path) -> Description:
    """Family, variant, component configs and parameter counts of a local pipeline folder.

    Refuses folders whose weights exist only in pickle formats (loading those runs arbitrary
    code) and folders missing a component their model needs. Remembered per folder until one of
    its config or weight files changes.
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
def _describe_folder(folder: Path, _signature: tuple) -> Description:
    index = _read_json(folder / "model_index.json")
    configs: dict[str, Any] = {"pipeline": {k: v for k, v in index.items()
                                            if not k.startswith("_") and not isinstance(v, list)}}
    for component in index:
        sub = folder / component
        for config_name in ("config.json", "scheduler_config.json", "preprocessor_config.json"):
            if not component.startswith("_") and (sub / config_name).is_file():
                configs[component] = _read_json(sub / config_name)
                break
    found = registry.identify(index, configs, str(folder))
    if found is None:
        raise ModelError(
            f"{folder} holds a {index.get('_class_name')!r} pipeline that is not an image-to-video model "
            f"this pack runs; supported: {', '.join(registry.supported_pipelines())} (image-to-video "
            "checkpoints; a text-to-video one has no image input)"
        )
    family, variant = found
    params, stored = [], []
    for component in family.roles(variant).weighted:
        parts = family.weight_folders(component, configs)  # more than one when parts merge at load
        for part in parts:
            if not (folder / part).is_dir():
                raise ModelError(
                    f"{folder} has no '{part}' folder, but a {variant} model needs one (its "
                    f"model_index.json names "
                    f"{sorted(k for k, v in index.items() if isinstance(v, list) and v[0])}): the download "
                    f"is incomplete; fetch the model again"
                )
        params.append((component, sum(count_safetensors_params(folder / part) for part in parts)))
        stored.append((component, stored_precision([folder / part for part in parts])))
    return Description(family, variant, configs, tuple(params), tuple(stored))


def describe_hub(hub_id: str) -> Description:
    """A known hub model from its published configuration alone."""
    family = registry.for_hub_id(hub_id)
    if family is None:
        raise ModelError(f"{hub_id} is not a known hub id ({', '.join(registry.known_hub_ids())})")
    configs, params = published_description(family, hub_id)
    # the published repositories of every family store their weights in bf16
    return Description(family, family.hub_variant(hub_id), configs, params,
                       tuple((name, "bf16") for name, _count in params))


def published_description(family: Family, hub_id: str) -> tuple[dict[str, Any], tuple[tuple[str, int], ...]]:
    """A published model's completed configs and parameter counts: shipped for the published models
    (:mod:`i2v_nodes.runtime.memory.trace_table`), else remembered on disk after the first time its
    components are built on the meta device (seconds: diffusers and transformers are imported)."""
    published = family.published_configs(hub_id)
    shipped = trace_table.description(family.name, hub_id, published)
    if shipped is not None:
        return shipped
    key = json.dumps([hub_id, trace_table.config_hash(json.dumps(published, sort_keys=True)),
                      trace_table.library_versions()])
    name = f"described-{family.name}-{trace_table.text_hash(key)}"
    configs, params = trace_cache.remembered(name, "description",
                                             lambda: list(family.published_description(hub_id)))
    return configs, tuple((role, count) for role, count in params)


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


SAFETENSORS_PRECISION = {"BF16": "bf16", "F16": "fp16", "F32": "fp32"}


def stored_precision(component_dirs: list[Path]) -> str:
    """The precision most of a component's weight bytes are stored in ("" if none of bf16, fp16, fp32):
    loaded in that precision, diffusers and transformers use them where they lie in the mapped file."""
    by_dtype: dict[str, int] = {}
    for folder in component_dirs:
        for path in folder.glob("*.safetensors"):
            for tensor in read_header(path).tensors.values():
                by_dtype[tensor.dtype] = by_dtype.get(tensor.dtype, 0) + tensor.nbytes
    return SAFETENSORS_PRECISION.get(max(by_dtype, key=by_dtype.get), "") if by_dtype else ""


def _variant_of(filename: str) -> str:
    # diffusion_pytorch_model.fp16.safetensors, model-00001-of-00002.safetensors
    parts = filename.split(".")
    return parts[-2] if len(parts) >= 3 else ""


def _safetensors_numel(path: Path) -> int:
    return read_header(path).numel


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc


def describe_files(paths: dict[str, Path]) -> tuple[Description, FileSet]:
    """What single files (by loader slot) make together, from their headers alone.

    Every error names the slot, the file and what was expected, before anything loads.
    """
    found: dict[str, tuple[Family, FilePart]] = {}
    for slot, path in paths.items():
        if Path(path).suffix.lower() in PICKLE_SUFFIXES:  # before reading it as safetensors: say why not
            raise InputError(slot, f"{Path(path).name} is a pickle ({Path(path).suffix}), which can run code "
                                   "when it loads: this pack reads safetensors and GGUF files only; convert "
                                   "it to .safetensors first")
        try:
            header = read_file_header(path)
            readers = [family for family in registry.file_readers()
                       if header.container != "gguf" or family.files.gguf]
            part = next(((family, p) for family in readers
                         if (p := family.files.identify(header)) is not None), None)
        except ModelError as exc:
            raise InputError(slot, str(exc)) from exc
        if part is None:
            raise InputError(slot, _unrecognised(header, readers))
        found[slot] = part
    family = found["diffusion_model"][0] if "diffusion_model" in found else None
    if family is None:
        folders = " or ".join(contract_files.file_folders("diffusion_model"))
        raise InputError("diffusion_model", f"pick the diffusion model file (ComfyUI's {folders} folder)")
    model = found["diffusion_model"][1].path.name
    for slot, (other, part) in found.items():
        if other is not family:
            raise InputError(slot, f"{part.path.name} is a {other.name} file, but the diffusion model "
                                   f"{model} is {family.name}, which reads {family.files.description}")
    fileset = family.files.assemble({slot: part for slot, (_family, part) in found.items()})
    params = tuple((role, part.params) for role, part in fileset.parts.items())
    return Description(family, fileset.variant, fileset.configs, params), fileset


def _unrecognised(header: Header, readers: list[Family]) -> str:
    name = header.path.name
    if header.container == "gguf":
        arch = gguf_header.architecture(header) or "unnamed"
        return (f"{name} is a GGUF file of architecture {arch!r} ({gguf_header.file_type(header)}), not one "
                f"this pack reads; it reads GGUF {'; '.join(family.files.gguf for family in readers)}")
    readable = "; ".join(family.files.description for family in readers)
    return f"{name} is not a model file this pack recognises (it reads {readable})"


def files_source(fileset: FileSet) -> str:
    """A source string that changes when any file does: path, size and modification time of each."""
    parts = []
    for role, part in sorted(fileset.parts.items()):
        stat = part.path.stat()
        parts.append(f"{role}={part.path}@{stat.st_size}:{stat.st_mtime_ns}")
    return "files:" + ";".join(parts)
