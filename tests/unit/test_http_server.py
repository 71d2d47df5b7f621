"""The portal's HTTP/1.1 server over in-memory streams: keep-alive, pipelining, limits,
timeouts (under trio's autojump clock), draining, and garbage."""

from __future__ import annotations

import re

import h11
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from netaccess.io.http_server import HttpServer, HttpTimeouts, Peer
from netaccess.proto.errors import LocalProtocolError, ProtocolError
from netaccess.proto.http import HttpError, HttpLimits, HttpServerConnection, Request, Response

PEER = Peer("198.18.0.10", 40000)


async def echo_path(request: Request, peer: Peer) -> Response:
    return Response(
        200, (("content-type", "text/plain"),), f"{request.method} {request.path}".encode()
    )


def server(**options: object) -> HttpServer:
    return HttpServer(echo_path, **options)  # type: ignore[arg-type]


class Client:
    """An h11 client on the other end of an in-memory stream."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def get(self, path: str, **headers: str) -> None:
        fields = [("host", "example.org"), *headers.items()]
        await self.stream.send_all(
            self.h11.send(h11.Request(method="GET", target=path, headers=fields))
        )
        await self.stream.send_all(self.h11.send(h11.EndOfMessage()))

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        status, headers, body = 0, {}, b""
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                self.h11.receive_data(await self.stream.receive_some(65536))
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                headers = {k.decode(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
                    self.h11.start_next_cycle()
                return status, headers, body
            else:
                raise AssertionError(f"unexpected {event!r}")

    async def closed(self) -> bool:
        """Whether the server closed its side (after any bytes still in flight)."""
        with trio.move_on_after(1000):
            while True:
                data = await self.stream.receive_some(65536)
                if not data:
                    return True
        return False


class MemoryListener(trio.abc.Listener[trio.abc.Stream]):
    """Connections over in-memory stream pairs, accepted in the order connect() made them."""

    def __init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[trio.abc.Stream](100)

    async def connect(self) -> trio.abc.Stream:
        client, server_side = trio.testing.memory_stream_pair()
        await self._send.send(server_side)
        return client

    async def accept(self) -> trio.abc.Stream:
        return await self._receive.receive()

    async def aclose(self) -> None:
        await self._receive.aclose()


async def raw_exchange(srv: HttpServer, data: bytes) -> bytes:
    """Send `data`, close our side, and return everything the server answered."""
    client_stream, server_stream = trio.testing.memory_stream_pair()
    received = bytearray()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(srv.serve_connection, server_stream, PEER)
        await client_stream.send_all(data)
        await client_stream.send_eof()
        while chunk := await client_stream.receive_some(65536):
            received += chunk
    return bytes(received)


async def test_a_kept_alive_connection_answers_requests_one_after_another() -> None:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server().serve_connection, server_stream, PEER)
        client = Client(client_stream)
        for path in ("/a", "/b", "/c"):
            await client.get(path)
            assert (await client.response())[2] == f"GET {path}".encode()
        await client_stream.aclose()


async def test_pipelined_requests_are_answered_in_order() -> None:
    requests = b"".join(
        f"GET /{n} HTTP/1.1\r\nHost: example.org\r\n\r\n".encode() for n in range(5)
    )
    answer = await raw_exchange(
        server(), requests + b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    bodies = re.findall(rb"GET /(?:\d|last)", answer)
    assert bodies == [b"GET /0", b"GET /1", b"GET /2", b"GET /3", b"GET /4", b"GET /last"]


async def test_oversized_headers_get_431_and_the_connection_closes() -> None:
    srv = server(limits=HttpLimits(max_header_bytes=1024))
    answer = await raw_exchange(
        srv, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 4000 + b"\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b"connection: close" in answer


async def test_too_many_header_fields_get_431() -> None:
    srv = server(limits=HttpLimits(max_headers=10))
    fields = b"".join(f"X-{n}: v\r\n".encode() for n in range(11))
    answer = await raw_exchange(srv, b"GET / HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431 ")


async def test_a_request_with_content_length_and_transfer_encoding_gets_400_and_close() -> None:
    smuggled = (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    answer = await raw_exchange(server(), smuggled)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"connection: close" in answer
    assert b"/smuggled" not in answer  # nothing after it was served


async def test_a_body_over_the_limit_gets_413() -> None:
    srv = server(limits=HttpLimits(max_body_bytes=100))
    answer = await raw_exchange(
        srv, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n" + b"a" * 101
    )
    assert answer.startswith(b"HTTP/1.1 413 ")


async def test_a_chunked_body_over_the_limit_gets_413() -> None:
    srv = server(limits=HttpLimits(max_body_bytes=100))
    chunk = b"40\r\n" + b"a" * 64 + b"\r\n"
    answer = await raw_exchange(
        srv,
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunk * 3
        + b"0\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 413 ")


async def test_a_head_request_gets_the_headers_without_the_body() -> None:
    answer = await raw_exchange(
        server(), b"HEAD /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert b"content-length: 7" in answer  # the length of the body a GET would get
    assert answer.endswith(b"\r\n\r\n")  # and no body


async def test_a_request_trickling_in_is_cut_off_at_the_request_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    srv = server(timeouts=HttpTimeouts(request=10.0))
    client_stream, server_stream = trio.testing.memory_stream_pair()
    started = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(srv.serve_connection, server_stream, PEER)
        with trio.move_on_after(60):
            for byte in b"GET / HTTP/1.1\r\nHost: x\r\n":  # a slowloris: a byte every 5 s
                try:
                    await client_stream.send_all(bytes([byte]))
                except trio.BrokenResourceError:
                    break  # the server hung up
                await trio.sleep(5)
    answer = await client_stream.receive_some(65536)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert trio.current_time() - started < 20


async def test_an_idle_kept_alive_connection_is_closed_after_the_idle_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    srv = server(timeouts=HttpTimeouts(idle=30.0))
    client_stream, server_stream = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(srv.serve_connection, server_stream, PEER)
        client = Client(client_stream)
        await client.get("/")
        await client.response()
        started = trio.current_time()
        assert await client.closed()
        assert 30 <= trio.current_time() - started < 31


async def test_a_silent_new_connection_gets_the_request_timeout_not_the_idle_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    srv = server(timeouts=HttpTimeouts(request=5.0, idle=300.0))
    client_stream, server_stream = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(srv.serve_connection, server_stream, PEER)
        started = trio.current_time()
        assert await Client(client_stream).closed()
        assert trio.current_time() - started < 6


async def test_draining_closes_idle_connections_and_lets_busy_ones_finish(
    autojump_clock: trio.testing.MockClock,
) -> None:
    release = trio.Event()

    async def slow(request: Request, peer: Peer) -> Response:
        if request.path == "/slow":
            await release.wait()
        return Response(200, (), b"done")

    srv = HttpServer(slow)
    idle_client, idle_server = trio.testing.memory_stream_pair()
    busy_client, busy_server = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(srv.serve_connection, idle_server, PEER)
        nursery.start_soon(srv.serve_connection, busy_server, PEER)
        idle, busy = Client(idle_client), Client(busy_client)
        await idle.get("/")
        await idle.response()
        await busy.get("/slow")
        await trio.sleep(1)
        srv.drain(grace=10)
        assert await idle.closed()
        release.set()
        status, headers, body = await busy.response()
        assert (status, body, headers.get("connection")) == (200, b"done", "close")


async def test_over_the_connection_cap_new_connections_wait_until_one_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    srv = server(max_connections=2, timeouts=HttpTimeouts(request=5.0))
    listener = MemoryListener()
    async with trio.open_nursery() as nursery:
        await nursery.start(srv.serve, [listener])
        first = await listener.connect()
        second = await listener.connect()
        third = await listener.connect()
        await trio.sleep(1)
        assert (srv.accepted, srv.open_connections) == (2, 2)
        await first.aclose()
        await trio.sleep(1)
        assert srv.accepted == 3
        client = Client(third)
        await client.get("/third")
        assert (await client.response())[2] == b"GET /third"
        srv.drain(grace=1)
        for stream in (second, third):
            await stream.aclose()


async def test_a_handler_that_fails_gives_500_and_the_server_goes_on() -> None:
    async def broken(request: Request, peer: Peer) -> Response:
        raise RuntimeError("bug")

    answer = await raw_exchange(HttpServer(broken), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 500 ")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_garbage_raises_only_our_errors(data: bytes) -> None:
    conn = HttpServerConnection(HttpLimits(max_header_bytes=256, max_body_bytes=64))
    try:
        conn.receive_data(data)
        while True:
            event = conn.next_request()
            if not isinstance(event, Request):
                break
            conn.respond(Response(200, (), b"ok"))
            if not conn.start_next():
                break
        conn.receive_data(b"")
        conn.next_request()
    except HttpError as exc:
        assert 400 <= exc.status < 500 or exc.status == 505
        answer = conn.error_response(exc)
        assert answer == b"" or answer.startswith(f"HTTP/1.1 {exc.status} ".encode())
        assert answer == b"" or b"connection: close" in answer
    except ProtocolError:
        pass


@pytest.mark.parametrize(
    "data",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello on the HTTP port
        b"GET / HTTP/1.1\r\n\r\n",  # no Host
        b"G\x00T / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ],
)
async def test_malformed_requests_get_a_4xx_and_the_connection_closes(data: bytes) -> None:
    answer = await raw_exchange(server(), data)
    assert answer.startswith(b"HTTP/1.1 4")
    assert b"connection: close" in answer


async def test_a_request_in_another_http_version_gets_505() -> None:
    answer = await raw_exchange(server(), b"GET / HTTP/2.0\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 505 ")


def answered(raw: bytes, response: Response) -> tuple[bytes, bool]:
    """(the bytes of `response` to the request in `raw`, whether the connection stays)."""
    conn = HttpServerConnection()
    conn.receive_data(raw)
    request = conn.next_request()
    assert isinstance(request, Request)
    return conn.respond(response), conn.start_next()


def test_an_http_1_0_request_is_answered_and_the_connection_closes() -> None:
    data, reused = answered(b"GET / HTTP/1.0\r\n\r\n", Response(200, (), b"ok"))
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and b"connection: close" in data
    assert not reused


def test_a_request_asking_to_close_gets_its_answer_then_the_connection_closes() -> None:
    data, reused = answered(
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n", Response(200, (), b"ok")
    )
    assert data.endswith(b"\r\n\r\nok") and not reused


def test_a_204_carries_no_content_length() -> None:
    data, reused = answered(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", Response(204, (), b""))
    assert data == b"HTTP/1.1 204 No Content\r\n\r\n" and reused


def test_a_header_value_with_a_line_break_is_never_written() -> None:
    conn = HttpServerConnection()
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    conn.next_request()
    with pytest.raises(LocalProtocolError):
        conn.respond(Response(302, (("location", "/a\r\nSet-Cookie: evil=1"),)))


def test_a_streamed_body_that_ends_short_is_an_error_and_the_connection_is_not_reused() -> None:
    conn = HttpServerConnection()
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    conn.next_request()
    conn.start(Response(200), content_length=10)
    conn.body(b"12345")
    with pytest.raises(LocalProtocolError):
        conn.end()
    assert not conn.start_next()


def test_a_long_url_is_redirected_without_being_cached() -> None:
    from netaccess.proto.http.captive import _redirect_to_login, captive_redirect

    before = _redirect_to_login.cache_info().currsize
    target = "/" + "a" * 5000
    response = captive_redirect(Request("GET", target, (("host", "x.example"),)), "https://p/login")
    assert response.status == 302 and dict(response.headers)["location"].endswith("a" * 100)
    assert _redirect_to_login.cache_info().currsize == before
