"""Test pack: node expansion, execution blockers and async nodes (uses the arith pack's nodes)."""

from .async_nodes import NODES as ASYNC_NODES
from .expand import NODES as EXPAND_NODES

NODE_CLASS_MAPPINGS = {**EXPAND_NODES, **ASYNC_NODES}
NODE_DISPLAY_NAME_MAPPINGS = {"RepeatAdd": "Repeat Add"}
