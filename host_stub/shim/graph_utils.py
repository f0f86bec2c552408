"""Stand-in for ``comfy_execution.graph_utils``: building graphs for node expansion, and blockers.

A node that returns ``{"result": ..., "expand": graph}`` adds ``graph`` (API format) to the running
prompt. :class:`GraphBuilder` writes such graphs with ids that cannot clash: by default each
builder takes the prefix ``"<expanding node id>.<call index>.<builder index>."``, which the host
sets before each call of a node, so the nodes of an expansion get ids such as ``"5.0.0.1"``.
"""

from __future__ import annotations

from typing import Any


def is_link(obj: Any) -> bool:
    """``["<node id>", <output index>]``: a link in an API-format prompt."""
    return (
        isinstance(obj, list)
        and len(obj) == 2
        and isinstance(obj[0], str)
        and isinstance(obj[1], (int, float))
    )


class ExecutionBlocker:
    """Returned in place of an output: every node that receives it is skipped for that item.

    With a message, each blocked node is also reported as an execution error (the run goes on);
    with ``None`` the block is silent. Prefer lazy inputs where they can do the job.
    """

    def __init__(self, message: str | None):
        self.message = message

    def __repr__(self) -> str:
        return f"ExecutionBlocker({self.message!r})"


class Node:
    """One node of a :class:`GraphBuilder` graph."""

    def __init__(self, id: str, class_type: str, inputs: dict[str, Any]):  # noqa: A002 - ComfyUI's name
        self.id = id
        self.class_type = class_type
        self.inputs = inputs
        self.override_display_id: str | None = None

    def out(self, index: int) -> list[Any]:
        return [self.id, index]

    def set_input(self, key: str, value: Any) -> None:
        if value is None:
            self.inputs.pop(key, None)
        else:
            self.inputs[key] = value

    def get_input(self, key: str) -> Any:
        return self.inputs.get(key)

    def set_override_display_id(self, override_display_id: str | None) -> None:
        self.override_display_id = override_display_id

    def serialize(self) -> dict[str, Any]:
        data: dict[str, Any] = {"class_type": self.class_type, "inputs": self.inputs}
        if self.override_display_id is not None:
            data["override_display_id"] = self.override_display_id
        return data


class GraphBuilder:
    _default_prefix_root = ""
    _default_prefix_call_index = 0
    _default_prefix_graph_index = 0

    def __init__(self, prefix: str | None = None):
        self.prefix = GraphBuilder.alloc_prefix() if prefix is None else prefix
        self.nodes: dict[str, Node] = {}
        self.id_gen = 1

    @classmethod
    def set_default_prefix(cls, prefix_root: str, call_index: int, graph_index: int = 0) -> None:
        cls._default_prefix_root = prefix_root
        cls._default_prefix_call_index = call_index
        cls._default_prefix_graph_index = graph_index

    @classmethod
    def alloc_prefix(
        cls, root: str | None = None, call_index: int | None = None, graph_index: int | None = None
    ) -> str:
        root = GraphBuilder._default_prefix_root if root is None else root
        call_index = GraphBuilder._default_prefix_call_index if call_index is None else call_index
        graph_index = GraphBuilder._default_prefix_graph_index if graph_index is None else graph_index
        GraphBuilder._default_prefix_graph_index += 1
        return f"{root}.{call_index}.{graph_index}."

    def node(self, class_type: str, id: str | None = None, **kwargs: Any) -> Node:  # noqa: A002
        if id is None:
            id = str(self.id_gen)
            self.id_gen += 1
        full_id = self.prefix + id
        if full_id not in self.nodes:
            self.nodes[full_id] = Node(full_id, class_type, kwargs)
        return self.nodes[full_id]

    def lookup_node(self, id: str) -> Node | None:  # noqa: A002
        return self.nodes.get(self.prefix + id)

    def finalize(self) -> dict[str, dict[str, Any]]:
        return {node_id: node.serialize() for node_id, node in self.nodes.items()}

    def replace_node_output(self, node_id: str, index: int, new_value: Any) -> None:
        """Point every input linked to output ``index`` of ``node_id`` at ``new_value`` (None: unlink)."""
        target = [self.prefix + node_id, index]
        for node in self.nodes.values():
            for key, value in list(node.inputs.items()):
                if is_link(value) and value[0] == target[0] and value[1] == index:
                    node.set_input(key, new_value)

    def remove_node(self, id: str) -> None:  # noqa: A002
        del self.nodes[self.prefix + id]


def add_graph_prefix(
    graph: dict[str, Any], outputs: tuple[Any, ...] | list[Any], prefix: str
) -> tuple[dict[str, Any], tuple[Any, ...]]:
    """``graph`` with ``prefix`` before every node id (and link), and ``outputs`` with the same links."""

    def relink(value: Any) -> Any:
        return [prefix + value[0], value[1]] if is_link(value) else value

    new_graph = {
        prefix + node_id: {
            "class_type": node["class_type"],
            "inputs": {name: relink(value) for name, value in node.get("inputs", {}).items()},
        }
        for node_id, node in graph.items()
    }
    return new_graph, tuple(relink(value) for value in outputs)
