"""Option nodes whose widgets use -1 for "the model's own value": checking a widget, and the settings
with the model's own values put in."""

from __future__ import annotations

import dataclasses
import math
from typing import TypeVar

from i2v_nodes.errors import InputError

Settings = TypeVar("Settings")


def with_own(options: Settings | None, own: Settings) -> Settings:
    """The options (a settings dataclass) with every -1 replaced by the model's own value."""
    if options is None:
        return own
    return type(own)(**{field.name: getattr(own, field.name) if getattr(options, field.name) == -1
                        else getattr(options, field.name) for field in dataclasses.fields(options)})


def check_own_or_range(name: str, kind: str, value: object, high: float) -> None:
    """Raise InputError unless ``value`` is -1 (the model's own) or in 0..high (whole for INT)."""
    number = isinstance(value, int) if kind == "INT" else isinstance(value, (int, float))
    if isinstance(value, bool) or not number or not math.isfinite(value) \
            or not (value == -1 or 0 <= value <= high):
        whole = "a whole number" if kind == "INT" else "a number"
        raise InputError(name, f"expected -1 (the model's own) or {whole} from 0 to {high:g}, got {value!r}")
