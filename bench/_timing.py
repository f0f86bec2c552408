"""Timing helpers shared by the benchmarks: interleaved repeats, medians, one thread."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


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
