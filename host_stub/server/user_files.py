"""The editor's user data: ComfyUI's single user's folder (``USER/default``) and its
``comfy.settings.json``. Paths from a client are checked to stay in the folder; files are written
to a hidden file and then renamed, so nobody reads a partial one (and on a full disk the hidden
file is removed again)."""

from __future__ import annotations

import json
import os
import threading
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from host_stub.server.paths import check_part, inside

SETTINGS = "comfy.settings.json"


class UserFiles:
    """The user folder of one server; settings updates are serialised by its lock."""

    def __init__(self, user_dir: str | Path):
        self.root = Path(user_dir).resolve() / "default"
        self.settings_lock = threading.Lock()

    def path(self, rel: str) -> Path:
        """``rel`` (percent-decoded if it has a ``%``) below the folder, else 400/403."""
        if "%" in rel:
            rel = urllib.parse.unquote(rel)
        check_part(rel, "path")
        return inside(str(self.root), rel)

    def read_settings(self) -> dict[str, Any]:
        """The settings, or ``{}`` while there is no readable settings file."""
        try:
            return json.loads((self.root / SETTINGS).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def write_settings(self, update: Callable[[dict[str, Any]], Any]) -> None:
        """Replace the settings with ``update(old settings)``, one writer at a time."""
        with self.settings_lock:
            settings = update(self.read_settings())
            self.write(self.root / SETTINGS, json.dumps(settings, indent=4).encode("utf-8"))

    @staticmethod
    def write(path: Path, body: bytes) -> None:
        """Write ``path`` whole: to a hidden file first, then renamed over it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.part")
        try:
            tmp.write_bytes(body)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
