"""The run's memory plan: VRAMGuard's when it covers the run and still fits the memory free now,
else a new one."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import torch

from i2v_nodes.errors import MemoryGuardError
from i2v_nodes.runtime import memory
from i2v_nodes.runtime.loading.cache import ModelCache
from i2v_nodes.runtime.loading.handle import ModelHandle
from i2v_nodes.runtime.memory import devices, guard
from i2v_nodes.runtime.options import speed_of
from i2v_nodes.runtime.sampling.settings import SampleSettings
from i2v_nodes.runtime.services import HostServices

log = logging.getLogger(__name__)


def run_shape(handle: ModelHandle, s: SampleSettings, family_settings: Any = None,
              keyframes: int = 1) -> memory.RunShape:
    """The run's shape for the memory plan; ``keyframes``: images each clip is conditioned on (2 with an
    end image)."""
    cfg = handle.family.uses_cfg(s.guidance_scale, family_settings)
    return memory.RunShape(s.width, s.height, s.num_frames, s.batch_size, cfg=cfg, speed=speed_of(s.options),
                           keyframes=keyframes)


def budget_for(handle: ModelHandle, services: HostServices, headroom: float, held: int) -> guard.Budget:
    """Device memory and system RAM free now; what this model's cache entry holds (``held``, from
    ``ModelCache.held_bytes``) counts as free, since the run uses it again."""
    device, cpu = torch.device(handle.device), torch.device("cpu")
    # The estimates count the process's own runtime (interpreter, libraries), which free memory
    # measured from inside it has already taken away: counted once, not twice.
    on_cpu = device.type == "cpu"
    own = devices.process_resident_bytes()
    ram_own = min(own, memory.CPU_RUNTIME_BYTES if on_cpu else memory.HOST_RUNTIME_BYTES)
    return guard.Budget(free=services.free_bytes(device) + (ram_own if on_cpu else 0),
                        total=services.total_bytes(device), headroom=headroom, already_loaded=held,
                        ram_free=services.free_bytes(cpu) + ram_own, ram_total=services.total_bytes(cpu),
                        ram_already=held if handle.offload != "none" else 0)


def plan_for_run(handle: ModelHandle, s: SampleSettings, services: HostServices, cache: ModelCache,
                 family_settings: Any = None, keyframes: int = 1) -> guard.Plan:
    """The guard's plan when it covers this run, re-checked against memory free now; else a new one."""
    shape = run_shape(handle, s, family_settings, keyframes)
    attached: guard.Plan | None = handle.plan
    policy = attached.policy if attached is not None else "off"
    headroom = attached.headroom if attached is not None else 0.10
    offload = attached.options.offload if attached is not None else handle.offload
    key = dataclasses.replace(handle.cache_key, offload=offload)
    budget = budget_for(handle, services, headroom, cache.held_bytes(key))
    if attached is not None and attached.covers(shape):
        extra = memory.speed_bytes(handle, shape) - memory.speed_bytes(handle, attached.shape)
        if policy != "off" and extra > 0 and attached.estimate.peak + extra > budget.usable:
            log.info("the speed settings add %s to VRAMGuard's plan; planning again", memory.gib(extra))
            return guard.plan_run(handle, shape, policy, budget)
        if policy != "off" and attached.estimate.peak > budget.usable:
            raise MemoryGuardError(
                f"free memory dropped since VRAMGuard planned this run: it needs "
                f"{memory.gib(attached.estimate.peak)}, {memory.gib(budget.usable)} is usable now. "
                "Free memory (close other GPU programs, unload other models) or run VRAMGuard again.")
        return attached
    if attached is None:
        return guard.plan_run(handle, shape, policy, budget)
    if attached.covers(dataclasses.replace(shape, keyframes=attached.shape.keyframes)):
        # VRAMGuard sees no images: an end image (its encode, and the tokens it adds where the family
        # appends them) is planned here, with the guard's policy
        log.info("planning again with the end image (%d images per clip)", shape.keyframes)
    else:
        log.warning("I2VSample settings differ from what VRAMGuard planned (%s vs %s); planning again",
                    shape, attached.shape)
    return guard.plan_run(handle, shape, policy, budget)


def weight_total(handle: ModelHandle) -> int:
    return sum(memory.weight_bytes(handle).values())


def held_bytes(handle: ModelHandle, options: memory.MemoryOptions) -> int:
    """Weight bytes a cached model holds on its device between runs, which a later run of it may count
    as free: all of them when resident; streamed per phase or offloaded to disk, none (each part is
    released after its phase; what stays is mapped from files, which free memory counts already)."""
    return weight_total(handle) if options.residency == "resident" else 0
