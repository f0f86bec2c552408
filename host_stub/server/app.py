"""The server: the aiohttp application, its routes (each also under ``/api``), the worker thread
and the websocket hub, started and stopped together. ``python -m host_stub serve`` runs it."""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiohttp import WSCloseCode, web

from host_stub.server import config, routes_editor, routes_files, routes_info, routes_queue
from host_stub.server.http import errors_middleware, token_middleware
from host_stub.server.hub import Hub
from host_stub.server.routing import SERVER_KEY, with_api_twins
from host_stub.server.sites import Sites, sites_middleware
from host_stub.server.store import QueueInUse, QueueItem, QueueStore
from host_stub.server.user_files import UserFiles
from host_stub.server.worker import Worker, error_entry

log = logging.getLogger("host_stub.server")
MB = 1024 * 1024


class Server:
    """One host, one queue store, one worker thread, one aiohttp application."""

    def __init__(self, host: Any, store: QueueStore, token: str | None = None,
                 max_body: int = 32 * MB, max_upload: int = 100 * MB, user_dir: str | Path | None = None,
                 web_root: Path | None = None, allow_hosts: list[str] | tuple[str, ...] = ()):
        self.host = host
        self.store = store
        self.user_dir = Path(user_dir) if user_dir is not None else store.path.parent  # settings, user data
        self.user_files = UserFiles(self.user_dir)  # the editor's settings and user data
        self.web_root = web_root  # the editor's files, if installed
        self.token = token
        self.max_body = max_body
        self.max_upload = max_upload
        self.allow_hosts = list(allow_hosts)  # Host names accepted besides the addresses (sites.py)
        self.addresses = ["127.0.0.1"]  # what start() listens on
        # Validation and node definitions run here, off the event loop, one at a time.
        self.reads = ThreadPoolExecutor(1, thread_name_prefix="host_stub-reads")
        self.ports: list[tuple[str, int]] = []

    def off_loop(self, fn: Callable[..., Any], *args: Any) -> Any:
        return asyncio.get_running_loop().run_in_executor(self.reads, functools.partial(fn, *args))

    def make_app(self) -> web.Application:
        sites = Sites(self.addresses, self.allow_hosts, check_host=self.token is None)
        app = web.Application(
            client_max_size=self.max_upload + routes_files.FORM_MARGIN,  # the form around the file
            middlewares=[errors_middleware, sites_middleware(sites), token_middleware(self.token)],
        )
        app[SERVER_KEY] = self  # how the handlers reach this server: routing.server_of(request)
        app.add_routes(with_api_twins(routes_queue.ROUTES, routes_files.ROUTES, routes_info.ROUTES,
                                      routes_editor.ROUTES))
        if self.web_root is not None:
            app.add_routes([web.static("/", self.web_root)])  # last: the routes above come first
        app.on_shutdown.append(self._close_sockets)
        return app

    async def start(self, addresses: list[str], port: int) -> None:
        loop = asyncio.get_running_loop()
        self.hub = Hub(loop)
        self.worker = Worker(self.host, self.store, self.hub)
        self.worker.start()
        await loop.run_in_executor(None, self.worker.ready.wait)
        self.addresses = list(addresses)
        self.app = self.make_app()
        self.runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self.runner.setup()
        for address in addresses:
            site = web.TCPSite(self.runner, address, port)
            await site.start()
            port = port or self.runner.addresses[-1][1]  # --port 0: every address gets the first one's
        self.ports = [(a[0], a[1]) for a in self.runner.addresses]
        self.publisher = loop.create_task(self.hub.publish_loop())

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop the worker (a running prompt is interrupted and stays queued), then the server."""
        self.worker.stop()
        await asyncio.get_running_loop().run_in_executor(None, self.worker.join, timeout)
        if getattr(self, "publisher", None) is not None:
            self.publisher.cancel()
        if getattr(self, "runner", None) is not None:  # None when start() failed before it
            await self.runner.cleanup()
        self.reads.shutdown(wait=False)
        if not self.worker.is_alive():
            self.store.close()

    async def _close_sockets(self, app: web.Application) -> None:
        for ws in list(self.hub.sockets.values()):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


def _restart_entry(item: QueueItem) -> dict[str, Any]:
    return error_entry(item, "ServerRestart", "The server stopped while this prompt was running.")


def _gave_up_entry(item: QueueItem, starts: int) -> dict[str, Any]:
    log.error("prompt %s was running at %d stops of the server: it is marked failed, not run again",
              item.prompt_id, starts)
    return error_entry(item, "ServerRestart", f"The server stopped while this prompt was running, {starts} "
                       "times: it is not run again.")


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.verbose, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    ignored = config.ignored_flags(args)
    if ignored:
        log.info("ignoring ComfyUI flags that mean nothing here: %s", " ".join(ignored))
    args.token = config.token_from(args)
    problem = config.usage_problem(args) or config.security_problem(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.cpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before anything imports torch
    host = config.build_host(args)
    db_path = config.queue_db_path(args)
    try:
        store = QueueStore(db_path, max_history=args.max_history)
    except QueueInUse as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _recover(store, args.on_restart == "rerun")
    log.info("queue database: %s (%d queued, %d in history)", db_path, store.remaining(),
             len(store.history()))
    web_root = routes_editor.find_web_root(args.front_end_root)
    log.info("graph editor: %s", web_root or "not installed (pip install i2v-nodes[ui])")
    server = Server(host, store, token=args.token, max_body=int(args.max_body_size * MB),
                    max_upload=int(args.max_upload_size * MB), user_dir=config.user_directory(args),
                    web_root=web_root, allow_hosts=args.allow_host)
    try:
        return asyncio.run(_serve(server, config.addresses(args.listen), args.port))
    except KeyboardInterrupt:
        return 130


def _recover(store: QueueStore, rerun: bool) -> None:
    recovered = store.recover(rerun, _restart_entry, _gave_up_entry)
    again = [p for p in recovered if store.state_of(p) == "pending"]
    failed = [p for p in recovered if p not in again]
    for what, ids in (("queued again", again), ("marked failed", failed)):
        if ids:
            log.warning("prompts that were running when the server stopped, %s: %s", what, ", ".join(ids))


async def _serve(server: Server, addresses: list[str], port: int) -> int:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, _on_signal, stopping)
        except NotImplementedError:  # Windows: Ctrl-C ends asyncio.run with KeyboardInterrupt
            pass
    try:
        await server.start(addresses, port)
    except OSError as exc:  # the port is taken, the address is not this machine's, ...
        print(f"error: cannot listen on {', '.join(addresses)} port {port}: {exc.strerror or exc}",
              file=sys.stderr)
        await server.stop()
        return 1
    for address, bound in server.ports:
        shown = f"[{address}]" if ":" in address else address
        log.info("To see the GUI go to: http://%s:%d", shown, bound)
    await stopping.wait()
    log.info("stopping: a running prompt is interrupted and handled as --on-restart says on the next start")
    await server.stop()
    return 0


def _on_signal(stopping: asyncio.Event) -> None:
    if stopping.is_set():
        os._exit(130)  # a second Ctrl-C: stop at once
    stopping.set()
