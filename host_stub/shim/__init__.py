"""The module surface a ComfyUI pack expects, installed in ``sys.modules`` only while a host is active.

While a host runs, ``comfy`` (``utils``, ``model_management``, ``comfy_types``, ``cli_args``),
``folder_paths``, ``comfy_execution`` (``graph``, ``graph_utils``, ``utils``) and ``comfy_api``
(``latest`` with ``io`` and ``ui``, the ``v0_0_2`` / ``v0_0_1`` version modules, ``input``,
``input_impl``, ``util``) are importable; afterwards ``sys.modules`` is put back exactly as it
was, so code that probes for ComfyUI (and tests) never sees a stale host. The shim modules are
created once per process: packs that did ``import folder_paths`` at import time keep a
reference that stays valid for every later host, which re-points the module's folders at its
own.

If the real ComfyUI modules are already imported, nothing is installed and they are used as
they are; only the progress hook is set for the duration of a run.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from host_stub.shim import (
    cli_args,
    comfy_types,
    comfy_utils,
    execution_graph,
    execution_utils,
    folder_paths,
    graph_utils,
    model_management,
    v3_api,
    v3_io,
    v3_ui,
    v3_video,
)

_FOLDER_ATTRS = (
    "models_dir",
    "folder_names_and_paths",
    "input_directory",
    "output_directory",
    "temp_directory",
)


def _package(name: str, doc: str, **children: types.ModuleType) -> types.ModuleType:
    """A package with nothing to find on disk: importing a submodule we do not provide fails cleanly."""
    package = types.ModuleType(name, doc)
    package.__path__ = []
    for attr, child in children.items():
        setattr(package, attr, child)
    return package


_SHIMS: dict[str, types.ModuleType] = {
    "comfy": _package(
        "comfy",
        "host_stub's stand-in for the comfy package.",
        utils=comfy_utils,
        model_management=model_management,
        comfy_types=comfy_types,
        cli_args=cli_args,
    ),
    "comfy.utils": comfy_utils,
    "comfy.model_management": model_management,
    "comfy.cli_args": cli_args,
    "comfy.comfy_types": comfy_types,
    "comfy.comfy_types.node_typing": comfy_types,
    "folder_paths": folder_paths,
    "comfy_execution": _package(
        "comfy_execution",
        "host_stub's stand-in for comfy_execution.",
        graph=execution_graph,
        graph_utils=graph_utils,
        utils=execution_utils,
    ),
    "comfy_execution.graph": execution_graph,
    "comfy_execution.graph_utils": graph_utils,
    "comfy_execution.utils": execution_utils,
    "comfy_api": _package(
        "comfy_api", "host_stub's stand-in for comfy_api.", latest=v3_api, input=v3_video, input_impl=v3_video
    ),
    "comfy_api.latest": v3_api,
    "comfy_api.latest._io": v3_io,
    "comfy_api.latest._ui": v3_ui,
    "comfy_api.latest._input": v3_video,
    "comfy_api.latest._input_impl": v3_video,
    "comfy_api.latest._util": v3_video,
    "comfy_api.v0_0_2": v3_api.version_module("comfy_api.v0_0_2", "0.0.2"),
    "comfy_api.v0_0_1": v3_api.version_module("comfy_api.v0_0_1", "0.0.1"),
    "comfy_api.input": v3_video,
    "comfy_api.input_impl": v3_video,
    "comfy_api.util": v3_video,
}
v3_api.__path__ = []  # type: ignore[attr-defined] # a package: comfy_api.latest._io and friends
for _name in ("v0_0_2", "v0_0_1", "util"):
    setattr(_SHIMS["comfy_api"], _name, _SHIMS[f"comfy_api.{_name}"])
SHIM_NAMES = tuple(_SHIMS)

_MISSING = object()
_ACTIVE = threading.RLock()


@dataclass
class FolderConfig:
    """A host's folders, as ``folder_paths`` presents them."""

    models_dir: str
    input_directory: str
    output_directory: str
    temp_directory: str
    folder_names_and_paths: dict[str, tuple[list[str], set[str]]]

    @classmethod
    def create(cls, models_dir: str, input_dir: str, output_dir: str, temp_dir: str) -> FolderConfig:
        return cls(models_dir, input_dir, output_dir, temp_dir, folder_paths.default_folders(models_dir))


def real_comfy_present() -> bool:
    """True when ComfyUI's own modules (not ours) are imported in this process."""
    for name in ("comfy.model_management", "folder_paths"):
        module = sys.modules.get(name)
        if module is not None and module is not _SHIMS[name]:
            return True
    return False


def module(name: str) -> Any:
    """The module a pack would get for ``name`` right now (ours or ComfyUI's)."""
    return sys.modules[name]


@contextlib.contextmanager
def activated(folders: FolderConfig) -> Iterator[None]:
    """Install the shim modules (unless ComfyUI's are present) pointed at ``folders``; undo on exit.

    Nests: an inner activation re-points the folders and the outer one gets them back. The
    modules are process-wide, so hosts in different threads take turns.
    """
    with _ACTIVE:
        if real_comfy_present():
            yield
        else:
            with _installed(folders):
                yield


@contextlib.contextmanager
def _installed(folders: FolderConfig) -> Iterator[None]:
    saved_modules = {name: sys.modules.get(name, _MISSING) for name in SHIM_NAMES}
    saved_folders = {attr: getattr(folder_paths, attr) for attr in _FOLDER_ATTRS}
    sys.modules.update(_SHIMS)
    for attr in _FOLDER_ATTRS:
        setattr(folder_paths, attr, getattr(folders, attr))
    try:
        yield
    finally:
        for attr, value in saved_folders.items():
            setattr(folder_paths, attr, value)
        for name, previous in saved_modules.items():
            if previous is _MISSING:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous


@contextlib.contextmanager
def progress_hook(hook: Callable[..., None]) -> Iterator[None]:
    """Route every ``comfy.utils.ProgressBar`` created in this block to ``hook``."""
    utils = sys.modules.get("comfy.utils")
    setter = getattr(utils, "set_progress_bar_global_hook", None)
    if setter is None:
        yield
        return
    previous = getattr(utils, "PROGRESS_BAR_HOOK", None)
    setter(hook)
    try:
        yield
    finally:
        setter(previous)
