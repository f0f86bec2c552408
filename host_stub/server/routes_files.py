"""``GET /view`` and ``POST /upload/image``, confined to the input, output and temp folders.

Names with NUL bytes, absolute paths, ``..`` and over-long parts are refused (400), and so is any
path whose real location (symlinks followed) is outside its folder (403). Uploads are written to
a hidden file in the target folder and then renamed, so nobody sees a partial file; on a full
disk the hidden file is removed and the answer is 507. Files are served as
:mod:`host_stub.server.served` says (media inline, anything else as a download).
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import io
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from host_stub.server.http import FULL_DISK, HTTPError
from host_stub.server.paths import check_part, inside
from host_stub.server.routing import Route, server_of
from host_stub.server.served import file_response, guard_headers

ANNOTATIONS = {"[output]": "output", "[input]": "input", "[temp]": "temp"}
FORM_MARGIN = 64 * 1024  # what a multipart form may add around an upload's bytes


def _preview(path: Path, query: Any, filename: str) -> web.Response:
    """An image's preview (``preview=webp;90``) or channel; 400 for a file that is not an image."""
    from PIL import Image

    try:
        return _convert(path, query, filename)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise HTTPError(400, f"{filename} cannot be previewed: it is not an image this server reads",
                        "invalid_image", f"preview: {exc}") from None


def _convert(path: Path, query: Any, filename: str) -> web.Response:
    from PIL import Image

    with Image.open(path) as img:
        if "preview" in query:
            spec = query["preview"].split(";")
            fmt = spec[0] if spec[0] in ("webp", "jpeg") and "a" not in query.get("channel", "") else "webp"
            quality = min(max(int(spec[-1]), 1), 100) if spec[-1].isdigit() else 90
            if fmt == "jpeg" or query.get("channel") == "rgb":
                img = img.convert("RGB")
            buffer = io.BytesIO()
            img.save(buffer, format=fmt, quality=quality)
            content_type = f"image/{fmt}"
        elif query.get("channel") == "rgb":
            buffer = io.BytesIO()
            img.convert("RGB").save(buffer, format="PNG")
            content_type = "image/png"
        else:  # channel a: the alpha channel as an RGBA image
            alpha = img.getchannel("A") if img.mode == "RGBA" else Image.new("L", img.size, 255)
            out = Image.new("RGBA", img.size)
            out.putalpha(alpha)
            buffer = io.BytesIO()
            out.save(buffer, format="PNG")
            content_type = "image/png"
    headers = guard_headers(filename, content_type)
    return web.Response(body=buffer.getvalue(), headers=headers)


def _digest(fh: Any) -> bytes:
    digest = hashlib.sha256()
    for chunk in iter(lambda: fh.read(1 << 20), b""):
        digest.update(chunk)
    return digest.digest()


def _same_content(path: Path, data_file: Any) -> bool:
    data_file.seek(0)
    ours = _digest(data_file)
    data_file.seek(0)
    with open(path, "rb") as fh:
        return _digest(fh) == ours


def _store_upload(folder: Path, filename: str, data_file: Any, overwrite: bool) -> str:
    """Write the upload to a hidden file, then give it its name; the hidden file never stays."""
    tmp = folder / f".upload-{secrets.token_hex(8)}.part"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        data_file.seek(0)
        with open(tmp, "wb") as out:
            shutil.copyfileobj(data_file, out)
        return _place(tmp, folder, filename, data_file, overwrite)
    except OSError as exc:
        if exc.errno in FULL_DISK:
            raise HTTPError(507, f"no room to store the upload {filename!r}", "insufficient_storage",
                            f"image: {exc.strerror}") from None
        if exc.errno == errno.ENAMETOOLONG:
            raise HTTPError(400, "filename is too long", "invalid_path", "filename") from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def _place(tmp: Path, folder: Path, filename: str, data_file: Any, overwrite: bool) -> str:
    """Give the written file its name; a name taken by other bytes gets `` (N)``."""
    stem, ext = os.path.splitext(filename)
    name, i = filename, 1
    while True:
        final = folder / name
        if overwrite:
            os.replace(tmp, final)
            return name
        if final.exists() and _same_content(final, data_file):
            return name  # the same file is already there: keep it, as ComfyUI does
        try:
            os.link(tmp, final)  # atomic, and never replaces a file uploaded meanwhile
            return name
        except FileExistsError:
            name, i = f"{stem} ({i}){ext}", i + 1


def _folder_of(request: web.Request, type_name: str) -> str:
    """The host's folder for ``type`` (input, output or temp); 400 for any other."""
    folders = server_of(request).host.folders
    found = {"input": folders.input_directory, "output": folders.output_directory,
             "temp": folders.temp_directory}.get(type_name)
    if found is None:
        raise HTTPError(400, f"unknown type {type_name!r} (input, output or temp)", "invalid_type", "type")
    return found


def _view_path(request: web.Request) -> tuple[Path, str]:
    """The file ``/view``'s query names, checked to be inside its folder, and its plain name."""
    query = request.rel_url.query
    if "filename" not in query:
        raise HTTPError(404, "no filename given", "not_found")
    filename, type_name = query["filename"], query.get("type", "output")
    for tag, tagged_type in ANNOTATIONS.items():
        if filename.endswith(tag):
            filename, type_name = filename[: -len(tag) - 1], tagged_type
    subfolder = query.get("subfolder", "")
    check_part(filename, "filename")
    check_part(subfolder, "subfolder")
    filename = os.path.basename(filename.replace("\\", "/"))  # as ComfyUI: a name, not a path
    if not filename:
        raise HTTPError(400, "empty filename", "invalid_path", "filename")
    path = inside(_folder_of(request, type_name), subfolder, filename)
    if not path.is_file():
        raise HTTPError(404, "file not found", "not_found")
    return path, filename


async def view(request: web.Request) -> web.StreamResponse:
    """A media file as itself, anything else as a download (``served``), or an image's preview."""
    query = request.rel_url.query
    path, filename = _view_path(request)
    if "preview" in query or query.get("channel") in ("rgb", "a"):
        return await asyncio.to_thread(_preview, path, query, filename)
    return file_response(path, filename)


async def upload_image(request: web.Request) -> web.Response:
    """Store the form's ``image`` in its folder; a name taken by other bytes gets `` (N)``."""
    limit = server_of(request).max_upload
    if request.content_length is not None and request.content_length > limit + FORM_MARGIN:
        raise HTTPError(413, f"the upload is over the limit of {limit} bytes", "body_too_large")
    try:
        post = await request.post()
    except (ValueError, HttpProcessingError) as exc:  # a malformed form (a NUL in a header, say)
        raise HTTPError(400, "the multipart form cannot be read", "invalid_form", str(exc)) from None
    image = post.get("image")
    if not isinstance(image, web.FileField) or not image.filename:
        raise HTTPError(400, "no image file in the form (field 'image')", "no_file", "image")
    type_name = str(post.get("type") or "input")
    subfolder = str(post.get("subfolder") or "")
    filename = image.filename
    check_part(subfolder, "subfolder")
    check_part(filename, "filename")
    if "/" in filename or "\\" in filename or filename in (".", ".."):
        raise HTTPError(400, "the file name must be a plain name", "invalid_path", "filename")
    size = image.file.seek(0, os.SEEK_END)
    if size > limit:
        raise HTTPError(413, f"the file is over the upload limit of {limit} bytes", "body_too_large")
    root = _folder_of(request, type_name)
    folder = inside(root, subfolder)
    overwrite = str(post.get("overwrite", "")).lower() in ("true", "1")
    name = await asyncio.to_thread(_store_upload, folder, filename, image.file, overwrite)
    return web.json_response({"name": name, "subfolder": subfolder, "type": type_name})


ROUTES: list[Route] = [
    ("GET", "/view", view),
    ("POST", "/upload/image", upload_image),
]
