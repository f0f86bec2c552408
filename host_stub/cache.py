"""ComfyUI's classic output cache, kept across runs of one host.

A node's key is built from its class, its ``IS_CHANGED`` result, its constant inputs and, through
its links, the same of every ancestor, each ancestor named by its position in a deterministic
walk rather than by its node id. So an unchanged node in an edited graph is found again, a
changed seed invalidates that node and its dependents only, and a node reached by a different
path keeps its entry. ``NaN`` (from ``IS_CHANGED``, or anything that cannot be compared) never
equals itself, so such a node always runs again. At the start of each run, entries no node of
the new prompt uses are dropped. Node instances are kept per (node id, class), as ComfyUI does.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from host_stub.node_call import CallContext, call_over_lists, gather_inputs, is_link
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


def ordered_ancestors(prompt: dict[str, Any], node_id: str) -> list[str]:
    """Ancestors in depth-first order over inputs sorted by name (no recursion: graphs can be deep)."""
    order: list[str] = []
    seen: set[str] = set()
    stack = [iter(sorted(prompt[node_id]["inputs"].items()))] if node_id in prompt else []
    while stack:
        for _name, value in stack[-1]:
            if is_link(value) and value[0] not in seen:
                seen.add(value[0])
                order.append(value[0])
                if value[0] in prompt:
                    stack.append(iter(sorted(prompt[value[0]]["inputs"].items())))
                break
        else:
            stack.pop()
    return order


class IsChanged:
    """``IS_CHANGED`` results for one run, computed once per node from its constant inputs only."""

    def __init__(self, prompt: dict[str, Any], registry: NodeRegistry):
        self.prompt = prompt
        self.registry = registry
        self.values: dict[str, Any] = {}

    def get(self, node_id: str) -> Any:
        if node_id not in self.values:
            self.values[node_id] = self._compute(node_id)
        return self.values[node_id]

    def _compute(self, node_id: str) -> Any:
        node = self.prompt[node_id]
        cls = self.registry.classes[node["class_type"]]
        if not hasattr(cls, "IS_CHANGED"):
            return False
        if "is_changed" in node:  # a prompt may carry it, and ComfyUI writes it back into the prompt
            return node["is_changed"]
        data, _missing = gather_inputs(node["inputs"], cls.INPUT_TYPES(), CallContext(node_id), None)
        try:
            value = call_over_lists(cls, data, "IS_CHANGED")
        except Exception as exc:  # noqa: BLE001 - ComfyUI turns any failure into "always changed"
            log.warning("WARNING: %s", exc)
            value = float("nan")
        node["is_changed"] = value
        return value


def node_key(prompt: dict[str, Any], node_id: str, registry: NodeRegistry, is_changed: IsChanged) -> Hashable:
    ancestors = ordered_ancestors(prompt, node_id)
    position = {a: i for i, a in enumerate(ancestors)}
    parts = [_immediate_signature(prompt, n, registry, is_changed, position) for n in [node_id, *ancestors]]
    return to_hashable(parts)


def _immediate_signature(
    prompt: dict[str, Any],
    node_id: str,
    registry: NodeRegistry,
    is_changed: IsChanged,
    position: dict[str, int],
) -> list[Any]:
    if node_id not in prompt:
        return [float("nan")]
    node = prompt[node_id]
    cls = registry.classes[node["class_type"]]
    signature: list[Any] = [node["class_type"], is_changed.get(node_id)]
    hidden = (cls.INPUT_TYPES().get("hidden") or {}).values()
    if getattr(cls, "NOT_IDEMPOTENT", False) or "UNIQUE_ID" in hidden:
        signature.append(node_id)  # such nodes depend on who they are, so their id is part of the key
    for name, value in sorted(node["inputs"].items()):
        if is_link(value):
            signature.append((name, ("ANCESTOR", position[value[0]], value[1])))
        else:
            signature.append((name, value))
    return signature


@dataclass
class OutputCache:
    outputs: dict[Hashable, list[list[Any]]] = field(default_factory=dict)
    ui: dict[Hashable, dict[str, Any]] = field(default_factory=dict)
    objects: dict[tuple[str, str], Any] = field(default_factory=dict)
    keys: dict[str, Hashable] = field(default_factory=dict)

    def start_run(self, prompt: dict[str, Any], registry: NodeRegistry) -> None:
        """Key every node of ``prompt`` and drop what none of them uses."""
        is_changed = IsChanged(prompt, registry)
        self.keys = {node_id: node_key(prompt, node_id, registry, is_changed) for node_id in prompt}
        used = set(self.keys.values())
        self.outputs = {k: v for k, v in self.outputs.items() if k in used}
        self.ui = {k: v for k, v in self.ui.items() if k in used}
        live = {(node_id, node["class_type"]) for node_id, node in prompt.items()}
        self.objects = {k: v for k, v in self.objects.items() if k in live}

    def get(self, node_id: str) -> list[list[Any]] | None:
        key = self.keys.get(node_id)
        return None if key is None else self.outputs.get(key)

    def set(self, node_id: str, outputs: list[list[Any]]) -> None:
        self.outputs[self.keys[node_id]] = outputs

    def get_ui(self, node_id: str) -> dict[str, Any] | None:
        key = self.keys.get(node_id)
        return None if key is None else self.ui.get(key)

    def set_ui(self, node_id: str, entry: dict[str, Any]) -> None:
        self.ui[self.keys[node_id]] = entry

    def instance(self, node_id: str, class_type: str, factory: Callable[[], Any]) -> Any:
        key = (node_id, class_type)
        if key not in self.objects:
            self.objects[key] = factory()
        return self.objects[key]

    def clear(self) -> None:
        self.outputs.clear()
        self.ui.clear()
        self.objects.clear()
        self.keys = {}
