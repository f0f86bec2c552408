"""What a run returns: ComfyUI's history entry plus the stub's own summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host_stub.executor import NodeRecord, Outcome
from host_stub.validation import ValidationResult


def history_entry(
    number: int,
    prompt_id: str,
    prompt: dict[str, Any],
    extra_data: dict[str, Any],
    outputs_to_execute: list[str],
    outcome: Outcome,
) -> dict[str, Any]:
    """The value of ``GET /history/<prompt_id>`` for this run (under the prompt id key)."""
    success = outcome.status == "success"
    return {
        "prompt": [number, prompt_id, prompt, extra_data, outputs_to_execute],
        "outputs": outcome.outputs,
        "status": {
            "status_str": "success" if success else "error",
            "completed": success,
            "messages": [[event, data] for event, data in outcome.messages],
        },
        "meta": outcome.meta,
    }


@dataclass
class RunResult:
    prompt_id: str
    status: str  # "success", "error", "interrupted" or "invalid"
    prompt: dict[str, Any]  # the API prompt as run (overrides applied, values coerced)
    validation: ValidationResult
    history: dict[str, Any] | None = None  # GET /history/<id>[<id>]; None when the prompt was invalid
    ui: dict[str, Any] = field(default_factory=dict)  # node id -> UI output (images, ...)
    node_outputs: dict[str, list[list[Any]]] = field(default_factory=dict)  # node id -> outputs, as cached
    nodes: list[NodeRecord] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)  # files written or changed under the output folders
    error: dict[str, Any] | None = None  # execution_error / execution_interrupted data
    executed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "success"

    def output(self, node_id: str, index: int = 0) -> Any:
        """The value of output ``index`` of ``node_id`` (its first item: most outputs are not lists)."""
        return self.node_outputs[node_id][index][0]

    def history_response(self) -> dict[str, Any]:
        return {self.prompt_id: self.history} if self.history is not None else {}

    def summary(self) -> dict[str, Any]:
        """A JSON-ready digest: status, per-node timings and memory, files, errors."""
        return {
            "prompt_id": self.prompt_id,
            "status": self.status,
            "seconds": round(self.seconds, 6),
            "nodes": [vars(record) for record in self.nodes],
            "files": [str(p) for p in self.files],
            "error": self.error,
            "validation": None
            if self.validation.ok and not self.validation.node_errors
            else self.validation.response(),
        }
