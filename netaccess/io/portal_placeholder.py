"""A stand-in for the captive portal on the HTTP listener until the portal issue lands.

It proves the enforcement path end to end: captive HTTP redirected by the ruleset arrives on
the listener the enforcer handed over. Every request gets a small page saying so.
"""

from __future__ import annotations

import logging
import socket

import h11
import trio

log = logging.getLogger("netaccess.portal")

BODY = b"netaccess captive portal (placeholder)\n"
REQUEST_TIMEOUT = 10.0
MAX_CONNECTIONS = 256


async def serve(
    listener: socket.socket, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    listener.setblocking(False)
    listeners = [trio.SocketListener(trio.socket.from_stdlib_socket(listener))]
    slots = trio.CapacityLimiter(MAX_CONNECTIONS)

    async def handle(stream: trio.SocketStream) -> None:
        async with slots:
            try:
                with trio.move_on_after(REQUEST_TIMEOUT):
                    await _answer_one(stream)
            except (trio.BrokenResourceError, h11.ProtocolError):
                pass
            finally:
                await trio.aclose_forcefully(stream)

    await trio.serve_listeners(handle, listeners, task_status=task_status)  # type: ignore[arg-type]


async def _answer_one(stream: trio.SocketStream) -> None:
    conn = h11.Connection(h11.SERVER)
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(16384)
            conn.receive_data(data)
            if not data:
                return
            continue
        if isinstance(event, h11.Request):
            headers = [
                ("content-type", "text/plain; charset=utf-8"),
                ("content-length", str(len(BODY))),
                ("cache-control", "no-store"),
                ("connection", "close"),
            ]
            await stream.send_all(conn.send(h11.Response(status_code=200, headers=headers)))
            await stream.send_all(conn.send(h11.Data(data=BODY)))
            await stream.send_all(conn.send(h11.EndOfMessage()))
            return
        return
