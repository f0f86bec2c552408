"""The fields of a ``POST /prompt`` body, checked at the door.

Everything a prompt brings is checked before it is queued, so that nothing in the queue can fail
the worker or the database later: a bad field is a 400 that names it. (The body's depth is
checked for every JSON route by :func:`host_stub.server.http.read_json`; its size by the body
limit.) The checks accept what ComfyUI accepts from its own clients: ``number`` as a number or a
numeric string, ``prompt_id`` as a string or an integer.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

from host_stub.server.http import HTTPError

MAX_ID_LENGTH = 256


def _field_error(name: str, message: str) -> HTTPError:
    return HTTPError(400, f"'{name}' {message}", "invalid_field", name)


def number(data: dict[str, Any]) -> float | None:
    """``number``: a finite number or a numeric string, as ComfyUI takes it; None when absent."""
    value = data.get("number")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _field_error("number", "must be a number")
    try:
        found = float(value)
    except (ValueError, OverflowError):
        raise _field_error("number", f"must be a finite number, not {str(value)[:40]!r}") from None
    if not math.isfinite(found):
        raise _field_error("number", f"must be a finite number, not {str(value)[:40]!r}")
    return found


def _identifier(value: Any, name: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise _field_error(name, "must be a string")
    if len(value) > MAX_ID_LENGTH:
        raise _field_error(name, f"is longer than {MAX_ID_LENGTH} characters")
    if not value.isprintable():
        raise _field_error(name, "must not contain control characters")
    return value


def prompt_id(data: dict[str, Any]) -> str:
    """``prompt_id``: the client's own id (a string or an integer), or a new one."""
    value = data.get("prompt_id")
    if value is None or value == "":
        return str(uuid.uuid4())
    return _identifier(value, "prompt_id")


def optional_id(value: Any, name: str) -> str | None:
    """A ``client_id`` or ``prompt_id`` that may be absent (None)."""
    return None if value is None else _identifier(value, name)


def extra_data(data: dict[str, Any]) -> dict[str, Any]:
    """``extra_data`` (an object), with the body's ``client_id`` put in, as ComfyUI does."""
    extra = data.get("extra_data")
    extra = {} if extra is None else extra
    if not isinstance(extra, dict):
        raise _field_error("extra_data", "must be an object")
    if "client_id" in data:
        extra["client_id"] = optional_id(data["client_id"], "client_id")
    elif "client_id" in extra:
        optional_id(extra["client_id"], "extra_data.client_id")
    return extra


def targets(data: dict[str, Any]) -> list[str] | None:
    """``partial_execution_targets``: a list of node ids, or None."""
    value = data.get("partial_execution_targets")
    if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise _field_error("partial_execution_targets", "must be a list of node ids")
    return value
