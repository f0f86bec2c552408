"""`serve`'s security: the token, the origin check, /view and /upload kept inside their folders
(traversal, absolute paths, symlinks, NUL bytes), size limits, and bad bodies answered in JSON."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys

import aiohttp
import pytest

from host_stub import Host
from host_stub.server import config
from tests.host_stub.serve_support import (
    PACKS,
    REPO,
    Client,
    InProcess,
    Listener,
    chain,
    raw_upload,
    request,
    upload,
)

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve_security")
    for name in ("input", "output", "outside"):
        (root / name).mkdir()
    (root / "outside" / "secret.txt").write_text("do not serve")
    (root / "output" / "real.txt").write_text("fine")
    os.symlink(root / "outside" / "secret.txt", root / "output" / "leak.txt")
    os.symlink(root / "output" / "real.txt", root / "output" / "alias.txt")
    os.symlink(root / "outside", root / "output" / "door")
    os.symlink(root / "outside", root / "input" / "door")
    host = Host(packs=[PACKS / "arith"], input_dir=root / "input", output_dir=root / "output",
                models_dir=root / "models")
    server = InProcess(host, root / "queue.sqlite3", token=TOKEN, max_body=4096, max_upload=10_000)
    server.root = root
    yield server
    server.stop()


@pytest.fixture
def api(served):
    return Client(served.base, AUTH)


def test_every_route_needs_the_token(served):
    anonymous = Client(served.base)
    for path in ("/prompt", "/queue", "/history", "/object_info", "/view?filename=real.txt", "/api/prompt"):
        status, body = anonymous.get(path)
        assert status == 401 and body["error"]["type"] == "unauthorized", path
    assert anonymous.post("/prompt", {"prompt": chain()})[0] == 401
    assert Client(served.base, {"Authorization": "Bearer wrong"}).get("/prompt")[0] == 401
    assert Client(served.base, {"Authorization": f"bearer {TOKEN}"}).get("/prompt")[0] == 200
    with pytest.raises(AssertionError, match="401"):
        Listener(served.base, "nobody")
    Listener(served.base, "someone", headers=AUTH).close()


def test_a_token_in_the_query_sets_a_cookie_for_the_browser(served):
    status, _, headers = request(served.base + f"/prompt?token={TOKEN}")
    assert status == 200 and "host_stub_token=" in headers["Set-Cookie"]
    cookie = headers["Set-Cookie"].split(";")[0]
    assert "HttpOnly" in headers["Set-Cookie"] and "SameSite=Strict" in headers["Set-Cookie"]
    assert Client(served.base, {"Cookie": cookie}).get("/queue")[0] == 200


def test_a_request_from_another_origin_is_refused(api, served):
    port = served.base.rsplit(":", 1)[1]
    evil = {**AUTH, "Origin": "http://evil.example"}
    status, body, _ = request(served.base + "/prompt", "POST", {"prompt": chain()}, evil)
    assert status == 403 and body["error"]["type"] == "forbidden_origin"
    same = {**AUTH, "Origin": f"http://127.0.0.1:{port}"}
    assert request(served.base + "/prompt", headers=same)[0] == 200
    other_port = {**AUTH, "Origin": "http://127.0.0.1:1"}
    assert request(served.base + "/prompt", headers=other_port)[0] == 403


@pytest.mark.parametrize("query, status", [
    ("filename=../queue.sqlite3", 400),
    ("filename=..%2Fqueue.sqlite3", 400),
    ("filename=/etc/passwd", 400),
    ("filename=real.txt%00.png", 400),
    ("filename=real.txt&subfolder=..", 400),
    ("filename=secret.txt&subfolder=../outside", 400),
    ("filename=secret.txt&subfolder=/tmp", 400),
    ("filename=secret.txt&subfolder=sub%00", 400),
    ("filename=real.txt&type=models", 400),
    ("filename=leak.txt", 403),  # a symlink out of the folder
    ("filename=secret.txt&subfolder=door", 403),  # a symlinked folder out of it
    ("filename=alias.txt", 200),  # a symlink that stays inside is fine
    ("filename=real.txt", 200),
    ("filename=missing.txt", 404),
])
def test_view_stays_inside_its_folder(api, query, status):
    got, body = api.get("/view?" + query)
    assert got == status, body
    if status == 200:
        assert body == b"fine"
    else:
        assert "error" in body


def test_upload_stays_inside_its_folder(api, served):
    base = served.base
    refused = [
        ({"subfolder": "../outside"}, "x.png", 400),
        ({"subfolder": "/tmp"}, "x.png", 400),
        ({"subfolder": "door"}, "x.png", 403),
        ({}, "../x.png", 400),
        ({}, "a/b.png", 400),
        ({}, "x\x00.png", 400),
        ({"type": "models"}, "x.png", 400),
    ]
    for fields, name, status in refused:
        got, body = raw_upload(base, name, b"data", AUTH, **fields)
        assert got == status and "error" in body, (fields, name, body)
    assert sorted(p.name for p in (served.root / "outside").iterdir()) == ["secret.txt"]
    assert upload(base, "ok.png", b"data", AUTH, subfolder="fine/deep")[0] == 200
    assert upload(base, "ok.png", b"data")[0] == 401


def test_size_limits(api, served):
    status, body = upload(served.base, "big.png", b"x" * 10_001, AUTH)
    assert status == 413 and body["error"]["type"] == "body_too_large"
    assert upload(served.base, "fits.png", b"x" * 10_000, AUTH)[0] == 200
    status, body = api.post("/prompt", {"prompt": chain(), "extra_data": {"pad": "x" * 5000}})
    assert status == 413 and body["error"]["type"] == "body_too_large"

    async def chunked() -> int:  # no Content-Length: the limit still holds
        async def parts():
            for _ in range(10):
                yield b" " * 1000

        async with aiohttp.ClientSession() as session, session.post(
            served.base + "/prompt", data=parts(), headers=AUTH
        ) as resp:
            return resp.status

    assert asyncio.run(chunked()) == 413
    assert not list((served.root / "input").glob("big*"))


@pytest.mark.parametrize("path", ["/prompt", "/queue", "/history", "/interrupt", "/free", "/api/prompt"])
def test_bad_json_is_a_400_in_json_and_the_server_stays_up(api, path):
    for raw in (b"{not json", b"\xff\xfe", b"[1, 2]", b'"text"'):
        status, body = api.post(path, raw=raw)
        assert status == 400 and body["error"]["type"] == "invalid_json", (path, raw)
    assert api.get("/prompt")[0] == 200


def test_listening_beyond_loopback_needs_a_token(tmp_path):
    def problem(listen: str, token: str | None = None, insecure: bool = False) -> str | None:
        return config.security_problem(argparse.Namespace(listen=listen, token=token, insecure=insecure))

    for safe in ("127.0.0.1", "localhost", "::1", "127.0.0.1,::1", "127.0.0.2"):
        assert problem(safe) is None, safe
    for exposed in ("0.0.0.0", "0.0.0.0,::", "192.168.1.10", "127.0.0.1,10.0.0.1"):
        assert "needs --token" in problem(exposed), exposed
        assert problem(exposed, token="t") is None and problem(exposed, insecure=True) is None
    done = subprocess.run([sys.executable, "-m", "host_stub", "serve", "--listen", "--queue-db",
                           str(tmp_path / "q.sqlite3")], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO), config.TOKEN_ENV: ""})
    assert done.returncode == 2 and "0.0.0.0, :: (beyond loopback) needs --token" in done.stderr
