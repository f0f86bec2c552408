"""Build the shipped table of traced peaks, ``i2v_nodes/runtime/memory/shipped_traces.json``, or check it.

    python tools/build_traces.py [--jobs N] [--resume]   # trace every published model's phases on the grid
    python tools/build_traces.py --check [--samples N] [--jobs N]   # trace again and compare

For every published model (each family's hub ids, planned for CUDA at the family's default precision
and an fp32 VAE, as ``plan`` does by default) it records the completed configs and parameter counts,
each component's offload groups, and each phase's traced peak at every point of the grid that
:mod:`i2v_nodes.runtime.memory.trace_table` defines (frames x height x width, and 1, 2, 4 batch rows
for the denoiser). It then traces shapes off the grid (seeded, ``--samples`` per phase) and stores, as
the phase's margin, how far the traced peak rose above the interpolation (plus 1%). Rebuild after a
change to the tracer, a family's traces or configs, or torch / diffusers / transformers: the table is
ignored (and ``tests/test_trace_table.py`` fails) until then.

``--check`` traces a sample of grid points (they must be equal) and of shapes off the grid (the table
must be no smaller) for every phase, and compares the descriptions: exit 1 on any difference.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import logging
import os
import random
import sys
import time
from multiprocessing import get_context
from pathlib import Path

os.environ["I2V_SHIPPED_TRACES"] = "0"  # trace, never read the table being built
os.environ["I2V_TRACE_CACHE"] = "off"  # nor an earlier answer on this machine
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from i2v_nodes.families import registry  # noqa: E402
from i2v_nodes.runtime.loading import models  # noqa: E402
from i2v_nodes.runtime.memory import peaks, trace_table, weights  # noqa: E402

log = logging.getLogger("build_traces")
KERNELS = "cuda"  # what plan asks by default
SPARE = 0.01  # added to a measured margin
# One more row or column of VAE tiles steps the peak up between grid points: Wan's decode at 9 frames,
# 832 wide, every 32 pixels of height from 256 to 1088, fell up to 0.65% below the interpolation
# (tests/test_trace_table.py traces that staircase); tiled phases are raised by at least this.
TILED_MARGIN = 0.03


@functools.cache
def handle(hub_id: str):
    return models.handle_for_planning(hub_id, [], device=KERNELS)


def phases(hub_id: str) -> list[str]:
    h = handle(hub_id)
    vae = [peaks.vae_phase(d, t) for d in ("encode", "decode")
           for t in ((False, True) if h.family.spec.vae_tiling else (False,))]
    return ["encoders", "denoiser", *vae]


def axes(hub_id: str, phase: str) -> dict[str, list[int]]:
    rules = handle(hub_id).rules
    if phase == "encoders":
        return {}
    sides = trace_table.side_points(rules.size_multiple)
    between = (4, 16)  # a tiled VAE's peak is far from affine in frames: 9 to 241 alone was 42% high at 81
    frames = trace_table.frame_points(rules.min_frames, rules.max_frames, rules.frame_step, between)
    found = {"frames": frames, "height": sides, "width": sides}
    return {"rows": list(trace_table.ROW_POINTS), **found} if phase == "denoiser" else found


def traced(hub_id: str, phase: str, point: dict[str, int]) -> int:
    h = handle(hub_id)
    if phase == "encoders":
        return peaks.encoders(h.family, h.variant, h.configs_json, h.precision, KERNELS)
    if phase == "denoiser":
        return peaks.denoiser(h.family, h.variant, h.configs_json, h.precision, point["rows"],
                              point["frames"], point["height"], point["width"], KERNELS)
    direction, tiling = phase.split("-")[1], phase.endswith("-tiled")
    return peaks.vae(h.family, h.variant, h.configs_json, h.vae_precision, direction, point["frames"],
                     point["height"], point["width"], tiling, KERNELS)


def off_grid(hub_id: str, phase: str, samples: int, seed: str) -> list[dict[str, int]]:
    """Seeded shapes between the grid's points, within it."""
    rules, grid_axes = handle(hub_id).rules, axes(hub_id, phase)
    if not grid_axes:
        return []
    rng = random.Random(f"{hub_id}|{phase}|{seed}")
    step = rules.frame_step
    found = []
    while len(found) < samples:
        point = {"rows": rng.randint(1, trace_table.ROW_POINTS[-1]),
                 "frames": rng.randint(0, (rules.max_frames - 1) // step) * step + 1,
                 "height": rng.randint(1, 2048 // rules.size_multiple) * rules.size_multiple,
                 "width": rng.randint(1, 2048 // rules.size_multiple) * rules.size_multiple}
        point = {name: point[name] for name in grid_axes}
        if point["frames"] >= rules.min_frames and any(point[n] not in grid_axes[n] for n in grid_axes):
            found.append(point)
    return found


def build_phase(job: tuple[str, str, int]) -> tuple[str, str, dict]:
    """One phase of one model: its grid traced, then its margin measured off the grid."""
    hub_id, phase, samples = job
    samples = samples if "tiled" not in phase else max(3, samples // 2)  # a tiled trace takes up to a minute
    started = time.perf_counter()
    log.info("%s %s: tracing", hub_id, phase)
    grid_axes = axes(hub_id, phase)
    entry = {"axes": list(grid_axes.items()),  # pairs: the order the values are stored in
             "values": [traced(hub_id, phase, p) for p in trace_table.grid(grid_axes)]}
    worst = 0.0
    for point in off_grid(hub_id, phase, samples, "build"):
        bound = trace_table.interpolate({**entry, "margin": 0.0}, point)
        worst = max(worst, traced(hub_id, phase, point) / bound - 1.0)
    # where the interpolation held at every shape off the grid (a multilinear peak: it cannot fall
    # below), no margin; else what it fell short by, and SPARE more
    entry["margin"] = round(worst + SPARE, 4) if worst > 0 else 0.0
    if phase.endswith("-tiled"):
        entry["margin"] = max(entry["margin"], TILED_MARGIN)
    log.info("%s %s: %d points, margin %.4f, %.0f s", hub_id, phase, len(entry["values"]), entry["margin"],
             time.perf_counter() - started)
    return hub_id, phase, entry


def describe(hub_id: str) -> tuple[str, dict, dict]:
    h = handle(hub_id)
    family = h.family
    published = json.dumps(family.published_configs(hub_id), sort_keys=True)
    described = {"published": trace_table.config_hash(published),
                 "configs": h.configs, "params": [list(p) for p in h.params]}
    parts = {}
    for role in family.roles(h.variant).weighted:
        config = json.dumps(h.configs.get(role, {}), sort_keys=True)
        parts[f"{family.name}|{role}|{trace_table.config_hash(config)}"] = list(
            weights.measure_parts(family, role, config))
    return f"{family.name}|{hub_id}", described, parts


def config_keys() -> set[str]:
    found = set()
    for hub_id in distinct_models():
        h = handle(hub_id)
        found.add(trace_table.config_key(h.family.name, h.variant, h.configs_json))
    return found


def distinct_models() -> list[str]:
    """One hub id per distinct configuration (several ids publish the same one)."""
    seen: dict[str, str] = {}
    for hub_id in sorted(registry.known_hub_ids()):
        h = handle(hub_id)
        seen.setdefault(trace_table.config_key(h.family.name, h.variant, h.configs_json), hub_id)
    return sorted(seen.values())


def build(jobs: int, samples: int, resume: bool) -> None:
    """Build the table, written after each phase (``resume``: keep the phases a current table has)."""
    table = {"format": trace_table.FORMAT, "tracer": trace_table.tracer_hash(),
             "libraries": trace_table.library_versions(), "kernels": KERNELS, "descriptions": {}, "parts": {},
             "traces": {}}
    old = trace_table.read(OUT[0])
    if resume and trace_table.current(old):
        table["traces"] = old["traces"]
    for key, described, parts in map(describe, sorted(registry.known_hub_ids())):
        table["descriptions"][key] = described
        table["parts"].update(parts)
    work = [(hub, phase, samples) for hub in distinct_models() for phase in phases(hub)
            if not built(table, hub, phase) and selected(hub, phase)]
    work.sort(key=lambda job: "tiled" in job[1])  # the quick ones first
    log.info("%d phases to trace", len(work))
    save(table)
    with get_context("spawn").Pool(jobs, initializer=_logging) as pool:
        for done, (hub_id, phase, entry) in enumerate(pool.imap_unordered(build_phase, work), 1):
            h = handle(hub_id)
            key = trace_table.config_key(h.family.name, h.variant, h.configs_json)
            new = {"family_code": peaks.family_code(h.family), "model": hub_id, "phases": {}}
            table["traces"].setdefault(key, new)["phases"][phase_key(h, phase)] = entry
            save(table)
            log.info("%d/%d done: %s %s", done, len(work), hub_id, phase)


def record_asked(configs: set[str]) -> dict[str, dict[str, dict[str, int]]]:
    """Trace every shape the tier workflows, their Notes and the README's tier chart ask of these
    configurations (config key -> phase key -> point -> bytes): the table holds them as exact points,
    so those figures are the traced ones, never an interpolation."""
    asked: dict[str, dict[str, dict[str, int]]] = {}
    real = peaks._peak

    def recording(family, variant, configs_json, phase, precision, kernels, point, trace):
        value = real(family, variant, configs_json, phase, precision, kernels, point, trace)
        key = trace_table.config_key(family.name, variant, configs_json)
        if key in configs and point:
            name = trace_table.phase_key(phase, precision, kernels)
            asked.setdefault(key, {}).setdefault(name, {})[trace_table.point_key(point)] = value
        return value

    peaks._peak = recording
    try:
        for script, call in ((REPO / "workflows" / "build.py", "build"),
                             (REPO / "docs" / "pictures" / "tier_chart.py", "chart_svg")):
            spec = importlib.util.spec_from_file_location(f"_asked_{script.stem}", script)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module  # dataclasses look their module up there
            spec.loader.exec_module(module)
            getattr(module, call)()
            log.info("recorded what %s asks", script.relative_to(REPO))
    finally:
        peaks._peak = real
    return asked


def add_exact(table: dict, asked: dict[str, dict[str, dict[str, int]]]) -> int:
    """Put the recorded points into the table's phases, where they differ from the grid's answer."""
    added = 0
    for key, phases in asked.items():
        for name, points in phases.items():
            entry = table["traces"].get(key, {}).get("phases", {}).get(name)
            if entry is None:
                continue
            plain = {k: v for k, v in entry.items() if k != "exact"}
            for point, value in points.items():
                shape = {part.split("=")[0]: int(part.split("=")[1]) for part in point.split(",")}
                if trace_table.interpolate(plain, shape) != value:
                    entry.setdefault("exact", {})[point] = value
                    added += 1
    return added


def phase_key(h, phase: str) -> str:
    return trace_table.phase_key(phase, h.vae_precision if phase.startswith("vae") else h.precision, KERNELS)


def built(table: dict, hub_id: str, phase: str) -> bool:
    h = handle(hub_id)
    slot = table["traces"].get(trace_table.config_key(h.family.name, h.variant, h.configs_json), {})
    return slot.get("family_code") == peaks.family_code(h.family) and phase_key(h, phase) in slot["phases"]


ONLY: dict[str, list[str]] = {"models": [], "phases": []}  # --models / --phases: a part of the work


def selected(hub_id: str, phase: str) -> bool:
    return ((not ONLY["models"] or hub_id in ONLY["models"])
            and (not ONLY["phases"] or phase in ONLY["phases"]))


OUT = [trace_table.TABLE_PATH]  # --out


def save(table: dict) -> None:
    path = OUT[0]
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(table, sort_keys=True, separators=(",", ":")) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def check_phase(job: tuple[str, str, int]) -> list[str]:
    """Differences between the table and fresh traces for one phase of one model."""
    hub_id, phase, samples = job
    h = handle(hub_id)
    precision = h.vae_precision if phase.startswith("vae") else h.precision
    key = trace_table.config_key(h.family.name, h.variant, h.configs_json)
    slot = trace_table.read()["traces"].get(key, {})
    entry = slot.get("phases", {}).get(trace_table.phase_key(phase, precision, KERNELS))
    if entry is None or slot.get("family_code") != peaks.family_code(h.family):
        return [f"{hub_id} {phase}: not in the table, or made by other family code"]
    rng = random.Random(f"{hub_id}|{phase}|check")
    on_grid = trace_table.grid(axes(hub_id, phase))
    problems, above = [], []
    for point in rng.sample(on_grid, min(samples, len(on_grid))) + off_grid(hub_id, phase, samples, "check"):
        table, fresh = trace_table.interpolate(entry, point), traced(hub_id, phase, point)
        if table is None or (table != fresh if point in on_grid else table < fresh):
            problems.append(f"{hub_id} {phase} {point}: table {table}, traced {fresh}")
        elif point not in on_grid:
            above.append(table / max(fresh, 1) - 1)
    log.info("%s %s checked: %d problem(s); off the grid the table is above the trace by %s", hub_id, phase,
             len(problems), f"{min(above):.2%} to {max(above):.2%}" if above else "-")
    return problems


def check(jobs: int, samples: int) -> int:
    table = trace_table.read()
    if not trace_table.current(table):
        print("the shipped table is missing or stale (tracer, format or libraries differ): rebuild it")
        return 1
    problems = []
    for key, described, parts in map(describe, sorted(registry.known_hub_ids())):
        if table["descriptions"].get(key) != json.loads(json.dumps(described)):
            problems.append(f"{key}: description differs")
        problems += [f"{name}: parts differ" for name, value in parts.items()
                     if table["parts"].get(name) != value]
    work = [(hub, phase, samples) for hub in distinct_models() for phase in phases(hub)]
    with get_context("spawn").Pool(jobs, initializer=_logging) as pool:
        for found in pool.imap_unordered(check_phase, work):
            problems += found
    print("\n".join(problems) or f"the shipped table matches tracing ({len(work)} phases checked)")
    return 1 if problems else 0


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="trace a sample again and compare")
    parser.add_argument("--resume", action="store_true", help="keep the phases the current table has")
    parser.add_argument("--models", nargs="*", default=[], help="only these hub ids (a part of the build)")
    parser.add_argument("--phases", nargs="*", default=[], help="only these phases (e.g. vae-decode-tiled)")
    parser.add_argument("--out", type=Path, default=trace_table.TABLE_PATH, help="where to write the table")
    parser.add_argument("--record-only", type=Path, metavar="FILE", help="only trace what the tiers ask, "
                        "into FILE (to run beside a build)")
    parser.add_argument("--exact-from", type=Path, metavar="FILE", help="put FILE's recorded points into the "
                        "current table as exact points (no grid built)")
    parser.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument("--samples", type=int, default=6, help="shapes off the grid per phase (and grid "
                        "points per phase with --check)")
    args = parser.parse_args()
    _logging()
    ONLY.update(models=args.models, phases=args.phases)
    OUT[0] = args.out
    if args.check:
        return check(args.jobs, args.samples)
    if args.record_only:
        asked = record_asked(config_keys())
        args.record_only.write_text(json.dumps(asked, sort_keys=True), encoding="utf-8")
        return 0
    if args.exact_from:
        asked = json.loads(args.exact_from.read_text(encoding="utf-8"))
    else:
        build(args.jobs, args.samples, args.resume)
        if ONLY["models"] or ONLY["phases"]:
            return 0  # a part: merged into the whole by hand
        asked = record_asked(config_keys())
    table = trace_table.read(OUT[0])
    added = add_exact(table, asked)
    save(table)
    log.info("%d exact points from the tier workflows, their Notes and the tier chart", added)
    print(f"wrote {OUT[0]} ({OUT[0].stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
