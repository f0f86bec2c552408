"""The node classes a host knows: its core nodes plus those of every pack it loaded."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

CORE_MODULE = "nodes"  # what ComfyUI reports as python_module for its built-in nodes


@dataclass
class NodeRegistry:
    classes: dict[str, type] = field(default_factory=dict)
    display_names: dict[str, str] = field(default_factory=dict)
    python_modules: dict[str, str] = field(default_factory=dict)
    core: set[str] = field(default_factory=set)

    def add_core(self, mappings: dict[str, type], display_names: dict[str, str]) -> None:
        for name, cls in mappings.items():
            self.classes[name] = cls
            self.python_modules[name] = CORE_MODULE
            self.core.add(name)
        self.display_names.update(display_names)

    def add_pack(
        self, python_module: str, mappings: dict[str, type], display_names: dict[str, str]
    ) -> list[str]:
        """Register a pack's classes; returns the names it added. Core names cannot be replaced."""
        added = []
        for name, cls in mappings.items():
            if name in self.core:
                # ComfyUI passes its built-in names as `ignore` when loading custom nodes.
                log.warning("%s: node %r has the name of a core node and is ignored", python_module, name)
                continue
            if name in self.classes:
                log.warning(
                    "%s: node %r replaces the one from %s", python_module, name, self.python_modules[name]
                )
            self.classes[name] = cls
            self.python_modules[name] = python_module
            added.append(name)
        self.display_names.update(display_names)
        return added

    def get(self, name: str) -> type | None:
        return self.classes.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self.classes

    def display_name(self, name: str) -> str:
        return self.display_names.get(name, name)
