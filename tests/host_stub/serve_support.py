"""Helpers for the ``serve`` tests: an in-process server on a free loopback port, a `serve`
subprocess, a plain urllib HTTP client and a websocket listener (aiohttp's client, in a thread)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

from host_stub.server.app import Server
from host_stub.server.store import QueueStore

REPO = Path(__file__).resolve().parents[2]
PACKS = Path(__file__).parent / "packs"
SERVE_PACKS = Path(__file__).parent / "serve_packs"  # kept apart: test_packs lists packs/ exactly


def node(class_type: str, **inputs: Any) -> dict[str, Any]:
    return {"class_type": class_type, "inputs": inputs}


def chain(value: int = 5, steps: int = 2, delay: float = 0.0, interrupt_at: int = -1) -> dict[str, Any]:
    """IntConst -> Steps (progress) -> Show."""
    return {
        "1": node("IntConst", value=value),
        "2": node("Steps", value=["1", 0], steps=steps, delay=delay, interrupt_at=interrupt_at),
        "3": node("Show", value=["2", 0]),
    }


# --- HTTP ------------------------------------------------------------------------------------------


def request(url: str, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None,
            raw: bytes | None = None) -> tuple[int, Any, dict[str, str]]:
    """(status, JSON or bytes, headers); HTTP errors come back as statuses, not exceptions."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, payload, head = resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        status, payload, head = exc.code, exc.read(), dict(exc.headers)
    if "json" in head.get("Content-Type", ""):
        return status, json.loads(payload), head
    return status, payload, head


class Client:
    def __init__(self, base: str, headers: dict[str, str] | None = None):
        self.base = base
        self.headers = headers or {}

    def get(self, path: str) -> tuple[int, Any]:
        status, data, _ = request(self.base + path, headers=self.headers)
        return status, data

    def post(self, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
        status, data, _ = request(self.base + path, "POST", body, self.headers, raw)
        return status, data

    def queue(self, prompt: dict[str, Any], **fields: Any) -> dict[str, Any]:
        status, data = self.post("/prompt", {"prompt": prompt, **fields})
        assert status == 200, data
        return data

    def history(self, prompt_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """The history entry, once there is one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, data = self.get(f"/history/{prompt_id}")
            if status == 200 and prompt_id in data:
                return data[prompt_id]
            time.sleep(0.05)
        raise AssertionError(f"no history entry for {prompt_id} after {timeout}s")

    def wait_running(self, prompt_id: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _, data = self.get("/queue")
            if any(item[1] == prompt_id for item in data["queue_running"]):
                return
            time.sleep(0.02)
        raise AssertionError(f"{prompt_id} never ran")

    def wait_idle(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.get("/prompt")[1]["exec_info"]["queue_remaining"] == 0:
                return
            time.sleep(0.05)
        raise AssertionError("the queue never emptied")


def upload(base: str, filename: str, data: bytes, headers: dict[str, str] | None = None,
           path: str = "/upload/image", **fields: str) -> tuple[int, Any]:
    """POST a multipart form as the editor does: the file in 'image', then the other fields."""

    async def send() -> tuple[int, Any]:
        form = aiohttp.FormData()
        form.add_field("image", data, filename=filename, content_type="application/octet-stream")
        for key, value in fields.items():
            form.add_field(key, value)
        async with aiohttp.ClientSession() as session, session.post(
            base + path, data=form, headers=headers or {}
        ) as resp:
            body = await resp.read()
            is_json = "json" in resp.headers.get("Content-Type", "")
            return resp.status, json.loads(body) if is_json else body

    return asyncio.run(send())


def raw_upload(base: str, filename: str, data: bytes, headers: dict[str, str] | None = None,
               **fields: str) -> tuple[int, Any]:
    """The same form written by hand, so that the file name arrives exactly as given (a browser
    or a script may send ``../x.png``; aiohttp's client would percent-encode it)."""
    boundary = "----host-stub-test-boundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'
             f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n"]
    for key, value in fields.items():
        disposition = f'Content-Disposition: form-data; name="{key}"'
        parts.append(f"--{boundary}\r\n{disposition}\r\n\r\n{value}\r\n".encode())
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    head = {**(headers or {}), "Content-Type": f"multipart/form-data; boundary={boundary}"}
    status, payload, _ = request(base + "/upload/image", "POST", headers=head, raw=body)
    return status, payload


# --- websocket -------------------------------------------------------------------------------------


class Listener:
    """A websocket client on its own thread; ``messages`` holds every JSON message received."""

    def __init__(self, base: str, client_id: str | None = None, headers: dict[str, str] | None = None):
        self.url = base.replace("http://", "ws://") + "/ws" + (f"?clientId={client_id}" if client_id else "")
        self.headers = headers or {}
        self.messages: list[dict[str, Any]] = []
        self.cond = threading.Condition()
        self.loop = asyncio.new_event_loop()
        self.connected = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._thread, daemon=True)
        self.thread.start()
        assert self.connected.wait(10), "the websocket never connected"
        if self.error is not None:
            raise AssertionError(f"websocket failed: {self.error}")
        self.wait_for(lambda m: m["type"] == "status")

    def _thread(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.task = self.loop.create_task(self._listen())
        try:
            self.loop.run_until_complete(self.task)
        except (asyncio.CancelledError, aiohttp.ClientError) as exc:
            self.error = exc
        finally:
            self.connected.set()

    async def _listen(self) -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(
            self.url, headers=self.headers
        ) as ws:
            self.ws = ws
            self.connected.set()
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    with self.cond:
                        self.messages.append(json.loads(msg.data))
                        self.cond.notify_all()

    def wait_for(self, predicate: Any, timeout: float = 30.0) -> dict[str, Any]:
        with self.cond:
            deadline = time.monotonic() + timeout
            while True:
                for message in self.messages:
                    if predicate(message):
                        return message
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no such message; got {[m['type'] for m in self.messages]}")
                self.cond.wait(left)

    def done(self, prompt_id: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """This prompt's messages, up to and including ``executing`` with ``node: null``."""
        self.wait_for(lambda m: m["type"] == "executing" and m["data"]["node"] is None
                      and m["data"]["prompt_id"] == prompt_id, timeout)
        return self.of(prompt_id)

    def of(self, prompt_id: str) -> list[dict[str, Any]]:
        with self.cond:
            return [m for m in self.messages if m["data"].get("prompt_id") == prompt_id]

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(10)


# --- servers ---------------------------------------------------------------------------------------


class InProcess:
    """A :class:`Server` on 127.0.0.1 with a free port, run by an event loop on its own thread."""

    def __init__(self, host: Any, db: Path, **options: Any):
        self.server = Server(host, QueueStore(db), **options)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(["127.0.0.1"], 0), self.loop).result(60)
        self.base = f"http://127.0.0.1:{self.server.ports[0][1]}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class Subprocess:
    """``python -m host_stub serve --port 0 ...``; ``base`` comes from the line it logs."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, prefix: list[str] | None = None):
        environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        command = [*(prefix or []), sys.executable, "-m", "host_stub", "serve", "--port", "0", *args]
        self.proc = subprocess.Popen(command, cwd=REPO, env=environment, stderr=subprocess.PIPE, text=True)
        self.log: list[str] = []
        self.base = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                raise AssertionError("serve exited:\n" + "".join(self.log))
            self.log.append(line)
            found = re.search(r"To see the GUI go to: (http://\S+)", line)
            if found:
                self.base = found.group(1)
                break
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.proc.stderr:
            self.log.append(line)

    def kill(self) -> None:
        self.proc.kill()  # SIGKILL: no clean-up of any kind
        self.proc.wait(10)

    def stop(self) -> int:
        self.proc.terminate()
        return self.proc.wait(30)
