"""Device memory as torch and the OS report it (no host involved).

System RAM is what this process may use: the machine's memory, capped by the limit of its memory
cgroup (a container's ``--memory``, a Kubernetes limit, a rented pod), less what that cgroup already
uses. ``/proc/meminfo`` alone shows the host's RAM inside a container, and a run planned on it would
be killed by the kernel.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from i2v_nodes.lazy import torch

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
    limit = cgroup_limit()
    return available if limit is None else min(available, max(0, limit.limit - limit.used))


def total_bytes(device: torch.device) -> int:
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    machine = _meminfo("MemTotal") or 16 * 2**30
    limit = cgroup_limit()
    return machine if limit is None else min(machine, limit.limit)


def process_resident_bytes() -> int:
    """This process's resident memory now (0 where /proc cannot tell): already counted as used."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


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


# --- the memory cgroup ------------------------------------------------------------------------------

UNLIMITED = 2**60  # cgroup v1 writes "no limit" as a page-rounded 2**63


@dataclass(frozen=True)
class CgroupLimit:
    """The tightest memory limit over this process's cgroup and its ancestors, and what that cgroup
    uses now (its page cache that the kernel can drop, the inactive file pages, not counted)."""

    limit: int
    used: int
    where: str  # the cgroup folder, for messages


def cgroup_limit(root: Path = Path("/")) -> CgroupLimit | None:
    """This process's memory cgroup limit (v2 ``memory.max``, v1 ``memory.limit_in_bytes``), or None
    where there is none (or no cgroup file system)."""
    try:
        lines = (root / "proc/self/cgroup").read_text(encoding="ascii").splitlines()
    except OSError:
        return None
    for line in lines:
        hierarchy, controllers, path = line.split(":", 2)
        if hierarchy == "0" and not controllers:  # cgroup v2 (unified)
            found = _tightest(root / "sys/fs/cgroup", path, "memory.max", "memory.current", "inactive_file")
        elif "memory" in controllers.split(","):  # cgroup v1
            found = _tightest(root / "sys/fs/cgroup/memory", path, "memory.limit_in_bytes",
                              "memory.usage_in_bytes", "total_inactive_file")
        else:
            continue
        if found is not None:
            return found
    return None


def _tightest(mount: Path, path: str, limit_file: str, usage_file: str, inactive: str) -> CgroupLimit | None:
    """The lowest limit from the process's cgroup up to the mount's root (a parent may be tighter)."""
    best = None
    folder = mount / path.strip("/")
    while True:
        limit = _read_int(folder / limit_file)
        if limit is not None and limit < UNLIMITED and (best is None or limit < best.limit):
            used = (_read_int(folder / usage_file) or 0) - _stat(folder / "memory.stat", inactive)
            best = CgroupLimit(limit, max(0, used), str(folder))
        if folder == mount or mount not in folder.parents:
            return best
        folder = folder.parent


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except OSError:
        return None
    return None if text == "max" or not text.isdigit() else int(text)


def _stat(path: Path, key: str) -> int:
    try:
        for line in path.read_text(encoding="ascii").splitlines():
            name, _, value = line.partition(" ")
            if name == key and value.strip().isdigit():
                return int(value)
    except OSError:
        pass
    return 0
