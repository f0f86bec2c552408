"""Wan 2.2 A14B at full size on a CPU inside a memory cgroup: the pack's graph against ComfyUI core's
template graph, on the same files at the same limits (issue 20, item 7).

Files: ``bench/write_a14b_files.py`` (random weights in the published layouts: ComfyUI's fp8_scaled
template set, and QuantStack's GGUF Q4_K_M experts with the same UMT5 and VAE). Each run starts a
fresh ComfyUI server inside a fresh memory cgroup (needs root) and runs one graph, 128x128, 5 frames,
2 steps, guidance 1, fp32 compute (ComfyUI with --fp32-unet --fp32-vae; the pack at precision fp32):
- pack: LoadImage -> LoadI2VModelFiles (both experts) -> VRAMGuard (policy error) -> I2VSample ->
  EncodeVideo, and PreviewAny of the guard's report;
- core: ComfyUI's Wan 2.2 14B image-to-video template: two UNETLoader (UnetLoaderGGUF from
  city96's ComfyUI-GGUF for the GGUF set: core has no GGUF loader), each through ModelSamplingSD3
  (shift 8), CLIPLoader (type wan), VAELoader, WanImageToVideo, two KSamplerAdvanced (euler, simple;
  the high-noise expert for step 1, the low-noise one for step 2), VAEDecode -> PreviewImage.

Each run reports: completed, killed (the cgroup's OOM killer), refused (VRAMGuard's message) or
error; wall time from queueing to the end (load included, server start not); the cgroup's peak
charge (anonymous memory and page cache; cache of mapped files is reclaimable); the server's peak
RSS (VmHWM); the peak anonymous memory in the group; and the bytes read from disk. Before each run
the files' page cache is dropped (``posix_fadvise``), so every run starts cold.

A run is KIND:SET:LIMIT[:POLICY]: KIND pack, core, pack-phase or pack-resident (the pack with its
residency forced through a bench-only shim in WORK/packs, to time streaming against keeping
everything loaded); SET fp8_scaled or gguf; LIMIT in GiB (0: no limit, still measured).

    python bench/bench_a14b_ram.py --comfyui /work/comfy-check/comfyui \\
        --python /work/comfy-check/venv/bin/python --launcher /work/shared/tools/comfy_cpu_main.py \\
        [--comfy-pythonpath /work/comfy-check/tv-stub] [--files /work/bench-files] \\
        [--work /work/bench-a14b] [--runs pack:fp8_scaled:18 ...]

ComfyUI-GGUF must be in WORK/packs/ComfyUI-GGUF for core's GGUF runs (``git clone
https://github.com/city96/ComfyUI-GGUF``; ``pip install gguf`` in ComfyUI's venv). A benchmark, not a
test: it needs root, ComfyUI and 56 GB of files, and takes about an hour on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import _cgroup  # noqa: E402
import bench_comfy_core  # noqa: E402
import write_a14b_files  # noqa: E402

log = logging.getLogger("bench_a14b_ram")

GiB = 2**30
IMAGE = bench_comfy_core.IMAGE
DEFAULT_RUNS = ("pack:fp8_scaled:18", "core:fp8_scaled:18", "pack:gguf:12", "core:gguf:12",
                "pack:fp8_scaled:8", "pack:gguf:8",
                "pack-phase:gguf:0", "pack-resident:gguf:0")
SHIM = '''"""Bench only (bench/bench_a14b_ram.py): force the pack's residency in this server (no nodes)."""
import dataclasses, os, sys

MODE = os.environ.get("I2V_BENCH_RESIDENCY")
if MODE:
    sys.path.insert(0, {repo!r})
    from i2v_nodes.runtime.memory import guard

    _original = guard.default_options

    def _forced(handle, shape):
        return dataclasses.replace(_original(handle, shape), residency=MODE)

    guard.default_options = _forced
NODE_CLASS_MAPPINGS = {{}}
'''


# --- the files of each set -------------------------------------------------------------------------------


def set_files(folder: Path, name: str) -> dict[str, Path]:
    """Loader slot -> file of a set: the template set, or the GGUF experts with its UMT5 and VAE."""
    files = write_a14b_files.template_paths(folder)
    if name == "gguf":
        files.update(write_a14b_files.gguf_paths(folder))
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: run bench/write_a14b_files.py {folder}")
    return files


def drop_cache(paths) -> None:
    """Drop the files' pages from the page cache, so a run reads them as a cold start would."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


# --- the graphs (API format) -------------------------------------------------------------------------------


def node(cls: str, **inputs) -> dict:
    return {"class_type": cls, "inputs": inputs}


def core_graph(files: dict[str, Path], a: argparse.Namespace, gguf: bool) -> dict:
    """ComfyUI's Wan 2.2 14B I2V template, the steps split between the experts."""
    loader = (lambda name: node("UnetLoaderGGUF", unet_name=name)) if gguf else \
        (lambda name: node("UNETLoader", unet_name=name, weight_dtype="default"))
    half = a.steps // 2
    common = {"noise_seed": a.seed, "steps": a.steps, "cfg": a.guidance, "sampler_name": "euler",
              "scheduler": "simple", "positive": ["10", 0], "negative": ["10", 1]}
    return {
        "1": loader(files["diffusion_model"].name),
        "2": loader(files["diffusion_model_2"].name),
        "3": node("ModelSamplingSD3", model=["1", 0], shift=8.0),
        "4": node("ModelSamplingSD3", model=["2", 0], shift=8.0),
        "5": node("CLIPLoader", clip_name=files["text_encoder"].name, type="wan", device="default"),
        "6": node("CLIPTextEncode", text=bench_comfy_core.PROMPT, clip=["5", 0]),
        "7": node("CLIPTextEncode", text=bench_comfy_core.NEGATIVE, clip=["5", 0]),
        "8": node("VAELoader", vae_name=files["vae"].name),
        "9": node("LoadImage", image=IMAGE),
        "10": node("WanImageToVideo", positive=["6", 0], negative=["7", 0], vae=["8", 0], width=a.width,
                   height=a.height, length=a.frames, batch_size=1, start_image=["9", 0]),
        "11": node("KSamplerAdvanced", model=["3", 0], add_noise="enable", latent_image=["10", 2],
                   start_at_step=0, end_at_step=half, return_with_leftover_noise="enable", **common),
        "12": node("KSamplerAdvanced", model=["4", 0], add_noise="disable", latent_image=["11", 0],
                   start_at_step=half, end_at_step=10000, return_with_leftover_noise="disable", **common),
        "13": node("VAEDecode", samples=["12", 0], vae=["8", 0]),
        "14": node("PreviewImage", images=["13", 0]),
    }


def pack_graph(files: dict[str, Path], a: argparse.Namespace, policy: str) -> dict:
    """The pack's graph on the same files (both experts), the guard's report previewed."""
    return {
        "1": node("LoadImage", image=IMAGE),
        "2": node("LoadI2VModelFiles", diffusion_model=files["diffusion_model"].name,
                  diffusion_model_2=files["diffusion_model_2"].name, text_encoder=files["text_encoder"].name,
                  vae=files["vae"].name, clip_vision="none", precision="fp32", vae_precision="fp32",
                  device="cpu", offload="none", allow_download=False),
        "3": node("VRAMGuard", model=["2", 0], width=a.width, height=a.height, num_frames=a.frames,
                  batch_size=1, policy=policy, headroom=a.headroom),
        "4": node("I2VSample", model=["3", 0], image=["1", 0], prompt=bench_comfy_core.PROMPT,
                  negative_prompt=bench_comfy_core.NEGATIVE, width=["3", 1], height=["3", 2],
                  num_frames=["3", 3], steps=a.steps, guidance_scale=a.guidance, seed=a.seed,
                  batch_size=["3", 4], target_fps=16, decode_chunk_size=0),
        "5": node("EncodeVideo", frames=["4", 0], fps=["4", 1], format="mp4-h264", crf=19,
                  filename_prefix="bench/a14b", loop_count=0, pingpong=False, save_metadata=False,
                  frames_per_clip=["4", 2]),
        "6": node("PreviewAny", source=["3", 5]),
    }


# --- one run ---------------------------------------------------------------------------------------------


@dataclass
class Run:
    kind: str  # pack, core, pack-phase, pack-resident
    set: str  # fp8_scaled, gguf
    limit_gib: float  # 0: no limit
    policy: str = "error"
    outcome: str = ""  # completed, killed, refused, error, timeout
    message: str = ""
    wall_s: float = 0.0
    executed_s: float = 0.0  # ComfyUI's own execution time (completed runs)
    cgroup_peak_gib: float = 0.0
    vmhwm_gib: float = 0.0
    anon_peak_gib: float = 0.0  # the group's anonymous memory at its highest
    read_gb: float = 0.0
    oom_kills: int = 0
    at_peak: dict = field(default_factory=dict)
    timeline: list = field(default_factory=list)
    log_lines: list = field(default_factory=list)

    @property
    def name(self) -> str:
        limit = f"{self.limit_gib:g} GiB" if self.limit_gib else "no limit"
        return f"{self.kind} {self.set} @ {limit}"


def parse_run(spec: str, default_policy: str) -> Run:
    kind, set_name, limit, *rest = spec.split(":")
    if kind not in ("pack", "core", "pack-phase", "pack-resident") or set_name not in ("fp8_scaled", "gguf"):
        raise SystemExit(f"bad run {spec!r}: KIND:SET:LIMIT[:POLICY]")
    return Run(kind, set_name, float(limit), rest[0] if rest else default_policy)


def measure(run: Run, a: argparse.Namespace) -> Run:
    """Run one graph in a fresh server in a fresh cgroup and fill in what happened."""
    files = set_files(a.files, run.set)
    drop_cache(files.values())
    gguf = run.set == "gguf"
    graph = core_graph(files, a, gguf) if run.kind == "core" else pack_graph(files, a, run.policy)
    limit = int(run.limit_gib * GiB) if run.limit_gib else None
    group = _cgroup.Cgroup(f"i2v-bench-{os.getpid()}-{int(time.time())}", limit)
    server = None
    try:
        server = bench_comfy_core.Server(a, a.work, models=a.files, preexec_fn=group.join, env=_env(run, a))
        sampler = _cgroup.Sampler(server.process.pid, group)
        try:
            _execute(server, graph, run, a.timeout)
        finally:
            sampler.stop()
        _record(run, group, sampler)
    finally:
        if server is not None:
            run.log_lines = _interesting(Path(server.log.name))
            server.stop()
        group.remove()
    return run


def _env(run: Run, a: argparse.Namespace) -> dict[str, str]:
    env = {"I2V_SPILL_DIR": str(a.work / "spill"), "OMP_NUM_THREADS": str(a.threads)}
    if a.comfy_pythonpath:
        env["PYTHONPATH"] = a.comfy_pythonpath
    if run.kind.startswith("pack-"):
        env["I2V_BENCH_RESIDENCY"] = run.kind.removeprefix("pack-")
    return env


def _execute(server, graph: dict, run: Run, timeout: float) -> None:
    started = time.perf_counter()
    prompt_id = _queue(server, graph)
    while time.perf_counter() - started < timeout:
        if server.process.poll() is not None:
            run.outcome, run.message = "killed", f"server exited with {server.process.returncode}"
            break
        entry = _history(server, prompt_id)
        status = (entry or {}).get("status", {})
        if status.get("status_str") in ("success", "error"):
            _finish(run, status, entry)
            break
        time.sleep(1)
    else:
        run.outcome = "timeout"
    run.wall_s = time.perf_counter() - started


def _queue(server, graph: dict) -> str:
    body = json.dumps({"prompt": graph, "client_id": "bench-a14b"}).encode()
    request = urllib.request.Request(server.url + "/prompt", body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())["prompt_id"]
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"ComfyUI refused the graph: {exc.read().decode()[:2000]}") from exc


def _history(server, prompt_id: str) -> dict | None:
    try:
        return server.get(f"/history/{prompt_id}").get(prompt_id)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None  # busy or gone: the caller checks the process


def _finish(run: Run, status: dict, entry: dict) -> None:
    messages = dict((kind, data) for kind, data in status["messages"])
    if status["status_str"] == "success":
        run.outcome = "completed"
        run.executed_s = (messages["execution_success"]["timestamp"]
                          - messages["execution_start"]["timestamp"]) / 1000
        report = entry.get("outputs", {}).get("6", {}).get("text", [""])
        run.message = " ".join(str(report[0]).split())[:600]
        return
    error = messages.get("execution_error", {})
    run.outcome = "refused" if error.get("node_type") == "VRAMGuard" else "error"
    run.message = f"{error.get('node_type')}: {' '.join(str(error.get('exception_message')).split())}"[:1500]


def _record(run: Run, group: _cgroup.Cgroup, sampler: _cgroup.Sampler) -> None:
    run.cgroup_peak_gib = group.peak() / GiB
    run.oom_kills = group.oom_kills()
    if run.oom_kills and run.outcome != "completed":
        run.outcome = "killed"
    run.vmhwm_gib = sampler.peaks.get("VmHWM", 0) / GiB
    run.anon_peak_gib = sampler.peaks.get("anon", 0) / GiB
    run.read_gb = sampler.read_bytes / 1e9
    run.at_peak = {key: round(value / GiB, 2) for key, value in sampler.at_peak.items()}
    run.timeline = sampler.timeline


def _interesting(log_path: Path) -> list[str]:
    """The server log's lines about loading, streaming, memory and errors (for the results file)."""
    words = ("stream", "spill", "float8", "quantised", "memory", "rror", "Killed", "loaded", "Prompt")
    lines = log_path.read_text(errors="replace").splitlines()
    return [line[:300] for line in lines if any(word in line for word in words)][-60:]


# --- the table ---------------------------------------------------------------------------------------------


def print_row(run: Run) -> None:
    kills = f"  oom_kill {run.oom_kills}" if run.oom_kills else ""
    print(f"{run.name:34} {run.outcome:9} {run.wall_s:7.0f} s  cgroup peak {run.cgroup_peak_gib:5.2f} GiB  "
          f"VmHWM {run.vmhwm_gib:5.2f} GiB  anon peak {run.anon_peak_gib:5.2f} GiB  "
          f"read {run.read_gb:5.1f} GB{kills}", flush=True)
    if run.message and run.outcome != "completed":
        print(f"    {run.message[:400]}", flush=True)


def print_ratios(runs: list[Run]) -> None:
    """pack / core at the same set and limit, and streamed / resident time, where both completed."""
    done = {(r.kind, r.set, r.limit_gib): r for r in runs if r.outcome == "completed"}
    for (kind, set_name, limit), pack in done.items():
        core = done.get(("core", set_name, limit))
        if kind == "pack" and core:
            print(f"pack / core, {set_name} @ {limit:g} GiB: time {pack.wall_s / core.wall_s:.2f}, "
                  f"VmHWM {pack.vmhwm_gib / core.vmhwm_gib:.2f}, "
                  f"cgroup peak {pack.cgroup_peak_gib / core.cgroup_peak_gib:.2f}")
        resident = done.get(("pack-resident", set_name, limit))
        if kind == "pack-phase" and resident:
            print(f"streamed / resident, {set_name} @ {limit or 'no limit'}: time "
                  f"{pack.wall_s / resident.wall_s:.2f} ({pack.wall_s:.0f} s vs {resident.wall_s:.0f} s), "
                  f"VmHWM {pack.vmhwm_gib:.2f} vs {resident.vmhwm_gib:.2f} GiB")


def prepare(a: argparse.Namespace) -> None:
    """The work folder: input image, the pack and the residency shim as custom nodes, a spill folder."""
    for sub in ("input", "output", "packs", "spill"):
        (a.work / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "examples" / IMAGE, a.work / "input" / IMAGE)
    pack = a.work / "packs" / "i2v-nodes"
    if pack.is_symlink() and pack.resolve() != REPO:
        pack.unlink()
    if not pack.exists():
        pack.symlink_to(REPO)
    (a.work / "packs" / "i2v_bench_residency.py").write_text(SHIM.format(repo=str(REPO)))


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comfyui", required=True, help="ComfyUI's folder (with main.py)")
    parser.add_argument("--python", default=sys.executable, help="the Python of ComfyUI's environment")
    parser.add_argument("--launcher", help="a script to start ComfyUI with instead of main.py (a CPU shim)")
    parser.add_argument("--comfy-args", default="", help="more ComfyUI arguments")
    parser.add_argument("--comfy-pythonpath", default="", help="ComfyUI's PYTHONPATH (a torchvision stub)")
    parser.add_argument("--files", type=Path, default=write_a14b_files.DEFAULT_FOLDER)
    parser.add_argument("--work", type=Path, default=Path("/work/bench-a14b"))
    parser.add_argument("--runs", nargs="+", default=list(DEFAULT_RUNS), help="KIND:SET:LIMIT[:POLICY]")
    parser.add_argument("--policy", default="error", choices=["error", "adapt", "off"])
    parser.add_argument("--headroom", type=float, default=0.10, help="VRAMGuard's headroom (its default)")
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--guidance", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (OMP_NUM_THREADS)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    a = parser.parse_args()
    a.work, a.files = a.work.resolve(), a.files.resolve()
    return a


def main() -> int:
    a = arguments()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if os.geteuid() != 0:
        raise SystemExit("a memory cgroup needs root")
    prepare(a)
    runs = [parse_run(spec, a.policy) for spec in a.runs]
    print(f"{a.width}x{a.height}, {a.frames} frames, {a.steps} steps, guidance {a.guidance}, fp32, "
          f"{a.threads} threads; files in {a.files}", flush=True)
    results = a.work / f"results-{time.strftime('%Y%m%d-%H%M%S')}.json"
    for run in runs:
        print_row(measure(run, a))
        results.write_text(json.dumps([asdict(r) for r in runs if r.outcome], indent=1))
    print_ratios(runs)
    print(f"details (timelines, log lines): {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
