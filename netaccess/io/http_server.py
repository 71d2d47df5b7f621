"""The portal's HTTP/1.1 server on trio: connections, timeouts, a connection cap, draining.

Parsing and the protocol's rules live in netaccess.proto.http; this moves bytes, keeps time
and decides when to let go of a connection:
- request: a whole request must arrive within `request` seconds of its first byte, however
  slowly it trickles (a slowloris client is cut off at that deadline);
- idle: a kept-alive connection may wait `idle` seconds for its next request;
- send: each write may block for `send` seconds (a client that stops reading);
- lifetime: no connection outlives `lifetime` seconds.
Over `max_connections` the server stops accepting: new connections wait in the listen
backlog (and the kernel refuses them once that is full); nothing crashes. drain() stops
accepting, closes idle connections and gives busy ones until a deadline.
"""

from __future__ import annotations

import errno
import logging
import math
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from email.utils import formatdate

import trio

from netaccess.proto.errors import LocalProtocolError
from netaccess.proto.http import (
    HttpError,
    HttpLimits,
    HttpServerConnection,
    Request,
    Response,
    Wait,
)

log = logging.getLogger("netaccess.http")

RECEIVE_SIZE = 64 * 1024
# accept() errors that mean "out of a resource for now": wait a little and go on.
_ACCEPT_PAUSE_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_ACCEPT_PAUSE = 0.1


@dataclass(frozen=True, slots=True)
class Peer:
    ip: str
    port: int


@dataclass(frozen=True, slots=True)
class HttpTimeouts:
    request: float = 10.0
    idle: float = 60.0
    send: float = 30.0
    lifetime: float = 3600.0


@dataclass(frozen=True, slots=True)
class StreamedResponse:
    """A response whose body of `length` bytes comes from `chunks()` (called only if a body
    is sent: not for HEAD), a chunk at a time, without holding it whole in memory."""

    head: Response
    length: int
    chunks: Callable[[], AsyncIterator[bytes]]


Handler = Callable[[Request, Peer], Awaitable[Response | StreamedResponse]]


class HttpServer:
    """Serves `handler` on listeners. One instance per service (portal HTTP, HTTPS...)."""

    def __init__(
        self,
        handler: Handler,
        *,
        name: str = "http",
        limits: HttpLimits | None = None,
        timeouts: HttpTimeouts | None = None,
        max_connections: int = 10_000,
    ) -> None:
        self.handler = handler
        self.name = name
        self.limits = limits or HttpLimits()
        self.timeouts = timeouts or HttpTimeouts()
        self._slots = trio.CapacityLimiter(max_connections)
        self._draining = trio.Event()
        self._idle: set[trio.CancelScope] = set()
        self._connections: trio.Nursery | None = None
        self.finished = trio.Event()  # serve() returned: drained, or cancelled
        self.accepted = 0
        self.requests = 0
        self.refused_requests = 0

    @property
    def open_connections(self) -> int:
        return int(self._slots.borrowed_tokens)

    async def serve(
        self,
        listeners: Sequence[trio.abc.Listener[trio.abc.Stream]],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept until drained (then return once every connection is gone) or cancelled."""
        try:
            async with trio.open_nursery() as connections:
                self._connections = connections
                async with trio.open_nursery() as acceptors:
                    for listener in listeners:
                        acceptors.start_soon(self._accept_loop, listener, connections)
                    task_status.started()
                    await self._draining.wait()
                    acceptors.cancel_scope.cancel()
                for listener in listeners:
                    await listener.aclose()
        finally:
            self.finished.set()

    def drain(self, grace: float) -> None:
        """Stop accepting; close idle connections now and the others after their current
        response, cancelling whatever still runs `grace` seconds from now."""
        if self._draining.is_set():
            return
        self._draining.set()
        for scope in list(self._idle):
            scope.cancel()
        if self._connections is not None:
            self._connections.cancel_scope.deadline = trio.current_time() + grace

    async def serve_connection(self, stream: trio.abc.Stream, peer: Peer) -> None:
        """One connection, start to end; closes `stream` in every case."""
        conn = HttpServerConnection(self.limits)
        try:
            with trio.move_on_after(self.timeouts.lifetime):
                await self._converse(conn, stream, peer)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away
        except LocalProtocolError as exc:  # a streamed body ended short: cut the connection
            log.warning("response cut short", extra={"peer": peer.ip, "why": str(exc)})
        finally:
            await trio.aclose_forcefully(stream)

    async def _converse(
        self, conn: HttpServerConnection, stream: trio.abc.Stream, peer: Peer
    ) -> None:
        while not self._draining.is_set():
            try:
                request = await self._receive_request(conn, stream)
            except HttpError as exc:
                self.refused_requests += 1
                log.debug(
                    "request refused",
                    extra={"peer": peer.ip, "status": exc.status, "why": str(exc)},
                )
                reply = conn.error_response(exc)
                if reply:
                    with trio.move_on_after(self.timeouts.send):
                        await stream.send_all(reply)
                return
            if request is None:
                return
            self.requests += 1
            try:
                response = await self.handler(request, peer)
            except Exception:
                log.exception("portal handler failed", extra={"path": request.path})
                response = Response(500, (("content-type", "text/plain"),), b"500\n", close=True)
            if isinstance(response, StreamedResponse):
                if not await self._stream(conn, stream, request, response):
                    return
                close = response.head.close
            else:
                if self._draining.is_set():
                    response = _closing(response)
                with trio.move_on_after(self.timeouts.send) as sending:
                    await stream.send_all(conn.respond(response, common=_common_headers()))
                if sending.cancelled_caught:
                    return  # the client stopped reading
                close = response.close
            # Nothing of this exchange may outlive it: an idle kept-alive connection holds
            # only its stream and parser (10k idle connections are a benchmark goal).
            del request, response
            if close or not conn.start_next():
                return

    async def _stream(
        self,
        conn: HttpServerConnection,
        stream: trio.abc.Stream,
        request: Request,
        response: StreamedResponse,
    ) -> bool:
        """Send a streamed response; False if the client stopped reading (then close)."""
        head = _closing(response.head) if self._draining.is_set() else response.head
        with trio.move_on_after(self.timeouts.send) as sending:
            await stream.send_all(
                conn.start(head, content_length=response.length, common=_common_headers())
            )
        if sending.cancelled_caught:
            return False
        if request.method != "HEAD":
            try:
                async for chunk in response.chunks():
                    with trio.move_on_after(self.timeouts.send) as sending:
                        await stream.send_all(conn.body(chunk))
                    if sending.cancelled_caught:
                        return False
            except OSError as exc:  # the file went away under us: cut the response short
                log.error("streamed body failed", extra={"path": request.path, "error": str(exc)})
                return False
        await stream.send_all(conn.end())
        return True

    async def _receive_request(
        self, conn: HttpServerConnection, stream: trio.abc.Stream
    ) -> Request | None:
        """The next whole request; None when the connection should just close (the client
        closed, idled out, or we drain)."""
        first = conn.next_request()  # pipelined requests are already buffered
        if isinstance(first, Request):
            return first
        if first is Wait.CLOSED:
            return None
        # Idle: waiting for the first byte of the next request; drain() may end the wait. A
        # new connection gets the request timeout for its first byte: connecting and saying
        # nothing holds a slot no longer than a slow request does. One cancel scope serves
        # both waits (its deadline moves on at the first byte): scopes cost per request.
        wait = self.timeouts.idle if conn.requests else self.timeouts.request
        reading = False
        with trio.CancelScope(deadline=trio.current_time() + wait) as scope:
            self._idle.add(scope)
            try:
                data = await stream.receive_some(RECEIVE_SIZE)
            finally:
                self._idle.discard(scope)
            reading = True
            scope.deadline = trio.current_time() + self.timeouts.request
            while True:
                conn.receive_data(data)
                event = conn.next_request()
                if isinstance(event, Request):
                    return event
                if event is Wait.CLOSED or not data:
                    return None
                data = await stream.receive_some(RECEIVE_SIZE)
        if reading and not self._draining.is_set():
            raise HttpError(408, f"no whole request within {self.timeouts.request:g} s")
        return None  # idled out, or drained while idle

    async def _accept_loop(
        self, listener: trio.abc.Listener[trio.abc.Stream], connections: trio.Nursery
    ) -> None:
        while True:
            token = object()
            await self._slots.acquire_on_behalf_of(token)  # at the cap: stop accepting
            try:
                stream = await listener.accept()
            except OSError as exc:
                self._slots.release_on_behalf_of(token)
                if exc.errno in _ACCEPT_PAUSE_ERRNOS:
                    log.warning("accept paused", extra={"server": self.name, "error": str(exc)})
                    await trio.sleep(_ACCEPT_PAUSE)
                    continue
                raise
            except BaseException:
                self._slots.release_on_behalf_of(token)
                raise
            self.accepted += 1
            connections.start_soon(self._run_connection, stream, token)

    async def _run_connection(self, stream: trio.abc.Stream, token: object) -> None:
        try:
            await self.serve_connection(stream, _peer_of(stream))
        finally:
            self._slots.release_on_behalf_of(token)


def _peer_of(stream: trio.abc.Stream) -> Peer:
    sock = getattr(stream, "socket", None)
    if sock is None:  # a TLS stream wraps the socket stream
        inner = getattr(stream, "transport_stream", None)
        sock = getattr(inner, "socket", None)
    if sock is None:
        return Peer("", 0)
    try:
        address = sock.getpeername()
    except OSError:
        return Peer("", 0)
    return Peer(str(address[0]), int(address[1]))


def _closing(response: Response) -> Response:
    return Response(response.status, response.headers, response.body, close=True)


_common: tuple[int, bytes] = (-1, b"")


def _common_headers() -> bytes:
    """Date (RFC 9110 §6.6.1: an origin server with a clock sends it) and Server, encoded
    once a second rather than per response."""
    global _common
    second = math.floor(trio.current_time())  # monotonic: only to know a second has passed
    if _common[0] != second:
        date = formatdate(usegmt=True)
        _common = (second, f"date: {date}\r\nserver: netaccess\r\n".encode("ascii"))
    return _common[1]


async def open_listeners(sockets: Sequence[socket.socket]) -> list[trio.SocketListener]:
    """Listeners for sockets handed over by the enforcer (already bound and listening)."""
    listeners = []
    for sock in sockets:
        sock.setblocking(False)
        listeners.append(trio.SocketListener(trio.socket.from_stdlib_socket(sock)))
    return listeners
