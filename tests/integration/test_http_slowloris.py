"""The portal's HTTP server under a slowloris attack, over real sockets on loopback: 500
connections each sending a byte every 5 s must not stop it answering others, and must be
dropped at the request timeout."""

from __future__ import annotations

import socket

import pytest
import trio

from netaccess.io.http_server import HttpServer, HttpTimeouts, Peer, SocketListener
from netaccess.proto.http import Request, Response

pytestmark = pytest.mark.integration

SLOW_CONNECTIONS = 500
REQUEST_TIMEOUT = 10.0
TRICKLE = b"GET / HTTP/1.1\r\nHost: slow.example\r\nX-Padding: " + b"a" * 64


async def answer(request: Request, peer: Peer) -> Response:
    return Response(302, (("location", "https://portal.netaccess.test/login"),), b"")


async def normal_request(port: int) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(
            b"GET /generate_204 HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n"
        )
        received = b""
        while chunk := await stream.receive_some(4096):
            received += chunk
        return received


async def test_slowloris_connections_are_dropped_and_others_are_served_meanwhile() -> None:
    server = HttpServer(
        answer, timeouts=HttpTimeouts(request=REQUEST_TIMEOUT), max_connections=2000
    )
    listener_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener_socket.bind(("127.0.0.1", 0))
    listener_socket.listen(1024)
    port = listener_socket.getsockname()[1]
    dropped_after: list[float] = []
    served: list[float] = []

    async def slow_client(nursery_started: trio.Event) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        started = trio.current_time()
        async with stream:
            try:
                for byte in TRICKLE:  # 80 bytes at one every 5 s: 400 s if nobody stops it
                    await stream.send_all(bytes([byte]))
                    with trio.move_on_after(5):
                        if await stream.receive_some(4096) == b"":
                            break  # the server closed; its 408 came first, or not at all
            except (trio.BrokenResourceError, ConnectionResetError):
                pass
        dropped_after.append(trio.current_time() - started)

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve, [SocketListener(listener_socket)])
            for _ in range(SLOW_CONNECTIONS):
                nursery.start_soon(slow_client, trio.Event())
            await trio.sleep(1)
            while len(dropped_after) < SLOW_CONNECTIONS:
                asked = trio.current_time()
                reply = await normal_request(port)
                assert reply.startswith(b"HTTP/1.1 302 ")
                served.append(trio.current_time() - asked)
                await trio.sleep(0.5)
            server.drain(grace=1)
    # It kept answering while all of them were open, and dropped every one of them itself
    # (trickling on, they would have taken 400 s; the whole test is bounded at 60 s), not
    # before the request timeout: a slow network alone must not get a client dropped.
    assert len(served) >= 10
    assert len(dropped_after) == SLOW_CONNECTIONS
    assert min(dropped_after) >= REQUEST_TIMEOUT - 1
