"""P2: model loads over 10 consecutive workflow runs with new seeds, after a warm-up (target 0).

Two workflows alternate: the preview tier with precision "auto" and with "fp32". On a CPU both
mean fp32 here (the benchmark pins what "auto" means on a CPU, which is bf16 on CPUs that compute it
natively), so they share one cached pipeline, but their LoadI2VModel inputs differ, so the host's
output cache cannot skip the loader: it really re-executes every run, as in a real session where
graphs change between runs. Loads are counted in the pack's model cache.

    python bench/bench_loads.py [--runs 10]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _timing import use_bench_models_dir  # noqa: E402

SCALED_DOWN = ["LoadI2VModel.model=tiny-i2vgen-xl", "VRAMGuard.width=64", "VRAMGuard.height=64",
               "VRAMGuard.num_frames=8", "I2VSample.steps=2"]


def run(runs: int = 10) -> dict:
    import os

    import torch

    os.environ["I2V_CPU_AUTO_PRECISION"] = "fp32"

    torch.set_num_threads(1)
    from host_stub import Host
    from i2v_nodes.runtime.sampling import default_cache

    workflow = json.loads((REPO / "workflows" / "api" / "i2v-preview.json").read_text())
    with tempfile.TemporaryDirectory(prefix="i2v-p2-") as tmp:
        folders = {name: Path(tmp) / name for name in ("input", "output")}
        for folder in folders.values():
            folder.mkdir()
        shutil.copy(REPO / "examples" / "i2v-example.png", folders["input"])
        models_dir = str(use_bench_models_dir())
        host = Host(packs=[str(REPO)], input_dir=str(folders["input"]), output_dir=str(folders["output"]),
                    models_dir=models_dir)
        variants = [SCALED_DOWN + [f"LoadI2VModel.precision={p}"] for p in ("auto", "fp32")]
        host.run(workflow, overrides=variants[1] + ["I2VSample.seed=999"])  # warm-up: the one load
        loads_before = default_cache().loads
        loader_runs = 0
        for index in range(runs):
            result = host.run(workflow, overrides=variants[index % 2] + [f"I2VSample.seed={index}"])
            assert result.status == "success", result.error
            loader_id = next(i for i, n in workflow.items() if n["class_type"] == "LoadI2VModel")
            loader_runs += loader_id in result.executed
    return {
        "benchmark": "P2 model loads over consecutive runs (new seeds, alternating workflows)",
        "runs": runs,
        "loader_node_executions": loader_runs,
        "model_loads": default_cache().loads - loads_before,
        "target": "0 loads",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    print(json.dumps(run(parser.parse_args().runs), indent=2))


if __name__ == "__main__":
    main()
