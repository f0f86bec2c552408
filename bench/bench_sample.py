"""P1: the pack end to end (warm) against a plain diffusers pipeline call, same model and arguments.

Ours: LoadI2VModel (warm) + VRAMGuard + I2VSample, called as ComfyUI calls them.
Stock: ``I2VGenXLPipeline(...)(..., output_type="pt")`` on the same tiny model, loaded once.
Both get the same image, prompt, size, frames, steps, guidance and decode chunk; encoding is
not timed. Printed: both medians and ours / stock (target <= 1.02).

    python bench/bench_sample.py [--repeats 7] [--steps 10]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import interleaved_medians, pin_one_thread, still_image, use_bench_models_dir  # noqa: E402

SIZE, FRAMES, CHUNK = 64, 8, 4


def run(repeats: int = 7, steps: int = 10) -> dict:
    pin_one_thread()
    use_bench_models_dir()

    from i2v_nodes.nodes import NODE_CLASS_MAPPINGS
    from i2v_nodes.runtime.families import i2vgen_xl
    from i2v_nodes.runtime.sampling import images_to_pil

    image = still_image()
    prompt, negative = "waves rolling onto the beach", "blurry, static"
    loader, guard, sampler = (NODE_CLASS_MAPPINGS[n]() for n in ("LoadI2VModel", "VRAMGuard", "I2VSample"))

    def ours():
        (model,) = loader.load("tiny-i2vgen-xl", "auto", "auto", "auto", "none", False)
        guarded, w, h, f, b, _report = guard.guard(model, SIZE, SIZE, FRAMES, 1, "error", 0.10)
        return sampler.sample(guarded, image, prompt, negative, w, h, f, steps, 9.0, 0, b, 8, CHUNK)

    ours()  # warm: builds the tiny model if needed and fills the process cache
    (model,) = loader.load("tiny-i2vgen-xl", "auto", "auto", "auto", "none", False)
    stock_pipe = i2vgen_xl.pipeline_class().from_pretrained(model.source)
    stock_pipe.set_progress_bar_config(disable=True)
    pil = images_to_pil(image)[0]

    def stock():
        # clip_skip=None: the stock default (1) crashes on transformers >= 5
        return stock_pipe(image=pil, prompt=prompt, negative_prompt=negative, height=SIZE, width=SIZE,
                          num_frames=FRAMES, num_inference_steps=steps, guidance_scale=9.0, target_fps=8,
                          decode_chunk_size=CHUNK, output_type="pt", clip_skip=None)

    stock()
    medians = interleaved_medians({"ours": ours, "stock": stock}, repeats)
    return {
        "benchmark": "P1 pack end to end (warm) vs stock diffusers pipeline",
        "workload": f"tiny-i2vgen-xl, {SIZE}x{SIZE}, {FRAMES} frames, {steps} steps, CFG 9.0, "
                    f"decode chunk {CHUNK}, fp32, CPU, 1 thread",
        "repeats": repeats,
        "ours_s": medians["ours"],
        "stock_s": medians["stock"],
        "ratio_ours_over_stock": medians["ours"] / medians["stock"],
        "target": "<= 1.02",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = run(args.repeats, args.steps)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
