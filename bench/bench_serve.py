"""Benchmark: ``python -m host_stub serve`` against the real ComfyUI, through their HTTP and websocket API.

Both servers run at once, each in its own process on a free loopback port, with the same packs
(this repository and bench/packs/trivial), the same tiny model files and fresh input and output
folders; the client is one aiohttp session and one websocket per server, and the repeats take
turns (serve, ComfyUI, serve, ...) so that drift hits both alike.

(a) Prompts per second for a trivial graph (BenchConst -> BenchInc -> BenchSink; every prompt gets
    a new value, so every node runs and nothing comes from a cache): from ``POST /prompt`` to the
    websocket's ``executing`` with ``node: null``. One at a time (the next prompt is posted when
    the previous one is done) and queued (all posted back to back, to the last one's message).
(b) The i2v graph on the tiny Wan 2.1 model (64x48, 9 frames, 4 steps, fp32), warm (the model is
    loaded by a first prompt; later prompts change the seed, so only I2VSample and EncodeVideo
    run): from ``POST /prompt`` to the first ``progress`` message (prompt encoding, image encoding
    and the first denoising step), and to ``executing`` null.
(c) (a) once more, one at a time, with --output-files empty files in every server's output folder,
    as a server's output folder fills up over time.

A second serve with its queue database in /dev/shm (tmpfs: an fsync costs nothing) runs the
trivial graph too, to show what the durable queue costs. Each server gets --threads torch threads
(default 1: two servers share two cores with whatever else the machine runs).

Medians over the repeats; a Markdown table with the ratios goes to stdout and to
bench/results/<date>-serve.md (and the figures to <date>-serve.json).

    python bench/bench_serve.py --comfyui /tmp/comfy/comfyui --python /tmp/comfy/venv/bin/python \\
        [--launcher /tmp/comfy/launch_ta_shim.py] [--repeats 15] [--prompts 20] [--i2v-repeats 15] \\
        [--threads 1] [--output-files 10000]
    python bench/bench_serve.py            # serve alone

Without --comfyui only serve is measured. It needs ComfyUI to compare, so it is a benchmark, not a
test.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))  # the tests' i2v graph

from _timing import use_bench_models_dir  # noqa: E402

from tests.i2v_graph import tiny_wan_graph  # noqa: E402

TRIVIAL_PACK = HERE / "packs" / "trivial"
TMPFS = "serve, queue database in tmpfs"  # the same server without the cost of its fsyncs
IMAGE = "i2v-example.png"


# --- the graphs (API format) ---------------------------------------------------------------------------


def trivial_graph(value: int) -> dict[str, Any]:
    return {
        "1": {"class_type": "BenchConst", "inputs": {"value": value}},
        "2": {"class_type": "BenchInc", "inputs": {"x": ["1", 0], "step": 1}},
        "3": {"class_type": "BenchSink", "inputs": {"x": ["2", 0]}},
    }


def i2v_graph(seed: int, steps: int = 4) -> dict[str, Any]:
    return tiny_wan_graph(IMAGE, "bench/serve", steps=steps, seed=seed, save_metadata=False)


# --- the servers -----------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def threads(a: argparse.Namespace) -> dict[str, str]:
    """Torch's threads in both servers (its intra-op pool follows OMP_NUM_THREADS)."""
    return {"OMP_NUM_THREADS": str(a.threads), "MKL_NUM_THREADS": str(a.threads)} if a.threads else {}


class Process:
    """A server process; ``stop()`` ends it (by its own pid) however far it got."""

    name = ""
    base = ""
    output: Path
    process: subprocess.Popen

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


class Serve(Process):
    def __init__(self, work: Path, models: Path, a: argparse.Namespace, queue_db: Path | None = None,
                 name: str = "serve"):
        self.name = name
        folder = work / name.replace(" ", "-")
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        command = [sys.executable, "-m", "host_stub", "serve", "--port", "0", "--packs", str(REPO),
                   "--packs", str(TRIVIAL_PACK), "--models-dir", str(models),
                   "--input-dir", str(work / "input"), "--output-dir", str(folder / "output"),
                   "--user-directory", str(folder / "user"), *(["--cpu"] if a.cpu else []),
                   *(["--queue-db", str(queue_db)] if queue_db else [])]
        self.output = folder / "output"
        self.log_path = folder / "serve.log"
        env = {**os.environ, **threads(a), "PYTHONPATH": str(REPO)}
        self.process = subprocess.Popen(command, cwd=folder, env=env, stderr=subprocess.PIPE, text=True)
        log = open(self.log_path, "w")  # noqa: SIM115 - closed by the drain thread
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if not line:
                log.close()
                raise SystemExit(f"serve exited; see {self.log_path}")
            log.write(line)
            found = re.search(r"To see the GUI go to: (http://\S+)", line)
            if found:
                self.base = found.group(1)
                break
        else:
            self.stop()
            raise SystemExit(f"serve did not start; see {self.log_path}")
        threading.Thread(target=self._drain, args=(log,), daemon=True).start()

    def _drain(self, log: Any) -> None:
        with log:
            for line in self.process.stderr:
                log.write(line)


class ComfyUI(Process):
    name = "ComfyUI"

    def __init__(self, work: Path, models: Path, a: argparse.Namespace):
        folder = work / "comfyui"
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "packs").mkdir(parents=True)
        (folder / "user").mkdir()  # ComfyUI wants it to exist
        (folder / "packs" / "i2v-nodes").symlink_to(REPO)
        (folder / "packs" / "trivial").symlink_to(TRIVIAL_PACK)
        config = folder / "extra_model_paths.yaml"
        config.write_text(f"bench:\n  base_path: {models}\n  i2v: i2v\n  custom_nodes: {folder / 'packs'}\n")
        port = _free_port()
        self.base = f"http://127.0.0.1:{port}"
        main = [a.launcher] if a.launcher else [str(Path(a.comfyui) / "main.py")]
        command = [a.python, *main, "--listen", "127.0.0.1", "--port", str(port),
                   "--extra-model-paths-config", str(config), "--input-directory", str(work / "input"),
                   "--output-directory", str(folder / "output"), "--user-directory", str(folder / "user"),
                   *(["--cpu"] if a.cpu else [])]
        self.output = folder / "output"
        self.log_path = folder / "comfyui.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115 - kept open while the process runs
        env = {**os.environ, **threads(a), "COMFYUI_DIR": str(Path(a.comfyui).resolve())}
        self.process = subprocess.Popen(command, cwd=a.comfyui, env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"ComfyUI exited; see {self.log_path}")
            try:
                with urllib.request.urlopen(self.base + "/object_info/BenchConst", timeout=10) as resp:
                    if "BenchConst" in json.loads(resp.read()):
                        return
                    self.stop()
                    raise SystemExit(f"ComfyUI did not load bench/packs/trivial; see {self.log_path}")
            except (urllib.error.URLError, ConnectionError):
                time.sleep(1)
        self.stop()
        raise SystemExit(f"ComfyUI did not start; see {self.log_path}")

    def stop(self) -> None:
        super().stop()
        self.log.close()


# --- the client ------------------------------------------------------------------------------------------


class Client:
    """One HTTP session and one websocket; every text message is timestamped as it arrives."""

    def __init__(self, base: str):
        self.base = base
        self.client_id = f"bench-{os.getpid()}"
        self.seen: list[tuple[float, dict[str, Any]]] = []
        self.answered: list[float] = []  # seconds each POST /prompt took to be answered
        self.changed = asyncio.Condition()

    async def __aenter__(self) -> Client:
        self.http = aiohttp.ClientSession(self.base)
        self.ws = await self.http.ws_connect(f"/ws?clientId={self.client_id}", max_msg_size=0)
        self.reader = asyncio.get_running_loop().create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.reader.cancel()
        await self.ws.close()
        await self.http.close()

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue  # ComfyUI's binary previews
            now = time.perf_counter()
            async with self.changed:
                self.seen.append((now, json.loads(msg.data)))
                self.changed.notify_all()

    async def post(self, graph: dict[str, Any]) -> str:
        started = time.perf_counter()
        async with self.http.post("/prompt", json={"prompt": graph, "client_id": self.client_id}) as resp:
            answer = await resp.json()
        if resp.status != 200:
            raise SystemExit(f"{self.base} refused the graph: {json.dumps(answer)[:2000]}")
        self.answered.append(time.perf_counter() - started)
        return answer["prompt_id"]

    async def first(self, prompt_id: str, kind: str, timeout: float = 600.0) -> float:
        """When the first ``kind`` message ("done": ``executing`` null) of the prompt arrived."""

        def match(message: dict[str, Any]) -> bool:
            data = message.get("data") or {}
            if data.get("prompt_id") != prompt_id:
                return False
            if message["type"] == "execution_error":
                raise SystemExit(f"{self.base}: {data.get('node_type')}: {data.get('exception_message')}")
            if kind == "done":
                return message["type"] == "executing" and data.get("node") is None
            return message["type"] == kind

        async with self.changed:
            found: list[float] = []

            def arrived() -> bool:
                found[:] = [t for t, m in self.seen if match(m)][:1]
                return bool(found)

            await asyncio.wait_for(self.changed.wait_for(arrived), timeout)
            if kind == "done":  # keep only what later waits may still look for
                self.seen = [(t, m) for t, m in self.seen
                             if (m.get("data") or {}).get("prompt_id") not in (None, prompt_id)]
            return found[0]


# --- measuring -------------------------------------------------------------------------------------------


class Counter:
    value = 1000

    @classmethod
    def next(cls) -> int:
        cls.value += 1
        return cls.value


async def one_at_a_time(client: Client, prompts: int) -> tuple[float, float]:
    """Prompts per second, each posted when the previous one is done, and the median seconds
    ``POST /prompt`` took to answer."""
    client.answered.clear()
    started = time.perf_counter()
    for _ in range(prompts):
        prompt_id = await client.post(trivial_graph(Counter.next()))
        await client.first(prompt_id, "done")
    return prompts / (time.perf_counter() - started), statistics.median(client.answered)


async def queued(client: Client, prompts: int) -> float:
    """Prompts per second, all posted back to back, to the last one's ``executing`` null."""
    started = time.perf_counter()
    ids = [await client.post(trivial_graph(Counter.next())) for _ in range(prompts)]
    ends = [await client.first(prompt_id, "done") for prompt_id in ids]
    return prompts / (max(ends) - started)


async def i2v(client: Client, steps: int) -> tuple[float, float]:
    """Seconds from posting the i2v graph to its first ``progress`` message and to ``executing`` null."""
    started = time.perf_counter()
    prompt_id = await client.post(i2v_graph(Counter.next(), steps))
    progress = await client.first(prompt_id, "progress")
    done = await client.first(prompt_id, "done")
    return progress - started, done - started


def fill(folder: Path, count: int) -> None:
    """``count`` empty files in subfolders of 500, as a server's output folder fills over time."""
    for i in range(count):
        sub = folder / "old" / f"{i // 500:03}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"clip_{i:06}.mp4").touch()


async def measure(servers: list[Process], a: argparse.Namespace) -> dict[str, dict[str, Any]]:
    samples: dict[str, dict[str, list[float]]] = {s.name: {} for s in servers}
    clients = {s.name: await Client(s.base).__aenter__() for s in servers}
    i2v_clients = {name: c for name, c in clients.items() if name != TMPFS}  # its queue changes nothing here
    try:
        for client in clients.values():  # warm-up: first-call costs
            await one_at_a_time(client, 3)
        for _ in range(a.repeats):
            for name, client in clients.items():
                pps, answered = await one_at_a_time(client, a.prompts)
                samples[name].setdefault("one_at_a_time_pps", []).append(pps)
                samples[name].setdefault("post_answered_ms", []).append(answered * 1000)
                samples[name].setdefault("queued_pps", []).append(await queued(client, a.prompts))
        for name, client in i2v_clients.items():  # loads the model; only i2v prompts follow: it stays loaded
            progress, done = await i2v(client, a.steps)
            print(f"{name}: i2v warm-up: first progress {progress:.3f} s, done {done:.3f} s", flush=True)
        for repeat in range(a.i2v_repeats):
            for name, client in i2v_clients.items():
                progress, done = await i2v(client, a.steps)
                samples[name].setdefault("i2v_first_progress_s", []).append(progress)
                samples[name].setdefault("i2v_done_s", []).append(done)
                print(f"{name}: i2v repeat {repeat + 1}: first progress {progress:.3f} s, done {done:.3f} s",
                      flush=True)
        if a.output_files:
            for server in servers:
                fill(server.output, a.output_files)
            for _ in range(min(a.repeats, 5)):
                for name, client in clients.items():
                    pps, _answered = await one_at_a_time(client, a.prompts)
                    samples[name].setdefault("full_output_pps", []).append(pps)
    finally:
        for client in clients.values():
            await client.__aexit__()
    return {name: {key: {"median": statistics.median(values), "samples": values} for key, values in s.items()}
            for name, s in samples.items()}


# --- the report ------------------------------------------------------------------------------------------

ROWS = (
    ("one_at_a_time_pps", "trivial graph, one prompt at a time (prompts/s)", "{:.0f}"),
    ("queued_pps", "trivial graph, {prompts} queued at once (prompts/s)", "{:.0f}"),
    ("post_answered_ms", "trivial graph, `POST /prompt` answered (ms)", "{:.1f}"),
    ("i2v_first_progress_s", "i2v graph, warm: POST to the first `progress` (s)", "{:.2f}"),
    ("i2v_done_s", "i2v graph, warm: POST to `executing` null (s)", "{:.2f}"),
    ("full_output_pps", "trivial graph, one at a time, {files} files in the output folder (prompts/s)",
     "{:.0f}"),
)


def comfy_version(comfyui: str) -> str:
    found = re.search(r'__version__ = "([^"]+)"', (Path(comfyui) / "comfyui_version.py").read_text())
    return found.group(1) if found else "?"


def report(figures: dict[str, Any], a: argparse.Namespace) -> str:
    comfy = figures.get("ComfyUI")
    comfy_name = f"ComfyUI {comfy_version(a.comfyui)}" if comfy else None
    head = ["measure", "serve"] + ([comfy_name, "serve / ComfyUI"] if comfy else [])
    lines = [
        f"`python -m host_stub serve` against {comfy_name or 'nothing (no --comfyui)'}, {dt.date.today()}: "
        f"{platform.machine()}, {os.cpu_count()} CPUs{', both started with --cpu' if a.cpu else ''}"
        f"{f', {a.threads} torch thread(s) each' if a.threads else ''}, "
        f"Python {platform.python_version()}, load average {a.load:.1f} at the start (other work on the "
        f"machine). The servers run at once and take turns; medians of "
        f"{a.repeats} repeats of {a.prompts} prompts (trivial graph) and of {a.i2v_repeats} i2v prompts.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for name in ("serve", TMPFS):
        for key, label, fmt in ROWS:
            if name not in figures or key not in figures[name]:
                continue
            mine = figures[name][key]["median"]
            label = label.format(prompts=a.prompts, files=a.output_files)
            label += "" if name == "serve" else f"; {name}"
            row = [label, fmt.format(mine)]
            if comfy:
                theirs = comfy[key]["median"]
                row += [fmt.format(theirs), f"{mine / theirs:.2f}"]
            lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "Trivial graph: BenchConst -> BenchInc -> BenchSink (bench/packs/trivial) with a new value per "
        "prompt, so nothing is cached; timed from sending `POST /prompt` to the websocket's `executing` "
        "with `node: null`. i2v graph: LoadImage -> LoadI2VModel (tiny-wan2.1-i2v, fp32) -> VRAMGuard -> "
        f"I2VSample (64x48, 9 frames, {a.steps} steps, guidance 5) -> EncodeVideo (mp4), a new seed per "
        "prompt after a warm-up prompt that loads the model, so only I2VSample and EncodeVideo run; the "
        "first `progress` comes after prompt and image encoding and the first denoising step. Prompts "
        "per second: higher is better; seconds: lower is better. serve commits each queue change to "
        "SQLite with synchronous=FULL (an fsync) before it goes on, three per prompt (queued, claimed, "
        "finished); ComfyUI keeps its queue in memory. The tmpfs rows are the same serve with its queue "
        "database in /dev/shm, where an fsync costs nothing: the difference is what durability costs "
        "on this disk. The last row: the same trivial graph with that many (empty) files in each server's "
        "output folder.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comfyui", help="ComfyUI's folder (with main.py); without it, serve alone")
    parser.add_argument("--python", default=sys.executable, help="the Python of ComfyUI's environment")
    parser.add_argument("--launcher", help="a script that starts ComfyUI instead of main.py (a CPU shim)")
    parser.add_argument("--cpu", action=argparse.BooleanOptionalAction, default=True,
                        help="start both servers with --cpu (default on)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per server (OMP_NUM_THREADS; default 1: two cores, two servers; "
                        "0 leaves torch's default)")
    parser.add_argument("--repeats", type=int, default=15, help="trivial-graph repeats per server")
    parser.add_argument("--prompts", type=int, default=20, help="trivial prompts per repeat")
    parser.add_argument("--i2v-repeats", type=int, default=15, help="warm i2v prompts per server")
    parser.add_argument("--output-files", type=int, default=10000,
                        help="then the trivial graph again, this many files in each output folder (0: not)")
    parser.add_argument("--steps", type=int, default=4, help="denoising steps of the i2v graph")
    parser.add_argument("--tmpfs-queue", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure serve with its queue database in /dev/shm (trivial graph)")
    parser.add_argument("--models-dir", type=Path, help="holds i2v/tiny-wan2.1-i2v (built there if missing)")
    parser.add_argument("--work", type=Path, help="the servers' folders (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / f"{dt.date.today()}-serve.md",
                        help="where the Markdown table goes (the JSON beside it); '-' for nowhere")
    a = parser.parse_args()

    models = (a.models_dir or use_bench_models_dir()).resolve()
    a.load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        work = (a.work or Path(tmp)).resolve()
        (work / "input").mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "examples" / IMAGE, work / "input" / IMAGE)
        servers: list[Process] = []
        shm: Path | None = None
        try:
            servers.append(Serve(work, models, a))  # first: it builds the tiny model if missing
            print(f"serve at {servers[0].base}", flush=True)
            if a.tmpfs_queue and Path("/dev/shm").is_dir():
                shm = Path(tempfile.mkdtemp(prefix="bench-serve-", dir="/dev/shm"))
                servers.append(Serve(work, models, a, shm / "queue.sqlite3", TMPFS))
            if a.comfyui:
                servers.append(ComfyUI(work, models, a))
                print(f"ComfyUI at {servers[1].base}", flush=True)
            figures = asyncio.run(measure(servers, a))
        finally:
            for server in servers:
                server.stop()
            if shm is not None:
                shutil.rmtree(shm, ignore_errors=True)
    table = report(figures, a)
    print(table)
    if str(a.out) != "-":
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(table)
        a.out.with_suffix(".json").write_text(json.dumps(
            {"args": {k: str(v) for k, v in vars(a).items()}, "figures": figures}, indent=2) + "\n")
        print(f"written to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
