"""`serve` tried as a hostile or careless client would (issue 19), over real HTTP on loopback.

Every case has its expected answer, and no answer may be a 500 (a 500 means a bug): the worker
cannot be killed by a prompt or by the store, other sites cannot reach the API, served files
cannot script the API's origin, client errors are 400s naming the field, files stay in their
folders, bad flags stop `serve` with one line.

``TestOneServer`` attacks one server (this repository and the arith pack loaded) over HTTP; its
last test runs a trivial graph and the tiny Wan graph on it. The tests after it need servers of
their own (other flags, a poisoned queue, a failing store, a full disk); one in-process server
at a time, so they come after the class's server has stopped.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from host_stub import Host
from host_stub.cli import main as cli_main
from host_stub.server.store import MAX_STARTS, QueueStore
from tests.host_stub.serve_support import (
    PACKS,
    REPO,
    Client,
    InProcess,
    Subprocess,
    chain,
    raw_upload,
    request,
    upload,
)
from tests.i2v_graph import tiny_wan_graph

SCRIPTED = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.domain)</script></svg>'
EMPTY_QUEUE = {"queue_running": [], "queue_pending": []}


def nested(depth: int) -> dict:
    """``{"a": {"a": ...}}``, ``depth`` objects deep."""
    top = inner = {}
    for _ in range(depth - 1):
        inner["a"] = {}
        inner = inner["a"]
    return top


def call(base: str, path: str, method: str = "GET", body=None, headers=None, raw=None):
    """(status, body, headers) of one request; a 500 fails the test wherever it comes."""
    status, data, head = request(base + path, method, body, headers, raw)
    assert status != 500, (method, path, data)
    return status, data, head


def small_host(tmp_path: Path) -> Host:
    return Host(packs=[PACKS / "arith"], input_dir=tmp_path / "in", output_dir=tmp_path / "out",
                models_dir=tmp_path / "models")


def raw_post(base: str, path: str, head: str, chunks: int, chunk: bytes) -> int:
    """Send a body by hand (the server may stop reading it early) and return the status."""
    host, port = base[len("http://"):].split(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{head}\r\n".encode())
        try:
            for _ in range(chunks):
                sock.sendall(chunk)
        except OSError:  # the server answered and closed: fine
            pass
        answer = sock.makefile("rb").readline()
    return int(answer.split()[1])


@pytest.fixture(scope="class")
def served(tmp_path_factory, session_dirs):
    root = tmp_path_factory.mktemp("serve_attacks")
    for name in ("input", "output", "outside", "user"):
        (root / name).mkdir()
    (root / "outside" / "secret.txt").write_text("do not serve")
    (root / "output" / "real.txt").write_text("fine")
    (root / "output" / "line\nbreak.txt").write_text("odd")
    (root / "input" / 'ünï"quote.png').write_bytes(b"\x89PNG")
    os.symlink(root / "outside" / "secret.txt", root / "output" / "leak.txt")
    os.symlink(root / "outside", root / "output" / "door")
    os.symlink(root / "outside", root / "input" / "door")
    shutil.copy(REPO / "examples" / "i2v-example.png", root / "input" / "still.png")
    (root / "output" / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))
    host = Host(packs=[REPO, PACKS / "arith"], input_dir=root / "input", output_dir=root / "output",
                models_dir=session_dirs["models"])
    server = InProcess(host, root / "queue.sqlite3", user_dir=root / "user")
    server.root = root
    server.port = server.base.rsplit(":", 1)[1]
    yield server
    server.stop()


class TestOneServer:
    """One server under every HTTP attack; then it still runs graphs."""

    @pytest.fixture
    def api(self, served):
        client = Client(served.base)
        client.wait_idle()
        return client

    # --- 1, 8: whatever a prompt brings is checked at the door ------------------------------------

    @pytest.mark.parametrize("body, field", [
        ({"extra_data": nested(600)}, "extra_data"),
        ({"prompt": {**chain(value=1), "9": {"class_type": "IntConst", "inputs": {"value": nested(300)}}}},
         "prompt"),
        ({"number": "nan"}, "number"),
        ({"number": "inf"}, "number"),
        ({"number": 10**400}, "number"),
        ({"number": True}, "number"),
        ({"client_id": {"a": 1}}, "client_id"),
        ({"client_id": "x" * 1000}, "client_id"),
        ({"extra_data": {"client_id": [1]}}, "extra_data.client_id"),
        ({"prompt_id": {"a": 1}}, "prompt_id"),
        ({"prompt_id": "a\nb"}, "prompt_id"),
        ({"extra_data": [1]}, "extra_data"),
        ({"partial_execution_targets": [1]}, "partial_execution_targets"),
    ])
    def test_a_bad_field_is_a_400_that_names_it_and_nothing_is_queued(self, api, served, body, field):
        status, answer, _ = call(served.base, "/prompt", "POST", {"prompt": chain(value=1), **body})
        assert status == 400, answer
        assert field in answer["error"]["message"] and answer["error"]["details"] == field, answer
        assert api.get("/queue")[1] == EMPTY_QUEUE

    def test_bodies_that_would_overflow_a_parser_are_400s(self, api, served):
        for raw in (b"[" * 200_000, b'{"prompt": ' + b"[" * 5000 + b"]" * 5000 + b"}"):
            status, answer, _ = call(served.base, "/prompt", "POST", raw=raw)
            assert status == 400 and answer["error"]["type"] == "too_deep", answer
        assert call(served.base, "/settings", "POST", raw=b"[" * 200_000)[0] == 400
        workflow = {"prompt": chain(value=1), "extra_data": {"extra_pnginfo": {"workflow": nested(90)}}}
        answer = call(served.base, "/prompt", "POST", workflow)  # deep, but as deep as workflows go
        assert answer[0] == 200 and api.history(answer[1]["prompt_id"])["status"]["completed"]

    @pytest.mark.parametrize("path", [
        "/history?max_items=99999999999999999999", "/history?offset=-99999999999999999999",
        "/history?max_items=1e3", "/view?filename=clip.mp4&preview=webp;90",
        "/view?filename=real.txt&channel=a", "/view?filename=" + "a" * 300 + ".png",
        "/view?filename=x.png&subfolder=" + "d" * 300, "/userdata/" + "u" * 300 + ".json",
    ])
    def test_client_errors_on_reads_are_400s_that_say_why(self, served, path):
        status, answer, _ = call(served.base, path)
        assert status == 400 and answer["error"]["details"], answer

    def test_an_interrupt_or_delete_with_a_bad_id_is_a_400(self, served):
        assert call(served.base, "/interrupt", "POST", {"prompt_id": {"a": 1}})[0] == 400
        assert call(served.base, "/queue", "POST", {"delete": "x"})[0] == 400
        assert call(served.base, "/history", "POST", {"delete": [{"a": 1}]})[0] == 400

    def test_uploads_with_bad_names_are_400s_and_leave_nothing(self, served):
        for name, fields in (("a" * 300 + ".png", {}), ("x.png", {"subfolder": "s" * 300}), ("../x.png", {}),
                             ("x\x00.png", {}), ("/etc/x.png", {}), ("x.png", {"subfolder": "../outside"})):
            status, answer = raw_upload(served.base, name, b"data", **fields)
            assert status == 400 and answer["error"]["details"], (name, fields, answer)
        assert raw_upload(served.base, "x.png", b"data", subfolder="door")[0] == 403
        assert not list((served.root / "input").glob(".upload-*"))
        assert sorted(p.name for p in (served.root / "outside").iterdir()) == ["secret.txt"]

    # --- 4: no cross-site requests ----------------------------------------------------------------

    def test_a_simple_cross_site_request_cannot_queue_or_upload(self, api, served):
        simple = {"Origin": "null", "Content-Type": "text/plain"}
        raw = json.dumps({"prompt": chain(value=2)}).encode()
        status, answer, _ = call(served.base, "/prompt", "POST", headers=simple, raw=raw)
        assert status == 403 and answer["error"]["type"] == "forbidden_origin"
        evil = {"Origin": "http://evil.example"}
        assert call(served.base, "/prompt", "POST", headers=evil, raw=raw)[0] == 403
        status, answer = upload(served.base, "cross.png", b"x", headers={"Origin": "null"})
        assert status == 403 and not (served.root / "input" / "cross.png").exists()
        preflight = call(served.base, "/prompt", "OPTIONS", headers={"Origin": "http://evil.example"})
        assert preflight[0] == 403 and "Access-Control-Allow-Origin" not in preflight[2]
        assert api.get("/queue")[1] == EMPTY_QUEUE

    @pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "127.0.0.1.evil.example",
                                      "localhost.evil.example", "127.0.0.1:80@evil.example", "127.0.0.1:nope",
                                      "[::1"])
    def test_a_host_that_is_not_the_server_is_refused(self, served, host):
        for path in ("/history", "/view?filename=real.txt", "/object_info", "/"):
            status, answer, _ = call(served.base, path, headers={"Host": host})
            assert status == 403 and answer["error"]["type"] == "forbidden_host", (host, path)
        rebinding = {"Host": host, "Origin": f"http://{host}"}
        assert call(served.base, "/prompt", "POST", {"prompt": chain(value=3)}, rebinding)[0] == 403

    def test_the_servers_own_names_and_the_editors_same_origin_requests_work(self, served):
        port = served.port
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LocalHost.:{port}", f"[::1]:{port}",
                     f"studio.localhost:{port}", f"127.0.0.2:{port}", socket.gethostname()):
            assert call(served.base, "/prompt", headers={"Host": host})[0] == 200, host
        editor = {"Origin": f"http://127.0.0.1:{port}"}
        answer = call(served.base, "/prompt", "POST", {"prompt": chain(value=4), "client_id": "ed"}, editor)
        assert answer[0] == 200, answer
        assert upload(served.base, "same-origin.png", b"x", headers=editor)[0] == 200
        assert call(served.base, "/settings/Comfy.Theme", "POST", "dark", editor)[0] == 200
        assert call(served.base, "/", headers=editor)[0] == 200
        assert call(served.base, "/prompt", "OPTIONS", headers=editor)[0] == 200
        Client(served.base).history(answer[1]["prompt_id"])

    def test_a_websocket_from_another_site_is_refused(self, served):
        async def connect(origin: str) -> int:
            async with aiohttp.ClientSession() as session:
                try:
                    async with session.ws_connect(served.base + "/ws?clientId=x", origin=origin) as ws:
                        await ws.close()
                        return 101
                except aiohttp.WSServerHandshakeError as exc:
                    return exc.status

        assert asyncio.run(connect("http://evil.example")) == 403
        assert asyncio.run(connect("null")) == 403
        assert asyncio.run(connect(served.base)) == 101

    # --- 7: served files cannot script the origin ---------------------------------------------------

    @pytest.mark.parametrize("name, data, content_type, inline", [
        ("x.svg", SCRIPTED, "application/octet-stream", False),
        ("x.xml", b"<?xml version='1.0'?><a/>", "application/octet-stream", False),
        ("x.html", b"<script>alert(1)</script>", "application/octet-stream", False),
        ("x.js", b"alert(1)", "application/octet-stream", False),
        ("x.unknownext", b"?", "application/octet-stream", False),
        ("x.png", b"\x89PNG\r\n", "image/png", True),
        ("x.mp4", b"\x00\x00\x00\x18ftyp", "video/mp4", True),
        ("x.json", b'{"a": 1}', "application/json", True),
        ("x.txt", b"<script>alert(1)</script>", "text/plain; charset=utf-8", True),
        ("x.csv", b"a,b", "text/plain; charset=utf-8", True),
    ])
    def test_view_and_userdata_serve_media_and_data_only_with_nosniff_and_a_csp(self, served, name, data,
                                                                               content_type, inline):
        assert upload(served.base, name, data, overwrite="true")[0] == 200
        assert call(served.base, f"/userdata/{name}", "POST", raw=data)[0] == 200
        for path in (f"/view?filename={name}&type=input", f"/userdata/{name}"):
            status, body, head = call(served.base, path)
            assert status == 200 and body == (json.loads(data) if name.endswith(".json") else data), path
            assert head["Content-Type"] == content_type, path
            assert head["Content-Disposition"].startswith("inline" if inline else "attachment"), path
            assert head["X-Content-Type-Options"] == "nosniff"
            policy = head["Content-Security-Policy"]
            assert "sandbox" in policy and "default-src 'none'" in policy and "script-src" not in policy

    def test_previews_and_odd_file_names_are_served_safely(self, served):
        status, body, head = call(served.base, "/view?filename=still.png&type=input&preview=webp;99999999999")
        assert status == 200 and head["Content-Type"] == "image/webp" and body[:4] == b"RIFF"
        assert "sandbox" in head["Content-Security-Policy"]
        status, _, head = call(served.base, "/view?filename=%C3%BCn%C3%AF%22quote.png&type=input")
        assert status == 200 and "filename*=UTF-8''%C3%BCn%C3%AF%22quote.png" in head["Content-Disposition"]
        status, body, head = call(served.base, "/view?filename=line%0Abreak.txt")
        assert status == 200 and body == b"odd" and "line%0Abreak.txt" in head["Content-Disposition"]
        assert call(served.base, "/view?filename=real.txt%0D%0ASet-Cookie:%20x=1")[0] == 404

    # --- answered well before: traversal, symlinks, NUL bytes, huge bodies (so none comes back) -----

    @pytest.mark.parametrize("query, status", [
        ("filename=../queue.sqlite3", 400), ("filename=..%2Fqueue.sqlite3", 400),
        ("filename=/etc/passwd", 400), ("filename=real.txt%00.png", 400),
        ("filename=secret.txt&subfolder=../outside", 400), ("filename=secret.txt&subfolder=/tmp", 400),
        ("filename=leak.txt", 403), ("filename=secret.txt&subfolder=door", 403),
        ("filename=real.txt&type=models", 400), ("filename=missing.txt", 404), ("filename=real.txt", 200),
    ])
    def test_view_stays_inside_its_folder(self, served, query, status):
        assert call(served.base, "/view?" + query)[0] == status

    def test_200_mb_bodies_are_refused_without_being_read(self, served):
        mb = 1 << 20
        assert raw_post(served.base, "/prompt", f"Content-Length: {200 * mb}\r\n", 1, b" " * mb) == 413
        chunked = b"%x\r\n%s\r\n" % (mb, b" " * mb)
        assert raw_post(served.base, "/prompt", "Transfer-Encoding: chunked\r\n", 200, chunked) == 413
        form = f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {200 * mb}\r\n"
        assert raw_post(served.base, "/upload/image", form, 1, b"-" * mb) == 413

    # --- after all of it: the same server still runs graphs ------------------------------------------

    def test_after_the_attacks_the_server_runs_a_trivial_graph_and_the_tiny_wan_graph(self, api, served):
        assert api.history(api.queue(chain(value=20))["prompt_id"])["status"]["status_str"] == "success"
        entry = api.history(api.queue(tiny_wan_graph("still.png", "attacks/i2v"))["prompt_id"], timeout=300)
        assert entry["status"]["status_str"] == "success", entry["status"]["messages"][-1]
        (video,) = [f for ui in entry["outputs"].values() for items in ui.values() if isinstance(items, list)
                    for f in items if isinstance(f, dict) and str(f.get("filename", "")).endswith(".mp4")]
        query = f"filename={video['filename']}&subfolder={video['subfolder']}"
        status, body, head = call(served.base, "/view?" + query)
        assert status == 200 and body[4:8] == b"ftyp" and head["Content-Type"] == "video/mp4"


# --- 4: names added with --allow-host; with a token the token is the check ---------------------------


def test_allow_host_names_a_host_and_a_token_replaces_the_host_check(tmp_path):
    host = small_host(tmp_path)
    named = InProcess(host, tmp_path / "named.sqlite3", allow_hosts=["studio.lan"])
    try:
        assert call(named.base, "/prompt", headers={"Host": "studio.lan:8188"})[0] == 200
        assert call(named.base, "/prompt", headers={"Host": "other.lan:8188"})[0] == 403
    finally:
        named.stop()
    tokened = InProcess(host, tmp_path / "token.sqlite3", token="t0k")
    try:
        proxied = {"Host": "comfy.example.org", "Authorization": "Bearer t0k"}
        assert call(tokened.base, "/prompt", headers=proxied)[0] == 200
        assert call(tokened.base, "/prompt", headers={"Host": "comfy.example.org"})[0] == 401
        assert call(tokened.base, "/prompt", headers={**proxied, "Origin": "null"})[0] == 403
    finally:
        tokened.stop()


# --- 1, 2: the worker cannot die ----------------------------------------------------------------------


def test_a_prompt_that_breaks_the_worker_fails_alone_and_the_next_one_runs(tmp_path):
    """A poisoned item already in the queue (from before the door checked depth): it gets an
    error in its history, the next prompt runs, and nothing is queued again after a restart."""
    store = QueueStore(tmp_path / "q.sqlite3")
    store.add("poison", chain(value=5), {"deep": nested(600)}, ["3"])
    store.add("after", chain(value=6), {}, ["3"])
    store.close()
    served = InProcess(small_host(tmp_path), tmp_path / "q.sqlite3")
    try:
        api = Client(served.base)
        event, error = api.history("poison")["status"]["messages"][-1]
        assert event == "execution_error" and error["exception_type"] == "RecursionError"
        assert api.history("after")["status"]["status_str"] == "success"
        assert api.history(api.queue(chain(value=7))["prompt_id"])["status"]["status_str"] == "success"
        assert call(served.base, "/object_info/IntConst")[0] == 200
    finally:
        served.stop()
    store = QueueStore(tmp_path / "q.sqlite3")
    assert store.recover(True, lambda item: {}) == [] and store.remaining() == 0
    store.close()


def test_whatever_the_host_raises_fails_one_prompt_and_an_interrupt_stays_an_interrupt(tmp_path, monkeypatch):
    from host_stub.shim.model_management import InterruptProcessingException

    host = small_host(tmp_path)
    real_run, raised = host.run, [RuntimeError("the host broke"), InterruptProcessingException()]

    def run(*args, **kwargs):
        if raised:
            raise raised.pop(0)
        return real_run(*args, **kwargs)

    monkeypatch.setattr(host, "run", run)
    served = InProcess(host, tmp_path / "q.sqlite3")
    try:
        api = Client(served.base)
        broken, cut, fine = (api.queue(chain(value=v))["prompt_id"] for v in (30, 31, 32))
        event, error = api.history(broken)["status"]["messages"][-1]
        assert (event, error["exception_type"]) == ("execution_error", "RuntimeError")
        assert api.history(cut)["status"]["messages"][-1][0] == "execution_interrupted"
        assert api.history(fine)["status"]["status_str"] == "success"
    finally:
        served.stop()


class FullDisk:
    """The store's SQLite connection, with writes failing as on a full disk while ``full`` is set."""

    def __init__(self, db: sqlite3.Connection):
        self.db, self.full = db, False

    def execute(self, sql: str, *args):
        if self.full and sql.split()[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            raise sqlite3.OperationalError("database or disk is full")
        return self.db.execute(sql, *args)

    def __getattr__(self, name: str):
        return getattr(self.db, name)


def queue_database(api: Client) -> dict:
    return api.get("/system_stats")[1]["system"]["queue_database"]


def wait_for(check, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.05)


def test_a_store_that_cannot_write_is_reported_and_the_worker_waits_for_it(tmp_path):
    served = InProcess(small_host(tmp_path), tmp_path / "q.sqlite3")
    store = served.server.store
    disk = store._db = FullDisk(store._db)
    try:
        api = Client(served.base)
        running = api.queue(chain(value=8, steps=20, delay=0.05))["prompt_id"]
        api.wait_running(running)
        disk.full = True
        wait_for(lambda: queue_database(api)["unwritten_history"] == 1, "holding the finished prompt's entry")
        stats = queue_database(api)
        assert stats["writable"] is False and "disk is full" in stats["error"]
        status, answer = api.post("/prompt", {"prompt": chain(value=9)})
        assert status == 507 and answer["error"]["type"] == "queue_unwritable"
        assert api.get("/queue")[0] == 200 and api.get("/history")[0] == 200
        disk.full = False
        assert api.history(running)["status"]["status_str"] == "success"
        assert api.history(api.queue(chain(value=10))["prompt_id"])["status"]["status_str"] == "success"
        assert queue_database(api) == {**stats, "writable": True, "error": None, "unwritten_history": 0}
    finally:
        served.stop()


def _tmpfs_works(target: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-Urm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {target}"],
                           capture_output=True)
    return probe.returncode == 0


def test_a_real_full_disk_under_the_queue_and_the_uploads(tmp_path):
    """Cases 2 and 6 on a real tmpfs (in a user and mount namespace): the database and the input
    folder on it, filled while a prompt runs, then emptied again."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if not _tmpfs_works(disk):
        pytest.skip("no unprivileged mount namespace here (unshare -Urm): the FullDisk test stands in")
    fill, filled, free, freed = (tmp_path / n for n in ("fill", "filled", "free", "freed"))
    filler = (f"while [ ! -e {fill} ]; do sleep 0.05; done; "
              f"dd if=/dev/zero of={disk}/filler bs=4k 2>/dev/null; touch {filled}; "
              f" while [ ! -e {free} ]; do sleep 0.05; done; rm {disk}/filler; touch {freed}")
    script = (f"mount -t tmpfs -o size=2m tmpfs {disk} || exit 97\nmkdir {disk}/input {disk}/db\n"
              '"$@" & child=$!\ntrap \'kill -TERM $child\' TERM INT\n'
              f"({filler}) &\nwait $child; wait $child\ncd {disk}/input && ls -a > {tmp_path}/listing.txt\n")
    served = Subprocess("--packs", str(PACKS / "arith"), "--input-dir", str(disk / "input"), "--output-dir",
                        str(tmp_path / "out"), "--queue-db", str(disk / "db" / "q.sqlite3"),
                        prefix=["unshare", "-Urm", "sh", "-c", script, "sh"])
    try:
        api = Client(served.base)
        pad = {"extra_pnginfo": {"workflow": {"pad": "y" * 300_000}}}  # its history entry needs new pages
        running = api.queue(chain(value=11, steps=40, delay=0.05), extra_data=pad)["prompt_id"]
        api.wait_running(running)
        fill.touch()
        wait_for(filled.exists, "filling the disk")
        status, answer = upload(served.base, "full.png", b"x" * 300_000)
        assert status == 507 and "full.png" in answer["error"]["message"], answer
        assert api.post("/prompt", {"prompt": chain(value=12)})[0] == 507
        wait_for(lambda: queue_database(api)["unwritten_history"] == 1, "holding the finished prompt's entry")
        assert queue_database(api)["writable"] is False
        assert [item[1] for item in api.get("/queue")[1]["queue_running"]] == [running]
        free.touch()
        wait_for(freed.exists, "emptying the disk")
        assert api.history(running)["status"]["status_str"] == "success"
        assert api.history(api.queue(chain(value=13))["prompt_id"])["status"]["status_str"] == "success"
    finally:
        served.stop()
    assert (tmp_path / "listing.txt").read_text().split() == [".", ".."]  # no .upload-*.part left
    assert any("cannot be written: database or disk is full" in line for line in served.log)


def test_a_prompt_running_at_every_crash_is_not_run_forever(tmp_path):
    path = tmp_path / "q.sqlite3"
    store = QueueStore(path)
    store.add("crasher", chain(), {}, ["3"])
    store.add("stopped", chain(), {}, ["3"])
    store.close()
    for start in range(MAX_STARTS):
        store = QueueStore(path)
        assert store.recover(True, lambda item: {}) == (["crasher"] if start else [])
        assert store.claim().prompt_id == "crasher"  # ... and the process dies (kill -9, a segfault)
        store.close()
    store = QueueStore(path)
    assert store.recover(True, lambda item: {}, lambda item, starts: {"gave_up": starts}) == ["crasher"]
    assert store.history_item("crasher") == {"crasher": {"gave_up": MAX_STARTS}}
    for _ in range(MAX_STARTS + 1):  # a stop of the server's own (Ctrl-C) is not held against a prompt
        assert store.claim().prompt_id == "stopped"
        store.uncount("stopped")
        store.close()
        store = QueueStore(path)
        assert store.recover(True, lambda item: {}) == ["stopped"] and store.state_of("stopped") == "pending"
    store.close()


# --- 10: bad flags stop serve with one line ------------------------------------------------------------


@pytest.mark.parametrize("flags", [
    ["--listen="], ["--listen", " , "], ["--listen", "999.1.1.1"], ["--listen", "bad host"],
    ["--port", "70000"], ["--port", "-1"], ["--port", "x"], ["--max-history", "0"],
    ["--max-upload-size", "nan"], ["--max-body-size", "-1"], ["--cache-lru", "-1"], ["--token="],
    ["--allow-host="], ["--queue-db="], ["--front-end-root", "/no/such/dir"],
    ["--extra-model-paths-config", "/no/such.yaml"], ["--on-restart", "maybe"],
])
def test_bad_flags_exit_2_with_one_line(capsys, flags):
    try:
        code = cli_main(["serve", *flags])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: "), (flags, err)


def test_listen_empty_and_a_taken_port_end_serve_with_one_line(tmp_path):
    command = [sys.executable, "-m", "host_stub", "serve", "--queue-db", str(tmp_path / "q.sqlite3"),
               "--input-dir", str(tmp_path / "in"), "--output-dir", str(tmp_path / "out"),
               "--models-dir", str(tmp_path / "models"), "--user-directory", str(tmp_path / "user")]
    run = {"cwd": REPO, "capture_output": True, "text": True, "env": {**os.environ, "PYTHONPATH": str(REPO)}}
    done = subprocess.run([*command, "--listen="], timeout=60, **run)
    assert done.returncode == 2 and done.stderr.strip() == (
        "error: --listen: no address given (e.g. --listen 127.0.0.1, or a bare --listen for all)")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        done = subprocess.run([*command, "--port", port], timeout=120, **run)
    assert done.returncode == 1, done.stderr
    assert f"error: cannot listen on 127.0.0.1 port {port}" in done.stderr.splitlines()[-1]
