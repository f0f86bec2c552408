"""Stand-in for ``comfy_api.latest.io``: V3 nodes (``io.ComfyNode``), their ``io.Schema`` and outputs.

A V3 node is a class with classmethods ``define_schema`` (an :class:`Schema`) and ``execute``
(returning a :class:`NodeOutput`, a tuple, or nothing), and optionally ``validate_inputs``,
``fingerprint_inputs`` and ``check_lazy_status``. For the host it also answers V1's class
attributes (``INPUT_TYPES``, ``RETURN_TYPES``, ``FUNCTION``, ``OUTPUT_NODE``...), derived from the
schema, and ``GET_NODE_INFO_V1`` gives its ``/object_info`` entry in ComfyUI's shape.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import Enum
from typing import Any

from host_stub.shim.graph_utils import ExecutionBlocker
from host_stub.shim.v3_types import (  # noqa: F401 - re-exported: io.<name>
    ComfyTypeI,
    ComfyTypeIO,
    Custom,
    FolderType,
    Input,
    NumberDisplay,
    Output,
    RemoteOptions,
    UploadType,
    WidgetInput,
    comfytype,
)
from host_stub.shim.v3_widgets import Boolean, Combo, Float, Int, MultiCombo, String, plain_types  # noqa: F401

globals().update(plain_types())  # io.Image, io.Mask, io.Video, io.AnyType, ...


class Hidden(str, Enum):
    unique_id = "UNIQUE_ID"
    prompt = "PROMPT"
    extra_pnginfo = "EXTRA_PNGINFO"
    dynprompt = "DYNPROMPT"
    auth_token_comfy_org = "AUTH_TOKEN_COMFY_ORG"
    api_key_comfy_org = "API_KEY_COMFY_ORG"


class HiddenHolder:
    """``cls.hidden`` while a V3 function runs: the hidden values it asked for (others are None)."""

    def __init__(self, values: dict[str, Any]):
        for member in Hidden:
            setattr(self, member.name, values.get(member.value))

    def __getattr__(self, key: str) -> Any:
        return None

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> HiddenHolder:
        return cls({str(getattr(k, "value", k)): v for k, v in (d or {}).items()})


@dataclass
class NodeInfoV1:
    input: dict[str, Any] | None = None
    input_order: dict[str, list[str]] | None = None
    output: list[Any] | None = None
    output_is_list: list[bool] | None = None
    output_name: list[str] | None = None
    output_tooltips: list[str | None] | None = None
    name: str | None = None
    display_name: str | None = None
    description: str | None = None
    python_module: Any = None
    category: str | None = None
    output_node: bool | None = None
    deprecated: bool | None = None
    experimental: bool | None = None
    api_node: bool | None = None


@dataclass
class Schema:
    node_id: str
    display_name: str | None = None
    category: str = "sd"
    inputs: list[Input] | None = None
    outputs: list[Output] | None = None
    hidden: list[Hidden] | None = None
    description: str = ""
    is_input_list: bool = False
    is_output_node: bool = False
    is_deprecated: bool = False
    is_experimental: bool = False
    is_api_node: bool = False
    not_idempotent: bool = False
    enable_expand: bool = False

    def validate(self) -> None:
        """Input and output ids must be unique, within and across the two lists."""
        inputs = [i.id for i in self.inputs or []]
        outputs = [o.id for o in self.outputs or []]
        issues = []
        for kind, ids in (("Input", inputs), ("Output", outputs)):
            repeated = [item for item, count in Counter(ids).items() if count > 1]
            if repeated:
                issues.append(f"{kind} ids must be unique, but {repeated} are not.")
        if set(inputs) & set(outputs):
            issues.append(
                f"Ids must be unique between inputs and outputs, but {set(inputs) & set(outputs)} are not."
            )
        if issues:
            raise ValueError("\n".join(issues))

    def finalize(self) -> None:
        """Add the hidden inputs the flags imply, and ids for outputs without one."""
        wanted = []
        if self.is_api_node:
            wanted += [Hidden.auth_token_comfy_org, Hidden.api_key_comfy_org]
        if self.is_output_node:
            wanted += [Hidden.prompt, Hidden.extra_pnginfo]
        for hidden in wanted:
            self.hidden = self.hidden or []
            if hidden not in self.hidden:
                self.hidden.append(hidden)
        for index, output in enumerate(self.outputs or []):
            if output.id is None:
                output.id = f"_{index}_{output.io_type}_"

    def get_v1_info(self, cls: type) -> NodeInfoV1:
        inputs: dict[str, dict[str, Any]] = {"required": {}}
        for item in self.inputs or []:
            options = item.as_dict()
            options.pop("optional", None)
            inputs.setdefault("optional" if item.optional else "required", {})[item.id] = (
                item.get_io_type(),
                options,
            )
        for hidden in self.hidden or []:
            inputs.setdefault("hidden", {})[hidden.name] = (hidden.value,)
        outputs = self.outputs or []
        return NodeInfoV1(
            input=inputs,
            input_order={key: list(value) for key, value in inputs.items()},
            output=[o.io_type for o in outputs],
            output_is_list=[o.is_output_list for o in outputs],
            output_name=[o.display_name or o.io_type for o in outputs],
            output_tooltips=[o.tooltip or None for o in outputs],
            name=self.node_id,
            display_name=self.display_name,
            description=self.description,
            python_module=getattr(cls, "RELATIVE_PYTHON_MODULE", None) or "nodes",
            category=self.category,
            output_node=self.is_output_node,
            deprecated=self.is_deprecated,
            experimental=self.is_experimental,
            api_node=self.is_api_node,
        )


class UIOutput:
    """Base of the ``ui.*`` outputs (``io.NodeOutput(ui=...)``): ``as_dict()`` is what the node shows."""

    def as_dict(self) -> dict[str, Any]:
        raise NotImplementedError


_UIOutput = UIOutput  # ComfyUI's name (comfy_api.latest._io._UIOutput), which packs may subclass


class NodeOutput:
    """What a V3 ``execute`` returns: its outputs, and optionally UI output, an expansion or a block."""

    def __init__(
        self, *args: Any, ui: Any = None, expand: dict[str, Any] | None = None, block_execution: Any = None
    ):
        self.args = args
        self.ui = ui
        self.expand = expand
        self.block_execution = block_execution

    @property
    def result(self) -> tuple[Any, ...] | None:
        return self.args if self.args else None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeOutput:
        result = data.get("result", ())
        if isinstance(result, ExecutionBlocker):
            return cls(block_execution=result.message)
        return cls(*result, ui=data.get("ui"), expand=data.get("expand"))

    def __getitem__(self, index: int) -> Any:
        return self.args[index]


class classproperty:  # noqa: N801 - a decorator, named like property
    def __init__(self, getter: Any):
        self.getter = getter

    def __get__(self, obj: Any, owner: type) -> Any:
        return self.getter(owner)


from host_stub.shim.v3_node import ComfyNode  # noqa: E402, F401 - needs the names above
