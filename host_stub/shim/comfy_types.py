"""Stand-in for ``comfy.comfy_types`` (and ``comfy.comfy_types.node_typing``): type hints packs import.

``IO`` compares like ComfyUI's: ``"*"`` matches every type, and comma-separated types match when
one set contains the other.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from enum import Enum
from typing import Any, Literal, TypedDict


class StrEnum(str, Enum):
    def __str__(self) -> str:
        return self.value


class IO(StrEnum):
    STRING = "STRING"
    IMAGE = "IMAGE"
    MASK = "MASK"
    LATENT = "LATENT"
    BOOLEAN = "BOOLEAN"
    INT = "INT"
    FLOAT = "FLOAT"
    COMBO = "COMBO"
    CONDITIONING = "CONDITIONING"
    SAMPLER = "SAMPLER"
    SIGMAS = "SIGMAS"
    GUIDER = "GUIDER"
    NOISE = "NOISE"
    CLIP = "CLIP"
    CONTROL_NET = "CONTROL_NET"
    VAE = "VAE"
    MODEL = "MODEL"
    LORA_MODEL = "LORA_MODEL"
    LOSS_MAP = "LOSS_MAP"
    CLIP_VISION = "CLIP_VISION"
    CLIP_VISION_OUTPUT = "CLIP_VISION_OUTPUT"
    STYLE_MODEL = "STYLE_MODEL"
    GLIGEN = "GLIGEN"
    UPSCALE_MODEL = "UPSCALE_MODEL"
    AUDIO = "AUDIO"
    WEBCAM = "WEBCAM"
    POINT = "POINT"
    FACE_ANALYSIS = "FACE_ANALYSIS"
    BBOX = "BBOX"
    SEGS = "SEGS"
    VIDEO = "VIDEO"
    ANY = "*"
    NUMBER = "FLOAT,INT"
    PRIMITIVE = "STRING,FLOAT,INT,BOOLEAN"

    def __ne__(self, value: object) -> bool:
        return not types_compatible(self, value)


def types_compatible(a: str, b: object) -> bool:
    """ComfyUI's loose type equality: ``*`` matches anything; otherwise one type set contains the other."""
    if a == "*" or b == "*":
        return True
    if not isinstance(b, str):
        return False
    left, right = frozenset(str(a).split(",")), frozenset(b.split(","))
    return left <= right or right <= left


class RemoteInputOptions(TypedDict):
    route: str
    refresh_button: bool
    control_after_refresh: Literal["first", "last"]
    timeout: int
    max_retries: int
    refresh: int


class MultiSelectOptions(TypedDict, total=False):
    placeholder: str
    chip: bool


class InputTypeOptions(TypedDict, total=False):
    default: Any
    defaultInput: bool
    forceInput: bool
    lazy: bool
    rawLink: bool
    tooltip: str
    socketless: bool
    widgetType: str
    min: float
    max: float
    step: float
    round: float
    label_on: str
    label_off: str
    multiline: bool
    placeholder: str
    dynamicPrompts: bool
    image_upload: bool
    image_folder: Literal["input", "output", "temp"]
    remote: RemoteInputOptions
    control_after_generate: bool
    options: list[Any]
    multi_select: MultiSelectOptions


class HiddenInputTypeDict(TypedDict, total=False):
    node_id: Literal["UNIQUE_ID"]
    unique_id: Literal["UNIQUE_ID"]
    prompt: Literal["PROMPT"]
    extra_pnginfo: Literal["EXTRA_PNGINFO"]
    dynprompt: Literal["DYNPROMPT"]


class InputTypeDict(TypedDict, total=False):
    required: dict[str, tuple[Any, InputTypeOptions]]
    optional: dict[str, tuple[Any, InputTypeOptions]]
    hidden: HiddenInputTypeDict


class ComfyNodeABC(ABC):
    """Base class for V1 nodes that want type hints; the attributes are only declared."""

    DESCRIPTION: str
    CATEGORY: str
    EXPERIMENTAL: bool
    DEPRECATED: bool
    API_NODE: bool | None
    OUTPUT_NODE: bool
    INPUT_IS_LIST: bool
    OUTPUT_IS_LIST: tuple[bool, ...]
    RETURN_TYPES: tuple[Any, ...]
    RETURN_NAMES: tuple[str, ...]
    OUTPUT_TOOLTIPS: tuple[str, ...]
    FUNCTION: str

    @classmethod
    @abstractmethod
    def INPUT_TYPES(cls) -> InputTypeDict:  # noqa: N802 - ComfyUI's name
        return {"required": {}}


class CheckLazyMixin:
    def check_lazy_status(self, **kwargs: Any) -> list[str]:
        """Ask for every input not evaluated yet."""
        return [name for name, value in kwargs.items() if value is None]


class FileLocator(TypedDict):
    filename: str
    subfolder: str
    type: Literal["input", "temp", "output"]


UnetApplyFunction = Callable[..., Any]
UnetApplyConds = dict
UnetParams = dict
UnetWrapperFunction = Callable[..., Any]

__all__ = [
    "UnetWrapperFunction",
    "UnetApplyConds",
    "UnetParams",
    "UnetApplyFunction",
    "IO",
    "InputTypeDict",
    "ComfyNodeABC",
    "CheckLazyMixin",
    "FileLocator",
]
