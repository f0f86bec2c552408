"""Sweeps: 2 processes against 1 for the same sweep, and seed batching against one call per row.

``python -m host_stub batch`` on a tiny Wan 2.1 sweep (2 images x 2 prompts x SEEDS seeds), each
configuration in a fresh output folder, one torch thread per process: 1 process one call per
row, 1 process with consecutive seeds batched, 2 processes (torchrun --standalone, gloo) both
ways. Timed: the whole command (start-up, pack import and model load included) and the sweep
itself (the summary's wall time: from the first call to the gathered report). Printed: clips per
hour and the ratios.

    python bench/bench_batch_sweep.py [--seeds 4] [--steps 4] [--frames 9] [--size 64x48] [--repeats 1]
    python bench/bench_batch_sweep.py --procs 1 --device-note "H200"   # a GPU machine, one GPU
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import use_bench_models_dir  # noqa: E402


def workflow(width: int, height: int, frames: int, steps: int, precision: str) -> dict:
    model = {"model": "tiny-wan2.1-i2v", "precision": precision, "vae_precision": "auto", "device": "auto",
             "offload": "none", "allow_download": False, "weights": "default"}  # fmt: skip
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
        "2": {"class_type": "LoadI2VModel", "inputs": model},
        "3": {"class_type": "VRAMGuard", "inputs": {"model": ["2", 0], "width": width, "height": height,
                                                    "num_frames": frames, "batch_size": 1, "policy": "off",
                                                    "headroom": 0.1}},
        "4": {"class_type": "I2VSample", "inputs": {
            "model": ["3", 0], "image": ["1", 0], "prompt": "waves", "negative_prompt": "blurry",
            "width": ["3", 1], "height": ["3", 2], "num_frames": ["3", 3], "steps": steps,
            "guidance_scale": 5.0, "seed": 0, "batch_size": ["3", 4], "target_fps": 8,
            "decode_chunk_size": 0}},
        "5": {"class_type": "EncodeVideo", "inputs": {
            "frames": ["4", 0], "fps": ["4", 1], "frames_per_clip": ["4", 2], "format": "mp4-h264", "crf": 19,
            "filename_prefix": "bench/clip", "loop_count": 0, "pingpong": False, "save_metadata": False}},
    }  # fmt: skip


def setup(root: Path, args: argparse.Namespace) -> tuple[Path, Path]:
    from PIL import Image, ImageOps

    (root / "input").mkdir(parents=True)
    shutil.copy(REPO / "examples" / "i2v-example.png", root / "input" / "a.png")
    ImageOps.mirror(Image.open(root / "input" / "a.png").convert("RGB")).save(root / "input" / "b.png")
    width, height = (int(v) for v in args.size.split("x"))
    wf = root / "workflow.json"
    wf.write_text(
        json.dumps(workflow(width, height, args.frames, args.steps, args.precision)), encoding="utf-8"
    )
    sweep = root / "sweep.jsonl"
    grid = {"id": "b", "LoadImage.image": ["a.png", "b.png"], "I2VSample.prompt": ["waves", "a storm"],
            "I2VSample.seed": {"range": [0, args.seeds]}}  # fmt: skip
    sweep.write_text(json.dumps(grid) + "\n", encoding="utf-8")
    return wf, sweep


def run_once(root: Path, wf: Path, sweep: Path, procs: int, batched: bool, tag: str) -> dict:
    out = root / f"out-{tag}"
    shutil.rmtree(out, ignore_errors=True)
    command = ["-m", "host_stub", "batch", str(wf), "--sweep", str(sweep), "--packs", str(REPO)]
    command += [
        "--input-dir",
        str(root / "input"),
        "--output-dir",
        str(out),
        "--models-dir",
        str(root / "models"),
    ]
    command += ["--batch-seeds" if batched else "--no-batch-seeds"]
    torchrun = [
        str(Path(sys.executable).with_name("torchrun")),
        "--standalone",
        "--nproc_per_node",
        str(procs),
    ]
    launcher = [sys.executable] if procs == 1 else torchrun
    env = {**os.environ, "OMP_NUM_THREADS": "1", "I2V_CPU_AUTO_PRECISION": "fp32"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    cpu_before = _children_cpu()
    started = time.perf_counter()
    done = subprocess.run(
        [*launcher, *command], env=env, cwd=REPO, capture_output=True, text=True, check=False
    )
    total = time.perf_counter() - started
    cpu = _children_cpu() - cpu_before
    if done.returncode != 0:
        log = root.parent / f"{root.name}-{tag}-failed.log"
        log.write_text(f"{done.stdout}\n{done.stderr}", encoding="utf-8")
        raise SystemExit(f"{tag} failed ({done.returncode}), its output is in {log}:\n{done.stderr[-2000:]}")
    sweep_s = float(re.search(r"done, \d+ failed, \d+ skipped in ([\d.]+)s", done.stdout).group(1))
    jobs = sum(1 for _ in (out / "batch-report.jsonl").open())
    return {"total_s": total, "sweep_s": sweep_s, "cpu_s": cpu, "jobs": jobs}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4, help="seeds per image and prompt (jobs = 4 x seeds)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--size", default="64x48")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--precision", default="fp32", help="LoadI2VModel's precision (auto on a GPU: bf16)")
    parser.add_argument(
        "--procs", type=int, default=2, help="the most processes to try (1 on a one-GPU machine)"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the figures here")
    args = parser.parse_args()
    models = use_bench_models_dir()
    from i2v_nodes.runtime.loading.models import tiny_model_folder

    tiny_model_folder("tiny-wan2.1-i2v", models / "i2v")
    root = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    (root / "models").symlink_to(models)
    wf, sweep = setup(root, args)
    configs = [(p, b) for p in sorted({1, args.procs}) for b in (False, True)]
    samples: dict[str, list[dict]] = {f"{p}p-{'batched' if b else 'single'}": [] for p, b in configs}
    for _ in range(args.repeats):  # interleaved, so drift hits every configuration alike
        for procs, batched in configs:
            tag = f"{procs}p-{'batched' if batched else 'single'}"
            samples[tag].append(run_once(root, wf, sweep, procs, batched, tag))
    figures = {tag: _median(runs) for tag, runs in samples.items()}
    _print(figures, args)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(root, ignore_errors=True)


def _median(runs: list[dict]) -> dict:
    total, sweep_s = (
        statistics.median(r["total_s"] for r in runs),
        statistics.median(r["sweep_s"] for r in runs),
    )
    jobs = runs[0]["jobs"]
    return {
        "jobs": jobs,
        "total_s": round(total, 2),
        "sweep_s": round(sweep_s, 2),
        "clips_per_hour_sweep": round(jobs / sweep_s * 3600),
        "clips_per_hour_total": round(jobs / total * 3600),
        "cpu_s_per_clip": round(statistics.median(r["cpu_s"] for r in runs) / jobs, 3),
    }


def _print(figures: dict, args: argparse.Namespace) -> None:
    import torch

    where = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU, 1 torch thread per process"
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"tiny-wan2.1-i2v {args.size}x{args.frames}, {args.steps} steps, {4 * args.seeds} jobs; {where}; "
          f"load average {load}")  # fmt: skip
    for tag, f in figures.items():
        print(f"  {tag:<12} sweep {f['sweep_s']:7.2f}s ({f['clips_per_hour_sweep']} clips/h)  "
              f"whole command {f['total_s']:7.2f}s ({f['clips_per_hour_total']} clips/h)  "
              f"CPU {f['cpu_s_per_clip']:.2f}s/clip")  # fmt: skip
    for single in ("single", "batched"):
        one, two = figures.get(f"1p-{single}"), figures.get(f"{args.procs}p-{single}")
        if one and two and args.procs > 1:
            print(f"  {args.procs} processes / 1, {single}: sweep x{one['sweep_s'] / two['sweep_s']:.2f}, "
                  f"whole command x{one['total_s'] / two['total_s']:.2f}")  # fmt: skip
    for procs in sorted({1, args.procs}):
        a, b = figures[f"{procs}p-single"], figures[f"{procs}p-batched"]
        print(f"  batched / one call per row, {procs} process(es): sweep x{a['sweep_s'] / b['sweep_s']:.2f}, "
              f"whole command x{a['total_s'] / b['total_s']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
