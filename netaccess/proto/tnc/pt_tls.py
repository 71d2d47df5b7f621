"""PT-TLS (RFC 6876), sans-IO: the framing of NEA messages inside a TLS session, version
negotiation (§3.7), SASL client authentication (§3.8, PLAIN per RFC 4616) and PT-TLS Errors
(§3.9). TLS is below us; PB-TNC batches (RFC 5793) ride on top as opaque bytes.

Shaped like h11: `receive_data(bytes)`, then `next_event()` until NEED_DATA; each `send_*`
returns the bytes to write. Decisions (is this password good?) stay with the caller.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from netaccess.proto.errors import LocalProtocolError
from netaccess.proto.tnc.buffer import Buffer, BufferUnderrun, Writer
from netaccess.proto.tnc.errors import IETF_PEN, PtTlsError, PtTlsErrorCode

PT_TLS_VERSION = 1  # §3.7: the only version there is
HEADER_SIZE = 16  # §3.5: Reserved(8) Vendor(24) Type(32) Length(32) Identifier(32)
# Our cap on one message, header included. PB-TNC batches carry whole posture reports
# (strongSwan's Installed Packages alone is ~18 KB), so leave plenty of room.
DEFAULT_MAX_MESSAGE_SIZE = 2 * 1024 * 1024
# How much of an offending message a PT-TLS Error quotes (§3.9: a copy of the original
# message, at least its header). A cap keeps an error about a 2 MiB batch small.
QUOTE_LIMIT = 1024
PLAIN = "PLAIN"

# RFC 4422 §3.1: a mechanism name is 1 to 20 of A-Z, 0-9, "-" and "_".
_MECHANISM_NAME = re.compile(rb"[A-Z0-9_-]{1,20}")
_MECHANISM_LENGTH_MASK = 0x1F  # §3.8.1: Reserved(3 bits) | Mechanism Name Length(5 bits)


class MessageType(enum.IntEnum):
    """§3.5, message types of the IETF vendor id (IANA "PT-TLS Message Types")."""

    EXPERIMENTAL = 0  # never sent in production (§3.5); we treat it as unsupported
    VERSION_REQUEST = 1
    VERSION_RESPONSE = 2
    SASL_MECHANISMS = 3
    SASL_MECHANISM_SELECTION = 4
    SASL_AUTHENTICATION_DATA = 5
    SASL_RESULT = 6
    PB_TNC_BATCH = 7
    PT_TLS_ERROR = 8


_SUPPORTED_TYPES = frozenset(MessageType) - {MessageType.EXPERIMENTAL}


class SaslResultCode(enum.IntEnum):
    """§3.8.4."""

    SUCCESS = 0
    FAILURE = 1  # the client may try again, if the server offers mechanisms again
    ABORT = 2
    MECHANISM_FAILURE = 3


_RESULT_CODES = frozenset(SaslResultCode)
_ERROR_CODES = frozenset(PtTlsErrorCode)


class PtTlsRole(enum.Enum):
    CLIENT = "client"  # the NEA Client, which opens the TLS session
    SERVER = "server"  # the NEA Server: us, on TCP 271


class PtTlsState(enum.Enum):
    """Where one side stands. SEND_* states wait for our caller to send; AWAIT_* states
    wait for the peer. Grouped by the RFC's phases (§3.1)."""

    # Negotiation phase, version (§3.7)
    SEND_VERSION_REQUEST = "send version request"  # client
    AWAIT_VERSION_REQUEST = "await version request"  # server
    SEND_VERSION_RESPONSE = "send version response"  # server
    AWAIT_VERSION_RESPONSE = "await version response"  # client
    # Negotiation phase, client authentication (§3.8)
    SEND_SASL_MECHANISMS = "send sasl mechanisms"  # server: offer a list, or end (empty)
    AWAIT_SASL_MECHANISMS = "await sasl mechanisms"  # client
    SEND_SASL_SELECTION = "send sasl selection"  # client: pick one offered mechanism
    AWAIT_SASL_SELECTION = "await sasl selection"  # server
    SEND_SASL_OUTCOME = "send sasl outcome"  # server: a challenge, or a result
    AWAIT_SASL_OUTCOME = "await sasl outcome"  # client
    SEND_SASL_RESPONSE = "send sasl response"  # client: answer a challenge
    AWAIT_SASL_RESPONSE = "await sasl response"  # server
    # Data transport phase (§3.6): PB-TNC batches both ways
    DATA_TRANSPORT = "data transport"
    CLOSED = "closed"  # an error was sent or received, or the peer closed


class _Move(enum.Enum):
    """What a message does to the state; SASL Mechanisms splits by whether it is empty."""

    VERSION_REQUEST = "version request"
    VERSION_RESPONSE = "version response"
    SASL_MECHANISMS = "sasl mechanisms"  # a non-empty list: authenticate
    SASL_DONE = "sasl done"  # an empty list: authentication is over (§3.8.1)
    SASL_SELECTION = "sasl selection"
    SASL_DATA = "sasl data"
    SASL_RESULT = "sasl result"
    BATCH = "batch"


_C, _S = PtTlsRole.CLIENT, PtTlsRole.SERVER
_St, _M = PtTlsState, _Move

# What we may send in each state, and where it takes us. PT-TLS Errors are allowed anywhere.
_SENT: dict[PtTlsRole, dict[PtTlsState, dict[_Move, PtTlsState]]] = {
    _C: {
        _St.SEND_VERSION_REQUEST: {_M.VERSION_REQUEST: _St.AWAIT_VERSION_RESPONSE},
        _St.SEND_SASL_SELECTION: {_M.SASL_SELECTION: _St.AWAIT_SASL_OUTCOME},
        _St.SEND_SASL_RESPONSE: {_M.SASL_DATA: _St.AWAIT_SASL_OUTCOME},
        _St.DATA_TRANSPORT: {_M.BATCH: _St.DATA_TRANSPORT},
    },
    _S: {
        _St.SEND_VERSION_RESPONSE: {_M.VERSION_RESPONSE: _St.SEND_SASL_MECHANISMS},
        _St.SEND_SASL_MECHANISMS: {
            _M.SASL_MECHANISMS: _St.AWAIT_SASL_SELECTION,
            _M.SASL_DONE: _St.DATA_TRANSPORT,
        },
        _St.SEND_SASL_OUTCOME: {
            _M.SASL_DATA: _St.AWAIT_SASL_RESPONSE,  # a challenge
            _M.SASL_RESULT: _St.SEND_SASL_MECHANISMS,  # then offer again, or end
        },
        _St.DATA_TRANSPORT: {_M.BATCH: _St.DATA_TRANSPORT},
    },
}

# What the peer may send us in each state; anything else is an Invalid Message (§3.9.1).
_RECEIVED: dict[PtTlsRole, dict[PtTlsState, dict[_Move, PtTlsState]]] = {
    _C: {
        _St.AWAIT_VERSION_RESPONSE: {_M.VERSION_RESPONSE: _St.AWAIT_SASL_MECHANISMS},
        _St.AWAIT_SASL_MECHANISMS: {
            _M.SASL_MECHANISMS: _St.SEND_SASL_SELECTION,
            _M.SASL_DONE: _St.DATA_TRANSPORT,
        },
        _St.AWAIT_SASL_OUTCOME: {
            _M.SASL_DATA: _St.SEND_SASL_RESPONSE,
            _M.SASL_RESULT: _St.AWAIT_SASL_MECHANISMS,
        },
        _St.DATA_TRANSPORT: {_M.BATCH: _St.DATA_TRANSPORT},
    },
    _S: {
        _St.AWAIT_VERSION_REQUEST: {_M.VERSION_REQUEST: _St.SEND_VERSION_RESPONSE},
        _St.AWAIT_SASL_SELECTION: {_M.SASL_SELECTION: _St.SEND_SASL_OUTCOME},
        _St.AWAIT_SASL_RESPONSE: {_M.SASL_DATA: _St.SEND_SASL_OUTCOME},
        _St.DATA_TRANSPORT: {_M.BATCH: _St.DATA_TRANSPORT},
    },
}

_INITIAL_STATE = {_C: _St.SEND_VERSION_REQUEST, _S: _St.AWAIT_VERSION_REQUEST}


# --- events -------------------------------------------------------------------------------


class Wait(enum.Enum):
    """What next_event() returns when it has no event."""

    NEED_DATA = "need data"  # feed receive_data()
    CLOSED = "closed"  # nothing more will come: close the connection


NEED_DATA = Wait.NEED_DATA
CLOSED = Wait.CLOSED


@dataclass(frozen=True, slots=True)
class VersionRequested:
    """The client's Version Request (server side). Answer with send_version_response()."""

    min_version: int
    max_version: int
    preferred_version: int


@dataclass(frozen=True, slots=True)
class VersionAgreed:
    """The server's Version Response (client side)."""

    version: int


@dataclass(frozen=True, slots=True)
class SaslMechanismsOffered:
    """A non-empty SASL Mechanisms list (client side): pick one with select_plain()."""

    mechanisms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AuthenticationDone:
    """An empty SASL Mechanisms list (client side): client authentication is over, and
    PB-TNC batches may flow, the client's first."""


@dataclass(frozen=True, slots=True)
class SaslMechanismSelected:
    """The client picked a mechanism (server side). For PLAIN without an initial response,
    send the empty challenge (send_sasl_authentication_data(b"")); for PLAIN with one, the
    event is SaslPlainCredentials instead."""

    mechanism: str
    initial_response: bytes | None


@dataclass(frozen=True, slots=True)
class SaslPlainCredentials:
    """PLAIN credentials (server side, RFC 4616). Check them, then accept_credentials() or
    reject_credentials()."""

    authzid: str  # "" when the client asks to act as itself
    authcid: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class SaslAuthenticationData:
    """A SASL challenge (client side) or response (server side, mechanisms other than
    PLAIN), opaque here."""

    data: bytes


@dataclass(frozen=True, slots=True)
class SaslResult:
    """The outcome of one SASL exchange (client side). SASL Mechanisms follow: an empty
    list after success, another offer or a PT-TLS Error after a failure."""

    code: SaslResultCode
    data: bytes = b""

    @property
    def succeeded(self) -> bool:
        return self.code is SaslResultCode.SUCCESS


@dataclass(frozen=True, slots=True)
class PbTncBatchReceived:
    """One PB-TNC batch (RFC 5793), as the peer sent it."""

    batch: bytes


@dataclass(frozen=True, slots=True)
class PtTlsErrorReceived:
    """The peer's PT-TLS Error (§3.9). `quoted`: its copy of our offending message."""

    vendor: int
    code: int
    quoted: bytes

    @property
    def error_code(self) -> PtTlsErrorCode | None:
        """The IETF code, when it is one."""
        if self.vendor == IETF_PEN and self.code in _ERROR_CODES:
            return PtTlsErrorCode(self.code)
        return None

    @property
    def fatal(self) -> bool:
        """Every error ends the session but Type Not Supported (§3.9.1: the sender ignored
        one message of ours and goes on)."""
        return self.error_code is not PtTlsErrorCode.TYPE_NOT_SUPPORTED


Event = (
    VersionRequested
    | VersionAgreed
    | SaslMechanismsOffered
    | AuthenticationDone
    | SaslMechanismSelected
    | SaslPlainCredentials
    | SaslAuthenticationData
    | SaslResult
    | PbTncBatchReceived
    | PtTlsErrorReceived
)


# --- codecs -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PtTlsHeader:
    """§3.5. `length` counts the header too. The Reserved byte is ignored on receipt."""

    vendor: int
    message_type: int
    length: int
    message_id: int


def _malformed(what: str) -> PtTlsError:
    return PtTlsError(PtTlsErrorCode.MALFORMED_MESSAGE, what)


def pull_pt_tls_header(buf: Buffer) -> PtTlsHeader:
    """Raises BufferUnderrun when fewer than 16 bytes are left."""
    buf.pull_uint8("header reserved")
    vendor = buf.pull_uint24("message type vendor id")
    message_type = buf.pull_uint32("message type")
    length = buf.pull_uint32("message length")
    message_id = buf.pull_uint32("message identifier")
    return PtTlsHeader(vendor, message_type, length, message_id)


def push_pt_tls_message(vendor: int, message_type: int, message_id: int, value: bytes) -> bytes:
    w = Writer()
    w.push_uint8(0, "header reserved")
    w.push_uint24(vendor, "message type vendor id")
    w.push_uint32(message_type, "message type")
    w.push_uint32(HEADER_SIZE + len(value), "message length")
    w.push_uint32(message_id, "message identifier")
    w.push_bytes(value)
    return w.data()


def pull_version_request(value: bytes) -> VersionRequested:
    """§3.7.1: Reserved(8) Min Vers(8) Max Vers(8) Pref Vers(8)."""
    if len(value) != 4:
        raise _malformed(f"Version Request value is {len(value)} bytes, expected 4")
    return VersionRequested(value[1], value[2], value[3])


def push_version_request(min_version: int, max_version: int, preferred_version: int) -> bytes:
    w = Writer()
    w.push_uint8(0, "reserved")
    w.push_uint8(min_version, "min version")
    w.push_uint8(max_version, "max version")
    w.push_uint8(preferred_version, "preferred version")
    return w.data()


def pull_version_response(value: bytes) -> VersionAgreed:
    """§3.7.2: Reserved(24) Version(8)."""
    if len(value) != 4:
        raise _malformed(f"Version Response value is {len(value)} bytes, expected 4")
    return VersionAgreed(value[3])


def push_version_response(version: int) -> bytes:
    w = Writer()
    w.push_uint24(0, "reserved")
    w.push_uint8(version, "version")
    return w.data()


def _pull_mechanism_name(buf: Buffer) -> str:
    length = buf.pull_uint8("mechanism name length") & _MECHANISM_LENGTH_MASK
    name = buf.pull_bytes(length, "mechanism name")
    if not _MECHANISM_NAME.fullmatch(name):
        raise PtTlsError(
            PtTlsErrorCode.INVALID_PARAMETER,
            f"SASL mechanism name {name!r} at offset {buf.offset - length} is not 1-20 of "
            "A-Z 0-9 - _ (RFC 4422 §3.1)",
        )
    return name.decode("ascii")


def _push_mechanism_name(w: Writer, name: str) -> None:
    encoded = name.encode("ascii", "replace")
    if not _MECHANISM_NAME.fullmatch(encoded):
        raise LocalProtocolError(f"SASL mechanism name {name!r} is not 1-20 of A-Z 0-9 - _")
    w.push_uint8(len(encoded), "mechanism name length")
    w.push_bytes(encoded)


def pull_sasl_mechanisms(value: bytes) -> tuple[str, ...]:
    """§3.8.1: entries of Reserved(3 bits)|Length(5 bits) and a name; () ends authentication."""
    buf = Buffer(value)
    names: list[str] = []
    try:
        while not buf.at_end():
            names.append(_pull_mechanism_name(buf))
    except BufferUnderrun as exc:
        raise _malformed(f"SASL Mechanisms: {exc}") from None
    return tuple(names)


def push_sasl_mechanisms(mechanisms: Sequence[str]) -> bytes:
    w = Writer()
    for name in mechanisms:
        _push_mechanism_name(w, name)
    return w.data()


def pull_sasl_mechanism_selection(value: bytes) -> SaslMechanismSelected:
    """§3.8.2: Reserved(3 bits)|Length(5 bits), the name, then an optional initial client
    response. The wire cannot tell an empty initial response from none: both are None."""
    buf = Buffer(value)
    try:
        mechanism = _pull_mechanism_name(buf)
    except BufferUnderrun as exc:
        raise _malformed(f"SASL Mechanism Selection: {exc}") from None
    rest = buf.pull_rest()
    return SaslMechanismSelected(mechanism, rest or None)


def push_sasl_mechanism_selection(mechanism: str, initial_response: bytes | None) -> bytes:
    w = Writer()
    _push_mechanism_name(w, mechanism)
    if initial_response:
        w.push_bytes(initial_response)
    return w.data()


def pull_sasl_result(value: bytes) -> SaslResult:
    """§3.8.4: Result Code(16) and optional result data.

    strongSwan's server writes the code as ONE byte (and its client reads only one), so a
    one-byte value is taken as the code: an interop leniency, harmless since a conforming
    peer never sends one."""
    if len(value) == 1:
        code, data = value[0], b""
    elif len(value) >= 2:
        code, data = int.from_bytes(value[:2], "big"), value[2:]
    else:
        raise _malformed("SASL Result without a result code")
    if code not in _RESULT_CODES:
        raise PtTlsError(PtTlsErrorCode.INVALID_PARAMETER, f"SASL Result code {code} unknown")
    return SaslResult(SaslResultCode(code), data)


def push_sasl_result(code: SaslResultCode, data: bytes = b"") -> bytes:
    # The code goes out as 16 bits as §3.8.4 says. strongSwan's client reads just the first
    # byte: SUCCESS (00 00) reads as 0, success, as it should. FAILURE (00 01) reads as 0
    # too, so a refusal must not rely on the Result: reject_credentials() follows it with a
    # PT-TLS Error, which strongSwan does treat as fatal.
    w = Writer()
    w.push_uint16(code, "sasl result code")
    w.push_bytes(data)
    return w.data()


def pull_pt_tls_error(value: bytes) -> PtTlsErrorReceived:
    """§3.9: Reserved(8) Error Code Vendor ID(24) Error Code(32), then a copy of the
    offending message."""
    buf = Buffer(value)
    try:
        buf.pull_uint8("reserved")
        vendor = buf.pull_uint24("error code vendor id")
        code = buf.pull_uint32("error code")
    except BufferUnderrun as exc:
        raise _malformed(f"PT-TLS Error: {exc}") from None
    return PtTlsErrorReceived(vendor, code, buf.pull_rest())


def push_pt_tls_error(vendor: int, code: int, quoted: bytes) -> bytes:
    w = Writer()
    w.push_uint8(0, "reserved")
    w.push_uint24(vendor, "error code vendor id")
    w.push_uint32(code, "error code")
    w.push_bytes(quoted[:QUOTE_LIMIT])
    return w.data()


def pull_sasl_plain(message: bytes) -> SaslPlainCredentials:
    """RFC 4616 §2: [authzid] NUL authcid NUL passwd, UTF-8, each at most 255 bytes; authcid
    and passwd not empty. A bad message fails the SASL exchange (SASL Mechanism Error)."""
    parts = message.split(b"\x00")
    if len(parts) != 3:
        raise PtTlsError(
            PtTlsErrorCode.SASL_MECHANISM_ERROR,
            f"PLAIN message has {len(parts) - 1} NUL separators, expected 2",
        )
    authzid, authcid, password = parts
    if not authcid or not password or max(map(len, parts)) > 255:
        raise PtTlsError(
            PtTlsErrorCode.SASL_MECHANISM_ERROR,
            "PLAIN authcid and password must be 1-255 bytes, authzid at most 255",
        )
    try:
        return SaslPlainCredentials(
            authzid.decode("utf-8"), authcid.decode("utf-8"), password.decode("utf-8")
        )
    except UnicodeDecodeError:
        raise PtTlsError(
            PtTlsErrorCode.SASL_MECHANISM_ERROR, "PLAIN message is not UTF-8"
        ) from None


def push_sasl_plain(authcid: str, password: str, authzid: str = "") -> bytes:
    fields = [s.encode("utf-8") for s in (authzid, authcid, password)]
    if any(b"\x00" in f or len(f) > 255 for f in fields) or not fields[1] or not fields[2]:
        raise LocalProtocolError(
            "PLAIN authcid and password must be 1-255 bytes without NUL, authzid at most 255"
        )
    return b"\x00".join(fields)


# --- the connection -----------------------------------------------------------------------


class PtTlsConnection:
    """One side of a PT-TLS session, above TLS.

    Feed the peer's bytes to receive_data() and call next_event() until it returns
    NEED_DATA (or CLOSED). The send_* methods return the bytes to write; calling one out
    of turn raises LocalProtocolError. A PtTlsError from next_event() names what to answer:
    write send_error(error) and, unless the code is Type Not Supported (§3.9.1, the only
    error that is not fatal), close; the connection is CLOSED by then.

    sasl_mechanisms (server): what to offer after the version exchange; () asks no client
    authentication. PLAIN is checked here for form and handed to the caller to judge;
    other names run through the generic SASL events.
    """

    def __init__(
        self,
        role: PtTlsRole,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        sasl_mechanisms: Sequence[str] = (PLAIN,),
    ) -> None:
        if max_message_size < HEADER_SIZE:
            raise LocalProtocolError(f"max_message_size {max_message_size} is under 16 bytes")
        for name in sasl_mechanisms:
            if not _MECHANISM_NAME.fullmatch(name.encode("ascii", "replace")):
                raise LocalProtocolError(f"SASL mechanism name {name!r} is not valid")
        self.role = role
        self.max_message_size = max_message_size
        self.sasl_mechanisms = tuple(sasl_mechanisms)
        self._state = _INITIAL_STATE[role]
        self._buffer = bytearray()
        self._eof = False
        self._next_id = 0
        self._last_message = b""  # the (start of the) message read last: errors quote it
        self._error_sent = False
        # Client: what we asked for and were offered. Server: what we offered, the
        # mechanism the client runs, and the message that carried its credentials.
        self._versions = (PT_TLS_VERSION, PT_TLS_VERSION)
        self._offered: tuple[str, ...] = ()
        self._mechanism: str | None = None
        self._credentials_message: bytes | None = None

    @property
    def state(self) -> PtTlsState:
        return self._state

    # --- receiving ---

    def receive_data(self, data: bytes) -> None:
        """Bytes from the peer, as TLS delivered them; b"" when the peer closed."""
        if self._eof:
            if data:
                raise LocalProtocolError("receive_data() after the end of the stream")
            return
        if not data:
            self._eof = True
        elif self._state is not PtTlsState.CLOSED:
            self._buffer += data

    def next_event(self) -> Event | Wait:
        """The next event, NEED_DATA, or CLOSED. Raises PtTlsError for a message to answer
        with an error; the buffer then stands after it (and the state is CLOSED unless the
        error is Type Not Supported)."""
        if self._state is PtTlsState.CLOSED:
            return CLOSED
        if len(self._buffer) < HEADER_SIZE:
            if not self._eof:
                return NEED_DATA
            if self._buffer:
                self._last_message = bytes(self._buffer)
                raise self._fatal(_malformed("stream ends inside a message header"))
            self._state = PtTlsState.CLOSED
            return CLOSED
        header = pull_pt_tls_header(Buffer(self._buffer[:HEADER_SIZE]))
        self._last_message = bytes(self._buffer[:HEADER_SIZE])
        if header.length < HEADER_SIZE:
            raise self._fatal(_malformed(f"message length {header.length} is under 16"))
        if header.length > self.max_message_size:
            # Refused on the header alone: the body is never buffered.
            raise self._fatal(
                PtTlsError(
                    PtTlsErrorCode.INVALID_PARAMETER,
                    f"message length {header.length} is over our {self.max_message_size}",
                )
            )
        if len(self._buffer) < header.length:
            if self._eof:
                raise self._fatal(_malformed("stream ends inside a message"))
            return NEED_DATA
        message = bytes(self._buffer[: header.length])
        del self._buffer[: header.length]
        self._last_message = message[:QUOTE_LIMIT]
        try:
            return self._receive(header, message[HEADER_SIZE:])
        except PtTlsError as exc:
            if exc.code == PtTlsErrorCode.TYPE_NOT_SUPPORTED:
                raise  # §3.9.1: the message is skipped and the session goes on
            raise self._fatal(exc) from None

    def _fatal(self, error: PtTlsError) -> PtTlsError:
        self._state = PtTlsState.CLOSED
        self._buffer.clear()
        return error

    def _receive(self, header: PtTlsHeader, value: bytes) -> Event:
        if header.vendor != IETF_PEN or header.message_type not in _SUPPORTED_TYPES:
            raise PtTlsError(
                PtTlsErrorCode.TYPE_NOT_SUPPORTED,
                f"message type {header.vendor}/{header.message_type} is not supported",
            )
        message_type = MessageType(header.message_type)
        if message_type is MessageType.PT_TLS_ERROR:
            error = pull_pt_tls_error(value)
            if error.fatal:
                self._state = PtTlsState.CLOSED
                self._buffer.clear()
            return error
        move, event = self._decode(message_type, value)
        next_state = _RECEIVED[self.role].get(self._state, {}).get(move)
        if next_state is None:
            raise PtTlsError(
                PtTlsErrorCode.INVALID_MESSAGE,
                f"{message_type.name} is not expected from the "
                f"{'server' if self.role is PtTlsRole.CLIENT else 'client'} "
                f"in state {self._state.value}",
            )
        event = self._check(event)
        self._state = next_state
        return event

    def _decode(self, message_type: MessageType, value: bytes) -> tuple[_Move, Event]:
        match message_type:
            case MessageType.VERSION_REQUEST:
                return _Move.VERSION_REQUEST, pull_version_request(value)
            case MessageType.VERSION_RESPONSE:
                return _Move.VERSION_RESPONSE, pull_version_response(value)
            case MessageType.SASL_MECHANISMS:
                mechanisms = pull_sasl_mechanisms(value)
                if not mechanisms:
                    return _Move.SASL_DONE, AuthenticationDone()
                return _Move.SASL_MECHANISMS, SaslMechanismsOffered(mechanisms)
            case MessageType.SASL_MECHANISM_SELECTION:
                return _Move.SASL_SELECTION, pull_sasl_mechanism_selection(value)
            case MessageType.SASL_AUTHENTICATION_DATA:
                return _Move.SASL_DATA, SaslAuthenticationData(value)
            case MessageType.SASL_RESULT:
                return _Move.SASL_RESULT, pull_sasl_result(value)
            case _:  # PB_TNC_BATCH; PT_TLS_ERROR never gets here
                return _Move.BATCH, PbTncBatchReceived(value)

    def _check(self, event: Event) -> Event:
        """What a message means beyond its form, now that it is known to be in turn."""
        if isinstance(event, VersionRequested):
            if not event.min_version <= PT_TLS_VERSION <= event.max_version:
                raise PtTlsError(
                    PtTlsErrorCode.VERSION_NOT_SUPPORTED,
                    f"client asks versions {event.min_version}-{event.max_version}, "
                    f"we speak {PT_TLS_VERSION}",
                )
        elif isinstance(event, VersionAgreed):
            low, high = self._versions
            if event.version != PT_TLS_VERSION or not low <= event.version <= high:
                raise PtTlsError(
                    PtTlsErrorCode.VERSION_NOT_SUPPORTED,
                    f"server chose version {event.version}, we asked {low}-{high}",
                )
        elif isinstance(event, SaslMechanismsOffered):
            self._offered = event.mechanisms
        elif isinstance(event, SaslMechanismSelected):
            if event.mechanism not in self._offered:
                raise PtTlsError(
                    PtTlsErrorCode.SASL_MECHANISM_ERROR,
                    f"client selected {event.mechanism}, not one of {self._offered}",
                )
            self._mechanism = event.mechanism
            self._credentials_message = None
            if event.mechanism == PLAIN and event.initial_response is not None:
                return self._plain(event.initial_response)
        elif isinstance(event, SaslAuthenticationData) and self._reads_plain():
            return self._plain(event.data)
        return event

    def _reads_plain(self) -> bool:
        return self.role is PtTlsRole.SERVER and self._mechanism == PLAIN

    def _plain(self, message: bytes) -> SaslPlainCredentials:
        credentials = pull_sasl_plain(message)
        self._credentials_message = self._last_message
        return credentials

    # --- sending ---

    def _send(self, move: _Move, message_type: MessageType, value: bytes) -> bytes:
        next_state = _SENT[self.role].get(self._state, {}).get(move)
        if next_state is None:
            raise LocalProtocolError(
                f"a {self.role.value} cannot send {message_type.name} in state {self._state.value}"
            )
        data = push_pt_tls_message(IETF_PEN, message_type, self._next_id, value)
        # §3.5: each side numbers its own messages; any start, +1 each, wrapping. Like
        # strongSwan we start at 0. Received identifiers are not checked: they serve to
        # tell messages apart in logs and error reports.
        self._next_id = (self._next_id + 1) & 0xFFFFFFFF
        self._state = next_state
        return data

    def send_version_request(
        self,
        min_version: int = PT_TLS_VERSION,
        max_version: int = PT_TLS_VERSION,
        preferred_version: int = PT_TLS_VERSION,
    ) -> bytes:
        """Client: the first message (§3.7.1). Only version 1 is spoken; other ranges are
        for testing servers."""
        value = push_version_request(min_version, max_version, preferred_version)
        data = self._send(_Move.VERSION_REQUEST, MessageType.VERSION_REQUEST, value)
        self._versions = (min_version, max_version)
        return data

    def send_version_response(self) -> bytes:
        """Server: agree on version 1. send_sasl_mechanisms() must follow (§3.8)."""
        value = push_version_response(PT_TLS_VERSION)
        return self._send(_Move.VERSION_RESPONSE, MessageType.VERSION_RESPONSE, value)

    def send_sasl_mechanisms(self, mechanisms: Sequence[str] | None = None) -> bytes:
        """Server: offer `mechanisms` (default: those given at construction); an empty list
        ends client authentication and opens data transport."""
        offer = self.sasl_mechanisms if mechanisms is None else tuple(mechanisms)
        move = _Move.SASL_MECHANISMS if offer else _Move.SASL_DONE
        data = self._send(move, MessageType.SASL_MECHANISMS, push_sasl_mechanisms(offer))
        self._offered = offer
        self._mechanism = None
        self._credentials_message = None
        return data

    def select_mechanism(self, mechanism: str, initial_response: bytes | None = None) -> bytes:
        """Client: run one of the offered mechanisms."""
        if self._state is PtTlsState.SEND_SASL_SELECTION and mechanism not in self._offered:
            raise LocalProtocolError(f"{mechanism} was not offered: {self._offered}")
        value = push_sasl_mechanism_selection(mechanism, initial_response)
        data = self._send(_Move.SASL_SELECTION, MessageType.SASL_MECHANISM_SELECTION, value)
        self._mechanism = mechanism
        return data

    def select_plain(self, authcid: str, password: str, authzid: str = "") -> bytes:
        """Client: PLAIN, with the credentials as the initial response (RFC 4616)."""
        return self.select_mechanism(PLAIN, push_sasl_plain(authcid, password, authzid))

    def send_sasl_authentication_data(self, data: bytes) -> bytes:
        """Server: a challenge (b"" for PLAIN without an initial response). Client: the
        response to a challenge."""
        return self._send(_Move.SASL_DATA, MessageType.SASL_AUTHENTICATION_DATA, bytes(data))

    def send_sasl_result(self, code: SaslResultCode, data: bytes = b"") -> bytes:
        """Server: end one SASL exchange; send_sasl_mechanisms() must follow (another offer,
        or () to end authentication) unless an error closes the session."""
        value = push_sasl_result(code, data)
        return self._send(_Move.SASL_RESULT, MessageType.SASL_RESULT, value)

    def _require_verdict(self) -> None:
        if self._state is not PtTlsState.SEND_SASL_OUTCOME:
            raise LocalProtocolError(f"no credentials to judge in state {self._state.value}")
        if self._mechanism == PLAIN and self._credentials_message is None:
            raise LocalProtocolError("PLAIN credentials have not arrived yet")

    def accept_credentials(self) -> bytes:
        """Server: SASL Result success, then the empty SASL Mechanisms list that ends
        authentication (§3.8): the client may send its first batch."""
        self._require_verdict()
        return self.send_sasl_result(SaslResultCode.SUCCESS) + self.send_sasl_mechanisms(())

    def reject_credentials(self) -> bytes:
        """Server: SASL Result failure, then a fatal PT-TLS Error (SASL Mechanism Error)
        quoting the header of the message that carried the credentials (not its body: that
        would echo the password); close after writing these. The error is what stops
        strongSwan, which misreads the failure code (see push_sasl_result)."""
        self._require_verdict()
        quoted = (self._credentials_message or self._last_message)[:HEADER_SIZE]
        result = self.send_sasl_result(SaslResultCode.FAILURE)
        error = PtTlsError(PtTlsErrorCode.SASL_MECHANISM_ERROR, "credentials refused")
        return result + self.send_error(error, quoted=quoted)

    def send_batch(self, batch: bytes) -> bytes:
        """One PB-TNC batch, in the data transport phase."""
        return self._send(_Move.BATCH, MessageType.PB_TNC_BATCH, bytes(batch))

    def send_error(self, error: PtTlsError, *, quoted: bytes | None = None) -> bytes:
        """A PT-TLS Error of error.code, quoting `quoted` or else the message read last
        (the offending one, when `error` came from next_event()). Every code but Type Not
        Supported ends the session: close after writing it."""
        if self._error_sent:
            raise LocalProtocolError("a fatal PT-TLS Error was sent already")
        copy = self._last_message if quoted is None else quoted
        value = push_pt_tls_error(IETF_PEN, error.code, copy)
        data = push_pt_tls_message(IETF_PEN, MessageType.PT_TLS_ERROR, self._next_id, value)
        self._next_id = (self._next_id + 1) & 0xFFFFFFFF
        if error.code != PtTlsErrorCode.TYPE_NOT_SUPPORTED:
            self._error_sent = True
            self._state = PtTlsState.CLOSED
            self._buffer.clear()
        return data
