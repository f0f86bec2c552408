"""The memory guard: will this run fit in device memory and system RAM, and if not, what would?

The same code answers VRAMGuard in a graph and ``python -m i2v_nodes plan`` on the command line.
``error`` refuses a run that would not fit, with advice; ``adapt`` turns on memory options, in a
fixed order, until it fits (never fp8 weight storage, which changes the output; never the size
or frame count); ``off`` only reports.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from i2v_nodes.errors import MemoryGuardError
from i2v_nodes.runtime.loading.handle import ModelHandle
from i2v_nodes.runtime.memory import (
    Estimate,
    MemoryOptions,
    RunShape,
    default_options,
    device_phase,
    estimate,
    estimate_ram,
    gib,
    on_cpu,
    resident_weights,
)

POLICIES = ["error", "adapt", "off"]
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


@dataclass(frozen=True)
class Plan:
    """What VRAMGuard attaches to the model: the options to run with and why."""

    shape: RunShape
    options: MemoryOptions
    estimate: Estimate  # device
    ram: Estimate  # system RAM (the device estimate again on a CPU)
    policy: str
    headroom: float
    available: int  # free device memory at planning time, plus what this model already holds
    usable: int  # available minus the headroom
    ram_usable: int
    fits: bool
    changes: tuple[str, ...]
    report: str

    def covers(self, shape: RunShape) -> bool:
        """Whether this plan holds for ``shape``: the same run, or the same without CFG (less memory).
        Speed settings are left to the caller, which adds what they keep (``memory.speed_bytes``)."""
        shape = dataclasses.replace(shape, speed=self.shape.speed)
        return self.shape == shape or (self.shape.cfg and dataclasses.replace(self.shape, cfg=False) == shape)


def fits(handle: ModelHandle, shape: RunShape, options: MemoryOptions, budget: Budget) -> bool:
    """Whether the run fits the budget; the cheapest checks first (RAM needs no trace, then the
    resident weights, then one phase at a time), so a run that cannot fit is known early."""
    if not on_cpu(handle) and estimate_ram(handle, shape, options).peak > budget.ram_usable:
        return False
    resident = resident_weights(handle, options.offload, options.residency)
    if max(resident.values()) > budget.usable:
        return False
    return all(
        device_phase(handle, shape, options, phase).peak <= budget.usable
        for phase in ("denoise", "decode", "encode")
    )


def plan_run(
    handle: ModelHandle, shape: RunShape, policy: str, budget: Budget, start: MemoryOptions | None = None
) -> Plan:
    """Check the run against the budget and apply ``policy`` (error / adapt / off)."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    options = start or default_options(handle, shape)
    changes: list[str] = []
    if policy != "off" and not fits(handle, shape, options, budget):
        options, changes = _resident_or_streamed(handle, shape, options, budget)
    if policy == "adapt" and not fits(handle, shape, options, budget):
        options, more = _adapt(handle, shape, options, budget)
        changes += more
    ok = fits(handle, shape, options, budget)
    plan = Plan(
        shape,
        options,
        estimate(handle, shape, options),
        estimate_ram(handle, shape, options),
        policy,
        budget.headroom,
        budget.free + budget.already_loaded,
        budget.usable,
        budget.ram_usable,
        ok,
        tuple(changes),
        "",
    )
    plan = dataclasses.replace(plan, report=render_report(handle, plan))
    if not ok and policy in ("error", "adapt"):
        raise MemoryGuardError(plan.report + "\n" + advice(handle, shape, options, budget))
    return plan


def _resident_or_streamed(
    handle: ModelHandle, shape: RunShape, options: MemoryOptions, budget: Budget
) -> tuple[MemoryOptions, list[str]]:
    """Streaming per phase gives the same frames as keeping everything resident, slower: the guard
    picks it, whatever its policy, when the resident run does not fit and the streamed one does
    (where the weights sit in RAM: on a CPU, or with group offload)."""
    streamed = dataclasses.replace(options, residency="phase")
    where = on_cpu(handle) or options.offload == "group"
    if where and _streamable(handle, options) and fits(handle, shape, streamed, budget):
        resident = gib(estimate_ram(handle, shape, options).peak)
        return streamed, [f"{STREAMED}: everything resident needs {resident} of RAM"]
    return options, []


def _adapt(
    handle: ModelHandle, shape: RunShape, options: MemoryOptions, budget: Budget
) -> tuple[MemoryOptions, list[str]]:
    """Walk the ladder of memory options, cheapest first, until the run fits."""
    changes: list[str] = []
    for label, candidate in ladder(handle, shape, options):
        options = candidate
        changes.append(label)
        if fits(handle, shape, options, budget):
            break
    return options, changes


def ladder(
    handle: ModelHandle, shape: RunShape, options: MemoryOptions
) -> Iterator[tuple[str, MemoryOptions]]:
    """Memory options in the order the interface settles: decode chunking, VAE tiling, offload
    (CUDA only; streaming per phase once the weights sit in RAM by groups, before the slowest
    offload; on a CPU, where RAM is the device, at once), then splitting the batch into sequential
    sub-batches (and CFG halves)."""
    if handle.rules.chunked_decode and options.decode_chunk > 1:
        yield (
            f"decode_chunk_size {options.decode_chunk} -> 1",
            (options := dataclasses.replace(options, decode_chunk=1)),
        )
    if not options.vae_tiling and handle.family.spec.vae_tiling:
        yield "VAE tiling on", (options := dataclasses.replace(options, vae_tiling=True))
    if torch.device(handle.device).type == "cuda":
        start = OFFLOAD_LADDER.index(options.offload) + 1 if options.offload in OFFLOAD_LADDER else 0
        if options.offload == "group" and _streamable(handle, options):
            yield STREAMED, (options := dataclasses.replace(options, residency="phase"))
        for mode in OFFLOAD_LADDER[start:]:
            yield (
                f"offload {options.offload} -> {mode}",
                (options := dataclasses.replace(options, offload=mode)),
            )
            if mode == "group" and _streamable(handle, options):
                yield STREAMED, (options := dataclasses.replace(options, residency="phase"))
    elif _streamable(handle, options):
        yield STREAMED, (options := dataclasses.replace(options, residency="phase"))
    if shape.batch_size > 1 and options.clips_per_call != 1:
        yield (
            "batch split into one clip per denoiser call",
            (options := dataclasses.replace(options, clips_per_call=1)),
        )
    if shape.cfg and handle.family.spec.cfg_in_one_call and not options.split_cfg:
        yield "CFG halves run as two denoiser calls", dataclasses.replace(options, split_cfg=True)


STREAMED = ("encoders and experts streamed per phase (each resident only while it runs; RAM for one at a "
            "time, each expert re-read from its file per clip)")


def _streamable(handle: ModelHandle, options: MemoryOptions) -> bool:
    """Whether streaming per phase would hold less: not yet on, and more than one streamed component."""
    roles = handle.roles
    return options.residency != "phase" and len([*roles.encoders, *roles.denoisers]) > 1


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


def advice(handle: ModelHandle, shape: RunShape, options: MemoryOptions, budget: Budget) -> str:
    """What would fit: the largest frames, then the largest size, then which options."""
    lines = []
    frames = largest_frames(handle, shape, options, budget, limit=shape.num_frames)
    if frames and frames < shape.num_frames:
        lines.append(f"- {frames} frames fit at {shape.width}x{shape.height} with these options")
    smaller = largest_size(handle, shape, options, budget, limit=max(shape.width, shape.height) - 1)
    if smaller is not None:
        lines.append(
            f"- {smaller.width}x{smaller.height} fits with {shape.num_frames} frames and these options"
        )
    for _label, candidate in ladder(handle, shape, options):
        if fits(handle, shape, candidate, budget):
            lines.append(f"- the run as asked fits with {candidate.describe()} (policy 'adapt' picks this)")
            break
    else:
        lines.append("- no memory option makes the run as asked fit")
    if handle.weights != "fp8" and handle.fp8_storable:
        fp8 = dataclasses.replace(handle, weights="fp8")
        for candidate in (options, *(c for _, c in ladder(handle, shape, options))):
            if fits(fp8, shape, candidate, budget):
                lines.append(
                    f"- with LoadI2VModel's weights set to fp8 (slightly different output) it fits with "
                    f"{candidate.describe()}"
                )
                break
    if not on_cpu(handle) and estimate_ram(handle, shape, options).peak > budget.ram_usable:
        lines.append(
            f"- system RAM is short: {gib(estimate_ram(handle, shape, options).peak)} needed, "
            f"{gib(budget.ram_usable)} usable. Offload keeps weights in RAM; fp8 weights halve them; "
            "close other programs"
        )
    if frames == 0 and smaller is None:
        lines.append("- not even the smallest size or frame count fits: free memory or use a larger device")
    return "What would fit:\n" + "\n".join(lines)


def render_report(handle: ModelHandle, plan: Plan) -> str:
    shape = plan.shape
    verdict = "fits" if plan.fits else "DOES NOT FIT"
    weights = ", fp8 weights" if handle.weights == "fp8" else ""
    lines = [
        f"VRAMGuard [{plan.policy}]: {handle.name} ({handle.variant}, {handle.precision}{weights}, VAE "
        f"{handle.vae_precision}) on {handle.device}: {shape.width}x{shape.height}, {shape.num_frames} "
        f"frames, batch {shape.batch_size}, CFG {'on' if shape.cfg else 'off'}",
        f"estimated peak {plan.estimate.describe()}",
        f"available {gib(plan.available)}, usable after {plan.headroom:.0%} headroom {gib(plan.usable)}: "
        f"{verdict}",
    ]
    if torch.device(handle.device).type != "cpu":
        ram_verdict = "fits" if plan.ram.peak <= plan.ram_usable else "DOES NOT FIT"
        mapped = f" ({gib(plan.ram.file_backed)} of it file-backed)" if plan.ram.file_backed else ""
        lines.append(
            f"system RAM: peak {gib(plan.ram.peak)}{mapped} at {plan.ram.phase}, usable "
            f"{gib(plan.ram_usable)}: {ram_verdict}"
        )
    lines.append(f"options: {plan.options.describe()}")
    if plan.changes:
        lines.append("adapted: " + "; ".join(plan.changes))
    trained = handle.rules.trained_frames
    if shape.num_frames > trained:
        lines.append(
            f"note: {shape.num_frames} frames is above the {trained} this model was trained on; "
            "motion may degrade"
        )
    return "\n".join(lines)
