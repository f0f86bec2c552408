"""A pipeline streamed per phase: only the component that runs now is resident.

The streamed components are the encoders and the denoisers, the large ones that each phase needs
alone (a text encoder to encode, each expert for its own steps). Their weights are made file-backed
(:mod:`.residency`), and a forward pre-hook on each releases the others when it starts: the text
encoder goes when the first expert starts, the high-noise expert when the low-noise one does, and a
new prompt's encoding releases the experts. A released component comes back on its own, page by page,
when it next runs, with the very same bytes: the frames of a streamed run are those of a resident one.

The VAE and the other small parts stay resident (their encode and decode are not forward calls).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch

from i2v_nodes.families.contract.spec import Roles
from i2v_nodes.runtime.loading import residency

log = logging.getLogger(__name__)


@dataclass
class Streaming:
    """The hooks streaming one pipeline, and which of its components ran last."""

    components: dict[str, torch.nn.Module]
    hooks: list[Any] = field(default_factory=list)
    resident: set[str] = field(default_factory=set)
    spilled: int = 0  # bytes of converted weights moved to a spill file
    released: int = 0  # bytes released so far

    def entering(self, role: str) -> None:
        """``role`` starts a forward: release every other streamed component that is resident."""
        if self.resident == {role}:
            return
        for other in sorted(self.resident - {role}):
            self.release(other)
        self.resident = {role}

    def release(self, role: str) -> None:
        freed = residency.release(self.components[role])
        self.released += freed
        self.resident.discard(role)
        log.debug("released %s (%.1f MiB)", role, freed / 2**20)

    def release_all(self) -> None:
        for role in sorted(self.resident):
            self.release(role)

    def remove(self) -> None:
        for hook in self.hooks:
            hook.remove()
        self.hooks.clear()


def streamed_roles(roles: Roles) -> tuple[str, ...]:
    return (*roles.encoders, *roles.denoisers)


def stream(pipe: Any, roles: Roles) -> Streaming:
    """Stream ``pipe`` per phase: its encoders and denoisers made file-backed, released, and hooked."""
    components = {role: module for role in streamed_roles(roles)
                  if isinstance(module := getattr(pipe, role, None), torch.nn.Module)}
    streaming = Streaming(components)
    for role, module in components.items():
        streaming.spilled += residency.make_file_backed(module)
        streaming.hooks.append(module.register_forward_pre_hook(_hook(streaming, role)))
    streaming.resident = set(components)
    streaming.release_all()
    log.info("streaming %s per phase (%.1f MiB of converted weights spilled)", ", ".join(components),
             streaming.spilled / 2**20)
    return streaming


def _hook(streaming: Streaming, role: str):
    def enter(_module: torch.nn.Module, _args: Any) -> None:
        streaming.entering(role)

    return enter
