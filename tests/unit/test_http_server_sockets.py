"""The portal's HTTP server on real (Unix socketpair) sockets: the non-blocking socket path
that plain TCP connections take, with its timeouts kept by the server's timekeeper, under
trio's autojump clock."""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import AsyncIterator

import trio
import trio.testing

from netaccess.io.http_server import HttpServer, HttpTimeouts, Peer, StreamedResponse
from netaccess.proto.http import Request, Response
from tests.unit.test_http_server import PEER, Client, echo_path


def socket_pair() -> tuple[trio.SocketStream, socket.socket]:
    """(the client's stream, the server's non-blocking socket)."""
    client, served = socket.socketpair()
    served.setblocking(False)
    return trio.SocketStream(trio.socket.from_stdlib_socket(client)), served


async def read_all(stream: trio.abc.Stream) -> bytes:
    received = bytearray()
    while chunk := await stream.receive_some(65536):
        received += chunk
    return bytes(received)


async def test_kept_alive_and_pipelined_requests_are_answered_in_order() -> None:
    client_stream, served = socket_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(HttpServer(echo_path).serve_connection, served, PEER)
        client = Client(client_stream)
        await client.get("/first")
        assert (await client.response())[2] == b"GET /first"
        await client.send_raw(
            b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
            b"GET /3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        answer = await read_all(client_stream)
    assert re.findall(rb"(?:GET|POST) /\d", answer) == [b"GET /1", b"POST /2", b"GET /3"]


async def test_a_request_trickling_in_gets_408_at_the_request_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    client_stream, served = socket_pair()
    srv = HttpServer(echo_path, timeouts=HttpTimeouts(request=10.0))
    started = trio.current_time()
    answer = b""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(srv.serve_connection, served, PEER)
        # A byte every 2 s (52 s in all), listening for an answer in between, as a client
        # that waits for its response does.
        for byte in b"GET / HTTP/1.1\r\nHost: x\r\n":
            await client_stream.send_all(bytes([byte]))
            with trio.move_on_after(2):
                answer = await client_stream.receive_some(65536)
            if answer:
                break
        answer += await read_all(client_stream)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert 10 <= trio.current_time() - started < 13


async def test_a_client_that_stops_reading_is_cut_off_at_the_send_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def endless(request: Request, peer: Peer) -> StreamedResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(1024):
                yield b"x" * 65536

        return StreamedResponse(Response(200), 1024 * 65536, chunks)

    client_stream, served = socket_pair()
    srv = HttpServer(endless, timeouts=HttpTimeouts(send=5.0))
    await client_stream.send_all(b"GET /agent HTTP/1.1\r\nHost: x\r\n\r\n")
    started = trio.current_time()
    await srv.serve_connection(served, PEER)  # returns once it gave up on the client
    assert 5 <= trio.current_time() - started < 6
    received = await read_all(client_stream)  # what the buffers held, then the end
    assert received.startswith(b"HTTP/1.1 200 ")
    assert len(received) < 1024 * 65536


async def test_a_send_that_waited_once_does_not_time_out_the_rest_of_the_response(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The first chunk fills the socket buffers and waits for the client; the rest come
    # slowly from the handler (as file reads might) for longer than the send timeout.
    first = b"a" * (4 * 1024 * 1024)

    async def slow_tail(request: Request, peer: Peer) -> StreamedResponse:
        async def chunks() -> AsyncIterator[bytes]:
            yield first
            for _ in range(12):
                await trio.sleep(1)
                yield b"b"

        return StreamedResponse(Response(200), len(first) + 12, chunks)

    client_stream, served = socket_pair()
    srv = HttpServer(slow_tail, timeouts=HttpTimeouts(send=5.0))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(srv.serve_connection, served, PEER)
        client = Client(client_stream)
        await client.get("/agent", connection="close")
        await trio.sleep(1)  # let the first chunk block on full buffers
        status, _, body = await client.response()
    assert status == 200
    assert body == first + b"b" * 12


async def test_a_refused_request_with_more_bytes_behind_it_still_gets_its_answer() -> None:
    # The server refuses at the head while the body is still arriving. Closing over unread
    # bytes would reset the connection and could destroy the 400 before the client reads
    # it; the server half-closes and drops the rest first (RFC 9112 §9.6).
    client_stream, served = socket_pair()
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"

    async def send_body() -> None:
        with contextlib.suppress(trio.BrokenResourceError):
            await client_stream.send_all(head + b"x" * 300_000)
            await client_stream.send_eof()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(HttpServer(echo_path).serve_connection, served, PEER)
        nursery.start_soon(send_body)
        answer = await read_all(client_stream)
    assert answer.startswith(b"HTTP/1.1 400 ")
