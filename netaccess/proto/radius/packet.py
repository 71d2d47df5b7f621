"""RADIUS packets (RFC 2865 §3, §5): the 20-byte header, the type-length-value attributes
and Vendor-Specific sub-attributes (§5.26), as raw bytes. Meaning comes from a Dictionary
(dictionary.py); keys and authenticators from auth.py."""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable
from typing import NamedTuple

from netaccess.proto.radius.errors import BadAttribute, EncodeError, MalformedPacket

HEADER_SIZE = 20
MIN_PACKET = 20  # RFC 2865 §3: Length is 20 to 4096
MAX_PACKET = 4096
MAX_VALUE = 253  # an attribute's Length octet counts its 2 header octets
AUTHENTICATOR_SIZE = 16

USER_NAME = 1
USER_PASSWORD = 2
FRAMED_MTU = 12
REPLY_MESSAGE = 18
STATE = 24
VENDOR_SPECIFIC = 26
CALLING_STATION_ID = 31
PROXY_STATE = 33
EAP_MESSAGE = 79
MESSAGE_AUTHENTICATOR = 80

_HEADER = struct.Struct("!BBH16s")


class Code(enum.IntEnum):
    """Packet codes: RFC 2865 §3, RFC 2866 §3, RFC 5997 (Status-Server), RFC 5176 §2.3."""

    ACCESS_REQUEST = 1
    ACCESS_ACCEPT = 2
    ACCESS_REJECT = 3
    ACCOUNTING_REQUEST = 4
    ACCOUNTING_RESPONSE = 5
    ACCESS_CHALLENGE = 11
    STATUS_SERVER = 12
    STATUS_CLIENT = 13
    DISCONNECT_REQUEST = 40
    DISCONNECT_ACK = 41
    DISCONNECT_NAK = 42
    COA_REQUEST = 43
    COA_ACK = 44
    COA_NAK = 45


# Requests whose Request Authenticator is MD5 over the packet and the secret (not random).
SIGNED_REQUESTS = frozenset({Code.ACCOUNTING_REQUEST, Code.DISCONNECT_REQUEST, Code.COA_REQUEST})
REPLY_TO = {
    Code.ACCESS_REQUEST: frozenset({Code.ACCESS_ACCEPT, Code.ACCESS_REJECT, Code.ACCESS_CHALLENGE}),
    Code.ACCOUNTING_REQUEST: frozenset({Code.ACCOUNTING_RESPONSE}),
    Code.STATUS_SERVER: frozenset({Code.ACCESS_ACCEPT, Code.ACCOUNTING_RESPONSE}),
    Code.DISCONNECT_REQUEST: frozenset({Code.DISCONNECT_ACK, Code.DISCONNECT_NAK}),
    Code.COA_REQUEST: frozenset({Code.COA_ACK, Code.COA_NAK}),
}

Attribute = tuple[int, bytes]  # (type, value): the value without its 2-octet header


class Packet(NamedTuple):
    """A decoded packet. `attributes` keep their wire order (RFC 2865 §5: the order of
    attributes of the same type matters). `message_authenticator_at`: the offset of the
    Message-Authenticator's 16-octet value in the bytes it was decoded from. A named tuple,
    immutable as a frozen dataclass would be, because the server builds one per request and
    a tuple costs a third of the dataclass to make."""

    code: int
    identifier: int
    authenticator: bytes
    attributes: tuple[Attribute, ...] = ()
    message_authenticator_at: int | None = None

    def first(self, kind: int) -> bytes | None:
        for found, value in self.attributes:
            if found == kind:
                return value
        return None

    def every(self, kind: int) -> list[bytes]:
        return [value for found, value in self.attributes if found == kind]

    def has(self, kind: int) -> bool:
        return any(found == kind for found, _ in self.attributes)

    def joined(self, kind: int) -> bytes | None:
        """The values of every `kind` attribute concatenated in order (EAP-Message, RFC 3579
        §3.1), or None when there is none."""
        for found, _ in self.attributes:  # most requests have none: a scan, no list built
            if found == kind:
                return b"".join([value for found, value in self.attributes if found == kind])
        return None

    def vendor_attributes(self) -> list[tuple[int, int, bytes]]:
        """Every Vendor-Specific sub-attribute as (vendor id, vendor type, value)."""
        found: list[tuple[int, int, bytes]] = []
        for kind, value in self.attributes:
            if kind == VENDOR_SPECIFIC:
                found += split_vendor_specific(value)
        return found


def decode_packet(data: bytes) -> Packet:
    """Parse one datagram. Octets past the Length field are padding and ignored (RFC 2865
    §3); a Length longer than the datagram, out of 20..4096, or attributes that do not tile
    the packet exactly, or two Message-Authenticators (RFC 3579 §3.2) are malformed."""
    if len(data) < MIN_PACKET:
        raise MalformedPacket(f"{len(data)} octets is shorter than a RADIUS header (20)")
    code, identifier, length, authenticator = _HEADER.unpack_from(data)
    if not MIN_PACKET <= length <= MAX_PACKET:
        raise MalformedPacket(f"Length {length} is outside 20..4096")
    if length > len(data):
        raise MalformedPacket(f"Length {length} exceeds the {len(data)} octets received")
    attributes: list[Attribute] = []
    ma_at: int | None = None
    at = HEADER_SIZE
    append = attributes.append
    while at < length:
        kind = data[at]
        end = at + data[at + 1] if at + 1 < length else at  # a cut-off header: Length 0
        if end < at + 2 or end > length:  # one test for both faults, on every attribute
            raise MalformedPacket(_bad_attribute(data, at, length))
        if kind == MESSAGE_AUTHENTICATOR:
            if end - at != 2 + AUTHENTICATOR_SIZE:
                raise MalformedPacket(f"Message-Authenticator has Length {end - at}, not 18")
            if ma_at is not None:
                raise MalformedPacket("more than one Message-Authenticator")
            ma_at = at + 2
        append((kind, data[at + 2 : end]))
        at = end
    return _new_packet(Packet, (code, identifier, authenticator, tuple(attributes), ma_at))


# Packet(...) goes through a Python-level __new__; the tuple's own skips that frame (a tenth
# of a microsecond, on every datagram).
_new_packet = tuple.__new__


def _bad_attribute(data: bytes, at: int, length: int) -> str:
    if at + 2 > length:
        return f"attribute header at offset {at} is cut off"
    kind, size = data[at], data[at + 1]
    if size < 2:
        return f"attribute {kind} at offset {at} has Length {size} (< 2)"
    return f"attribute {kind} at offset {at} (Length {size}) overruns the packet"


def encode_attributes(attributes: Iterable[Attribute]) -> bytes:
    parts = []
    for kind, value in attributes:
        if not 0 <= kind <= 255:
            raise EncodeError(f"attribute type {kind} is not an octet")
        if len(value) > MAX_VALUE:
            raise EncodeError(
                f"attribute {kind}: {len(value)} octets is over {MAX_VALUE}; split it first"
            )
        parts.append(bytes((kind, len(value) + 2)))
        parts.append(value)
    return b"".join(parts)


def encode_packet(
    code: int, identifier: int, authenticator: bytes, attributes: Iterable[Attribute]
) -> bytes:
    """The packet's bytes as given (no authenticator computed: auth.py does that)."""
    if len(authenticator) != AUTHENTICATOR_SIZE:
        raise EncodeError(f"an authenticator is 16 octets, not {len(authenticator)}")
    if not 0 <= identifier <= 255:
        raise EncodeError(f"identifier {identifier} is not an octet")
    body = encode_attributes(attributes)
    length = HEADER_SIZE + len(body)
    if length > MAX_PACKET:
        raise EncodeError(f"the packet would be {length} octets, over RADIUS's 4096")
    return _HEADER.pack(code, identifier, length, authenticator) + body


def split_value(kind: int, value: bytes) -> list[Attribute]:
    """A long value as consecutive attributes of at most 253 octets (EAP-Message, RFC 3579
    §3.1)."""
    if not value:
        return [(kind, b"")]
    return [(kind, value[i : i + MAX_VALUE]) for i in range(0, len(value), MAX_VALUE)]


def vendor_specific(vendor: int, vendor_type: int, value: bytes) -> Attribute:
    """A Vendor-Specific attribute with one sub-attribute in RFC 2865 §5.26's suggested
    format: Vendor-Id(32) then Vendor-Type(8) Vendor-Length(8) value."""
    if not 0 < vendor < 1 << 24:
        raise EncodeError(f"vendor id {vendor} is not an SMI enterprise number")
    if not 0 <= vendor_type <= 255:
        raise EncodeError(f"vendor type {vendor_type} is not an octet")
    if len(value) > MAX_VALUE - 6:
        raise EncodeError(f"vendor attribute {vendor}/{vendor_type}: {len(value)} octets, over 247")
    return (
        VENDOR_SPECIFIC,
        struct.pack("!IBB", vendor, vendor_type, len(value) + 2) + value,
    )


def split_vendor_specific(value: bytes) -> list[tuple[int, int, bytes]]:
    """The sub-attributes of one Vendor-Specific value (several may share it)."""
    if len(value) < 4:
        raise BadAttribute(f"Vendor-Specific of {len(value)} octets has no Vendor-Id")
    vendor = int.from_bytes(value[:4], "big")
    found = []
    at = 4
    if at == len(value):
        raise BadAttribute(f"Vendor-Specific of vendor {vendor} is empty")
    while at < len(value):
        if at + 2 > len(value):
            raise BadAttribute(f"vendor {vendor}: sub-attribute header cut off at {at}")
        kind, size = value[at], value[at + 1]
        if size < 2 or at + size > len(value):
            raise BadAttribute(f"vendor {vendor}: sub-attribute {kind} has a bad Length {size}")
        found.append((vendor, kind, value[at + 2 : at + size]))
        at += size
    return found
