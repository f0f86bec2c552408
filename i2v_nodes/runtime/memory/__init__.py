"""Memory: what a run needs (:mod:`.estimate`, its weights :mod:`.weights`; both imported here as the
package's front), measured by
tracing on the meta device (:mod:`.trace`), checked before any work (:mod:`.guard`), answered for a
machine this one need not be (:mod:`.planner`), and what the machine has (:mod:`.devices`)."""

from i2v_nodes.runtime.memory.estimate import (
    ACTIVATION_MARGIN,
    COMPILE_DEVICE_BYTES,
    COMPILE_RAM_BYTES,
    CPU_RUNTIME_BYTES,
    CUDA_RUNTIME_BYTES,
    HOST_RUNTIME_BYTES,
    RESIDENCY_WORDS,
    Estimate,
    GiB,
    MemoryOptions,
    RunShape,
    cpu_load,
    default_options,
    denoiser_activations,
    denoiser_rows,
    device_phase,
    estimate,
    estimate_phases,
    estimate_ram,
    free_decode_chunk,
    gib,
    ram_phases,
    speed_bytes,
)
from i2v_nodes.runtime.memory.weights import (
    FILE_FORMAT_BYTES,
    PHASES,
    in_place_bytes,
    largest_layer_bytes,
    on_cpu,
    resident_weights,
    streamed_weights,
    weight_bytes,
)

__all__ = ["ACTIVATION_MARGIN", "COMPILE_DEVICE_BYTES", "COMPILE_RAM_BYTES", "CPU_RUNTIME_BYTES",
           "CUDA_RUNTIME_BYTES", "Estimate", "FILE_FORMAT_BYTES", "GiB", "HOST_RUNTIME_BYTES",
           "RESIDENCY_WORDS", "MemoryOptions", "PHASES", "RunShape", "cpu_load", "default_options",
           "denoiser_activations",
           "denoiser_rows", "device_phase", "estimate", "estimate_phases", "estimate_ram",
           "free_decode_chunk", "gib", "in_place_bytes", "largest_layer_bytes", "on_cpu", "ram_phases",
           "resident_weights", "speed_bytes", "streamed_weights", "weight_bytes"]
