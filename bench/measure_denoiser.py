"""The estimator's denoiser term against a measurement: one real denoiser call on a CPU.

For a published model, builds its denoiser from the published configuration with random weights
(optionally fewer of its identical blocks: in inference each block frees its intermediates before
the next starts, so one call's peak does not depend on depth), runs one call at each shape in a
fresh process, and measures the peak resident memory the call adds (Linux VmHWM, reset before the
call). Beside it, the estimator's activation term for the same call: the meta-device trace of the
same module at the same shape, times its margin. Reports estimate / measured per shape.

    python bench/measure_denoiser.py Wan-AI/Wan2.2-TI2V-5B-Diffusers --shapes 832x480x33,1280x704x33 \\
        --set num_layers=2 [--precision bf16] [--rows 1] [--json]

A shape is WIDTHxHEIGHTxFRAMES of the output video. Mind the CPU: without avx512_bf16 or amx_bf16
(see /proc/cpuinfo), bf16 matmuls are many times slower than fp32.

glibc keeps freed blocks below its (dynamic, up to 32 MiB) mmap threshold in its heap, so at small
shapes the resident peak includes memory no tensor holds any more. ``MALLOC_MMAP_THRESHOLD_=131072``
fixes the threshold, so the measurement shows live tensors alone; measure both ways.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GiB = 2**30


def _peak_rss() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def _current_rss() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
        fh.write("5")  # resets VmHWM to the current RSS


def _handle(model: str, precision: str, overrides: dict):
    import dataclasses

    from i2v_nodes.runtime.loading import models

    handle = models.describe_published(model, precision=precision, device="cpu")
    configs = {**handle.configs}
    for role in handle.roles.denoisers:
        configs[role] = {**configs[role], **overrides}
    return dataclasses.replace(handle, configs=configs)


def _materialise(value, generator):
    import torch

    if isinstance(value, torch.Tensor) and value.device.type == "meta":
        if value.is_floating_point():
            return torch.randn(value.shape, generator=generator, dtype=torch.float32).to(value.dtype)
        return torch.zeros(value.shape, dtype=value.dtype)
    return value


def measure_one(model: str, shape: tuple[int, int, int], precision: str, rows: int, overrides: dict) -> dict:
    """In this (fresh) process: build the denoiser with random weights and measure one call."""
    import torch

    from i2v_nodes.families.toolkit.meta import keep_fp32
    from i2v_nodes.runtime import memory
    from i2v_nodes.runtime.loading.precision import dtype_of

    torch.set_num_threads(max(1, torch.get_num_threads()))
    handle = _handle(model, precision, overrides)
    width, height, frames = shape
    dtype = dtype_of(precision)
    trace = handle.family.traces.denoiser(
        handle.variant, handle.configs_json, dtype, rows, frames, height, width, full_depth=True
    )
    traced = trace.peak_bytes()
    meta = trace.fn
    default = torch.get_default_dtype()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        torch.set_default_dtype(dtype)  # built in the target dtype: a 5B model in fp32 would need 20 GB
        try:
            module = type(meta).from_config(meta.config).eval()
        finally:
            torch.set_default_dtype(default)
    module = keep_fp32(module)
    for real, traced_module in zip(module.modules(), meta.modules(), strict=True):
        if type(traced_module) is not type(real) and isinstance(traced_module, type(real)):
            real.__class__ = type(traced_module)  # the family's replacement classes, as traced and run
    generator = torch.Generator().manual_seed(0)
    args = [_materialise(a, generator) for a in trace.args]
    kwargs = {k: _materialise(v, generator) for k, v in trace.kwargs.items()}
    # No warm-up call: the allocator would keep what it freed, and the measured call would reuse it.
    with torch.inference_mode():
        before = _current_rss()
        _reset_peak()
        started = time.perf_counter()
        module(*args, **kwargs)
        seconds = time.perf_counter() - started
        measured = _peak_rss() - before
    estimate = int(traced * memory.ACTIVATION_MARGIN)
    return {
        "shape": f"{width}x{height}x{frames}",
        "rows": rows,
        "precision": precision,
        "params": sum(p.numel() for p in module.parameters()),
        "traced_gib": traced / GiB,
        "estimate_gib": estimate / GiB,
        "measured_gib": measured / GiB,
        "estimate_over_measured": estimate / measured if measured > 0 else float("nan"),
        "seconds_per_call": seconds,
    }


def run(
    model: str,
    shapes: list[tuple[int, int, int]],
    precision: str = "bf16",
    rows: int = 1,
    overrides: dict | None = None,
) -> dict:
    results = []
    for width, height, frames in shapes:
        command = [
            sys.executable,
            __file__,
            model,
            "--child",
            f"{width}x{height}x{frames}",
            "--precision",
            precision,
            "--rows",
            str(rows),
            "--json",
        ]
        for key, value in (overrides or {}).items():
            command += ["--set", f"{key}={json.dumps(value)}"]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {
        "benchmark": "denoiser activation estimate vs measured peak RSS (CPU)",
        "model": model,
        "overrides": overrides or {},
        "results": results,
    }


def _shape(text: str) -> tuple[int, int, int]:
    width, height, frames = (int(part) for part in text.lower().split("x"))
    return width, height, frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a published hub id")
    parser.add_argument("--shapes", default="832x480x33", help="comma-separated WIDTHxHEIGHTxFRAMES")
    parser.add_argument("--precision", default="bf16", choices=["bf16", "fp32", "fp16"])
    parser.add_argument("--rows", type=int, default=1, help="batch rows of the call (CFG halves, clips)")
    parser.add_argument("--set", action="append", default=[], help="denoiser config override KEY=JSON")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    overrides = {key: json.loads(value) for key, value in (item.split("=", 1) for item in args.set)}
    if args.child:
        print(json.dumps(measure_one(args.model, _shape(args.child), args.precision, args.rows, overrides)))
        return
    result = run(
        args.model, [_shape(s) for s in args.shapes.split(",")], args.precision, args.rows, overrides
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for row in result["results"]:
        print(
            f"{row['shape']}: estimate {row['estimate_gib']:.2f} GiB (traced {row['traced_gib']:.2f}), "
            f"measured {row['measured_gib']:.2f} GiB, estimate/measured {row['estimate_over_measured']:.2f}, "
            f"{row['seconds_per_call']:.1f} s per call"
        )


if __name__ == "__main__":
    main()
