"""EAP inside RADIUS, sans-IO: the EAP packet (RFC 3748 §4), the framing the TLS-based
methods share (EAP-TLS, RFC 5216 §3.1; EAP-TTLS, RFC 5281 §9.1) with its fragmentation and
reassembly, and the Diameter-style AVPs that carry EAP-TTLS's inner authentication
(RFC 5281 §10). The conversation that uses them is in eap_server.py."""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from netaccess.proto.radius.errors import RadiusError


class MalformedEap(RadiusError):
    """An EAP packet, TLS frame or TTLS AVP that cannot be read; the message says why."""


class EapCode(enum.IntEnum):
    REQUEST = 1
    RESPONSE = 2
    SUCCESS = 3
    FAILURE = 4


class EapType(enum.IntEnum):
    """The method types this server knows by name (IANA "EAP Method Types")."""

    IDENTITY = 1
    NOTIFICATION = 2
    NAK = 3
    MD5_CHALLENGE = 4
    TLS = 13
    TTLS = 21
    PEAP = 25
    MSCHAPV2 = 26


_HEADER = struct.Struct("!BBH")
MAX_EAP = 65535


@dataclass(frozen=True, slots=True)
class EapPacket:
    code: EapCode
    identifier: int
    type: int | None  # Requests and Responses only
    data: bytes = b""


def decode_eap(data: bytes) -> EapPacket:
    """One EAP packet; bytes past its Length are padding (RFC 3748 §4.1) and ignored."""
    if len(data) < 4:
        raise MalformedEap(f"EAP packet of {len(data)} bytes, shorter than its header")
    code, identifier, length = _HEADER.unpack_from(data)
    if length < 4 or length > len(data):
        raise MalformedEap(f"EAP Length {length} with {len(data)} bytes present")
    try:
        kind = EapCode(code)
    except ValueError:
        raise MalformedEap(f"EAP code {code} is not one of 1 to 4") from None
    if kind in (EapCode.SUCCESS, EapCode.FAILURE):
        if length != 4:
            raise MalformedEap(f"EAP {kind.name.title()} of length {length}, not 4")
        return EapPacket(kind, identifier, None)
    if length < 5:
        raise MalformedEap("EAP Request or Response without a Type")
    return EapPacket(kind, identifier, data[4], data[5:length])


def encode_eap(code: EapCode, identifier: int, kind: int | None = None, data: bytes = b"") -> bytes:
    if code in (EapCode.SUCCESS, EapCode.FAILURE):
        return _HEADER.pack(code, identifier, 4)
    if kind is None:
        raise ValueError("an EAP Request or Response needs a type")
    length = 5 + len(data)
    if length > MAX_EAP:
        raise ValueError(f"EAP packet of {length} bytes is too long")
    return _HEADER.pack(code, identifier, length) + bytes((kind,)) + data


# --- the TLS-based methods' framing (RFC 5216 §3.1, RFC 5281 §9.1) ---------------------------

FLAG_LENGTH = 0x80  # a 4-octet TLS Message Length follows the flags
FLAG_MORE = 0x40  # more fragments follow
FLAG_START = 0x20  # the server's first request of the method
VERSION_MASK = 0x07  # EAP-TTLS and PEAP carry their version here; EAP-TLS has 0
_LENGTH = struct.Struct("!I")


@dataclass(frozen=True, slots=True)
class TlsFrame:
    flags: int
    total: int | None  # the TLS Message Length, when the L flag is set
    data: bytes

    @property
    def more(self) -> bool:
        return bool(self.flags & FLAG_MORE)

    @property
    def version(self) -> int:
        return self.flags & VERSION_MASK

    @property
    def is_ack(self) -> bool:
        """An empty frame: the peer acknowledges a fragment (RFC 5216 §2.1.5)."""
        return not self.data and not self.more


def decode_tls_frame(data: bytes) -> TlsFrame:
    """The method-specific data of an EAP-TLS/TTLS packet (after the Type octet)."""
    if not data:
        raise MalformedEap("TLS-based EAP packet without its Flags octet")
    flags = data[0]
    if flags & FLAG_LENGTH:
        if len(data) < 5:
            raise MalformedEap("TLS Message Length flag set but the length is missing")
        (total,) = _LENGTH.unpack_from(data, 1)
        return TlsFrame(flags, total, data[5:])
    return TlsFrame(flags, None, data[1:])


def encode_tls_frame(data: bytes, *, version: int = 0, start: bool = False) -> bytes:
    """One unfragmented frame (an acknowledgement when `data` is empty)."""
    return bytes(((FLAG_START if start else 0) | version,)) + data


def fragments(message: bytes, size: int, *, version: int = 0) -> list[bytes]:
    """`message` (the TLS records of one flight) as frames of at most `size` TLS bytes each:
    the first carries the total length when there are several, all but the last set M."""
    if size < 1:
        raise ValueError("fragment size must be positive")
    if len(message) <= size:
        return [encode_tls_frame(message, version=version)]
    out = []
    for offset in range(0, len(message), size):
        chunk = message[offset : offset + size]
        flags = version | (FLAG_MORE if offset + size < len(message) else 0)
        if offset == 0:
            out.append(bytes((flags | FLAG_LENGTH,)) + _LENGTH.pack(len(message)) + chunk)
        else:
            out.append(bytes((flags,)) + chunk)
    return out


class Reassembly:
    """A peer's fragmented TLS message put back together, at most `limit` bytes."""

    def __init__(self, limit: int = 65536) -> None:
        self.limit = limit
        self._parts = bytearray()
        self._expected: int | None = None

    @property
    def pending(self) -> bool:
        return bool(self._parts) or self._expected is not None

    def add(self, frame: TlsFrame) -> bytes | None:
        """The whole message once its last fragment arrived; None while more are due."""
        if frame.total is not None:
            if self._expected is None and not self._parts:
                if frame.total > self.limit:
                    raise MalformedEap(
                        f"TLS message of {frame.total} bytes announced; at most {self.limit}"
                    )
                self._expected = frame.total
            elif frame.total != self._expected:
                raise MalformedEap("TLS Message Length changed between fragments")
        self._parts += frame.data
        if len(self._parts) > self.limit:
            raise MalformedEap(f"TLS message longer than {self.limit} bytes")
        if frame.more:
            return None
        message = bytes(self._parts)
        if self._expected is not None and len(message) != self._expected:
            raise MalformedEap(
                f"TLS message of {len(message)} bytes; its length said {self._expected}"
            )
        self._parts.clear()
        self._expected = None
        return message


# --- EAP-TTLS AVPs (RFC 5281 §10) ------------------------------------------------------------

AVP_FLAG_VENDOR = 0x80
AVP_FLAG_MANDATORY = 0x40
AVP_USER_NAME = 1
AVP_USER_PASSWORD = 2
AVP_EAP_MESSAGE = 79
_AVP = struct.Struct("!IB3s")


@dataclass(frozen=True, slots=True)
class Avp:
    code: int
    value: bytes
    mandatory: bool = True
    vendor: int | None = None


def decode_avps(data: bytes) -> list[Avp]:
    """Every AVP in `data`, each padded to a multiple of 4 octets."""
    return list(_iter_avps(data))


def _iter_avps(data: bytes) -> Iterator[Avp]:
    offset = 0
    while offset < len(data):
        if len(data) - offset < 8:
            raise MalformedEap(f"{len(data) - offset} stray bytes after the last AVP")
        code, flags, raw_length = _AVP.unpack_from(data, offset)
        length = int.from_bytes(raw_length, "big")
        header = 12 if flags & AVP_FLAG_VENDOR else 8
        if length < header or offset + length > len(data):
            raise MalformedEap(f"AVP {code} of length {length} does not fit")
        vendor = None
        if flags & AVP_FLAG_VENDOR:
            (vendor,) = _LENGTH.unpack_from(data, offset + 8)
        yield Avp(
            code, data[offset + header : offset + length], bool(flags & AVP_FLAG_MANDATORY), vendor
        )
        offset += (length + 3) & ~3


def encode_avps(avps: Iterable[Avp]) -> bytes:
    out = bytearray()
    for avp in avps:
        flags = AVP_FLAG_MANDATORY if avp.mandatory else 0
        header = 8
        vendor = b""
        if avp.vendor is not None:
            flags |= AVP_FLAG_VENDOR
            header = 12
            vendor = _LENGTH.pack(avp.vendor)
        length = header + len(avp.value)
        if length >= 1 << 24:
            raise ValueError(f"AVP {avp.code} is too long")
        out += _AVP.pack(avp.code, flags, length.to_bytes(3, "big")) + vendor + avp.value
        out += bytes(-length % 4)
    return bytes(out)


__all__ = [
    "Avp",
    "EapCode",
    "EapPacket",
    "EapType",
    "MalformedEap",
    "Reassembly",
    "TlsFrame",
    "decode_avps",
    "decode_eap",
    "decode_tls_frame",
    "encode_avps",
    "encode_eap",
    "encode_tls_frame",
    "fragments",
]
