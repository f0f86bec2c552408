"""Whether a run fits a memory budget, the ladder of memory options VRAMGuard's adapt walks, and the
largest frame count and size that fit (the guard, the planner and the advice ask here)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from i2v_nodes.runtime.loading.handle import ModelHandle
from i2v_nodes.runtime.loading.precision import device_type
from i2v_nodes.runtime.memory import (
    MemoryOptions,
    RunShape,
    cpu_load,
    device_phase,
    estimate_ram,
    on_cpu,
    resident_weights,
)

OFFLOAD_LADDER = ("model", "group", "sequential")


@dataclass(frozen=True)
class Budget:
    """Memory the run may use: free memory now, minus a headroom kept for others, for the device
    and for system RAM (on a CPU they are the same pool)."""

    free: int
    total: int
    headroom: float
    already_loaded: int = 0  # device bytes of this model that are loaded already
    ram_free: int = 0
    ram_total: int = 0
    ram_already: int = 0  # RAM bytes of this model that are loaded already (offloaded weights)

    @property
    def usable(self) -> int:
        return self.free + self.already_loaded - int(self.headroom * self.total)

    @property
    def ram_usable(self) -> int:
        return self.ram_free + self.ram_already - int(self.headroom * self.ram_total)


def fits(handle: ModelHandle, shape: RunShape, options: MemoryOptions, budget: Budget) -> bool:
    """Whether the run fits the budget; the cheapest checks first (RAM needs no trace, then the
    resident weights, then one phase at a time), so a run that cannot fit is known early."""
    if not on_cpu(handle) and estimate_ram(handle, shape, options).peak > budget.ram_usable:
        return False
    if on_cpu(handle) and cpu_load(handle, options).peak > budget.usable:
        return False
    resident = resident_weights(handle, options.offload, options.residency)
    if max(resident.values()) > budget.usable:
        return False
    return all(
        device_phase(handle, shape, options, phase).peak <= budget.usable
        for phase in ("denoise", "decode", "encode")
    )


def ladder(
    handle: ModelHandle, shape: RunShape, options: MemoryOptions
) -> Iterator[tuple[str, MemoryOptions]]:
    """Memory options in the order the interface settles: decode chunking, VAE tiling, offload
    (CUDA only; streaming per phase once the weights sit in RAM by groups, then the groups on disk,
    before the slowest offload; on a CPU, where RAM is the device, streaming at once), then splitting
    the batch into sequential sub-batches (and CFG halves)."""
    if handle.rules.chunked_decode and options.decode_chunk > 1:
        yield (
            f"decode_chunk_size {options.decode_chunk} -> 1",
            (options := dataclasses.replace(options, decode_chunk=1)),
        )
    if not options.vae_tiling and handle.family.spec.vae_tiling:
        yield "VAE tiling on", (options := dataclasses.replace(options, vae_tiling=True))
    if device_type(handle.device) == "cuda":
        for step in _offload_steps(handle, options):
            yield step
            options = step[1]
    elif streamable(handle, options):
        yield STREAMED, (options := dataclasses.replace(options, residency="phase"))
    if shape.batch_size > 1 and options.clips_per_call != 1:
        yield (
            "batch split into one clip per denoiser call",
            (options := dataclasses.replace(options, clips_per_call=1)),
        )
    if shape.cfg and handle.family.spec.cfg_in_one_call and not options.split_cfg:
        yield "CFG halves run as two denoiser calls", dataclasses.replace(options, split_cfg=True)


def _offload_steps(handle: ModelHandle, options: MemoryOptions) -> Iterator[tuple[str, MemoryOptions]]:
    """The offload modes after the current one; after group offload, its ways to hold less RAM."""
    start = OFFLOAD_LADDER.index(options.offload) + 1 if options.offload in OFFLOAD_LADDER else 0
    if options.offload == "group":
        for label, options in _off_ram(handle, options):  # noqa: B020 - each step builds on the last
            yield label, options
    for mode in OFFLOAD_LADDER[start:]:
        # only group offload reads its groups back from disk: sequential offload streams from RAM
        residency = "phase" if options.residency == "disk" else options.residency
        yield (
            f"offload {options.offload} -> {mode}",
            (options := dataclasses.replace(options, offload=mode, residency=residency)),
        )
        if mode == "group":
            for label, options in _off_ram(handle, options):  # noqa: B020
                yield label, options


def _off_ram(handle: ModelHandle, options: MemoryOptions) -> Iterator[tuple[str, MemoryOptions]]:
    """With group offload on CUDA, the weights sit in RAM: stream them per phase, then (RAM shorter
    than one expert) keep them on disk, each group read back as it runs."""
    if streamable(handle, options):
        yield STREAMED, (options := dataclasses.replace(options, residency="phase"))
    if options.residency != "disk":
        yield ON_DISK, dataclasses.replace(options, residency="disk")


STREAMED = ("encoders and experts streamed per phase (each resident only while it runs; RAM for one at a "
            "time, each expert re-read from its file per clip)")


ON_DISK = ("weights offloaded to disk (group offload with offload_to_disk_path: RAM holds only the groups "
           "on their way to the device, each read back from a file in the temp folder as it runs)")


def streams_here(handle: ModelHandle, options: MemoryOptions) -> bool:
    """Whether VRAMGuard streams a run with these options per phase when it does not fit resident:
    where the weights sit in RAM (a CPU, or group offload on CUDA) and streaming would hold less.
    The tier chooser asks the same, so a workflow's loader settings alone reproduce its choice."""
    return (on_cpu(handle) or options.offload == "group") and streamable(handle, options)


def disk_here(handle: ModelHandle, options: MemoryOptions) -> bool:
    """Whether VRAMGuard can keep the weights on disk: group offload on CUDA, not already so."""
    return not on_cpu(handle) and options.offload == "group" and options.residency != "disk"


def streamable(handle: ModelHandle, options: MemoryOptions) -> bool:
    """Whether streaming per phase would hold less: not yet on, and more than one streamed component."""
    roles = handle.roles
    return options.residency == "resident" and len([*roles.encoders, *roles.denoisers]) > 1


# --- advice --------------------------------------------------------------------------------------


def largest_frames(
    handle: ModelHandle, shape: RunShape, options: MemoryOptions, budget: Budget, limit: int | None = None
) -> int:
    """The most frames (on the family's frame rule, up to ``limit``) that fit at this size with these
    options; 0 if none."""
    rules = handle.rules
    step = rules.frame_step
    low, high = (rules.min_frames - 1) // step, (min(limit or rules.max_frames, rules.max_frames) - 1) // step
    best = _largest(
        lambda k: fits(handle, dataclasses.replace(shape, num_frames=k * step + 1), options, budget),
        low,
        high,
    )
    return best * step + 1 if best is not None else 0


def largest_size(
    handle: ModelHandle, shape: RunShape, options: MemoryOptions, budget: Budget, limit: int | None = None
) -> RunShape | None:
    """The largest size of the same aspect (a multiple of the family's size step) that fits."""
    step = handle.rules.size_multiple
    longest = max(shape.width, shape.height)

    def at(long_side: int) -> RunShape:
        ratio = long_side / longest
        return dataclasses.replace(
            shape,
            width=max(step, int(shape.width * ratio) // step * step),
            height=max(step, int(shape.height * ratio) // step * step),
        )

    best = _largest(lambda n: fits(handle, at(n * step), options, budget), 1, (limit or longest) // step)
    return at(best * step) if best is not None else None


def _largest(fits_at: Callable[[int], bool], low: int, high: int) -> int | None:
    """Largest n in [low, high] with ``fits_at(n)``; memory grows with n, so a binary search
    (after the two ends: most answers are "all of it" or "none", each one probe)."""
    if high < low or not fits_at(low):
        return None
    if fits_at(high):
        return high
    high -= 1
    while low < high:
        mid = (low + high + 1) // 2
        if fits_at(mid):
            low = mid
        else:
            high = mid - 1
    return low


