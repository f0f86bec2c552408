"""Which widgets the ComfyUI frontend gives a node, in order, and what each holds.

A UI-format workflow stores a node's widget values by position (``widgets_values``), so reading
it needs the frontend's widget list for the node's ``/object_info`` entry:

- one widget per INT / FLOAT / STRING / BOOLEAN / combo input, in input order (required, then
  optional), except ``forceInput`` inputs, which are sockets only;
- after an INT whose ``control_after_generate`` is set, or that is named ``seed`` / ``noise_seed``
  when the option is absent, one frontend-only "control after generate" value;
- after a FLOAT whose ``control_after_generate`` is set, one such value too;
- after a combo with ``control_after_generate``, two: the control value and its filter text;
- a media combo with ``image_upload`` (or ``video_upload`` / ``animated_image_upload``) adds an
  ``upload`` button after the last required input; the button's value ("image") is saved too.

Frontend-only values are kept in ``widgets_values`` but never sent in the API prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
SEED_NAMES = ("seed", "noise_seed")
UPLOAD_FLAGS = ("image_upload", "video_upload", "animated_image_upload")
NO_VALUE = object()  # a widget whose value the frontend leaves undefined (dropped from the prompt)


@dataclass(frozen=True)
class Widget:
    name: str
    kind: str  # "value", "control", "filter" or "upload"
    input_type: str  # "INT", "FLOAT", "STRING", "BOOLEAN", "COMBO" or "IMAGEUPLOAD"
    options: dict[str, Any]
    choices: tuple[Any, ...] = ()

    @property
    def in_prompt(self) -> bool:
        return self.kind == "value"

    def default(self) -> Any:
        if self.kind == "control":
            return (
                self.options.get("control_after_generate")
                if isinstance(self.options.get("control_after_generate"), str)
                else "randomize"
            )
        if self.kind == "filter":
            return ""
        if self.kind == "upload":
            return "image"
        default = self.options.get("default")
        if self.input_type == "COMBO":
            if default:
                return default
            return self.choices[0] if self.choices else NO_VALUE
        if default is not None:
            return default
        return {"INT": 0, "FLOAT": 0, "STRING": "", "BOOLEAN": False}[self.input_type]


def input_spec_type(spec: Any) -> tuple[str, dict[str, Any], tuple[Any, ...]]:
    """``(type, options, combo choices)`` of one ``INPUT_TYPES`` entry as /object_info serves it."""
    if not isinstance(spec, (list, tuple)) or not spec:
        return "*", {}, ()
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if isinstance(spec[0], (list, tuple)):
        return "COMBO", options, tuple(spec[0])
    if spec[0] == "COMBO":
        return "COMBO", options, tuple(options.get("options", ()))
    return str(spec[0]), options, ()


def ordered_inputs(info: dict[str, Any]) -> list[tuple[str, Any, bool]]:
    """``(name, spec, required)`` for the required then optional inputs, as the frontend orders them.

    Includes the ``upload`` input the frontend adds for media combos.
    """
    required = dict(info.get("input", {}).get("required", {}) or {})
    optional = dict(info.get("input", {}).get("optional", {}) or {})
    for name, spec in required.items():
        kind, options, _ = input_spec_type(spec)
        if kind == "COMBO" and any(options.get(flag) is True for flag in UPLOAD_FLAGS):
            required["upload"] = ["IMAGEUPLOAD", {**options, "imageInputName": name}]
            break
    return [(n, s, True) for n, s in required.items()] + [(n, s, False) for n, s in optional.items()]


def is_widget_input(spec: Any) -> bool:
    kind, options, _ = input_spec_type(spec)
    return kind in WIDGET_TYPES and not options.get("forceInput")


def widget_layout(info: dict[str, Any]) -> list[Widget]:
    """The node's widgets in ``widgets_values`` order."""
    widgets: list[Widget] = []
    for name, spec, _required in ordered_inputs(info):
        kind, options, choices = input_spec_type(spec)
        if kind == "IMAGEUPLOAD":
            widgets.append(Widget(name, "upload", kind, options))
            continue
        if not is_widget_input(spec):
            continue
        widgets.append(Widget(name, "value", kind, options, choices))
        control = options.get("control_after_generate")
        if kind == "INT":
            if control is None:
                control = name in SEED_NAMES
            if control:
                widgets.append(Widget(name, "control", kind, options))
        elif kind == "FLOAT" and control:
            widgets.append(Widget(name, "control", kind, options))  # only when asked for, never by name
        elif kind == "COMBO" and control:
            widgets.append(Widget(name, "control", kind, options))
            widgets.append(Widget(name, "filter", kind, options))
    return widgets


def drop_legacy_force_input_values(
    info: dict[str, Any], widgets: list[Widget], values: list[Any]
) -> list[Any]:
    """Older frontends saved a value for ``forceInput`` inputs too; drop those when the count says so.

    Mirrors the frontend's own migration: it applies only when the saved list has exactly one
    entry per widget-or-forceInput input (two where ``control_after_generate`` is set).
    """
    names = {w.name for w in widgets}
    flags: list[bool] = []
    for name, spec, _required in ordered_inputs(info):
        _kind, options, _ = input_spec_type(spec)
        if name in names or options.get("forceInput"):
            forced = bool(options.get("forceInput"))
            flags += [forced, False] if options.get("control_after_generate") else [forced]
    if not any(flags) or len(flags) != len(values):
        return values
    return [value for value, forced in zip(values, flags, strict=True) if not forced]
