"""Stand-in for ``comfy_execution.graph``: what packs import from it."""

from __future__ import annotations

from typing import Any

from host_stub.dynprompt import DynamicPrompt, NodeNotFoundError
from host_stub.graph import DependencyCycleError, NodeInputError
from host_stub.shim.graph_utils import ExecutionBlocker

__all__ = [
    "DependencyCycleError",
    "DynamicPrompt",
    "ExecutionBlocker",
    "NodeInputError",
    "NodeNotFoundError",
    "get_input_info",
]


def get_input_info(
    class_def: type, input_name: str, valid_inputs: dict[str, Any] | None = None
) -> tuple[Any, str | None, Any]:
    """``(type, "required" | "optional" | "hidden", options)`` of an input, or ``(None, None, None)``."""
    valid_inputs = valid_inputs or class_def.INPUT_TYPES()
    for category in ("required", "optional", "hidden"):
        group = valid_inputs.get(category) or {}
        if input_name in group:
            spec = group[input_name]
            return spec[0], category, (spec[1] if len(spec) > 1 else {})
    return None, None, None
