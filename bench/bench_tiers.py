"""Tiers at full size: I2VGen-XL built from its published config with random weights (no download).

For each tier: the pack (VRAMGuard + I2VSample, warm) and the stock diffusers pipeline on the same
inputs, in fp16 with an fp32 VAE: seconds per step, end-to-end seconds and peak device memory, and
VRAMGuard's estimate beside the measured peak. Random weights make noise, not video, but the
arithmetic and memory are those of the real model. Needs CUDA for meaningful figures; ``--model
tiny --device cpu`` runs the same code on the tiny model, to check the benchmark itself.

    python bench/bench_tiers.py [--tiers i2v-12gb,i2v-24gb] [--steps 10] [--model full|tiny]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _timing import use_bench_models_dir  # noqa: E402


def full_size_folder(models_dir: Path) -> Path:
    """Build (once) and save full-size I2VGen-XL with random weights, fp16, as safetensors."""
    import torch

    from i2v_nodes.runtime.families.i2vgen_xl import PUBLISHED_CONFIGS
    from i2v_nodes.runtime.tiny import TINY_I2VGEN_XL, build_tiny_i2vgen_xl

    folder = models_dir / "i2v" / "random-i2vgen-xl"
    if (folder / "model_index.json").is_file():
        return folder
    config = {**TINY_I2VGEN_XL, "feature_extractor": {"crop_size": 224, "size": {"shortest_edge": 224}},
              **PUBLISHED_CONFIGS["ali-vilab/i2vgen-xl"]}
    started = time.perf_counter()
    pipe = build_tiny_i2vgen_xl(config)
    pipe.to(torch.float16).save_pretrained(folder, safe_serialization=True)
    print(f"built full-size random I2VGen-XL in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return folder


class StepClock:
    """Times the denoising steps of a pipeline through forward hooks on its UNet."""

    def __init__(self, unet, device):
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

        self.handles = [unet.register_forward_pre_hook(before), unet.register_forward_hook(after)]

    def seconds_per_step(self) -> float:
        return (self.ends[-1] - self.starts[0]) / len(self.ends) if self.ends else float("nan")

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


def run_tier(tier, model_name: str, device, steps: int, image) -> dict:
    import torch

    from i2v_nodes.nodes import NODE_CLASS_MAPPINGS
    from i2v_nodes.runtime import sampling
    from i2v_nodes.runtime.families import i2vgen_xl

    loader, guard, sampler = (NODE_CLASS_MAPPINGS[n]() for n in ("LoadI2VModel", "VRAMGuard", "I2VSample"))
    precision = "fp16" if device.type == "cuda" else "fp32"
    (model,) = loader.load(model_name, precision, "fp32", device.type, "none", False)
    size, frames = tier["size"], tier["frames"]
    guarded, *_ = guard.guard(model, size, size, frames, 1, "off", 0.10)
    settings = (size, size, frames, steps, tier["guidance"], 0, 1, tier["fps"], 0)
    args = (guarded, image, "waves", "blurry", *settings)
    sampler.sample(*args)  # warm: load once, as any later run in a session finds it
    key = guarded.cache_key
    pipe = sampling.default_cache().peek(key).pipeline

    reset_peak(device)
    clock = StepClock(pipe.unet, device)
    started = time.perf_counter()
    sampler.sample(*args)
    ours = {"end_to_end_s": time.perf_counter() - started, "s_per_step": clock.seconds_per_step(),
            "peak_gib": peak_bytes(device) / 2**30}
    clock.close()
    chunk = guarded.plan.options.decode_chunk
    sampling.default_cache().unload()  # the stock pipeline gets the device to itself

    stock = i2vgen_xl.pipeline_class().from_pretrained(model.source, dtype={"default": getattr(torch, {
        "fp16": "float16", "fp32": "float32"}[precision]), "vae": torch.float32})
    stock.set_progress_bar_config(disable=True)
    stock.to(device)
    pil = sampling.images_to_pil(image)[0]

    def stock_call():
        # the stock call needs the VAE in the UNet's dtype to run at all; fp16 VAE, as users of it do
        return stock(image=pil, prompt="waves", negative_prompt="blurry", height=size, width=size,
                     num_frames=frames, num_inference_steps=steps, guidance_scale=tier["guidance"],
                     target_fps=tier["fps"], decode_chunk_size=chunk, output_type="pt", clip_skip=None)

    stock.vae.to(stock.unet.dtype)
    stock_call()
    reset_peak(device)
    clock = StepClock(stock.unet, device)
    started = time.perf_counter()
    stock_call()
    stock_figures = {"end_to_end_s": time.perf_counter() - started, "s_per_step": clock.seconds_per_step(),
                     "peak_gib": peak_bytes(device) / 2**30}
    clock.close()
    return {"tier": tier["name"], "size": size, "frames": frames, "steps_run": steps,
            "steps_in_tier": tier["steps"], "estimate_gib": guarded.plan.estimate.peak / 2**30,
            "ours": ours, "stock": stock_figures,
            "projected_full_steps_s": ours["end_to_end_s"] + ours["s_per_step"] * (tier["steps"] - steps)}


def tiers_from_workflows(names: list[str] | None) -> list[dict]:
    tiers = []
    for path in sorted((REPO / "workflows" / "api").glob("i2v-*.json")):
        if names and path.stem not in names:
            continue
        api = json.loads(path.read_text())
        sample = next(n["inputs"] for n in api.values() if n["class_type"] == "I2VSample")
        guard = next(n["inputs"] for n in api.values() if n["class_type"] == "VRAMGuard")
        tiers.append({"name": path.stem, "size": guard["width"], "frames": guard["num_frames"],
                      "steps": sample["steps"], "fps": sample["target_fps"],
                      "guidance": sample["guidance_scale"]})
    return tiers


def run(tiers: list[str] | None = None, steps: int = 10, model: str = "full", device: str = "auto",
        size: int | None = None, frames: int | None = None) -> dict:
    import torch

    chosen = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                          ("cpu" if device == "auto" else device))
    models_dir = use_bench_models_dir()
    name = full_size_folder(models_dir).name if model == "full" else "tiny-i2vgen-xl"
    image = torch.rand(1, 480, 640, 3, generator=torch.Generator().manual_seed(0))
    results = []
    for tier in tiers_from_workflows(tiers):
        if size:  # a smaller size, to try the benchmark itself on a CPU
            tier = {**tier, "size": size, "frames": frames or tier["frames"]}
        results.append(run_tier(tier, name, chosen, min(steps, tier["steps"]), image))
    device_name = torch.cuda.get_device_name(chosen) if chosen.type == "cuda" else "cpu"
    return {"benchmark": "tiers at full size (random weights)", "model": name, "device": device_name,
            "tiers": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiers", help="comma-separated tier names (default: all)")
    parser.add_argument("--steps", type=int, default=10, help="steps to run per tier (the rest is projected)")
    parser.add_argument("--model", choices=["full", "tiny"], default="full")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", type=int, help="override the tiers' size (for a CPU trial)")
    parser.add_argument("--frames", type=int, help="override the tiers' frame count (for a CPU trial)")
    args = parser.parse_args()
    names = args.tiers.split(",") if args.tiers else None
    print(json.dumps(run(names, args.steps, args.model, args.device, args.size, args.frames), indent=2))


if __name__ == "__main__":
    main()
