"""The whole i2v graph on the tiny Wan 2.1 model, queued over HTTP to `serve` with this repository
as its pack; the mp4 comes back through /view. Then the same graph on a real full disk."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from host_stub import Host
from i2v_nodes.runtime.output import video
from tests.host_stub.serve_support import REPO, Client, InProcess, Listener, Subprocess, upload
from tests.i2v_graph import tiny_wan_graph as i2v_graph


def example_png() -> bytes:
    return (REPO / "examples" / "i2v-example.png").read_bytes()


def test_the_i2v_graph_queued_over_http_gives_its_mp4_through_view(session_dirs, tmp_path):
    host = Host(packs=[REPO], input_dir=session_dirs["input"], output_dir=session_dirs["output"],
                models_dir=session_dirs["models"])
    served = InProcess(host, tmp_path / "queue.sqlite3")
    try:
        api = Client(served.base)
        assert "I2VSample" in api.get("/object_info/I2VSample")[1]
        uploaded = upload(served.base, "serve-i2v.png", example_png())[1]
        ws = Listener(served.base, "i2v")
        prompt_id = api.queue(i2v_graph(uploaded["name"], "serve/i2v"), client_id="i2v")["prompt_id"]
        messages = ws.done(prompt_id, timeout=300)
        ws.close()
        kinds = [m["type"] for m in messages]
        assert "execution_success" in kinds, [m["data"] for m in messages if m["type"] == "execution_error"]
        sampled = [m["data"] for m in messages if m["type"] == "progress" and m["data"]["node"] == "4"]
        assert sampled and sampled[-1]["value"] == sampled[-1]["max"]  # per-step progress from I2VSample
        entry = api.history(prompt_id)
        files = [f for ui in entry["outputs"].values() for items in ui.values() if isinstance(items, list)
                 for f in items if isinstance(f, dict) and str(f.get("filename", "")).endswith(".mp4")]
        (mp4,) = files
        query = f"filename={mp4['filename']}&subfolder={mp4['subfolder']}&type={mp4['type']}"
        status, body = api.get("/view?" + query)
        assert status == 200 and body[4:8] == b"ftyp"
        fetched = tmp_path / "fetched.mp4"
        fetched.write_bytes(body)
        info = video.probe_video(fetched)
        assert (info.frame_count, info.width, info.height) == (9, 64, 48)
        assert body == (Path(session_dirs["output"]) / mp4["subfolder"] / mp4["filename"]).read_bytes()
        assert Image.open(io.BytesIO(api.get(f"/view?filename={uploaded['name']}&type=input")[1])).size
    finally:
        served.stop()


def _tmpfs_works(target: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-Urm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {target}"],
                           capture_output=True)
    return probe.returncode == 0


def test_a_full_disk_while_writing_the_video_leaves_no_file_and_the_error_in_history(session_dirs, tmp_path):
    """A real ENOSPC: the output folder is a full tmpfs (in a user and mount namespace, no root
    needed where unprivileged namespaces are allowed)."""
    out = tmp_path / "full-output"
    out.mkdir()
    if not _tmpfs_works(out):
        pytest.skip("no unprivileged mount namespace here (unshare -Urm): test_serve_api simulates ENOSPC")
    shutil.copy(REPO / "examples" / "i2v-example.png", session_dirs["input"] / "serve-full.png")
    # A small tmpfs on the output folder, filled to the last byte; serve runs in it, and once it
    # has stopped the folder's listing is written where the test can read it.
    listing = tmp_path / "listing.txt"
    script = (f"mount -t tmpfs -o size=256k tmpfs {out} || exit 97\n"
              f"dd if=/dev/zero of={out}/filler bs=4k 2>/dev/null\n"
              '"$@" & child=$!\n'
              "trap 'kill -TERM $child' TERM INT\n"
              "wait $child; wait $child\n"
              f"cd {out} && find . -type f > {listing}\n")
    served = Subprocess("--packs", str(REPO), "--input-dir", str(session_dirs["input"]), "--output-dir",
                        str(out), "--models-dir", str(session_dirs["models"]), "--queue-db",
                        str(tmp_path / "queue.sqlite3"), prefix=["unshare", "-Urm", "sh", "-c", script, "sh"])
    try:
        api = Client(served.base)
        entry = api.history(api.queue(i2v_graph("serve-full.png", "full/i2v"))["prompt_id"], timeout=300)
        event, error = entry["status"]["messages"][-1]
        assert event == "execution_error" and error["node_type"] == "EncodeVideo", error
        assert "No space left on device" in error["exception_message"]
        names = api.get("/view?filename=filler")  # the server still answers
        assert names[0] == 200
        status, history = api.get("/history")
        assert status == 200 and list(history) == [entry["prompt"][1]]
    finally:
        served.stop()
    assert listing.read_text().split() == ["./filler"]  # no partial video, no staging file
