"""Stand-in for ``comfy_api.latest`` (and the ``comfy_api.v0_0_2`` / ``v0_0_1`` version modules).

``ComfyExtension`` is what a V3 pack's ``comfy_entrypoint()`` returns (its ``get_node_list()``
names the pack's nodes). ``ComfyAPI().execution.set_progress(...)`` (async) and
``ComfyAPISync().execution.set_progress(...)`` report progress for the node that is running.
"""

from __future__ import annotations

import sys
import types
from abc import ABC, abstractmethod
from typing import Any

from host_stub.shim import comfy_utils, v3_video
from host_stub.shim import v3_io as io
from host_stub.shim import v3_ui as ui
from host_stub.shim.execution_utils import get_executing_context

comfy_io = io


def _report_progress(value: float, max_value: float, node_id: str | None, preview: Any) -> None:
    if node_id is None:
        context = get_executing_context()
        node_id = context.node_id if context is not None else None
    if node_id is None:
        raise ValueError("node_id must be provided if not in executing context")
    utils = sys.modules.get("comfy.utils", comfy_utils)
    hook = getattr(utils, "PROGRESS_BAR_HOOK", None)
    if hook is not None:
        hook(value, max_value, preview, node_id=node_id)


class _Execution:
    async def set_progress(
        self,
        value: float,
        max_value: float,
        node_id: str | None = None,
        preview_image: Any = None,
        ignore_size_limit: bool = False,
    ) -> None:
        _report_progress(value, max_value, node_id, preview_image)


class _ExecutionSync:
    def set_progress(
        self,
        value: float,
        max_value: float,
        node_id: str | None = None,
        preview_image: Any = None,
        ignore_size_limit: bool = False,
    ) -> None:
        _report_progress(value, max_value, node_id, preview_image)


class ComfyAPI_latest:  # noqa: N801 - ComfyUI's name
    VERSION = "latest"
    STABLE = False

    def __init__(self) -> None:
        self.execution = _Execution()


class ComfyAPISync:
    VERSION = "latest"
    STABLE = False

    def __init__(self) -> None:
        self.execution = _ExecutionSync()


ComfyAPI = ComfyAPI_latest


class ComfyExtension(ABC):
    async def on_load(self) -> None:  # noqa: B027 - optional, as in ComfyUI
        """Called when the extension is loaded."""

    @abstractmethod
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        """The V3 node classes this extension provides."""


class _TorchTypesOnUse(type):
    def __getattr__(cls, name: str) -> Any:  # Image, Mask, Latent: torch types, imported on use
        return getattr(v3_video, f"{name}Input")


class Input(metaclass=_TorchTypesOnUse):
    Audio = v3_video.AudioInput
    Video = v3_video.VideoInput


class InputImpl:
    VideoFromFile = v3_video.VideoFromFile
    VideoFromComponents = v3_video.VideoFromComponents


class Types:
    VideoCodec = v3_video.VideoCodec
    VideoContainer = v3_video.VideoContainer
    VideoComponents = v3_video.VideoComponents


def version_module(name: str, version: str) -> types.ModuleType:
    """``comfy_api.v0_0_2`` and the like: the same API under that version's names."""
    module = types.ModuleType(name, f"host_stub's stand-in for {name}.")
    suffix = version.replace(".", "_")
    api = type(f"ComfyAPIAdapter_v{suffix}", (ComfyAPI_latest,), {"VERSION": version})
    sync = type("ComfyAPISync", (ComfyAPISync,), {"VERSION": version})
    exported = {
        "ComfyAPI": api,
        "ComfyAPISync": sync,
        api.__name__: api,
        "Input": Input,
        "InputImpl": InputImpl,
    }
    exported |= {"Types": Types, "ComfyExtension": ComfyExtension, "io": io, "ui": ui}
    module.__dict__.update(exported)
    return module


__all__ = [
    "ComfyAPI",
    "ComfyAPISync",
    "Input",
    "InputImpl",
    "Types",
    "ComfyExtension",
    "io",
    "comfy_io",
    "ui",
]
