"""Calling a node's function inside the execution loop, where async functions run concurrently.

As in ComfyUI, an ``async def`` function becomes a task on the run's event loop; it gets one
chance to finish at once, otherwise the task is handed back and the node waits for it while
other nodes run. A call with an ``ExecutionBlocker`` among its inputs is skipped and the blocker
stands for its result. Every call runs in its node's execution context
(``comfy_execution.utils``), which progress reports fall back on to find their node.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from host_stub import v3
from host_stub.node_call import call_plan
from host_stub.returns import blocker_types
from host_stub.shim.execution_utils import CurrentNodeContext


def _blocker_in(kwargs: dict[str, Any], input_is_list: bool, kinds: tuple[type, ...]) -> Any:
    for value in kwargs.values():
        if input_is_list and isinstance(value, list):
            value = next((item for item in value if isinstance(item, kinds)), value)
        if isinstance(value, kinds):
            return value
    return None


async def map_calls(
    target: Any,
    data: dict[str, list[Any]],
    func_name: str,
    prompt_id: str,
    node_id: str,
    hidden: dict[str, Any] | None = None,
    before_call: Callable[[], None] | None = None,
    on_blocked: Callable[[Any], Any] | None = None,
    before_each: Callable[[int], None] | None = None,
) -> list[Any]:
    """One entry per call: its result, or the task still running it."""
    func = v3.bound_function(target, func_name, hidden)
    input_is_list = bool(getattr(target, "INPUT_IS_LIST", False))
    kinds = blocker_types()
    results: list[Any] = []
    for index, kwargs in enumerate(call_plan(target, data)):
        if before_call is not None:
            before_call()
        blocker = _blocker_in(kwargs, input_is_list, kinds)
        if blocker is not None:
            results.append(on_blocked(blocker) if on_blocked is not None else blocker)
            continue
        if before_each is not None:
            before_each(index)
        with CurrentNodeContext(prompt_id, node_id, index):
            if inspect.iscoroutinefunction(func):
                # The task copies the context as it is now: it keeps knowing its node.
                task = asyncio.create_task(func(**kwargs))
                await asyncio.sleep(0)
                result = task.result() if task.done() else task
            else:
                result = func(**kwargs)
                if inspect.iscoroutine(result):
                    result = await result
        results.append(result)
    return results


def pending_tasks(results: list[Any]) -> list[asyncio.Task[Any]]:
    return [r for r in results if isinstance(r, asyncio.Task) and not r.done()]


async def resolve(results: list[Any]) -> list[Any]:
    """The results with every task awaited (a failed task raises its exception here)."""
    pending = pending_tasks(results)
    if pending:
        await asyncio.wait(pending)
    return [r.result() if isinstance(r, asyncio.Task) else r for r in results]
