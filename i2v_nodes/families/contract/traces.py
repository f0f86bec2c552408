"""How a family's memory is measured: its components built weightless on the meta device, and the
calls whose peak the engine's tracer (:mod:`i2v_nodes.runtime.memory.trace`) measures.

The engine caches each answer per (family, variant, configs, sizes), so these build and return;
they never run a real model.
"""

from __future__ import annotations

import abc

from i2v_nodes.families.contract.jobs import Trace
from i2v_nodes.lazy import torch


class MemoryTraces(abc.ABC):
    """One family's memory traces. ``configs`` is always the model's component configs as canonical
    JSON (the handle's ``configs_json``)."""

    @abc.abstractmethod
    def meta_component(self, role: str, config_json: str, dtype: torch.dtype) -> torch.nn.Module:
        """A weightless module of one component (``role`` is its pipeline attribute name)."""

    @abc.abstractmethod
    def denoiser(self, variant: str, configs: str, dtype: torch.dtype, rows: int, frames: int, height: int,
                 width: int, full_depth: bool = False) -> Trace:
        """One denoiser call with ``rows`` batch rows at this output size. A family may trace fewer of
        its identical blocks when that leaves the peak unchanged; ``full_depth`` asks for all of them
        (to count FLOPs)."""

    @abc.abstractmethod
    def vae(self, variant: str, configs: str, dtype: torch.dtype, direction: str, frames: int, height: int,
            width: int, tiling: bool) -> Trace:
        """A VAE ``encode`` or ``decode`` of ``frames`` output frames (one clip) at this size."""

    def encoders(self, variant: str, configs: str, dtype: torch.dtype) -> list[Trace]:
        """Text/image encoder calls made in the encode phase (each traced on its own)."""
        return []

    def block_state(self, variant: str, configs: str, frames: int, height: int,
                    width: int) -> tuple[int, int, int]:
        """Tokens per batch row at the denoiser's repeated blocks, their width, and the number of
        blocks: what a step cache's kept hidden states cost. (0, 0, 0) where it has no step cache."""
        return 0, 0, 0
