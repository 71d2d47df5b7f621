"""Benchmark peer for hypercorn and uvicorn: the smallest ASGI app that gives the portal's
answer to a captive endpoint (302 to the login page, the wanted URL in `next`, never cached),
byte for byte what netaccess.proto.http.captive_redirect builds for a GET."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

LOGIN_URL = "https://portal.netaccess.test/login"

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def app(scope: Message, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    host = _host(scope["headers"])
    target = scope.get("raw_path") or scope["path"].encode()
    if scope["query_string"]:
        target += b"?" + scope["query_string"]
    location = LOGIN_URL
    if host:
        wanted = f"http://{host}{target.decode('latin-1')}"
        location = f"{LOGIN_URL}?next={quote(wanted, safe='')}"
    body = b"Network login required: " + location.encode() + b"\n"
    await send(
        {
            "type": "http.response.start",
            "status": 302,
            "headers": [
                (b"location", location.encode()),
                (b"cache-control", b"no-store, no-cache, must-revalidate"),
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _host(headers: list[tuple[bytes, bytes]]) -> str:
    """The Host header as the portal reads it: lower-case, without a port."""
    for name, value in headers:
        if name == b"host":
            host = value.decode("latin-1").lower()
            if host.startswith("["):
                return host.split("]", 1)[0] + "]"
            return host.rsplit(":", 1)[0]
    return ""


async def _lifespan(receive: Receive, send: Send) -> None:
    # Nothing to set up or tear down; answering keeps the servers from logging a warning.
    if (await receive())["type"] == "lifespan.startup":
        await send({"type": "lifespan.startup.complete"})
    if (await receive())["type"] == "lifespan.shutdown":
        await send({"type": "lifespan.shutdown.complete"})
