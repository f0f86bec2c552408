"""``--set NODE.input=VALUE``: change one input of an API prompt before it runs.

NODE is a node id, a title (``_meta.title``) or a class name, tried in that order; a name that
matches several nodes is refused with the candidates listed. VALUE is read by the input's type
(INT, FLOAT, BOOLEAN; text stays text), and as JSON for other types.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from host_stub.errors import OverrideError
from host_stub.registry import NodeRegistry
from host_stub.ui_widgets import input_spec_type

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


@dataclass(frozen=True)
class Override:
    node: str
    input: str
    raw: str

    @classmethod
    def parse(cls, text: str) -> Override:
        target, sep, raw = text.partition("=")
        node, dot, name = target.rpartition(".")
        if not sep or not dot or not node or not name:
            raise OverrideError(f"bad --set {text!r}: expected NODE.input=VALUE")
        return cls(node.strip(), name.strip(), raw)


def _describe(node_id: str, node: dict[str, Any]) -> str:
    title = (node.get("_meta") or {}).get("title")
    return f"#{node_id} {node.get('class_type')}" + (f" ({title!r})" if title else "")


def find_node(prompt: dict[str, Any], ref: str) -> str:
    if ref in prompt:
        return ref
    for field_of in (lambda n: (n.get("_meta") or {}).get("title"), lambda n: n.get("class_type")):
        matches = [node_id for node_id, node in prompt.items() if field_of(node) == ref]
        if len(matches) == 1:
            return matches[0]
        if matches:
            listed = ", ".join(_describe(m, prompt[m]) for m in matches)
            raise OverrideError(f"--set: {ref!r} matches {len(matches)} nodes: {listed}; use a node id")
    raise OverrideError(f"--set: no node has the id, title or class {ref!r}")


def parse_value(raw: str, spec: Any) -> Any:
    kind, _options, _choices = input_spec_type(spec) if spec is not None else ("*", {}, ())
    try:
        if kind == "INT":
            return int(raw) if raw.strip().lstrip("+-").isdigit() else int(raw, 0)
        if kind == "FLOAT":
            return float(raw)
    except ValueError:
        raise OverrideError(f"--set: {raw!r} is not a valid {kind}") from None
    if kind == "BOOLEAN":
        if raw.strip().lower() in _TRUE | _FALSE:
            return raw.strip().lower() in _TRUE
        raise OverrideError(f"--set: {raw!r} is not a BOOLEAN (use true or false)")
    if kind in ("STRING", "COMBO"):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def apply(
    prompt: dict[str, Any], overrides: list[str | Override], registry: NodeRegistry
) -> list[tuple[str, str, Any]]:
    """Apply ``overrides`` to ``prompt`` in place; returns ``(node id, input, value)`` for each."""
    applied = []
    for item in overrides:
        override = item if isinstance(item, Override) else Override.parse(item)
        node_id = find_node(prompt, override.node)
        node = prompt[node_id]
        cls = registry.get(str(node.get("class_type")))
        spec = None
        if cls is not None:
            types = cls.INPUT_TYPES()
            specs = {**(types.get("required") or {}), **(types.get("optional") or {})}
            if override.input not in specs:
                raise OverrideError(
                    f"--set: {_describe(node_id, node)} has no input {override.input!r}; "
                    f"inputs: {', '.join(specs) or 'none'}"
                )
            spec = specs[override.input]
        value = parse_value(override.raw, spec)
        node["inputs"][override.input] = {"__value__": value} if isinstance(value, list) else value
        applied.append((node_id, override.input, value))
    return applied
