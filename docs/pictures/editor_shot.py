"""Takes docs/pictures/editor.png: a tier workflow in the real graph editor, run on a tiny model.

It drives the editor the way ``bench/editor_check.py`` does, with that script's own pieces (serve,
Chromium, the DevTools page, opening through the editor's file input, fitting the view, queueing
with the Run button), so the picture is what a person sees: ``python -m host_stub serve`` with this
repository as the pack and the editor's wheel, Chromium headless, and the workflow opened through
Workflow > Open. The workflow's model is switched to its tiny twin at a small size (the picture's
caption says so), it is run, and the screenshot is taken once the video preview has loaded.

    python docs/pictures/editor_shot.py [--workflow workflows/wan-16gb.json] [--no-run]
        [--out docs/pictures/editor.png] [--chromium /usr/bin/chromium]

Needs Chromium (Debian's ``chromium``) and the editor (``pip install i2v-nodes[ui]``); exits 2
without them. Wan's default negative prompt is Chinese: without a CJK font (e.g. Debian's
``fonts-wqy-zenhei``) Chromium draws it as boxes. About a minute of two CPUs.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import shutil
import sys
import tempfile
from pathlib import Path

import aiohttp

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))

import editor_check as ec  # noqa: E402  (bench/editor_check.py: the editor driver)

SIZE = (1600, 900)  # the screenshot, in CSS pixels at scale 1
MAX_BYTES = 400 * 1024  # what the repository keeps of a picture
# No first-run template browser, minimap or canvas statistics over the graph.
SETTINGS = {"Comfy.TutorialCompleted": True, "Comfy.Minimap.Visible": False, "Comfy.Graph.CanvasInfo": False}
# The Wan 2.2 A14B tier on the tiny A14B (two tiny experts), at the size editor_check's run uses.
TINY = [["LoadI2VModel", "model", "tiny-wan2.2-i2v-a14b"], ["LoadI2VModel", "offload", "none"],
        ["LoadI2VModel", "weights", "default"], ["VRAMGuard", "policy", "error"],
        *([["VRAMGuard", name, ec.TINY["VRAMGuard", name]] for name in ("width", "height", "num_frames")]),
        ["I2VSample", "steps", ec.TINY["I2VSample", "steps"]]]


async def shoot(chromium: ec.Chromium, serve: ec.Server, workflow: Path, run: bool, work: Path) -> bytes:
    """Open ``workflow`` in the editor, run it when asked, fit it to the view; the screenshot's PNG.
    ``work`` receives editor_check's own screenshots of the run."""
    async with aiohttp.ClientSession() as session, \
            session.ws_connect(chromium.page_socket(), max_msg_size=0) as ws:
        page = ec.DevTools(ws)
        check = ec.Check(page, serve, work, workflow)
        for domain in ("Page", "Runtime", "Network"):
            await page.call(f"{domain}.enable")
        await page.call("Emulation.setDeviceMetricsOverride", width=SIZE[0], height=SIZE[1],
                        deviceScaleFactor=1, mobile=False)
        await page.call("Page.navigate", url=serve.base + "/")
        await page.wait_js("!!(window.app && app.graph && app.canvas && window.LiteGraph && window.comfyAPI)",
                           120, "the editor to start")
        await asyncio.sleep(2.0)
        await page.js(ec.call(ec.LISTEN))
        await check.dialogs_at_start()
        await check.open_workflow(serve.get("/object_info"))
        if run:
            refused = await page.js(ec.call(ec.SET_WIDGETS, TINY))
            if refused:
                raise ec.CheckFailed("; ".join(refused))
            await check.queue_and_watch()
        await page.js(ec.call(ec.FIT_VIEW))
        await page.mouse("mouseMoved", 5, SIZE[1] - 5)
        await asyncio.sleep(1.0)
        shot = await page.call("Page.captureScreenshot", format="png")
        return base64.b64decode(shot["data"])


def small_png(png: bytes) -> bytes:
    """The screenshot in at most 256 colours when the full-colour one is over MAX_BYTES: the editor's
    flat colours survive it, and the file stays small enough to keep in the repository."""
    from PIL import Image

    if len(png) <= MAX_BYTES:
        return png
    image = Image.open(io.BytesIO(png)).convert("RGB")
    out = io.BytesIO()
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, format="PNG", optimize=True)
    return out.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflow", type=Path, default=REPO / "workflows" / "wan-16gb.json")
    parser.add_argument("--out", type=Path, default=HERE / "editor.png")
    parser.add_argument("--no-run", action="store_true", help="the graph as opened, not run")
    parser.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser"))
    parser.add_argument("--front-end-root", help="the editor's static folder (default: the installed wheel)")
    args = parser.parse_args()

    from host_stub.server.routes_editor import find_web_root

    if not args.chromium or find_web_root(args.front_end_root) is None:
        print("needs Chromium (apt-get install chromium) and the editor (pip install i2v-nodes[ui])")
        return 2
    models = ec.use_bench_models_dir().resolve()
    with tempfile.TemporaryDirectory(prefix="editor-shot-") as tmp:
        work = Path(tmp)
        for folder in ("input", "profile", "custom_nodes"):
            (work / folder).mkdir()
        shutil.copy(REPO / "examples" / "i2v-example.png", work / "input")
        # As installed in ComfyUI (custom_nodes/i2v-nodes), so the nodes' source badge names the pack,
        # not whatever this checkout's folder is called.
        (work / "custom_nodes" / "i2v-nodes").symlink_to(REPO, target_is_directory=True)
        serve = chromium = None
        try:
            serve = ec.Serve(work, models, args.front_end_root, packs=work / "custom_nodes")
            serve.post("/api/settings", SETTINGS)
            chromium = ec.Chromium(args.chromium, work / "profile")
            png = asyncio.run(shoot(chromium, serve, args.workflow.resolve(), not args.no_run, work))
        finally:
            if chromium is not None:
                chromium.stop()
            if serve is not None:
                serve.stop()
    args.out.write_bytes(small_png(png))
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
