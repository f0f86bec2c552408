"""Weights in memory: the bytes of each component as loaded, which of them each phase and offload mode
keeps on the device, which are streamed per phase, and which lie in place in their files."""

from __future__ import annotations

import functools
import json

from i2v_nodes.families.contract.family import Family
from i2v_nodes.lazy import torch
from i2v_nodes.runtime.loading import lora
from i2v_nodes.runtime.loading.handle import ModelHandle
from i2v_nodes.runtime.loading.placement import group_offload_type
from i2v_nodes.runtime.loading.precision import bytes_per_element, device_type
from i2v_nodes.runtime.memory import trace_cache, trace_table

PHASES = ("encode", "denoise", "decode")
FILE_FORMAT_BYTES = {"fp8_e4m3fn": 1, "fp8_scaled": 1, "bf16": 2, "fp16": 2, "fp32": 4}

def on_cpu(handle: ModelHandle) -> bool:
    return device_type(handle.device) == "cpu"


def weight_bytes(handle: ModelHandle) -> dict[str, int]:
    """Bytes of each component's weights as loaded: the VAE in its own dtype, fp8 one byte (a float8
    file's embeddings and fp32-kept parts in the compute dtype), a GGUF file's quantised matrices as
    stored (the file is mapped, not copied), what an encoder keeps in its stored half precision at 2."""
    roles, fp8 = handle.roles, handle.fp8_roles
    parts = handle.files.parts if handle.files is not None else {}
    sizes = {}
    for name, count in handle.params:
        part = parts.get(name)
        if part is not None and (part.fp8 or part.gguf or part.half_params):  # some stays as stored
            sizes[name] = part.loaded_bytes(bytes_per_element(handle.precision))
            continue
        if name in fp8:
            per = 1
        elif name == roles.vae:
            per = bytes_per_element(handle.vae_precision)
        else:
            per = bytes_per_element(handle.precision)
        sizes[name] = count * per
    # LoRA adapters stay unfused beside their layers (so removing them is exact), in the compute dtype
    extra = lora.weight_bytes(handle.loras, roles.denoisers, bytes_per_element(handle.precision))
    for name, size in extra.items():
        sizes[name] = sizes.get(name, 0) + size
    return sizes


def _phase_components(handle: ModelHandle) -> dict[str, tuple[str, ...]]:
    roles = handle.roles
    return {"encode": (*roles.encoders, roles.vae), "denoise": roles.denoisers,
            "decode": (roles.vae, *roles.decoders)}


def resident_weights(handle: ModelHandle, offload: str, residency: str = "resident") -> dict[str, int]:
    """Weight bytes on the device during each phase, for each offload mode (on a CPU, streamed per
    phase: only the phase's own encoder or expert beside what is never streamed)."""
    sizes = weight_bytes(handle)
    if offload == "none":
        if residency == "phase" and on_cpu(handle):
            return streamed_weights(handle, sizes)
        return dict.fromkeys(PHASES, sum(sizes.values()))
    resident = {}
    for phase, components in _phase_components(handle).items():
        if offload == "model":  # one whole component at a time (one expert at a time)
            resident[phase] = max((sizes.get(c, 0) for c in components), default=0)
        else:  # group: one block (plus the next, prefetched); sequential: one layer
            resident[phase] = max((_offload_share(handle, c, offload, sizes.get(c, 0)) for c in components),
                                  default=0)
    return resident


def streamed_weights(handle: ModelHandle, sizes: dict[str, int]) -> dict[str, int]:
    """Weight bytes resident in each phase of a run streamed per phase (``loading.streaming``): one
    component at a time (an encoder, or the VAE encoding the image; one expert), and at decode the VAE
    with the decoders."""
    roles = handle.roles
    encoders = [sizes.get(c, 0) for c in (*roles.encoders, roles.vae)]
    return {"encode": max(encoders, default=0),
            "denoise": max((sizes.get(c, 0) for c in roles.denoisers), default=0),
            "decode": sum(sizes.get(c, 0) for c in (roles.vae, *roles.decoders))}


def in_place_bytes(handle: ModelHandle) -> dict[str, int]:
    """Bytes of each component's weights used where they lie in their files (file-backed): a GGUF
    file's quantised matrices, a float8 file's float8 matrices, and weights loaded in the precision
    they are stored in (single files by their format, folders by their headers)."""
    parts = handle.files.parts if handle.files is not None else {}
    stored = dict(handle.stored)
    sizes = weight_bytes(handle)
    out = {}
    for name, _count in handle.params:
        part = parts.get(name)
        kept = handle.vae_precision if name == handle.roles.vae else handle.precision
        if part is not None and part.gguf is not None:
            out[name] = part.gguf.stored_bytes
        elif part is not None and part.fp8:  # float8 matrices, and tables kept in their stored half precision
            out[name] = part.float8_params + part.half_params * 2
        elif name in handle.fp8_roles:  # cast to float8 on load: private
            out[name] = 0
        else:
            here = part.format if part is not None else stored.get(name, "")
            if here == kept:
                out[name] = sizes.get(name, 0)
            else:  # what stays in its stored half precision (an encoder's matrices); the rest: a private cast
                out[name] = part.half_params * 2 if part is not None else 0
    return out


def pinned_bytes(handle: ModelHandle, offload: str, on_disk: bool = False) -> int:
    """Page-locked RAM of group offload on CUDA: with ``low_cpu_mem_usage`` and a stream, diffusers pins
    a copy of each group as it moves it to the device, and the next group's while it prefetches; torch
    keeps freed pinned blocks for reuse. So the run holds, beside the weights, pinned copies of the two
    largest groups (what the device holds of them too). From disk, each group is first read whole into
    RAM and then pinned: twice that."""
    if offload != "group" or on_cpu(handle):
        return 0
    sizes = weight_bytes(handle)
    pinned = max((_offload_share(handle, name, "group", size) for name, size in sizes.items()), default=0)
    return pinned * 2 if on_disk else pinned


def _offload_share(handle: ModelHandle, component: str, offload: str, size: int) -> int:
    count = dict(handle.params).get(component, 0)
    if not count:
        return 0
    group, leaf = _part_sizes(handle.family, component, json.dumps(handle.configs.get(component, {}),
                                                                      sort_keys=True))
    if offload == "group":
        share = 2 * group if group else leaf
    else:
        share = leaf
    return min(size, size * share // count)


@functools.lru_cache(maxsize=64)
def _part_sizes(family: Family, component: str, config: str) -> tuple[int, int]:
    """Parameters of a component's largest offload group (0 if it offloads leaf by leaf) and of its
    largest single layer. Remembered per config: the adapt ladder and the advice ask many times; the
    published models' are shipped, the others' remembered on disk (building the module takes seconds)."""
    shipped = trace_table.part_sizes(family.name, component, config)
    if shipped is not None:
        return shipped
    key = trace_table.text_hash(json.dumps([trace_table.config_hash(config), trace_table.library_versions()]))
    group, leaf = trace_cache.remembered(f"parts-{family.name}-{key}", component,
                                         lambda: list(measure_parts(family, component, config)))
    return group, leaf


def measure_parts(family: Family, component: str, config: str) -> tuple[int, int]:
    """:func:`_part_sizes` measured on the component built on the meta device."""
    module = family.traces.meta_component(component, config, torch.float32)
    leaf = max((sum(p.numel() for p in m.parameters(recurse=False)) for m in module.modules()), default=0)
    if group_offload_type(module) != "block_level":
        return 0, leaf
    blocks, rest = [], 0
    for child in module.children():  # as diffusers groups them: each block, then everything else
        if isinstance(child, (torch.nn.ModuleList, torch.nn.Sequential)):
            blocks += [sum(p.numel() for p in block.parameters()) for block in child]
        else:
            rest += sum(p.numel() for p in child.parameters())
    rest += sum(p.numel() for p in module.parameters(recurse=False))
    return max([*blocks, rest]), leaf


def largest_layer_bytes(handle: ModelHandle, component: str) -> int:
    config = json.dumps(handle.configs.get(component, {}), sort_keys=True)
    return _part_sizes(handle.family, component, config)[1] * bytes_per_element(handle.precision)


def stored_bytes(handle: ModelHandle, role: str, params: int) -> int:
    """Bytes of a component's weights as stored (a single file by its format, a GGUF file's quantised
    size, a folder by its headers' precision; 0 where that is not known)."""
    part = handle.files.parts.get(role) if handle.files is not None else None
    if part is not None:
        return part.gguf.stored_bytes if part.gguf else params * FILE_FORMAT_BYTES.get(part.format, 4)
    stored = dict(handle.stored).get(role)
    return params * bytes_per_element(stored) if stored else 0


def read_bytes(handle: ModelHandle, role: str, params: int, kept: int) -> int:
    """RAM a denoiser takes while it loads: from a folder, in the compute dtype; from a single
    file, the file's own format or what is kept, whichever is larger; from a GGUF file (mapped, its
    quantised matrices used where they lie), what is kept."""
    part = handle.files.parts.get(role) if handle.files is not None else None
    if part is None:
        return params * bytes_per_element(handle.precision)
    return kept if part.gguf else max(kept, stored_bytes(handle, role, params))
