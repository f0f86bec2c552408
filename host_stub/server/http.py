"""HTTP plumbing: JSON errors, bounded JSON bodies, and the middlewares (errors, origin, token).

Every error a client can cause is answered in JSON, in the shape ComfyUI uses for ``POST
/prompt`` errors (``{"error": {"type", "message", "details", "extra_info"}, "node_errors": {}}``);
an unexpected failure is logged with its traceback here and answered 500 without one.
"""

from __future__ import annotations

import hmac
import json
import logging
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from host_stub.server.config import is_loopback

log = logging.getLogger("host_stub.server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TOKEN_COOKIE = "host_stub_token"


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
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HTTPError(400, "the request body is not valid JSON", "invalid_json", str(exc)) from None


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
        return int(value)
    except ValueError:
        raise HTTPError(400, f"{name} must be an integer, not {value!r}") from None


# --- middlewares ------------------------------------------------------------------------------------


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except HTTPError as exc:
        return json_error(exc.status, exc.kind, exc.message, exc.details)
    except web.HTTPRequestEntityTooLarge as exc:
        return json_error(413, "body_too_large", exc.text or "request body too large")
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            return json_error(exc.status, "http_error", exc.reason)
        raise
    except Exception as exc:  # noqa: BLE001 - logged here; the client gets no traceback
        log.exception("error handling %s %s", request.method, request.path)
        return json_error(500, "server_error", f"internal error ({type(exc).__name__})")


@web.middleware
async def origin_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse browser requests from another site (a page POSTing to 127.0.0.1:8188): the Origin's
    host and port must be the Host header's."""
    origin = request.headers.get("Origin")
    host = request.headers.get("Host")
    if origin and host and origin != "null":
        parsed = urllib.parse.urlsplit(origin)
        target = urllib.parse.urlsplit("//" + host)
        origin_port = parsed.port or {"http": 80, "https": 443}.get(parsed.scheme)
        host_port = target.port or {"http": 80, "https": 443}.get(request.scheme)
        same = (parsed.hostname or "").lower() == (target.hostname or "").lower() and origin_port == host_port
        if not same:
            log.warning("refused a request from origin %s to host %s", origin, host)
            return json_error(403, "forbidden_origin", "cross-origin requests are refused")
    if request.method == "OPTIONS":
        return web.Response()
    return await handler(request)


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


def loopback_only(addresses: list[str]) -> bool:
    return all(is_loopback(a) for a in addresses)
