"""Path checks shared by ``/view``, ``/upload/image`` and the user-data routes: a name from a
client is refused (400) if it has a NUL byte, is absolute, contains ``..`` or has a part longer
than a file system allows, and a path whose real location (symlinks followed) is outside its
folder is refused (403)."""

from __future__ import annotations

import os
from pathlib import Path

from host_stub.server.http import HTTPError

MAX_NAME_BYTES = 255  # one file or folder name (NAME_MAX on Linux, macOS and Windows alike)
MAX_PATH_CHARS = 1024


def check_part(value: str, what: str) -> None:
    """Refuse (400) a file name or subfolder that could point anywhere but below its folder."""
    if "\x00" in value:
        raise HTTPError(400, f"{what} contains a NUL byte", "invalid_path", what)
    if os.path.isabs(value) or value.startswith(("/", "\\")) or (len(value) > 1 and value[1] == ":"):
        raise HTTPError(400, f"{what} must be relative", "invalid_path", what)
    parts = value.replace("\\", "/").split("/")
    if ".." in parts:
        raise HTTPError(400, f"{what} must not contain '..'", "invalid_path", what)
    too_long = any(len(p.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES for p in parts)
    if too_long or len(value) > MAX_PATH_CHARS:
        raise HTTPError(400, f"{what} is too long", "invalid_path", what)


def inside(root: str, *parts: str) -> Path:
    """``root/parts...`` with symlinks resolved, if that is still inside ``root`` (else 403)."""
    real_root = os.path.realpath(root)
    path = os.path.realpath(os.path.join(real_root, *parts))
    if os.path.commonpath([real_root, path]) != real_root:
        raise HTTPError(403, "the path leads outside its folder", "forbidden_path")
    return Path(path)
