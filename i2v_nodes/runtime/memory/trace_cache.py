"""Traced peaks remembered on disk, for the models the shipped table does not have (local folders,
tiny models, other precisions, shapes beyond its grid): the second answer reads what the first
traced.

One JSON file per configuration and code: its name is a hash of the family, variant, configs, the
tracer's and the family traces' source, and the torch, diffusers and transformers versions, so a
change to any of them starts a new file and an old answer is never read. Each file maps a phase and
its arguments to the traced bytes. A write takes the file's lock, reads it again, adds the new
figures and replaces the file at once (a temporary file renamed over it), so concurrent processes
never lose each other's figures and a reader never sees half a file.

Where: ``I2V_TRACE_CACHE`` (``off`` turns it off), else ``I2V_CACHE_DIR``/traces, else the user's
cache folder (``$XDG_CACHE_HOME`` or ``~/.cache``)/i2v-nodes/traces.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
FORMAT = 1


def folder() -> Path | None:
    """The cache folder, or None when the cache is off."""
    chosen = os.environ.get("I2V_TRACE_CACHE", "").strip()
    if chosen.lower() in ("off", "0", "false", "no"):
        return None
    if chosen:
        return Path(chosen).expanduser()
    if os.environ.get("I2V_CACHE_DIR"):
        return Path(os.environ["I2V_CACHE_DIR"]) / "traces"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "i2v-nodes" / "traces"


def _path(name: str) -> Path | None:
    where = folder()
    return None if where is None else where / f"{name}.json"


def read(name: str) -> dict[str, Any]:
    """Every figure in cache file ``name`` (empty when there is none, or it cannot be read)."""
    path = _path(name)
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data.get("peaks", {}) if data.get("format") == FORMAT else {}


def write(name: str, figures: dict[str, Any]) -> None:
    """Add ``figures`` to cache file ``name``: under its lock, merged with what is there, replaced
    atomically. A cache that cannot be written (read-only folder, full disk) is skipped, logged."""
    path = _path(name)
    if path is None or not figures:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        from filelock import FileLock

        with FileLock(str(path) + ".lock"):
            merged = {**read(name), **figures}
            _replace(path, {"format": FORMAT, "peaks": merged})
    except OSError as exc:
        log.debug("trace cache not written (%s): %s", path, exc)


_read: dict[str, dict[str, Any]] = {}  # cache files this process has read, with what it added


def remembered(name: str, key: str, compute: Callable[[], Any]) -> Any:
    """``compute()``'s value (anything JSON holds), from cache file ``name`` when it has ``key``,
    else computed and written there."""
    figures = _read.get(name)
    if figures is None:
        figures = _read[name] = read(name)
    if key in figures:
        return figures[key]
    value = compute()
    figures[key] = value
    write(name, {key: value})
    return value


def forget() -> None:
    """Forget the files this process has read (they are read again when next asked)."""
    _read.clear()


def _replace(path: Path, data: dict) -> None:
    handle, temporary = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(data, out, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
