"""A pipeline streamed per phase: only the component that runs now is resident.

Every weighted component's weights are made file-backed (:mod:`.residency`), so releasing one is
only a hint to the kernel: a released component comes back on its own, page by page, when it next
runs, with the very same bytes, and the frames of a streamed run are those of a resident one. A
forward pre-hook on each encoder and denoiser releases all the others when it starts: the text
encoder goes when the first expert starts, the high-noise expert when the low-noise one does, a new
prompt's encoding releases the experts. The prompt's encoders are released as soon as it is encoded
(``release_all``), so the VAE encodes the image alone. The VAE and decoders, whose encode and decode
are not forward calls, are faulted in when used and released when an encoder or denoiser next starts.
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
    current: str | None = None  # the hooked component that ran last (None: all released since)
    spilled: int = 0  # bytes of converted weights moved to a spill file
    released: int = 0  # bytes released so far
    entered: list[str] = field(default_factory=list)  # hooked components in the order they started

    def entering(self, role: str) -> None:
        """``role`` starts a forward: release every other component, unless it ran last already."""
        if self.current == role:
            return
        self.entered.append(role)
        self._release(other for other in self.components if other != role)
        self.current = role

    def release_all(self) -> None:
        self._release(self.components)
        self.current = None

    def _release(self, roles: Any) -> None:
        memory_map = residency.MemoryMap()  # one reading of the mappings for all of them
        for role in roles:
            freed = residency.release(self.components[role], memory_map)
            self.released += freed
            log.debug("released %s (%.1f MiB)", role, freed / 2**20)

    def remove(self) -> None:
        for hook in self.hooks:
            hook.remove()
        self.hooks.clear()


def hooked_roles(roles: Roles) -> tuple[str, ...]:
    """The components whose forward calls mark a phase: the encoders and the denoisers."""
    return (*roles.encoders, *roles.denoisers)


def stream(pipe: Any, roles: Roles) -> Streaming:
    """Stream ``pipe`` per phase: every weighted component file-backed and released, the encoders and
    denoisers hooked."""
    components = {role: module for role in roles.weighted
                  if isinstance(module := getattr(pipe, role, None), torch.nn.Module)}
    streaming = Streaming(components)
    for role, module in components.items():
        streaming.spilled += residency.make_file_backed(module)
        if role in hooked_roles(roles):
            streaming.hooks.append(module.register_forward_pre_hook(_hook(streaming, role)))
    streaming.release_all()
    log.info("streaming %s per phase (%.1f MiB of converted weights spilled)", ", ".join(components),
             streaming.spilled / 2**20)
    return streaming


def _hook(streaming: Streaming, role: str):
    def enter(_module: torch.nn.Module, _args: Any) -> None:
        streaming.entering(role)

    return enter
