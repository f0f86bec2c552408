"""Folders are walls: a file name from a prompt stays inside its folder and names a regular file.

A name is relative to the input, output or temp folder (ComfyUI's annotations ``name [output]``,
``name [temp]``, ``name [input]`` pick the folder; the input folder otherwise). Absolute paths,
``..`` and NUL bytes are refused from the text alone; then the real location (symlinks followed)
must be inside the folder's real location, and a file to read must be a regular file (no FIFO,
device, socket or directory). All of this is decided from ``os.stat`` before a byte is read; a
file is then opened without blocking and checked again on the open descriptor, so a FIFO swapped
in meanwhile cannot hang the reader.

Writers get :func:`output_folder`: the subfolders of a ``filename_prefix`` are entered one level at
a time, each checked (symlinks followed) to stay inside the output folder before anything is made
in it, as the pack's video writer does.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Mapping
from typing import BinaryIO

log = logging.getLogger(__name__)

ANNOTATIONS = ("output", "input", "temp")
_CHUNK = 1 << 20
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class UnsafePath(ValueError):
    """A name that leaves its folder or does not name a regular file; the message says why."""


def split_annotation(name: str) -> tuple[str, str | None]:
    """``("a.png", "output")`` for ``"a.png [output]"``; ``(name, None)`` without an annotation."""
    for kind in ANNOTATIONS:
        tag = f"[{kind}]"
        if name.endswith(tag):
            return name[: -len(tag) - 1], kind  # ComfyUI strips the tag and the space before it
    return name, None


def relative_parts(name: object, folder_kind: str = "input") -> list[str]:
    """The parts of a relative name; UnsafePath for anything that could point outside the folder."""
    if not isinstance(name, str) or not name.strip():
        raise UnsafePath(f"expected a file name in the {folder_kind} folder, got {name!r}")
    if "\0" in name:
        raise UnsafePath("file names must not contain NUL characters")
    if os.path.isabs(name) or name.startswith(("/", "\\")) or os.path.splitdrive(name)[0]:
        raise UnsafePath(f"absolute paths are not allowed; name a file in the {folder_kind} folder")
    parts = _split(name)
    if ".." in parts:
        raise UnsafePath(f"'..' is not allowed; name a file in the {folder_kind} folder")
    if not parts:
        raise UnsafePath(f"expected a file name in the {folder_kind} folder, got {name!r}")
    return parts


def _split(name: str) -> list[str]:
    """The parts of a name split on this system's separators, without empty and '.' parts."""
    if os.altsep:
        name = name.replace(os.altsep, os.sep)
    return [part for part in name.split(os.sep) if part not in ("", ".")]


def inside(path: str, root: str) -> bool:
    """Whether ``path`` is ``root`` or below it (both real, absolute paths)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def resolve_in(folder: str, name: str, folder_kind: str = "input") -> str:
    """The real path of ``name`` inside ``folder``; UnsafePath if it leads elsewhere (it may not exist)."""
    parts = relative_parts(name, folder_kind)
    root = os.path.realpath(folder)
    real = os.path.realpath(os.path.join(root, *parts))
    if not inside(real, root):
        raise UnsafePath(f"it leads outside the {folder_kind} folder (through a symlink)")
    return real


def resolve_annotated(name: str, folders: Mapping[str, str], default: str = "input") -> str:
    """The real path an (annotated) name stands for, inside the folder its annotation picks."""
    if not isinstance(name, str):
        raise UnsafePath(f"expected a file name, got {name!r}")
    plain, kind = split_annotation(name)
    kind = kind or default
    return resolve_in(folders[kind], plain, kind)


def kind_of(mode: int) -> str:
    for test, words in _KINDS:
        if test(mode):
            return words
    return "not a regular file"


def regular_file(path: str) -> os.stat_result:
    """``os.stat`` of ``path`` if it is a regular file; UnsafePath if it is anything else.

    FileNotFoundError (and other OSErrors) pass through: a missing file is not a wall's business.
    """
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise UnsafePath(f"it is {kind_of(st.st_mode)}, not a regular file")
    return st


def open_regular(path: str) -> BinaryIO:
    """Open a checked path for reading without blocking on a FIFO; refuse what is not a regular file."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise UnsafePath(f"it is {kind_of(mode)}, not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def open_annotated(name: str, folders: Mapping[str, str], default: str = "input") -> BinaryIO:
    """The file an (annotated) name stands for, open for reading, after every check."""
    path = resolve_annotated(name, folders, default)
    regular_file(path)
    return open_regular(path)


def file_digest(fh: BinaryIO) -> str:
    """SHA-256 of an open regular file, reading no more than its size when opened (it may grow)."""
    left = os.fstat(fh.fileno()).st_size
    digest = hashlib.sha256()
    while left > 0:
        chunk = fh.read(min(_CHUNK, left))
        if not chunk:
            break
        digest.update(chunk)
        left -= len(chunk)
    return digest.hexdigest()


def listed_files(folder: str) -> list[str]:
    """Names of the regular files directly in ``folder`` that stay inside it (for a file list)."""
    if not os.path.isdir(folder):
        return []
    names = []
    for name in os.listdir(folder):
        try:
            regular_file(resolve_in(folder, name))
        except (UnsafePath, OSError):
            continue
        names.append(name)
    return names


def output_folder(root: str, subfolder: str, input_name: str = "filename_prefix") -> str:
    """The real folder ``subfolder`` names under ``root``, made one level at a time if missing.

    Each level is made or entered only after its real location (symlinks followed) is found inside
    the real ``root``, so a symlink that leads elsewhere is refused before anything is made there.
    """
    real_root = os.path.realpath(root)
    os.makedirs(real_root, exist_ok=True)
    folder = real_root
    parts = _split(subfolder)
    if ".." in parts or os.path.isabs(subfolder):
        raise UnsafePath(f"{input_name}: {subfolder!r} leads outside the output folder")
    for part in parts:
        candidate = os.path.join(folder, part)
        if not os.path.lexists(candidate):
            try:
                os.mkdir(candidate)
            except FileExistsError:
                pass  # made by a concurrent save; checked below like any existing folder
        real = os.path.realpath(candidate)
        shown = os.path.relpath(candidate, real_root)
        if not inside(real, real_root):
            raise UnsafePath(
                f"{input_name}: {shown!r} leads outside the output folder (a symlink). "
                "Saving image outside the output folder is not allowed."
            )
        if not os.path.isdir(real):
            raise UnsafePath(f"{input_name}: {shown!r} is not a folder")
        folder = real
    return folder


def still_inside(folder: str, root: str, input_name: str = "filename_prefix") -> None:
    """Check (again) just before a file is written: the folder may have been swapped for a symlink."""
    if not inside(os.path.realpath(folder), os.path.realpath(root)):
        raise UnsafePath(
            f"{input_name}: the folder leads outside the output folder. "
            "Saving image outside the output folder is not allowed."
        )
