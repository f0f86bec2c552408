"""Tiers at full size: each tier's published model built from its configuration with random weights.

No download: the family builds the pipeline from the published configuration (random weights,
the tier's dtype) and saves it once. For each tier workflow: the pack (VRAMGuard + I2VSample,
warm, with the tier's memory options) and the stock diffusers pipeline on the same inputs and
noise: seconds per step, end-to-end seconds and peak device memory, and VRAMGuard's estimate
beside the measured peak. Random weights make noise, not video, but the arithmetic and memory are
those of the real model. Needs CUDA for meaningful figures; ``--model tiny --device cpu`` runs the
same code on each tier's tiny twin (``tiny-<variant>``), to check the benchmark itself.

    python bench/bench_tiers.py [--tiers wan-24gb,i2v-12gb] [--steps 5] [--model full|tiny]

A tier whose checkpoint would not fit the free disk (twice its size: the build and the save) is
skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _timing import use_bench_models_dir  # noqa: E402

GiB = 2**30


def full_size_folder(models_dir: Path, hub_id: str, precision: str) -> Path | None:
    """Build (once) and save the published model with random weights; None if the disk is too small."""
    import torch

    from i2v_nodes.runtime import memory
    from i2v_nodes.runtime.loading import models
    from i2v_nodes.runtime.loading.precision import dtype_of

    folder = models_dir / "i2v" / f"random-{hub_id.split('/')[-1]}-{precision}"
    if (folder / "model_index.json").is_file():
        return folder
    handle = models.describe_published(hub_id, precision=precision)
    size = sum(memory.weight_bytes(handle).values())
    folder.parent.mkdir(parents=True, exist_ok=True)
    if shutil.disk_usage(folder.parent).free < 2 * size:
        print(f"skipping {hub_id}: {size / GiB:.0f} GiB of weights, not enough free disk", file=sys.stderr)
        return None
    started = time.perf_counter()
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype_of(precision))  # built in its dtype: fp32 first would double the RAM
    try:
        pipe = handle.family.random_pipeline(handle.family.published_configs(hub_id))
    finally:
        torch.set_default_dtype(default)
    pipe.save_pretrained(folder, safe_serialization=True)
    print(f"built {hub_id} with random weights in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return folder


class StepClock:
    """Times the denoising steps through forward hooks on the denoisers (first call to last)."""

    def __init__(self, modules, device):
        import torch

        self.starts: list[float] = []
        self.ends: list[float] = []
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

        def before(*_args):
            sync()
            self.starts.append(time.perf_counter())

        def after(*_args):
            sync()
            self.ends.append(time.perf_counter())

        self.handles = [
            h for m in modules for h in (m.register_forward_pre_hook(before), m.register_forward_hook(after))
        ]

    def seconds_per_step(self, steps: int) -> float:
        return (self.ends[-1] - self.starts[0]) / steps if self.ends else float("nan")

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def peak_bytes(device) -> int:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # process high-water mark


def reset_peak(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def run_tier(tier: dict, model_name: str, device, steps: int, image) -> dict:
    import dataclasses

    from i2v_nodes.nodes import NODE_CLASS_MAPPINGS
    from i2v_nodes.runtime import sampling

    loader, guard, sampler = (NODE_CLASS_MAPPINGS[n]() for n in ("LoadI2VModel", "VRAMGuard", "I2VSample"))
    offload = tier["offload"] if device.type == "cuda" else "none"
    (model,) = loader.load(
        model_name, tier["precision"], "fp32", device.type, offload, False, tier["weights"]
    )
    width, height, frames = tier["width"], tier["height"], tier["frames"]
    guarded, *_ = guard.guard(
        model, width, height, frames, 1, "adapt" if tier["policy"] == "adapt" else "off", 0.10
    )
    settings = (width, height, frames, steps, tier["guidance"], 0, 1, tier["fps"], 0)
    args = (guarded, image, "waves", "blurry", *settings)
    sampler.sample(*args, options=tier["options"])  # warm: load once, as any later run in a session finds it
    pipe = (
        sampling.default_cache()
        .peek(dataclasses.replace(guarded.cache_key, offload=guarded.plan.options.offload))
        .pipeline
    )
    reset_peak(device)
    clock = StepClock([getattr(pipe, n) for n in guarded.roles.denoisers], device)
    started = time.perf_counter()
    sampler.sample(*args, options=tier["options"])
    calls_per_step = len(clock.ends) // max(steps, 1) or 1
    ours = {
        "end_to_end_s": time.perf_counter() - started,
        "s_per_step": clock.seconds_per_step(steps),
        "peak_gib": peak_bytes(device) / GiB,
        "denoiser_calls_per_step": calls_per_step,
    }
    clock.close()
    sampling.default_cache().unload()  # the stock pipeline gets the device to itself

    family = guarded.family
    from i2v_nodes.runtime.loading.precision import dtype_of

    stock = family.pipeline_class().from_pretrained(
        model.source, dtype={"default": dtype_of(tier["precision"]), guarded.roles.vae: dtype_of("fp32")}
    )
    stock.set_progress_bar_config(disable=True)
    stock.to(device)
    s = sampling.SampleSettings(
        "waves",
        "blurry",
        width,
        height,
        frames,
        steps,
        tier["guidance"],
        0,
        1,
        tier["fps"],
        guarded.plan.options.decode_chunk,
        tier["options"],
    )
    sampling.stock_reference(guarded, stock, image, s, s.decode_chunk_size)  # warm
    reset_peak(device)
    clock = StepClock(
        [getattr(stock, n) for n in guarded.roles.denoisers if getattr(stock, n, None) is not None], device
    )
    started = time.perf_counter()
    sampling.stock_reference(guarded, stock, image, s, s.decode_chunk_size)
    stock_figures = {
        "end_to_end_s": time.perf_counter() - started,
        "s_per_step": clock.seconds_per_step(steps),
        "peak_gib": peak_bytes(device) / GiB,
    }
    clock.close()
    del stock
    return {
        "tier": tier["name"],
        "model": tier["model"],
        "size": f"{width}x{height}",
        "frames": frames,
        "steps_run": steps,
        "steps_in_tier": tier["steps"],
        "estimate_gib": guarded.plan.estimate.peak / GiB,
        "options": guarded.plan.options.describe(),
        "ours": ours,
        "stock": stock_figures,
        "projected_full_steps_s": ours["end_to_end_s"] + ours["s_per_step"] * (tier["steps"] - steps),
    }


def tiers_from_workflows(names: list[str] | None) -> list[dict]:
    from i2v_nodes.families import registry
    from i2v_nodes.runtime.options import Options, OptionSet

    tiers = []
    for path in sorted((REPO / "workflows" / "api").glob("*.json")):
        if names and path.stem not in names:
            continue
        api = json.loads(path.read_text())

        def inputs(class_type, api=api):
            return next((n["inputs"] for n in api.values() if n["class_type"] == class_type), None)

        loader, guard, sample = inputs("LoadI2VModel"), inputs("VRAMGuard"), inputs("I2VSample")
        options = None
        for family in registry.REGISTERED:  # the family's options node, if the workflow has one
            values = inputs(family.spec.options_node) if family.spec.options_node else None
            if values is not None:
                widgets = {k: v for k, v in values.items() if not isinstance(v, list)}
                chosen = OptionSet(family.name, family.spec.options_node, family.make_options(widgets))
                options = Options((chosen,))
        tiers.append(
            {
                "name": path.stem,
                "model": loader["model"],
                "precision": loader["precision"],
                "weights": loader.get("weights", "default"),
                "offload": loader["offload"],
                "width": guard["width"],
                "height": guard["height"],
                "frames": guard["num_frames"],
                "policy": guard["policy"],
                "steps": sample["steps"],
                "fps": sample["target_fps"],
                "guidance": sample["guidance_scale"],
                "options": options,
            }
        )
    return tiers


def run(
    tiers: list[str] | None = None,
    steps: int = 5,
    model: str = "full",
    device: str = "auto",
    size: tuple[int, int] | None = None,
    frames: int | None = None,
) -> dict:
    import torch

    from i2v_nodes.runtime.loading import models

    chosen = torch.device(
        "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)
    )
    models_dir = use_bench_models_dir()
    image = torch.rand(1, 480, 640, 3, generator=torch.Generator().manual_seed(0))
    results, skipped = [], []
    for tier in tiers_from_workflows(tiers):
        handle = models.describe_published(tier["model"], device="cuda")
        tier["precision"] = handle.precision if tier["precision"] == "auto" else tier["precision"]
        if model == "tiny":
            name, tier["precision"] = f"tiny-{handle.variant}", "fp32"
        else:
            folder = full_size_folder(models_dir, tier["model"], tier["precision"])
            if folder is None:
                skipped.append(tier["name"])
                continue
            name = folder.name
        if size:  # a smaller size (on the family's size step), to try the benchmark itself on a CPU
            step = handle.rules.size_multiple
            tier = {
                **tier,
                "width": max(step, size[0] // step * step),
                "height": max(step, size[1] // step * step),
                "frames": frames or tier["frames"],
            }
        results.append(run_tier(tier, name, chosen, min(steps, tier["steps"]), image))
    device_name = torch.cuda.get_device_name(chosen) if chosen.type == "cuda" else "cpu"
    return {
        "benchmark": "tiers at full size (random weights)",
        "device": device_name,
        "tiers": results,
        "skipped": skipped,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiers", help="comma-separated tier names (default: all)")
    parser.add_argument("--steps", type=int, default=5, help="steps to run per tier (the rest is projected)")
    parser.add_argument("--model", choices=["full", "tiny"], default="full")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", help="override the tiers' size, WIDTHxHEIGHT (for a CPU trial)")
    parser.add_argument("--frames", type=int, help="override the tiers' frame count (for a CPU trial)")
    args = parser.parse_args()
    names = args.tiers.split(",") if args.tiers else None
    size = tuple(int(v) for v in args.size.split("x")) if args.size else None
    print(
        json.dumps(run(names, args.steps, args.model, args.device, size, args.frames), indent=2, default=str)
    )


if __name__ == "__main__":
    main()
