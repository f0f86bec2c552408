"""UI-format workflow (what the editor saves) to API prompt (what ``/prompt`` runs).

Follows the frontend's ``graphToPrompt``:

- muted (mode 2) and bypassed (mode 4) nodes are left out, as are the frontend-only nodes
  (Note, MarkdownNote, Reroute, PrimitiveNode);
- widget values come from ``widgets_values`` by position (see :mod:`host_stub.ui_widgets`),
  with the widget's default where a value is missing;
- a PrimitiveNode pushes its value into the widgets it is linked to;
- each linked input is traced back through Reroutes and bypassed nodes to a real output; a
  bypassed node passes on the input matching the link's type (the same slot when it fits);
  a linked widget input takes the link, and a link that resolves to nothing leaves the widget
  value in place;
- inputs linked to nodes that are not in the prompt (e.g. muted ones) are dropped.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from host_stub.errors import ConversionError
from host_stub.ui_widgets import (
    NO_VALUE,
    drop_legacy_force_input_values,
    input_spec_type,
    is_widget_input,
    ordered_inputs,
    widget_layout,
)

MODE_MUTED = 2
MODE_BYPASS = 4
VIRTUAL_TYPES = frozenset({"Note", "MarkdownNote", "Reroute", "PrimitiveNode"})


@dataclass
class Slot:
    name: str
    type: str
    link: int | None


@dataclass
class UINode:
    id: str
    type: str
    mode: int
    title: str | None
    inputs: list[Slot]  # in the order the frontend builds them at load time
    output_types: list[str]
    raw: dict[str, Any]


@dataclass
class Link:
    id: int
    origin_id: str
    origin_slot: int
    target_id: str
    target_slot: int


@dataclass
class Conversion:
    prompt: dict[str, Any]
    # node id -> input name -> index in that node's widgets_values (used to mirror --set overrides)
    widget_index: dict[str, dict[str, int]] = field(default_factory=dict)


def is_ui_workflow(data: Any) -> bool:
    # An API prompt maps node ids to objects, so a list under "nodes" means the UI format.
    return isinstance(data, dict) and isinstance(data.get("nodes"), list)


def convert(workflow: dict[str, Any], infos: dict[str, dict[str, Any]]) -> Conversion:
    """Convert ``workflow`` given the ``/object_info`` entries ``infos`` of the known classes."""
    return _Converter(workflow, infos).run()


def valid_connection(type_a: Any, type_b: Any) -> bool:
    """LiteGraph's type check: ``*`` or empty matches anything; comma lists match on any member."""
    a = "" if type_a in ("*", None) else str(type_a)
    b = "" if type_b in ("*", None) else str(type_b)
    if not a or not b or a == b:
        return True
    a, b = a.lower(), b.lower()
    if "," not in a and "," not in b:
        return a == b
    return any(valid_connection(x, y) for x in a.split(",") for y in b.split(","))


class _Converter:
    def __init__(self, workflow: dict[str, Any], infos: dict[str, dict[str, Any]]):
        self.infos = infos
        self.subgraph_ids = {
            str(s.get("id"))
            for s in (workflow.get("definitions") or {}).get("subgraphs", [])
            if isinstance(s, dict)
        }
        self.links = self._read_links(workflow.get("links") or [])
        self.nodes: dict[str, UINode] = {}
        for raw in workflow["nodes"]:
            if not isinstance(raw, dict) or "id" not in raw or "type" not in raw:
                raise ConversionError(f"a UI node must be an object with 'id' and 'type', got {raw!r:.80}")
            node = self._read_node(raw)
            self.nodes[node.id] = node

    # --- reading ----------------------------------------------------------------------------

    @staticmethod
    def _read_links(raw_links: list[Any]) -> dict[int, Link]:
        links = {}
        for raw in raw_links:
            if isinstance(raw, dict):  # the 1.0 schema stores links as objects
                fields = [raw.get(k) for k in ("id", "origin_id", "origin_slot", "target_id", "target_slot")]
            elif isinstance(raw, list) and len(raw) >= 5:
                fields = raw[:5]
            else:
                raise ConversionError(f"malformed link {raw!r:.80}")
            link_id, origin, origin_slot, target, target_slot = fields
            try:
                links[link_id] = Link(link_id, str(origin), int(origin_slot), str(target), int(target_slot))
            except (TypeError, ValueError):
                raise ConversionError(f"malformed link {raw!r:.80}") from None
        return links

    def _read_node(self, raw: dict[str, Any]) -> UINode:
        node_type = str(raw["type"])
        saved = {s.get("name"): s for s in raw.get("inputs") or [] if isinstance(s, dict)}
        info = self.infos.get(node_type)
        if info is None:
            inputs = [
                Slot(str(s.get("name")), str(s.get("type", "*")), s.get("link")) for s in saved.values()
            ]
            outputs = [str(o.get("type", "*")) for o in raw.get("outputs") or [] if isinstance(o, dict)]
        else:
            inputs = self._runtime_inputs(info, saved)
            outputs = ["COMBO" if isinstance(t, list) else str(t) for t in info.get("output", [])]
        return UINode(
            str(raw["id"]), node_type, int(raw.get("mode") or 0), raw.get("title"), inputs, outputs, raw
        )

    @staticmethod
    def _runtime_inputs(info: dict[str, Any], saved: dict[Any, dict[str, Any]]) -> list[Slot]:
        """The node's input slots as the frontend creates them: plain sockets, then widget sockets."""
        sockets, widget_sockets = [], []
        for name, spec, _required in ordered_inputs(info):
            kind, _options, _ = input_spec_type(spec)
            link = (saved.get(name) or {}).get("link")
            if is_widget_input(spec):
                widget_sockets.append(Slot(name, kind, link))
            elif kind == "IMAGEUPLOAD":
                continue  # the upload button has no socket
            else:
                sockets.append(Slot(name, kind, link))
        return sockets + widget_sockets

    # --- converting -------------------------------------------------------------------------

    def run(self) -> Conversion:
        pushed = self._primitive_values()
        conversion = Conversion({})
        for node in self.nodes.values():
            if node.type in VIRTUAL_TYPES or node.mode in (MODE_MUTED, MODE_BYPASS):
                continue
            if node.type in self.subgraph_ids:
                raise ConversionError(f"node #{node.id} is a subgraph; host_stub does not expand subgraphs")
            inputs = self._widget_inputs(node, pushed.get(node.id, {}), conversion)
            for index, slot in enumerate(node.inputs):
                resolved = self._resolve_input(node, index, set())
                if resolved is not None:
                    inputs[slot.name] = [resolved[0], resolved[1]]
            info = self.infos.get(node.type, {})
            title = node.title or info.get("display_name") or node.type
            conversion.prompt[node.id] = {
                "inputs": inputs,
                "class_type": node.type,
                "_meta": {"title": title},
            }
        for entry in conversion.prompt.values():
            inputs = entry["inputs"]
            for name in [
                n
                for n, v in inputs.items()
                if isinstance(v, list) and len(v) == 2 and v[0] not in conversion.prompt
            ]:
                del inputs[name]
        return conversion

    def _widget_inputs(self, node: UINode, pushed: dict[str, Any], conversion: Conversion) -> dict[str, Any]:
        info = self.infos.get(node.type)
        if info is None:
            return {}
        widgets = widget_layout(info)
        saved = node.raw.get("widgets_values")
        if isinstance(saved, list):
            saved = drop_legacy_force_input_values(info, widgets, saved)
        inputs: dict[str, Any] = {}
        index_of: dict[str, int] = {}
        for position, widget in enumerate(widgets):
            if not widget.in_prompt:
                continue
            if isinstance(saved, dict):  # a few packs save widgets by name; keep their values
                value = saved.get(widget.name, widget.default())
            elif isinstance(saved, list) and position < len(saved):
                value = saved[position]
                index_of[widget.name] = position
            else:
                value = widget.default()
            value = pushed.get(widget.name, value)
            if value is NO_VALUE:
                continue
            inputs[widget.name] = {"__value__": value} if isinstance(value, list) else value
        if index_of and saved is node.raw.get("widgets_values"):
            conversion.widget_index[node.id] = index_of
        return inputs

    def _primitive_values(self) -> dict[str, dict[str, Any]]:
        """node id -> widget name -> value pushed by a linked PrimitiveNode (any mode, as in the editor)."""
        pushed: dict[str, dict[str, Any]] = {}
        for node in self.nodes.values():
            values = node.raw.get("widgets_values")
            if node.type != "PrimitiveNode" or not isinstance(values, list) or not values:
                continue
            for output in node.raw.get("outputs") or []:
                for link_id in (output or {}).get("links") or []:
                    link = self.links.get(link_id)
                    target = self.nodes.get(link.target_id) if link else None
                    name = self._widget_name_for_link(target, link_id) if target else None
                    if name is not None:
                        pushed.setdefault(target.id, {})[name] = values[0]
        return pushed

    def _widget_name_for_link(self, node: UINode, link_id: int) -> str | None:
        info = self.infos.get(node.type)
        for saved in node.raw.get("inputs") or []:
            if isinstance(saved, dict) and saved.get("link") == link_id:
                widget = saved.get("widget")
                if isinstance(widget, dict) and widget.get("name"):
                    return str(widget["name"])
                name = saved.get("name")
                spec = (info or {}).get("input", {})
                specs = {**(spec.get("required") or {}), **(spec.get("optional") or {})}
                return str(name) if name in specs and is_widget_input(specs[name]) else None
        return None

    # --- following links ----------------------------------------------------------------------

    def _resolve_input(
        self, node: UINode, index: int, visited: set[tuple[str, str, int]], wanted: str | None = None
    ) -> tuple[str, int] | None:
        key = ("in", node.id, index)
        if key in visited:
            raise ConversionError(f"circular link while resolving input {index} of node #{node.id}")
        visited.add(key)
        if index >= len(node.inputs):
            raise ConversionError(f"node #{node.id} has no input slot {index}")
        slot = node.inputs[index]
        if slot.link is None:
            return None
        link = self.links.get(slot.link)
        if link is None:
            raise ConversionError(
                f"node #{node.id} input '{slot.name}' uses link {slot.link}, which does not exist"
            )
        origin = self.nodes.get(link.origin_id)
        if origin is None:
            raise ConversionError(
                f"node #{node.id} input '{slot.name}' is linked to node #{link.origin_id}, "
                "which does not exist"
            )
        return self._resolve_output(origin, link.origin_slot, wanted or slot.type, visited)

    def _resolve_output(
        self, node: UINode, slot: int, wanted: str, visited: set[tuple[str, str, int]]
    ) -> tuple[str, int] | None:
        key = ("out", node.id, slot)
        if key in visited:
            raise ConversionError(f"circular link while resolving output {slot} of node #{node.id}")
        visited.add(key)
        if node.mode == MODE_BYPASS:
            index = self._bypass_input(node, slot, wanted)
            # The editor does not pass the wanted type on through a bypassed node.
            return None if index < 0 else self._resolve_input(node, index, visited)
        if node.type in VIRTUAL_TYPES:
            return self._resolve_input(node, slot, visited, wanted) if slot < len(node.inputs) else None
        return node.id, slot

    @staticmethod
    def _bypass_input(node: UINode, slot: int, wanted: str) -> int:
        """The input a bypassed node hands on for its output ``slot`` (-1: none fits)."""
        if wanted in ("*", ""):
            return slot if len(node.inputs) > slot else 0
        output_type = node.output_types[slot] if slot < len(node.output_types) else "*"
        if slot < len(node.inputs):
            same = node.inputs[slot].type
            if valid_connection(same, output_type) and valid_connection(same, wanted):
                return slot
        for index, candidate in enumerate(node.inputs):
            if candidate.type == wanted:
                return index
        for index, candidate in enumerate(node.inputs):
            if valid_connection(candidate.type, output_type) and valid_connection(candidate.type, wanted):
                return index
        return -1


def embed_overrides(
    workflow: dict[str, Any], widget_index: dict[str, dict[str, int]], applied: list[tuple[str, str, Any]]
) -> dict[str, Any]:
    """A copy of ``workflow`` whose widget values carry the ``(node id, input, value)`` overrides.

    Keeps the workflow embedded in outputs in step with what actually ran.
    """
    patched = copy.deepcopy(workflow)
    by_id = {str(n.get("id")): n for n in patched.get("nodes", []) if isinstance(n, dict)}
    for node_id, name, value in applied:
        position = widget_index.get(node_id, {}).get(name)
        node = by_id.get(node_id)
        if position is not None and node is not None:
            node["widgets_values"][position] = value
    return patched
