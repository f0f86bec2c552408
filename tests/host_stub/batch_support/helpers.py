"""Shared pieces of the batch tests: a workspace with images, a workflow on the sweeper pack, logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

REPO = Path(__file__).resolve().parents[3]
SWEEPER = Path(__file__).parent / "sweeper"
GREYS = {"a.png": 10, "b.png": 100, "c.png": 200}  # distinct means, so a clip tells its image


def grey_mean(name: str) -> float:
    return round(GREYS[name] / 255, 4)


def sweep_workflow(prefix: str = "sweep/clip") -> dict[str, Any]:
    """LoadImage, SweepModel, SweepGuard (batch_size), SweepSample (seed, batch_size linked), SweepSave."""
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
        "2": {"class_type": "SweepModel", "inputs": {"name": "fake"}},
        "3": {"class_type": "SweepGuard", "inputs": {"model": ["2", 0], "batch_size": 1}},
        "4": {
            "class_type": "SweepSample",
            "inputs": {
                "model": ["3", 0],
                "image": ["1", 0],
                "prompt": "x",
                "seed": 0,
                "batch_size": ["3", 1],
            },
        },
        "5": {"class_type": "SweepSave", "inputs": {"clips": ["4", 0], "filename_prefix": prefix}},
    }


@dataclass
class Workspace:
    root: Path

    @property
    def input(self) -> Path:
        return self.root / "input"

    @property
    def output(self) -> Path:
        return self.root / "output"

    @property
    def log(self) -> Path:
        return self.root / "log"

    @property
    def workflow(self) -> Path:
        return self.root / "workflow.json"

    @property
    def report(self) -> Path:
        return self.output / "batch-report.jsonl"

    def setup(self, workflow: dict[str, Any] | None = None) -> Workspace:
        for folder in (self.input, self.log):
            folder.mkdir(parents=True, exist_ok=True)
        for name, grey in GREYS.items():
            Image.new("RGB", (8, 8), (grey, grey, grey)).save(self.input / name)
        self.workflow.write_text(json.dumps(workflow or sweep_workflow()), encoding="utf-8")
        return self

    def sweep(self, rows: list[dict[str, Any]], name: str = "sweep.jsonl") -> Path:
        path = self.root / name
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        return path

    def args(self, sweep: Path, *extra: str, packs: tuple[Path, ...] = (SWEEPER,)) -> list[str]:
        folders = ["--input-dir", str(self.input), "--output-dir", str(self.output)]
        folders += ["--models-dir", str(self.root / "models")]
        return [
            str(self.workflow),
            "--sweep",
            str(sweep),
            *[a for p in packs for a in ("--packs", str(p))],
        ] + [
            *folders,
            *extra,
        ]

    def entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.report.read_text(encoding="utf-8").splitlines()]

    def logged(self, kind: str) -> list[dict[str, Any]]:
        lines = []
        for path in sorted(self.log.glob(f"{kind}-*.jsonl")):
            lines += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        return lines

    def clear_log(self) -> None:
        for path in self.log.glob("*.jsonl"):
            path.unlink()

    def env(self, **extra: str) -> dict[str, str]:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "SWEEP_TEST_LOG": str(self.log), **extra}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        return env


def clips_called(calls: list[dict[str, Any]]) -> list[tuple[float, str, int]]:
    """(image mean, prompt, seed) of every clip the sampler made: a call of n seeds makes n."""
    return [(c["image"], c["prompt"], c["seed"] + i) for c in calls for i in range(c["batch_size"])]


def job_key(entry: dict[str, Any]) -> tuple[float, str, int]:
    o = entry["overrides"]
    return (
        grey_mean(o.get("LoadImage.image", "a.png")),
        o.get("SweepSample.prompt", "x"),
        int(o["SweepSample.seed"]),
    )


def run_cli(args: list[str], env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "host_stub", "batch", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def torchrun(
    args: list[str], env: dict[str, str], nproc: int = 2, timeout: float = 300, script: str = ""
) -> Any:
    """``torchrun --standalone --nproc_per_node N`` of the batch command (or of ``script``)."""
    torchrun_bin = Path(sys.executable).with_name("torchrun")
    target = [script] if script else ["-m", "host_stub", "batch"]
    return subprocess.run(
        [str(torchrun_bin), "--standalone", "--nproc_per_node", str(nproc), *target, *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
