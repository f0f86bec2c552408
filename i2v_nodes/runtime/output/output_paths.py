"""Output file naming like ComfyUI's SaveImage, made safe: no escaping the output root, no overwrites.

``filename_prefix`` may name subfolders (``i2v/clip`` -> folder ``i2v``, name ``clip``). Files are named
``{name}_{counter:05}_.{ext}`` with the counter one past the highest already used for that name in that
folder (whatever the extension, as ComfyUI counts). A file is encoded to a hidden temporary in the same
folder and published with a no-overwrite step, so a concurrent writer can never be clobbered and a
failed encode never leaves a half-written file under a real name.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from i2v_nodes.errors import InputError

logger = logging.getLogger(__name__)

_PREFIX_INPUT = "filename_prefix"
_TEMP_PREFIX = ".i2v-tmp-"
# Names Windows reserves; refusing them keeps an output folder portable.
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$", re.IGNORECASE)


@dataclass(frozen=True)
class OutputTarget:
    """Where a clip goes: the (existing) folder, its path relative to the root, and the base name."""

    root: Path
    folder: Path
    subfolder: str  # '/'-separated, '' for the root itself
    name: str


def expand_placeholders(filename_prefix: str, width: int, height: int,
                        now: time.struct_time | None = None) -> str:
    """The placeholders ComfyUI's savers expand: %width%, %height%, %year% ... %second%."""
    if not isinstance(filename_prefix, str):
        return filename_prefix
    now = now or time.localtime()
    values = {"width": width, "height": height, "year": now.tm_year, "month": f"{now.tm_mon:02}",
              "day": f"{now.tm_mday:02}", "hour": f"{now.tm_hour:02}", "minute": f"{now.tm_min:02}",
              "second": f"{now.tm_sec:02}"}
    for key, value in values.items():
        filename_prefix = filename_prefix.replace(f"%{key}%", str(value))
    return filename_prefix


def _prefix_parts(filename_prefix: str) -> list[str]:
    """Split a prefix on '/' and '\\' and refuse anything that could point outside the root."""
    if not isinstance(filename_prefix, str) or not filename_prefix.strip():
        raise InputError(_PREFIX_INPUT, "expected a non-empty name such as 'i2v/clip'")
    if "\0" in filename_prefix:
        raise InputError(_PREFIX_INPUT, "must not contain NUL characters")
    text = filename_prefix.replace("\\", "/")
    if text.startswith("/"):
        raise InputError(_PREFIX_INPUT, f"must be relative to the output folder, got {filename_prefix!r}")
    # Drive letters ('C:...') and NTFS alternate streams ('name:stream') both use ':'.
    if ":" in text:
        raise InputError(_PREFIX_INPUT, f"must not contain ':' (no drive letters): {filename_prefix!r}")
    parts = [part for part in PurePosixPath(text).parts if part not in ("", ".")]
    if ".." in parts:
        raise InputError(_PREFIX_INPUT, f"must not contain '..': {filename_prefix!r}")
    for part in parts:
        if part.startswith(".") or part != part.strip() or _WINDOWS_RESERVED.match(part):
            raise InputError(_PREFIX_INPUT, f"{part!r} is not an allowed file or folder name")
    if not parts:
        raise InputError(_PREFIX_INPUT, f"names no file: {filename_prefix!r}")
    return parts


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def resolve_target(output_root: Path, filename_prefix: str) -> OutputTarget:
    """Check the prefix and create its subfolders one level at a time, never leaving the root.

    Each folder is created or entered only after its parent has been resolved (symlinks followed) and
    found inside the root, so a symlink pointing elsewhere is refused before anything is made there.
    """
    parts = _prefix_parts(filename_prefix)
    root = Path(output_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    folder = root
    for part in parts[:-1]:
        candidate = folder / part
        if not candidate.exists() and not candidate.is_symlink():
            try:
                candidate.mkdir()
            except FileExistsError:
                pass  # made by a concurrent save; checked below like any existing folder
        resolved = candidate.resolve()
        if not _inside(resolved, root):
            raise InputError(_PREFIX_INPUT, f"{'/'.join(parts)!r} leads outside the output folder")
        if not resolved.is_dir():
            raise InputError(_PREFIX_INPUT, f"{candidate.relative_to(root).as_posix()!r} is not a folder")
        folder = resolved
    return OutputTarget(root=root, folder=folder, subfolder="/".join(parts[:-1]), name=parts[-1])


def recheck_target(target: OutputTarget) -> None:
    """Re-check just before publishing: the folder may have been swapped for a symlink meanwhile."""
    if not _inside(target.folder.resolve(), target.root):
        raise InputError(_PREFIX_INPUT, f"{target.subfolder!r} now leads outside the output folder")


def next_counter(target: OutputTarget) -> int:
    """One past the highest ``{name}_{NNNNN}_`` counter in the folder, whatever the extension."""
    pattern = re.compile(re.escape(target.name) + r"_(\d+)_", re.IGNORECASE if os.name == "nt" else 0)
    highest = 0
    for entry in os.listdir(target.folder):
        match = pattern.match(entry)
        if match:
            highest = max(highest, int(match.group(1)))
    return highest + 1


def final_name(target: OutputTarget, counter: int, extension: str) -> str:
    return f"{target.name}_{counter:05}_.{extension}"


@contextmanager
def temporary_file(target: OutputTarget, suffix: str) -> Iterator[Path]:
    """A hidden file name in the target folder, removed on exit whatever happened (if still there)."""
    path = target.folder / f"{_TEMP_PREFIX}{secrets.token_hex(8)}{suffix}"
    try:
        yield path
    finally:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _publish_once(tmp: Path, final: Path) -> None:
    """Give ``tmp`` the name ``final`` unless ``final`` exists (FileExistsError)."""
    try:
        os.link(tmp, final)  # atomic, and fails if the name is taken
    except FileExistsError:
        raise
    except OSError:
        # No hard links here (FAT, some network shares): reserve the name exclusively, then move the
        # finished file over our own reservation. Nobody else can have taken the name in between; a
        # reader may only see an empty file for a moment.
        fd = os.open(final, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.close(fd)
        os.replace(tmp, final)
        return
    tmp.unlink()


def publish(tmp: Path, target: OutputTarget, extension: str, max_attempts: int = 10_000) -> tuple[str, Path]:
    """Publish ``tmp`` as the next free ``{name}_{counter:05}_.{ext}``; returns (filename, path)."""
    recheck_target(target)
    counter = next_counter(target)
    for _ in range(max_attempts):
        filename = final_name(target, counter, extension)
        final = target.folder / filename
        try:
            _publish_once(tmp, final)
        except FileExistsError:
            logger.debug("%s was taken meanwhile; trying the next counter", filename)
            counter += 1
            continue
        return filename, final
    raise FileExistsError(f"no free name for {target.name!r} in {target.folder} after {max_attempts} tries")
