"""Calling a node's functions the way ComfyUI does: input gathering, list mapping, output merging.

Every value travels as a list (one entry per item of a batch-of-calls): a constant input is
``[value]``, a linked input is the source's output list. Unless the class sets
``INPUT_IS_LIST``, the function is called once per index of the longest list, shorter lists
repeating their last item; outputs flagged in ``OUTPUT_IS_LIST`` are concatenated, others
collected per call.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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


def call_over_lists(
    target: Any, data: dict[str, list[Any]], func_name: str, before_call: Callable[[], None] | None = None
) -> list[Any]:
    """Call ``target.<func_name>`` over the input lists; one result per call."""
    func = getattr(target, func_name)
    if getattr(target, "INPUT_IS_LIST", False):
        calls = [data]
    else:
        length = max((len(v) for v in data.values()), default=0)
        # No inputs (or only empty lists): ComfyUI calls the function once without arguments.
        calls = [{k: v[i] if len(v) > i else v[-1] for k, v in data.items()} for i in range(length)] or [{}]
    results = []
    for kwargs in calls:
        if before_call is not None:
            before_call()
        result = func(**kwargs)
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
        results.append(result)
    return results


def merge_returns(results: list[Any], cls: type) -> tuple[Outputs, dict[str, list[Any]]]:
    """``(outputs, ui)`` from the per-call return values of a node function."""
    tuples: list[Any] = []
    uis: list[dict[str, Any]] = []
    for result in results:
        if isinstance(result, dict):
            if "ui" in result:
                uis.append(result["ui"])
            if "expand" in result:
                raise NotImplementedError("node expansion ('expand') is not supported by host_stub")
            if "result" in result:
                tuples.append(result["result"])
        else:
            tuples.append(result)
    for value in tuples:
        if not isinstance(value, (tuple, list)):
            raise TypeError(
                f"{cls.__name__}.{cls.FUNCTION} returned {type(value).__name__}; "
                "a node must return a tuple (or a dict with 'ui' and/or 'result')"
            )
    outputs: Outputs = []
    if tuples:
        is_list = getattr(cls, "OUTPUT_IS_LIST", None) or [False] * len(tuples[0])
        # zip() stops at the shorter: like ComfyUI, a short OUTPUT_IS_LIST drops the outputs it omits.
        for index, flag in zip(range(len(tuples[0])), is_list):  # noqa: B905
            if flag:
                outputs.append([item for value in tuples for item in value[index]])
            else:
                outputs.append([value[index] for value in tuples])
    ui = {key: [item for part in uis for item in part[key]] for key in uis[0]} if uis else {}
    return outputs, ui
