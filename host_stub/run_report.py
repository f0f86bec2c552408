"""What a run reports: per-node records, progress callbacks, and ComfyUI's message and error shapes."""

from __future__ import annotations

import logging
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Protocol

from host_stub.graph import DependencyCycleError, ExecutionList, linked_sources
from host_stub.validation_rules import full_type_name

log = logging.getLogger(__name__)

OOM_TIP = (
    "This error means you ran out of memory on your GPU.\n\nTIPS: If the workflow worked before you "
    "might have accidentally set the batch_size to a large number."
)


class ProgressReporter(Protocol):
    """What ``Host.run(progress=...)`` calls. Optional extras, called only when defined:

    - ``node_expanded(node_id, class_type, parent_id, display_id)``: an expansion added
      ``node_id`` to the running prompt (before it can start); ComfyUI shows it as ``display_id``.
    - ``node_blocked(node_id, error)``: an ``ExecutionBlocker`` with a message reached
      ``node_id``; ``error`` is the ``execution_error`` message ComfyUI sends for it (the run
      goes on, and the message is not part of the history).
    - ``message(event, data)``: the run's status messages as they happen (see ``Host.run``).
    """

    def node_started(self, node_id: str, class_type: str, title: str) -> None: ...
    def node_progress(self, node_id: str, value: float, total: float) -> None: ...
    def node_finished(self, node_id: str, status: str, seconds: float) -> None: ...


class SilentReporter:
    def node_started(self, node_id: str, class_type: str, title: str) -> None:
        pass

    def node_progress(self, node_id: str, value: float, total: float) -> None:
        pass

    def node_finished(self, node_id: str, status: str, seconds: float) -> None:
        pass


def optional_call(reporter: Any, name: str, *args: Any) -> None:
    hook = getattr(reporter, name, None)
    if callable(hook):
        hook(*args)


@dataclass
class NodeRecord:
    """One node's part in a run, for the summary."""

    node_id: str
    class_type: str
    title: str
    status: str = "skipped"  # "ran", "cached", "failed", "interrupted" or "skipped"
    seconds: float = 0.0
    peak_rss_bytes: int | None = None  # the process's RSS high-water mark when the node ended
    peak_cuda_bytes: int | None = None  # torch's CUDA peak during the node, when CUDA is in use
    parent_node: str | None = None  # for nodes added by an expansion: the node that expanded
    display_node: str | None = None  # ... and the node ComfyUI shows them as
    blocked: bool = False  # every call was skipped by an ExecutionBlocker
    error: str | None = None  # the blocker's message, when it had one


@dataclass
class Outcome:
    status: str  # "success", "error" or "interrupted"
    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    executed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    error: dict[str, Any] | None = None
    records: dict[str, NodeRecord] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def format_value(value: Any) -> Any:
    if value is None or isinstance(value, (int, float, bool, str)):
        return value
    return str(value)


def stamp(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "timestamp": int(time.time() * 1000)}


def blocked_error(
    prompt_id: str, node_id: str, class_type: str, executed: list[str], message: str
) -> dict[str, Any]:
    """The ``execution_error`` message ComfyUI sends when a blocker with a message reaches a node."""
    return {
        "prompt_id": prompt_id,
        "node_id": node_id,
        "node_type": class_type,
        "executed": list(executed),
        "exception_message": f"Execution Blocked: {message}",
        "exception_type": "ExecutionBlocked",
        "traceback": [],
        "current_inputs": [],
        "current_outputs": [],
    }


class RunReporting:
    """The records, status messages and errors of a :class:`~host_stub.executor.Run`."""

    prompt_id: str
    prompt: dict[str, Any]
    dynprompt: Any
    registry: Any
    outcome: Outcome
    mm: Any
    reporter: Any

    def _message(self, event: str, data: dict[str, Any]) -> None:
        """Record a status message for the history, and hand it to the reporter's ``message`` now."""
        stamped = stamp(data)
        self.outcome.messages.append((event, stamped))
        optional_call(self.reporter, "message", event, stamped)

    def _meta(self, node_id: str) -> dict[str, Any]:
        return {
            "node_id": node_id,
            "display_node": self.dynprompt.get_display_node_id(node_id),
            "parent_node": self.dynprompt.get_parent_node_id(node_id),
            "real_node_id": self.dynprompt.get_real_node_id(node_id),
        }

    def _record(self, node_id: str) -> NodeRecord:
        """The node's record; nodes added by expansions get theirs when first seen."""
        record = self.outcome.records.get(node_id)
        if record is None:
            node = self.dynprompt.get_node(node_id)
            title = (node.get("_meta") or {}).get("title") or self.registry.display_name(node["class_type"])
            record = NodeRecord(node_id, node["class_type"], title)
            if self.dynprompt.is_ephemeral(node_id):
                record.parent_node = self.dynprompt.get_parent_node_id(node_id)
                record.display_node = self.dynprompt.get_display_node_id(node_id)
            self.outcome.records[node_id] = record
        return record

    def _make_records(self, outputs: list[str]) -> None:
        needed, stack = set(outputs), list(outputs)
        while stack:
            for _name, source in linked_sources(self.prompt[stack.pop()]):
                if source not in needed and source in self.prompt:
                    needed.add(source)
                    stack.append(source)
        for node_id in self.prompt:
            if node_id in needed:
                record = self._record(node_id)
                if node_id in self.outcome.cached:
                    record.status = "cached"

    def _interrupted(self, node_id: str) -> str:
        self.outcome.status = "interrupted"
        real_id = self.dynprompt.get_real_node_id(node_id)
        self.outcome.error = {
            "prompt_id": self.prompt_id,
            "node_id": real_id,
            "node_type": self.dynprompt.get_node(real_id)["class_type"],
            "executed": list(self.outcome.executed),
        }
        self._message("execution_interrupted", self.outcome.error)
        return "interrupted"

    def _failed(self, node_id: str, exc: Exception, data: dict[str, list[Any]] | None) -> str:
        # Kept at debug level: the error travels in the result, and the CLI prints it once.
        log.debug("Exception during processing of node %s: %s\n%s", node_id, exc, traceback.format_exc())
        tips = ""
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError):
            tips = OOM_TIP
            log.error("Got an OOM, unloading all loaded models.")
            self.mm.unload_all_models()
        inputs = {name: [format_value(v) for v in values] for name, values in (data or {}).items()}
        tb = traceback.format_tb(exc.__traceback__)
        real_id = self.dynprompt.get_real_node_id(node_id)
        self._error(real_id, f"{exc}\n{tips}", full_type_name(exc), tb, inputs)
        return "failed"

    def _cycle_error(self, plan: ExecutionList) -> None:
        blamed = plan.blamed_for_cycle()
        error = DependencyCycleError("Dependency cycle detected")
        self._error(blamed, str(error), DependencyCycleError.type_name, [], [])
        self._record(blamed).status = "failed"

    def _error(self, node_id: str, message: str, exc_type: str, tb: list[str], inputs: Any) -> None:
        self.outcome.status = "error"
        self.outcome.error = {
            "prompt_id": self.prompt_id,
            "node_id": node_id,
            "node_type": self.dynprompt.get_node(node_id)["class_type"],
            "executed": list(self.outcome.executed),
            "exception_message": message,
            "exception_type": exc_type,
            "traceback": tb,
            "current_inputs": inputs,
            "current_outputs": list(self.prompt),
        }
        self._message("execution_error", self.outcome.error)
