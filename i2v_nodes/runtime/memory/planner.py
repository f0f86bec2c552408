"""Will this run on my machine? The answers of ``python -m i2v_nodes plan`` and the tier chooser.

Works from a model handle alone, so a published model is sized from its configuration with no
weights on disk. The verdict is the guard's own (:func:`guard.fits`); this module only asks it
for more settings: every memory option in turn, with and without fp8 weight storage, and for
each the largest frame count and size that would fit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from i2v_nodes.runtime import memory
from i2v_nodes.runtime.loading.handle import ModelHandle
from i2v_nodes.runtime.loading.precision import device_type
from i2v_nodes.runtime.memory import guard
from i2v_nodes.runtime.memory.advice import advice

GiB = 2**30


@dataclass(frozen=True)
class Machine:
    """A machine to plan for: device memory and system RAM (GiB), and the headroom kept free."""

    vram_gib: float
    ram_gib: float
    headroom: float = 0.10

    def budget(self) -> guard.Budget:
        return guard.Budget(
            free=int(self.vram_gib * GiB),
            total=int(self.vram_gib * GiB),
            headroom=self.headroom,
            ram_free=int(self.ram_gib * GiB),
            ram_total=int(self.ram_gib * GiB),
        )


@dataclass(frozen=True)
class Option:
    """One way to run: weight storage plus memory options, with its figures."""

    weights: str
    options: memory.MemoryOptions
    device_phases: dict[str, int]
    ram_phases: dict[str, int]
    device_peak: int
    ram_peak: int
    fits: bool
    chunked_decode: bool  # whether decode chunks mean anything for this family
    largest_frames: int  # at the asked size, up to twice the asked (or trained) count; 0: none fits
    largest_size: tuple[int, int] | None  # at the asked frames, same aspect; None: none fits
    ram_file_backed: int = 0  # of the RAM peak, pages mapped from files (the kernel may drop them)

    def label(self) -> str:
        o = self.options
        parts = [
            f"weights {self.weights}",
            f"offload {o.offload}",
            f"VAE tiling {'on' if o.vae_tiling else 'off'}",
        ]
        if self.chunked_decode and o.decode_chunk != 8:
            parts.append(f"decode chunk {o.decode_chunk}")
        if o.clips_per_call:
            parts.append(f"{o.clips_per_call} clip(s) per call")
        if o.split_cfg:
            parts.append("CFG halves split")
        if o.residency in memory.RESIDENCY_WORDS:
            parts.append(memory.RESIDENCY_WORDS[o.residency].removeprefix(", "))
        return ", ".join(parts)

    def as_data(self) -> dict[str, Any]:
        return {
            "weights": self.weights,
            "options": dataclasses.asdict(self.options),
            "device_gib": _gib_map(self.device_phases),
            "ram_gib": _gib_map(self.ram_phases),
            "device_peak_gib": round(self.device_peak / GiB, 2),
            "ram_peak_gib": round(self.ram_peak / GiB, 2),
            "ram_file_backed_gib": round(self.ram_file_backed / GiB, 2),
            "fits": self.fits,
            "largest_frames": self.largest_frames,
            "largest_size": list(self.largest_size) if self.largest_size else None,
        }


def _gib_map(phases: dict[str, int]) -> dict[str, float]:
    return {phase: round(value / GiB, 2) for phase, value in phases.items()}


def option_sets(handle: ModelHandle, shape: memory.RunShape) -> Iterator[tuple[str, memory.MemoryOptions]]:
    """The handle's own weight storage with its default options and every step of the guard's
    ladder; then the same with fp8 storage (never chosen silently: it changes the output)."""
    storages = [handle.weights] + (["fp8"] if handle.weights != "fp8" and handle.fp8_storable else [])
    for weights in storages:
        variant = dataclasses.replace(handle, weights=weights)
        start = memory.default_options(variant, shape)
        yield weights, start
        for _label, options in guard.ladder(variant, shape, start):
            yield weights, options


def evaluate(
    handle: ModelHandle,
    shape: memory.RunShape,
    weights: str,
    options: memory.MemoryOptions,
    budget: guard.Budget,
    search: bool = True,
) -> Option:
    variant = dataclasses.replace(handle, weights=weights)
    device = memory.estimate_phases(variant, shape, options)
    ram = memory.ram_phases(variant, shape, options)
    fits = guard.fits(variant, shape, options, budget)
    limit = 2 * max(shape.num_frames, handle.rules.trained_frames)
    frames = guard.largest_frames(variant, shape, options, budget, limit=limit) if search else 0
    size = guard.largest_size(variant, shape, options, budget) if search else None
    return Option(
        weights,
        options,
        device,
        ram,
        max(device.values()),
        max(ram.values()),
        fits,
        handle.rules.chunked_decode,
        frames,
        (size.width, size.height) if size else None,
        memory.estimate_ram(variant, shape, options).file_backed,
    )


@dataclass(frozen=True)
class Answer:
    handle: ModelHandle
    shape: memory.RunShape
    machine: Machine
    asked: Option  # the run as configured
    options: tuple[Option, ...]  # every option set, in ladder order
    searched: bool = True  # whether the largest frames and sizes were searched
    advice: str = ""  # when nothing fits: the smallest changes that would, with their figures

    @property
    def fits(self) -> bool:
        return self.asked.fits

    def first_fitting(self) -> Option | None:
        return next((o for o in self.options if o.fits), None)

    def as_data(self) -> dict[str, Any]:
        h, s = self.handle, self.shape
        fitting = self.first_fitting()
        return {
            "model": h.name,
            "family": h.family.name,
            "variant": h.variant,
            "precision": h.precision,
            "vae_precision": h.vae_precision,
            "device": h.device,
            "run": {
                "width": s.width,
                "height": s.height,
                "frames": s.num_frames,
                "batch": s.batch_size,
                "cfg": s.cfg,
            },
            "machine": dataclasses.asdict(self.machine),
            "fits": self.fits,
            "asked": self.asked.as_data(),
            "fitting_options": fitting.as_data() if fitting else None,
            "options": [o.as_data() for o in self.options],
            "advice": self.advice.splitlines()[1:],
        }


def answer(handle: ModelHandle, shape: memory.RunShape, machine: Machine, search: bool = True) -> Answer:
    """The verdict, every option's figures and, with ``search``, the largest frames and size of each
    (most of the time goes to that search: every other frame count and size is traced anew)."""
    budget = machine.budget()
    asked = evaluate(handle, shape, handle.weights, memory.default_options(handle, shape), budget, search)
    options = tuple(
        evaluate(handle, shape, weights, options, budget, search)
        for weights, options in option_sets(handle, shape)
    )
    advised = ""
    if not any(option.fits for option in (asked, *options)):
        advised = advice(handle, shape, memory.default_options(handle, shape), budget)
    return Answer(handle, shape, machine, asked, options, search, advised)


def render(result: Answer) -> str:
    h, s, m = result.handle, result.shape, result.machine
    lines = [
        f"{h.name} ({h.variant}), {h.precision}, VAE {h.vae_precision}, on {h.device}: "
        f"{s.width}x{s.height}, {s.num_frames} frames, batch {s.batch_size}, CFG {'on' if s.cfg else 'off'}",
        f"machine: {m.vram_gib:g} GiB device memory, {m.ram_gib:g} GiB system RAM, {m.headroom:.0%} kept "
        f"free",
        "",
        f"as asked ({result.asked.label()}): {_verdict(result.asked)}",
        _phase_line("device", result.asked.device_phases),
        _phase_line("RAM", result.asked.ram_phases),
        "",
    ]
    lines.append(
        "each memory option (cumulative, in the order VRAMGuard's adapt tries them; fp8 changes the output):"
    )
    for option in result.options:
        verdict = "fits" if option.fits else "does not fit"
        line = (f"- {option.label()}: device {option.device_peak / GiB:.1f} GiB, RAM "
                f"{option.ram_peak / GiB:.1f} GiB{_mapped(option)}: {verdict}")
        if result.searched:
            size = f"{option.largest_size[0]}x{option.largest_size[1]}" if option.largest_size else "none"
            limit = 2 * max(s.num_frames, h.rules.trained_frames)
            line += (f"; largest frames here {option.largest_frames or 'none'} (of up to {limit}), "
                     f"largest size at {s.num_frames} frames {size}")
        lines.append(line)
    fitting = result.first_fitting()
    lines.append("")
    lines.append(
        "verdict: fits as asked"
        if result.fits
        else f"verdict: does not fit as asked; it fits with {fitting.label()}"
        if fitting
        else "verdict: does not fit with any memory option"
    )
    if result.advice:
        lines.append(result.advice)
    return "\n".join(lines)


def _verdict(option: Option) -> str:
    return (
        f"device peak {option.device_peak / GiB:.1f} GiB, RAM peak {option.ram_peak / GiB:.1f} GiB"
        f"{_mapped(option)}: {'FITS' if option.fits else 'DOES NOT FIT'}"
    )


def _mapped(option: Option) -> str:
    """How much of the RAM peak is file-backed (droppable) beside the anonymous rest."""
    if not option.ram_file_backed:
        return ""
    anonymous = option.ram_peak - option.ram_file_backed
    return f" ({anonymous / GiB:.1f} anonymous + {option.ram_file_backed / GiB:.1f} file-backed)"


def _phase_line(pool: str, phases: dict[str, int]) -> str:
    return f"  {pool} per phase: " + ", ".join(
        f"{phase} {value / GiB:.1f} GiB" for phase, value in phases.items()
    )


# --- choosing a tier -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    handle: ModelHandle  # with the chosen weight storage
    shape: memory.RunShape
    options: memory.MemoryOptions
    device_peak: int
    ram_peak: int


def ways_to_run(handle: ModelHandle, shape: memory.RunShape) -> Iterator[tuple[str, memory.MemoryOptions]]:
    """Every combination of weight storage, offload mode, residency and VAE tiling, best first: every
    way with everything resident before any streamed per phase (streaming re-reads each expert from its
    file per clip, so a run that fits resident, even in fp8 or with a slower offload, keeps doing so);
    within each, full-precision weights before fp8, then the fastest offload, then VAE tiling off
    before on. Streaming is tried only where VRAMGuard would stream the same workflow: with the weights
    in RAM (group offload on CUDA; a CPU), so the graph's loader settings alone reproduce the choice."""
    cuda = device_type(handle.device) == "cuda"
    ways = {"resident": ("none", "model", "group", "sequential") if cuda else ("none",),
            "phase": ("group",) if cuda else ("none",), "disk": ("group",) if cuda else ()}
    storages = ("default", "fp8") if handle.fp8_storable else ("default",)
    tilings = (False, True) if handle.family.spec.vae_tiling else (False,)
    for residency, offloads in ways.items():
        for weights in storages:
            start = memory.default_options(dataclasses.replace(handle, weights=weights), shape)
            for offload in offloads:
                way = dataclasses.replace(start, offload=offload)
                if residency == "phase" and not guard.streams_here(handle, way):
                    continue
                if residency == "disk" and not guard.disk_here(handle, way):
                    continue
                for tiling in tilings:
                    yield weights, dataclasses.replace(way, residency=residency, vae_tiling=tiling)


def choose(candidates: Iterable[tuple[ModelHandle, memory.RunShape]], machine: Machine) -> Choice | None:
    """The first candidate (best first) that fits, with its best way to run (see :func:`ways_to_run`)."""
    budget = machine.budget()
    for handle, shape in candidates:
        for weights, options in ways_to_run(handle, shape):
            chosen = dataclasses.replace(handle, weights=weights)
            if guard.fits(chosen, shape, options, budget):
                return Choice(
                    chosen,
                    shape,
                    options,
                    memory.estimate(chosen, shape, options).peak,
                    memory.estimate_ram(chosen, shape, options).peak,
                )
    return None
