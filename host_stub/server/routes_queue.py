"""``/prompt``, ``/queue``, ``/history``, ``/interrupt`` and ``/free``, in ComfyUI's shapes."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import web

from host_stub.errors import WorkflowError
from host_stub.server.http import HTTPError, error_body, query_int, read_object
from host_stub.server.store import PromptIdInUse
from host_stub.server.worker import SENSITIVE_EXTRA_DATA_KEYS
from host_stub.validation import validate_prompt
from host_stub.workflow import check_api_prompt

if TYPE_CHECKING:
    from host_stub.server.app import Server

log = logging.getLogger("host_stub.server")


def _strings(values: list[Any]) -> bool:
    return all(isinstance(v, str) for v in values)


def _id_list(data: dict[str, Any], key: str) -> list[str]:
    ids = data.get(key, [])
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise HTTPError(400, f"'{key}' must be a list of prompt ids")
    return ids


def add_routes(routes: web.RouteTableDef, server: Server) -> None:
    store, worker = server.store, server.worker

    async def body(request: web.Request, empty: Any = None) -> dict[str, Any]:
        return await read_object(request, server.max_body, empty)

    @routes.get("/prompt")
    async def get_prompt(request: web.Request) -> web.Response:
        return web.json_response(worker.queue_info())

    @routes.post("/prompt")
    async def post_prompt(request: web.Request) -> web.Response:
        data = await body(request)
        if "prompt" not in data:
            no_prompt = error_body("no_prompt", "No prompt provided", "No prompt provided")
            return web.json_response(no_prompt, status=400)
        try:
            prompt = check_api_prompt(data["prompt"])
        except WorkflowError as exc:
            return web.json_response(error_body("invalid_prompt", "Invalid prompt", str(exc)), status=400)
        number = data.get("number")
        if number is not None:
            if isinstance(number, bool) or not isinstance(number, (int, float, str)):
                raise HTTPError(400, "'number' must be a number")
            try:
                number = float(number)
            except ValueError:
                raise HTTPError(400, "'number' must be a number") from None
        prompt_id = str(data.get("prompt_id") or uuid.uuid4())
        targets = data.get("partial_execution_targets")
        if targets is not None and not (isinstance(targets, list) and _strings(targets)):
            raise HTTPError(400, "'partial_execution_targets' must be a list of node ids")
        extra = data.get("extra_data")
        extra = {} if extra is None else extra
        if not isinstance(extra, dict):
            raise HTTPError(400, "'extra_data' must be an object")
        if "client_id" in data:
            extra["client_id"] = data["client_id"]
        valid = await server.off_loop(validate_prompt, server.host.registry, prompt, targets)
        if not valid.ok:
            log.warning("invalid prompt: %s", valid.error)
            return web.json_response(valid.response(), status=400)
        secrets = {k: extra.pop(k) for k in SENSITIVE_EXTRA_DATA_KEYS if k in extra}
        try:
            item = await asyncio.to_thread(
                store.add, prompt_id, prompt, extra, valid.outputs, number, bool(data.get("front"))
            )
        except PromptIdInUse:
            raise HTTPError(400, f"prompt {prompt_id} is already queued", "prompt_id_in_use") from None
        if secrets:
            worker.secrets[prompt_id] = secrets
        worker.queue_updated()
        worker.notify()
        answer = {"prompt_id": prompt_id, "number": item.number, "node_errors": valid.node_errors}
        return web.json_response(answer)

    @routes.get("/queue")
    async def get_queue(request: web.Request) -> web.Response:
        running, pending = await asyncio.to_thread(lambda: (store.running(), store.pending()))
        return web.json_response({"queue_running": [i.as_list() for i in running],
                                  "queue_pending": [i.as_list() for i in pending]})

    @routes.post("/queue")
    async def post_queue(request: web.Request) -> web.Response:
        data = await body(request)
        ids = _id_list(data, "delete")
        if data.get("clear"):
            await asyncio.to_thread(store.clear_pending)
            worker.queue_updated()
        for prompt_id in ids:
            if await asyncio.to_thread(store.delete_pending, prompt_id) == "running":
                worker.interrupt(prompt_id)  # deleting the running prompt stops it
            worker.queue_updated()
        return web.Response(status=200)

    @routes.get("/history")
    async def get_history(request: web.Request) -> web.Response:
        max_items = query_int(request, "max_items")
        offset = query_int(request, "offset")
        entries = await asyncio.to_thread(store.history, max_items, -1 if offset is None else offset)
        return web.json_response(entries)

    @routes.get("/history/{prompt_id}")
    async def get_history_item(request: web.Request) -> web.Response:
        return web.json_response(await asyncio.to_thread(store.history_item, request.match_info["prompt_id"]))

    @routes.post("/history")
    async def post_history(request: web.Request) -> web.Response:
        data = await body(request)
        ids = _id_list(data, "delete")
        if data.get("clear"):
            await asyncio.to_thread(store.clear_history)
        if ids:
            await asyncio.to_thread(store.delete_history, ids)
        return web.Response(status=200)

    @routes.post("/interrupt")
    async def post_interrupt(request: web.Request) -> web.Response:
        data = await body(request, empty={})
        prompt_id = data.get("prompt_id")
        if prompt_id:
            if not worker.interrupt(str(prompt_id)):
                # Not running: a pending prompt is taken off the queue instead.
                if await asyncio.to_thread(store.delete_pending, str(prompt_id)) == "pending":
                    worker.queue_updated()
                else:
                    log.info("Prompt %s is not currently running, skipping interrupt", prompt_id)
        else:
            log.info("Global interrupt (no prompt_id specified)")
            worker.interrupt()
        return web.Response(status=200)

    @routes.post("/free")
    async def post_free(request: web.Request) -> web.Response:
        data = await body(request, empty={})
        if data.get("unload_models"):
            worker.set_flag("unload_models", True)
        if data.get("free_memory"):
            worker.set_flag("free_memory", True)
        return web.Response(status=200)
