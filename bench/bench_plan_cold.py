"""P7b: ``python -m i2v_nodes plan`` wall time per published model, as a user runs it: a new process each
time, timed from outside (interpreter start, imports, the answer printed).

For each question it measures, interleaved and repeated:

- ``cold``: the shipped table on and an empty trace cache (a fresh machine);
- ``warm``: the same again (the table, and whatever the cold run left in the cache);
- ``traced cold``: the shipped table off (``I2V_SHIPPED_TRACES=0``) and an empty cache: what any model
  the table does not have costs the first time (a local folder, another precision);
- ``traced warm``: the table off again, with the cache that run left: that model's second answer.

Target: cold under 2 s.

    python bench/bench_plan_cold.py [--repeats 3] [--only a14b ltx2 ...] [--skip-traced]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

QUESTIONS = {
    "a14b": ["Wan-AI/Wan2.2-I2V-A14B-Diffusers", "--width", "832", "--height", "480", "--frames", "81",
             "--vram", "8", "--ram", "16"],
    "wan2.1": ["Wan-AI/Wan2.1-I2V-14B-480P-Diffusers", "--width", "832", "--height", "480", "--frames", "81",
               "--vram", "12", "--ram", "32"],
    "ltx-video": ["Lightricks/LTX-Video-0.9.7-dev", "--width", "768", "--height", "512", "--frames", "121",
                  "--vram", "12", "--ram", "32"],
    "ltx2": ["Lightricks/LTX-2", "--width", "1280", "--height", "704", "--frames", "121", "--vram", "16",
             "--ram", "32"],
    "svd": ["stabilityai/stable-video-diffusion-img2vid-xt", "--width", "1024", "--height", "576", "--frames",
            "25", "--vram", "8", "--ram", "16"],
}


def timed_plan(question: list[str], cache: Path, table: bool) -> float:
    env = {**os.environ, "I2V_TRACE_CACHE": str(cache), "I2V_SHIPPED_TRACES": "1" if table else "0",
           "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "i2v_nodes", "plan", *question], cwd=REPO, env=env,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):  # 1: does not fit, a valid answer
        raise RuntimeError(f"plan failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed


def measure(question: list[str], repeats: int, traced: bool) -> dict[str, float]:
    samples: dict[str, list[float]] = {}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as folder:
            shipped, alone = Path(folder) / "shipped", Path(folder) / "traced"
            kinds = [("cold", shipped, True), ("warm", shipped, True)]
            if traced:
                kinds += [("traced cold", alone, False), ("traced warm", alone, False)]
            for name, cache, table in kinds:
                samples.setdefault(name, []).append(timed_plan(question, cache, table))
    return {name: round(statistics.median(times), 2) for name, times in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="*", choices=list(QUESTIONS), default=list(QUESTIONS))
    parser.add_argument("--skip-traced", action="store_true", help="only the shipped table's times")
    args = parser.parse_args()
    started = time.perf_counter()
    child = "import time; t = time.perf_counter(); import torch; print(time.perf_counter() - t)"
    import_torch = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True)
    results = {"benchmark": "P7b plan wall time, new process each run (median of repeats)",
               "import_torch_s": round(float(import_torch.stdout.strip()), 2), "target": "cold < 2 s",
               "repeats": args.repeats, "seconds": {}}
    for name in args.only:
        results["seconds"][name] = measure(QUESTIONS[name], args.repeats, not args.skip_traced)
        print(f"{name}: {results['seconds'][name]}", file=sys.stderr, flush=True)
    results["total_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
