"""Helpers shared by the benchmarks: interleaved repeats, medians, one thread, common inputs."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def interleaved_medians(candidates: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each candidate, run in turns (A B A B ...) so drift hits all alike."""
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            started = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - started)
    return {name: statistics.median(times) for name, times in samples.items()}


def pin_one_thread() -> None:
    """Two cores: a second torch thread fights every other process on the machine."""
    import torch

    torch.set_num_threads(1)


def use_bench_models_dir() -> Path:
    """One models folder for every benchmark (the tiny model is built there once), unless
    ``I2V_MODELS_DIR`` already names one."""
    folder = os.environ.setdefault("I2V_MODELS_DIR", str(Path(tempfile.gettempdir()) / "i2v-bench-models"))
    return Path(folder)


def still_image(height: int = 96, width: int = 128):
    """A fixed random IMAGE tensor, the same in every benchmark run."""
    import torch

    return torch.rand(1, height, width, 3, generator=torch.Generator().manual_seed(0))
