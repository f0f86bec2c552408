"""torch, imported on first use.

``python -m i2v_nodes plan`` answers published models from data (configs, parameter counts, the shipped
trace table) and needs no tensor, yet ``import torch`` alone takes 1.1-1.7 s on a small machine: most of
a cold answer. The modules the planner imports therefore take ``torch`` from here (``from i2v_nodes.lazy
import torch``): a module object that imports torch the first time one of its attributes is read
(``lazy_loader``, over the standard library's ``importlib.util.LazyLoader``). Where torch is imported
already (ComfyUI, the nodes, the tests) this is torch itself.

Python 3.11's lazy modules are not thread-safe on their first touch, so whatever runs nodes on worker
threads imports torch first (``i2v_nodes.nodes`` does, plainly); and a plain ``import torch`` anywhere
also loads it (the import system reads the module's ``__spec__``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
else:
    import lazy_loader

    torch = lazy_loader.load("torch")

__all__ = ["torch"]
