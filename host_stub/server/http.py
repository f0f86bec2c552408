"""HTTP plumbing: JSON errors, bounded JSON bodies, and the errors and token middlewares (the
origin and host checks are in :mod:`host_stub.server.sites`).

Every error a client can cause is answered in JSON, in the shape ComfyUI uses for ``POST
/prompt`` errors (``{"error": {"type", "message", "details", "extra_info"}, "node_errors": {}}``),
400 naming the field at fault; storage that cannot be written (a full disk, a read-only queue
database) is 507. Anything else is a bug: logged with its traceback here, answered 500 without one.
"""

from __future__ import annotations

import errno
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from host_stub.server.store import StoreUnwritable

log = logging.getLogger("host_stub.server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TOKEN_COOKIE = "host_stub_token"
MAX_DEPTH = 100  # JSON nested deeper than this is refused: copying or storing it would overflow the stack
QUERY_INT_LIMIT = 2**53  # the largest integer a query parameter may give (JSON's exact integers)
FULL_DISK = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)


class HTTPError(Exception):
    def __init__(self, status: int, message: str, kind: str = "bad_request", details: str = ""):
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.details = details


def error_body(kind: str, message: str, details: str = "") -> dict[str, Any]:
    error = {"type": kind, "message": message, "details": details, "extra_info": {}}
    return {"error": error, "node_errors": {}}


def json_error(status: int, kind: str, message: str, details: str = "") -> web.Response:
    return web.json_response(error_body(kind, message, details), status=status)


async def read_json(request: web.Request, limit: int, empty: Any = None) -> Any:
    """The request's JSON body, at most ``limit`` bytes; ``empty`` (if not None) for no body."""
    if request.content_length is not None and request.content_length > limit:
        raise HTTPError(413, f"request body over the limit of {limit} bytes", "body_too_large")
    body = bytearray()
    async for chunk in request.content.iter_chunked(1 << 16):
        body += chunk
        if len(body) > limit:
            raise HTTPError(413, f"request body over the limit of {limit} bytes", "body_too_large")
    if not body.strip() and empty is not None:
        return empty
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HTTPError(400, "the request body is not valid JSON", "invalid_json", str(exc)) from None
    except RecursionError:
        raise HTTPError(400, f"the request body is nested more than {MAX_DEPTH} levels deep",
                        "too_deep") from None
    check_depth(data)
    return data


def check_depth(data: Any, limit: int = MAX_DEPTH) -> None:
    """Refuse (400) JSON nested deeper than ``limit``, naming the top-level field it is in."""
    stack = [(value, 2, key) for key, value in data.items()] if isinstance(data, dict) else [(data, 1, None)]
    while stack:
        value, depth, field = stack.pop()
        if not isinstance(value, (dict, list)):
            continue
        if depth > limit:
            where = "the request body" if field is None else f"'{field}'"
            message = f"{where} is nested more than {limit} levels deep"
            raise HTTPError(400, message, "too_deep", str(field or ""))
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1, field) for child in children)


async def read_object(request: web.Request, limit: int, empty: Any = None) -> dict[str, Any]:
    data = await read_json(request, limit, empty)
    if not isinstance(data, dict):
        raise HTTPError(400, "the request body must be a JSON object", "invalid_json")
    return data


def query_int(request: web.Request, name: str) -> int | None:
    value = request.rel_url.query.get(name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise HTTPError(400, f"{name} must be an integer, not {value!r}", details=name) from None
    if abs(number) > QUERY_INT_LIMIT:
        raise HTTPError(400, f"{name} is out of range ({value})", details=name)
    return number


# --- middlewares ------------------------------------------------------------------------------------


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except HTTPError as exc:
        return json_error(exc.status, exc.kind, exc.message, exc.details)
    except web.HTTPRequestEntityTooLarge as exc:
        return json_error(413, "body_too_large", exc.text or "request body too large")
    except StoreUnwritable as exc:  # logged by the store
        return json_error(507, "queue_unwritable", "the queue database cannot be written", str(exc))
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            return json_error(400, "invalid_path", "a file name is too long", exc.strerror or "")
        if exc.errno not in FULL_DISK:
            return _server_error(request, exc)
        log.error("%s %s: %s", request.method, request.path, exc)
        why = exc.strerror or str(exc)
        return json_error(507, "insufficient_storage", "the server cannot store this", why)
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            return json_error(exc.status, "http_error", exc.reason)
        raise
    except Exception as exc:  # noqa: BLE001 - logged here; the client gets no traceback
        return _server_error(request, exc)


def _server_error(request: web.Request, exc: BaseException) -> web.Response:
    log.error("error handling %s %s", request.method, request.path, exc_info=exc)
    return json_error(500, "server_error", f"internal error ({type(exc).__name__})")


def token_middleware(token: str | None) -> Any:
    """With a token: every request needs ``Authorization: Bearer TOKEN``, ``?token=TOKEN`` or the
    cookie a ``?token=`` request sets (so that a browser can load the editor from one link)."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if token is None:
            return await handler(request)
        header = request.headers.get("Authorization", "")
        given = header[7:].strip() if header.lower().startswith("bearer ") else None
        from_query = request.rel_url.query.get("token")
        given = given or from_query or request.cookies.get(TOKEN_COOKIE)
        if given is None or not hmac.compare_digest(given.encode(), token.encode()):
            return json_error(401, "unauthorized", "a valid token is required (Authorization: Bearer TOKEN)")
        response = await handler(request)
        if from_query and not response.prepared:
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict")
        return response

    return check

