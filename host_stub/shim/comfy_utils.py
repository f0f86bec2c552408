"""Stand-in for ``comfy.utils``: the progress bar packs report steps through.

As in ComfyUI, a bar takes the global hook that is set when it is created, and every update calls
it. The host's hook checks the interrupt flag first (as ComfyUI's server hook does), so a cancel
lands at the next progress step of any pack that reports progress.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ProgressHook = Callable[..., None]

PROGRESS_BAR_ENABLED = True
PROGRESS_BAR_HOOK: ProgressHook | None = None


def set_progress_bar_enabled(enabled: bool) -> None:
    global PROGRESS_BAR_ENABLED
    PROGRESS_BAR_ENABLED = enabled


def set_progress_bar_global_hook(function: ProgressHook | None) -> None:
    global PROGRESS_BAR_HOOK
    PROGRESS_BAR_HOOK = function


class ProgressBar:
    def __init__(self, total: int, node_id: str | None = None):
        self.total = total
        self.current = 0
        self.hook = PROGRESS_BAR_HOOK
        self.node_id = node_id

    def update_absolute(self, value: float, total: float | None = None, preview: Any = None) -> None:
        if total is not None:
            self.total = total
        self.current = min(value, self.total)
        if self.hook is not None:
            self.hook(self.current, self.total, preview, node_id=self.node_id)

    def update(self, value: float) -> None:
        self.update_absolute(self.current + value)
