"""The shipped table of traced peaks and the disk cache of traces (``plan`` answers without tracing).

- the table is current (tracer, format, family code) and, on a sample of cheap phases, equal to a fresh
  trace at its grid points and no smaller between them;
- its interpolation never falls below a maximum of multilinear functions (what a forward's live
  total is) and is exact on the grid;
- ``plan`` of a published model reads it: no trace, no diffusers or transformers imported;
- a model it does not have is traced once, then read from the disk cache (a hit after a miss; a
  change to the tracer's code misses); the cache's files are replaced atomically under a lock.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import subprocess
import sys
from multiprocessing import get_context
from pathlib import Path

import pytest

from i2v_nodes.families.contract import jobs
from i2v_nodes.runtime import memory
from i2v_nodes.runtime.loading import models
from i2v_nodes.runtime.memory import guard, peaks, planner, trace_cache, trace_table

REPO = Path(__file__).resolve().parents[1]
A14B = "Wan-AI/Wan2.2-I2V-A14B-Diffusers"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private, empty disk cache, and nothing remembered by this process."""
    monkeypatch.setenv("I2V_TRACE_CACHE", str(tmp_path / "traces"))
    peaks.forget()
    yield tmp_path / "traces"
    peaks.forget()


@pytest.fixture
def no_table(monkeypatch):
    monkeypatch.setenv("I2V_SHIPPED_TRACES", "0")
    peaks.forget()
    yield
    monkeypatch.delenv("I2V_SHIPPED_TRACES")
    peaks.forget()


def count_traces(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = jobs.Trace.peak_bytes

    def counted(self, *args, **kwargs):
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(jobs.Trace, "peak_bytes", counted)
    return calls


# --- the table -------------------------------------------------------------------------------------


def test_the_shipped_table_is_current():
    table = trace_table.read()
    assert table, "no shipped table: run python tools/build_traces.py"
    assert table["format"] == trace_table.FORMAT and table["tracer"] == trace_table.tracer_hash(), (
        "the tracer changed since the table was built: run python tools/build_traces.py")
    if table["libraries"] != trace_table.library_versions():
        pytest.skip(f"table built with {table['libraries']}, here {trace_table.library_versions()}")
    for hub_id in ("Wan-AI/Wan2.2-I2V-A14B-Diffusers", "Lightricks/LTX-2", "Lightricks/LTX-Video",
                   "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers", "stabilityai/stable-video-diffusion-img2vid-xt"):
        h = models.handle_for_planning(hub_id, [])
        entry = table["traces"][trace_table.config_key(h.family.name, h.variant, h.configs_json)]
        assert entry["family_code"] == peaks.family_code(h.family), (
            f"{h.family.name}'s traces changed since the table was built: run python tools/build_traces.py")


# phases cheap to trace: (hub id, phase)
SAMPLED = [(A14B, "denoiser"), ("Lightricks/LTX-Video", "denoiser"), ("Lightricks/LTX-Video", "vae-decode"),
           ("stabilityai/stable-video-diffusion-img2vid-xt", "vae-decode"), (A14B, "encoders")]


@pytest.mark.parametrize(("hub_id", "phase"), SAMPLED)
def test_the_table_equals_tracing_on_its_grid_and_bounds_it_between(hub_id, phase, cache, no_table):
    table = trace_table.read()
    if not trace_table.current(table):
        pytest.skip("the table is stale or made with other libraries (see test_the_shipped_table_is_current)")
    h = models.handle_for_planning(hub_id, [])
    precision = h.vae_precision if phase.startswith("vae") else h.precision
    entry = table["traces"][trace_table.config_key(h.family.name, h.variant, h.configs_json)]["phases"][
        trace_table.phase_key(phase, precision, "cuda")]
    rng = random.Random(phase)
    points = trace_table.grid(entry["axes"])
    rules = h.rules
    step, side = rules.frame_step, rules.size_multiple
    off = [{"rows": rng.choice((1, 2, 3)), "frames": rng.randint(0, 40) * step + rules.min_frames,
            "height": rng.randint(4, 2048 // side) * side, "width": rng.randint(4, 2048 // side) * side}
           for _ in range(3)]
    for point in [*rng.sample(points, min(3, len(points))), *off]:
        point = {name: point[name] for name in trace_table.axes_of(entry["axes"])}
        fresh = _trace(h, phase, point)
        shipped = trace_table.interpolate(entry, point)
        if point in points:
            assert shipped == fresh, point
        else:
            assert fresh <= shipped <= fresh * 1.25, (point, fresh, shipped)


def test_a_tiled_vae_between_grid_points_is_no_smaller_than_its_trace(cache, no_table):
    """Each row of tiles more steps a tiled VAE's peak up: where the interpolation is lowest against
    the staircase (just above a step, off the grid in both sides), the margin still covers it."""
    table = trace_table.read()
    if not trace_table.current(table):
        pytest.skip("the table is stale or made with other libraries")
    h = models.handle_for_planning(A14B, [])
    entry = table["traces"][trace_table.config_key(h.family.name, h.variant, h.configs_json)]["phases"][
        trace_table.phase_key("vae-decode-tiled", h.vae_precision, "cuda")]
    for height in (448, 640, 832):  # each just above a step of Wan's tiles (192 pixels apart)
        point = {"frames": 9, "height": height, "width": 832}
        assert trace_table.interpolate(entry, point) >= _trace(h, "vae-decode-tiled", point), point


def _trace(h, phase: str, point: dict[str, int]) -> int:
    if phase == "encoders":
        return peaks.encoders(h.family, h.variant, h.configs_json, h.precision, "cuda")
    if phase == "denoiser":
        return peaks.denoiser(h.family, h.variant, h.configs_json, h.precision, point["rows"],
                              point["frames"], point["height"], point["width"], "cuda")
    return peaks.vae(h.family, h.variant, h.configs_json, h.vae_precision, phase.split("-")[1],
                     point["frames"], point["height"], point["width"], phase.endswith("tiled"), "cuda")


def test_interpolation_bounds_any_maximum_of_multilinear_functions_and_is_exact_on_the_grid():
    """A forward's live total at each of its points is multilinear in the latent dimensions with
    non-negative coefficients; its peak is their maximum. The interpolation of the grid's values is
    never below it, and equal to it at the grid's points."""
    rng = random.Random(7)
    names = ("rows", "frames", "height", "width")
    pieces = [{subset: rng.random() * (1e3 if subset else 1e7) for subset in _subsets(names)
               if rng.random() < 0.6} for _ in range(12)]

    def peak(point):
        return int(max(sum(c * _product(point, s) for s, c in piece.items()) for piece in pieces))

    axes = {"rows": [1, 2, 4], "frames": [1, 5, 9, 33, 81], "height": [16, 128, 512, 2048],
            "width": [16, 256, 1024, 2048]}
    entry = {"axes": list(axes.items()), "values": [peak(p) for p in trace_table.grid(axes)], "margin": 0.0}
    entry = json.loads(json.dumps(entry, sort_keys=True))  # as the table stores it
    for point in trace_table.grid(axes):
        assert trace_table.interpolate(entry, point) == peak(point)
    for _ in range(2000):
        point = {"rows": rng.randint(1, 4), "frames": rng.randint(1, 81), "height": rng.randint(1, 128) * 16,
                 "width": rng.randint(1, 128) * 16}
        assert trace_table.interpolate(entry, point) >= peak(point) - 1, point  # 1: rounding down at a corner
    assert trace_table.interpolate(entry, {**point, "width": 2064}) is None  # beyond the grid


def _subsets(names):
    return [s for n in range(len(names) + 1) for s in itertools.combinations(names, n)]


def _product(point, subset):
    out = 1
    for name in subset:
        out *= point[name]
    return out


# --- plan reads it ---------------------------------------------------------------------------------


def test_plan_of_a_published_model_traces_nothing_and_imports_no_diffusers(tmp_path):
    if not trace_table.current(trace_table.read()):
        pytest.skip("the table is stale or made with other libraries")
    child = ("import sys, io, contextlib\nfrom i2v_nodes import cli\n"
             "with contextlib.redirect_stdout(io.StringIO()):\n"
             f"    code = cli.main(['plan', {A14B!r}, '--width', '832', '--height', '480', '--frames', '81',"
             " '--vram', '8', '--ram', '16'])\n"
             "print(code, sorted({m.split('.')[0] for m in sys.modules} & {'diffusers', 'transformers'}))\n")
    env = {**os.environ, "I2V_TRACE_CACHE": str(tmp_path / "empty"), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, env=env, cwd=REPO,
                          check=True)
    assert done.stdout.split()[-1] == "[]", done.stdout
    assert not (tmp_path / "empty").exists()  # nothing traced, so nothing written


def test_the_guard_and_the_planner_give_the_same_figures_from_the_table(cache, monkeypatch):
    calls = count_traces(monkeypatch)
    handle = models.handle_for_planning(A14B, [], device="cuda")
    shape = memory.RunShape(1280, 720, 81)
    machine = planner.Machine(24, 64)
    answer = planner.answer(handle, shape, machine, search=False)
    plan = guard.plan_run(handle, shape, "off", machine.budget())
    assert plan.estimate.peak == answer.asked.device_peak
    assert plan.ram.peak == answer.asked.ram_peak
    if trace_table.current(trace_table.read()):
        assert not calls


# --- the disk cache --------------------------------------------------------------------------------


def test_a_model_not_in_the_table_is_traced_once_then_read_from_disk(cache, monkeypatch, model_dirs):
    calls = count_traces(monkeypatch)
    handle = models.handle_for_planning("tiny-wan2.1-i2v", model_dirs, device="cpu")
    shape = memory.RunShape(64, 64, 5)
    first = memory.estimate_phases(handle, shape, memory.default_options(handle, shape))
    assert calls and list(cache.glob("*.json"))
    traced = len(calls)
    peaks.forget()  # a new process: nothing remembered in memory
    again = memory.estimate_phases(handle, shape, memory.default_options(handle, shape))
    assert again == first and len(calls) == traced  # a hit: read from disk, nothing traced
    peaks.forget()
    monkeypatch.setattr(trace_table, "tracer_hash", lambda: "another tracer")
    memory.estimate_phases(handle, shape, memory.default_options(handle, shape))
    assert len(calls) > traced  # the tracer changed: a miss, traced again


def test_the_cache_can_be_turned_off(monkeypatch, tmp_path):
    monkeypatch.setenv("I2V_TRACE_CACHE", "off")
    trace_cache.forget()
    assert trace_cache.folder() is None
    assert trace_cache.remembered("x", "k", lambda: 5) == 5
    trace_cache.write("x", {"k": 5})  # nothing to write to, nothing raised
    trace_cache.forget()


def _writer(folder: str, worker: int) -> None:
    os.environ["I2V_TRACE_CACHE"] = folder
    for i in range(25):
        trace_cache.write("shared", {f"{worker}-{i}": i})


def test_concurrent_writers_merge_under_the_lock_and_readers_never_see_half_a_file(tmp_path, monkeypatch):
    monkeypatch.setenv("I2V_TRACE_CACHE", str(tmp_path))
    with get_context("spawn").Pool(2) as pool:
        pool.starmap(_writer, [(str(tmp_path), w) for w in range(2)])
    figures = trace_cache.read("shared")
    assert figures == {f"{w}-{i}": i for w in range(2) for i in range(25)}
    assert not list(tmp_path.glob("*.tmp"))


def test_a_write_that_fails_leaves_the_old_file_whole(tmp_path, monkeypatch):
    monkeypatch.setenv("I2V_TRACE_CACHE", str(tmp_path))
    trace_cache.write("one", {"a": 1})
    before = (tmp_path / "one.json").read_text()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(json, "dump", broken)
    trace_cache.write("one", {"b": 2})  # logged and skipped
    assert (tmp_path / "one.json").read_text() == before
    assert not list(tmp_path.glob("*.tmp"))


def test_the_table_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("I2V_SHIPPED_TRACES", "0")
    trace_table.reload()
    try:
        h = models.handle_for_planning(A14B, [])
        code = peaks.family_code(h.family)
        found = trace_table.peak(h.family.name, h.variant, h.configs_json, code, "encoders", h.precision,
                                 "cuda", {})
        assert found is None
    finally:
        monkeypatch.delenv("I2V_SHIPPED_TRACES")
        trace_table.reload()
