"""Traced activation peaks, from the fastest place that has them: this process's memory, the shipped
table (:mod:`.trace_table`, the published models), the disk cache (:mod:`.trace_cache`, whatever was
traced before on this machine), and only then a trace on the meta device (:mod:`.trace`), which is
remembered in the disk cache. Every figure is the traced one, or (between the shipped grid's points)
an upper bound of it, so VRAMGuard and ``plan``, which both ask here, give the same answers.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable, Mapping

from i2v_nodes.families.contract.family import Family
from i2v_nodes.runtime.loading.precision import dtype_of
from i2v_nodes.runtime.memory import trace_cache, trace_table


@functools.lru_cache(maxsize=512)
def denoiser(family: Family, variant: str, configs: str, precision: str, rows: int, frames: int,
             height: int, width: int, kernels: str) -> int:
    """One denoiser call with ``rows`` batch rows at this output size."""
    point = {"rows": rows, "frames": frames, "height": height, "width": width}

    def trace() -> int:
        return family.traces.denoiser(variant, configs, dtype_of(precision), rows, frames, height,
                                      width).peak_bytes(kernels=kernels)

    return _peak(family, variant, configs, "denoiser", precision, kernels, point, trace)


@functools.lru_cache(maxsize=512)
def vae(family: Family, variant: str, configs: str, precision: str, direction: str, frames: int, height: int,
        width: int, tiling: bool, kernels: str) -> int:
    """The VAE's ``encode`` or ``decode`` of one clip of ``frames`` frames at this size."""
    point = {"frames": frames, "height": height, "width": width}

    def trace() -> int:
        return family.traces.vae(variant, configs, dtype_of(precision), direction, frames, height, width,
                                 tiling).peak_bytes(kernels=kernels)

    return _peak(family, variant, configs, vae_phase(direction, tiling), precision, kernels, point, trace)


def vae_phase(direction: str, tiling: bool) -> str:
    return f"vae-{direction}{'-tiled' if tiling else ''}"


@functools.lru_cache(maxsize=64)
def encoders(family: Family, variant: str, configs: str, precision: str, kernels: str) -> int:
    """The largest of the encoders' calls in the encode phase."""

    def trace() -> int:
        traces = family.traces.encoders(variant, configs, dtype_of(precision))
        return max((t.peak_bytes(kernels=kernels) for t in traces), default=0)

    return _peak(family, variant, configs, "encoders", precision, kernels, {}, trace)


def _peak(family: Family, variant: str, configs: str, phase: str, precision: str, kernels: str,
          point: Mapping[str, int], trace: Callable[[], int]) -> int:
    shipped = trace_table.peak(family.name, variant, configs, family_code(family), phase, precision, kernels,
                               point)
    if shipped is not None:
        return shipped
    return trace_cache.remembered(cache_name(family, variant, configs),
                      f"{trace_table.phase_key(phase, precision, kernels)}|{trace_table.point_key(point)}",
                      trace)


@functools.lru_cache(maxsize=64)
def family_code(family: Family) -> str:
    """A hash of the family's traces module: what builds the calls that are traced (read from the file
    it declares, so a figure the table has costs no import of the builders and torch)."""
    return trace_table.source_hash(family.traces_file or inspect.getsourcefile(type(family.traces)))


def cache_name(family: Family, variant: str, configs: str) -> str:
    """The disk cache file of one configuration, under this tracer, family code and libraries."""
    code = [family.name, variant, trace_table.config_hash(configs), trace_table.tracer_hash(),
            family_code(family), trace_table.library_versions()]
    return f"{family.name}-{variant}-{trace_table.text_hash(json.dumps(code, sort_keys=True))}"


def forget() -> None:
    """Forget what this process read and traced (the disk cache and the table are read again)."""
    trace_cache.forget()
    for cached in (denoiser, vae, encoders):
        cached.cache_clear()
    trace_table.reload()
