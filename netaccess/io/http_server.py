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

Plain TCP connections are driven on their non-blocking sockets directly: try the system
call, and park in trio (wait_readable / wait_writable) only when it would block. trio's
SocketStream yields to the scheduler around every call even when nothing blocks, which
cost a third of a probe answer. TLS and other streams go through trio's stream interface.
Timeouts are kept by one timekeeper task per server, not by trio deadlines: each
connection notes when its current wait must end (a float, set per wait), and the
timekeeper cancels the connection's scope once that has passed. Moving a trio deadline
twice a request cost a tenth of a probe answer. The timekeeper wakes at the soonest
deadline, but at most once per TICK (a timeout may fire up to that late), and looks at
every connection when it does.
"""

from __future__ import annotations

import enum
import errno
import logging
import math
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from typing import Protocol

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
# accept() errors about one connection (it went away before we took it): take the next.
_ACCEPT_SKIP_ERRNOS = {errno.ECONNABORTED, errno.EPROTO, errno.EPERM}
# A connection answering pipelined requests from its buffer yields to the others this often.
_PIPELINED_YIELD = 16
# The timekeeper wakes at most this often (seconds); a tenth of the shortest timeout if less.
TICK = 1.0
# After refusing a request, read and drop what the client still sends for this long before
# closing (RFC 9112 §9.6): closing over unread bytes resets the connection, and the reset
# can destroy our answer before the client has read it.
LINGER = 2.0


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


class Listener(Protocol):
    """What serve() accepts from: plain connections as connected non-blocking sockets, or
    streams (TLS, or in-memory in tests)."""

    async def accept(self) -> socket.socket | trio.abc.Stream: ...

    async def aclose(self) -> None: ...


class SocketListener:
    """A bound, listening TCP socket (the enforcer hands them over); accept() gives the
    connected sockets, non-blocking, with Nagle off (a response goes out in one write)."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.socket = sock

    async def accept(self) -> socket.socket:
        while True:
            try:
                connection, _ = self.socket.accept()
            except BlockingIOError:
                await trio.lowlevel.wait_readable(self.socket)
                continue
            except OSError as exc:
                if exc.errno in _ACCEPT_SKIP_ERRNOS:
                    continue
                raise
            connection.setblocking(False)
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return connection

    async def aclose(self) -> None:
        trio.lowlevel.notify_closing(self.socket)
        self.socket.close()
        await trio.lowlevel.checkpoint()


class TlsListener:
    """TLS over a SocketListener's connections, through trio's SSLStream."""

    def __init__(self, plain: SocketListener, context: ssl.SSLContext) -> None:
        self.plain = plain
        self.context = context

    async def accept(self) -> trio.SSLStream[trio.SocketStream]:
        connection = await self.plain.accept()
        return trio.SSLStream(
            trio.SocketStream(trio.socket.from_stdlib_socket(connection)),
            self.context,
            server_side=True,
            https_compatible=True,
        )

    async def aclose(self) -> None:
        await self.plain.aclose()


class _Waits(enum.Enum):
    """What a connection waits for; its deadline and what a timeout means follow from it."""

    IDLE = "idle"  # the first byte of a request: a timeout just closes
    READING = "reading"  # the rest of a request: a timeout is answered 408
    ANSWERING = "answering"  # the handler: only the lifetime bounds it
    SENDING = "sending"  # the client to take our bytes: a timeout closes


class _Link:
    """One connection's transport and its clock: what it waits for, until when (the
    timekeeper cancels `scope` after that), and the end of its lifetime (the scope's own
    trio deadline, set once)."""

    __slots__ = ("deadline", "end", "refused", "scope", "waits")

    def __init__(self, lifetime: float) -> None:
        self.end = trio.current_time() + lifetime
        self.scope = trio.CancelScope(deadline=self.end)
        self.waits = _Waits.IDLE
        self.deadline = math.inf
        self.refused = False  # a request was refused: close gently (RFC 9112 §9.6)

    def expect(self, waits: _Waits, seconds: float) -> None:
        self.waits = waits
        self.deadline = trio.current_time() + seconds

    def answering(self) -> None:
        """Back to our own work (the handler, the next chunk): no timeout but the lifetime."""
        self.waits = _Waits.ANSWERING
        self.deadline = math.inf

    async def receive(self, ready: bool) -> bytes:
        """Some bytes, or b"" at end of stream. ready: bytes may be waiting already."""
        raise NotImplementedError

    async def send(self, data: bytes, timeout: float) -> None:
        """All of `data`; a client that takes none of it for `timeout` seconds ends the
        connection (the scope is cancelled)."""
        raise NotImplementedError

    async def close(self, linger: bool = False) -> None:
        """Close; linger: half-close first and drop input for up to LINGER seconds."""
        raise NotImplementedError

    def peer(self) -> Peer:
        raise NotImplementedError


class _SocketLink(_Link):
    __slots__ = ("sock",)

    def __init__(self, sock: socket.socket, lifetime: float) -> None:
        super().__init__(lifetime)
        self.sock = sock

    async def receive(self, ready: bool) -> bytes:
        sock = self.sock
        if not ready:  # a kept-alive client sends only after our answer: no idle recv()
            await trio.lowlevel.wait_readable(sock)
        while True:
            try:
                return sock.recv(RECEIVE_SIZE)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(sock)
            except OSError as exc:  # reset by the peer, and the like
                raise trio.BrokenResourceError(str(exc)) from exc

    async def send(self, data: bytes, timeout: float) -> None:
        sock = self.sock
        view = memoryview(data)
        waited = False
        while view:
            try:
                sent = sock.send(view)
            except BlockingIOError:
                self.expect(_Waits.SENDING, timeout)
                waited = True
                await trio.lowlevel.wait_writable(sock)
                continue
            except OSError as exc:
                raise trio.BrokenResourceError(str(exc)) from exc
            view = view[sent:]
        if waited:
            self.answering()

    async def close(self, linger: bool = False) -> None:
        sock = self.sock
        try:
            if linger:
                with trio.move_on_after(LINGER):
                    sock.shutdown(socket.SHUT_WR)
                    while await self.receive(ready=True):
                        pass
        except (OSError, trio.BrokenResourceError):
            pass
        finally:
            trio.lowlevel.notify_closing(sock)
            sock.close()

    def peer(self) -> Peer:
        return _address_peer(self.sock)


class _StreamLink(_Link):
    __slots__ = ("stream",)

    def __init__(self, stream: trio.abc.Stream, lifetime: float) -> None:
        super().__init__(lifetime)
        self.stream = stream

    async def receive(self, ready: bool) -> bytes:
        data = await self.stream.receive_some(RECEIVE_SIZE)
        return data if isinstance(data, bytes) else bytes(data)  # trio types it either

    async def send(self, data: bytes, timeout: float) -> None:
        self.expect(_Waits.SENDING, timeout)
        await self.stream.send_all(data)
        self.answering()

    async def close(self, linger: bool = False) -> None:
        # TLS has no half-close for the server to use (close_notify ends both ways).
        await trio.aclose_forcefully(self.stream)

    def peer(self) -> Peer:
        return _peer_of(self.stream)


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
        self._links: set[_Link] = set()
        self._timekeepers = 0
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
        listeners: Sequence[Listener],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept until drained (then return once every connection is gone) or cancelled."""
        try:
            async with trio.open_nursery() as clock:
                await clock.start(self._keep_time)
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
                clock.cancel_scope.cancel()
        finally:
            self.finished.set()

    async def _keep_time(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Cancel every connection whose wait has outlasted its deadline, for as long as
        this runs."""
        timeouts = self.timeouts
        shortest = max(min(timeouts.request, timeouts.idle, timeouts.send), 0.001)
        tick = min(TICK, shortest / 10)
        self._timekeepers += 1
        try:
            task_status.started()
            while True:
                now = trio.current_time()
                # Any deadline set from now on is at least `shortest` away.
                soonest = now + shortest
                for link in self._links:
                    deadline = link.deadline
                    if deadline <= now:
                        link.scope.cancel()
                    elif deadline < soonest:
                        soonest = deadline
                await trio.sleep_until(max(soonest, now + tick))
        finally:
            self._timekeepers -= 1

    def drain(self, grace: float) -> None:
        """Stop accepting; close idle connections now and the others after their current
        response, cancelling whatever still runs `grace` seconds from now."""
        if self._draining.is_set():
            return
        self._draining.set()
        for link in list(self._links):
            if link.waits is _Waits.IDLE:
                link.scope.cancel()
        if self._connections is not None:
            self._connections.cancel_scope.deadline = trio.current_time() + grace

    async def serve_connection(
        self, connection: socket.socket | trio.abc.Stream, peer: Peer | None = None
    ) -> None:
        """One connection, start to end: a connected non-blocking socket (plain TCP) or a
        stream. Closes it in every case. peer: the client, when the caller knows it."""
        lifetime = self.timeouts.lifetime
        if isinstance(connection, socket.socket):
            link: _Link = _SocketLink(connection, lifetime)
        else:
            link = _StreamLink(connection, lifetime)
        if not self._timekeepers:  # a connection served alone, not under serve()
            async with trio.open_nursery() as clock:
                await clock.start(self._keep_time)
                await self._serve_link(link, peer)
                clock.cancel_scope.cancel()
        else:
            await self._serve_link(link, peer)

    async def _serve_link(self, link: _Link, peer: Peer | None) -> None:
        conn = HttpServerConnection(self.limits)
        self._links.add(link)
        try:
            if peer is None:
                peer = link.peer()
            with link.scope:
                await self._converse(conn, link, peer)
            if (
                link.scope.cancelled_caught
                and link.waits is _Waits.READING
                and trio.current_time() < link.end
            ):
                await self._refuse(
                    conn,
                    link,
                    peer,
                    HttpError(408, f"no whole request within {self.timeouts.request:g} s"),
                )
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away
        except LocalProtocolError as exc:  # a streamed body ended short: cut the connection
            log.warning("response cut short", extra={"peer": peer and peer.ip, "why": str(exc)})
        finally:
            self._links.discard(link)
            await link.close(linger=link.refused)

    async def _refuse(
        self, conn: HttpServerConnection, link: _Link, peer: Peer, exc: HttpError
    ) -> None:
        """Answer a request we will not serve (the connection closes after)."""
        self.refused_requests += 1
        link.refused = True
        log.debug("request refused", extra={"peer": peer.ip, "status": exc.status, "why": str(exc)})
        reply = conn.error_response(exc)
        if reply:
            with trio.move_on_after(self.timeouts.send):
                await link.send(reply, self.timeouts.send)

    async def _converse(self, conn: HttpServerConnection, link: _Link, peer: Peer) -> None:
        timeouts = self.timeouts
        while not self._draining.is_set():
            try:
                request = await self._receive_request(conn, link)
            except HttpError as exc:
                link.waits = _Waits.SENDING  # a timeout now just closes
                await self._refuse(conn, link, peer, exc)
                return
            if request is None:
                return
            self.requests += 1
            link.answering()
            try:
                response = await self.handler(request, peer)
            except Exception:
                log.exception("portal handler failed", extra={"path": request.path})
                response = Response(500, (("content-type", "text/plain"),), b"500\n", close=True)
            if isinstance(response, StreamedResponse):
                await self._stream(conn, link, request, response)
                close = response.head.close
            else:
                if self._draining.is_set():
                    response = _closing(response)
                await link.send(conn.respond(response, common=_common_headers()), timeouts.send)
                close = response.close
            # Nothing of this exchange may outlive it: an idle kept-alive connection holds
            # only its socket and parser (10k idle connections are a benchmark goal).
            del request, response
            if close or not conn.start_next():
                return

    async def _stream(
        self,
        conn: HttpServerConnection,
        link: _Link,
        request: Request,
        response: StreamedResponse,
    ) -> None:
        """Send a streamed response. A client that stops reading ends the connection (the
        send timeout cancels the link's scope)."""
        send = self.timeouts.send
        head = _closing(response.head) if self._draining.is_set() else response.head
        await link.send(
            conn.start(head, content_length=response.length, common=_common_headers()), send
        )
        if request.method != "HEAD":
            try:
                async for chunk in response.chunks():
                    await link.send(conn.body(chunk), send)
            except OSError as exc:  # the file went away under us: cut the response short
                log.error("streamed body failed", extra={"path": request.path, "error": str(exc)})
                raise trio.ClosedResourceError from exc
        await link.send(conn.end(), send)

    async def _receive_request(self, conn: HttpServerConnection, link: _Link) -> Request | None:
        """The next whole request; None when the connection should just close (the client
        closed, idled out, or we drain)."""
        first = conn.next_request()
        if isinstance(first, Request):  # pipelined: it came with the previous one
            if conn.requests % _PIPELINED_YIELD == 0:
                await trio.lowlevel.checkpoint()  # a deep pipeline must not starve the others
            return first
        if first is Wait.CLOSED:
            return None
        # Waiting for the first byte of the next request; drain() may end the wait. A new
        # connection gets the request timeout for its first byte: connecting and saying
        # nothing holds a slot no longer than a slow request does.
        fresh = conn.requests == 0
        link.expect(_Waits.IDLE, self.timeouts.request if fresh else self.timeouts.idle)
        data = await link.receive(ready=fresh)
        while True:
            conn.receive_data(data)
            event = conn.next_request()
            if isinstance(event, Request):
                return event
            if event is Wait.CLOSED or not data:
                return None
            if link.waits is not _Waits.READING:  # the request timer starts at its first byte
                link.expect(_Waits.READING, self.timeouts.request)
            data = await link.receive(ready=False)

    async def _accept_loop(self, listener: Listener, connections: trio.Nursery) -> None:
        while True:
            token = object()
            await self._slots.acquire_on_behalf_of(token)  # at the cap: stop accepting
            try:
                connection = await listener.accept()
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
            connections.start_soon(self._run_connection, connection, token)

    async def _run_connection(
        self, connection: socket.socket | trio.abc.Stream, token: object
    ) -> None:
        try:
            await self.serve_connection(connection)
        finally:
            self._slots.release_on_behalf_of(token)


def _peer_of(stream: trio.abc.Stream) -> Peer:
    sock = getattr(stream, "socket", None)
    if sock is None:  # a TLS stream wraps the socket stream
        inner = getattr(stream, "transport_stream", None)
        sock = getattr(inner, "socket", None)
    if sock is None:
        return Peer("", 0)
    return _address_peer(sock)


def _address_peer(sock: socket.socket | trio.socket.SocketType) -> Peer:
    try:
        address = sock.getpeername()
    except OSError:
        return Peer("", 0)
    if not isinstance(address, tuple):  # a Unix socket: no address to speak of
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


def open_listeners(sockets: Sequence[socket.socket]) -> list[SocketListener]:
    """Listeners for sockets handed over by the enforcer (already bound and listening)."""
    return [SocketListener(sock) for sock in sockets]
