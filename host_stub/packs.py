"""Import node packs by path, the way ComfyUI imports ``custom_nodes``.

A folder with ``__init__.py`` is one pack; any other folder holds packs, one per subfolder (or
``.py`` file). Each pack is imported under the module name ComfyUI would give it, its
``NODE_CLASS_MAPPINGS`` / ``NODE_DISPLAY_NAME_MAPPINGS`` are read (or, for a V3 pack, the node
list of the extension its ``comfy_entrypoint()`` returns), and a pack that fails to import is
reported while the others still load. A pack already imported in this process is
reused rather than executed again: ComfyUI also imports each pack once per process.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import sys
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from host_stub.errors import WorkflowError
from host_stub.node_call import run_sync
from host_stub.registry import NodeRegistry

log = logging.getLogger(__name__)


@dataclass
class PackLoad:
    """What happened when one pack was loaded."""

    path: Path
    name: str
    ok: bool
    nodes: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0


def discover(paths: Iterable[str | Path]) -> list[Path]:
    """The pack paths named by ``paths`` (see module doc), in a stable order, without duplicates."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser().resolve()
        if not path.exists():
            raise WorkflowError(f"pack folder not found: {raw}")
        if (path / "__init__.py").is_file() or path.is_file():
            candidates = [path]
        else:
            candidates = sorted(p for p in path.iterdir() if _looks_like_pack(p))
        found += [p for p in candidates if p not in found]
    return found


def _looks_like_pack(path: Path) -> bool:
    if path.name.startswith((".", "__")) or path.name.endswith(".disabled"):
        return False
    return path.is_dir() or path.suffix == ".py"


def module_name_for(path: Path) -> str:
    """The ``sys.modules`` key ComfyUI uses for a pack at ``path``."""
    if path.is_file():
        return str(path.with_suffix(""))
    return str(path).replace(".", "_x_")


def load_pack(path: Path, registry: NodeRegistry) -> PackLoad:
    name = path.stem if path.is_file() else path.name
    started = time.perf_counter()
    try:
        module = _import(path)
        mappings = getattr(module, "NODE_CLASS_MAPPINGS", None)
        display = getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", None) or {}
        if mappings is None:
            if not hasattr(module, "comfy_entrypoint"):
                raise ImportError("the pack defines no NODE_CLASS_MAPPINGS (nor a V3 comfy_entrypoint)")
            mappings, display = v3_nodes(module.comfy_entrypoint)
        nodes = registry.add_pack(f"custom_nodes.{name}", dict(mappings), dict(display))
    except Exception as exc:  # noqa: BLE001 - any failure in a pack's import is reported, not fatal
        log.warning("Cannot import %s module for custom nodes: %s", path, exc)
        log.debug("%s", traceback.format_exc())
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return PackLoad(path, name, False, error=error, seconds=time.perf_counter() - started)
    return PackLoad(path, name, True, nodes=nodes, seconds=time.perf_counter() - started)


def v3_nodes(entrypoint: Any) -> tuple[dict[str, type], dict[str, str]]:
    """A V3 pack's nodes: ``comfy_entrypoint()`` gives an extension that lists its node classes."""
    if not callable(entrypoint):
        raise ImportError("comfy_entrypoint is not callable")
    extension = entrypoint()
    if inspect.iscoroutine(extension):
        extension = run_sync(extension)
    if not callable(getattr(extension, "get_node_list", None)):
        raise ImportError("comfy_entrypoint did not return a ComfyExtension")
    nodes = run_sync(extension.get_node_list())
    if not isinstance(nodes, list):
        raise ImportError("the extension's get_node_list() did not return a list of nodes")
    mappings, display = {}, {}
    for cls in nodes:
        schema = cls.GET_SCHEMA()
        mappings[schema.node_id] = cls
        if schema.display_name is not None:
            display[schema.node_id] = schema.display_name
    return mappings, display


def _import(path: Path) -> ModuleType:
    module_name = module_name_for(path)
    init = path if path.is_file() else path / "__init__.py"
    existing = sys.modules.get(module_name)
    if existing is not None and getattr(existing, "__file__", None) == str(init):
        return existing
    if not init.is_file():
        raise ImportError(f"{path} has no __init__.py")
    spec = importlib.util.spec_from_file_location(module_name, init)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot build an import spec for {init}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        # Forget the half-imported module so that the next host reports the same failure.
        sys.modules.pop(module_name, None)
        raise
    return module
