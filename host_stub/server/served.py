"""How ``/view`` and ``/userdata`` hand out files, so that no file can script the API's origin.

A file that anyone could upload (an SVG with a ``<script>``, an HTML page) would otherwise run in
the server's own origin, where it can queue prompts and read every output. So:

- images, video, audio and JSON are served as what they are, text of any kind as ``text/plain``
  (the types a browser renders without running anything);
- anything else (HTML, SVG, XML, JavaScript, CSS, PDF, unknown) as ``application/octet-stream``
  with ``Content-Disposition: attachment``: a download, never a page;
- every such answer has ``X-Content-Type-Options: nosniff`` and a ``Content-Security-Policy``
  that allows no script and sandboxes the document, while an image or a video opened on its own
  still shows (the editor's ``<img>`` and ``<video>`` elements are not affected by it).
"""

from __future__ import annotations

import mimetypes
import urllib.parse
from pathlib import Path

from aiohttp import web

CSP = ("default-src 'none'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'unsafe-inline'; "
       "sandbox")
MEDIA_PREFIXES = ("image/", "video/", "audio/")
NOT_MEDIA = {"image/svg+xml"}  # an image type that can hold scripts
DATA_TYPES = {"application/json"}
SCRIPTED_TEXT = {"text/html", "text/css", "text/javascript", "text/ecmascript", "text/xml", "text/xsl",
                 "text/html-sandboxed", "text/x-component"}


def served_type(filename: str) -> tuple[str, bool]:
    """(the Content-Type to serve ``filename`` with, whether it is shown inline)."""
    guessed = (mimetypes.guess_type(filename)[0] or "").lower()
    if guessed.startswith(MEDIA_PREFIXES) and guessed not in NOT_MEDIA:
        return guessed, True
    if guessed in DATA_TYPES:
        return guessed, True
    if guessed.startswith("text/") and guessed not in SCRIPTED_TEXT:
        return "text/plain; charset=utf-8", True
    return "application/octet-stream", False


def disposition(filename: str, inline: bool) -> str:
    """``Content-Disposition`` naming the file (RFC 6266: an ASCII name and the UTF-8 one)."""
    plain = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename)
    quoted = urllib.parse.quote(filename, safe="")
    return f"{'inline' if inline else 'attachment'}; filename=\"{plain}\"; filename*=UTF-8''{quoted}"


def guard_headers(filename: str, content_type: str, inline: bool = True) -> dict[str, str]:
    """The headers every file answer of ``/view`` and ``/userdata`` carries."""
    return {"Content-Type": content_type, "Content-Disposition": disposition(filename, inline),
            "X-Content-Type-Options": "nosniff", "Content-Security-Policy": CSP}


def file_response(path: Path, filename: str | None = None) -> web.FileResponse:
    """``path`` as a media or data type, or as a download (byte ranges work as before)."""
    name = filename or path.name
    content_type, inline = served_type(name)
    return web.FileResponse(path, headers=guard_headers(name, content_type, inline))
