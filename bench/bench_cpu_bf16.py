"""bf16 against fp32 on this CPU: one denoiser call of each family's published model at its real width.

The CPU may compute bf16 natively (AVX512-BF16 or AMX); this measures whether that makes a family's
denoiser faster than fp32, side by side in one process. Each denoiser is built from the published
configuration with random weights, cut to its first blocks (as the memory traces are: every block is
the same work, so the ratio holds for the full depth), and called with random inputs of the size the
family's own memory trace uses. Nothing is downloaded.

    python bench/bench_cpu_bf16.py [--size 128x128x9] [--repeats 3] [--threads 1]

The UNet families trace their whole depth: at 256x256x17 one fp32 I2VGen-XL call takes ~100 s on one
thread and the run needs ~17 GB of RAM.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import interleaved_medians  # noqa: E402

# one published model per family (its denoiser's real width)
MODELS = (
    "ali-vilab/i2vgen-xl",
    "Wan-AI/Wan2.2-TI2V-5B-Diffusers",
    "Lightricks/LTX-Video-0.9.5",
    "stabilityai/stable-video-diffusion-img2vid-xt",
    "openmmlab/PIA-condition-adapter",
)


def cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []
    )
    return sorted(f for f in flags if f in ("avx512_bf16", "amx_bf16", "amx_tile", "avx512f"))


def _real(value: Any, dtype: Any) -> Any:
    """A random CPU tensor in place of a meta one (integers stay integers, floats take ``dtype``)."""
    import torch

    if not isinstance(value, torch.Tensor):
        return value
    if value.dtype in (torch.long, torch.int32, torch.int64, torch.bool):
        return torch.ones(value.shape, dtype=value.dtype)
    data = (
        torch.rand(value.shape) * 999
        if value.dim() <= 2 and value.numel() < 10**6
        else torch.randn(value.shape)
    )
    return data.to(dtype if value.dtype in (torch.float32, torch.bfloat16, torch.float16) else value.dtype)


def one_family(hub_id: str, frames: int, height: int, width: int, repeats: int) -> dict[str, Any]:
    import torch

    from i2v_nodes.runtime.loading import models

    handle = models.describe_published(hub_id, precision="fp32", device="cpu")
    family = handle.family
    trace = family.traces.denoiser(
        handle.variant, handle.configs_json, torch.float32, 2, frames, height, width
    )
    meta = trace.fn
    torch.manual_seed(0)
    model = type(meta).from_config(meta.config).eval()  # random weights, the trace's depth
    calls = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        module = copy.deepcopy(model).to(dtype)  # one copy per dtype: .to() converts in place
        args = tuple(_real(a, dtype) for a in trace.args)
        kwargs = {k: _real(v, dtype) for k, v in trace.kwargs.items()}

        def call(module=module, args=args, kwargs=kwargs):
            with torch.no_grad():
                return module(*args, **kwargs)

        calls[name] = call
        call()  # warm (one-time kernel selection)
    medians = interleaved_medians(calls, repeats)
    return {
        "model": hub_id,
        "family": handle.family.name,
        "params_traced": sum(p.numel() for p in model.parameters()),
        "fp32_s": medians["fp32"],
        "bf16_s": medians["bf16"],
        "speedup_bf16": medians["fp32"] / medians["bf16"],
    }


def run(size: str = "256x256x17", repeats: int = 5, threads: int = 1) -> dict[str, Any]:
    import torch

    torch.set_num_threads(threads)
    width, height, frames = (int(n) for n in size.split("x"))
    rows = []
    for hub_id in MODELS:
        rows.append(one_family(hub_id, frames, height, width, repeats))
        print(json.dumps(rows[-1]), file=sys.stderr)
    return {
        "benchmark": "one denoiser call (two CFG rows), bf16 vs fp32 on the CPU, random weights, the "
        "traced depth of each published model",
        "size": size,
        "threads": threads,
        "cpu_flags": cpu_flags(),
        "torch": torch.__version__,
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="128x128x9", help="WIDTHxHEIGHTxFRAMES")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps(run(args.size, args.repeats, args.threads), indent=2))


if __name__ == "__main__":
    main()
