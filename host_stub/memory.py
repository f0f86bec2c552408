"""Memory figures for the summary and for the ``comfy.model_management`` shim.

Only the standard library is used for system RAM; torch is consulted only when the process has
already imported it, so that asking about memory never pulls torch in by itself.
"""

from __future__ import annotations

import os
import resource
import sys
from typing import Any


def _torch() -> Any:
    return sys.modules.get("torch")


def cuda_in_use() -> bool:
    """True when torch is imported and has initialised CUDA in this process."""
    torch = _torch()
    return bool(torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized())


def meminfo_bytes(field: str) -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def total_ram_bytes() -> int:
    value = meminfo_bytes("MemTotal")
    if value is not None:
        return value
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def available_ram_bytes() -> int:
    value = meminfo_bytes("MemAvailable")
    if value is not None:
        return value
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def peak_rss_bytes() -> int:
    """The process's resident-set high-water mark so far (it only ever grows)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return int(peak if sys.platform == "darwin" else peak * 1024)


def reset_cuda_peak() -> None:
    if cuda_in_use():
        _torch().cuda.reset_peak_memory_stats()


def cuda_peak_bytes() -> int | None:
    if not cuda_in_use():
        return None
    return int(_torch().cuda.max_memory_allocated())
