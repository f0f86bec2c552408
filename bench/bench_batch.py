"""P5: a batch of 4 seeds in one I2VSample call against 4 calls of one seed (throughput).

Both produce the same four clips (clip i of the batch is bit-identical to the run with seed + i,
checked here). The batch shares the prompt and image encodings and one pipeline call; on a CPU
the UNet still runs one clip per call (batched CPU matmuls would change the last bits), on CUDA
it runs them together. Printed: clips per second both ways and the ratio (batched / single).

    python bench/bench_batch.py [--repeats 5] [--steps 10]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import interleaved_medians, pin_one_thread, still_image, use_bench_models_dir  # noqa: E402

CLIPS, SIZE, FRAMES = 4, 64, 8


def run(repeats: int = 5, steps: int = 10) -> dict:
    pin_one_thread()
    use_bench_models_dir()
    import torch

    from i2v_nodes.nodes import NODE_CLASS_MAPPINGS

    image = still_image()
    loader, sampler = NODE_CLASS_MAPPINGS["LoadI2VModel"](), NODE_CLASS_MAPPINGS["I2VSample"]()
    (model,) = loader.load("tiny-i2vgen-xl", "fp32", "auto", "auto", "none", False)

    def sample(seed: int, batch: int) -> torch.Tensor:
        settings = (SIZE, SIZE, FRAMES, steps, 9.0, seed, batch, 8, 0)
        frames, _fps, _per_clip, _audio = sampler.sample(model, image, "waves", "blurry", *settings)
        return frames

    def batched():
        return sample(100, CLIPS)

    def singles():
        return torch.cat([sample(100 + i, 1) for i in range(CLIPS)])

    assert torch.equal(batched(), singles()), "batch and single runs must give the same clips"
    medians = interleaved_medians({"batched": batched, "singles": singles}, repeats)
    return {
        "benchmark": "P5 batch of 4 seeds in one call vs 4 calls",
        "workload": f"tiny-i2vgen-xl, {SIZE}x{SIZE}, {FRAMES} frames, {steps} steps, CPU, 1 thread",
        "batched_clips_per_s": CLIPS / medians["batched"],
        "single_clips_per_s": CLIPS / medians["singles"],
        "throughput_ratio": medians["singles"] / medians["batched"],
        "identical_clips": True,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    print(json.dumps(run(args.repeats, args.steps), indent=2))


if __name__ == "__main__":
    main()
