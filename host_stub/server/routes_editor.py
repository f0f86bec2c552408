"""What the graph editor asks for besides the API: the editor's files at ``/`` (the
``comfyui-frontend-package`` wheel, ``pip install i2v-nodes[ui]``, or ``--front-end-root``), and
ComfyUI's user endpoints in their shapes: settings and user data (stored under
``USER/default``, as ComfyUI's single user), users, i18n, extensions, workflow templates and the
model lists.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import sys
import threading
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from host_stub.server.http import HTTPError, read_json
from host_stub.server.routes_files import _check_part, inside

if TYPE_CHECKING:
    from host_stub.server.app import Server

NO_EDITOR = """<!doctype html><meta charset="utf-8"><title>host_stub</title>
<p>This is <code>python -m host_stub serve</code>: ComfyUI's API is here, the graph editor is not
installed. <code>pip install i2v-nodes[ui]</code> (the <code>comfyui-frontend-package</code> wheel)
adds it.</p>
"""


def find_web_root(front_end_root: str | None = None) -> Path | None:
    """``--front-end-root``, else the installed ``comfyui_frontend_package``'s static files."""
    if front_end_root:
        return Path(front_end_root).expanduser().resolve()
    spec = importlib.util.find_spec("comfyui_frontend_package")
    if spec is None or not spec.submodule_search_locations:
        return None
    static = Path(next(iter(spec.submodule_search_locations))) / "static"
    return static if (static / "index.html").is_file() else None


def _file_info(path: Path, root: Path) -> dict[str, Any]:
    st = path.stat()
    return {"path": path.relative_to(root).as_posix(), "size": st.st_size, "modified": st.st_mtime,
            "created": st.st_ctime}


def _model_files(folder_paths: Any, name: str) -> list[dict[str, Any]]:
    found = []
    extensions = folder_paths.supported_pt_extensions
    for index, folder in enumerate(folder_paths.get_folder_paths(name)):
        for dirpath, subdirs, files in os.walk(folder, followlinks=True):
            subdirs[:] = [d for d in subdirs if not d.startswith(".")]
            for file in files:
                if file.startswith(".") or os.path.splitext(file)[1].lower() not in extensions:
                    continue
                full = os.path.join(dirpath, file)
                st = os.stat(full)
                found.append({"name": os.path.relpath(full, folder).replace(os.sep, "/"), "pathIndex": index,
                              "modified": st.st_mtime, "created": st.st_ctime, "size": st.st_size})
    return found


def add_routes(routes: web.RouteTableDef, server: Server) -> None:
    user_root = Path(server.user_dir).resolve() / "default"
    settings_lock = threading.Lock()

    def user_path(rel: str) -> Path:
        if "%" in rel:
            rel = urllib.parse.unquote(rel)
        _check_part(rel, "path")
        return inside(str(user_root), rel)

    def read_settings() -> dict[str, Any]:
        try:
            return json.loads((user_root / "comfy.settings.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def write_settings(update: Any) -> None:
        with settings_lock:
            settings = update(read_settings())
            user_root.mkdir(parents=True, exist_ok=True)
            tmp = user_root / ".comfy.settings.json.part"
            tmp.write_text(json.dumps(settings, indent=4), encoding="utf-8")
            os.replace(tmp, user_root / "comfy.settings.json")

    @routes.get("/")
    async def index(request: web.Request) -> web.StreamResponse:
        headers = {"Cache-Control": "no-cache", "Pragma": "no-cache", "Expires": "0"}
        if server.web_root is None:
            return web.Response(text=NO_EDITOR, content_type="text/html", headers=headers)
        return web.FileResponse(server.web_root / "index.html", headers=headers)

    @routes.get("/users")
    async def users(request: web.Request) -> web.Response:
        return web.json_response({"storage": "server", "migrated": True})

    @routes.get("/settings")
    async def get_settings(request: web.Request) -> web.Response:
        return web.json_response(await asyncio.to_thread(read_settings))

    @routes.get("/settings/{id}")
    async def get_setting(request: web.Request) -> web.Response:
        return web.json_response((await asyncio.to_thread(read_settings)).get(request.match_info["id"]))

    @routes.post("/settings")
    async def post_settings(request: web.Request) -> web.Response:
        values = await read_json(request, server.max_body)
        if not isinstance(values, dict):
            raise HTTPError(400, "settings must be a JSON object", "invalid_json")
        await asyncio.to_thread(write_settings, lambda old: {**old, **values})
        return web.Response(status=200)

    @routes.post("/settings/{id}")
    async def post_setting(request: web.Request) -> web.Response:
        value, key = await read_json(request, server.max_body), request.match_info["id"]
        await asyncio.to_thread(write_settings, lambda old: {**old, key: value})
        return web.Response(status=200)

    @routes.get("/userdata")
    async def list_userdata(request: web.Request) -> web.Response:
        query = request.rel_url.query
        if not query.get("dir"):
            raise HTTPError(400, "no dir given")
        folder = user_path(query["dir"])
        if not folder.is_dir():
            raise HTTPError(404, "directory not found", "not_found")
        recurse, full, split = (query.get(k, "").lower() == "true" for k in ("recurse", "full_info", "split"))
        found = sorted(p for p in (folder.rglob("*") if recurse else folder.glob("*")) if p.is_file())
        if full:
            return web.json_response([_file_info(p, folder) for p in found])
        rel = [p.relative_to(folder).as_posix() for p in found]
        return web.json_response([[r, *r.split("/")] for r in rel] if split else rel)

    @routes.get("/v2/userdata")
    async def list_userdata_v2(request: web.Request) -> web.Response:
        rel = request.rel_url.query.get("path", "")
        folder = user_path(rel) if rel else user_root
        if not folder.exists():
            if not rel:
                return web.json_response([])
            raise HTTPError(404, "path not found", "not_found")
        if not folder.is_dir():
            raise HTTPError(400, "not a directory")
        entries = []
        for path in folder.rglob("*"):
            entry = {"name": path.name, "path": path.relative_to(user_root).as_posix(),
                     "type": "directory" if path.is_dir() else "file"}
            if path.is_file():
                entry.update(size=path.stat().st_size, modified=path.stat().st_mtime)
            entries.append(entry)
        entries.sort(key=lambda e: (e["type"] != "directory", e["name"].lower()))
        return web.json_response(entries)

    @routes.get("/userdata/{file}")
    async def get_userdata(request: web.Request) -> web.StreamResponse:
        path = user_path(request.match_info["file"])
        if not path.is_file():
            raise HTTPError(404, "file not found", "not_found")
        return web.FileResponse(path)

    @routes.post("/userdata/{file}")
    async def post_userdata(request: web.Request) -> web.Response:
        path = user_path(request.match_info["file"])
        query = request.rel_url.query
        if query.get("overwrite", "true") == "false" and path.exists():
            raise HTTPError(409, "file already exists", "exists")
        if request.content_length is not None and request.content_length > server.max_body:
            raise HTTPError(413, "file over the body limit", "body_too_large")
        body = await request.read()

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.part")
            tmp.write_bytes(body)
            os.replace(tmp, path)

        await asyncio.to_thread(write)
        if query.get("full_info", "false").lower() == "true":
            return web.json_response(_file_info(path, user_root))
        return web.json_response(path.relative_to(user_root).as_posix())

    @routes.delete("/userdata/{file}")
    async def delete_userdata(request: web.Request) -> web.Response:
        path = user_path(request.match_info["file"])
        if not path.is_file():
            raise HTTPError(404, "file not found", "not_found")
        path.unlink()
        return web.Response(status=204)

    @routes.post("/userdata/{file}/move/{dest}")
    async def move_userdata(request: web.Request) -> web.Response:
        source, dest = user_path(request.match_info["file"]), user_path(request.match_info["dest"])
        if not source.is_file():
            raise HTTPError(404, "file not found", "not_found")
        if request.rel_url.query.get("overwrite", "true") == "false" and dest.exists():
            raise HTTPError(409, "file already exists", "exists")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(source, dest)
        if request.rel_url.query.get("full_info", "false").lower() == "true":
            return web.json_response(_file_info(dest, user_root))
        return web.json_response(dest.relative_to(user_root).as_posix())

    @routes.get("/i18n")
    async def i18n(request: web.Request) -> web.Response:
        return web.json_response({})

    @routes.get("/workflow_templates")
    async def workflow_templates(request: web.Request) -> web.Response:
        return web.json_response({})

    @routes.get("/extensions")
    async def extensions(request: web.Request) -> web.Response:
        root = server.web_root
        if root is None or not (root / "extensions").is_dir():
            return web.json_response([])
        files = sorted((root / "extensions").rglob("*.js"))
        return web.json_response(["/" + p.relative_to(root).as_posix() for p in files])

    @routes.get("/experiment/models")
    async def model_folders(request: web.Request) -> web.Response:
        folder_paths = sys.modules["folder_paths"]
        return web.json_response([{"name": name, "folders": folder_paths.get_folder_paths(name)}
                                  for name in folder_paths.folder_names_and_paths
                                  if name not in ("configs", "custom_nodes")])

    @routes.get("/experiment/models/{folder}")
    async def model_files(request: web.Request) -> web.Response:
        folder_paths, name = sys.modules["folder_paths"], request.match_info["folder"]
        if name not in folder_paths.folder_names_and_paths:
            raise HTTPError(404, f"unknown model folder {name!r}", "not_found")
        return web.json_response(await server.off_loop(_model_files, folder_paths, name))
