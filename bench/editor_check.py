"""The real graph editor against ``python -m host_stub serve``, in headless Chromium: a scripted check.

It starts ``serve`` (this repository as the pack, the tiny models, fresh folders, a free port) and
Chromium (``--headless``), and drives the editor through Chromium's DevTools protocol (over
aiohttp's websocket client: nothing to install beyond Chromium and the editor's wheel):

1. opens the editor at ``/`` and waits for it to start;
2. opens a tier workflow (default workflows/wan-12gb.json) through the editor's own file input
   (what Workflow > Open does), and checks that every node in it is registered;
3. hovers, with the mouse, over each pack node's title and over one of its widgets, and reads the
   tooltip the editor shows, against the pack's DESCRIPTION and input tooltips in /object_info;
4. adapts the workflow to the tiny model in the editor (the model combo to tiny-wan2.1-i2v, which
   must be among the combo's values; offload none; 64x48, 9 frames; 4 steps);
5. queues it with the Run button, waits for the editor to receive ``progress`` (a screenshot
   then) and the run to finish, and for the editor's video preview of the mp4 to load (its
   size checked); a last screenshot.

It prints what it saw, writes ``editor-running.png``, ``editor-done.png`` and ``editor-check.json``
to --out (default: a folder under the system's temporary folder), and exits 0 when every check
passed, 1 when one failed, 2 when Chromium or the editor is not installed (nothing checked).

    python bench/editor_check.py [--workflow workflows/wan-12gb.json] [--out DIR]
        [--chromium /usr/bin/chromium] [--front-end-root .../comfyui_frontend_package/static]

The editor is ``pip install i2v-nodes[ui]`` (the ``comfyui-frontend-package`` wheel); Chromium is
Debian's ``chromium`` package. It is a script, not a test: it needs both, and about a minute of
two CPUs.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

from _timing import use_bench_models_dir  # noqa: E402

VIEWPORT = (1400, 900)
TINY = {
    ("LoadI2VModel", "model"): "tiny-wan2.1-i2v",
    ("LoadI2VModel", "offload"): "none",
    ("VRAMGuard", "width"): 64,
    ("VRAMGuard", "height"): 48,
    ("VRAMGuard", "num_frames"): 9,
    ("VRAMGuard", "policy"): "error",
    ("I2VSample", "steps"): 4,
}


class CheckFailed(Exception):
    pass


# --- serve and Chromium --------------------------------------------------------------------------------


class Server:
    """A server that is already running (``--url``): the same check against the real ComfyUI."""

    def __init__(self, base: str):
        self.base = base.rstrip("/")
        self.log_path: Path | None = None

    def post(self, path: str, body: Any) -> None:
        request = urllib.request.Request(self.base + path, json.dumps(body).encode(), method="POST")
        urllib.request.urlopen(request, timeout=30).close()

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=30) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        pass


class Serve(Server):
    def __init__(self, work: Path, models: Path, front_end_root: str | None, packs: Path = REPO):
        command = [sys.executable, "-m", "host_stub", "serve", "--port", "0", "--cpu", "--packs", str(packs),
                   "--models-dir", str(models), "--input-dir", str(work / "input"),
                   "--output-dir", str(work / "output"), "--user-directory", str(work / "user")]
        if front_end_root:
            command += ["--front-end-root", front_end_root]
        self.log_path = work / "serve.log"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.process = subprocess.Popen(command, cwd=work, env=env, stderr=subprocess.PIPE, text=True)
        log = open(self.log_path, "w")  # noqa: SIM115 - closed by the drain thread
        self.base = ""
        while not self.base:
            line = self.process.stderr.readline()
            if not line:
                log.close()
                raise CheckFailed(f"serve exited; see {self.log_path}")
            log.write(line)
            found = re.search(r"To see the GUI go to: (http://\S+)", line)
            self.base = found.group(1) if found else ""
        threading.Thread(target=self._drain, args=(log,), daemon=True).start()

    def _drain(self, log: Any) -> None:
        with log:
            for line in self.process.stderr:
                log.write(line)
                log.flush()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


class Chromium:
    def __init__(self, executable: str, profile: Path):
        command = [executable, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                   "--no-default-browser-check", "--disable-extensions", "--remote-debugging-port=0",
                   f"--user-data-dir={profile}", f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}", "about:blank"]
        self.log = open(profile.parent / "chromium.log", "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.is_file() or not port_file.read_text().strip():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise CheckFailed(f"Chromium did not start; see {self.log.name}")
            time.sleep(0.2)
        self.port = int(port_file.read_text().split()[0])

    def page_socket(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=10) as response:
            targets = json.loads(response.read())
        return next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()


class DevTools:
    """One page, over Chromium's DevTools protocol."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse):
        self.ws = ws
        self.next_id = 0
        self.pending: dict[int, asyncio.Future] = {}
        self.console_errors: list[str] = []
        self.failed_requests: list[str] = []
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            data = json.loads(msg.data)
            if "id" in data:
                future = self.pending.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
                continue
            method, params = data.get("method"), data.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
                self.console_errors.append(text[:300])
            elif method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                text = details.get("exception", {}).get("description") or details.get("text", "")
                self.console_errors.append(text[:300])
            elif method == "Network.responseReceived":
                response = params.get("response", {})
                if response.get("status", 0) >= 400:
                    self.failed_requests.append(f"{response['status']} {response.get('url', '')}")

    async def call(self, method: str, timeout: float = 60.0, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        future = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        await self.ws.send_str(json.dumps({"id": self.next_id, "method": method, "params": params}))
        answer = await asyncio.wait_for(future, timeout)
        if "error" in answer:
            raise CheckFailed(f"{method}: {answer['error'].get('message')}")
        return answer["result"]

    async def js(self, expression: str, timeout: float = 60.0) -> Any:
        result = await self.call("Runtime.evaluate", timeout, expression=expression, awaitPromise=True,
                                 returnByValue=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise CheckFailed(details.get("exception", {}).get("description") or details.get("text"))
        return result["result"].get("value")

    async def wait_js(self, expression: str, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = await self.js(expression)
            if value:
                return value
            await asyncio.sleep(0.25)
        raise CheckFailed(f"timed out after {timeout:.0f} s waiting for {what}")

    async def mouse(self, kind: str, x: float, y: float) -> None:
        params: dict[str, Any] = {"type": kind, "x": x, "y": y}
        if kind != "mouseMoved":
            params.update(button="left", clickCount=1)
        await self.call("Input.dispatchMouseEvent", **params)

    async def screenshot(self, path: Path) -> None:
        shot = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))


# --- the check -------------------------------------------------------------------------------------------

# Page-side helpers: JavaScript functions, called with JSON arguments by DevTools.call_js.

# Where to point the mouse, in the page's coordinates: a node's title or one of its widgets.
POINT_AT = """(id, what, name) => {
  const n = app.graph.getNodeById(id), c = app.canvas, r = c.canvas.getBoundingClientRect();
  let x = n.pos[0] + 40, y = n.pos[1] - LiteGraph.NODE_TITLE_HEIGHT / 2;
  if (what === 'widget') {
    const w = n.widgets.find(w => w.name === name);
    x = n.pos[0] + n.size[0] / 2;
    y = n.pos[1] + w.y + (w.computedHeight ?? LiteGraph.NODE_WIDGET_HEIGHT) / 2;
  }
  const [cx, cy] = c.ds.convertOffsetToCanvas([x, y]);
  return [r.left + cx, r.top + cy];
}"""

# Fit every node into the canvas (what the editor's "fit view" does).
FIT_VIEW = """() => {
  const c = app.canvas, nodes = app.graph.nodes, W = c.canvas.clientWidth, H = c.canvas.clientHeight;
  const x0 = Math.min(...nodes.map(n => n.pos[0])), y0 = Math.min(...nodes.map(n => n.pos[1] - 40));
  const x1 = Math.max(...nodes.map(n => n.pos[0] + n.size[0]));
  const y1 = Math.max(...nodes.map(n => n.pos[1] + n.size[1]));
  const scale = Math.min(1, 0.92 * W / (x1 - x0), 0.85 * H / (y1 - y0));
  c.ds.scale = scale;
  c.ds.offset = [-x0 + (W / scale - (x1 - x0)) / 2, -y0 + (H / scale - (y1 - y0)) / 2 + 20 / scale];
  c.setDirty(true, true);
  return scale;
}"""

# Where to click an element (its middle), and whether it is what the page has there.
CLICK_AT = """(selector) => {
  const e = document.querySelector(selector);
  if (!e) return null;
  const r = e.getBoundingClientRect(), x = r.left + r.width / 2, y = r.top + r.height / 2;
  const top = document.elementFromPoint(x, y);
  return [x, y, e.contains(top), top ? top.outerHTML.slice(0, 120) : ''];
}"""

# Set widgets as a person would pick values: a combo only to a value it offers.
SET_WIDGETS = """(changes) => {
  const refused = [];
  for (const [type, name, value] of changes) {
    const n = app.graph.nodes.find(n => n.type === type), w = n.widgets.find(w => w.name === name);
    const offered = w.options?.values;
    if (!Array.isArray(offered) || offered.includes(value)) w.value = value;
    else refused.push(`${type}.${name}: ${value} not offered`);
  }
  app.graph.setDirtyCanvas(true, true);
  return refused;
}"""

NODES = """() => app.graph.nodes.map(n => ({
  id: n.id, type: n.type, title: n.title, registered: !!LiteGraph.registered_node_types[n.type],
  widgets: (n.widgets || []).filter(w => !w.element).map(w => w.name)  // canvas widgets (tooltips)
}))"""

# The editor's own websocket messages, as its api object hands them on.
LISTEN = """() => {
  window.__seen = [];
  const api = window.comfyAPI.api.api;
  for (const kind of ['status', 'execution_start', 'executing', 'progress', 'executed', 'execution_success',
                      'execution_error', 'execution_interrupted'])
    api.addEventListener(kind, e => window.__seen.push({type: kind, t: Date.now(), data: e.detail}));
  return true;
}"""

FIRST_SEEN = """(kinds, promptId) => window.__seen.find(
  m => kinds.includes(m.type) && (promptId === null || m.data?.prompt_id === promptId)) ?? null"""

VIDEO = """() => {
  const v = [...document.querySelectorAll('video')].find(v => v.src.includes('/view') && v.readyState >= 2);
  return v && {src: v.src, width: v.videoWidth, height: v.videoHeight, duration: v.duration,
               shown: v.getBoundingClientRect().width > 0};
}"""

DIALOG_TEXT = "[...document.querySelectorAll('.p-dialog')].map(d => d.innerText.trim()).join('\\n') || null"
DIALOG_CLOSE = ".p-dialog .p-dialog-close-button"
# The Run button: inside the queue-button element in older editors, the element itself in 1.58.
RUN_BUTTON = '[data-testid="queue-button"] button, button[data-testid="queue-button"]'


def call(function: str, *args: Any) -> str:
    """A JavaScript expression: ``function`` called with ``args`` (as JSON)."""
    return f"({function})(...{json.dumps(list(args))})"


def short(text: str, size: int = 90) -> str:
    return text[:size] + ("..." if len(text) > size else "")


class Check:
    def __init__(self, page: DevTools, serve: Server, out: Path, workflow: Path):
        self.page = page
        self.serve = serve
        self.out = out
        self.workflow = workflow
        self.results: list[dict[str, Any]] = []
        self.seen: dict[str, Any] = {}

    def record(self, name: str, ok: bool, detail: Any = "") -> None:
        self.results.append({"check": name, "ok": bool(ok), "detail": detail})
        print(f"[{'ok' if ok else 'FAILED'}] {name}: {detail}", flush=True)

    async def run(self) -> None:
        page = self.page
        for domain in ("Page", "Runtime", "Network"):
            await page.call(f"{domain}.enable")
        width, height = VIEWPORT
        await page.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                        mobile=False)
        started = time.monotonic()
        await page.call("Page.navigate", url=self.serve.base + "/")
        await page.wait_js("!!(window.app && app.graph && app.canvas && window.LiteGraph && window.comfyAPI)",
                           120, "the editor to start")
        await asyncio.sleep(2.0)  # the start-up requests (settings, extensions, user data) settle
        version = await page.js("window.__COMFYUI_FRONTEND_VERSION__ ?? null")
        self.record("the editor starts", True, f"frontend {version}, {time.monotonic() - started:.1f} s")
        await page.js(call(LISTEN))
        await self.dialogs_at_start()

        object_info = self.serve.get("/object_info")
        await self.open_workflow(object_info)
        await self.tooltips(object_info)
        await self.adapt()
        await self.queue_and_watch()

    async def dialogs_at_start(self) -> None:
        """The editor opens its default graph at first start; a dialog about it (its nodes are
        ComfyUI's, which serve has not got) comes a few seconds later. Closed as a person would."""
        try:
            text = await self.page.wait_js(DIALOG_TEXT, 20, "a dialog")
        except CheckFailed:
            self.seen["dialog_at_start"] = None
            return
        self.seen["dialog_at_start"] = text
        print(f"a dialog at start: {' / '.join(text.splitlines()[:1] + text.splitlines()[-6:])}", flush=True)
        await self.click(DIALOG_CLOSE, "the dialog's close button")
        await self.page.wait_js("!document.querySelector('.p-dialog-mask')", 10, "the dialog to close")

    async def click(self, selector: str, what: str) -> None:
        """Click, with the mouse, the middle of the element; it must be the element the page has at
        that point (no dialog or overlay in the way)."""
        where = await self.page.js(call(CLICK_AT, selector))
        if not where:
            raise CheckFailed(f"no {what} on the page")
        x, y, reachable, top = where
        if not reachable:
            raise CheckFailed(f"{what} is covered by {top}")
        await self.page.mouse("mouseMoved", x, y)
        await self.page.mouse("mousePressed", x, y)
        await self.page.mouse("mouseReleased", x, y)

    async def open_workflow(self, object_info: dict[str, Any]) -> None:
        page = self.page
        document = await page.call("DOM.getDocument")
        found = await page.call("DOM.querySelector", nodeId=document["root"]["nodeId"],
                                selector="#comfy-file-input")
        if not found.get("nodeId"):
            raise CheckFailed("the editor has no #comfy-file-input (Workflow > Open)")
        await page.call("DOM.setFileInputFiles", nodeId=found["nodeId"], files=[str(self.workflow)])
        wanted = json.loads(self.workflow.read_text())
        types = sorted({n["type"] for n in wanted["nodes"]})
        await page.wait_js("app.graph.nodes.some(n => n.type === 'I2VSample')", 60, "the workflow to load")
        await asyncio.sleep(1.0)
        nodes = await page.js(call(NODES))
        self.seen["nodes"] = nodes
        missing = [n["type"] for n in nodes if not n["registered"]]
        loaded = sorted({n["type"] for n in nodes})
        self.record(f"{self.workflow.name} opens with every node registered", loaded == types and not missing,
                    f"{len(nodes)} nodes: " + ", ".join(f"{n['type']} ({n['title']})" for n in nodes)
                    + (f"; not registered: {missing}" if missing else ""))
        modules = {n["type"]: str(object_info.get(n["type"], {}).get("python_module")) for n in nodes}
        self.pack_nodes = [n for n in nodes if modules[n["type"]].startswith("custom_nodes")]
        self.record("the pack's nodes are there", len(self.pack_nodes) >= 4,
                    ", ".join(n["type"] for n in self.pack_nodes))
        self.seen["scale"] = await page.js(call(FIT_VIEW))
        await asyncio.sleep(0.5)

    async def hover(self, node_id: int, what: str, name: str = "") -> str:
        page = self.page
        x, y = await page.js(call(POINT_AT, node_id, what, name))
        await page.mouse("mouseMoved", x - 30, y + 3)  # off and back on: the editor's idle timer restarts
        await asyncio.sleep(0.05)
        await page.mouse("mouseMoved", x, y)
        try:
            return await page.wait_js("document.querySelector('.node-tooltip')?.textContent", 5,
                                      "a tooltip")
        except CheckFailed:
            return ""

    async def tooltips(self, object_info: dict[str, Any]) -> None:
        shown = []
        for node in self.pack_nodes:
            info = object_info[node["type"]]
            description = info.get("description", "")
            text = await self.hover(node["id"], "title")
            self.record(f"{node['type']}: its title's tooltip is the node's description",
                        bool(description) and text == description, short(text))
            shown.append({"node": node["type"], "where": "title", "tooltip": text})
            inputs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
            widget = next((w for w in node["widgets"] if len(inputs.get(w, ())) > 1
                           and isinstance(inputs[w][1], dict) and inputs[w][1].get("tooltip")), None)
            if widget is None:
                continue
            text = await self.hover(node["id"], "widget", widget)
            wanted = inputs[widget][1]["tooltip"]
            self.record(f"{node['type']}: the {widget!r} widget's tooltip", text == wanted, short(text))
            shown.append({"node": node["type"], "where": f"widget {widget}", "tooltip": text})
        self.seen["tooltips"] = shown
        await self.page.mouse("mouseMoved", 5, VIEWPORT[1] - 5)

    async def adapt(self) -> None:
        changes = [[cls, name, value] for (cls, name), value in TINY.items()]
        result = await self.page.js(call(SET_WIDGETS, changes))
        self.record("adapted to the tiny model through the widgets (values the combos offer)", not result,
                    "; ".join(result) or ", ".join(f"{c}.{n}={v}" for c, n, v in changes))

    async def queue_and_watch(self) -> None:
        page = self.page
        label = await page.js(f"document.querySelector({json.dumps(RUN_BUTTON)})?.textContent.trim()")
        queued_at = time.monotonic()
        await self.click(RUN_BUTTON, "the Run button")
        start = await page.wait_js(call(FIRST_SEEN, ["execution_start"], None), 30, "execution_start")
        prompt_id = start["data"]["prompt_id"]
        self.record("queued from the editor", True, f"clicked the {label!r} button; prompt {prompt_id}")
        progress = (await page.wait_js(call(FIRST_SEEN, ["progress"], prompt_id), 300, "progress"))["data"]
        progress_s = time.monotonic() - queued_at
        await asyncio.sleep(0.3)  # a frame with the progress drawn
        title = await page.js("document.title")
        await page.screenshot(self.out / "editor-running.png")
        self.record("the editor receives progress", True,
                    f"node {progress['node']} {progress['value']}/{progress['max']} after {progress_s:.1f} s"
                    f"; tab title {title!r}")
        ends = ["execution_success", "execution_error", "execution_interrupted"]
        end = await page.wait_js(call(FIRST_SEEN, ends, prompt_id), 600, "the run to finish")
        self.record("the run succeeds", end["type"] == "execution_success",
                    end["type"] + ("" if end["type"] == "execution_success"
                                   else f": {end['data'].get('exception_message')}"))
        entry = self.serve.get(f"/history/{prompt_id}").get(prompt_id, {})
        self.seen["history_outputs"] = entry.get("outputs")
        video = await page.wait_js(call(VIDEO), 60, "the video preview")
        self.seen["video"] = video
        ok = video["width"] == TINY["VRAMGuard", "width"] and video["height"] == TINY["VRAMGuard", "height"]
        self.record("the editor previews the finished video", ok and video["shown"],
                    f"{video['src'].split('/', 3)[-1]}: {video['width']}x{video['height']}, "
                    f"{video['duration']:.2f} s, in the Encode Video node")
        await page.js("document.activeElement?.blur(); true")
        await asyncio.sleep(0.5)
        await page.screenshot(self.out / "editor-done.png")


async def drive(chromium: Chromium, serve: Server, out: Path, workflow: Path) -> Check:
    socket = chromium.page_socket()
    async with aiohttp.ClientSession() as session, session.ws_connect(socket, max_msg_size=0) as ws:
        page = DevTools(ws)
        check = Check(page, serve, out, workflow)
        try:
            await check.run()
        except (CheckFailed, asyncio.TimeoutError) as exc:
            check.record("the check went on to the end", False, str(exc) or type(exc).__name__)
            try:
                await page.screenshot(out / "editor-failed.png")
            except (CheckFailed, asyncio.TimeoutError):
                pass
        check.seen["console_errors"] = page.console_errors
        check.seen["failed_requests"] = page.failed_requests
        return check


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflow", type=Path, default=REPO / "workflows" / "wan-12gb.json")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "i2v-editor-check")
    parser.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser"))
    parser.add_argument("--front-end-root", help="the editor's static folder (default: the installed wheel)")
    parser.add_argument("--models-dir", type=Path, help="holds i2v/tiny-wan2.1-i2v (built there if missing)")
    parser.add_argument("--url", help="check a server that is already running instead (e.g. the real "
                        "ComfyUI, with this pack, the tiny model and i2v-example.png in its input folder)")
    a = parser.parse_args()

    from host_stub.server.routes_editor import find_web_root

    if not a.chromium:
        print("no Chromium (apt-get install chromium, or --chromium PATH): nothing checked")
        return 2
    if a.url is None and find_web_root(a.front_end_root) is None:
        print("no graph editor (pip install i2v-nodes[ui], or --front-end-root DIR): nothing checked")
        return 2
    out = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    models = (a.models_dir or use_bench_models_dir()).resolve()
    with tempfile.TemporaryDirectory(prefix="editor-check-") as tmp:
        work = Path(tmp)
        (work / "input").mkdir()
        shutil.copy(REPO / "examples" / "i2v-example.png", work / "input")
        serve = chromium = None
        try:
            serve = Server(a.url) if a.url else Serve(work, models, a.front_end_root)
            print(f"{'server' if a.url else 'serve'} at {serve.base}", flush=True)
            # No first-run template browser, and no minimap over the video preview in the screenshots.
            serve.post("/api/settings", {"Comfy.TutorialCompleted": True, "Comfy.Minimap.Visible": False})
            (work / "profile").mkdir()
            chromium = Chromium(a.chromium, work / "profile")
            check = asyncio.run(drive(chromium, serve, out, a.workflow.resolve()))
        finally:
            if chromium is not None:
                chromium.stop()
            if serve is not None:
                serve.stop()
                if serve.log_path is not None:
                    shutil.copy(serve.log_path, out / "serve.log")
    report = {"results": check.results, "seen": check.seen}
    (out / "editor-check.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"console errors: {len(check.seen['console_errors'])}; failed requests: "
          f"{check.seen['failed_requests'] or 'none'}")
    failed = [r["check"] for r in check.results if not r["ok"]]
    print(f"{len(check.results) - len(failed)} of {len(check.results)} checks passed; screenshots and "
          f"editor-check.json in {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
