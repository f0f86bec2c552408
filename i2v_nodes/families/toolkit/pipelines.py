"""Another stock pipeline class on a loaded pipeline's components (no weights copied)."""

from __future__ import annotations

import inspect
from typing import Any

# What a loaded pipeline keeps besides its components: its progress-bar setting and the bookkeeping of
# diffusers' offload hooks (the hooks themselves sit on the shared modules)
_KEPT = ("_progress_bar_config", "_all_hooks", "_offload_gpu_id", "_offload_device")


def on_same_components(pipe: Any, cls: type) -> Any:
    """A ``cls`` pipeline made of ``pipe``'s components (the same module objects, so LoRAs, hooks,
    offload and the scheduler set for this call hold), with ``pipe``'s progress and offload settings."""
    accepted = inspect.signature(cls.__init__).parameters
    made = cls(**{name: part for name, part in pipe.components.items() if name in accepted})
    for name in _KEPT:
        if name in pipe.__dict__:
            made.__dict__[name] = pipe.__dict__[name]
    return made
