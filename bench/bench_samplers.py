"""What each sampler (I2VSamplerOptions) adds to a run: its scheduler's own work per step and the
tensors it keeps between steps, at each family's published default size, on the CPU.

Every sampler calls the denoiser once per step, as the model's own scheduler does, so the denoiser's
work (nearly all of a step) is the same whichever is picked; what differs is the scheduler's arithmetic
on the latents and the model outputs a multistep solver remembers. Measured here on latents of the
published default size (no weights: a random model output stands in for the denoiser), per family:
set_timesteps and ``--steps`` steps, the median per step of ``--repeats`` runs, one torch thread; and
the bytes of the latent-sized tensors the scheduler holds after the last step.

    python bench/bench_samplers.py [--steps 30] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from i2v_nodes.families import registry
from i2v_nodes.runtime.sampling import schedulers


def latents_of(family, variant: str) -> torch.Tensor:
    """Random latents of the variant's default size (the step's arithmetic is elementwise: the layout
    a pipeline packs them in does not change its cost)."""
    rules = family.rules(variant)
    shape = (1, rules.latent_channels, rules.latent_frames(rules.default_frames),
             rules.default_height // rules.vae_spatial, rules.default_width // rules.vae_spatial)
    return torch.randn(shape, generator=torch.Generator().manual_seed(0))


def held_bytes(scheduler, numel: int) -> int:
    """Bytes of the latent-sized tensors a scheduler keeps (its model outputs, last sample...)."""
    found: dict[int, int] = {}
    for value in vars(scheduler).values():
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if isinstance(item, torch.Tensor) and item.numel() >= numel // 2:
                found[item.data_ptr()] = item.nbytes
    return sum(found.values())


def one_run(scheduler, latents: torch.Tensor, steps: int) -> float:
    """Seconds for set_timesteps and ``steps`` steps."""
    config = scheduler.config
    started = time.perf_counter()
    extra = {"mu": 1.0} if config.get("use_dynamic_shifting") else {}
    scheduler.set_timesteps(steps, **extra)
    sample = latents.clone()
    output = torch.randn_like(latents)
    with schedulers.step_noise(0):
        for t in scheduler.timesteps:
            sample = scheduler.step(output, t, sample, return_dict=False)[0]
    return time.perf_counter() - started


def measure(family, variant: str, steps: int, repeats: int) -> list[tuple[str, str, float, int]]:
    own = family.random_pipeline(family.spec.tiny[next(name for name in family.spec.tiny)]).scheduler
    latents = latents_of(family, variant)
    rows = []
    for name in family.samplers(variant):
        scheduler = own if name == "default" else schedulers.build(name, own)
        times = [one_run(scheduler, latents, steps) for _ in range(repeats)]
        per_step = statistics.median(times) / steps
        rows.append((name, type(scheduler).__name__, per_step, held_bytes(scheduler, latents.numel())))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| model (default size) | latents | sampler | scheduler | ms per step | held between steps |")
    print("|---|---|---|---|---|---|")
    for family in registry.REGISTERED:
        variant = next(iter(family.spec.rules))
        rules = family.rules(variant)
        size = f"{rules.default_width}x{rules.default_height}x{rules.default_frames}"
        latents = latents_of(family, variant)
        mib = latents.nbytes / 2**20
        for name, cls, per_step, held in measure(family, variant, args.steps, args.repeats):
            title = family.spec.variant_titles.get(variant, family.title)
            print(f"| {title} ({size}) | {mib:.0f} MiB | {name} | {cls} | {per_step * 1000:.1f} | "
                  f"{held / 2**20:.0f} MiB |", flush=True)


if __name__ == "__main__":
    main()
