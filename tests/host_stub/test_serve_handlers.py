"""The `serve` handlers are named module-level functions that find the server through
``request.app[SERVER_KEY]``: each can be called on its own, with a mocked request, or served from
its module's route table alone, without starting the worker or binding a port."""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from host_stub.server import routes_editor, routes_files, routes_info, routes_queue
from host_stub.server.app import Server
from host_stub.server.http import HTTPError
from host_stub.server.routing import SERVER_KEY
from host_stub.server.store import QueueStore

TABLES = (routes_queue.ROUTES, routes_files.ROUTES, routes_info.ROUTES, routes_editor.ROUTES)


@pytest.fixture
def server(host, tmp_path: Path) -> Iterator[Server]:
    """A server that is never started: no worker, no hub, no port."""
    made = Server(host, QueueStore(tmp_path / "queue.sqlite3"), user_dir=tmp_path / "user", max_upload=1234)
    yield made
    made.reads.shutdown(wait=True)
    made.store.close()


def bare_app(server: Server) -> web.Application:
    """The least a handler needs: an application that knows its server."""
    app = web.Application()
    app[SERVER_KEY] = server
    return app


def call(handler: Any, app: web.Application, path: str, **match_info: str) -> web.Response:
    """Run one handler on a mocked GET request (inside a running loop, as aiohttp runs it)."""

    async def run() -> web.Response:
        return await handler(make_mocked_request("GET", path, app=app, match_info=match_info))

    return asyncio.run(run())


def body(response: web.Response) -> Any:
    assert response.content_type == "application/json"
    return json.loads(response.text)


def test_get_queue_answers_from_the_store_alone(server):
    prompt = {"1": {"class_type": "IntConst", "inputs": {"value": 1}}}
    server.store.add("p1", prompt, {"client_id": "c"}, ["1"])
    response = call(routes_queue.get_queue, bare_app(server), "/queue")
    assert response.status == 200
    pending = [[0, "p1", prompt, {"client_id": "c"}, ["1"]]]  # [number, id, prompt, extra_data, outputs]
    assert body(response) == {"queue_running": [], "queue_pending": pending}


def test_history_item_of_an_unknown_prompt_is_empty_and_bad_paging_is_a_400(server):
    app = bare_app(server)
    response = call(routes_queue.get_history_item, app, "/history/nope", prompt_id="nope")
    assert (response.status, body(response)) == (200, {})
    with pytest.raises(HTTPError) as raised:  # the errors middleware turns it into JSON; alone, it raises
        call(routes_queue.get_history, app, "/history?max_items=many")
    assert raised.value.status == 400


def test_object_info_and_features_read_the_servers_host_and_limits(server):
    app = bare_app(server)
    response = call(routes_info.get_object_info_node, app, "/object_info/IntConst", node_class="IntConst")
    info = body(response)
    assert list(info) == ["IntConst"]
    assert info["IntConst"]["name"] == "IntConst"
    unknown = call(routes_info.get_object_info_node, app, "/object_info/Nope", node_class="Nope")
    assert body(unknown) == {}
    features = call(routes_info.get_features, app, "/features")
    assert body(features) == {"supports_preview_metadata": False, "max_upload_size": 1234}


def test_one_route_table_serves_on_its_own(server, tmp_path):
    """The editor's table alone, on aiohttp's test server: settings round-trip through the user folder."""

    async def run() -> tuple[int, Any, Any]:
        app = bare_app(server)
        app.add_routes([web.route(method, path, handler) for method, path, handler in routes_editor.ROUTES])
        async with TestClient(TestServer(app)) as client:
            posted = await client.post("/settings/Comfy.Theme", json="dark")
            setting = await (await client.get("/settings/Comfy.Theme")).json()
            users = await (await client.get("/users")).json()
            return posted.status, setting, users

    status, setting, users = asyncio.run(run())
    assert (status, setting, users) == (200, "dark", {"storage": "server", "migrated": True})
    saved = json.loads((tmp_path / "user" / "default" / "comfy.settings.json").read_text(encoding="utf-8"))
    assert saved == {"Comfy.Theme": "dark"}


def test_every_route_has_its_api_twin_and_every_handler_is_a_named_module_function(server):
    app = server.make_app()
    registered = {(route.method, route.resource.canonical) for route in app.router.routes()}
    for table in TABLES:
        for method, path, handler in table:
            assert {(method, path), (method, "/api" + path)} <= registered
            assert "<locals>" not in handler.__qualname__
            assert getattr(importlib.import_module(handler.__module__), handler.__name__) is handler
