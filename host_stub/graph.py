"""The prompt as a graph: what to run, and in which order.

:class:`ExecutionList` keeps the nodes still to run and what each waits for. Adding an output
node pulls in its ancestors through non-lazy links, stopping at nodes whose outputs are
cached; a lazy input is only followed when the node asks for it (``check_lazy_status``), and
the node then waits for it like any other input. Nodes added by an expansion join the same
list. A node whose async work is still running holds an external block until it finishes; the
list waits for such blocks only when nothing else is ready.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from host_stub.node_call import input_info, is_link
from host_stub.registry import NodeRegistry


class DependencyCycleError(Exception):
    # ComfyUI reports this error type with this name in execution errors.
    type_name = "graph.DependencyCycleError"


class NodeInputError(Exception):
    pass


def is_output_node(cls: type) -> bool:
    return getattr(cls, "OUTPUT_NODE", False) is True


def is_async_node(cls: type) -> bool:
    function = getattr(cls, str(getattr(cls, "FUNCTION", "")), None)
    return function is not None and inspect.iscoroutinefunction(function)


def linked_sources(node: dict[str, Any]) -> list[tuple[str, Any]]:
    """``(input name, source node id)`` for each linked input, in input order."""
    return [
        (name, value[0])
        for name, value in node.get("inputs", {}).items()
        if isinstance(value, list) and len(value) == 2
    ]


class ExecutionList:
    def __init__(self, dynprompt: Any, registry: NodeRegistry, is_cached: Callable[[str], bool]):
        self.dynprompt = dynprompt
        self.registry = registry
        self.is_cached = is_cached
        self.pending: dict[str, None] = {}  # insertion-ordered set
        self.waits_on: dict[str, set[str]] = {}
        self.blocks: dict[str, set[str]] = {}
        self.external: dict[str, int] = {}  # node id -> async works still running for it
        self.unblocked = asyncio.Event()

    def _class(self, node_id: str) -> type:
        return self.registry.classes[self.dynprompt.get_node(node_id)["class_type"]]

    def add_node(self, node_id: str) -> None:
        """Queue ``node_id`` and, through non-lazy links, every uncached ancestor."""
        stack = [node_id]
        links = []
        while stack:
            current = stack.pop()
            if current in self.pending:
                continue
            self.pending[current] = None
            self.waits_on[current] = set()
            self.blocks[current] = set()
            input_types = self._class(current).INPUT_TYPES()
            for name, value in self.dynprompt.get_node(current)["inputs"].items():
                if not is_link(value):
                    continue
                _kind, _category, options = input_info(input_types, name)
                if not options.get("lazy") and not self.is_cached(value[0]):
                    stack.append(value[0])
                    links.append((value[0], current))
        for source, target in links:
            self.add_strong_link(source, target)

    def add_strong_link(self, source: str, target: str) -> None:
        if self.is_cached(source):
            return
        self.add_node(source)
        self.waits_on[target].add(source)
        self.blocks[source].add(target)

    def make_input_strong_link(self, node_id: str, input_name: str) -> None:
        """Make ``node_id`` wait for the node behind its (lazy) input ``input_name``."""
        value = self.dynprompt.get_node(node_id)["inputs"].get(input_name)
        if value is None:
            raise NodeInputError(
                f"Node {node_id} says it needs input {input_name}, but there is no input to that node at all"
            )
        if not is_link(value):
            raise NodeInputError(
                f"Node {node_id} says it needs input {input_name}, but that value is a constant"
            )
        self.add_strong_link(value[0], node_id)

    # --- async work held outside the list -------------------------------------------------------

    def add_external_block(self, node_id: str) -> Callable[[], None]:
        """Hold ``node_id`` back until the returned function is called."""
        self.external[node_id] = self.external.get(node_id, 0) + 1

        def release() -> None:
            self.external[node_id] -= 1
            if not self.external[node_id]:
                del self.external[node_id]
            self.unblocked.set()

        return release

    async def wait_for_ready(self, poll: Callable[[], None], interval: float = 0.1) -> None:
        """While nothing is ready but async work runs, wait for it; ``poll`` runs every ``interval``."""
        while not self.ready() and self.external:
            poll()
            try:
                await asyncio.wait_for(self.unblocked.wait(), interval)
            except asyncio.TimeoutError:
                continue
            self.unblocked.clear()

    # --- picking --------------------------------------------------------------------------------

    def is_empty(self) -> bool:
        return not self.pending

    def ready(self) -> list[str]:
        return [n for n in self.pending if not self.waits_on[n] and n not in self.external]

    def next_node(self) -> str | None:
        """The next node to run, or None when every pending node waits (a cycle)."""
        ready = self.ready()
        if not ready:
            return None
        # Like ComfyUI: an output or async node first (async work then overlaps the rest), then
        # what feeds an output node, so results show up early.
        outputs = {n for n in self.pending if is_output_node(self._class(n))}
        for candidates in (
            [n for n in ready if n in outputs or is_async_node(self._class(n))],
            [n for n in ready if self.blocks[n] & outputs],
            [n for n in ready if any(self.blocks[b] & outputs for b in self.blocks[n])],
        ):
            if candidates:
                return candidates[0]
        return ready[0]

    def complete(self, node_id: str) -> None:
        del self.pending[node_id]
        for target in self.blocks.pop(node_id):
            self.waits_on[target].discard(node_id)
        del self.waits_on[node_id]

    def nodes_in_cycle(self) -> list[str]:
        """Pending nodes left after peeling off every node nothing pending waits on."""
        waiting = {n: set(w) for n, w in self.waits_on.items()}
        while True:
            free = [n for n, w in waiting.items() if not w]
            if not free:
                return list(waiting)
            for node in free:
                del waiting[node]
            for others in waiting.values():
                others.difference_update(free)

    def blamed_for_cycle(self) -> str:
        """ComfyUI's choice: static cycles fail validation, so blame the node a dynamic one came from."""
        cycle = self.nodes_in_cycle()
        for node_id in cycle:
            display = self.dynprompt.get_display_node_id(node_id)
            if display != node_id:
                return display
        return cycle[0]
