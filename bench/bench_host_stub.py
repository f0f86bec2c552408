"""Benchmark: host_stub's overhead on a 200-node graph of trivial nodes.

Prints the median time to validate the graph, to run it on a fresh host (empty cache) and to
run it again unchanged (everything cached), over interleaved repeats, and the ratio of the
last two. ``run(repeats)`` returns the same figures as a dict for a bench runner.

The graph is a chain (a constant, 198 increments, an output node): the deepest graph of its
size, so the cache keys, which take in every ancestor as ComfyUI's do, cost the most.

    python bench/bench_host_stub.py [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from host_stub import Host  # noqa: E402 - after making the repository importable

PACK = Path(__file__).resolve().parent / "packs" / "trivial"
NODES = 200


def chain_prompt(nodes: int = NODES) -> dict[str, Any]:
    prompt: dict[str, Any] = {"1": {"class_type": "BenchConst", "inputs": {"value": 1}}}
    for i in range(2, nodes):
        prompt[str(i)] = {"class_type": "BenchInc", "inputs": {"x": [str(i - 1), 0], "step": 1}}
    prompt[str(nodes)] = {"class_type": "BenchSink", "inputs": {"x": [str(nodes - 1), 0]}}
    return prompt


def _timed(func: Any, *args: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    value = func(*args)
    return time.perf_counter() - started, value


def run(repeats: int = 7) -> dict[str, Any]:
    """Median seconds to validate, run (fresh host) and re-run (unchanged) the 200-node chain."""
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    prompt = chain_prompt()
    samples: dict[str, list[float]] = {"validate_s": [], "first_run_s": [], "rerun_s": []}
    with tempfile.TemporaryDirectory() as tmp:
        warm = Host(packs=[PACK], output_dir=tmp, input_dir=tmp, models_dir=tmp)
        warm.run(prompt)  # imports torch and the pack once, outside the measurements
        for _ in range(repeats):
            host = Host(packs=[PACK], output_dir=tmp, input_dir=tmp, models_dir=tmp)
            seconds, result = _timed(host.validate, prompt)
            assert result.ok, result.error
            samples["validate_s"].append(seconds)
            seconds, result = _timed(host.run, prompt)
            assert result.ok and len(result.executed) == NODES, result.error
            samples["first_run_s"].append(seconds)
            seconds, result = _timed(host.run, prompt)
            assert result.ok and result.executed == [], result.executed
            samples["rerun_s"].append(seconds)
    figures: dict[str, Any] = {"nodes": NODES, "repeats": repeats}
    figures.update({name: statistics.median(values) for name, values in samples.items()})
    figures["rerun_over_first"] = figures["rerun_s"] / figures["first_run_s"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    figures = run(parser.parse_args().repeats)
    print(
        f"host_stub, {figures['nodes']}-node chain of trivial nodes, median of {figures['repeats']} repeats:"
    )
    print(f"  validate:          {figures['validate_s'] * 1000:8.2f} ms")
    print(f"  run (fresh host):  {figures['first_run_s'] * 1000:8.2f} ms")
    print(f"  re-run, unchanged: {figures['rerun_s'] * 1000:8.2f} ms")
    print(f"  re-run / run:      {figures['rerun_over_first']:8.3f}")


if __name__ == "__main__":
    main()
