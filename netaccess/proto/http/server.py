"""One server-side HTTP/1.1 connection around h11: whole requests out, response bytes in.

h11 does the parsing and the connection state (RFC 9112); this adds what it leaves to us:
caps on header bytes and count (431), on body size (413), the rejection of a request that
carries both Content-Length and Transfer-Encoding (RFC 9112 §6.1: a smuggling vector, 400 and
close), and error answers that always close. No socket and no clock: the io layer feeds
bytes, applies the timeouts and writes what this returns.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

import h11

from netaccess.proto.errors import LocalProtocolError, RemoteProtocolError

# What must never reach a response header: it would end the header or the head early.
_UNSAFE = re.compile(r"[\r\n\0]")

_REASONS = {
    200: b"OK",
    204: b"No Content",
    206: b"Partial Content",
    301: b"Moved Permanently",
    302: b"Found",
    303: b"See Other",
    304: b"Not Modified",
    307: b"Temporary Redirect",
    400: b"Bad Request",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    413: b"Content Too Large",
    414: b"URI Too Long",
    416: b"Range Not Satisfiable",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    501: b"Not Implemented",
    503: b"Service Unavailable",
    505: b"HTTP Version Not Supported",
}


class HttpError(RemoteProtocolError):
    """The client sent a request we will not serve; answer `status` and close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Wait(enum.Enum):
    """What next_request() returns when it has no request yet."""

    NEED_DATA = "need data"  # feed receive_data()
    CLOSED = "closed"  # the client closed (or this side must): close the connection


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """max_header_bytes: request line and header fields together. max_headers: header fields.
    max_body_bytes: a request body (the portal takes small forms only)."""

    max_header_bytes: int = 16 * 1024
    max_headers: int = 100
    max_body_bytes: int = 64 * 1024


@dataclass(frozen=True, slots=True)
class Request:
    """A whole request. Header names are lower-case; `target` is as sent (origin form,
    usually), `path` and `query` are split from it."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""
    http_version: str = "1.1"

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    @property
    def host(self) -> str:
        """The Host header without a port, lower-case; "" when absent (HTTP/1.0)."""
        host = self.header("host") or ""
        if host.startswith("["):  # an IPv6 literal: [2001:db8::1]:80
            return host.split("]", 1)[0].lower() + "]"
        return host.rsplit(":", 1)[0].lower() if ":" in host else host.lower()

    def header(self, name: str) -> str | None:
        """The first value of header `name` (lower-case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class Response:
    """A whole response. Content-Length is added from the body; headers are as given."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    close: bool = field(default=False)  # ask the client to close after this response


class _Phase(enum.Enum):
    READING = "reading"  # no whole request yet
    ANSWERING = "answering"  # a request came; its response is not sent in full
    DONE = "done"  # the response is sent: start_next() or close
    CLOSING = "closing"  # the connection must close (an error, or close was asked for)


class HttpServerConnection:
    """The server half of one connection. Call next_request() until it returns a Request or
    Wait.CLOSED (HttpError: send error_response() and close); answer each Request with
    respond() (or start()/body()/end() to stream), then start_next() before the next one.
    Pipelined requests wait in the buffer and come out in order.

    h11 parses each request (a fresh h11 connection per request, seeded with what the last
    one had buffered); responses are written here, from our own Response values, because
    h11 re-validates every header of every response, which cost half of a probe's time.
    """

    def __init__(self, limits: HttpLimits | None = None) -> None:
        self.limits = limits or HttpLimits()
        self._h11 = self._parser()
        self._request: h11.Request | None = None
        self._body = bytearray()
        self._phase = _Phase.READING
        self._head_request = False
        self._keep_alive = False
        self._fields: tuple[tuple[str, str], ...] = ()
        self._to_send = 0  # body bytes a started response still owes
        self._started = False
        self.requests = 0

    @property
    def can_reuse(self) -> bool:
        """Whether another request may follow on this connection (keep-alive)."""
        return self._phase is _Phase.DONE and self._keep_alive

    def receive_data(self, data: bytes) -> None:
        """Bytes from the client; b"" when it closed its side."""
        try:
            self._h11.receive_data(data)
        except h11.RemoteProtocolError as exc:  # data after EOF, and the like
            raise HttpError(400, f"unusable input: {exc}") from None

    def next_request(self) -> Request | Wait:
        if self._phase is not _Phase.READING:
            raise LocalProtocolError("next_request() before the previous request's answer")
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                self._phase = _Phase.READING  # still answerable: error_response()
                raise HttpError(exc.error_status_hint, f"malformed request: {exc}") from None
            if event is h11.NEED_DATA:
                return Wait.NEED_DATA
            # Exact types: isinstance() against h11's ABC base costs more, every event.
            if type(event) is h11.Request:
                framed = self._check_head(event)
                self._request, self._body = event, bytearray()
                if not framed:
                    # Neither Content-Length nor Transfer-Encoding: the body is empty (RFC
                    # 9112 §6.3), and the request ends with its head. h11 would only say
                    # EndOfMessage next; this parser is replaced before the next request.
                    return self._finished()
            elif type(event) is h11.Data:
                if len(self._body) + len(event.data) > self.limits.max_body_bytes:
                    raise HttpError(413, f"body over {self.limits.max_body_bytes} bytes")
                self._body += event.data
            elif type(event) is h11.EndOfMessage:
                return self._finished()
            elif type(event) is h11.ConnectionClosed:
                return Wait.CLOSED
            else:  # pragma: no cover - PAUSED cannot come before EndOfMessage
                raise LocalProtocolError(f"unexpected h11 event {event!r}")

    def respond(self, response: Response, *, common: bytes = b"") -> bytes:
        """The bytes of a whole response to the current request. common: header lines
        every response carries (Date, Server), already encoded, CRLF-terminated."""
        head = self.start(response, common=common)
        body = self.body(response.body)
        return head + body + self.end()

    def start(
        self, response: Response, *, content_length: int | None = None, common: bytes = b""
    ) -> bytes:
        """The status line and headers; the body follows with body() and end().
        content_length: for a streamed body (default: len(response.body)). common: as for
        respond()."""
        if self._phase is not _Phase.ANSWERING or self._started:
            raise LocalProtocolError("a response started twice, or without a request")
        length = len(response.body) if content_length is None else content_length
        lines = [
            b"HTTP/1.1 %d %s\r\n" % (response.status, _REASONS.get(response.status, b"")),
            common,
        ]
        for name, value in response.headers:
            if _UNSAFE.search(name) or _UNSAFE.search(value):
                raise LocalProtocolError(f"header {name!r} holds a line break or NUL")
            lines.append(f"{name}: {value}\r\n".encode("latin-1"))
        if response.status >= 200 and response.status != 204:  # RFC 9110 §8.6
            lines.append(b"content-length: %d\r\n" % length)
        if response.close or not self._keep_alive:
            self._keep_alive = False
            lines.append(b"connection: close\r\n")
        lines.append(b"\r\n")
        self._started = True
        # A 304 and the answer to HEAD carry no body, whatever Content-Length says.
        bodiless = self._head_request or response.status in (204, 304) or response.status < 200
        self._to_send = 0 if bodiless else length
        return b"".join(lines)

    def body(self, data: bytes) -> bytes:
        if not data or self._head_request:
            return b""
        if len(data) > self._to_send:
            raise LocalProtocolError(f"{len(data)} body bytes, {self._to_send} left to send")
        self._to_send -= len(data)
        return data

    def end(self) -> bytes:
        if not self._started:
            raise LocalProtocolError("end() of a response that never started")
        if self._to_send:
            self._phase = _Phase.CLOSING
            raise LocalProtocolError(f"the body ended {self._to_send} bytes short")
        self._started = False
        self._phase = _Phase.DONE if self._keep_alive else _Phase.CLOSING
        return b""

    def start_next(self) -> bool:
        """After a whole response: True if the connection is ready for the next request,
        False if it must be closed."""
        if not self.can_reuse:
            return False
        data, closed = self._h11.trailing_data  # pipelined requests, already received
        self._h11 = self._parser()
        self._phase = _Phase.READING
        if data:
            self.receive_data(bytes(data))
        if closed:
            self.receive_data(b"")
        return True

    def error_response(self, error: HttpError) -> bytes:
        """An answer to a request we refuse, always closing; b"" if it is too late to answer
        (a response had started): then just close."""
        if self._started:
            return b""
        self._keep_alive = False
        self._phase = _Phase.ANSWERING
        self._head_request = False
        body = f"{error.status} {_REASONS.get(error.status, b'').decode()}\n".encode()
        response = Response(
            error.status,
            (("content-type", "text/plain; charset=utf-8"), ("cache-control", "no-store")),
            body,
            close=True,
        )
        return self.respond(response)

    def _parser(self) -> h11.Connection:
        # h11 caps a request head only while it is incomplete; complete ones are measured
        # in _check_head().
        return h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_header_bytes)

    def _check_head(self, event: h11.Request) -> bool:
        """Enforce our limits on a request head and keep what _finished() needs; True if
        a body may follow (Content-Length or Transfer-Encoding is present). One pass over
        the fields: h11's header sequence is slow to walk."""
        self.requests += 1
        self._head_request = event.method == b"HEAD"
        if event.http_version not in (b"1.0", b"1.1"):
            raise HttpError(505, f"HTTP/{event.http_version.decode('ascii', 'replace')}")
        size = len(event.method) + len(event.target) + 12
        count = 0
        length: bytes | None = None
        chunked = close = False
        fields = []
        for name, value in event.headers:
            count += 1
            size += len(name) + len(value) + 4
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
            fields.append((name.decode("ascii", "replace"), value.decode("latin-1")))
        if size > self.limits.max_header_bytes:
            raise HttpError(431, f"request head over {self.limits.max_header_bytes} bytes")
        if count > self.limits.max_headers:
            raise HttpError(431, f"more than {self.limits.max_headers} header fields")
        if chunked and length is not None:
            raise HttpError(400, "both Content-Length and Transfer-Encoding")
        # h11 has checked the value is digits, and that repeated ones agree.
        if length is not None and int(length) > self.limits.max_body_bytes:
            raise HttpError(413, f"body over {self.limits.max_body_bytes} bytes")
        # RFC 9112 §9.3: HTTP/1.1 persists unless either side says close; 1.0 is not kept.
        self._keep_alive = event.http_version == b"1.1" and not close
        self._fields = tuple(fields)
        return chunked or length is not None

    def _finished(self) -> Request:
        event = self._request
        if event is None:  # pragma: no cover - h11 orders Request before EndOfMessage
            raise LocalProtocolError("end of a request that never started")
        self._request = None
        self._phase = _Phase.ANSWERING
        self._started = False
        return Request(
            method=event.method.decode("ascii", "replace"),
            target=event.target.decode("latin-1"),
            headers=self._fields,
            body=bytes(self._body),
            http_version=event.http_version.decode("ascii", "replace"),
        )
