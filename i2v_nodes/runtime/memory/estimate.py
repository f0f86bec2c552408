"""Memory estimate: peak device memory and peak system RAM of one run, before anything loads.

The estimate is built from parts that are each measured, not guessed:

- weights: the model's parameter counts (safetensors headers or published config) times the
  bytes of the chosen dtypes (one byte for fp8 storage), counting only what the offload mode
  keeps on the device in each phase, and what it keeps in system RAM;
- activations: the peak of live tensors during one denoiser call, the VAE's encode and decode
  and the encoders, traced on the meta device with the real architecture at the real shapes
  (:mod:`memtrace`), times a margin for allocator fragmentation and kernel workspaces;
- buffers: latents, decoded frames and the IMAGE output.

The run's peak is the largest of its phases (encode, denoise, decode), since each phase frees its
working memory before the next starts. System RAM adds a load phase: what passes through RAM
while the weights are read and, for fp8 storage or another dtype than stored, cast (on a CPU, where
the RAM is the device, the load is one of the device phases).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from i2v_nodes.families.contract.family import Family
from i2v_nodes.runtime.loading.handle import ModelHandle
from i2v_nodes.runtime.loading.precision import bytes_per_element
from i2v_nodes.runtime.memory import peaks
from i2v_nodes.runtime.memory.weights import (
    PHASES,
    in_place_bytes,
    largest_layer_bytes,
    on_cpu,
    pinned_bytes,
    read_bytes,
    resident_weights,
    stored_bytes,
    streamed_weights,
    weight_bytes,
)
from i2v_nodes.runtime.speed import step_cache
from i2v_nodes.runtime.speed.settings import SpeedSettings

GiB = 2**30
# Traced peaks were 0-27% below the resident-memory peaks measured on the full-size I2VGen-XL
# (diffusers-notes: 256x256x8, 256x256x16, 384x384x8): allocator fragmentation and workspaces.
ACTIVATION_MARGIN = 1.25
# A CUDA context, cuBLAS/cuDNN workspaces and the allocator's first blocks.
CUDA_RUNTIME_BYTES = 768 * 2**20
# On a CPU: the libraries imported at first load and the loader's buffers. The full-size I2VGen-XL
# in fp32 at 256x256x8 peaked at 11.04 GiB resident against 10.04 GiB of weights and activations.
CPU_RUNTIME_BYTES = 512 * 2**20
# System RAM of a process driving a GPU: Python, torch and the CUDA libraries mapped on the host.
HOST_RUNTIME_BYTES = 2 * GiB


@dataclass(frozen=True)
class RunShape:
    width: int
    height: int
    num_frames: int
    batch_size: int = 1  # clips per input image (seeds seed, seed+1, ...)
    cfg: bool = True  # classifier-free guidance: twice the denoiser rows (or calls)
    speed: SpeedSettings = SpeedSettings()  # I2VSpeedOptions: a step cache and compile keep memory
    keyframes: int = 1  # images each clip is conditioned on: the start image, plus an end image (2)


@dataclass(frozen=True)
class MemoryOptions:
    """The knobs that change memory without changing the output."""

    offload: str = "none"
    decode_chunk: int = 8  # frames per VAE decode call (families that decode in chunks)
    vae_tiling: bool = False
    clips_per_call: int = 0  # clips per denoiser call; 0 = all of them at once
    split_cfg: bool = False  # run the CFG halves as two denoiser calls
    # resident: everything loaded stays; phase: encoders and experts streamed; disk: group offload's
    # groups kept in files, read back as they run (CUDA)
    residency: str = "resident"

    def describe(self) -> str:
        return (f"offload {self.offload}, decode_chunk_size {self.decode_chunk}, VAE tiling "
                f"{'on' if self.vae_tiling else 'off'}, clips per denoiser call "
                f"{self.clips_per_call or 'all'}{', CFG halves split' if self.split_cfg else ''}"
                f"{RESIDENCY_WORDS.get(self.residency, '')}")


RESIDENCY_WORDS = {"phase": ", streamed per phase", "disk": ", offloaded to disk"}


@dataclass(frozen=True)
class Estimate:
    """Peak bytes of one memory pool (device or system RAM) and the phase that sets it."""

    weights: int  # resident in this pool at the peak phase
    activations: int
    buffers: int
    runtime: int
    peak: int
    phase: str
    file_backed: int = 0  # of the weights, bytes mapped from files: pages the kernel may drop and re-read

    @property
    def anonymous(self) -> int:
        """Private memory at the peak: what stays until freed (a memory limit ends the process for it)."""
        return self.peak - self.file_backed

    def describe(self) -> str:
        mapped = f" ({gib(self.file_backed)} of them file-backed)" if self.file_backed else ""
        return (f"{gib(self.peak)} at {self.phase} (weights {gib(self.weights)}{mapped}, activations "
                f"{gib(self.activations)}, buffers {gib(self.buffers)}, runtime {gib(self.runtime)})")


def gib(n: int | float) -> str:
    return f"{n / GiB:.2f} GiB"


# --- activations ---------------------------------------------------------------------------------


def denoiser_rows(handle: ModelHandle, shape: RunShape, options: MemoryOptions) -> int:
    # a family that runs its stock pipeline once per clip never has more clips in one call
    batch = shape.batch_size // handle.family.pipeline_calls(shape.batch_size)
    clips = batch if options.clips_per_call == 0 else min(options.clips_per_call, batch)
    both_halves = shape.cfg and handle.family.spec.cfg_in_one_call and not options.split_cfg
    return clips * (2 if both_halves else 1)


def _traced_denoiser(family: Family, variant: str, configs: str, precision: str, rows: int, frames: int,
                     height: int, width: int, kernels: str) -> int:
    return peaks.denoiser(family, variant, configs, precision, rows, frames, height, width, kernels)


def _traced_vae(family: Family, variant: str, configs: str, precision: str, direction: str, frames: int,
                height: int, width: int, tiling: bool, kernels: str) -> int:
    return peaks.vae(family, variant, configs, precision, direction, frames, height, width, tiling, kernels)


def _traced_encoders(family: Family, variant: str, configs: str, precision: str, kernels: str) -> int:
    return peaks.encoders(family, variant, configs, precision, kernels)


def _kernels(handle: ModelHandle) -> str:
    """Whose fused kernels the run uses: CUDA's fuse more than a CPU's (see memory.trace)."""
    return "cuda" if str(handle.device).split(":")[0] == "cuda" else "cpu"


def denoised_frames(handle: ModelHandle, shape: RunShape) -> int:
    """The output frames whose latents the denoiser works on: the clip's, plus the latent frames each
    keyframe after the first appends to the sequence where the family conditions that way (LTX: an end
    image is one more latent frame of tokens; Wan conditions in place)."""
    takes = handle.family.spec.keyframes.get(handle.variant)
    appended = takes.appended_frames * (shape.keyframes - 1) if takes is not None else 0
    return shape.num_frames + appended * handle.rules.vae_temporal


def denoiser_activations(handle: ModelHandle, shape: RunShape, options: MemoryOptions) -> int:
    """Traced bytes of one denoiser call (before the margin), plus fp8's upcast copy of one layer, or
    GGUF's dequantisation of its costliest matrix (each is dequantised as its layer runs)."""
    rows = denoiser_rows(handle, shape, options)
    traced = _traced_denoiser(handle.family, handle.variant, handle.configs_json, handle.precision, rows,
                              denoised_frames(handle, shape), shape.height, shape.width, _kernels(handle))
    parts = handle.files.parts if handle.files is not None else {}
    gguf = [parts[c].gguf.dequantise_peak for c in handle.roles.denoisers if c in parts and parts[c].gguf]
    if gguf:
        traced += max(gguf)
    elif handle.weights == "fp8":  # layerwise casting holds one layer's weights in the compute dtype
        traced += max(largest_layer_bytes(handle, c) for c in handle.roles.denoisers)
    return traced


# --- the phases ----------------------------------------------------------------------------------


def device_phase(handle: ModelHandle, shape: RunShape, options: MemoryOptions, phase: str) -> Estimate:
    """Peak device memory of one phase (each phase is traced only when asked for)."""
    rules = handle.rules
    family, variant, configs = handle.family, handle.variant, handle.configs_json
    weights = resident_weights(handle, options.offload, options.residency)[phase]
    buffers = 0
    if phase == "encode":
        act = max(_traced_vae(family, variant, configs, handle.vae_precision, "encode", shape.num_frames,
                              shape.height, shape.width, options.vae_tiling, _kernels(handle)),
                  _traced_encoders(family, variant, configs, handle.precision, _kernels(handle)))
        # each later keyframe (an end image) waits on the device as float32 pixels beside the encode
        buffers = (shape.keyframes - 1) * _frame_bytes(shape)
    elif phase == "denoise":
        act = denoiser_activations(handle, shape, options)
        latent_elems = (rules.latent_channels * rules.latent_frames(denoised_frames(handle, shape))
                        * (shape.height // rules.vae_spatial) * (shape.width // rules.vae_spatial))
        # latents, noise predictions and the conditioning of the whole batch stay alive (float32 at most)
        buffers = latent_elems * 4 * shape.batch_size * (6 if shape.cfg else 3)
        buffers += speed_bytes(handle, shape)
    else:
        frames = min(options.decode_chunk, shape.num_frames) if rules.chunked_decode else shape.num_frames
        act = _traced_vae(family, variant, configs, handle.vae_precision, "decode", frames, shape.height,
                          shape.width, options.vae_tiling, _kernels(handle))
        buffers = shape.num_frames * _frame_bytes(shape) * 2  # one clip decoded, plus its IMAGE copy
        if on_cpu(handle):  # the IMAGE output of every clip lives in the same RAM
            buffers += shape.num_frames * _frame_bytes(shape) * shape.batch_size
    runtime = CPU_RUNTIME_BYTES if on_cpu(handle) else CUDA_RUNTIME_BYTES
    mapped = _file_backed(handle, options, weights) if on_cpu(handle) else 0
    return _estimate(phase, weights, int(act * ACTIVATION_MARGIN), buffers, runtime, mapped)


def _file_backed(handle: ModelHandle, options: MemoryOptions, weights: int) -> int:
    """Of ``weights`` in RAM, the file-backed bytes: streamed per phase, all of them (what was converted
    is spilled to a file); else what lies in place."""
    if options.residency in ("phase", "disk"):
        return weights
    return min(weights, sum(in_place_bytes(handle).values()))


# Allowances for torch.compile (not traced): the compiled kernels and their workspace on the
# device, and in RAM the compile workers and graphs while the first run compiles.
COMPILE_DEVICE_BYTES = 512 * 2**20
COMPILE_RAM_BYTES = GiB


def speed_bytes(handle: ModelHandle, shape: RunShape) -> int:
    """What the speed settings keep alive while denoising: a step cache's hidden states (per cache
    context: the separate CFG calls each keep their own) and compile's workspace."""
    family, speed = handle.family, shape.speed
    total = COMPILE_DEVICE_BYTES if speed.compile != "off" else 0
    if on_cpu(handle):
        total += _compile_ram(shape)
    req = step_cache.request(speed, steps=1)
    if req is None:
        return total
    frames = denoised_frames(handle, shape)
    tokens, inner, blocks = family.traces.block_state(handle.variant, handle.configs_json, frames,
                                                      shape.height, shape.width)
    # rows of one unsplit call (a plan that splits the calls runs without the cache)
    rows = denoiser_rows(handle, shape, MemoryOptions())
    hidden = rows * tokens * inner * bytes_per_element(handle.precision)
    return total + step_cache.kept_bytes(req, hidden_bytes=hidden, blocks=blocks,
                                         contexts=2 if shape.cfg and not family.spec.cfg_in_one_call else 1,
                                         denoisers=len(handle.roles.denoisers))


def _compile_ram(shape: RunShape) -> int:
    return COMPILE_RAM_BYTES if shape.speed.compile != "off" else 0


def _device_phases(handle: ModelHandle, shape: RunShape, options: MemoryOptions) -> dict[str, Estimate]:
    phases = {phase: device_phase(handle, shape, options, phase) for phase in PHASES}
    return {"load": cpu_load(handle, options), **phases} if on_cpu(handle) else phases


def cpu_load(handle: ModelHandle, options: MemoryOptions) -> Estimate:
    """RAM of a CPU run's load, where the device is the RAM: the weights kept so far, plus, for the
    component being cast, its passing copy (private) and its stored bytes (mapped while it is read).
    Streamed per phase, each denoiser is spilled and released as it loads, then the rest load together."""
    sizes, in_place, params = weight_bytes(handle), in_place_bytes(handle), dict(handle.params)
    # what a load reads beside the weights used where they lie: the stored bytes being cast
    source = {n: max(0, stored_bytes(handle, n, c) - in_place.get(n, 0)) for n, c in params.items()}
    full = {d: read_bytes(handle, d, params.get(d, 0), sizes.get(d, 0)) for d in handle.roles.denoisers}
    passing = {d: _passing(handle, d, full, sizes) for d in full}

    def loading(names: list[str], cast: dict[str, int]) -> tuple[int, int]:  # (private, mapped)
        private = sum(sizes.get(n, 0) - in_place.get(n, 0) for n in names) + max(cast.values(), default=0)
        return private, sum(in_place.get(n, 0) for n in names) + max(source.get(n, 0) for n in names)

    if options.residency in ("phase", "disk"):
        rest = [n for n in sizes if n not in full]
        candidates = [loading([d], {d: passing[d]}) for d in full] + ([loading(rest, {})] if rest else [])
    else:
        candidates = [loading(list(sizes), passing)]
    private, mapped = max(candidates, key=sum)
    return _estimate("load", private + mapped, 0, 0, CPU_RUNTIME_BYTES, mapped)


def _frame_bytes(shape: RunShape) -> int:
    return 3 * shape.height * shape.width * 4  # decoded frames are float32


def _estimate(phase: str, weights: int, activations: int, buffers: int, runtime: int,
              file_backed: int = 0) -> Estimate:
    return Estimate(weights, activations, buffers, runtime, weights + activations + buffers + runtime, phase,
                    file_backed)


def _ram_phases(handle: ModelHandle, shape: RunShape, options: MemoryOptions) -> dict[str, Estimate]:
    """System RAM of a GPU run: what offload keeps there, the load's passing copies, the frames."""
    sizes = weight_bytes(handle)
    denoisers = handle.roles.denoisers
    in_ram = sum(sizes.values()) if options.offload != "none" else 0
    on_disk = options.residency == "disk" and options.offload == "group"
    streamed = on_disk or (options.residency == "phase" and options.offload in ("group", "sequential"))
    if on_disk:  # the rest streamed per phase; of the denoisers, the groups on their way (``pinned_bytes``)
        in_ram = max(size for phase, size in streamed_weights(handle, sizes).items() if phase != "denoise")
    elif streamed:  # the original tensors stay the offload's source: mapped, one phase's at a time
        in_ram = max(streamed_weights(handle, sizes).values())
    # Each denoiser is read in the compute dtype and only then cast to fp8 (and, without offload,
    # moved to the device): the load peaks at one denoiser in full precision beside what stays.
    # A single file is read whole as stored, then cast a tensor at a time.
    loaded = dict(handle.params)
    full = {d: read_bytes(handle, d, loaded.get(d, 0), sizes.get(d, 0)) for d in denoisers}
    steps, kept = [], 0
    for name in denoisers:
        steps.append(kept + full[name])
        kept += sizes.get(name, 0) if options.offload != "none" else 0
    rest = sum(size for name, size in sizes.items() if name not in denoisers)
    load_peak = max([*steps, kept + rest, in_ram])
    if streamed:
        load_peak = _streamed_load(handle, sizes, full)
    frames = shape.num_frames * _frame_bytes(shape) * shape.batch_size  # the IMAGE output of every clip
    clip = shape.num_frames * _frame_bytes(shape)  # the clip being copied off the device
    return {
        "load": _estimate("load", load_peak, 0, 0, HOST_RUNTIME_BYTES),
        "run": _estimate("run", in_ram, 0, frames + clip + pinned_bytes(handle, options.offload, on_disk),
                         HOST_RUNTIME_BYTES + _compile_ram(shape),
                         _file_backed(handle, options, in_ram) if options.offload != "none" else 0),
    }


def _streamed_load(handle: ModelHandle, sizes: dict[str, int], full: dict[str, int]) -> int:
    """RAM of a streamed load: each denoiser is spilled and released as it loads, then the rest load
    together before they are; so the peak is one denoiser's converted weights (and what passes through
    while it is cast, unless it is read where it lies) or the rest's. Mapped weights are not read."""
    denoisers, in_place = handle.roles.denoisers, in_place_bytes(handle)
    private = {name: size - in_place.get(name, 0) for name, size in sizes.items()}
    rest = sum(size for name, size in private.items() if name not in denoisers)
    return max([rest, *(private.get(d, 0) + _passing(handle, d, full, sizes) for d in denoisers)])


def _passing(handle: ModelHandle, name: str, full: dict[str, int], sizes: dict[str, int]) -> int:
    """Bytes that pass through RAM while a denoiser is cast beside what it keeps (none when a folder's
    weights are mapped in the precision they are kept in)."""
    mapped = handle.files is None and dict(handle.stored).get(name) == handle.precision
    return 0 if mapped else max(0, full[name] - sizes.get(name, 0))


def estimate(handle: ModelHandle, shape: RunShape, options: MemoryOptions) -> Estimate:
    """Peak device memory of one run: its most demanding phase."""
    return max(_device_phases(handle, shape, options).values(), key=lambda e: e.peak)


def estimate_ram(handle: ModelHandle, shape: RunShape, options: MemoryOptions) -> Estimate:
    """Peak system RAM of one run. On a CPU the device is the RAM: the same figure."""
    if on_cpu(handle):
        return estimate(handle, shape, options)
    return max(_ram_phases(handle, shape, options).values(), key=lambda e: e.peak)


def estimate_phases(handle: ModelHandle, shape: RunShape, options: MemoryOptions) -> dict[str, int]:
    """Peak device bytes of each phase (encode, denoise, decode)."""
    return {phase: e.peak for phase, e in _device_phases(handle, shape, options).items()}


def ram_phases(handle: ModelHandle, shape: RunShape, options: MemoryOptions) -> dict[str, int]:
    """Peak system-RAM bytes of each phase (load, run); on a CPU, the device phases."""
    if on_cpu(handle):
        return estimate_phases(handle, shape, options)
    return {phase: e.peak for phase, e in _ram_phases(handle, shape, options).items()}


# --- where planning starts -----------------------------------------------------------------------


def default_options(handle: ModelHandle, shape: RunShape) -> MemoryOptions:
    """Where planning starts: the load's offload mode, the largest decode chunk that costs no
    extra peak memory, and on CPU one clip per denoiser call (batched matmuls on CPU differ from
    single ones in the last bits; one clip per call keeps clip i of a batch identical to a
    single run with seed + i)."""
    options = MemoryOptions(offload=handle.offload, decode_chunk=1, clips_per_call=1 if on_cpu(handle) else 0)
    if not handle.rules.chunked_decode:
        return options
    # planned on one clip, so the chunk (and with it the VAE's batch size, which moves the last
    # bits of its output) is the same whatever the batch size
    one_clip = dataclasses.replace(shape, batch_size=1)
    return dataclasses.replace(options, decode_chunk=free_decode_chunk(handle, one_clip, options))


def free_decode_chunk(handle: ModelHandle, shape: RunShape, options: MemoryOptions) -> int:
    """Largest decode chunk (up to 8 frames) whose decode peak stays under the denoise peak.

    Decoding several frames per VAE call is faster than upstream's one at a time; up to this
    size it is free, because the denoise phase needs more memory anyway.
    """
    for chunk in (8, 4, 2):
        if chunk > shape.num_frames:
            continue
        phases = estimate_phases(handle, shape, dataclasses.replace(options, decode_chunk=chunk))
        if phases["decode"] <= phases["denoise"]:
            return chunk
    return 1
