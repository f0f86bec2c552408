"""Test pack: one node per ComfyUI feature the stub must honour (lazy inputs, lists, validation,
IS_CHANGED, hidden inputs, widgets for the UI format, images)."""

from .lists import NODES as LIST_NODES
from .misc import NODES as MISC_NODES
from .widgets import NODES as WIDGET_NODES

NODE_CLASS_MAPPINGS = {**LIST_NODES, **MISC_NODES, **WIDGET_NODES}
NODE_DISPLAY_NAME_MAPPINGS = {"Sampler": "Test Sampler"}
