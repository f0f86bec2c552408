"""Node expansion: a node that returns ``{"result": ..., "expand": graph}`` grows the running prompt.

The graph's nodes join the prompt as ephemeral nodes (their parent is the expanding node, their
display node the parent unless the graph sets ``override_display_id``). Its output nodes are
queued; the expanding node then waits for every node its result links to, and its outputs are
those links' values (:func:`resolve`). A link whose value is a list of several items stands for
all of them. Node ids must be new: :class:`~host_stub.shim.graph_utils.GraphBuilder` makes them
so (``"<node>.<call>.<builder>.<n>"``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from host_stub.dynprompt import DynamicPrompt
from host_stub.graph import ExecutionList, is_output_node
from host_stub.node_call import Outputs, is_link
from host_stub.registry import NodeRegistry
from host_stub.returns import Items, Returns


class DuplicateNodeError(Exception):
    type_name = "execution.DuplicateNodeError"  # ComfyUI's name for it in execution errors


def add_graphs(
    node_id: str, returns: Returns, dynprompt: DynamicPrompt, registry: NodeRegistry
) -> tuple[list[str], list[str]]:
    """Add the expansion's graphs to the prompt; ``(new node ids, new output node ids)``."""
    new_ids: list[str] = []
    outputs: list[str] = []
    for graph, _values in returns.calls:
        if graph is None:
            continue
        for child in graph:
            if dynprompt.has_node(child):
                raise DuplicateNodeError(
                    f"Attempt to add duplicate node {child}. Ensure node ids are unique and "
                    "deterministic or use graph_utils.GraphBuilder."
                )
        for child, info in graph.items():
            cls = registry.get(info.get("class_type", ""))
            if cls is None:
                raise KeyError(
                    f"node {child} of the expanded graph has unknown class {info.get('class_type')!r}"
                )
            info.setdefault("inputs", {})
            dynprompt.add_ephemeral_node(child, info, node_id, info.get("override_display_id", node_id))
            new_ids.append(child)
            if is_output_node(cls):
                outputs.append(child)
    return new_ids, outputs


def queue(node_id: str, returns: Returns, output_ids: list[str], plan: ExecutionList) -> None:
    """Queue the new output nodes and make ``node_id`` wait for what its result links to."""
    for child in output_ids:
        plan.add_node(child)
    for link in returns.links():
        plan.add_strong_link(link[0], node_id)


def resolve(returns: Returns, outputs_of: Callable[[str], Outputs | None]) -> list[tuple[Any, ...]]:
    """Each call's outputs, with the expansion's links replaced by what their nodes produced."""

    def value(item: Any) -> Any:
        if not is_link(item):
            return item
        source = outputs_of(item[0])
        if source is None:
            raise RuntimeError(f"node {item[0]} of the expansion has no outputs")
        values = source[int(item[1])]
        return values[0] if len(values) == 1 else Items(values)

    return [values if graph is None else tuple(value(v) for v in values) for graph, values in returns.calls]
