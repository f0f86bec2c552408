"""Device memory as torch and the OS report it (no host involved)."""

from __future__ import annotations

import logging
import os

import torch

log = logging.getLogger(__name__)


def free_bytes(device: torch.device) -> int:
    """Memory a new run can use on ``device``: CUDA free memory, or available system RAM."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        # blocks the caching allocator holds but does not use are ours to reuse
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free + cached)
    available = _meminfo("MemAvailable")
    if available is None:  # not Linux: be conservative rather than fail
        log.warning("cannot read available RAM; assuming 8 GiB")
        return 8 * 2**30
    return available


def total_bytes(device: torch.device) -> int:
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    return _meminfo("MemTotal") or 16 * 2**30


def cache_budget_bytes(device: str) -> int:
    """``I2V_CACHE_BUDGET_GB`` if set, else 80% of the device's memory (RAM on CPU)."""
    configured = os.environ.get("I2V_CACHE_BUDGET_GB")
    if configured:
        return int(float(configured) * 2**30)
    return int(0.8 * total_bytes(torch.device(device)))


def _meminfo(field: str) -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
