"""Reading a workflow: a file or a dict, in API or UI format, into what ``/prompt`` would receive."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host_stub import ui_format
from host_stub.errors import WorkflowError


@dataclass
class Submission:
    """An API prompt and the ``extra_data`` the editor would send with it."""

    prompt: dict[str, Any]
    extra_data: dict[str, Any] = field(default_factory=dict)
    ui: dict[str, Any] | None = None  # the UI workflow it came from, if any
    widget_index: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def format(self) -> str:
        return "ui" if self.ui is not None else "api"


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorkflowError(f"workflow file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkflowError(f"cannot read {path}: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise WorkflowError(
            f"{path} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None


def load(source: str | Path | dict[str, Any], infos: Callable[[], dict[str, dict[str, Any]]]) -> Submission:
    """A submission from a workflow file or dict; ``infos`` gives /object_info for UI conversion."""
    data = read_json(source) if isinstance(source, (str, Path)) else source
    if ui_format.is_ui_workflow(data):
        workflow = copy.deepcopy(data)
        conversion = ui_format.convert(workflow, infos())
        return Submission(
            conversion.prompt, {"extra_pnginfo": {"workflow": workflow}}, workflow, conversion.widget_index
        )
    if isinstance(data, dict) and isinstance(data.get("prompt"), dict):
        # The body of a POST /prompt: {"prompt": {...}, "extra_data": {...}}.
        extra = data.get("extra_data") or {}
        if not isinstance(extra, dict):
            raise WorkflowError("'extra_data' must be an object")
        return Submission(check_api_prompt(data["prompt"]), copy.deepcopy(extra))
    return Submission(check_api_prompt(data))


def check_api_prompt(data: Any) -> dict[str, Any]:
    """A deep copy of ``data`` if it has the API format's shape, else a clear :class:`WorkflowError`."""
    if not isinstance(data, dict):
        raise WorkflowError(f"a workflow must be a JSON object (API or UI format), not {type(data).__name__}")
    for node_id, node in data.items():
        if not isinstance(node, dict):
            raise WorkflowError(
                'not a workflow: expected the API format ({"<id>": {"class_type": ..., "inputs": {...}}}) '
                f'or the UI format (with "nodes" and "links"); entry {node_id!r} is {type(node).__name__}'
            )
        if not isinstance(node.get("inputs"), dict):
            raise WorkflowError(f"node {node_id!r} has no 'inputs' object")
    return copy.deepcopy(data)
