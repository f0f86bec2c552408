"""Loading a pipeline and putting it on its device: whole, or with one of diffusers' offload modes.

The denoisers, by far the largest components, are loaded one at a time before the rest: each
gets its fp8 weight storage (if asked) while still in system RAM, and without offload goes to
the device at once. So system RAM never holds two 14B experts in bf16 at the same moment, and
the device never sees an expert in bf16 that it could only hold in fp8.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from i2v_nodes.families.contract.family import Family
from i2v_nodes.families.contract.files import FileSet, LoadSpec
from i2v_nodes.families.contract.spec import Roles
from i2v_nodes.lazy import torch
from i2v_nodes.runtime.loading import residency
from i2v_nodes.runtime.loading.precision import FP8_STORAGE

log = logging.getLogger(__name__)


def load_pipeline(
    family: Family, roles: Roles, source: str, local: bool, spec: LoadSpec, device: torch.device,
    offload: str, variant: str = "", streamed: bool = False, disk: Path | None = None,
) -> Any:
    """The stock pipeline from a local folder or hub id: safetensors only, never remote code. Streamed,
    each denoiser is made file-backed and released as soon as it is loaded (RAM holds one at a time)."""
    from diffusers import AutoModel

    common = {"use_safetensors": True, "local_files_only": local, **family.load_kwargs(source, local, spec)}
    source, parts = family.load_source(source, local, spec)  # a model of several repositories: its parts
    denoisers = {}
    for name in roles.denoisers:
        module = AutoModel.from_pretrained(source, subfolder=name, dtype=spec.dtype, **common)
        if spec.weights == "fp8":
            module.enable_layerwise_casting(
                storage_dtype=getattr(torch, FP8_STORAGE), compute_dtype=spec.dtype
            )
        if offload == "none":
            module.to(device)
        if streamed:
            _set_aside(module)
        denoisers[name] = module
    pipe = family.pipeline_class(variant).from_pretrained(
        source, dtype={"default": spec.dtype, roles.vae: spec.vae_dtype}, **common, **parts, **denoisers
    )
    pipe.set_progress_bar_config(disable=True)  # progress goes through the host's bar instead
    family.prepare(pipe)
    place(pipe, roles, device, offload, disk)
    return pipe


def load_files_pipeline(family: Family, roles: Roles, files: FileSet, spec: LoadSpec, device: torch.device,
                        offload: str, tokenizer_roots: list[Path], allow_download: bool,
                        streamed: bool = False, disk: Path | None = None) -> tuple[Any, str]:
    """The stock pipeline from single files, placed like one from a folder; and the family's note
    (which tokenizer it used). Denoisers not already float8 get fp8 storage if asked."""

    def settle(module: torch.nn.Module) -> None:
        storage = getattr(torch, FP8_STORAGE)
        if spec.weights == "fp8" and not any(p.dtype == storage for p in module.parameters()):
            module.enable_layerwise_casting(storage_dtype=storage, compute_dtype=spec.dtype)
        if offload == "none":
            module.to(device)
        if streamed:
            _set_aside(module)

    pipe, note = family.files.load(files, spec, tokenizer_roots, allow_download, settle)
    pipe.set_progress_bar_config(disable=True)
    family.prepare(pipe)
    place(pipe, roles, device, offload, disk)
    return pipe, note


def _set_aside(module: torch.nn.Module) -> None:
    """A denoiser just loaded for a streamed run: its weights file-backed and its pages released, so
    the next one loads beside none of it."""
    residency.make_file_backed(module)
    residency.release(module)


def place(pipe: Any, roles: Roles, device: torch.device, offload: str, disk: Path | None = None) -> None:
    """``none``: everything on the device. ``model``: one component at a time. ``group``: one
    block at a time, prefetched on a CUDA stream; with ``disk``, each denoiser's groups kept in files
    there, read back as they run (a folder per denoiser: diffusers names the files by the groups' names,
    which two experts share, and reuses a file that exists; the other components, whose calls do not all
    go through the modules diffusers hooks, stay in RAM, streamed per phase). ``sequential``: one layer
    at a time (slowest)."""
    if offload == "none":
        pipe.to(device)
    elif offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    elif offload == "group":
        from diffusers.hooks import apply_group_offloading

        for name in roles.weighted:
            module = getattr(pipe, name, None)
            if isinstance(module, torch.nn.Module):
                apply_group_offloading(
                    module,
                    onload_device=device,
                    offload_device=torch.device("cpu"),
                    offload_type=group_offload_type(module),
                    num_blocks_per_group=1,
                    use_stream=device.type == "cuda",
                    # pin each group as it goes rather than a pinned copy of every weight: RAM holds the
                    # weights once, where they lie (mapped from their file), and streaming can release them
                    low_cpu_mem_usage=True,
                    offload_to_disk_path=str(disk / name) if disk and name in roles.denoisers else None,
                )
    else:
        raise ValueError(f"unknown offload mode {offload!r}")


def group_offload_type(module: torch.nn.Module) -> str:
    """Block level where the module has a stack of blocks at its top; else one leaf layer at a time
    (a text encoder nests its blocks, so block level would move it whole)."""
    has_blocks = any(
        isinstance(child, (torch.nn.ModuleList, torch.nn.Sequential)) for child in module.children()
    )
    return "block_level" if has_blocks else "leaf_level"


def set_vae_tiling(pipe: Any, roles: Roles, enabled: bool) -> None:
    # diffusers >= 0.42 dropped pipe.enable_vae_tiling; the VAE's own switch works everywhere
    vae = getattr(pipe, roles.vae)
    if enabled:
        vae.enable_tiling()
    else:
        vae.disable_tiling()
