"""What the graph editor asks for besides the API: the editor's files at ``/`` (the
``comfyui-frontend-package`` wheel, ``pip install i2v-nodes[ui]``, or ``--front-end-root``), and
ComfyUI's user endpoints in their shapes: settings and user data (stored under
``USER/default``, as ComfyUI's single user), users, i18n, extensions, workflow templates and the
model lists.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from host_stub.server.http import HTTPError, read_json
from host_stub.server.routing import Route, server_of
from host_stub.server.served import file_response
from host_stub.server.user_files import UserFiles

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


def _user_files(request: web.Request) -> UserFiles:
    return server_of(request).user_files


async def index(request: web.Request) -> web.StreamResponse:
    """The editor's page, never cached; a short note when the editor is not installed."""
    web_root = server_of(request).web_root
    headers = {"Cache-Control": "no-cache", "Pragma": "no-cache", "Expires": "0"}
    if web_root is None:
        return web.Response(text=NO_EDITOR, content_type="text/html", headers=headers)
    return web.FileResponse(web_root / "index.html", headers=headers)


async def users(request: web.Request) -> web.Response:
    return web.json_response({"storage": "server", "migrated": True})


async def get_settings(request: web.Request) -> web.Response:
    return web.json_response(await asyncio.to_thread(_user_files(request).read_settings))


async def get_setting(request: web.Request) -> web.Response:
    settings = await asyncio.to_thread(_user_files(request).read_settings)
    return web.json_response(settings.get(request.match_info["id"]))


async def post_settings(request: web.Request) -> web.Response:
    values = await read_json(request, server_of(request).max_body)
    if not isinstance(values, dict):
        raise HTTPError(400, "settings must be a JSON object", "invalid_json", "settings")
    await asyncio.to_thread(_user_files(request).write_settings, lambda old: {**old, **values})
    return web.Response(status=200)


async def post_setting(request: web.Request) -> web.Response:
    value, key = await read_json(request, server_of(request).max_body), request.match_info["id"]
    await asyncio.to_thread(_user_files(request).write_settings, lambda old: {**old, key: value})
    return web.Response(status=200)


async def list_userdata(request: web.Request) -> web.Response:
    """The files in ``?dir=``: names, ``split`` names or ``full_info`` entries, ``recurse`` optional."""
    query = request.rel_url.query
    if not query.get("dir"):
        raise HTTPError(400, "no dir given", details="dir")
    folder = _user_files(request).path(query["dir"])
    if not folder.is_dir():
        raise HTTPError(404, "directory not found", "not_found")
    recurse, full, split = (query.get(k, "").lower() == "true" for k in ("recurse", "full_info", "split"))
    found = sorted(p for p in (folder.rglob("*") if recurse else folder.glob("*")) if p.is_file())
    if full:
        return web.json_response([_file_info(p, folder) for p in found])
    rel = [p.relative_to(folder).as_posix() for p in found]
    return web.json_response([[r, *r.split("/")] for r in rel] if split else rel)


async def list_userdata_v2(request: web.Request) -> web.Response:
    """Everything below ``?path=`` (default: the user folder), folders first, by name."""
    files = _user_files(request)
    rel = request.rel_url.query.get("path", "")
    folder = files.path(rel) if rel else files.root
    if not folder.exists():
        if not rel:
            return web.json_response([])
        raise HTTPError(404, "path not found", "not_found")
    if not folder.is_dir():
        raise HTTPError(400, "not a directory", details="path")
    entries = []
    for path in folder.rglob("*"):
        entry = {"name": path.name, "path": path.relative_to(files.root).as_posix(),
                 "type": "directory" if path.is_dir() else "file"}
        if path.is_file():
            entry.update(size=path.stat().st_size, modified=path.stat().st_mtime)
        entries.append(entry)
    entries.sort(key=lambda e: (e["type"] != "directory", e["name"].lower()))
    return web.json_response(entries)


async def get_userdata(request: web.Request) -> web.StreamResponse:
    """A user file, served as ``/view`` serves files (media and data inline, the rest as a download)."""
    path = _user_files(request).path(request.match_info["file"])
    if not path.is_file():
        raise HTTPError(404, "file not found", "not_found")
    return file_response(path)


async def post_userdata(request: web.Request) -> web.Response:
    """Write the body to a user file (``overwrite=false``: 409 if it exists)."""
    files, max_body = _user_files(request), server_of(request).max_body
    path = files.path(request.match_info["file"])
    query = request.rel_url.query
    if query.get("overwrite", "true") == "false" and path.exists():
        raise HTTPError(409, "file already exists", "exists")
    if request.content_length is not None and request.content_length > max_body:
        raise HTTPError(413, "file over the body limit", "body_too_large")
    body = await request.read()
    await asyncio.to_thread(files.write, path, body)
    if query.get("full_info", "false").lower() == "true":
        return web.json_response(_file_info(path, files.root))
    return web.json_response(path.relative_to(files.root).as_posix())


async def delete_userdata(request: web.Request) -> web.Response:
    path = _user_files(request).path(request.match_info["file"])
    if not path.is_file():
        raise HTTPError(404, "file not found", "not_found")
    path.unlink()
    return web.Response(status=204)


async def move_userdata(request: web.Request) -> web.Response:
    """Move a user file (``overwrite=false``: 409 if the destination exists)."""
    files = _user_files(request)
    source, dest = files.path(request.match_info["file"]), files.path(request.match_info["dest"])
    if not source.is_file():
        raise HTTPError(404, "file not found", "not_found")
    if request.rel_url.query.get("overwrite", "true") == "false" and dest.exists():
        raise HTTPError(409, "file already exists", "exists")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(source, dest)
    if request.rel_url.query.get("full_info", "false").lower() == "true":
        return web.json_response(_file_info(dest, files.root))
    return web.json_response(dest.relative_to(files.root).as_posix())


async def i18n(request: web.Request) -> web.Response:
    return web.json_response({})


async def workflow_templates(request: web.Request) -> web.Response:
    return web.json_response({})


async def extensions(request: web.Request) -> web.Response:
    """The editor's own extension scripts, as URLs."""
    root = server_of(request).web_root
    if root is None or not (root / "extensions").is_dir():
        return web.json_response([])
    files = sorted((root / "extensions").rglob("*.js"))
    return web.json_response(["/" + p.relative_to(root).as_posix() for p in files])


async def model_folders(request: web.Request) -> web.Response:
    folder_paths = sys.modules["folder_paths"]
    return web.json_response([{"name": name, "folders": folder_paths.get_folder_paths(name)}
                              for name in folder_paths.folder_names_and_paths
                              if name not in ("configs", "custom_nodes")])


async def model_files(request: web.Request) -> web.Response:
    folder_paths, name = sys.modules["folder_paths"], request.match_info["folder"]
    if name not in folder_paths.folder_names_and_paths:
        raise HTTPError(404, f"unknown model folder {name!r}", "not_found")
    return web.json_response(await server_of(request).off_loop(_model_files, folder_paths, name))


ROUTES: list[Route] = [
    ("GET", "/", index),
    ("GET", "/users", users),
    ("GET", "/settings", get_settings),
    ("GET", "/settings/{id}", get_setting),
    ("POST", "/settings", post_settings),
    ("POST", "/settings/{id}", post_setting),
    ("GET", "/userdata", list_userdata),
    ("GET", "/v2/userdata", list_userdata_v2),
    ("GET", "/userdata/{file}", get_userdata),
    ("POST", "/userdata/{file}", post_userdata),
    ("DELETE", "/userdata/{file}", delete_userdata),
    ("POST", "/userdata/{file}/move/{dest}", move_userdata),
    ("GET", "/i18n", i18n),
    ("GET", "/workflow_templates", workflow_templates),
    ("GET", "/extensions", extensions),
    ("GET", "/experiment/models", model_folders),
    ("GET", "/experiment/models/{folder}", model_files),
]
