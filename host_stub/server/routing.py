"""How handlers reach the server, and how the ``routes_*`` tables become aiohttp routes.

Each ``routes_*`` module holds its handlers as module-level functions and lists them in a
``ROUTES`` table of ``(method, path, handler)``. A handler finds the :class:`Server` through its
request (:func:`server_of`), never through a closure, so it can be found by name and called on
its own with any application that has :data:`SERVER_KEY` set.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from aiohttp import web

from host_stub.server.http import Handler

if TYPE_CHECKING:
    from host_stub.server.app import Server

Route = tuple[str, str, Handler]  # (method, path, handler)
SERVER_KEY: web.AppKey[Server] = web.AppKey("host_stub_server")


def server_of(request: web.Request) -> Server:
    """The server whose application received ``request``."""
    return request.app[SERVER_KEY]


def with_api_twins(*tables: Sequence[Route]) -> list[web.RouteDef]:
    """Every route of ``tables``, each also under ``/api`` as ComfyUI serves them. The twins come
    first, then the plain routes, both in table order (a GET also answers HEAD, as aiohttp's
    ``RouteTableDef`` registers it)."""
    plain = [web.route(method, path, handler) for table in tables for method, path, handler in table]
    twins = [web.route(route.method, "/api" + route.path, route.handler, **route.kwargs) for route in plain]
    return twins + plain
