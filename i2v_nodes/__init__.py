"""i2v-nodes: image-to-video nodes for ComfyUI-style graph hosts.

The node mappings are imported on first use (``i2v_nodes.NODE_CLASS_MAPPINGS``), so a command that
needs no node (``python -m i2v_nodes plan``) does not import them.
"""

from typing import Any

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in __all__:
        from i2v_nodes import nodes

        return getattr(nodes, name)
    raise AttributeError(f"module 'i2v_nodes' has no attribute {name!r}")
