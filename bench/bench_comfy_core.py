"""ComfyUI core's own Wan graph against the pack's, on the very same single files, in the real ComfyUI.

Core: UNETLoader, CLIPLoader(wan), VAELoader, CLIPVisionLoader -> CLIPVisionEncode, CLIPTextEncode,
WanImageToVideo -> KSampler (uni_pc) -> VAEDecode -> PreviewImage.
Pack: LoadImage -> LoadI2VModelFiles -> VRAMGuard -> I2VSample -> EncodeVideo.

Same files (see comfy_core_files.py), size, frames, steps, guidance and dtype (fp32 compute on a
CPU; ComfyUI started with --fp32-unet --fp32-vae). Each graph runs in a fresh ComfyUI server, so
its peak RSS (VmHWM) is its own. Time per step is measured on a warm model as the difference of
two runs with different step counts, divided by the difference: load, encoders, decode and saving
cancel out.

    python bench/bench_comfy_core.py --comfyui PATH/TO/ComfyUI [--python COMFY_VENV/bin/python]
        [--launcher shared/tools/comfy_cpu_main.py] [--work /tmp/i2v-bench-comfy]
        [--width 256 --height 256 --frames 5 --steps 2 --more-steps 2]

It needs ComfyUI present, so it is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import comfy_core_files  # noqa: E402

PROMPT = "waves rolling onto the beach at sunset, a sailboat drifting slowly"
NEGATIVE = "blurry, static"
IMAGE = "i2v-example.png"


# --- the two graphs (API format) -----------------------------------------------------------------


def core_graph(files: dict[str, str], a: argparse.Namespace, steps: int, seed: int) -> dict:
    node = lambda cls, **inputs: {"class_type": cls, "inputs": inputs}  # noqa: E731
    return {
        "1": node("UNETLoader", unet_name=files["diffusion_model"], weight_dtype="default"),
        "2": node("CLIPLoader", clip_name=files["text_encoder"], type="wan"),
        "3": node("VAELoader", vae_name=files["vae"]),
        "4": node("CLIPVisionLoader", clip_name=files["clip_vision"]),
        "5": node("LoadImage", image=IMAGE),
        "6": node("CLIPVisionEncode", clip_vision=["4", 0], image=["5", 0], crop="none"),
        "7": node("CLIPTextEncode", text=PROMPT, clip=["2", 0]),
        "8": node("CLIPTextEncode", text=NEGATIVE, clip=["2", 0]),
        "9": node(
            "WanImageToVideo",
            positive=["7", 0],
            negative=["8", 0],
            vae=["3", 0],
            width=a.width,
            height=a.height,
            length=a.frames,
            batch_size=1,
            clip_vision_output=["6", 0],
            start_image=["5", 0],
        ),
        "10": node(
            "KSampler",
            model=["1", 0],
            seed=seed,
            steps=steps,
            cfg=a.guidance,
            sampler_name="uni_pc",
            scheduler="simple",
            positive=["9", 0],
            negative=["9", 1],
            latent_image=["9", 2],
            denoise=1.0,
        ),
        "11": node("VAEDecode", samples=["10", 0], vae=["3", 0]),
        "12": node("PreviewImage", images=["11", 0]),
    }


def pack_graph(files: dict[str, str], a: argparse.Namespace, steps: int, seed: int) -> dict:
    node = lambda cls, **inputs: {"class_type": cls, "inputs": inputs}  # noqa: E731
    return {
        "1": node("LoadImage", image=IMAGE),
        "2": node(
            "LoadI2VModelFiles",
            diffusion_model=files["diffusion_model"],
            diffusion_model_2="none",
            text_encoder=files["text_encoder"],
            vae=files["vae"],
            clip_vision=files["clip_vision"],
            precision="fp32",
            vae_precision="fp32",
            device="cpu",
            offload="none",
            allow_download=False,
        ),
        "3": node(
            "VRAMGuard",
            model=["2", 0],
            width=a.width,
            height=a.height,
            num_frames=a.frames,
            batch_size=1,
            policy=a.policy,
            headroom=0.05,
        ),
        "4": node(
            "I2VSample",
            model=["3", 0],
            image=["1", 0],
            prompt=PROMPT,
            negative_prompt=NEGATIVE,
            width=["3", 1],
            height=["3", 2],
            num_frames=["3", 3],
            steps=steps,
            guidance_scale=a.guidance,
            seed=seed,
            batch_size=["3", 4],
            target_fps=16,
            decode_chunk_size=0,
        ),
        "5": node(
            "EncodeVideo",
            frames=["4", 0],
            fps=["4", 1],
            format="mp4-h264",
            crf=19,
            filename_prefix="bench/pack",
            loop_count=0,
            pingpong=False,
            save_metadata=False,
            frames_per_clip=["4", 2],
        ),
    }


# --- a ComfyUI server of our own ----------------------------------------------------------------------


class Server:
    """A ComfyUI server on a free port, models from ``models`` (default WORK/models), custom nodes
    from WORK/packs; ``preexec_fn`` runs in the child before ComfyUI starts (e.g. joining a memory
    cgroup) and ``env`` adds environment variables."""

    def __init__(self, a: argparse.Namespace, work: Path, models: Path | None = None,
                 preexec_fn=None, env: dict[str, str] | None = None):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = work / "extra_model_paths.yaml"
        config.write_text(
            "bench:\n"
            f"  base_path: {models or work / 'models'}\n"
            "  diffusion_models: diffusion_models\n  unet: unet\n  text_encoders: text_encoders\n  vae: vae\n"
            "  clip_vision: clip_vision\n"
            f"  custom_nodes: {work / 'packs'}\n"
        )
        main = [a.launcher] if a.launcher else [str(Path(a.comfyui) / "main.py")]
        command = [
            a.python,
            *main,
            "--cpu",
            "--listen",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--fp32-unet",
            "--fp32-vae",
            "--extra-model-paths-config",
            str(config),
            "--input-directory",
            str(work / "input"),
            "--output-directory",
            str(work / "output"),
            *a.comfy_args.split(),
        ]
        self.log = open(work / f"server-{self.port}.log", "w")  # noqa: SIM115 - closed in stop()
        env = {**os.environ, "COMFYUI_DIR": str(Path(a.comfyui).resolve()), **(env or {})}
        self.process = subprocess.Popen(
            command, cwd=a.comfyui, stdout=self.log, stderr=subprocess.STDOUT, env=env, preexec_fn=preexec_fn
        )
        for _ in range(180):
            if self.process.poll() is not None:
                raise SystemExit(f"ComfyUI exited; see {self.log.name}")
            try:
                self.get("/object_info/LoadI2VModelFiles")
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(1)
        raise SystemExit(f"ComfyUI did not start; see {self.log.name}")

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return json.loads(response.read())

    def run(self, graph: dict) -> float:
        """Seconds from execution start to success, by ComfyUI's own timestamps."""
        body = json.dumps({"prompt": graph, "client_id": "bench"}).encode()
        request = urllib.request.Request(self.url + "/prompt", body, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                prompt_id = json.loads(response.read())["prompt_id"]
        except urllib.error.HTTPError as exc:
            raise SystemExit(f"ComfyUI refused the graph: {exc.read().decode()[:2000]}") from exc
        while True:
            entry = self.get(f"/history/{prompt_id}").get(prompt_id)
            status = (entry or {}).get("status", {})
            if status.get("completed") is not None and status.get("status_str") in ("success", "error"):
                break
            time.sleep(0.5)
        messages = dict((kind, data) for kind, data in status["messages"])
        if status["status_str"] != "success":
            error = messages.get("execution_error", {})
            raise SystemExit(f"{error.get('node_type')}: {error.get('exception_message')}")
        return (messages["execution_success"]["timestamp"] - messages["execution_start"]["timestamp"]) / 1000

    def peak_rss_gib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 2**30
        return float("nan")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- measuring ---------------------------------------------------------------------------------------


def measure(name: str, graph, files: dict[str, str], a: argparse.Namespace, work: Path) -> dict[str, float]:
    server = Server(a, work)
    try:
        first = server.run(graph(files, a, a.steps, seed=1))  # loads everything
        short = server.run(graph(files, a, a.steps, seed=2))
        long = server.run(graph(files, a, a.steps + a.more_steps, seed=3))
        result = {
            "first_run_s": first,
            "warm_run_s": short,
            "s_per_step": (long - short) / a.more_steps,
            "peak_rss_gib": server.peak_rss_gib(),
        }
    finally:
        server.stop()
    print(
        f"{name:5} first run {result['first_run_s']:7.1f} s   warm run ({a.steps} steps) {short:6.1f} s   "
        f"{result['s_per_step']:6.2f} s/step   peak RSS {result['peak_rss_gib']:5.1f} GiB",
        flush=True,
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comfyui", required=True, help="ComfyUI's folder (with main.py)")
    parser.add_argument("--python", default=sys.executable, help="the Python of ComfyUI's environment")
    parser.add_argument(
        "--launcher", help="a script to start ComfyUI with instead of main.py (e.g. a CPU shim)"
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/i2v-bench-comfy"))
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--more-steps", type=int, default=2, help="extra steps of the second timed run")
    parser.add_argument("--guidance", type=float, default=5.0)
    parser.add_argument("--only", choices=["core", "pack"], help="run one side only")
    parser.add_argument("--comfy-args", default="", help="more ComfyUI arguments, e.g. an attention mode")
    parser.add_argument(
        "--policy",
        default="off",
        choices=["error", "adapt", "off"],
        help="the pack's VRAMGuard policy (default off: it reports; fp32 weights of this set nearly fill "
        "a 24 GB machine, where 'error' would refuse a run that does fit)",
    )
    a = parser.parse_args()

    work = a.work.resolve()
    for sub in ("input", "output", "packs"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "examples" / IMAGE, work / "input" / IMAGE)
    if not (work / "packs" / "i2v-nodes").exists():
        (work / "packs" / "i2v-nodes").symlink_to(REPO)
    paths = comfy_core_files.write(work / "models")
    files = {slot: path.name for slot, path in paths.items()}
    print(
        f"{a.width}x{a.height}, {a.frames} frames, guidance {a.guidance}, fp32, "
        f"{a.steps} and {a.steps + a.more_steps} steps; files: {', '.join(files.values())}",
        flush=True,
    )
    results = {}
    for name, graph in (("core", core_graph), ("pack", pack_graph)):
        if a.only in (None, name):
            results[name] = measure(name, graph, files, a, work)
    if len(results) == 2:
        core, pack = results["core"], results["pack"]
        print(
            f"pack / core: time per step {pack['s_per_step'] / core['s_per_step']:.3f}, "
            f"peak RSS {pack['peak_rss_gib'] / core['peak_rss_gib']:.3f}"
        )
    (work / "results.json").write_text(
        json.dumps({"args": {k: str(v) for k, v in vars(a).items()}, **results}, indent=2)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
