"""The model handle LoadI2VModel outputs (``I2V_MODEL``): a description of a model, never its
weights, and the key under which its loaded pipeline is cached."""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from typing import Any

from i2v_nodes.families.contract.family import Family
from i2v_nodes.families.contract.spec import Roles, Rules


@dataclass(frozen=True)
class CacheKey:
    """What makes two loaded pipelines interchangeable."""

    source: str
    dtype: str
    vae_dtype: str
    device: str
    offload: str
    weights: str = "default"  # weight storage: default / fp8


@dataclass(frozen=True)
class ModelHandle:
    """What LoadI2VModel outputs (type ``I2V_MODEL``): a description, never the weights.

    Holding a handle pins nothing in memory, so ComfyUI's output cache can keep it for free.
    ``plan`` is attached by VRAMGuard (see :mod:`memory`).
    """

    name: str
    source: str  # a local folder (absolute), a hub id, or "files:" and the single files it is made of
    family: Family  # the model's family (its name: family.name)
    variant: str  # the family's shape of model, e.g. "wan2.2-i2v-a14b"
    local: bool
    precision: str  # fp32 / fp16 / bf16, already resolved from "auto"
    vae_precision: str
    device: str  # "cpu", "cuda", "cuda:1"
    offload: str
    allow_download: bool = False
    weights: str = "default"  # default: weights in `precision`; fp8: the denoisers store float8
    params: tuple[tuple[str, int], ...] = ()  # (component, parameter count)
    configs: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)
    plan: Any = field(default=None, compare=False, hash=False, repr=False)
    files: Any = field(default=None, compare=False, hash=False, repr=False)  # a FileSet, for single files
    tokenizer_roots: tuple[str, ...] = field(default=(), compare=False, hash=False, repr=False)
    # (component, precision its weights are stored in): those loaded in it are used in place, file-backed
    stored: tuple[tuple[str, str], ...] = field(default=(), compare=False, hash=False, repr=False)
    # LoRAs (lora.LoraSpec), applied on the cached pipeline before each run: part of what the handle is,
    # never of its cache key, so changing them never reloads the base weights
    loras: tuple[Any, ...] = ()
    # single files: (loader slot, path) as opened, to open them again when one changes on disk
    opened: tuple[tuple[str, str], ...] = field(default=(), compare=False, hash=False, repr=False)

    @property
    def cache_key(self) -> CacheKey:
        return CacheKey(self.source, self.precision, self.vae_precision, self.device, self.offload,
                        self.weights)

    @property
    def fp8_roles(self) -> frozenset[str]:
        """Components whose weights are stored in float8: the denoisers with weights fp8, and any
        single file that is fp8 already (it stays fp8 rather than doubling in bf16)."""
        roles = set(self.roles.denoisers) if self.weights == "fp8" else set()
        if self.files is not None:
            roles |= {role for role, part in self.files.parts.items() if part.fp8}
        return frozenset(roles)

    @property
    def fp8_storable(self) -> bool:
        """Whether the denoisers could take fp8 storage: they exist and none is a GGUF file (those
        stay quantised as stored, whatever ``weights`` says)."""
        parts = self.files.parts if self.files is not None else {}
        return bool(self.roles.denoisers) and not any(
            parts[role].gguf for role in self.roles.denoisers if role in parts)

    @property
    def rules(self) -> Rules:
        return self.family.rules(self.variant)

    @property
    def roles(self) -> Roles:
        return self.family.roles(self.variant)

    @functools.cached_property
    def configs_json(self) -> str:
        """The configs as one canonical string: the key of every per-model memory trace."""
        return json.dumps(self.configs, sort_keys=True)

    def param_count(self, component: str) -> int:
        return dict(self.params).get(component, 0)

    @property
    def total_params(self) -> int:
        return sum(n for _, n in self.params)

    def with_plan(self, plan: Any) -> ModelHandle:
        return dataclasses.replace(self, plan=plan)

    def with_lora(self, spec: Any) -> ModelHandle:
        """This handle with one more LoRA after those it has (LoRA nodes chain)."""
        return dataclasses.replace(self, loras=(*self.loras, spec))
