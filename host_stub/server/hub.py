"""The websocket clients and the one ordered stream of messages to them.

Any thread may call :meth:`Hub.send_sync`; the message is handed to the event loop with
``loop.call_soon_threadsafe`` and sent from there, in the order it was given. As in ComfyUI, a
message for ``sid=None`` goes to every client and a message for a client that is not connected
is dropped.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)


class Hub:
    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.messages: asyncio.Queue[tuple[str, Any, str | None]] = asyncio.Queue()

    def send_sync(self, event: str, data: Any, sid: str | None = None) -> None:
        """Queue a message from any thread."""
        try:
            self.loop.call_soon_threadsafe(self.messages.put_nowait, (event, data, sid))
        except RuntimeError:  # the loop is closed: the server is shutting down
            log.debug("dropped %s: the event loop is closed", event)

    async def publish_loop(self) -> None:
        while True:
            event, data, sid = await self.messages.get()
            try:
                await self.send(event, data, sid)
            except Exception:  # noqa: BLE001 - one message must not stop every later one
                log.exception("could not send %s", event)

    async def send(self, event: str, data: Any, sid: str | None = None) -> None:
        if sid is None:
            targets = list(self.sockets.values())
        else:
            targets = [self.sockets[sid]] if sid in self.sockets else []
        if not targets:
            return
        try:
            text = json.dumps({"type": event, "data": data}, default=str)
        except (TypeError, ValueError, RecursionError) as exc:  # an output JSON cannot hold
            log.error("dropped %s: it cannot be sent as JSON (%s)", event, exc)
            return
        for ws in targets:
            try:
                await ws.send_str(text)
            except (ConnectionError, RuntimeError) as exc:
                log.debug("could not send %s to a client: %s", event, exc)

    def add(self, sid: str, ws: web.WebSocketResponse) -> None:
        old = self.sockets.get(sid)
        self.sockets[sid] = ws
        if old is not None and old is not ws:
            self.loop.create_task(old.close())

    def remove(self, sid: str, ws: web.WebSocketResponse) -> None:
        # Only if it is still this socket: a client that reconnected with the same id keeps the new one.
        if self.sockets.get(sid) is ws:
            del self.sockets[sid]
