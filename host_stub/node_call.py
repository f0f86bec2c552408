"""Calling a node's functions the way ComfyUI does: input gathering, list mapping, output merging.

Every value travels as a list (one entry per item of a batch-of-calls): a constant input is
``[value]``, a linked input is the source's output list. Unless the class sets
``INPUT_IS_LIST``, the function is called once per index of the longest list, shorter lists
repeating their last item. What the calls return is merged by :mod:`host_stub.returns`; calls
inside the execution loop (where async functions run concurrently) are in
:mod:`host_stub.node_async`.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from host_stub import v3

Outputs = list[list[Any]]


def is_link(value: Any) -> bool:
    """``["<node id>", <output index>]``, the API format's link."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], (int, float))
    )


def input_info(input_types: dict[str, Any], name: str) -> tuple[Any, str | None, dict[str, Any]]:
    """``(type, category, options)`` of input ``name``; category is None for an unknown input."""
    for category in ("required", "optional", "hidden"):
        group = input_types.get(category) or {}
        if name in group:
            spec = group[name]
            if isinstance(spec, (list, tuple)):
                options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
                return (spec[0] if spec else None), category, options
            return spec, category, {}  # hidden inputs are a bare string such as "PROMPT"
    return None, None, {}


@dataclass
class CallContext:
    """What hidden inputs are filled from."""

    node_id: str
    prompt: dict[str, Any] | None = None
    extra_data: dict[str, Any] = field(default_factory=dict)
    dynprompt: Any = None

    def hidden_value(self, kind: Any) -> tuple[bool, Any]:
        if kind == "PROMPT":
            if self.dynprompt is not None:
                return True, self.dynprompt.get_original_prompt()
            return True, self.prompt if self.prompt is not None else {}
        if kind == "DYNPROMPT":
            return True, self.dynprompt
        if kind == "EXTRA_PNGINFO":
            return True, self.extra_data.get("extra_pnginfo")
        if kind == "UNIQUE_ID":
            return True, self.node_id
        if kind in ("AUTH_TOKEN_COMFY_ORG", "API_KEY_COMFY_ORG"):
            return True, self.extra_data.get(kind.lower())
        return False, None


def hidden_values(cls: type, ctx: CallContext) -> dict[str, Any] | None:
    """For a V3 node: its hidden inputs by kind (they travel on the class, not as arguments)."""
    if not v3.is_v3(cls):
        return None
    values = {}
    for kind in v3.hidden_kinds(cls):
        known, value = ctx.hidden_value(kind)
        if known:
            values[kind] = value
    return values


def gather_inputs(
    inputs: dict[str, Any],
    input_types: dict[str, Any],
    ctx: CallContext,
    outputs: Callable[[str], Outputs | None] | None,
) -> tuple[dict[str, list[Any]], set[str]]:
    """The keyword lists for a call, and the names of linked inputs whose value is not available.

    With ``outputs=None`` (IS_CHANGED, VALIDATE_INPUTS) every linked input is missing and None.
    """
    data: dict[str, list[Any]] = {}
    missing: set[str] = set()
    for name, value in inputs.items():
        _kind, category, options = input_info(input_types, name)
        if is_link(value) and not options.get("rawLink"):
            source = outputs(value[0]) if outputs is not None else None
            index = int(value[1])
            if source is None or index >= len(source):
                missing.add(name)
                data[name] = [None]
            else:
                data[name] = source[index]
        elif category is not None:
            data[name] = [value]
    for name, kind in (input_types.get("hidden") or {}).items():
        known, value = ctx.hidden_value(kind)
        if known:
            data[name] = [value]
    return data, missing


def call_plan(target: Any, data: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The keyword arguments of each call: one call per index of the longest list, unless INPUT_IS_LIST."""
    if getattr(target, "INPUT_IS_LIST", False):
        return [data]
    length = max((len(v) for v in data.values()), default=0)
    # No inputs (or only empty lists): ComfyUI calls the function once without arguments.
    return [{k: v[i] if len(v) > i else v[-1] for k, v in data.items()} for i in range(length)] or [{}]


def call_over_lists(
    target: Any,
    data: dict[str, list[Any]],
    func_name: str,
    before_call: Callable[[], None] | None = None,
    hidden: dict[str, Any] | None = None,
) -> list[Any]:
    """Call ``target.<func_name>`` over the input lists, synchronously; one result per call.

    Used outside the execution loop (validation, ``IS_CHANGED``): a coroutine is run to its end.
    """
    func = v3.bound_function(target, func_name, hidden)
    results = []
    for kwargs in call_plan(target, data):
        if before_call is not None:
            before_call()
        result = func(**kwargs)
        if inspect.iscoroutine(result):
            result = run_sync(result)
        results.append(result)
    return results


def run_sync(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` to its end from synchronous code, also when this thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001 - handed back to the calling thread below
            box["error"] = exc

    thread = threading.Thread(target=target, name="host_stub-run-sync")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")
