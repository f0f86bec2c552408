"""What the engine needs from its host, passed in rather than imported.

The engine stays host-agnostic: nodes build a :class:`HostServices` from ``i2v_nodes.host``
(ComfyUI's progress bar, interrupt and memory management when present), tests and scripts use
:func:`standalone`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from i2v_nodes.lazy import torch
from i2v_nodes.runtime.memory import devices


class ProgressLike(Protocol):
    def update(self, n: int = 1) -> None: ...
    def close(self) -> None: ...


class Registration(Protocol):
    """A model registered with the host's memory management."""

    def ensure_loaded(self, memory_required: int) -> None: ...
    def release(self) -> None: ...


def _never() -> bool:
    return False


def default_temp_dir() -> Path:
    """The temp folder outside a host: ``I2V_TEMP_DIR`` (default ``./temp``), as the output folder is."""
    return Path(os.environ.get("I2V_TEMP_DIR", "temp")).resolve()


@dataclass(frozen=True)
class HostServices:
    progress: Callable[[int, str], ProgressLike]
    check_interrupt: Callable[[], None]  # raises the host's interrupt exception after a cancel request
    free_bytes: Callable[[torch.device], int]  # a CPU device means system RAM
    total_bytes: Callable[[torch.device], int]
    # register(modules, device, size_bytes, on_unload, manages_placement) -> Registration
    register_model: Callable[..., Registration] | None = None
    # whether a cancel was requested, without raising (to stop a pipeline through its own flag)
    interrupt_requested: Callable[[], bool] = _never
    # the host's temp folder: what a run writes for itself (group offload's files), never kept
    temp_dir: Callable[[], Path] = default_temp_dir




class _NoProgress:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def standalone(progress: Callable[[int, str], Any] | None = None) -> HostServices:
    """Services with no host: OS memory figures, no progress bar, no interrupt."""
    return HostServices(
        progress=progress or (lambda total, desc: _NoProgress()),
        check_interrupt=lambda: None,
        free_bytes=devices.free_bytes,
        total_bytes=devices.total_bytes,
    )
