"""The value checks of validation and the shapes of its reasons, as ComfyUI writes them."""

from __future__ import annotations

import math
import sys
import traceback
from typing import Any

Reasons = list[dict[str, Any]]


def full_type_name(exc: BaseException) -> str:
    name = getattr(exc, "type_name", None)
    if isinstance(name, str):
        return name
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def types_match(received: Any, expected: Any) -> bool:
    """ComfyUI's link type check: equal (by ``!=``, so custom "any" types work) or overlapping lists."""
    if not received != expected:
        return True
    if not isinstance(received, str) or not isinstance(expected, str):
        return False
    return bool({t.strip() for t in received.split(",")} & {t.strip() for t in expected.split(",")})


def finite_float(value: Any) -> float:
    """``float(value)``, refusing NaN and infinities as ``int()`` refuses them for an INT.

    ComfyUI lets them through (a NaN passes every min/max test) and the node fails later, or
    worse, does not; here they are an ``invalid_input_type`` like any value that is no number.
    """
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"cannot use {number} as a FLOAT value: it must be a finite number")
    return number


def check_value(
    inputs: dict[str, Any], name: str, config: list[Any], skip_ranges: bool, errors: Reasons
) -> None:
    kind, options = config
    value = inputs[name]
    if isinstance(value, dict) and "__value__" in value:
        value = inputs[name] = value["__value__"]
    convert = (
        {"INT": int, "FLOAT": finite_float, "STRING": str, "BOOLEAN": bool}.get(kind)
        if isinstance(kind, str)
        else None
    )
    if convert is not None:
        try:
            value = inputs[name] = convert(value)
        except Exception as exc:  # noqa: BLE001 - any conversion failure is an invalid value
            errors.append(
                reason(
                    "invalid_input_type",
                    f"Failed to convert an input value to a {kind} value",
                    f"{name}, {value}, {exc}",
                    {
                        "input_name": name,
                        "input_config": config,
                        "received_value": json_safe(value),
                        "exception_message": str(exc),
                    },
                )
            )
            return
    if skip_ranges:
        return
    extra = {"input_name": name, "input_config": config, "received_value": json_safe(value)}
    if "min" in options and value < options["min"]:
        errors.append(
            reason(
                "value_smaller_than_min",
                f"Value {value} smaller than min of {options['min']}",
                name,
                extra,
            )
        )
    elif "max" in options and value > options["max"]:
        errors.append(
            reason("value_bigger_than_max", f"Value {value} bigger than max of {options['max']}", name, extra)
        )
    elif isinstance(kind, list) and value not in kind:
        # ComfyUI leaves long lists (scanned model files) out of the message.
        listed = f"(list of length {len(kind)})" if len(kind) > 20 else str(kind)
        errors.append(
            reason(
                "value_not_in_list",
                "Value not in list",
                f"{name}: '{value}' not in {listed}",
                {**extra, "input_config": None if len(kind) > 20 else config},
            )
        )


def reason(kind: str, message: str, details: str, extra: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "message": message, "details": details, "extra_info": extra}


def exception_reason(kind: str, message: str, exc: BaseException) -> dict[str, Any]:
    return {
        "type": kind,
        "message": message,
        "details": str(exc),
        "extra_info": {
            "exception_type": full_type_name(exc),
            "traceback": traceback.format_tb(sys.exc_info()[2] or exc.__traceback__),
        },
    }


def json_safe(value: Any) -> Any:
    """A received value as strict JSON can hold it: a NaN or an infinity as its text (``"nan"``), so an
    error body never carries the bare ``NaN`` that strict JSON parsers refuse."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
