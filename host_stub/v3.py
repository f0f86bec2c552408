"""How the host calls V3 nodes (``comfy_api.latest.io.ComfyNode`` subclasses), ours or ComfyUI's.

A V3 node is a class whose functions are classmethods. Its optional functions
(``validate_inputs``, ``fingerprint_inputs``, ``check_lazy_status``) count only when the class
overrides the base class's placeholder. Hidden inputs are not passed as arguments: each call runs
on a fresh subclass whose ``hidden`` attribute holds them. Recognised by shape (not by import),
so the real ComfyUI's V3 classes work the same way when its modules are the ones loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# V1 name -> V3 name of the optional functions.
V3_NAMES = {
    "VALIDATE_INPUTS": "validate_inputs",
    "IS_CHANGED": "fingerprint_inputs",
    "check_lazy_status": "check_lazy_status",
}


def is_v3(cls: Any) -> bool:
    return isinstance(cls, type) and hasattr(cls, "GET_SCHEMA") and hasattr(cls, "PREPARE_CLASS_CLONE")


def overrides(cls: type, name: str) -> bool:
    """True when ``cls`` (or a class between it and the V3 base) defines ``name`` itself."""
    base = cls.GET_BASE_CLASS()
    for klass in cls.__mro__:
        if klass is base:
            return False
        if name in vars(klass):
            return True
    return False


def optional_function(target: Any, v1_name: str) -> str | None:
    """The name to call for one of V1's optional functions on ``target`` (class or instance), or None."""
    cls = target if isinstance(target, type) else type(target)
    if is_v3(cls):
        name = V3_NAMES[v1_name]
        return name if overrides(cls, name) else None
    return v1_name if getattr(target, v1_name, None) is not None else None


def hidden_kinds(cls: type) -> list[str]:
    """The hidden inputs a V3 node asks for (``"UNIQUE_ID"``, ``"PROMPT"``, ...)."""
    hidden = cls.INPUT_TYPES().get("hidden") or {}
    kinds = []
    for spec in hidden.values():
        kind = spec[0] if isinstance(spec, (list, tuple)) else spec
        kinds.append(str(getattr(kind, "value", kind)))
    return kinds


def bound_function(target: Any, name: str, hidden: dict[str, Any] | None) -> Callable[..., Any]:
    """``target.<name>``; for V3, bound to a subclass carrying ``hidden`` (kind -> value)."""
    cls = target if isinstance(target, type) else type(target)
    if not is_v3(cls):
        return getattr(target, name)
    # Keyed by the kind strings: Hidden is a str enum, so its members find them.
    clone = cls.PREPARE_CLASS_CLONE(dict(hidden or {}))
    return getattr(clone, name)
