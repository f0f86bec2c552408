"""bench_speed.py's levers on a GPU at a real size, and the pack against stock diffusers at equal
settings: Wan 2.1 1.3B's transformer (all 30 blocks, random weights) at 832x480x33, bf16.

    python bench/bench_speed_gpu.py WIDTH HEIGHT FRAMES STEPS      # e.g. 832 480 33 16

Each run is one clip with the model cached (wall seconds include the decode and copying the frames
off the GPU); "stock" is the stock WanImageToVideoPipeline call with the pack's noise and the same
settings (it encodes its prompts each time, the pack remembers them). PSNR against the lever-off
frames is a numerical check (random weights), not a quality claim. Writes one JSON line per
measurement to $OUT/speed_gpu.jsonl (or /tmp) as it goes, so a time limit keeps what ran.
LAYERS and DEVICE (environment) change the block count and device for a dry run on a CPU.
"""
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import bench_speed as b  # noqa: E402
import torch  # noqa: E402
from _timing import still_image  # noqa: E402

from i2v_nodes.runtime import sampling  # noqa: E402
from i2v_nodes.runtime.loading import models  # noqa: E402
from i2v_nodes.runtime.loading.cache import ModelCache  # noqa: E402

OUT = Path(os.environ.get("OUT", "/tmp")) / "speed_gpu.jsonl"
T0 = time.perf_counter()


def emit(**row):
    row["t"] = round(time.perf_counter() - T0, 1)
    print(json.dumps(row), flush=True)
    with OUT.open("a") as f:
        f.write(json.dumps(row) + "\n")


width, height, frames, steps = (int(a) for a in sys.argv[1:5])
root = Path("/tmp/speedgpu")
name = b.ensure_model(root, int(os.environ.get("LAYERS", 30)))
DEVICE = torch.device(os.environ.get("DEVICE", "cuda"))
emit(event="built", name=name, device=torch.cuda.get_device_name(0) if DEVICE.type == "cuda" else "cpu",
     torch=torch.__version__)
handle = models.open_model(name, models.LoadOptions(precision="bf16", vae_precision="bf16"), [root],
                           DEVICE)
cache = ModelCache(lambda device: 2**40)
image = still_image(height, width)
base = sampling.SampleSettings(b.PROMPT, b.NEGATIVE, width, height, frames, steps, b.GUIDANCE, seed=0,
                               target_fps=16)
warm = b.sample(handle, image, b.with_speed(base, {}, {"steps": 2}), cache, count=False)
emit(event="warm", load_s=warm.timings.get("load"), wall_2_steps=warm.wall)
pipe = cache.peek(handle.cache_key).pipeline
blocks = len(pipe.transformer.blocks)


def stock():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    out = sampling.stock_reference(handle, pipe, image, base, decode_chunk=1)
    result = out.frames.float().cpu()
    return time.perf_counter() - started, result


off = b.sample(handle, image, base, cache)
emit(event="lever", run="off", wall=off.wall, denoise=off.denoise, calls=off.calls, full=off.blocks / blocks)
stock_s, stock_frames = stock()
emit(event="stock", wall=stock_s, psnr_pack_vs_stock=b.psnr(off.frames, stock_frames))
off2 = b.sample(handle, image, base, cache)
stock2_s, _ = stock()
emit(event="pack_vs_stock", pack=[off.wall, off2.wall], stock=[stock_s, stock2_s],
     ratio=min(off.wall, off2.wall) / min(stock_s, stock2_s),
     max_abs=(off.frames - stock_frames).abs().max().item())
for label, knobs, overrides in b.LEVERS[1:] + [("magcache again", {"step_cache": "magcache"}, {})]:
    run = b.sample(handle, image, b.with_speed(base, knobs, overrides), cache)
    emit(event="lever", run=label, wall=run.wall, denoise=run.denoise, calls=run.calls,
         full=run.blocks / blocks, vs_off=run.wall / min(off.wall, off2.wall),
         psnr=None if label.startswith("4 steps") else b.psnr(run.frames, off.frames), notes=run.notes)
plain = b.with_speed(base, {}, {"steps": 4})
compiled = b.with_speed(base, {"compile": "blocks"}, {"steps": 4})
first = b.sample(handle, image, compiled, cache, count=False)
emit(event="compile_first", wall=first.wall, notes=first.notes)
times = {"plain": [], "compiled": []}
for _ in range(2):
    for key, s in (("plain", plain), ("compiled", compiled)):
        times[key].append(b.sample(handle, image, s, cache, count=False).wall)
emit(event="compile_warm", times=times, speedup=min(times["plain"]) / min(times["compiled"]),
     first_cost=first.wall - min(times["plain"]))
emit(event="done")
