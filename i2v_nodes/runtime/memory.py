"""Memory estimate and guard: will this run fit, and if not, what would?

The estimate is built from parts that are each measured, not guessed:

- weights: the model's parameter counts (safetensors headers or published config) times the
  bytes of the chosen dtypes, counting only what the offload mode keeps on the device;
- activations: the peak of live tensors during one UNet call and one VAE decode, traced on the
  meta device with the real architecture at the real shapes (:mod:`memtrace`), times a margin
  for allocator fragmentation and kernel workspaces;
- buffers: latents, decoded frames and the IMAGE output.

The run's peak is the largest of its phases (encode, denoise, decode), since each phase frees
its working memory before the next starts.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from dataclasses import dataclass

import torch

from . import families, memtrace
from .errors import MemoryGuardError
from .models import ModelHandle
from .precision import bytes_per_element, dtype_of

log = logging.getLogger(__name__)

GiB = 2**30
# Traced peaks were 0-27% below the resident-memory peaks measured on the full-size model
# (diffusers-notes: 256x256x8, 256x256x16, 384x384x8): allocator fragmentation and workspaces.
ACTIVATION_MARGIN = 1.25
# A CUDA context, cuBLAS/cuDNN workspaces and the allocator's first blocks.
CUDA_RUNTIME_BYTES = 768 * 2**20
# On a CPU: the libraries imported at first load and the loader's buffers. The full-size model in
# fp32 at 256x256x8 peaked at 11.04 GiB resident against 10.04 GiB of weights and activations.
CPU_RUNTIME_BYTES = 512 * 2**20
POLICIES = ["error", "adapt", "off"]
OFFLOAD_LADDER = ("model", "group", "sequential")


@dataclass(frozen=True)
class RunShape:
    width: int
    height: int
    num_frames: int
    batch_size: int = 1  # clips per input image (seeds seed, seed+1, ...)
    cfg: bool = True  # classifier-free guidance doubles the UNet batch


@dataclass(frozen=True)
class MemoryOptions:
    """The knobs that change memory without changing the output's size."""

    offload: str = "none"
    decode_chunk: int = 8  # frames per VAE decode call
    vae_tiling: bool = False
    clips_per_call: int = 0  # clips per UNet call; 0 = all of them at once
    split_cfg: bool = False  # run the CFG halves as two UNet calls

    def describe(self) -> str:
        return (f"offload {self.offload}, decode_chunk_size {self.decode_chunk}, VAE tiling "
                f"{'on' if self.vae_tiling else 'off'}, clips per UNet call "
                f"{self.clips_per_call or 'all'}{', CFG halves split' if self.split_cfg else ''}")


@dataclass(frozen=True)
class Estimate:
    weights: int  # resident on the device at the peak phase
    activations: int
    buffers: int
    runtime: int
    peak: int
    phase: str  # which phase sets the peak

    def describe(self) -> str:
        return (f"{gib(self.peak)} at {self.phase} (weights {gib(self.weights)}, activations "
                f"{gib(self.activations)}, buffers {gib(self.buffers)}, runtime {gib(self.runtime)})")


def gib(n: int | float) -> str:
    return f"{n / GiB:.2f} GiB"


def default_options(handle: ModelHandle, shape: RunShape) -> MemoryOptions:
    """Where planning starts: the load's offload mode, the largest decode chunk that costs no
    extra peak memory, and on CPU one clip per UNet call (batched matmuls on CPU differ from
    single ones in the last bits; one clip per call keeps clip i of a batch identical to a
    single run with seed + i)."""
    on_cpu = torch.device(handle.device).type == "cpu"
    options = MemoryOptions(offload=handle.offload, decode_chunk=1, clips_per_call=1 if on_cpu else 0)
    # planned on one clip, so the chunk (and with it the VAE's batch size, which moves the last
    # bits of its output) is the same whatever the batch size
    one_clip = dataclasses.replace(shape, batch_size=1)
    return dataclasses.replace(options, decode_chunk=free_decode_chunk(handle, one_clip, options))


def free_decode_chunk(handle: ModelHandle, shape: RunShape, options: MemoryOptions) -> int:
    """Largest decode chunk (up to 8 frames) whose decode peak stays under the denoise peak.

    Decoding several frames per VAE call is faster than upstream's one at a time; up to this
    size it is free, because the UNet phase needs more memory anyway.
    """
    for chunk in (8, 4, 2):
        if chunk > shape.num_frames:
            continue
        phases = estimate_phases(handle, shape, dataclasses.replace(options, decode_chunk=chunk))
        if phases["decode"] <= phases["denoise"]:
            return chunk
    return 1


# --- the estimate ------------------------------------------------------------------------------


def _phases(handle: ModelHandle, shape: RunShape, options: MemoryOptions) -> dict[str, Estimate]:
    weights_of = weight_bytes(handle)
    act_bytes = bytes_per_element(handle.precision)
    family = families.get(handle.family)
    scale = family.CONSTRAINTS.multiple_of
    latent_elems = 4 * shape.num_frames * (shape.height // scale) * (shape.width // scale)

    clips = shape.batch_size if options.clips_per_call == 0 else min(options.clips_per_call, shape.batch_size)
    rows = clips * (1 if options.split_cfg or not shape.cfg else 2)
    unet_act = _unet_peak(handle, rows, shape.num_frames, shape.height, shape.width)
    # latents, noise prediction and the CFG-doubled inputs of the whole batch stay alive
    denoise_buffers = latent_elems * act_bytes * shape.batch_size * (6 if shape.cfg else 3)

    chunk = min(options.decode_chunk, shape.num_frames)
    decode_act = _vae_decode_peak(handle, chunk, shape.height, shape.width, options.vae_tiling)
    encode_act = _vae_encode_peak(handle, shape.height, shape.width, options.vae_tiling)
    frame_bytes = 3 * shape.height * shape.width * 4  # decoded frames are float32
    decode_buffers = shape.num_frames * frame_bytes * 2  # one clip decoded, plus its IMAGE copy
    on_cpu = torch.device(handle.device).type == "cpu"
    if on_cpu:  # the IMAGE output of every clip lives in the same RAM
        decode_buffers += shape.num_frames * frame_bytes * shape.batch_size

    resident = _resident_weights(handle, options.offload, weights_of)
    phases = {
        "encode": (resident["encode"], encode_act, 0),
        "denoise": (resident["denoise"], unet_act, denoise_buffers),
        "decode": (resident["decode"], decode_act, decode_buffers),
    }
    runtime = CPU_RUNTIME_BYTES if on_cpu else CUDA_RUNTIME_BYTES
    return {phase: Estimate(weights, int(act * ACTIVATION_MARGIN), buffers, runtime,
                            weights + int(act * ACTIVATION_MARGIN) + buffers + runtime, phase)
            for phase, (weights, act, buffers) in phases.items()}


def estimate(handle: ModelHandle, shape: RunShape, options: MemoryOptions) -> Estimate:
    """Peak device memory of one run: its most demanding phase."""
    return max(_phases(handle, shape, options).values(), key=lambda e: e.peak)


def estimate_phases(handle: ModelHandle, shape: RunShape, options: MemoryOptions) -> dict[str, int]:
    """Peak bytes of each phase (encode, denoise, decode)."""
    return {phase: e.peak for phase, e in _phases(handle, shape, options).items()}


def weight_bytes(handle: ModelHandle) -> dict[str, int]:
    """Bytes of each component's weights in the handle's dtypes (the VAE in its own)."""
    per = bytes_per_element(handle.precision)
    return {name: count * (bytes_per_element(handle.vae_precision) if name == "vae" else per)
            for name, count in handle.params}


def _resident_weights(handle: ModelHandle, offload: str, weights: dict[str, int]) -> dict[str, int]:
    """Weight bytes on the device during each phase, for each offload mode."""
    total = sum(weights.values())
    unet, vae = weights.get("unet", 0), weights.get("vae", 0)
    encoders = max(weights.get("text_encoder", 0), weights.get("image_encoder", 0), vae)
    if offload == "none":
        return {"encode": total, "denoise": total, "decode": total}
    if offload == "model":  # one whole component on the device at a time
        return {"encode": encoders, "denoise": unet, "decode": vae}
    # group: one block of the running component (plus the next one, prefetched);
    # sequential: one layer at a time
    largest = _largest_unet_block(handle) if offload == "group" else _largest_unet_layer(handle)
    factor = 2 if offload == "group" else 1
    share = largest * bytes_per_element(handle.precision) * factor
    return {"encode": min(encoders, share), "denoise": min(unet, share), "decode": min(vae, share)}


def _unet_config(handle: ModelHandle) -> str:
    return json.dumps(handle.configs.get("unet", {}), sort_keys=True)


def _largest_unet_block(handle: ModelHandle) -> int:
    return _unet_part_sizes(handle.family, _unet_config(handle))[0]


def _largest_unet_layer(handle: ModelHandle) -> int:
    return _unet_part_sizes(handle.family, _unet_config(handle))[1]


@functools.lru_cache(maxsize=16)
def _unet_part_sizes(family_name: str, config: str) -> tuple[int, int]:
    """Parameters of the UNet's largest block (group offload) and largest layer (sequential).

    Remembered per config: the adapt ladder and the advice search ask for them many times.
    """
    unet = families.get(family_name).meta_unet(config)
    blocks = []
    for child in unet.children():
        parts = list(child.children()) if isinstance(child, torch.nn.ModuleList) else [child]
        blocks += [sum(p.numel() for p in part.parameters()) for part in parts]
    layer = max((sum(p.numel() for p in m.parameters(recurse=False)) for m in unet.modules()), default=0)
    return max(blocks, default=0), layer


def _unet_peak(handle: ModelHandle, rows: int, frames: int, height: int, width: int) -> int:
    config = _unet_config(handle)
    return _traced_unet_peak(handle.family, config, handle.precision, rows, frames, height, width)


@functools.lru_cache(maxsize=512)
def _traced_unet_peak(family_name: str, config: str, precision: str, rows: int, frames: int,
                      height: int, width: int) -> int:
    family = families.get(family_name)
    dtype = dtype_of(precision)
    unet = family.meta_unet(config, dtype)
    args, kwargs = family.unet_trace_inputs(json.loads(config), rows, frames, height, width, dtype)
    return memtrace.peak_bytes(unet, *args, **kwargs)


def _vae_decode_peak(handle: ModelHandle, chunk: int, height: int, width: int, tiling: bool) -> int:
    config = json.dumps(handle.configs.get("vae", {}), sort_keys=True)
    return _traced_vae_peak(handle.family, config, handle.vae_precision, "decode", chunk, height, width,
                            tiling)


def _vae_encode_peak(handle: ModelHandle, height: int, width: int, tiling: bool) -> int:
    config = json.dumps(handle.configs.get("vae", {}), sort_keys=True)
    return _traced_vae_peak(handle.family, config, handle.vae_precision, "encode", 1, height, width, tiling)


@functools.lru_cache(maxsize=512)
def _traced_vae_peak(family_name: str, config: str, precision: str, direction: str, batch: int,
                     height: int, width: int, tiling: bool) -> int:
    family = families.get(family_name)
    dtype = dtype_of(precision)
    vae = family.meta_vae(config, dtype)
    scale = family.CONSTRAINTS.multiple_of
    latent_channels = vae.config.latent_channels
    vae.use_tiling = tiling  # a plain flag on the shared meta module, restored below
    try:
        with torch.device("meta"):
            if direction == "decode":
                latents = torch.empty(batch, latent_channels, height // scale, width // scale, dtype=dtype)
                return memtrace.peak_bytes(vae.decode, latents)
            pixels = torch.empty(batch, 3, height, width, dtype=dtype)
            return memtrace.peak_bytes(vae.encode, pixels)
    finally:
        vae.use_tiling = False


# --- the guard ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What VRAMGuard attaches to the model: the options to run with and why."""

    shape: RunShape
    options: MemoryOptions
    estimate: Estimate
    policy: str
    headroom: float
    available: int  # free memory at planning time, minus what is already loaded for this model
    usable: int  # available minus the headroom
    fits: bool
    changes: tuple[str, ...]
    report: str


@dataclass(frozen=True)
class Budget:
    """Device memory the run may use: free memory now, minus a headroom kept for others."""

    free: int
    total: int
    headroom: float
    already_loaded: int = 0  # weight bytes of this model that are loaded already

    @property
    def usable(self) -> int:
        return self.free + self.already_loaded - int(self.headroom * self.total)


def plan_run(handle: ModelHandle, shape: RunShape, policy: str, budget: Budget,
             start: MemoryOptions | None = None) -> Plan:
    """Check the run against the budget and apply ``policy`` (error / adapt / off)."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    options = start or default_options(handle, shape)
    est = estimate(handle, shape, options)
    changes: list[str] = []
    if est.peak > budget.usable and policy == "adapt":
        options, est, changes = _adapt(handle, shape, options, budget)
    fits = est.peak <= budget.usable
    plan = Plan(shape, options, est, policy, budget.headroom, budget.free + budget.already_loaded,
                budget.usable, fits, tuple(changes), "")
    plan = dataclasses.replace(plan, report=render_report(handle, plan))
    if not fits and policy in ("error", "adapt"):
        raise MemoryGuardError(plan.report + "\n" + advice(handle, shape, options, budget))
    return plan


def _adapt(handle: ModelHandle, shape: RunShape, options: MemoryOptions,
           budget: Budget) -> tuple[MemoryOptions, Estimate, list[str]]:
    """Walk the ladder of memory options, cheapest first, until the run fits."""
    changes: list[str] = []
    est = estimate(handle, shape, options)
    for label, candidate in _ladder(handle, shape, options):
        if candidate == options:
            continue
        options = candidate
        changes.append(label)
        est = estimate(handle, shape, options)
        if est.peak <= budget.usable:
            break
    return options, est, changes


def _ladder(handle: ModelHandle, shape: RunShape, options: MemoryOptions):
    """Memory options in the order the interface settles: decode chunking, VAE tiling,
    offload (CUDA only), then splitting the batch into sequential sub-batches."""
    if options.decode_chunk > 1:
        yield f"decode_chunk_size {options.decode_chunk} -> 1", dataclasses.replace(options, decode_chunk=1)
        options = dataclasses.replace(options, decode_chunk=1)
    if not options.vae_tiling:
        options = dataclasses.replace(options, vae_tiling=True)
        yield "VAE tiling on", options
    if torch.device(handle.device).type == "cuda":
        start = OFFLOAD_LADDER.index(options.offload) + 1 if options.offload in OFFLOAD_LADDER else 0
        for mode in OFFLOAD_LADDER[start:]:
            yield f"offload {options.offload} -> {mode}", dataclasses.replace(options, offload=mode)
            options = dataclasses.replace(options, offload=mode)
    if shape.batch_size > 1 and options.clips_per_call != 1:
        options = dataclasses.replace(options, clips_per_call=1)
        yield "batch split into one clip per UNet call", options
    if shape.cfg and not options.split_cfg:
        options = dataclasses.replace(options, split_cfg=True)
        yield "CFG halves run as two UNet calls", options


def advice(handle: ModelHandle, shape: RunShape, options: MemoryOptions, budget: Budget) -> str:
    """What would fit: the largest frames, then the largest size, then which options."""
    family = families.get(handle.family)
    lines = []
    frames = _largest(lambda f: dataclasses.replace(shape, num_frames=f), handle, options, budget,
                      family.CONSTRAINTS.min_frames, shape.num_frames - 1)
    if frames:
        lines.append(f"- {frames} frames fit at {shape.width}x{shape.height} with these options")
    step = family.CONSTRAINTS.multiple_of
    longest = max(shape.width, shape.height)

    def at_size(long_side: int) -> RunShape:
        ratio = long_side / longest
        w = max(step, int(shape.width * ratio) // step * step)
        h = max(step, int(shape.height * ratio) // step * step)
        return dataclasses.replace(shape, width=w, height=h)

    side = _largest(at_size, handle, options, budget, step, longest - step, step=step)
    if side:
        fitted = at_size(side)
        lines.append(f"- {fitted.width}x{fitted.height} fits with {shape.num_frames} frames and these "
                     "options")
    for _label, candidate in _ladder(handle, shape, options):
        if estimate(handle, shape, candidate).peak <= budget.usable:
            lines.append(f"- the run as asked fits with {candidate.describe()} (policy 'adapt' picks this)")
            break
    else:
        lines.append("- no memory option makes the run as asked fit")
    if frames == 0 and side == 0:
        lines.append("- not even the smallest size or frame count fits: free memory or use a larger device")
    return "What would fit:\n" + "\n".join(lines)


def _largest(make, handle: ModelHandle, options: MemoryOptions, budget: Budget, low: int, high: int,
             step: int = 1) -> int:
    """Largest value in [low, high] (on the step grid) whose run fits; 0 if none does.

    Memory grows with frames and size, so a binary search over the grid is enough.
    """
    def fits(value: int) -> bool:
        return estimate(handle, make(value), options).peak <= budget.usable

    lo, hi = low // step, high // step
    if hi < lo or not fits(lo * step):
        return 0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid * step):
            lo = mid
        else:
            hi = mid - 1
    return lo * step


def render_report(handle: ModelHandle, plan: Plan) -> str:
    shape = plan.shape
    verdict = "fits" if plan.fits else "DOES NOT FIT"
    lines = [
        f"VRAMGuard [{plan.policy}]: {handle.name} ({handle.precision}, VAE {handle.vae_precision}) on "
        f"{handle.device}: {shape.width}x{shape.height}, {shape.num_frames} frames, "
        f"batch {shape.batch_size}, CFG {'on' if shape.cfg else 'off'}",
        f"estimated peak {plan.estimate.describe()}",
        f"available {gib(plan.available)}, usable after {plan.headroom:.0%} headroom "
        f"{gib(plan.usable)}: {verdict}",
        f"options: {plan.options.describe()}",
    ]
    if plan.changes:
        lines.append("adapted: " + "; ".join(plan.changes))
    trained = families.get(handle.family).CONSTRAINTS.trained_frames
    if shape.num_frames > trained:
        lines.append(f"note: {shape.num_frames} frames is above the {trained} this model was trained on; "
                     "motion may degrade")
    return "\n".join(lines)
