"""Who may call the service: the API key, the local token, and where it may listen.

* Loopback by default. Any other bind address needs ``SIMIMG_API_KEY``; without one the
  service refuses to start.
* With a key, every request (REST API, OpenAPI docs and the page with its own API) must
  send ``Authorization: Bearer KEY``. A browser opens the page once as ``/?api_key=KEY``:
  the key is then kept in an HttpOnly cookie and removed from the address bar.
* The service's local token (recorded in the data directory, readable only by its owner)
  is accepted like the key and marks the caller as trusted: the CLI on this machine.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from service.errors import ConfigError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "simimg_api_key"
QUERY_KEY = "api_key"
TRUSTED_SCOPE_KEY = "simimg.trusted"


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and names that resolve only to those ("localhost")."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(
        ipaddress.ip_address(info[4][0]).is_loopback for info in infos
    )


def check_bind(host: str, api_key: str | None) -> None:
    """Refuse to listen beyond this machine without an API key."""
    if not is_loopback(host) and not api_key:
        raise ConfigError(
            f"--host {host} is reachable from other machines: set SIMIMG_API_KEY (clients "
            "then send 'Authorization: Bearer KEY'), or bind 127.0.0.1"
        )


class KeyMiddleware:
    """Pure ASGI middleware (streams and server-sent events pass through untouched)."""

    def __init__(self, app: ASGIApp, api_key: str | None, local_token: str) -> None:
        self.app = app
        self.api_key = api_key
        self.local_token = local_token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        presented = _bearer(scope)
        trusted = bool(presented) and hmac.compare_digest(presented, self.local_token)
        scope[TRUSTED_SCOPE_KEY] = trusted
        if self.api_key is None or trusted or _matches(presented, self.api_key):
            await self.app(scope, receive, send)
            return
        cookie = _cookie(scope)
        if cookie is not None and _matches(cookie, self.api_key):
            await self.app(scope, receive, send)
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if scope["type"] == "http" and _matches(query.get(QUERY_KEY), self.api_key):
            await _redirect_with_cookie(scope, send, query, self.api_key)
            return
        await _unauthorized(scope, send, "missing API key" if not presented and cookie is None
                            else "wrong API key")


def _matches(presented: str | None, key: str) -> bool:
    return presented is not None and hmac.compare_digest(presented.encode(), key.encode())


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {name.lower(): value for name, value in scope.get("headers", [])}


def _bearer(scope: Scope) -> str | None:
    value = _headers(scope).get(b"authorization", b"").decode("latin-1")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _cookie(scope: Scope) -> str | None:
    raw = _headers(scope).get(b"cookie", b"").decode("latin-1")
    for part in raw.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return None


async def _redirect_with_cookie(
    scope: Scope, send: Send, query: dict[str, str], key: str
) -> None:
    rest = urlencode({k: v for k, v in query.items() if k != QUERY_KEY})
    location = scope.get("root_path", "") + scope["path"] + (f"?{rest}" if rest else "")
    await send({"type": "http.response.start", "status": 303, "headers": [
        (b"location", location.encode("latin-1")),
        (b"set-cookie", f"{COOKIE}={key}; HttpOnly; SameSite=Strict; Path=/".encode()),
        (b"content-length", b"0"),
    ]})
    await send({"type": "http.response.body", "body": b""})


async def _unauthorized(scope: Scope, send: Send, message: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = json.dumps({"error": "unauthorized", "message": f"{message}: send "
                       "'Authorization: Bearer KEY' (SIMIMG_API_KEY)"}).encode()
    await send({"type": "http.response.start", "status": 401, "headers": [
        (b"content-type", b"application/json"),
        (b"www-authenticate", b'Bearer realm="simimg"'),
        (b"content-length", str(len(body)).encode()),
    ]})
    await send({"type": "http.response.body", "body": body})
