"""``/object_info`` entries for V1 and V3 node classes, in the shape ComfyUI's server returns."""

from __future__ import annotations

import json
import logging
import traceback
from typing import Any

from host_stub.registry import NodeRegistry
from host_stub.v3 import is_v3

log = logging.getLogger(__name__)


def node_info(registry: NodeRegistry, name: str) -> dict[str, Any]:
    cls = registry.classes[name]
    if is_v3(cls):
        info = {**cls.GET_NODE_INFO_V1(), "python_module": registry.python_modules.get(name, "nodes")}
        return json.loads(json.dumps(info, default=str))
    input_types = cls.INPUT_TYPES()
    return_types = tuple(cls.RETURN_TYPES)
    info: dict[str, Any] = {
        "input": input_types,
        # ComfyUI calls INPUT_TYPES() again here; a second call keeps dynamic lists in step.
        "input_order": {key: list(value.keys()) for key, value in cls.INPUT_TYPES().items()},
        "output": return_types,
        "output_is_list": getattr(cls, "OUTPUT_IS_LIST", [False] * len(return_types)),
        "output_name": getattr(cls, "RETURN_NAMES", return_types),
        "name": name,
        "display_name": registry.display_name(name),
        "description": getattr(cls, "DESCRIPTION", ""),
        "python_module": registry.python_modules.get(name, "nodes"),
        "category": getattr(cls, "CATEGORY", "sd"),
        "output_node": getattr(cls, "OUTPUT_NODE", False) in (True,),  # ComfyUI compares with == here
    }
    if hasattr(cls, "OUTPUT_TOOLTIPS"):
        info["output_tooltips"] = cls.OUTPUT_TOOLTIPS
    for flag in ("DEPRECATED", "EXPERIMENTAL"):
        if getattr(cls, flag, False):
            info[flag.lower()] = True
    if hasattr(cls, "API_NODE"):
        info["api_node"] = cls.API_NODE
    # The JSON round trip gives what a client of /object_info sees: lists, not tuples. Values JSON
    # cannot hold (a dtype as a default, say) become strings rather than hiding the whole node.
    return json.loads(json.dumps(info, default=str))


def object_info(registry: NodeRegistry) -> dict[str, dict[str, Any]]:
    """Every node's entry; a node whose definition cannot be read is logged and left out."""
    out = {}
    for name in registry.classes:
        try:
            out[name] = node_info(registry, name)
        except Exception:  # noqa: BLE001 - ComfyUI logs a broken node and serves the rest
            log.error(
                "An error occurred while retrieving information for the '%s' node.\n%s",
                name,
                traceback.format_exc(),
            )
    return out
