"""Which sites may talk to the server: the ``Origin`` and ``Host`` checks.

A browser lets any web page send a "simple" request (a form POST, ``text/plain``) to
``127.0.0.1:8188``, and a DNS-rebinding page can make its own name point there and read the
answers. So, as ComfyUI's origin check does (and stricter):

- a request with an ``Origin`` header is served only if that origin is the server as the request
  names it (the ``Host`` header's host and port); ``Origin: null`` (sandboxed frames, ``file://``
  pages, some redirects) and origins that do not parse are refused. Clients that are not browsers
  send no ``Origin`` and are not concerned;
- without a token, the ``Host`` header must name the server: a loopback name or address
  (``localhost``, ``*.localhost``, ``127.x.y.z``, ``::1``), an address it listens on (any IP
  address when it listens on all of them), this machine's host name, or a name given with
  ``--allow-host`` (``*``: any). With a token the token is the check, as behind a reverse proxy.

Refusals are 403 with a JSON body that says which header and why.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import urllib.parse
from collections.abc import Iterable

from aiohttp import web

from host_stub.server.http import Handler, json_error

log = logging.getLogger("host_stub.server")

WILDCARDS = ("0.0.0.0", "::", "")
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return None


def split_host(value: str) -> tuple[str, int | None] | None:
    """A ``Host`` header (``name``, ``name:port``, ``[v6]:port``) as (lower-case name, port), or
    None when it does not parse as one host."""
    try:
        parsed = urllib.parse.urlsplit("//" + value)
        port = parsed.port
    except ValueError:
        return None
    name = (parsed.hostname or "").rstrip(".")
    if not name or parsed.username is not None or parsed.path or parsed.query or parsed.fragment:
        return None
    return name.lower(), port


class Sites:
    """The names a request may give as its ``Host`` (checked without a token only)."""

    def __init__(self, listen: Iterable[str], allow_hosts: Iterable[str] = (), check_host: bool = True):
        self.listen = [a.strip("[]").lower() for a in listen]
        self.names = {n.lower().rstrip(".") for n in allow_hosts}
        self.names.add(socket.gethostname().lower())
        self.check_host = check_host and "*" not in self.names

    def host_allowed(self, name: str) -> bool:
        if name == "localhost" or name.endswith(".localhost") or name in self.names:
            return True
        ip = _ip(name)
        if ip is None:
            return name in self.listen
        if ip.is_loopback or any(w in self.listen for w in WILDCARDS):
            return True
        return any(_ip(a) == ip for a in self.listen)

    def refusal(self, request: web.Request) -> tuple[str, str] | None:
        """(error type, why) if this request is refused, else None."""
        host_header = request.headers.get("Host")
        host = split_host(host_header) if host_header is not None else None
        if host_header is not None and host is None:
            return "forbidden_host", f"the Host header {host_header!r} does not name a host"
        if self.check_host and host is not None and not self.host_allowed(host[0]):
            return "forbidden_host", (f"the Host {host[0]!r} is not a name of this server (start it "
                                      f"with --allow-host {host[0]} to accept it)")
        origin = request.headers.get("Origin")
        if origin is not None and not same_origin(origin, host, request.scheme):
            return "forbidden_origin", f"requests from the origin {origin!r} are refused (not this server)"
        return None


def same_origin(origin: str, host: tuple[str, int | None] | None, scheme: str) -> bool:
    """Whether ``origin`` is the host the request was sent to (same name, same port)."""
    if host is None or origin.strip().lower() == "null":
        return False
    try:
        parsed = urllib.parse.urlsplit(origin.strip())
        origin_port = parsed.port or DEFAULT_PORTS.get(parsed.scheme)
    except ValueError:
        return False
    origin_name = (parsed.hostname or "").rstrip(".").lower()
    host_port = host[1] or DEFAULT_PORTS.get(scheme)
    return bool(origin_name) and origin_name == host[0] and origin_port == host_port


def sites_middleware(sites: Sites) -> object:
    """Refuse (403) requests from other sites, then answer ``OPTIONS`` with an empty 200 as
    ComfyUI does (no CORS headers: a browser then sends nothing cross-site)."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        refused = sites.refusal(request)
        if refused is not None:
            kind, why = refused
            log.warning("refused %s %s: %s", request.method, request.path, why)
            return json_error(403, kind, "requests from other sites are refused", why)
        if request.method == "OPTIONS":
            return web.Response()
        return await handler(request)

    return check
