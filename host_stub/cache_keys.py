"""Cache keys: ComfyUI's input signature of a node, with ``IS_CHANGED`` folded in.

A node's key is built from its class, its ``IS_CHANGED`` result, its constant inputs and, through
its links, the same of every ancestor, each ancestor named by its position in a deterministic
walk rather than by its node id. So an unchanged node in an edited graph is found again, a
changed seed invalidates that node and its dependents only, and a node reached by a different
path keeps its entry. ``NaN`` (from ``IS_CHANGED``, or anything that cannot be compared) never
equals itself, so such a node always runs again. Nodes added by expansions are keyed the same
way, from the running prompt.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from host_stub import v3
from host_stub.node_call import CallContext, call_over_lists, gather_inputs, hidden_values, is_link
from host_stub.registry import NodeRegistry

log = logging.getLogger(__name__)


class _NeverEqual:
    """Stands for NaN and for values that cannot be compared: equal only to itself."""

    __slots__ = ()


def to_hashable(value: Any) -> Hashable:
    if isinstance(value, float) and math.isnan(value):
        return _NeverEqual()
    if isinstance(value, (int, float, str, bool, type(None))):
        return value
    if isinstance(value, Mapping):
        try:
            items = sorted(value.items())
        except TypeError:
            return _NeverEqual()
        return ("map", tuple((to_hashable(k), to_hashable(v)) for k, v in items))
    if isinstance(value, (list, tuple)):
        return ("seq", tuple(to_hashable(v) for v in value))
    return _NeverEqual()


class IsChanged:
    """``IS_CHANGED`` results for one run, computed once per node from its constant inputs only."""

    def __init__(self, dynprompt: Any, registry: NodeRegistry):
        self.dynprompt = dynprompt
        self.registry = registry
        self.values: dict[str, Any] = {}

    def get(self, node_id: str) -> Any:
        if node_id not in self.values:
            self.values[node_id] = self._compute(node_id)
        return self.values[node_id]

    def _compute(self, node_id: str) -> Any:
        node = self.dynprompt.get_node(node_id)
        cls = self.registry.classes[node["class_type"]]
        function = v3.optional_function(cls, "IS_CHANGED")
        if function is None:
            return False
        if "is_changed" in node:  # a prompt may carry it, and ComfyUI writes it back into the prompt
            return node["is_changed"]
        ctx = CallContext(node_id)
        data, _missing = gather_inputs(node["inputs"], cls.INPUT_TYPES(), ctx, None)
        try:
            value = call_over_lists(cls, data, function, hidden=hidden_values(cls, ctx))
        except Exception as exc:  # noqa: BLE001 - ComfyUI turns any failure into "always changed"
            log.warning("WARNING: %s", exc)
            value = float("nan")
        node["is_changed"] = value
        return value


class CacheKey:
    """A node's signature with its hash computed once: keys are large (they include every ancestor)."""

    __slots__ = ("parts", "_hash")

    def __init__(self, parts: tuple[Any, ...]):
        self.parts = parts
        self._hash = hash(parts)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or (
            isinstance(other, CacheKey) and self._hash == other._hash and self.parts == other.parts
        )


@dataclass
class _NodeParts:
    """What a node contributes to the keys of its descendants and itself, computed once per run."""

    head: tuple[Any, ...]  # (class, IS_CHANGED result, node id or None)
    inputs: tuple[tuple[str, bool, Any, Any], ...]  # (name, is_link, value or source id, None or socket)
    sources: tuple[str, ...]  # linked node ids, in input-name order


class KeyBuilder:
    """ComfyUI's input signature: the node's parts, then each ancestor's in a depth-first walk over
    inputs sorted by name, with links written as the position of their source in that walk.

    Each node of a signature is one flat tuple (fixed-width fields, so the flattening is
    unambiguous): keys of deep graphs hold many of them, and fewer objects that outlive the run
    keep the garbage collector's full passes rare.
    """

    def __init__(self, dynprompt: Any, registry: NodeRegistry):
        self.dynprompt = dynprompt
        self.registry = registry
        self.is_changed = IsChanged(dynprompt, registry)
        self.parts: dict[str, _NodeParts] = {}

    def _parts(self, node_id: str) -> _NodeParts:
        if node_id not in self.parts:
            self.parts[node_id] = self._compute_parts(node_id)
        return self.parts[node_id]

    def _compute_parts(self, node_id: str) -> _NodeParts:
        if not self.dynprompt.has_node(node_id):  # a dangling link: nothing to compare, never cached
            return _NodeParts((_NeverEqual(), None, None), (), ())
        node = self.dynprompt.get_node(node_id)
        cls = self.registry.classes[node["class_type"]]
        hidden = (cls.INPUT_TYPES().get("hidden") or {}).values()
        # Nodes that depend on who they are (NOT_IDEMPOTENT, or given their UNIQUE_ID) are keyed by id.
        keyed_by_id = getattr(cls, "NOT_IDEMPOTENT", False) or "UNIQUE_ID" in hidden
        is_changed = to_hashable(self.is_changed.get(node_id))
        head = (node["class_type"], is_changed, node_id if keyed_by_id else None)
        inputs = []
        for name, value in sorted(node["inputs"].items()):
            if is_link(value):
                inputs.append((name, True, value[0], value[1]))
            else:
                inputs.append((name, False, to_hashable(value), None))
        sources = tuple(source for _name, linked, source, _socket in inputs if linked)
        return _NodeParts(head, tuple(inputs), sources)

    def ancestors(self, node_id: str) -> list[str]:
        """Depth-first, inputs in name order, each ancestor once (no recursion: graphs can be deep)."""
        order: list[str] = []
        seen: set[str] = set()
        stack = [iter(self._parts(node_id).sources)]
        while stack:
            for source in stack[-1]:
                if source not in seen:
                    seen.add(source)
                    order.append(source)
                    stack.append(iter(self._parts(source).sources))
                    break
            else:
                stack.pop()
        return order

    def key(self, node_id: str) -> CacheKey:
        ancestors = self.ancestors(node_id)
        position = {a: i for i, a in enumerate(ancestors)}
        signature = []
        for member in (node_id, *ancestors):
            parts = self._parts(member)
            flat = list(parts.head)
            for name, linked, value, socket in parts.inputs:
                flat += (name, linked, position[value], socket) if linked else (name, linked, value, socket)
            signature.append(tuple(flat))
        return CacheKey(tuple(signature))
