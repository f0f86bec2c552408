"""LoRA switching against a cold base load at a chosen transformer width, on the CPU.

bench_speed.py measures LoRA switching on Wan 2.1 1.3B's width. A switch costs about the same per
layer at any width (the LoRA libraries' Python work), while a base load costs per byte. So this
builds a random-weight Wan 2.1 I2V with the published 14B transformer's width (5120, ffn 13824),
cut to a few of its 40 blocks, and runs bench_speed.py's cold-load and LoRA measurements on it.

    python bench/bench_lora_width.py [--blocks 2] [--rank 64] [--cycles 3]

Prints one JSON line: transformer parameters, the cold loads (page cache, disk) and, per change, the
``lora`` phase in ms with its share of each cold load.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_speed as b  # noqa: E402
from _timing import pin_one_thread, still_image, use_bench_models_dir  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=2, help="transformer blocks of the 40")
    parser.add_argument("--rank", type=int, default=64)
    parser.add_argument("--cycles", type=int, default=3)
    args = parser.parse_args()
    pin_one_thread()
    import torch

    from i2v_nodes.families.toolkit.tiny import ensure_built
    from i2v_nodes.families.wan.components import build
    from i2v_nodes.families.wan.configs import PUBLISHED
    from i2v_nodes.runtime import sampling
    from i2v_nodes.runtime.loading import models
    from i2v_nodes.runtime.loading.cache import ModelCache

    root = use_bench_models_dir() / "speed"
    configs = dict(b.model_configs(args.blocks))
    configs["transformer"] = {**PUBLISHED[b.WAN21_HUB]["transformer"], "num_layers": args.blocks}
    name = f"bench-wan2.1-i2v-14b-width-{args.blocks}-blocks"
    ensure_built(name, root, lambda: build(configs))
    handle = models.open_model(name, models.LoadOptions(precision="auto"), [root], torch.device("cpu"))
    cache = ModelCache(lambda device: 2**40)
    base = sampling.SampleSettings(b.PROMPT, b.NEGATIVE, 64, 64, 5, 1, b.GUIDANCE, seed=0, target_fps=16)
    loads = b.cold_loads(handle, base, repeats=3)  # before anything holds the model's files
    b.sample(handle, still_image(64, 64), base, cache, count=False)
    params = sum(p.numel() for p in cache.peek(handle.cache_key).pipeline.transformer.parameters())
    result = b.loras(handle, base, cache, root, args.rank, cycles=args.cycles, loads=loads)
    rows = [{"change": r["change"], "ms": round(r["lora_s"] * 1000),
             "pct_page_cache": round(100 * r["vs_cold_load_page_cache"], 1),
             "pct_disk": round(100 * r["vs_cold_load_disk"], 1)} for r in result["rows"]]
    print(json.dumps({"model": name, "params": params, "cold_load_s": result["cold_load_s"], "rows": rows}))
    cache.unload()


if __name__ == "__main__":
    main()
