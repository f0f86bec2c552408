"""``/prompt``, ``/queue``, ``/history``, ``/interrupt`` and ``/free``, in ComfyUI's shapes."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from host_stub.errors import WorkflowError
from host_stub.server import checks
from host_stub.server.http import HTTPError, error_body, query_int, read_object
from host_stub.server.routing import Route, server_of
from host_stub.server.store import PromptIdInUse
from host_stub.server.worker import SENSITIVE_EXTRA_DATA_KEYS
from host_stub.validation import validate_prompt
from host_stub.workflow import check_api_prompt

log = logging.getLogger("host_stub.server")


def _id_list(data: dict[str, Any], key: str) -> list[str]:
    ids = data.get(key, [])
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise HTTPError(400, f"'{key}' must be a list of prompt ids", details=key)
    return ids


async def _body(request: web.Request, empty: Any = None) -> dict[str, Any]:
    """The request's JSON object, within the server's body limit."""
    return await read_object(request, server_of(request).max_body, empty)


async def get_prompt(request: web.Request) -> web.Response:
    return web.json_response(server_of(request).worker.queue_info())


async def post_prompt(request: web.Request) -> web.Response:
    """Validate a prompt and queue it; ComfyUI's 400 bodies for a missing or invalid one."""
    server = server_of(request)
    data = await _body(request)
    if "prompt" not in data:
        no_prompt = error_body("no_prompt", "No prompt provided", "No prompt provided")
        return web.json_response(no_prompt, status=400)
    try:
        prompt = check_api_prompt(data["prompt"])
    except WorkflowError as exc:
        return web.json_response(error_body("invalid_prompt", "Invalid prompt", str(exc)), status=400)
    number, prompt_id = checks.number(data), checks.prompt_id(data)
    targets, extra = checks.targets(data), checks.extra_data(data)
    valid = await server.off_loop(validate_prompt, server.host.registry, prompt, targets)
    if not valid.ok:
        log.warning("invalid prompt: %s", valid.error)
        return web.json_response(valid.response(), status=400)
    secrets = {k: extra.pop(k) for k in SENSITIVE_EXTRA_DATA_KEYS if k in extra}
    try:
        item = await asyncio.to_thread(
            server.store.add, prompt_id, prompt, extra, valid.outputs, number, bool(data.get("front"))
        )
    except PromptIdInUse:
        in_use = f"prompt {prompt_id} is already queued"
        raise HTTPError(400, in_use, "prompt_id_in_use", "prompt_id") from None
    if secrets:
        server.worker.secrets[prompt_id] = secrets
    server.worker.queue_updated()
    server.worker.notify()
    answer = {"prompt_id": prompt_id, "number": item.number, "node_errors": valid.node_errors}
    return web.json_response(answer)


async def get_queue(request: web.Request) -> web.Response:
    store = server_of(request).store
    running, pending = await asyncio.to_thread(lambda: (store.running(), store.pending()))
    return web.json_response({"queue_running": [i.as_list() for i in running],
                              "queue_pending": [i.as_list() for i in pending]})


async def post_queue(request: web.Request) -> web.Response:
    store, worker = server_of(request).store, server_of(request).worker
    data = await _body(request)
    ids = _id_list(data, "delete")
    if data.get("clear"):
        await asyncio.to_thread(store.clear_pending)
        worker.queue_updated()
    for prompt_id in ids:
        if await asyncio.to_thread(store.delete_pending, prompt_id) == "running":
            worker.interrupt(prompt_id)  # deleting the running prompt stops it
        worker.queue_updated()
    return web.Response(status=200)


async def get_history(request: web.Request) -> web.Response:
    max_items = query_int(request, "max_items")
    offset = query_int(request, "offset")
    store = server_of(request).store
    entries = await asyncio.to_thread(store.history, max_items, -1 if offset is None else offset)
    return web.json_response(entries)


async def get_history_item(request: web.Request) -> web.Response:
    store = server_of(request).store
    return web.json_response(await asyncio.to_thread(store.history_item, request.match_info["prompt_id"]))


async def post_history(request: web.Request) -> web.Response:
    store = server_of(request).store
    data = await _body(request)
    ids = _id_list(data, "delete")
    if data.get("clear"):
        await asyncio.to_thread(store.clear_history)
    if ids:
        await asyncio.to_thread(store.delete_history, ids)
    return web.Response(status=200)


async def post_interrupt(request: web.Request) -> web.Response:
    """Stop the running prompt, or the one named; a named pending prompt is taken off the queue."""
    store, worker = server_of(request).store, server_of(request).worker
    data = await _body(request, empty={})
    prompt_id = checks.optional_id(data.get("prompt_id"), "prompt_id")
    if prompt_id:
        if not worker.interrupt(prompt_id):
            # Not running: a pending prompt is taken off the queue instead.
            if await asyncio.to_thread(store.delete_pending, prompt_id) == "pending":
                worker.queue_updated()
            else:
                log.info("Prompt %s is not currently running, skipping interrupt", prompt_id)
    else:
        log.info("Global interrupt (no prompt_id specified)")
        worker.interrupt()
    return web.Response(status=200)


async def post_free(request: web.Request) -> web.Response:
    """Ask the worker to unload models or free memory between prompts (``Host.free``)."""
    worker = server_of(request).worker
    data = await _body(request, empty={})
    if data.get("unload_models"):
        worker.set_flag("unload_models", True)
    if data.get("free_memory"):
        worker.set_flag("free_memory", True)
    return web.Response(status=200)


ROUTES: list[Route] = [
    ("GET", "/prompt", get_prompt),
    ("POST", "/prompt", post_prompt),
    ("GET", "/queue", get_queue),
    ("POST", "/queue", post_queue),
    ("GET", "/history", get_history),
    ("GET", "/history/{prompt_id}", get_history_item),
    ("POST", "/history", post_history),
    ("POST", "/interrupt", post_interrupt),
    ("POST", "/free", post_free),
]
