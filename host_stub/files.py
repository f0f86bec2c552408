"""Which files a run wrote: a before/after look at the output folders, plus the files nodes report
(only those inside their folder)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from host_stub import safe_paths

Snapshot = dict[str, tuple[int, int]]


def snapshot(folders: Iterable[str]) -> Snapshot:
    state: Snapshot = {}
    for folder in dict.fromkeys(folders):  # unique, in order
        for dirpath, _dirs, names in os.walk(folder):
            for name in names:
                path = os.path.join(dirpath, name)
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                state[path] = (st.st_mtime_ns, st.st_size)
    return state


def changed(before: Snapshot, after: Snapshot) -> list[Path]:
    return sorted(Path(p) for p, stamp in after.items() if before.get(p) != stamp)


def reported(ui_outputs: dict[str, Any], folders: dict[str, str]) -> list[Path]:
    """Files named in UI outputs (``{"filename", "subfolder", "type"}`` entries) that exist."""
    found = []
    for ui in ui_outputs.values():
        for items in ui.values() if isinstance(ui, dict) else ():
            for item in items if isinstance(items, list) else ():
                if isinstance(item, dict) and "filename" in item and item.get("type") in folders:
                    path = _inside(folders[item["type"]], item.get("subfolder") or "", item["filename"])
                    if path is not None and path.is_file():
                        found.append(path)
    return found


def _inside(folder: str, subfolder: Any, filename: Any) -> Path | None:
    """``folder/subfolder/filename`` if that stays inside ``folder`` (symlinks followed), else None."""
    try:
        safe_paths.resolve_in(folder, os.path.join(str(subfolder), str(filename)), "output")
    except safe_paths.UnsafePath:
        return None
    return Path(folder, str(subfolder), str(filename))
