"""Stand-in for ``comfy_execution.utils``: which node (and list item) the current code runs for.

The host sets the context around every call of a node function; async node functions run as
tasks that carry their own copy, so concurrent nodes each see themselves.
"""

from __future__ import annotations

import contextvars
from typing import Any, NamedTuple


class ExecutionContext(NamedTuple):
    prompt_id: str
    node_id: str
    list_index: int | None


current_executing_context: contextvars.ContextVar[ExecutionContext | None] = contextvars.ContextVar(
    "current_executing_context", default=None
)


def get_executing_context() -> ExecutionContext | None:
    return current_executing_context.get(None)


class CurrentNodeContext:
    """``with CurrentNodeContext(prompt_id, node_id, list_index):`` marks the code as that node's."""

    def __init__(self, prompt_id: str, node_id: str, list_index: int | None = None):
        self.context = ExecutionContext(prompt_id, node_id, list_index)
        self.token: contextvars.Token[ExecutionContext | None] | None = None

    def __enter__(self) -> CurrentNodeContext:
        self.token = current_executing_context.set(self.context)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.token is not None:
            current_executing_context.reset(self.token)
            self.token = None
