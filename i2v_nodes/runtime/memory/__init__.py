"""Memory: what a run needs (:mod:`.estimate`, imported here as the package's front), measured by
tracing on the meta device (:mod:`.trace`), checked before any work (:mod:`.guard`), answered for a
machine this one need not be (:mod:`.planner`), and what the machine has (:mod:`.devices`)."""

from i2v_nodes.runtime.memory.estimate import (
    ACTIVATION_MARGIN,
    COMPILE_DEVICE_BYTES,
    COMPILE_RAM_BYTES,
    CPU_RUNTIME_BYTES,
    CUDA_RUNTIME_BYTES,
    FILE_FORMAT_BYTES,
    HOST_RUNTIME_BYTES,
    PHASES,
    Estimate,
    GiB,
    MemoryOptions,
    RunShape,
    default_options,
    denoiser_activations,
    denoiser_rows,
    device_phase,
    estimate,
    estimate_phases,
    estimate_ram,
    free_decode_chunk,
    gib,
    largest_layer_bytes,
    on_cpu,
    ram_phases,
    resident_weights,
    speed_bytes,
    weight_bytes,
)

__all__ = ["ACTIVATION_MARGIN", "COMPILE_DEVICE_BYTES", "COMPILE_RAM_BYTES", "CPU_RUNTIME_BYTES",
           "CUDA_RUNTIME_BYTES", "Estimate", "FILE_FORMAT_BYTES", "GiB", "HOST_RUNTIME_BYTES",
           "MemoryOptions", "PHASES", "RunShape", "default_options", "denoiser_activations",
           "denoiser_rows", "device_phase", "estimate", "estimate_phases", "estimate_ram",
           "free_decode_chunk", "gib", "largest_layer_bytes", "on_cpu", "ram_phases", "resident_weights",
           "speed_bytes", "weight_bytes"]
