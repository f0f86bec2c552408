"""ComfyUI's websocket messages for one prompt, from the host's progress callbacks.

Per node that runs: ``progress_state`` (running), ``executing``, then per step ``progress_state``
and ``progress``, then ``executed`` (when the node has UI output) and ``progress_state``
(finished). Cached output nodes get ``executed`` with their cached UI output and a finished
``progress_state``, and never ``executing``. The run's own messages (``execution_start``,
``execution_cached``, ``execution_success`` / ``execution_error`` / ``execution_interrupted``)
arrive through :meth:`PromptReporter.message` as the run records them. Nodes added by node
expansion (``node_expanded``) are shown as the node the editor knows (``display_node``), with
their parent and the original node they came from in ``progress_state``.

An ``ExecutionBlocker`` with a message (``node_blocked``) gets the ``execution_error`` ComfyUI
sends for it, naming the node it reached; the run goes on, and the message is not part of the
history.

Who gets what follows ComfyUI: with a ``client_id``, everything goes to that client only;
without one, only ``progress``, ``progress_state``, ``execution_interrupted`` and a blocker's
``execution_error`` are sent, to every client.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Send = Callable[[str, Any, "str | None"], None]

# Without a client id, ComfyUI still broadcasts these (its progress handlers send to client_id None).
_ALWAYS_SENT = {"progress", "progress_state", "execution_interrupted"}


class PromptReporter:
    def __init__(
        self,
        send: Send,
        prompt_id: str,
        client_id: str | None,
        outputs: list[str],
        ui_of: Callable[[str], dict[str, Any] | None],
        on_start: Callable[[], None] = lambda: None,
    ):
        self._send = send
        self.prompt_id = prompt_id
        self.client_id = client_id
        self.outputs = set(outputs)
        self.ui_of = ui_of
        self.on_start = on_start
        self.nodes: dict[str, dict[str, Any]] = {}
        self.current_node: str | None = None
        self.parents: dict[str, str] = {}  # nodes added by node expansion -> the node that added them
        self.displays: dict[str, str] = {}  # ... -> the node the editor shows them as

    def send(self, event: str, data: dict[str, Any]) -> None:
        if self.client_id is not None or event in _ALWAYS_SENT:
            self._send(event, data, self.client_id)

    # --- the run's messages -----------------------------------------------------------------------

    def message(self, event: str, data: dict[str, Any]) -> None:
        if event == "execution_start":
            self.on_start()
        self.send(event, data)
        if event == "execution_cached":
            for node_id in data.get("nodes", []):
                if node_id in self.outputs:
                    ui = self.ui_of(node_id) or {}
                    self._executed(node_id, ui.get("output"))
                    self._state(node_id, "finished")

    # --- the host's progress callbacks ------------------------------------------------------------

    def node_expanded(self, node_id: str, class_type: str, parent_id: str, display_id: str) -> None:
        self.parents[node_id] = parent_id
        self.displays[node_id] = display_id

    def node_started(self, node_id: str, class_type: str, title: str) -> None:
        self.current_node = node_id
        self._state(node_id, "running", 0.0, 1.0)
        display = self.displays.get(node_id, node_id)
        self.send("executing", {"node": node_id, "display_node": display, "prompt_id": self.prompt_id})

    def node_progress(self, node_id: str, value: float, total: float) -> None:
        self._state(node_id, "running", value, total)
        self.send("progress", {"value": value, "max": total, "prompt_id": self.prompt_id, "node": node_id})

    def node_blocked(self, node_id: str, error: dict[str, Any]) -> None:
        # ComfyUI sends this one to the prompt's client id as it is: to every client when there is none.
        self._send("execution_error", error, self.client_id)

    def node_finished(self, node_id: str, status: str, seconds: float) -> None:
        self.current_node = None
        if status != "ran":  # ComfyUI leaves a failed or interrupted node's state as it was
            return
        ui = self.ui_of(node_id)
        if ui:
            self._executed(node_id, ui.get("output"))
        self._state(node_id, "finished")

    # --- helpers ----------------------------------------------------------------------------------

    def _executed(self, node_id: str, output: Any) -> None:
        display = self.displays.get(node_id, node_id)
        data = {"node": node_id, "display_node": display, "output": output, "prompt_id": self.prompt_id}
        self.send("executed", data)

    def _state(
        self, node_id: str, state: str, value: float | None = None, total: float | None = None
    ) -> None:
        entry = self.nodes.setdefault(node_id, {"value": 0, "max": 1})
        entry["state"] = state
        if total is not None:
            entry["max"] = total
        entry["value"] = entry["max"] if state == "finished" else value
        nodes = {
            nid: {
                "value": e["value"],
                "max": e["max"],
                "state": e["state"],
                "node_id": nid,
                "prompt_id": self.prompt_id,
                "display_node_id": self.displays.get(nid, nid),
                "parent_node_id": self.parents.get(nid),
                "real_node_id": self._real(nid),
            }
            for nid, e in self.nodes.items()
        }
        self.send("progress_state", {"prompt_id": self.prompt_id, "nodes": nodes})

    def _real(self, node_id: str) -> str:
        while node_id in self.parents:
            node_id = self.parents[node_id]
        return node_id
