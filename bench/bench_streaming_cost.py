"""What streaming per phase costs against keeping everything resident, where RAM allows both.

One process, one cached pipeline, on ComfyUI-layout single files (bench/comfy_core_files.py writes
random-weight ones: a 1.3B-style Wan 2.1 I2V transformer, the full UMT5-XXL fp8_scaled, the Wan VAE
and CLIP ViT-H). Each round runs two resident clips then two streamed ones, each with a new prompt
(so the text encoder runs and, streamed, comes back), timing the second of each pair (the first
settles the state: loading, or bringing back what the other mode released); the report gives the
seconds per clip of each and their ratio, plus the process's RSS after each (file-backed pages
released by streaming show up as a smaller RSS) and what each run read from storage (a released
component comes back from the disk, unless the kernel still caches its pages).

    python bench/bench_streaming_cost.py --models /tmp/i2v-bench-comfy/models [--rounds 1]
        [--tokenizers COMFYUI/comfy/text_encoders] [--width 256 --height 256 --frames 5 --steps 2]

A benchmark, not a test: minutes of CPU per clip at full width.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import comfy_core_files  # noqa: E402

from i2v_nodes.runtime import sampling, services  # noqa: E402
from i2v_nodes.runtime.loading import cache, models  # noqa: E402
from i2v_nodes.runtime.memory import guard  # noqa: E402


def _rss_gib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**30


def _read_gib() -> float:
    """Bytes this process has read from storage so far (page cache hits are not counted)."""
    with open("/proc/self/io") as f:
        fields = dict(line.split(": ") for line in f.read().splitlines())
    return int(fields["read_bytes"]) / 2**30


def _one_run(handle, image, process_cache, a, label: str, residency: str) -> tuple[float, float]:
    """Seconds of one clip with a new prompt (so the text encoder runs), and GiB read from storage."""
    settings = sampling.SampleSettings(f"waves, {label}", "blurry", width=a.width, height=a.height,
                                       num_frames=a.frames, steps=a.steps, guidance_scale=5.0, seed=1,
                                       target_fps=16)
    started, read = time.perf_counter(), _read_gib()
    sampling.sample(_planned(handle, settings, residency), image, settings, services.standalone(),
                    cache=process_cache)
    return time.perf_counter() - started, _read_gib() - read


def _planned(handle, settings, residency: str):
    shape = sampling.plan.run_shape(handle, settings)
    budget = guard.Budget(free=2**40, total=2**40, headroom=0.0, ram_free=2**40, ram_total=2**40)
    plan = guard.plan_run(handle, shape, "off", budget)
    options = dataclasses.replace(plan.options, residency=residency)
    return dataclasses.replace(handle, plan=dataclasses.replace(plan, options=options))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=Path, required=True, help="the folder comfy_core_files wrote")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--tokenizers", type=Path, action="append", default=[],
                        help="a folder with the text encoder's tokenizer (ComfyUI's comfy/text_encoders)")
    a = parser.parse_args()
    paths = {slot: a.models / rel for slot, rel in comfy_core_files.FILES.items()}
    handle = models.open_files(paths, models.LoadOptions(precision="fp32"), torch.device("cpu"),
                               tokenizer_roots=a.tokenizers)
    pixels = np.asarray(Image.open(REPO / "examples" / "i2v-example.png").convert("RGB"), dtype=np.float32)
    image = torch.from_numpy(pixels / 255.0)[None]  # a ComfyUI IMAGE: [1, height, width, 3]
    process_cache = cache.ModelCache(lambda device: 2**40)
    times: dict[str, list[float]] = {"resident": [], "phase": []}
    for round_ in range(a.rounds):
        # each timed run follows an untimed one of its own kind, so it starts from its own steady state
        # (a resident run after a streamed one would first read back what streaming released)
        for residency in ("resident", "phase"):
            for timed in (False, True):
                seconds, read = _one_run(handle, image, process_cache, a, f"{round_} {residency} {timed}",
                                         residency)
                if timed:
                    times[residency].append(seconds)
                kind = "timed" if timed else "settle"
                print(f"round {round_} {residency:8s} {kind:6s} {seconds:7.1f} s  RSS after "
                      f"{_rss_gib():5.2f} GiB  read from disk {read:5.2f} GiB", flush=True)
    resident, streamed = (min(times[k]) for k in ("resident", "phase"))
    print(f"best of {a.rounds}: resident {resident:.1f} s, streamed {streamed:.1f} s per clip: "
          f"streamed / resident = {streamed / resident:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
