"""ComfyUI entry point: lets this repository be cloned straight into ``ComfyUI/custom_nodes/``.

ComfyUI imports this file as a package named after the folder. To keep one copy of the pack in
the process (one model cache, one interrupt flag) whether it is loaded by ComfyUI, by
``host_stub`` or by tests, this puts the repository on ``sys.path`` and imports ``i2v_nodes``
by its absolute name.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from i2v_nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
