"""The shipped table of traced peaks: the published models' memory traces, made once by
``tools/build_traces.py`` and read here in milliseconds, so ``plan`` answers without tracing.

For each published configuration (keyed by family, variant and a hash of its configs as the handle
holds them) and each traced phase (the denoiser at 1, 2 and 4 batch rows; the VAE's encode and
decode, tiled and not; the encoders), the table holds the exact traced peak at every point of a grid
of frames x height x width (x rows). A shape on the grid reads its exact value. A shape between grid
points reads the multilinear interpolation of its cell's corners, raised by the phase's ``margin``:

- every tensor a forward makes has a size that is a product of the latent dimensions (rows, latent
  frames, height, width: each to the first power, attention being fused), so the live total at every
  point of the forward is multilinear in them, and the peak, their maximum, is at most the
  multilinear interpolation of its values at the corners of any cell around the shape (exact where
  one point of the forward sets the peak across the cell). Latent frames and sizes are affine in
  frames, height and width on the families' frame and size rules;
- where that may not hold exactly (VAE tiles, whose count steps with the size; UNets, whose levels
  round odd sizes up), the build traces seeded shapes off the grid and, if the trace rose above the
  interpolation at any, stores by how much (and 1% more) as the phase's ``margin``; a tiled phase's is
  at least 3% (one more row of tiles steps the peak: Wan's tiled decode fell up to 0.65% below the
  interpolation between grid points; no other phase of the published models has measured any);
- a shape below the grid's first point reads the first point (memory never shrinks as a shape
  grows); a shape beyond the grid, another precision or configuration is not in the table and is
  traced (then remembered on disk, :mod:`.trace_cache`).

The table is used only when it was built by the same tracer (a hash of ``trace.py``), the same
family traces (a hash of the family's traces module) and the same torch, diffusers and transformers
(major.minor) as this process has: otherwise tracing answers. ``I2V_SHIPPED_TRACES=0`` turns it off.
It also holds each published model's description (completed configs and parameter counts) and its
components' offload groups, which otherwise need the model built on the meta device.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import itertools
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

TABLE_PATH = Path(__file__).with_name("shipped_traces.json")
TRACER_PATH = Path(__file__).with_name("trace.py")
FORMAT = 1
LIBRARIES = ("torch", "diffusers", "transformers")
ROW_POINTS = (1, 2, 4)  # batch rows of one denoiser call on the grid
SIDE_POINTS = (256, 512, 1024, 2048)  # pixels, beside the family's smallest size


def enabled() -> bool:
    return os.environ.get("I2V_SHIPPED_TRACES", "1").strip().lower() not in ("0", "off", "false", "no")


def source_hash(path: str | Path) -> str:
    """A short hash of a source file: what a trace's code was when its figures were made."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# Lists whose order means nothing: diffusers writes the config keys it filled with defaults from a set,
# so their order changes from one process to the next (hash randomisation).
UNORDERED = ("_use_default_values",)


@functools.lru_cache(maxsize=256)
def config_hash(config_json: str) -> str:
    """A short hash of configs (canonical JSON), the same in every process."""
    return text_hash(json.dumps(_canonical(json.loads(config_json)), sort_keys=True))


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: sorted(map(str, item)) if key in UNORDERED and isinstance(item, list)
                else _canonical(item) for key, item in value.items()}
    return [_canonical(item) for item in value] if isinstance(value, list) else value


@functools.lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    """major.minor of the libraries whose code a trace runs (read from their metadata, not imported)."""
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = ".".join(importlib.metadata.version(name).split("+")[0].split(".")[:2])
        except importlib.metadata.PackageNotFoundError:
            found[name] = ""
    return found


@functools.lru_cache(maxsize=1)
def tracer_hash() -> str:
    return source_hash(TRACER_PATH)


def read(path: Path | None = None) -> dict[str, Any]:
    """The table as stored (empty when there is none), whatever made it."""
    path = path or TABLE_PATH
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def current(table: Mapping[str, Any]) -> bool:
    """Whether ``table`` was made by this tracer and format with these libraries' versions."""
    return (table.get("format") == FORMAT and table.get("tracer") == tracer_hash()
            and table.get("libraries") == library_versions())


@functools.lru_cache(maxsize=1)
def _load() -> dict[str, Any]:
    """The table in use: empty when it is off, missing, stale or made with other libraries."""
    table = read() if enabled() else {}
    return table if current(table) else {}


def reload() -> None:
    """Read the table again (after ``I2V_SHIPPED_TRACES`` or the file changed)."""
    _load.cache_clear()


# --- the grid --------------------------------------------------------------------------------------


def frame_points(min_frames: int, max_frames: int, frame_step: int,
                 between: Sequence[int] = (4, 16)) -> list[int]:
    """Frame counts on the grid: on the frame rule, the two smallest (where the fixed parts of a
    forward weigh most), ``between`` (steps of the rule) and the largest the model takes."""
    step = max(frame_step, 1)
    low, high = (min_frames - 1) // step, (max_frames - 1) // step
    ks = {low, low + 1, high, *(k for k in between if low < k < high)}
    return sorted(k * step + 1 for k in ks if low <= k <= high)


def side_points(size_multiple: int) -> list[int]:
    """Heights and widths on the grid: the smallest the model takes, then doubling to 2048."""
    return sorted({size_multiple, *(p // size_multiple * size_multiple for p in SIDE_POINTS)})


Axes = Mapping[str, Sequence[int]] | Sequence[tuple[str, Sequence[int]]]


def axes_of(axes: Axes) -> dict[str, Sequence[int]]:
    """A grid's axes in their order (the table stores them as [name, points] pairs: JSON objects with
    sorted keys would lose the order the values are stored in)."""
    return dict(axes)


def grid(axes: Axes) -> list[dict[str, int]]:
    """Every point of the grid, in the order the table stores their values (the last axis fastest)."""
    axes = axes_of(axes)
    names = list(axes)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*(axes[n] for n in names))]


def interpolate(phase: Mapping[str, Any], point: Mapping[str, int]) -> int | None:
    """A phase's peak at ``point``: exact on the grid (and at its listed exact points), else an upper
    bound from its cell's corners; None beyond the grid."""
    exact = phase.get("exact", {}).get(point_key(point))
    if exact is not None:
        return exact
    axes = axes_of(phase["axes"])
    cells = []
    for name, points in axes.items():
        value = max(point[name], points[0])  # below the first point: the first point's peak bounds it
        if value > points[-1]:
            return None
        upper = next(i for i, p in enumerate(points) if p >= value)
        if points[upper] == value:
            cells.append(((upper, 1.0),))
        else:
            t = (value - points[upper - 1]) / (points[upper] - points[upper - 1])
            cells.append(((upper - 1, 1.0 - t), (upper, t)))
    strides = _strides([len(points) for points in axes.values()])
    values = phase["values"]
    total, on_grid = 0.0, all(len(c) == 1 for c in cells)
    for corner in itertools.product(*cells):
        weight = math.prod(w for _, w in corner)
        total += weight * values[sum(i * s for (i, _), s in zip(corner, strides, strict=True))]
    return int(total) if on_grid else math.ceil(total * (1.0 + phase.get("margin", 0.0)))


def _strides(lengths: list[int]) -> list[int]:
    strides, step = [], 1
    for length in reversed(lengths):
        strides.append(step)
        step *= length
    return strides[::-1]


def point_key(point: Mapping[str, int]) -> str:
    return ",".join(f"{name}={point[name]}" for name in sorted(point))


# --- lookups ---------------------------------------------------------------------------------------


def config_key(family: str, variant: str, configs_json: str) -> str:
    return f"{family}|{variant}|{config_hash(configs_json)}"


def phase_key(phase: str, precision: str, kernels: str) -> str:
    """``phase``: denoiser, encoders, or vae-encode / vae-decode with -tiled when the VAE tiles."""
    return f"{phase}|{precision}|{kernels}"


def peak(family: str, variant: str, configs_json: str, family_code: str, phase: str, precision: str,
         kernels: str, point: Mapping[str, int]) -> int | None:
    """The shipped peak of one phase at ``point`` (axes: rows, frames, height, width as the phase
    has them), or None when the table does not have it."""
    entry = _load().get("traces", {}).get(config_key(family, variant, configs_json))
    if entry is None or entry.get("family_code") != family_code:
        return None
    found = entry["phases"].get(phase_key(phase, precision, kernels))
    return None if found is None else interpolate(found, point)


def description(family: str, hub_id: str, published: Mapping[str, Any]) -> tuple[dict, tuple] | None:
    """A published model's completed configs and parameter counts, as the meta-built components give
    them, for these published configs (None when the table does not have them)."""
    found = _load().get("descriptions", {}).get(f"{family}|{hub_id}")
    if found is None or found["published"] != config_hash(json.dumps(published, sort_keys=True)):
        return None
    return found["configs"], tuple((role, count) for role, count in found["params"])


def part_sizes(family: str, component: str, config_json: str) -> tuple[int, int] | None:
    """A component's largest offload group and largest layer (parameters), or None."""
    found = _load().get("parts", {}).get(f"{family}|{component}|{config_hash(config_json)}")
    return None if found is None else (found[0], found[1])
