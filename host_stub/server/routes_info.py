"""``/object_info``, ``/system_stats``, ``/embeddings``, ``/features``, ``/models`` and ``/ws``."""

from __future__ import annotations

import json
import logging
import os
import sys
import uuid
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from host_stub import memory
from host_stub.object_info import node_info, object_info
from host_stub.server.routing import Route, server_of

if TYPE_CHECKING:
    from host_stub.server.app import Server

log = logging.getLogger("host_stub.server")

COMFYUI_VERSION = "0.3.64"  # the ComfyUI whose semantics the stub follows


def _folder_paths() -> Any:
    return sys.modules["folder_paths"]  # the host's, kept active by the worker


def _device() -> dict[str, Any]:
    torch = sys.modules.get("torch")
    if torch is None:
        import torch
    if torch.cuda.is_available():
        index = torch.cuda.current_device()
        free, total = torch.cuda.mem_get_info(index)
        stats = torch.cuda.memory_stats(index)
        reserved = stats.get("reserved_bytes.all.current", 0)
        active = stats.get("active_bytes.all.current", 0)
        return {"name": f"cuda:{index} {torch.cuda.get_device_name(index)}", "type": "cuda", "index": index,
                "vram_total": total, "vram_free": free + reserved - active,
                "torch_vram_total": reserved, "torch_vram_free": reserved - active}
    ram_total, ram_free = memory.total_ram_bytes(), memory.available_ram_bytes()
    return {"name": "cpu", "type": "cpu", "index": None, "vram_total": ram_total, "vram_free": ram_free,
            "torch_vram_total": ram_total, "torch_vram_free": ram_free}


def system_stats() -> dict[str, Any]:
    torch = sys.modules.get("torch")
    return {
        "system": {
            "os": os.name,
            "ram_total": memory.total_ram_bytes(),
            "ram_free": memory.available_ram_bytes(),
            "comfyui_version": COMFYUI_VERSION,
            "host_stub": True,
            "required_frontend_version": "",
            "installed_templates_version": "",
            "required_templates_version": "",
            "python_version": sys.version,
            "pytorch_version": getattr(torch, "__version__", ""),
            "embedded_python": False,
            "argv": sys.argv,
        },
        "devices": [_device()],
    }


async def get_object_info(request: web.Request) -> web.Response:
    server = server_of(request)
    return web.json_response(await server.off_loop(object_info, server.host.registry))


async def get_object_info_node(request: web.Request) -> web.Response:
    """One class's definition, or ``{}`` for an unknown class (ComfyUI's answer)."""
    server, name = server_of(request), request.match_info["node_class"]
    registry = server.host.registry
    if name not in registry.classes:
        return web.json_response({})
    return web.json_response({name: await server.off_loop(node_info, registry, name)})


async def get_system_stats(request: web.Request) -> web.Response:
    """ComfyUI's answer, plus ``system.queue_database``: whether the queue database can be written
    (``writable``, ``error``) and how many finished prompts' history waits to be written."""
    server = server_of(request)
    stats = await server.off_loop(system_stats)
    worker = getattr(server, "worker", None)
    unwritten = len(worker.unwritten) if worker is not None else 0
    stats["system"]["queue_database"] = {**server.store.health(), "unwritten_history": unwritten}
    return web.json_response(stats)


async def get_embeddings(request: web.Request) -> web.Response:
    names = await server_of(request).off_loop(_folder_paths().get_filename_list, "embeddings")
    return web.json_response([os.path.splitext(n)[0] for n in names])


async def get_features(request: web.Request) -> web.Response:
    max_upload = server_of(request).max_upload
    return web.json_response({"supports_preview_metadata": False, "max_upload_size": max_upload})


async def get_model_types(request: web.Request) -> web.Response:
    return web.json_response(list(_folder_paths().folder_names_and_paths))


async def get_models(request: web.Request) -> web.Response:
    folder = request.match_info["folder"]
    if folder not in _folder_paths().folder_names_and_paths:
        return web.json_response([], status=404)
    return web.json_response(await server_of(request).off_loop(_folder_paths().get_filename_list, folder))


async def _greet(ws: web.WebSocketResponse, server: Server, sid: str) -> None:
    """``status`` with the sid; a client whose prompt is running also gets its ``executing``."""
    status = {"status": server.worker.queue_info(), "sid": sid}
    await ws.send_str(json.dumps({"type": "status", "data": status}))
    current = server.worker.current
    node = server.worker.current_node()
    if current is not None and current.client_id == sid and node is not None:
        await ws.send_str(json.dumps({"type": "executing", "data": {
            "node": node, "display_node": node, "prompt_id": current.prompt_id}}))


async def _answer_feature_flags(ws: web.WebSocketResponse, server: Server, sid: str) -> None:
    """Read the client's messages; only its first, if it is ``feature_flags``, gets an answer."""
    first = True
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.TEXT and first:
            first = False
            try:
                data = json.loads(msg.data)
            except json.JSONDecodeError:
                log.warning("invalid JSON from websocket client %s", sid)
                continue
            if isinstance(data, dict) and data.get("type") == "feature_flags":
                await ws.send_str(json.dumps({"type": "feature_flags", "data": {
                    "supports_preview_metadata": False, "max_upload_size": server.max_upload}}))


async def websocket(request: web.Request) -> web.WebSocketResponse:
    """The websocket: the hub sends it progress and results until the client goes."""
    server = server_of(request)
    ws = web.WebSocketResponse(heartbeat=30.0)
    await ws.prepare(request)
    sid = request.rel_url.query.get("clientId") or uuid.uuid4().hex
    server.hub.add(sid, ws)
    try:
        await _greet(ws, server, sid)
        await _answer_feature_flags(ws, server, sid)
    finally:
        server.hub.remove(sid, ws)
    return ws


ROUTES: list[Route] = [
    ("GET", "/object_info", get_object_info),
    ("GET", "/object_info/{node_class}", get_object_info_node),
    ("GET", "/system_stats", get_system_stats),
    ("GET", "/embeddings", get_embeddings),
    ("GET", "/features", get_features),
    ("GET", "/models", get_model_types),
    ("GET", "/models/{folder}", get_models),
    ("GET", "/ws", websocket),
]
