"""``io.ComfyNode``: the base class of V3 nodes (see :mod:`host_stub.shim.v3_io`)."""

from __future__ import annotations

import inspect
import weakref
from dataclasses import asdict
from typing import Any

from host_stub.shim.graph_utils import ExecutionBlocker
from host_stub.shim.v3_io import HiddenHolder, NodeOutput, Schema, classproperty

# Each V3 class's schema as GET_SCHEMA last finalized it, shared with its per-call clones.
_SCHEMAS: weakref.WeakKeyDictionary[type, Schema] = weakref.WeakKeyDictionary()


def _schema(cls: type) -> Schema:
    schema = _SCHEMAS.get(cls)
    return schema if schema is not None else cls.GET_SCHEMA()


def _outputs(cls: type, attr: str) -> list[Any]:
    return [getattr(o, attr) for o in _schema(cls).outputs or []]


class ComfyNode:
    RELATIVE_PYTHON_MODULE: str | None = None
    SCHEMA: Schema | None = None
    hidden: HiddenHolder | None = None  # set on the class a call runs on
    resources: Any = None

    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError

    @classmethod
    def execute(cls, **kwargs: Any) -> NodeOutput:
        raise NotImplementedError

    @classmethod
    def validate_inputs(cls, **kwargs: Any) -> bool | str:
        raise NotImplementedError

    @classmethod
    def fingerprint_inputs(cls, **kwargs: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def check_lazy_status(cls, **kwargs: Any) -> list[str]:
        """By default: every input not evaluated yet."""
        return [name for name, value in kwargs.items() if value is None]

    def __init__(self) -> None:
        self.local_resources = None
        type(self).VALIDATE_CLASS()

    # --- what the host calls ----------------------------------------------------------------------

    @classmethod
    def GET_BASE_CLASS(cls) -> type:  # noqa: N802 - ComfyUI's names from here on
        return ComfyNode

    @classmethod
    def VALIDATE_CLASS(cls) -> None:
        for name in ("define_schema", "execute"):
            if not any(name in vars(k) for k in cls.__mro__[: cls.__mro__.index(ComfyNode)]):
                raise TypeError(f"No {name} function was defined for node class {cls.__name__}.")

    @classproperty
    def FUNCTION(cls) -> str:  # noqa: N805
        return (
            "EXECUTE_NORMALIZED_ASYNC" if inspect.iscoroutinefunction(cls.execute) else "EXECUTE_NORMALIZED"
        )

    @classmethod
    def EXECUTE_NORMALIZED(cls, *args: Any, **kwargs: Any) -> NodeOutput:
        return cls._normalize(cls.execute(*args, **kwargs))

    @classmethod
    async def EXECUTE_NORMALIZED_ASYNC(cls, *args: Any, **kwargs: Any) -> NodeOutput:
        return cls._normalize(await cls.execute(*args, **kwargs))

    @classmethod
    def _normalize(cls, value: Any) -> NodeOutput:
        if value is None:
            value = NodeOutput()
        elif isinstance(value, tuple):
            value = NodeOutput(*value)
        elif isinstance(value, dict):
            value = NodeOutput.from_dict(value)
        elif isinstance(value, ExecutionBlocker):
            value = NodeOutput(block_execution=value.message)
        elif not isinstance(value, NodeOutput):
            raise TypeError(f"Invalid return type from node: {type(value)}")
        if value.expand is not None and not _schema(cls).enable_expand:
            raise ValueError(
                f"Node {cls.__name__} is not expandable, but expand included in NodeOutput; developer should "
                "set enable_expand=True on node's Schema to allow this."
            )
        return value

    @classmethod
    def PREPARE_CLASS_CLONE(cls, hidden_inputs: dict[str, Any] | None) -> type:
        """A subclass carrying the hidden values of one call (so calls never share them)."""
        clone = type(f"{cls.__name__}Clone", (cls,), {"hidden": HiddenHolder.from_dict(hidden_inputs)})
        clone.__module__ = cls.__module__
        if cls in _SCHEMAS:
            _SCHEMAS[clone] = _SCHEMAS[cls]
        return clone

    @classmethod
    def FINALIZE_SCHEMA(cls) -> Schema:
        schema = cls.define_schema()
        schema.finalize()
        return schema

    @classmethod
    def GET_SCHEMA(cls) -> Schema:
        cls.VALIDATE_CLASS()
        schema = cls.FINALIZE_SCHEMA()
        schema.validate()
        _SCHEMAS[cls] = schema
        cls.SCHEMA = schema
        return schema

    @classmethod
    def INPUT_TYPES(cls, include_hidden: bool = True, return_schema: bool = False) -> Any:
        schema = cls.FINALIZE_SCHEMA()  # afresh: a schema may list files that change
        inputs = schema.get_v1_info(cls).input
        if not include_hidden:
            inputs.pop("hidden", None)
        return (inputs, schema) if return_schema else inputs

    @classmethod
    def GET_NODE_INFO_V1(cls) -> dict[str, Any]:
        return asdict(cls.GET_SCHEMA().get_v1_info(cls))

    # V1's class attributes, from the schema.
    RETURN_TYPES = classproperty(lambda cls: _outputs(cls, "io_type"))
    RETURN_NAMES = classproperty(
        lambda cls: [o.display_name or o.io_type for o in _schema(cls).outputs or []]
    )
    OUTPUT_IS_LIST = classproperty(lambda cls: _outputs(cls, "is_output_list"))
    OUTPUT_TOOLTIPS = classproperty(lambda cls: [o.tooltip or None for o in _schema(cls).outputs or []])
    OUTPUT_NODE = classproperty(lambda cls: _schema(cls).is_output_node)
    INPUT_IS_LIST = classproperty(lambda cls: _schema(cls).is_input_list)
    NOT_IDEMPOTENT = classproperty(lambda cls: _schema(cls).not_idempotent)
    CATEGORY = classproperty(lambda cls: _schema(cls).category)
    DESCRIPTION = classproperty(lambda cls: _schema(cls).description)
    EXPERIMENTAL = classproperty(lambda cls: _schema(cls).is_experimental)
    DEPRECATED = classproperty(lambda cls: _schema(cls).is_deprecated)
    API_NODE = classproperty(lambda cls: _schema(cls).is_api_node)
