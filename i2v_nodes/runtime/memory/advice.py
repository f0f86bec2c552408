"""What VRAMGuard says when a run does not fit: the smallest changes that would make it fit, each with
its figure (fewer frames, a smaller size, the memory options, fp8 or GGUF weights, how much memory)."""

from __future__ import annotations

import dataclasses

from i2v_nodes.runtime.loading.handle import ModelHandle
from i2v_nodes.runtime.memory import (
    MemoryOptions,
    RunShape,
    estimate,
    estimate_phases,
    estimate_ram,
    gib,
    on_cpu,
)
from i2v_nodes.runtime.memory.fitting import Budget, fits, ladder, largest_frames, largest_size
from i2v_nodes.runtime.memory.weights import weight_bytes

# Bits a weight of the GGUF quantisations people run, unquantised parts included, as in the published
# Wan 2.2 A14B files (Q4_K_M: 9.65 GB for 14.3B weights); llama.cpp's nominal figures are a little lower.
GGUF_BITS = {"Q8_0": 8.6, "Q6_K": 7.0, "Q5_K_M": 6.2, "Q4_K_M": 5.4, "Q3_K_M": 4.3}
ADVISED_GGUF = ("Q4_K_M", "Q3_K_M")


def advice(handle: ModelHandle, shape: RunShape, options: MemoryOptions, budget: Budget) -> str:
    """What would fit: fewer frames, a smaller size (both with every memory option if the options as
    asked are not enough), the options, fp8 or GGUF weights, and how much more memory it needs."""
    rescue = next((c for _label, c in ladder(handle, shape, options) if fits(handle, shape, c, budget)), None)
    # frames and size with the options as asked when some option makes the run fit; else with them all
    frugal = options if rescue is not None else _most_frugal(handle, shape, options)
    suffix = " and these options" if frugal == options else f" with {frugal.describe()}"
    lines = []
    frames = largest_frames(handle, shape, frugal, budget, limit=shape.num_frames)
    if frames and frames < shape.num_frames:
        lines.append(f"- {frames} frames fit at {shape.width}x{shape.height}{suffix}")
    smaller = largest_size(handle, shape, frugal, budget, limit=max(shape.width, shape.height) - 1)
    if smaller is not None:
        lines.append(f"- {smaller.width}x{smaller.height} fits with {shape.num_frames} frames{suffix}")
    if rescue is not None:
        lines.append(f"- the run as asked fits with {rescue.describe()} (policy 'adapt' picks this)")
    else:
        lines.append("- no memory option makes the run as asked fit")
    lines += _fp8(handle, shape, options, budget)
    gguf = _gguf(handle, shape, frugal, budget)
    lines += gguf + _memory_short(handle, shape, frugal, budget)
    if frames == 0 and smaller is None and not any(line.endswith(", fits") for line in gguf):
        lines.append("- not even the smallest size or frame count fits: free memory or use a larger device")
    return "What would fit:\n" + "\n".join(lines)


def _most_frugal(handle: ModelHandle, shape: RunShape, options: MemoryOptions) -> MemoryOptions:
    """The options with every rung of the ladder taken: the least memory the run can be given."""
    for _label, candidate in ladder(handle, shape, options):
        options = candidate
    return options


def _fp8(handle: ModelHandle, shape: RunShape, options: MemoryOptions, budget: Budget) -> list[str]:
    if handle.weights == "fp8" or not handle.fp8_storable:
        return []
    fp8 = dataclasses.replace(handle, weights="fp8")
    for candidate in (options, *(c for _, c in ladder(handle, shape, options))):
        if fits(fp8, shape, candidate, budget):
            return [f"- with LoadI2VModel's weights set to fp8 (slightly different output) it fits with "
                    f"{candidate.describe()}"]
    return []


def _gguf(handle: ModelHandle, shape: RunShape, options: MemoryOptions, budget: Budget) -> list[str]:
    """The denoisers as GGUF files (read by LoadI2VModelFiles from ComfyUI's unet folder), for the
    families that read them: each quantisation's figure, from the weights that would change."""
    parts = handle.files.parts if handle.files is not None else {}
    denoisers = handle.roles.denoisers
    if not (handle.family.files and handle.family.files.gguf) or any(
            parts.get(d) is not None and parts[d].gguf for d in denoisers):
        return []
    params, sizes = dict(handle.params), weight_bytes(handle)
    largest = max(sizes.get(d, 0) for d in denoisers)
    lines = []
    for quant in ADVISED_GGUF:
        saved = [sizes.get(d, 0) - int(params.get(d, 0) * GGUF_BITS[quant] / 8) for d in denoisers]
        streamed = options.residency != "resident"  # one denoiser held at a time (or none); else all
        need = _needed(handle, shape, options) - max(0, max(saved) if streamed else sum(saved))
        each = int(max(params.get(d, 0) for d in denoisers) * GGUF_BITS[quant] / 8)
        verdict = "fits" if need <= _usable(handle, budget) and _device_fits(handle, shape, options, budget,
                                                                              saved) else "still short"
        lines.append(f"- GGUF {quant} denoiser files (LoadI2VModelFiles, ComfyUI's unet folder) hold "
                     f"{gib(each)} each instead of {gib(largest)}: about {gib(need)} of RAM needed, "
                     f"{verdict}")
    return lines


def _needed(handle: ModelHandle, shape: RunShape, options: MemoryOptions) -> int:
    """The binding figure: device memory (RAM on a CPU), or RAM when that is what a GPU run lacks."""
    if on_cpu(handle):
        return max(estimate_phases(handle, shape, options).values())
    return estimate_ram(handle, shape, options).peak


def _device_fits(handle: ModelHandle, shape: RunShape, options: MemoryOptions, budget: Budget,
                 saved: list[int]) -> bool:
    """On a GPU, whether the device fits too: offloaded weights leave it the activations, which a
    GGUF file does not shrink; without offload it holds the smaller weights."""
    if on_cpu(handle):
        return True
    peak = estimate(handle, shape, options).peak - (sum(saved) if options.offload == "none" else 0)
    return peak <= budget.usable


def _usable(handle: ModelHandle, budget: Budget) -> int:
    return budget.usable if on_cpu(handle) else budget.ram_usable


def _memory_short(handle: ModelHandle, shape: RunShape, options: MemoryOptions, budget: Budget) -> list[str]:
    """How much memory the run needs with every option (and fp8 weights, where they need less), and
    how much more than there is."""
    candidates = [(handle, options.describe())]
    if handle.weights != "fp8" and handle.fp8_storable:
        candidates.append((dataclasses.replace(handle, weights="fp8"), f"fp8 weights, {options.describe()}"))

    def short(candidate: ModelHandle) -> tuple[int, int]:
        ram = 0 if on_cpu(candidate) else estimate_ram(candidate, shape, options).peak - budget.ram_usable
        return estimate(candidate, shape, options).peak - budget.usable, ram

    chosen, label = min(candidates, key=lambda c: sum(max(0, n) for n in short(c[0])))
    device, ram = short(chosen)
    lines = []
    if device > 0:
        what = "RAM" if on_cpu(handle) else "device memory"
        lines.append(f"- with {label} it needs {gib(device + budget.usable)} of {what}, {gib(budget.usable)} "
                     f"usable: {gib(device)} more")
    if ram > 0:
        lines.append(f"- with {label} it needs {gib(ram + budget.ram_usable)} of system RAM, "
                     f"{gib(budget.ram_usable)} usable: {gib(ram)} more")
    return lines
