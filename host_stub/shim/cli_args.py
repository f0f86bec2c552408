"""Stand-in for ``comfy.cli_args``: ``args`` with ComfyUI's defaults for what packs read.

The flags the stub has no use for answer ``None``, as unset options do.
"""

from __future__ import annotations

from typing import Any


class _Args:
    disable_metadata = False
    preview_size = 512
    preview_method = "none"
    max_upload_size = 100.0
    cpu = False
    cache_lru = 0
    listen = "127.0.0.1"
    port = 8188
    verbose = "INFO"

    def __getattr__(self, name: str) -> Any:
        return None


args = _Args()
