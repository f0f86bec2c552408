"""The memory guard: will this run fit in device memory and system RAM, and if not, what would?

The same code answers VRAMGuard in a graph and ``python -m i2v_nodes plan`` on the command line.
``error`` refuses a run that would not fit, with advice; ``adapt`` turns on memory options, in a
fixed order, until it fits (never fp8 weight storage, which changes the output; never the size
or frame count); ``off`` only reports.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from i2v_nodes.errors import MemoryGuardError
from i2v_nodes.runtime.loading.handle import ModelHandle
from i2v_nodes.runtime.loading.precision import device_type
from i2v_nodes.runtime.memory import (
    Estimate,
    MemoryOptions,
    RunShape,
    default_options,
    estimate,
    estimate_ram,
    gib,
)
from i2v_nodes.runtime.memory.advice import advice
from i2v_nodes.runtime.memory.fitting import (  # noqa: F401 - the guard's API, also asked for here
    OFFLOAD_LADDER,
    ON_DISK,
    STREAMED,
    Budget,
    disk_here,
    fits,
    ladder,
    largest_frames,
    largest_size,
    streamable,
    streams_here,
)

POLICIES = ["error", "adapt", "off"]


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
    (where the weights sit in RAM: on a CPU, or with group offload). With group offload on CUDA, where
    RAM is shorter than that, it keeps the groups on disk (the same frames again, slower still)."""
    def ram(way: MemoryOptions) -> str:
        return gib(estimate_ram(handle, shape, way).peak)

    streamed = dataclasses.replace(options, residency="phase")
    if streams_here(handle, options) and fits(handle, shape, streamed, budget):
        return streamed, [f"{STREAMED}: everything resident needs {ram(options)} of RAM"]
    on_disk = dataclasses.replace(options, residency="disk")
    if disk_here(handle, options) and fits(handle, shape, on_disk, budget):
        least = ram(streamed if streams_here(handle, options) else options)
        return on_disk, [f"{ON_DISK}: in RAM it needs {least} (everything resident {ram(options)})"]
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


def render_report(handle: ModelHandle, plan: Plan) -> str:
    shape = plan.shape
    # each line judges its own memory; the run fits when every line does (plan.fits)
    verdict = "fits" if plan.estimate.peak <= plan.usable else "DOES NOT FIT"
    weights = ", fp8 weights" if handle.weights == "fp8" else ""
    lines = [
        f"VRAMGuard [{plan.policy}]: {handle.name} ({handle.variant}, {handle.precision}{weights}, VAE "
        f"{handle.vae_precision}) on {handle.device}: {shape.width}x{shape.height}, {shape.num_frames} "
        f"frames, batch {shape.batch_size}, CFG {'on' if shape.cfg else 'off'}"
        f"{', with an end image' if shape.keyframes > 1 else ''}",
        f"estimated peak {plan.estimate.describe()}",
        f"available {gib(plan.available)}, usable after {plan.headroom:.0%} headroom {gib(plan.usable)}: "
        f"{verdict}",
    ]
    if device_type(handle.device) != "cpu":
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
