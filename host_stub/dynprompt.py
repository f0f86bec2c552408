"""The running prompt: the prompt as queued plus the nodes that expansions added while it runs.

Packs receive it as the ``DYNPROMPT`` hidden input (``comfy_execution.graph.DynamicPrompt``).
Each added ("ephemeral") node records the node that expanded into it (its parent) and the node
the editor should show it as (its display node: the parent unless the graph says otherwise).
"""

from __future__ import annotations

from typing import Any


class NodeNotFoundError(Exception):
    pass


class DynamicPrompt:
    def __init__(self, original_prompt: dict[str, Any]):
        self.original_prompt = original_prompt
        self.ephemeral_prompt: dict[str, Any] = {}
        self.ephemeral_parents: dict[str, str] = {}
        self.ephemeral_display: dict[str, str] = {}

    def get_node(self, node_id: str) -> dict[str, Any]:
        if node_id in self.ephemeral_prompt:
            return self.ephemeral_prompt[node_id]
        if node_id in self.original_prompt:
            return self.original_prompt[node_id]
        raise NodeNotFoundError(f"Node {node_id} not found")

    def has_node(self, node_id: str) -> bool:
        return node_id in self.original_prompt or node_id in self.ephemeral_prompt

    def add_ephemeral_node(
        self, node_id: str, node_info: dict[str, Any], parent_id: str, display_id: str
    ) -> None:
        self.ephemeral_prompt[node_id] = node_info
        self.ephemeral_parents[node_id] = parent_id
        self.ephemeral_display[node_id] = display_id

    def get_real_node_id(self, node_id: str) -> str:
        """The node of the queued prompt that (through expansions) created ``node_id``."""
        while node_id in self.ephemeral_parents:
            node_id = self.ephemeral_parents[node_id]
        return node_id

    def get_parent_node_id(self, node_id: str) -> str | None:
        return self.ephemeral_parents.get(node_id)

    def get_display_node_id(self, node_id: str) -> str:
        seen = set()
        while node_id in self.ephemeral_display and node_id not in seen:
            seen.add(node_id)
            node_id = self.ephemeral_display[node_id]
        return node_id

    def all_node_ids(self) -> set[str]:
        return set(self.original_prompt) | set(self.ephemeral_prompt)

    def get_original_prompt(self) -> dict[str, Any]:
        return self.original_prompt

    def is_ephemeral(self, node_id: str) -> bool:
        return node_id in self.ephemeral_prompt
