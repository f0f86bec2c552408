"""ComfyUI's output caches, kept across runs of one host: classic (the default) and LRU.

Entries (a node's outputs and its UI output) are found by the node's key (see
:mod:`host_stub.cache_keys`).

- Classic: at the start of each run, entries no node of the new prompt uses are dropped. The
  nodes an expansion adds live in a sub-cache of the node that expanded (by its id and class),
  rebuilt each time that node expands, so they are reused when it expands the same way again.
- LRU (``lru_size=N``, N > 0, ComfyUI's ``--cache-lru N``): one flat cache that keeps up to N
  entries (node results, counted over all nodes) across prompts, dropping those of the prompts
  used longest ago first, never those of the running prompt.

Node instances are kept per (node id, class), as ComfyUI does, for the nodes of the prompt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from host_stub.cache_keys import CacheKey, KeyBuilder
from host_stub.registry import NodeRegistry


@dataclass
class _Entry:
    outputs: list[list[Any]] | None = None
    ui: dict[str, Any] | None = None


@dataclass
class _Level:
    """One level of the classic cache: the keys of its nodes, their entries, and sub-caches."""

    keys: dict[str, CacheKey] = field(default_factory=dict)
    entries: dict[CacheKey, _Entry] = field(default_factory=dict)
    children: dict[tuple[str, str], _Level] = field(default_factory=dict)

    def rekey(
        self,
        node_ids: list[str],
        builder: KeyBuilder,
        nodes: Callable[[str], dict[str, Any]],
        drop: bool = True,
    ) -> None:
        """Key ``node_ids``; with ``drop``, keep only the entries and sub-caches they use."""
        known = {key: key for key in self.entries}
        # Reuse the stored key objects: later lookups then match by identity, not by deep comparison.
        self.keys = {n: known.get(k, k) for n in node_ids for k in (builder.key(n),)}
        if not drop:
            return
        used = set(self.keys.values())
        self.entries = {k: v for k, v in self.entries.items() if k in used}
        live = {(n, nodes(n)["class_type"]) for n in node_ids}
        self.children = {k: v for k, v in self.children.items() if k in live}


class OutputCache:
    def __init__(self, lru_size: int | None = None):
        self.lru_size = lru_size or None  # as in ComfyUI, --cache-lru 0 means the classic cache
        self.root = _Level()
        self.objects: dict[tuple[str, str], Any] = {}
        self.dynprompt: Any = None
        self.builder: KeyBuilder | None = None
        self.generation = 0
        self.min_generation = 0
        self.used: dict[CacheKey, int] = {}

    # --- runs -----------------------------------------------------------------------------------

    def start_run(self, dynprompt: Any, registry: NodeRegistry) -> None:
        """Key every node of the prompt and drop what the mode says to drop."""
        self.dynprompt = dynprompt
        self.builder = KeyBuilder(dynprompt, registry)
        prompt = dynprompt.get_original_prompt()
        self.root.rekey(list(prompt), self.builder, dynprompt.get_node, drop=self.lru_size is None)
        if self.lru_size is not None:
            self.root.children.clear()
            self.generation += 1
            self.used = {k: g for k, g in self.used.items() if k in self.root.entries}
            for key in self.root.keys.values():
                self.used[key] = self.generation
            self._evict()
        live = {(node_id, node["class_type"]) for node_id, node in prompt.items()}
        self.objects = {k: v for k, v in self.objects.items() if k in live}

    def expanded(self, parent_id: str, child_ids: list[str]) -> None:
        """Nodes ``child_ids`` were added to the running prompt by ``parent_id``."""
        assert self.builder is not None, "expanded() outside a run"
        if self.lru_size is not None:
            known = {key: key for key in self.root.entries}
            for child in child_ids:
                key = self.builder.key(child)
                self.root.keys[child] = known.get(key, key)
                self.used[key] = self.generation
            self._evict()
            return
        level = self._level_for(parent_id)
        assert level is not None, f"no cache level for node {parent_id}"
        sub = level.children.setdefault(
            (parent_id, self.dynprompt.get_node(parent_id)["class_type"]), _Level()
        )
        sub.rekey(child_ids, self.builder, self.dynprompt.get_node)

    def _evict(self) -> None:
        entries = self.root.entries
        assert self.lru_size is not None
        while len(entries) > self.lru_size and self.min_generation < self.generation:
            self.min_generation += 1
            for key in [k for k in entries if self.used.get(k, 0) < self.min_generation]:
                del entries[key]
                self.used.pop(key, None)

    def _level_for(self, node_id: str) -> _Level | None:
        if self.lru_size is not None or self.dynprompt is None:
            return self.root
        chain = []
        parent = self.dynprompt.get_parent_node_id(node_id)
        while parent is not None:
            chain.append(parent)
            parent = self.dynprompt.get_parent_node_id(parent)
        level: _Level | None = self.root
        for parent in reversed(chain):
            class_type = self.dynprompt.get_node(parent)["class_type"]
            level = level.children.get((parent, class_type)) if level is not None else None
        return level

    # --- entries --------------------------------------------------------------------------------

    def _entry(self, node_id: str, create: bool = False) -> _Entry | None:
        level = self._level_for(node_id)
        key = None if level is None else level.keys.get(node_id)
        if key is None:
            return None
        if self.lru_size is not None:
            self.used[key] = self.generation
        entry = level.entries.get(key)
        if entry is None and create:
            entry = level.entries[key] = _Entry()
        return entry

    def get(self, node_id: str) -> list[list[Any]] | None:
        entry = self._entry(node_id)
        return None if entry is None else entry.outputs

    def set(self, node_id: str, outputs: list[list[Any]]) -> None:
        entry = self._entry(node_id, create=True)
        assert entry is not None, f"node {node_id} has no cache key"
        entry.outputs = outputs

    def get_ui(self, node_id: str) -> dict[str, Any] | None:
        entry = self._entry(node_id)
        return None if entry is None else entry.ui

    def set_ui(self, node_id: str, value: dict[str, Any]) -> None:
        entry = self._entry(node_id, create=True)
        assert entry is not None, f"node {node_id} has no cache key"
        entry.ui = value

    def instance(self, node_id: str, class_type: str, factory: Callable[[], Any]) -> Any:
        key = (node_id, class_type)
        if key not in self.objects:
            self.objects[key] = factory()
        return self.objects[key]

    @property
    def outputs(self) -> dict[CacheKey, list[list[Any]]]:
        """The outputs held at the top level (all of them in LRU mode), by key."""
        return {k: e.outputs for k, e in self.root.entries.items() if e.outputs is not None}

    def clear(self) -> None:
        self.root = _Level()
        self.objects.clear()
        self.used.clear()
