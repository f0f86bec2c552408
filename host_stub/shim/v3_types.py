"""The V3 socket types of ``comfy_api.latest.io``: ``io.Int.Input("steps", min=1)``, ``io.Image.Output()``.

Each type is a class with an ``io_type`` and nested ``Input`` / ``Output`` classes that know their
type (``Parent``). ``as_dict()`` gives the options ComfyUI serves in ``/object_info``, without the
ones left unset.
"""

from __future__ import annotations

from enum import Enum
from typing import Any


def prune_dict(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


class FolderType(str, Enum):
    input = "input"
    output = "output"
    temp = "temp"


class UploadType(str, Enum):
    image = "image_upload"
    audio = "audio_upload"
    video = "video_upload"
    model = "file_upload"


class NumberDisplay(str, Enum):
    number = "number"
    slider = "slider"


class RemoteOptions:
    def __init__(
        self,
        route: str,
        refresh_button: bool,
        control_after_refresh: str = "first",
        timeout: int | None = None,
        max_retries: int | None = None,
        refresh: int | None = None,
    ):
        self.route = route
        self.refresh_button = refresh_button
        self.control_after_refresh = control_after_refresh
        self.timeout = timeout
        self.max_retries = max_retries
        self.refresh = refresh

    def as_dict(self) -> dict[str, Any]:
        return prune_dict(dict(vars(self)))


class _StringIOType(str):
    """A type name that matches ``*`` and any type set containing, or contained in, its own."""

    def __ne__(self, value: object) -> bool:
        if self == "*" or value == "*":
            return False
        if not isinstance(value, str):
            return True
        a, b = frozenset(self.split(",")), frozenset(value.split(","))
        return not (a <= b or b <= a)

    __hash__ = str.__hash__


class _IO:
    Parent: Any = None

    @property
    def io_type(self) -> Any:
        return self.Parent.io_type

    @property
    def Type(self) -> Any:  # noqa: N802 - ComfyUI's name
        return self.Parent.Type


class Input(_IO):
    def __init__(
        self,
        id: str,  # noqa: A002 - ComfyUI's keyword
        display_name: str | None = None,
        optional: bool = False,
        tooltip: str | None = None,
        lazy: bool | None = None,
        extra_dict: dict[str, Any] | None = None,
    ):
        self.id = id
        self.display_name = display_name
        self.optional = optional
        self.tooltip = tooltip
        self.lazy = lazy
        self.extra_dict = extra_dict or {}

    def as_dict(self) -> dict[str, Any]:
        base = {"display_name": self.display_name, "optional": self.optional}
        base |= {"tooltip": self.tooltip, "lazy": self.lazy}
        return prune_dict(base) | prune_dict(self.extra_dict)

    def get_io_type(self) -> Any:
        return _StringIOType(self.io_type)


class WidgetInput(Input):
    def __init__(
        self,
        id: str,  # noqa: A002
        display_name: str | None = None,
        optional: bool = False,
        tooltip: str | None = None,
        lazy: bool | None = None,
        default: Any = None,
        socketless: bool | None = None,
        widget_type: str | None = None,
        force_input: bool | None = None,
        extra_dict: dict[str, Any] | None = None,
    ):
        super().__init__(id, display_name, optional, tooltip, lazy, extra_dict)
        self.default = default
        self.socketless = socketless
        self.widget_type = widget_type
        self.force_input = force_input

    def as_dict(self) -> dict[str, Any]:
        widget = {"default": self.default, "socketless": self.socketless}
        widget |= {"widgetType": self.widget_type, "forceInput": self.force_input}
        return super().as_dict() | prune_dict(widget)

    def get_io_type(self) -> Any:
        return self.widget_type if self.widget_type is not None else super().get_io_type()


class Output(_IO):
    def __init__(
        self,
        id: str | None = None,  # noqa: A002
        display_name: str | None = None,
        tooltip: str | None = None,
        is_output_list: bool = False,
    ):
        self.id = id
        self.display_name = display_name
        self.tooltip = tooltip
        self.is_output_list = is_output_list

    def as_dict(self) -> dict[str, Any]:
        return prune_dict(
            {
                "display_name": self.display_name,
                "tooltip": self.tooltip,
                "is_output_list": self.is_output_list,
            }
        )

    def get_io_type(self) -> Any:
        return self.io_type


class ComfyTypeI:
    """A type with an input only."""

    Type: Any = Any
    io_type: Any = None
    Input: type[Input] = Input


class ComfyTypeIO(ComfyTypeI):
    """A type with an input and an output."""

    Output: type[Output] = Output


def comfytype(io_type: str, **_kwargs: Any) -> Any:
    """Make the decorated class a type named ``io_type``, with its own Input and Output classes."""

    def decorate(cls: type) -> type:
        if not issubclass(cls, ComfyTypeI):
            attrs = {k: v for k, v in vars(cls).items() if k not in ("__dict__", "__weakref__")}
            cls = type(cls.__name__, (cls, ComfyTypeIO), attrs)
        cls.io_type = _StringIOType(io_type)
        for name in ("Input", "Output"):
            inner = getattr(cls, name, None)
            if inner is not None:
                setattr(
                    cls, name, type(inner.__name__, (inner,), {"Parent": cls, "__module__": cls.__module__})
                )
        return cls

    return decorate


def Custom(io_type: str) -> type[ComfyTypeIO]:  # noqa: N802 - ComfyUI's name
    """A type for a name of your own (``io.Custom("MY_TYPE").Input("x")``)."""

    @comfytype(io_type=io_type)
    class CustomComfyType(ComfyTypeIO):
        pass

    return CustomComfyType
