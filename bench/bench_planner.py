"""P7: the planner's time for a published model, cold (a fresh process) and warm (asked again).

Cold is measured in a fresh Python process from after ``import torch`` to the printed answer: it
includes importing the pack, diffusers' and transformers' model classes, building the model on the
meta device and every memory trace the answer needs (every memory option, the largest frames and
size for each); it is also measured with ``--no-search`` (the verdict and every option's figures,
without the largest frames and size). Warm asks the same question again in the same process.
Targets: under 2 s cold, under 0.1 s warm.

    python bench/bench_planner.py [--model Wan-AI/Wan2.2-I2V-A14B-Diffusers] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

QUESTION = ["--width", "832", "--height", "480", "--frames", "81", "--vram", "24", "--ram", "64", "--json"]

CHILD = """
import io, contextlib, json, sys, time
started = time.perf_counter()
import torch
torch_s = time.perf_counter() - started
sys.path.insert(0, {repo!r})
started = time.perf_counter()
from i2v_nodes import cli
with contextlib.redirect_stdout(io.StringIO()):
    cli.main(["plan", {model!r}, *{question!r}])
cold = time.perf_counter() - started
started = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()):
    cli.main(["plan", {model!r}, *{question!r}])
warm = time.perf_counter() - started
print(json.dumps({{"torch_import_s": torch_s, "cold_s": cold, "warm_s": warm}}))
"""

# The verdict and every option's figures, without the largest-frames-and-size search.
CHILD_NO_SEARCH = """
import io, contextlib, json, sys, time
import torch
sys.path.insert(0, {repo!r})
started = time.perf_counter()
from i2v_nodes import cli
with contextlib.redirect_stdout(io.StringIO()):
    cli.main(["plan", {model!r}, *{question!r}, "--no-search"])
print(json.dumps({{"cold_no_search_s": time.perf_counter() - started}}))
"""


def run(model: str = "Wan-AI/Wan2.2-I2V-A14B-Diffusers", repeats: int = 3) -> dict:
    samples = []
    for _ in range(repeats):
        sample = {}
        for child in (CHILD, CHILD_NO_SEARCH):
            done = subprocess.run(
                [sys.executable, "-c", child.format(repo=str(REPO), model=model, question=QUESTION)],
                capture_output=True,
                text=True,
                check=True,
            )
            sample.update(json.loads(done.stdout.strip().splitlines()[-1]))
        samples.append(sample)
    median = {key: statistics.median(s[key] for s in samples) for key in samples[0]}
    return {
        "benchmark": "P7 planner time",
        "model": model,
        "question": " ".join(QUESTION),
        "repeats": repeats,
        **median,
        "target": "cold < 2 s, warm < 0.1 s",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="Wan-AI/Wan2.2-I2V-A14B-Diffusers")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(run(args.model, args.repeats), indent=2))


if __name__ == "__main__":
    main()
