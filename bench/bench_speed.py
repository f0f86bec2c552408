"""Speed levers (I2VSpeedOptions) and LoRA switching (I2VLoRA) on a mid-size Wan 2.1 I2V, on the CPU.

The model is a random-weight Wan 2.1 image-to-video pipeline, built once and saved as a local
diffusers folder (safetensors) under the benchmark models folder: the transformer has the width of
Wan 2.1 1.3B (dim 1536, 12 heads of 128, ffn 8960, image cross-attention, the published condition
embedders), cut to ``--layers`` blocks (every block is the same work, so per-call ratios hold for
the full 30). The text encoder (UMT5, 4096 wide, 2 layers), the image encoder (CLIP vision, 1280
wide, 2 layers, 224 px: 257 image tokens) and the VAE (Wan's, base width 16) are small but real:
they are not what is measured. Nothing is downloaded.

Measured, each side by side in one process, with the same seed and noise:
- every lever and some combinations against the same run without them: transformer calls and block
  computes per clip (a forward pre-hook on each block's ``attn1.to_q``; block computes / blocks =
  equivalent full calls), denoise, wall and CPU seconds per clip (medians of interleaved repeats; the
  CPU seconds of this process are the steadier figure on a shared machine), and the PSNR of the
  decoded frames against the lever-off frames. The weights are random, so the PSNR is a numerical
  check of how far a lever moves the output, not a quality claim. The lever-off run also records
  First Block Cache's own measure (the first block's residual change from step to step), which says
  why its default threshold does or does not skip on these weights;
- MagCache's calibration run (it computes every step) apart from its later runs;
- LoRA switching (the run's ``lora`` phase: add, switch, strength change, removal; LoRA files in the
  OS page cache, and read from disk) against a cold load of the base model into a fresh model cache,
  from the page cache and from disk (the model's files evicted from the page cache with
  ``posix_fadvise``, this folder's files only). Target: under 5%;
- compile="blocks" with inductor (a fresh inductor cache folder, so nothing is compiled already):
  the first compiled run's extra cost and the warm speed-up.

    python bench/bench_speed.py [--layers 10] [--size 256x256x17] [--steps 10] [--repeats 2]
                                [--lora-rank 64] [--compile-steps 2] [--skip-levers] [--skip-compile]
                                [--skip-lora] [--probe]

``--probe`` builds the model and times one transformer call only (to pick ``--layers``). The tables
are printed as Markdown and written to bench/results/<date>-speed-cpu.md (and .json). One torch
thread, precision "auto" (bf16 on CPUs with AVX512-BF16/AMX, fp32 elsewhere; VAE fp32).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import gc
import json
import logging
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import pin_one_thread, still_image, use_bench_models_dir  # noqa: E402

HERE = Path(__file__).resolve().parent
WAN21_HUB = "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers"
PROMPT, NEGATIVE = "waves rolling onto the beach", "blurry, static"
GUIDANCE = 5.0
# small but real components around the measured transformer (their output widths are the published ones)
TEXT_ENCODER = {"d_model": 4096, "d_kv": 64, "d_ff": 256, "num_layers": 2, "num_heads": 2,
                "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128,
                "feed_forward_proj": "gated-gelu", "dropout_rate": 0.0}
IMAGE_ENCODER = {"hidden_size": 1280, "intermediate_size": 512, "num_hidden_layers": 2,
                 "num_attention_heads": 4, "image_size": 224, "patch_size": 14, "projection_dim": 256}
VAE = {"base_dim": 16, "z_dim": 16, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 2,
       "temperal_downsample": [False, True, True]}
# (label, I2VSpeedOptions settings, I2VSample overrides); "off" first: the baseline of every ratio
LEVERS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("off", {}, {}),
    ("guidance_until 0.5", {"guidance_until": 0.5}, {}),
    ("first_block", {"step_cache": "first_block"}, {}),
    ("first_block, threshold 0.1", {"step_cache": "first_block", "cache_threshold": 0.1}, {}),
    ("taylorseer", {"step_cache": "taylorseer"}, {}),
    ("magcache (calibrated)", {"step_cache": "magcache"}, {}),
    ("guidance_until 0.5 + first_block", {"guidance_until": 0.5, "step_cache": "first_block"}, {}),
    ("taylorseer + guidance_until 0.5", {"guidance_until": 0.5, "step_cache": "taylorseer"}, {}),
    ("4 steps, guidance 1 (what a step-distill LoRA allows)", {}, {"steps": 4, "guidance_scale": 1.0}),
]
NO_PSNR = ("4 steps",)  # a different schedule: its output is not comparable (random weights)
# what the LoRAs cover in every block: all linear layers of both attentions and the feed-forward
LORA_LAYERS = ("attn1.", "attn2.", "ffn.")
LORA_SIZE = (64, 64, 5)  # the LoRA and load runs' size (width, height, frames): the phases timed do not
# depend on it, so the run around them is one step of a tiny latent


def model_configs(layers: int) -> dict[str, Any]:
    from i2v_nodes.families.wan.configs import PUBLISHED

    published = PUBLISHED[WAN21_HUB]
    return {
        # Wan 2.1 1.3B's width with Wan 2.1 I2V's image cross-attention (as bench/comfy_core_files.py)
        "transformer": {**published["transformer"], "num_attention_heads": 12, "ffn_dim": 8960,
                        "num_layers": layers, "added_kv_proj_dim": 1536},
        "vae": VAE,
        "text_encoder": TEXT_ENCODER,
        "image_encoder": IMAGE_ENCODER,
        "image_processor": published["image_processor"],
        "scheduler": published["scheduler"],
    }


def ensure_model(root: Path, layers: int) -> str:
    """The model folder's name under ``root``, built and saved there on first use."""
    from i2v_nodes.families.toolkit.tiny import ensure_built
    from i2v_nodes.families.wan.components import build

    name = f"bench-wan2.1-i2v-1.3b-width-{layers}-blocks"
    ensure_built(name, root, lambda: build(model_configs(layers)))
    return name


# --- one run ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class Run:
    wall: float  # seconds of the whole I2VSample call (the model cached)
    cpu: float  # CPU seconds of this process during it
    denoise: float
    calls: int  # transformer forward calls
    blocks: int  # blocks computed (each block's attn1.to_q ran)
    frames: Any
    notes: list[str]
    timings: dict[str, float]


@contextmanager
def counting(transformer: Any) -> Iterator[tuple[list[int], list[int]]]:
    from i2v_nodes.runtime.speed.block_compile import repeated_blocks

    calls: list[int] = []
    blocks: list[int] = []
    hooks = [transformer.register_forward_pre_hook(lambda *_: calls.append(1))]
    hooks += [b.attn1.to_q.register_forward_pre_hook(lambda *_: blocks.append(1))
              for b in repeated_blocks(transformer)]
    try:
        yield calls, blocks
    finally:
        for hook in hooks:
            hook.remove()


@contextmanager
def first_block_changes(transformer: Any) -> Iterator[list[float]]:
    """First Block Cache's measure in a run without caching: mean |residual - previous residual| /
    mean |previous residual| of the first block, per step, for the conditional calls (the even calls of
    a run with guidance on every step)."""
    from i2v_nodes.runtime.speed.block_compile import repeated_blocks

    head = repeated_blocks(transformer)[0]
    changes: list[float] = []
    state: dict[str, Any] = {"calls": 0, "input": None, "previous": None}

    def keep_input(_module: Any, args: tuple, kwargs: dict) -> None:
        state["input"] = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]

    def measure(_module: Any, _args: tuple, _kwargs: dict, output: Any) -> None:
        conditional, state["calls"] = state["calls"] % 2 == 0, state["calls"] + 1
        if not conditional:
            return
        residual = (output[0] if isinstance(output, tuple) else output).float() - state["input"].float()
        previous = state["previous"]
        if previous is not None:
            changes.append(((residual - previous).abs().mean() / previous.abs().mean()).item())
        state["previous"] = residual

    hooks = [head.register_forward_pre_hook(keep_input, with_kwargs=True),
             head.register_forward_hook(measure, with_kwargs=True)]
    try:
        yield changes
    finally:
        for hook in hooks:
            hook.remove()


def report_notes(report: str) -> list[str]:
    """What the levers said: the report's parts after its fixed "planned peak" part."""
    parts = report.split("; ")
    start = next((i for i, part in enumerate(parts) if part.startswith("planned peak")), len(parts))
    return parts[start + 1:]


def sample(handle: Any, image: Any, settings: Any, cache: Any, count: bool = True) -> Run:
    from i2v_nodes.runtime import sampling, services

    pipe = cache.peek(handle.cache_key).pipeline if count else None
    with counting(pipe.transformer) if count else _nothing() as counted:
        started, cpu = time.perf_counter(), time.process_time()
        result = sampling.sample(handle, image, settings, services.standalone(), cache=cache)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    calls, blocks = counted if count else ([], [])
    return Run(wall, cpu, result.timings.get("denoise", 0.0), len(calls), len(blocks), result.frames,
               report_notes(result.report), dict(result.timings))


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def with_speed(settings: Any, knobs: dict[str, Any], overrides: dict[str, Any] | None = None) -> Any:
    from i2v_nodes.runtime.options import SPEED, Options, OptionSet
    from i2v_nodes.runtime.speed.settings import SpeedSettings

    options = Options((OptionSet(SPEED, "I2VSpeedOptions", SpeedSettings(**knobs)),)) if knobs else None
    return dataclasses.replace(settings, options=options, **(overrides or {}))


def psnr(frames: Any, reference: Any) -> float:
    mse = ((frames.float() - reference.float()) ** 2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def median(values: list[float]) -> float:
    return statistics.median(values)


# --- the sections ----------------------------------------------------------------------------------


def levers(handle: Any, image: Any, base: Any, cache: Any, repeats: int, blocks: int) -> dict[str, Any]:
    """Every lever and combination, interleaved, against "off"; MagCache's calibration run apart."""
    calibration = sample(handle, image, with_speed(base, {"step_cache": "magcache"}), cache)
    print(f"  magcache calibration run: {calibration.wall:.1f} s, {calibration.calls} calls; "
          f"{'; '.join(calibration.notes)}", file=sys.stderr)
    runs: dict[str, list[Run]] = {label: [] for label, _, _ in LEVERS}
    again = None
    changes: list[float] = []
    transformer = cache.peek(handle.cache_key).pipeline.transformer
    for repeat in range(repeats):
        for label, knobs, overrides in LEVERS:
            diagnose = repeat == 0 and label == "off"
            with first_block_changes(transformer) if diagnose else _nothing() as measured:
                run = sample(handle, image, with_speed(base, knobs, overrides), cache)
            changes += measured or []
            if repeat == 1 and label == "off":
                again = run.frames  # the baseline run twice: the same frames (determinism)
            if repeat:
                run.frames = None  # the first repeat's frames are the ones compared
            runs[label].append(run)
            print(f"  [{repeat + 1}/{repeats}] {label}: {run.wall:.1f} s ({run.cpu:.1f} s CPU), "
                  f"{run.calls} calls, {run.blocks / blocks:g} full-call equivalents", file=sys.stderr)
    off = runs["off"][0].frames
    rows = [_lever_row("magcache calibration run (first magcache run)", [calibration], off, blocks)]
    rows += [_lever_row(label, runs[label], off, blocks) for label, _, _ in LEVERS]
    rows.insert(5, rows.pop(0))  # the calibration run just before its calibrated runs
    baseline = next(row for row in rows if row["run"] == "off")
    for row in rows:
        row["wall_vs_off"] = row["wall_s"] / baseline["wall_s"]
        row["cpu_vs_off"] = row["cpu_s"] / baseline["cpu_s"]
        row["denoise_vs_off"] = row["denoise_s"] / baseline["denoise_s"]
        if any(row["run"].startswith(prefix) for prefix in NO_PSNR):
            row["psnr_db"] = None
    # the "off" row: its second run against its first (identical when the CPU run is deterministic)
    baseline["psnr_db"] = psnr(again, off) if again is not None else None
    return {"rows": rows, "off_frames": {"mean": off.float().mean().item(), "std": off.float().std().item()},
            "first_block_changes": changes}


def _lever_row(label: str, runs: list[Run], off: Any, blocks: int) -> dict[str, Any]:
    first = runs[0]
    return {
        "run": label,
        "repeats": len(runs),
        "calls": first.calls,
        "calls_all": sorted({run.calls for run in runs}),
        "full_call_equivalents": first.blocks / blocks,
        "denoise_s": median([run.denoise for run in runs]),
        "wall_s": median([run.wall for run in runs]),
        "wall_all_s": [run.wall for run in runs],
        "cpu_s": median([run.cpu for run in runs]),
        "cpu_all_s": [run.cpu for run in runs],
        "psnr_db": psnr(first.frames, off),
        "notes": first.notes,
    }


def write_lora(path: Path, transformer: Any, rank: int, seed: int) -> Path:
    """A random LoRA over every attention and feed-forward linear layer of every block (diffusers keys,
    bf16 as released LoRAs are), written once."""
    import torch
    from safetensors.torch import save_file

    if path.is_file():
        return path
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, module in transformer.named_modules():
        if not (isinstance(module, torch.nn.Linear) and name.startswith("blocks.")
                and any(f".{part}" in name for part in LORA_LAYERS)):
            continue
        down = torch.randn(rank, module.in_features, generator=generator) / module.in_features ** 0.5
        up = torch.randn(module.out_features, rank, generator=generator) * 0.01
        tensors[f"transformer.{name}.lora_A.weight"] = down.to(torch.bfloat16)
        tensors[f"transformer.{name}.lora_B.weight"] = up.to(torch.bfloat16)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    save_file(tensors, str(partial))
    partial.rename(path)
    return path


def evict(paths: list[Path]) -> None:
    """Drop these files' pages from the OS page cache (the next read comes from disk); other files
    and other processes are untouched. A page something still maps stays."""
    import os

    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)  # nothing left to write back (a dirty page stays)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def small_run(base: Any) -> tuple[Any, Any]:
    """Settings and image of the LoRA and load runs: one step without guidance at LORA_SIZE."""
    width, height, frames = LORA_SIZE
    small = dataclasses.replace(base, width=width, height=height, num_frames=frames, steps=1,
                                guidance_scale=1.0, options=None)
    return small, still_image(height, width)


def cold_loads(handle: Any, base: Any, repeats: int) -> dict[str, list[float]]:
    """The load phase of a run with a fresh model cache, from disk (the model's files evicted from the
    page cache) and from the page cache. Run before anything else holds the model: a page that a loaded
    model still maps (safetensors maps its files) cannot be evicted."""
    from i2v_nodes.runtime.loading.cache import ModelCache

    small, image = small_run(base)
    files = [path for path in Path(handle.source).rglob("*") if path.is_file()]
    loads: dict[str, list[float]] = {"disk": [], "page_cache": []}
    for repeat in range(repeats + 1):  # the first load imports and warms; not counted
        for kind in loads:
            if kind == "disk":
                evict(files)
            fresh = ModelCache(lambda device: 2**40)
            seconds = sample(handle, image, small, fresh, count=False).timings["load"]
            fresh.unload()
            del fresh  # nothing left holding the pipeline: its files unmapped
            gc.collect()
            if repeat:
                loads[kind].append(seconds)
            note = "" if repeat else ", warm-up"
            print(f"  cold base load ({kind}{note}): {seconds:.2f} s", file=sys.stderr)
    return loads


def loras(handle: Any, base: Any, cache: Any, root: Path, rank: int, cycles: int,
          loads: dict[str, list[float]]) -> dict[str, Any]:
    """The ``lora`` phase of a run (the model cached) per kind of change, against cold base loads."""
    from i2v_nodes.runtime.loading import lora

    small, small_image = small_run(base)
    transformer = cache.peek(handle.cache_key).pipeline.transformer
    folder = root / "loras"
    files = [write_lora(folder / f"{handle.name}-rank{rank}-{seed}.safetensors", transformer, rank, seed)
             for seed in (1, 2)]
    a, b = (lora.LoraSpec(str(path), 1.0, "both", lora.check_file(path).identity) for path in files)
    half = dataclasses.replace(b, strength=0.5)
    steps = [  # (change, the handle's LoRAs after it, a LoRA file to evict from the page cache first)
        ("add A (none -> A)", (a,), None),
        ("switch A -> B", (b,), None),
        ("strength of B 1.0 -> 0.5", (half,), None),
        ("unchanged (B at 0.5 again)", (half,), None),
        ("switch B -> A, A's file read from disk", (a,), files[0]),
        ("remove A (-> none)", (), None),
    ]
    times: dict[str, list[float]] = {change: [] for change, _, _ in steps}
    sample(handle, small_image, small, cache, count=False)  # the small size warm, no LoRA
    for cycle in range(cycles):
        for change, specs, cold_file in steps:
            if cold_file is not None:
                evict([cold_file])
            result = sample(dataclasses.replace(handle, loras=specs), small_image, small, cache, count=False)
            times[change].append(result.timings["lora"])
            print(f"  [{cycle + 1}/{cycles}] {change}: {result.timings['lora']:.3f} s", file=sys.stderr)
    cold = {kind: median(values) for kind, values in loads.items()}
    rows = [{"change": change, "lora_s": median(values), "lora_all_s": values,
             "vs_cold_load_page_cache": median(values) / cold["page_cache"],
             "vs_cold_load_disk": median(values) / cold["disk"]} for change, values in times.items()]
    return {"cold_load_s": cold, "cold_load_all_s": loads, "rank": rank,
            "lora_file_mib": sum(path.stat().st_size for path in files) / len(files) / 2**20,
            "lora_layers": sum(key.endswith("lora_A.weight") for key in lora.check_file(files[0]).tensors),
            "cycles": cycles, "rows": rows, "target": "< 5% of a cold base load"}


def compile_blocks(handle: Any, image: Any, base: Any, cache: Any, steps: int,
                   repeats: int) -> dict[str, Any]:
    """compile="blocks" with inductor: the first compiled run against a warm uncompiled one, then both
    warm, interleaved."""
    import torch
    from torch._dynamo.utils import counters

    from i2v_nodes.runtime.speed import block_compile

    plain = with_speed(base, {}, {"steps": steps})
    compiled = with_speed(base, {"compile": "blocks"}, {"steps": steps})
    sample(handle, image, plain, cache, count=False)  # warm at this step count
    first = sample(handle, image, compiled, cache, count=False)
    print(f"  first compiled run: {first.wall:.1f} s; {'; '.join(first.notes)}", file=sys.stderr)
    runs: dict[str, list[Run]] = {"uncompiled": [], "compiled": []}
    for _ in range(repeats):
        for name, settings in (("uncompiled", plain), ("compiled", compiled)):
            runs[name].append(sample(handle, image, settings, cache, count=False))
            print(f"  {name}: {runs[name][-1].wall:.1f} s ({runs[name][-1].cpu:.1f} s CPU)", file=sys.stderr)
    wall = {name: median([run.wall for run in values]) for name, values in runs.items()}
    cpu = {name: median([run.cpu for run in values]) for name, values in runs.items()}
    denoise = {name: median([run.denoise for run in values]) for name, values in runs.items()}
    state = cache.peek(handle.cache_key).speed.compiled
    return {
        "backend": str(block_compile.BACKEND),
        "steps": steps,
        "calls_per_run": steps * 2,
        "repeats": repeats,
        "first_compiled_s": first.wall,
        "first_compiled_denoise_s": first.denoise,
        "warm_uncompiled_s": wall["uncompiled"],
        "warm_compiled_s": wall["compiled"],
        "warm_uncompiled_cpu_s": cpu["uncompiled"],
        "warm_compiled_cpu_s": cpu["compiled"],
        "warm_uncompiled_denoise_s": denoise["uncompiled"],
        "warm_compiled_denoise_s": denoise["compiled"],
        "wall_all_s": {name: [run.wall for run in values] for name, values in runs.items()},
        "first_run_cost_s": first.wall - wall["uncompiled"],
        "warm_speedup": wall["uncompiled"] / wall["compiled"],
        "warm_speedup_cpu": cpu["uncompiled"] / cpu["compiled"],
        "warm_speedup_denoise": denoise["uncompiled"] / denoise["compiled"],
        "psnr_db_vs_uncompiled": psnr(runs["compiled"][0].frames, runs["uncompiled"][0].frames),
        "failure": state.failure,
        "notes": first.notes,
        "dynamo": {key: int(value) for key, value in counters["stats"].items()},
        "torch": torch.__version__,
    }


# --- the whole benchmark ------------------------------------------------------------------------------


def run(layers: int = 10, size: str = "256x256x17", steps: int = 10, repeats: int = 2, lora_rank: int = 64,
        compile_steps: int = 2, skip_compile: bool = False, skip_lora: bool = False,
        probe: bool = False, skip_levers: bool = False) -> dict[str, Any]:
    # a fresh inductor cache, so the first compiled run compiles everything (removed at the end)
    inductor_cache = tempfile.mkdtemp(prefix="i2v-bench-inductor-")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = inductor_cache
    pin_one_thread()
    started = time.perf_counter()
    import torch

    from i2v_nodes.runtime import sampling
    from i2v_nodes.runtime.loading import models
    from i2v_nodes.runtime.loading.cache import ModelCache

    width, height, frames = (int(n) for n in size.split("x"))
    root = use_bench_models_dir() / "speed"  # apart from the tiny models: not in their model list
    name = ensure_model(root, layers)
    built = time.perf_counter() - started
    handle = models.open_model(name, models.LoadOptions(precision="auto"), [root], torch.device("cpu"))
    cache = ModelCache(lambda device: 2**40)
    image = still_image(height, width)
    base = sampling.SampleSettings(PROMPT, NEGATIVE, width, height, frames, steps, GUIDANCE, seed=0,
                                   target_fps=16)
    one_step = dataclasses.replace(base, steps=1)
    loads: dict[str, list[float]] = {}
    if not (skip_lora or probe):
        print("cold loads:", file=sys.stderr)
        loads = cold_loads(handle, base, repeats=3)
    first = sample(handle, image, one_step, cache, count=False)  # loads, encodes the prompts, warms
    probe_run = sample(handle, image, one_step, cache)
    transformer = cache.peek(handle.cache_key).pipeline.transformer
    blocks = len(transformer.blocks)
    params = sum(p.numel() for p in transformer.parameters())
    per_call = probe_run.denoise / max(probe_run.calls, 1)
    print(f"model {name}: {params / 1e9:.3f} B transformer parameters, {blocks} blocks, {handle.precision}; "
          f"first load {first.timings['load']:.1f} s; one transformer call at {size}: {per_call:.2f} s",
          file=sys.stderr)
    result: dict[str, Any] = {
        "benchmark": "I2VSpeedOptions levers and I2VLoRA switching, mid-size random-weight Wan 2.1 I2V, CPU",
        "date": dt.date.today().isoformat(),
        "model": {"name": name, "blocks": blocks, "transformer_params": params, "width": 1536, "heads": 12,
                  "ffn": 8960, "precision": handle.precision, "vae_precision": handle.vae_precision,
                  "build_s": built, "first_load_s": first.timings["load"],
                  "files_bytes": sum(f.stat().st_size for f in Path(handle.source).rglob("*")
                                     if f.is_file())},
        "workload": {"size": size, "steps": steps, "guidance": GUIDANCE, "seed": 0, "repeats": repeats,
                     "scheduler": "UniPC, flow shift 3.0"},
        "one_call_s": per_call,
        "one_call_s_30_blocks_estimate": per_call * 30 / blocks,
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                    "cpu_flags": _cpu_flags(), "torch": torch.__version__},
    }
    if probe:
        result["total_s"] = time.perf_counter() - started
        return result
    if not skip_levers:
        print("levers:", file=sys.stderr)
        result["levers"] = levers(handle, image, base, cache, repeats, blocks)
    if not skip_lora:
        print("LoRAs:", file=sys.stderr)
        result["lora"] = loras(handle, base, cache, root, lora_rank, cycles=3, loads=loads)
    if not skip_compile:
        print("compile:", file=sys.stderr)
        result["compile"] = compile_blocks(handle, image, base, cache, compile_steps, repeats=max(3, repeats))
    cache.unload()
    shutil.rmtree(inductor_cache, ignore_errors=True)
    result["total_s"] = time.perf_counter() - started
    return result


def _cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])
    return sorted(f for f in flags if f in ("avx512_bf16", "amx_bf16"))


# --- the tables ---------------------------------------------------------------------------------------


def _db(value: float | None) -> str:
    if value is None:
        return "-"
    return "identical" if math.isinf(value) else f"{value:.1f} dB"


def markdown(result: dict[str, Any]) -> str:
    model, work = result["model"], result["workload"]
    lines = [
        f"Mid-size random-weight Wan 2.1 I2V ({model['transformer_params'] / 1e9:.2f} B transformer: "
        f"Wan 2.1 1.3B's width 1536, 12 heads, ffn 8960, **{model['blocks']} of its 30 blocks**), "
        f"{model['precision']} (precision auto on this CPU), VAE {model['vae_precision']}; {work['size']} "
        f"(WxHxF), {work['steps']} steps of UniPC, guidance {work['guidance']}; one torch thread; one "
        f"transformer call {result['one_call_s']:.2f} s "
        f"(about {result['one_call_s_30_blocks_estimate']:.0f} s with all 30 blocks).",
        "",
    ]
    if "levers" in result:
        levers = result["levers"]
        lines += [
            "| run | transformer calls / clip | full-call equivalents (block computes / blocks) | "
            "denoise s | wall s | CPU s | wall vs off | CPU vs off | PSNR vs off |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row in levers["rows"]:
            lines.append(
                f"| {row['run']} | {row['calls']} | {row['full_call_equivalents']:.1f} | "
                f"{row['denoise_s']:.1f} | {row['wall_s']:.1f} | {row['cpu_s']:.1f} | "
                f"{row['wall_vs_off']:.2f}x | {row['cpu_vs_off']:.2f}x | {_db(row['psnr_db'])} |")
        counts = sorted({row["repeats"] for row in levers["rows"]})
        changes = levers["first_block_changes"]
        lines += ["", f"Seconds per clip, medians of {' / '.join(map(str, counts))} interleaved repeats "
                      "(the calibration run is one run); CPU s is this process's CPU time, steadier than "
                      "wall time on a shared machine. PSNR of the decoded frames (0..1) against the "
                      "lever-off frames (\"off\": its second run against its first): with random weights a "
                      "numerical check, not a quality claim."]
        if changes:
            lines += ["", "First Block Cache's measure in the lever-off run (the first block's residual "
                          f"change from one step to the next, conditional calls): {min(changes):.3f} to "
                          f"{max(changes):.3f}, median {median(changes):.3f}, against its default threshold "
                          "0.05: a step is skipped only while the change since the last computed step stays "
                          "under the threshold."]
        lines.append("")
    if "lora" in result:
        lora = result["lora"]
        cold = lora["cold_load_s"]
        repeats = len(lora["cold_load_all_s"]["disk"])
        lines += [
            f"LoRA switching: rank {lora['rank']} on all {lora['lora_layers']} attention and feed-forward "
            f"linear layers of the blocks ({lora['lora_file_mib']:.0f} MiB bf16 file each); the run's "
            f"`lora` phase with the model cached, median of {lora['cycles']} cycles, against a cold load of "
            f"the base model into a fresh model cache: {cold['page_cache']:.2f} s with its files in the OS "
            f"page cache, {cold['disk']:.2f} s from disk (the model's files evicted from the page cache "
            f"first; {result['model']['files_bytes'] / 2**30:.1f} GiB of files, the transformer's in fp32), "
            f"medians of {repeats}. Target: under 5% of a base load.",
            "",
            "| change | `lora` phase | / cold load (page cache) | / cold load (disk) |",
            "|---|---|---|---|",
        ]
        for row in lora["rows"]:
            lines.append(f"| {row['change']} | {row['lora_s'] * 1000:.0f} ms | "
                         f"{row['vs_cold_load_page_cache'] * 100:.1f}% | "
                         f"{row['vs_cold_load_disk'] * 100:.1f}% |")
        lines.append("")
    if "compile" in result:
        comp = result["compile"]
        status = f"failed, ran uncompiled: {comp['failure']}" if comp["failure"] else "compiled"
        graphs = comp["dynamo"].get("unique_graphs", 0)
        lines += [
            f"compile=\"blocks\" ({comp['backend']}, {status}; {graphs} graph(s) for all {model['blocks']} "
            f"blocks; a fresh inductor cache), {comp['steps']} steps with CFG ({comp['calls_per_run']} "
            f"transformer calls) at {work['size']}, warm figures medians of {comp['repeats']} interleaved "
            "repeats:",
            "",
            "| first compiled run | its extra wall time over a warm uncompiled run | warm uncompiled | "
            "warm compiled | warm speed-up: wall / CPU / denoise | PSNR vs uncompiled |",
            "|---|---|---|---|---|---|",
            f"| {comp['first_compiled_s']:.1f} s | {comp['first_run_cost_s']:.1f} s | "
            f"{comp['warm_uncompiled_s']:.1f} s | {comp['warm_compiled_s']:.1f} s | "
            f"{comp['warm_speedup']:.2f}x / {comp['warm_speedup_cpu']:.2f}x / "
            f"{comp['warm_speedup_denoise']:.2f}x | {_db(comp['psnr_db_vs_uncompiled'])} |",
            "",
        ]
    machine = result["machine"]
    flags = ", ".join(machine["cpu_flags"]) or "no native bf16"
    lines.append(f"{result['date']}, {machine['cpu']} ({flags}), torch {machine['torch']}, "
                 f"{machine['threads']} thread; whole benchmark {result['total_s'] / 60:.0f} min.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=10, help="transformer blocks (Wan 2.1 1.3B has 30)")
    parser.add_argument("--size", default="256x256x17", help="WIDTHxHEIGHTxFRAMES")
    parser.add_argument("--steps", type=int, default=10, help="steps of the lever runs (guidance 5)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats per lever")
    parser.add_argument("--lora-rank", type=int, default=64)
    parser.add_argument("--compile-steps", type=int, default=2, help="steps of the compile runs")
    parser.add_argument("--skip-compile", action="store_true")
    parser.add_argument("--skip-lora", action="store_true")
    parser.add_argument("--skip-levers", action="store_true")
    parser.add_argument("--probe", action="store_true", help="build the model, time one call, stop")
    parser.add_argument("--results", type=Path, default=HERE / "results", help="folder for the .md and .json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = run(args.layers, args.size, args.steps, args.repeats, args.lora_rank, args.compile_steps,
                 args.skip_compile, args.skip_lora, args.probe, args.skip_levers)
    table = markdown(result)
    print(table)
    if not args.probe:
        args.results.mkdir(parents=True, exist_ok=True)
        stem = args.results / f"{result['date']}-speed-cpu"
        stem.with_suffix(".md").write_text(table)
        stem.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(f"written: {stem}.md, {stem}.json", file=sys.stderr)


if __name__ == "__main__":
    main()
