"""What a node's calls return, read the way ComfyUI reads it.

A call returns a tuple of outputs, a dict with ``"ui"``, ``"result"`` and/or ``"expand"`` (a graph
to add to the running prompt, whose links may stand in the result), an ``ExecutionBlocker`` (every
output blocked), or for V3 nodes a ``NodeOutput``. Outputs flagged in ``OUTPUT_IS_LIST`` are
concatenated over the calls (a blocker stays one item), others are collected one item per call.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from host_stub.node_call import Outputs, is_link
from host_stub.shim.graph_utils import ExecutionBlocker


class Items(list):
    """Several items standing for one output of one call (an expansion's output that is a list)."""


def blocker_types() -> tuple[type, ...]:
    """Our ``ExecutionBlocker`` and, when ComfyUI's own modules are loaded, theirs."""
    module = sys.modules.get("comfy_execution.graph_utils")
    theirs = getattr(module, "ExecutionBlocker", None)
    if isinstance(theirs, type) and theirs is not ExecutionBlocker:
        return (ExecutionBlocker, theirs)
    return (ExecutionBlocker,)


def is_blocker(value: Any, kinds: tuple[type, ...] | None = None) -> bool:
    return isinstance(value, kinds or blocker_types())


def _is_node_output(value: Any) -> bool:
    return all(hasattr(value, attr) for attr in ("args", "ui", "expand", "block_execution"))


def _from_node_output(value: Any) -> dict[str, Any]:
    """A V3 ``NodeOutput`` as the V1 dict it stands for."""
    out: dict[str, Any] = {}
    if value.ui is not None:
        out["ui"] = value.ui if isinstance(value.ui, dict) else value.ui.as_dict()
    result = value.args if len(value.args) > 0 else None
    if value.block_execution is not None:
        result = ExecutionBlocker(value.block_execution)
    if value.expand is not None:
        out["expand"] = value.expand
        out["result"] = result if result is not None else ()
    elif result is not None:
        out["result"] = result
    return out


@dataclass
class Returns:
    """Per call: ``(graph or None, outputs tuple)``; calls that returned only UI have no entry."""

    calls: list[tuple[dict[str, Any] | None, tuple[Any, ...]]] = field(default_factory=list)
    ui: dict[str, list[Any]] = field(default_factory=dict)
    blocked: int = 0  # calls whose result was blocked

    @property
    def expands(self) -> bool:
        return any(graph is not None for graph, _values in self.calls)

    def links(self) -> list[list[Any]]:
        return [v for graph, values in self.calls if graph is not None for v in values if is_link(v)]


def read_returns(results: list[Any], cls: type) -> Returns:
    kinds = blocker_types()
    out = Returns()
    uis: list[dict[str, Any]] = []
    width = len(cls.RETURN_TYPES)
    for result in results:
        if _is_node_output(result):
            result = _from_node_output(result)
        graph = None
        if isinstance(result, dict):
            if "ui" in result:
                uis.append(result["ui"])
            graph = result.get("expand")
            if "result" not in result and graph is None:
                continue
            result = result.get("result", ())
        if isinstance(result, kinds):
            out.blocked += 1
            result = (result,) * width
        if not isinstance(result, (tuple, list)):
            raise TypeError(
                f"{cls.__name__}.{cls.FUNCTION} returned {type(result).__name__}; "
                "a node must return a tuple (or a dict with 'ui' and/or 'result')"
            )
        out.calls.append((graph, tuple(result)))
    if uis:
        out.ui = {key: [item for part in uis for item in part[key]] for key in uis[0]}
    return out


def merge_outputs(calls: list[tuple[Any, ...]], cls: type) -> Outputs:
    """One list per output over all calls (see module doc)."""
    if not calls:
        return []
    kinds = blocker_types()
    is_list = getattr(cls, "OUTPUT_IS_LIST", None) or [False] * len(calls[0])
    outputs: Outputs = []
    # zip() stops at the shorter: like ComfyUI, a short OUTPUT_IS_LIST drops the outputs it omits.
    for index, flag in zip(range(len(calls[0])), is_list):  # noqa: B905
        merged: list[Any] = []
        for values in calls:
            value = values[index]
            if isinstance(value, Items):
                merged.extend(value)
            elif flag and not isinstance(value, kinds):
                merged.extend(value)
            else:
                merged.append(value)
        outputs.append(merged)
    return outputs
