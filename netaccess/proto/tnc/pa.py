"""PA-TNC (RFC 5792): the posture attributes an IMC and an IMV exchange inside PB-PA messages.

A message is an 8-byte header and a run of attributes (§4.1, §4.2). The twelve IETF standard
attributes (§4.2.1 to §4.2.12) decode to typed values here; other vendors' attributes plug into
a registry (vendor.py registers ours). Decoding raises only PaTncError, whose code, offset and
header are what the PA-TNC Error attribute answering it quotes (error_attribute_for());
encoding raises LocalProtocolError when a value does not fit its field.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, NamedTuple, TypeVar

from netaccess.proto.errors import LocalProtocolError
from netaccess.proto.tnc.buffer import Buffer, BufferUnderrun, Writer
from netaccess.proto.tnc.errors import IETF_PEN, PaErrorCode, PaTncError

PA_TNC_VERSION = 1  # §4.1: the only version; anything else gets Version Not Supported
MESSAGE_HEADER_SIZE = 8  # Version(8) Reserved(24) Message Identifier(32)
ATTRIBUTE_HEADER_SIZE = 12  # Flags(8) Vendor ID(24) Type(32) Length(32); Length counts it
NOSKIP = 0x80  # §4.2: a receiver that lacks the attribute must refuse the whole message

# §4.2.5: the one time format of PA-TNC, and its all-zero form for "never used / unknown".
_UTC_TIME = re.compile(rb"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z")
_UTC_TIME_SIZE = 20
_NEVER = b"0000-00-00T00:00:00Z"

E = TypeVar("E", bound=enum.IntEnum)
A = TypeVar("A", bound="PaAttribute")


class AttributeType(enum.IntEnum):
    """IETF standard attribute types (§4.2, IANA "PA-TNC Attribute Types", vendor 0)."""

    TESTING = 0
    ATTRIBUTE_REQUEST = 1
    PRODUCT_INFORMATION = 2
    NUMERIC_VERSION = 3
    STRING_VERSION = 4
    OPERATIONAL_STATUS = 5
    PORT_FILTER = 6
    INSTALLED_PACKAGES = 7
    PA_TNC_ERROR = 8
    ASSESSMENT_RESULT = 9
    REMEDIATION_INSTRUCTIONS = 10
    FORWARDING_ENABLED = 11
    FACTORY_DEFAULT_PASSWORD_ENABLED = 12


class ComponentSubtype(enum.IntEnum):
    """The PA subtype of a PB-PA message: which component its attributes describe (§3.5)."""

    TESTING = 0
    OPERATING_SYSTEM = 1
    ANTI_VIRUS = 2
    ANTI_SPYWARE = 3
    ANTI_MALWARE = 4
    FIREWALL = 5
    IDPS = 6
    VPN = 7
    NEA_CLIENT = 8


class OperationalStatusCode(enum.IntEnum):
    """§4.2.5 Status: whether the component is installed and running."""

    UNKNOWN = 0
    NOT_INSTALLED = 1
    INSTALLED_NOT_OPERATIONAL = 2
    OPERATIONAL = 3


class OperationalResultCode(enum.IntEnum):
    """§4.2.5 Result: how the component's last use went."""

    UNKNOWN = 0
    SUCCEEDED = 1  # used with no errors detected
    SUCCEEDED_WITH_ERRORS = 2  # used, one or more errors detected
    FAILED = 3  # unsuccessful use, e.g. aborted


class AssessmentResultCode(enum.IntEnum):
    """§4.2.9: an IMV's verdict on the component."""

    COMPLIANT = 0
    MINOR_NON_COMPLIANCE = 1
    MAJOR_NON_COMPLIANCE = 2
    ERROR = 3
    DONT_KNOW = 4


class ForwardingState(enum.IntEnum):
    """§4.2.11: whether the endpoint forwards traffic between its interfaces."""

    DISABLED = 0
    ENABLED = 1
    UNKNOWN = 2


class RemediationParametersType(enum.IntEnum):
    """IETF remediation parameter types, shared with PB-TNC (RFC 5793 §4.8)."""

    URI = 1
    STRING = 2


class AttributeKey(NamedTuple):
    """Which attribute: the vendor's SMI Private Enterprise Number (24 bits) and its type."""

    vendor: int
    type: int


# --- values -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PaAttribute:
    """Base of every attribute in a PaMessage. `noskip` is the NOSKIP flag as sent or to send
    (§4.2): a receiver that does not know the attribute must refuse the whole message."""

    noskip: bool = field(default=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class SkippedAttribute(PaAttribute):
    """An attribute nobody registered a codec for and sent without NOSKIP, so it was skipped
    as §4.2 asks. Kept so callers can log it; the value is dropped and `length` counts its
    bytes (the Length field minus the 12-byte header). It cannot be encoded."""

    vendor: int
    type: int
    length: int


@dataclass(frozen=True, slots=True)
class RawAttribute(PaAttribute):
    """An attribute to send as given bytes, whatever its type: for relays and for tests of a
    peer's error handling. Decoding never returns one."""

    vendor: int
    type: int
    value: bytes


@dataclass(frozen=True, slots=True)
class AttributeRequest(PaAttribute):
    """§4.2.1: the attributes an IMV asks the IMC to send."""

    requested: tuple[AttributeKey, ...]


@dataclass(frozen=True, slots=True)
class ProductInformation(PaAttribute):
    """§4.2.2: which product implements the component. `vendor` is the product vendor's PEN
    (24 bits), `product_id` the vendor's own number for it (16 bits), `name` free UTF-8."""

    vendor: int
    product_id: int
    name: str


@dataclass(frozen=True, slots=True)
class NumericVersion(PaAttribute):
    """§4.2.3: a version that compares as numbers (32-bit parts, 16-bit service packs)."""

    major: int
    minor: int
    build: int
    service_pack_major: int
    service_pack_minor: int


@dataclass(frozen=True, slots=True)
class StringVersion(PaAttribute):
    """§4.2.4: the product's version, internal build number and configuration version, as
    the vendor writes them (each at most 255 UTF-8 bytes)."""

    version: str
    build: str
    configuration: str


@dataclass(frozen=True, slots=True)
class OperationalStatus(PaAttribute):
    """§4.2.5. `last_use`: when the component was last used, in UTC to the second; None for
    "never used or unknown" (the RFC's all-zero time)."""

    status: OperationalStatusCode
    result: OperationalResultCode
    last_use: datetime | None


@dataclass(frozen=True, slots=True)
class PortFilterEntry:
    """One §4.2.6 entry: an IP protocol number (6 TCP, 17 UDP) and port, blocked or allowed."""

    blocked: bool
    protocol: int
    port: int


@dataclass(frozen=True, slots=True)
class PortFilter(PaAttribute):
    """§4.2.6: the host firewall's verdict per protocol and port."""

    entries: tuple[PortFilterEntry, ...]


class Package(NamedTuple):
    """One §4.2.7 package: name and version, each at most 255 UTF-8 bytes. A NamedTuple,
    not a frozen dataclass: a report brings ~700 of them, and building a frozen dataclass
    costs several times more (it showed in the posture benchmark)."""

    name: str
    version: str


@dataclass(frozen=True, slots=True)
class InstalledPackages(PaAttribute):
    """§4.2.7: the packages making up the product (for an OS: all of them; ~700 on Debian)."""

    packages: tuple[Package, ...]


@dataclass(frozen=True, slots=True)
class InvalidParameterInfo:
    """§4.2.8, Invalid Parameter: the first 8 bytes of the refused message and the offset,
    from the start of that message, of the field that was wrong."""

    message_header: bytes
    offset: int


@dataclass(frozen=True, slots=True)
class VersionNotSupportedInfo:
    """§4.2.8, Version Not Supported: the refused message's header and the range of
    versions the sender of the error does support."""

    message_header: bytes
    max_version: int
    min_version: int


@dataclass(frozen=True, slots=True)
class AttributeTypeNotSupportedInfo:
    """§4.2.8, Attribute Type Not Supported: the refused message's header, then the flags,
    vendor and type of the NOSKIP attribute that was not understood."""

    message_header: bytes
    flags: int
    attribute: AttributeKey


@dataclass(frozen=True, slots=True)
class OtherErrorInfo:
    """An error code this module has no layout for (another vendor's, or an IETF code past
    §4.2.8's three): its vendor, code and information bytes as sent."""

    vendor: int
    code: int
    information: bytes


ErrorInformation = (
    InvalidParameterInfo | VersionNotSupportedInfo | AttributeTypeNotSupportedInfo | OtherErrorInfo
)
_IETF_ERROR_CODES: dict[type[Any], PaErrorCode] = {
    InvalidParameterInfo: PaErrorCode.INVALID_PARAMETER,
    VersionNotSupportedInfo: PaErrorCode.VERSION_NOT_SUPPORTED,
    AttributeTypeNotSupportedInfo: PaErrorCode.ATTRIBUTE_TYPE_NOT_SUPPORTED,
}


@dataclass(frozen=True, slots=True)
class PaTncErrorAttribute(PaAttribute):
    """§4.2.8: the answer to a PA-TNC message that could not be processed. The error's
    vendor and code follow from the kind of `information`."""

    information: ErrorInformation

    @property
    def vendor(self) -> int:
        info = self.information
        return info.vendor if isinstance(info, OtherErrorInfo) else IETF_PEN

    @property
    def code(self) -> int:
        info = self.information
        return info.code if isinstance(info, OtherErrorInfo) else _IETF_ERROR_CODES[type(info)]


@dataclass(frozen=True, slots=True)
class AssessmentResult(PaAttribute):
    """§4.2.9: the IMV's verdict on the component."""

    result: AssessmentResultCode


@dataclass(frozen=True, slots=True)
class RemediationUri:
    """IETF remediation parameters type 1 (RFC 5793 §4.8.1): where to go to fix things."""

    uri: str


@dataclass(frozen=True, slots=True)
class RemediationString:
    """IETF remediation parameters type 2 (RFC 5793 §4.8.2): what to do, in words, with the
    RFC 5646 language tag of those words ("" when not given)."""

    text: str
    language: str = ""


@dataclass(frozen=True, slots=True)
class RawRemediationParameters:
    """Remediation parameters of a vendor or type without a layout here, as sent."""

    vendor: int
    type: int
    value: bytes


RemediationParameters = RemediationUri | RemediationString | RawRemediationParameters


@dataclass(frozen=True, slots=True)
class RemediationInstructions(PaAttribute):
    """§4.2.10: how the endpoint can become compliant."""

    parameters: RemediationParameters


@dataclass(frozen=True, slots=True)
class ForwardingEnabled(PaAttribute):
    """§4.2.11: whether the endpoint forwards traffic (a bridge into the protected network)."""

    state: ForwardingState


@dataclass(frozen=True, slots=True)
class FactoryDefaultPasswordEnabled(PaAttribute):
    """§4.2.12: whether a factory default password still opens the component."""

    enabled: bool


@dataclass(frozen=True, slots=True)
class PaMessage:
    """§4.1: one PA-TNC message. `message_id` (32 bits) lets the peer's error name it."""

    message_id: int
    attributes: tuple[PaAttribute, ...] = ()


class UnsupportedAttributeError(PaTncError):
    """A NOSKIP attribute nobody registered a codec for (§4.2): the whole message must be
    refused with Attribute Type Not Supported, which quotes `flags` and `attribute`."""

    def __init__(self, attribute: AttributeKey, flags: int, *, offset: int, header: bytes) -> None:
        super().__init__(
            PaErrorCode.ATTRIBUTE_TYPE_NOT_SUPPORTED,
            f"{_describe(attribute)} at offset {offset} has NOSKIP set and is not supported",
            offset=offset,
            header=header,
        )
        self.attribute = attribute
        self.flags = flags


# --- field helpers (shared with vendor.py) --------------------------------------------------


def _invalid(offset: int, message: str) -> PaTncError:
    return PaTncError(PaErrorCode.INVALID_PARAMETER, message, offset=offset)


@contextmanager
def value_buffer(value: bytes) -> Iterator[Buffer]:
    """A Buffer over one attribute value, for a decoder. A field running past the end, or
    bytes left over after the decoder is done, become PaTncError(INVALID_PARAMETER) with
    the offset in the value; pull_pa_message() turns it into an offset in the message."""
    buf = Buffer(value)
    try:
        yield buf
    except BufferUnderrun as error:
        raise _invalid(error.offset, str(error)) from error
    if not buf.at_end():
        raise _invalid(buf.offset, f"{buf.remaining} bytes left over after the value")


def _decode_utf8(data: bytes) -> str:
    # The RFC's strings are UTF-8; a peer's bad bytes become U+FFFD rather than an error.
    return data.decode("utf-8", errors="replace")


def _encode_utf8(text: str, what: str, max_size: int | None = None) -> bytes:
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise LocalProtocolError(f"{what} {text!r} is not encodable as UTF-8") from error
    if max_size is not None and len(data) > max_size:
        raise LocalProtocolError(f"{what} is {len(data)} UTF-8 bytes, at most {max_size} fit")
    return data


def pull_string8(buf: Buffer, what: str) -> str:
    """A UTF-8 string after an 8-bit length."""
    size = buf.pull_uint8(what)  # `what` names the field only if this fails: no f-string
    return _decode_utf8(buf.pull_bytes(size, what))


def pull_string16(buf: Buffer, what: str) -> str:
    """A UTF-8 string after a 16-bit length."""
    size = buf.pull_uint16(f"{what} length")
    return _decode_utf8(buf.pull_bytes(size, what))


def push_string8(writer: Writer, text: str, what: str) -> None:
    data = _encode_utf8(text, what, 0xFF)
    writer.push_uint8(len(data))
    writer.push_bytes(data)


def push_string16(writer: Writer, text: str, what: str) -> None:
    data = _encode_utf8(text, what, 0xFFFF)
    writer.push_uint16(len(data))
    writer.push_bytes(data)


def pull_count(buf: Buffer, what: str, *, min_entry_size: int) -> int:
    """A 16-bit entry count, refused when the bytes left cannot hold that many entries of
    at least `min_entry_size` bytes: a count is a claim, checked before anything trusts it."""
    offset = buf.offset
    count = buf.pull_uint16(what)
    if count * min_entry_size > buf.remaining:
        raise _invalid(
            offset,
            f"{what} {count} needs at least {count * min_entry_size} bytes, {buf.remaining} left",
        )
    return count


def push_count(writer: Writer, count: int, what: str) -> None:
    writer.push_uint16(count, what)


def pull_enum(buf: Buffer, kind: type[E], bits: int, what: str) -> E:
    """An 8-, 16- or 32-bit code that must be a member of `kind`; any other value is an
    Invalid Parameter at that field."""
    offset = buf.offset
    if bits == 8:
        raw = buf.pull_uint8(what)
    elif bits == 16:
        raw = buf.pull_uint16(what)
    else:
        raw = buf.pull_uint32(what)
    try:
        return kind(raw)
    except ValueError:
        known = ", ".join(str(member.value) for member in kind)
        raise _invalid(offset, f"{what} {raw} is not one of {known}") from None


def push_enum(writer: Writer, kind: type[E], value: int, bits: int, what: str) -> None:
    try:
        member = kind(value)
    except ValueError:
        raise LocalProtocolError(f"{what} {value!r} is not a {kind.__name__}") from None
    if bits == 8:
        writer.push_uint8(member, what)
    elif bits == 16:
        writer.push_uint16(member, what)
    else:
        writer.push_uint32(member, what)


def pull_utc_time(buf: Buffer, what: str) -> datetime | None:
    """A 20-character "YYYY-MM-DDTHH:MM:SSZ" time (§4.2.5), aware and in UTC; None for the
    all-zero form. Anything else, or a date that does not exist, is an Invalid Parameter."""
    offset = buf.offset
    raw = buf.pull_bytes(_UTC_TIME_SIZE, what)
    if raw == _NEVER:
        return None
    match = _UTC_TIME.fullmatch(raw)
    if match is None:
        raise _invalid(offset, f"{what} {raw!r} is not YYYY-MM-DDTHH:MM:SSZ")
    year, month, day, hour, minute, second = (int(part) for part in match.groups())
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as error:
        raise _invalid(offset, f"{what} {raw!r}: {error}") from None


def push_utc_time(writer: Writer, value: datetime | None, what: str) -> None:
    """Writes `value` converted to UTC, to the second (fractions are dropped); None as the
    all-zero form. A naive datetime is refused: which zone it means is a guess."""
    if value is None:
        writer.push_bytes(_NEVER)
        return
    if value.tzinfo is None or value.utcoffset() is None:
        raise LocalProtocolError(f"{what} {value!r} has no time zone")
    try:
        utc = value.astimezone(UTC)
    except OverflowError as error:
        raise LocalProtocolError(f"{what} {value!r} is out of range in UTC") from error
    writer.push_bytes(
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T"
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}Z".encode("ascii")
    )


# --- IETF attribute codecs (§4.2.1 to §4.2.12): value bytes only, without the 12-byte header ---


def pull_attribute_request(value: bytes) -> AttributeRequest:
    """§4.2.1: entries of `Reserved(8) Vendor ID(24) Type(32)`."""
    with value_buffer(value) as buf:
        if len(value) % 8:
            raise _invalid(len(value) - len(value) % 8, "an attribute request entry is 8 bytes")
        requested = []
        while not buf.at_end():
            buf.pull_uint8("reserved")
            vendor = buf.pull_uint24("requested vendor id")
            requested.append(AttributeKey(vendor, buf.pull_uint32("requested attribute type")))
        return AttributeRequest(tuple(requested))


def push_attribute_request(attribute: AttributeRequest) -> bytes:
    writer = Writer()
    for key in attribute.requested:
        writer.push_uint8(0)
        writer.push_uint24(key.vendor, "requested vendor id")
        writer.push_uint32(key.type, "requested attribute type")
    return writer.data()


def pull_product_information(value: bytes) -> ProductInformation:
    """§4.2.2: `Product Vendor ID(24) Product ID(16)` then the name, to the end."""
    with value_buffer(value) as buf:
        vendor = buf.pull_uint24("product vendor id")
        product_id = buf.pull_uint16("product id")
        return ProductInformation(vendor, product_id, _decode_utf8(buf.pull_rest()))


def push_product_information(attribute: ProductInformation) -> bytes:
    writer = Writer()
    writer.push_uint24(attribute.vendor, "product vendor id")
    writer.push_uint16(attribute.product_id, "product id")
    writer.push_bytes(_encode_utf8(attribute.name, "product name"))
    return writer.data()


def pull_numeric_version(value: bytes) -> NumericVersion:
    """§4.2.3: `Major(32) Minor(32) Build(32) Service Pack Major(16) Minor(16)`."""
    with value_buffer(value) as buf:
        return NumericVersion(
            buf.pull_uint32("major version"),
            buf.pull_uint32("minor version"),
            buf.pull_uint32("build number"),
            buf.pull_uint16("service pack major"),
            buf.pull_uint16("service pack minor"),
        )


def push_numeric_version(attribute: NumericVersion) -> bytes:
    writer = Writer()
    writer.push_uint32(attribute.major, "major version")
    writer.push_uint32(attribute.minor, "minor version")
    writer.push_uint32(attribute.build, "build number")
    writer.push_uint16(attribute.service_pack_major, "service pack major")
    writer.push_uint16(attribute.service_pack_minor, "service pack minor")
    return writer.data()


def pull_string_version(value: bytes) -> StringVersion:
    """§4.2.4: three strings, each after an 8-bit length."""
    with value_buffer(value) as buf:
        return StringVersion(
            pull_string8(buf, "product version"),
            pull_string8(buf, "build number"),
            pull_string8(buf, "configuration version"),
        )


def push_string_version(attribute: StringVersion) -> bytes:
    writer = Writer()
    push_string8(writer, attribute.version, "product version")
    push_string8(writer, attribute.build, "build number")
    push_string8(writer, attribute.configuration, "configuration version")
    return writer.data()


def pull_operational_status(value: bytes) -> OperationalStatus:
    """§4.2.5: `Status(8) Result(8) Reserved(16)` then the 20-character Last Use time."""
    with value_buffer(value) as buf:
        status = pull_enum(buf, OperationalStatusCode, 8, "operational status")
        result = pull_enum(buf, OperationalResultCode, 8, "operational result")
        buf.pull_uint16("reserved")
        return OperationalStatus(status, result, pull_utc_time(buf, "last use"))


def push_operational_status(attribute: OperationalStatus) -> bytes:
    writer = Writer()
    push_enum(writer, OperationalStatusCode, attribute.status, 8, "operational status")
    push_enum(writer, OperationalResultCode, attribute.result, 8, "operational result")
    writer.push_uint16(0)
    push_utc_time(writer, attribute.last_use, "last use")
    return writer.data()


_PORT_BLOCKED = 0x01  # the B bit, last of the entry's first (otherwise reserved) byte


def pull_port_filter(value: bytes) -> PortFilter:
    """§4.2.6: entries of `Reserved(7) B(1) Protocol(8) Port(16)`."""
    with value_buffer(value) as buf:
        if len(value) % 4:
            raise _invalid(len(value) - len(value) % 4, "a port filter entry is 4 bytes")
        entries = []
        while not buf.at_end():
            blocked = bool(buf.pull_uint8("port filter flags") & _PORT_BLOCKED)
            protocol = buf.pull_uint8("protocol")
            entries.append(PortFilterEntry(blocked, protocol, buf.pull_uint16("port")))
        return PortFilter(tuple(entries))


def push_port_filter(attribute: PortFilter) -> bytes:
    writer = Writer()
    for entry in attribute.entries:
        writer.push_uint8(_PORT_BLOCKED if entry.blocked else 0)
        writer.push_uint8(entry.protocol, "protocol")
        writer.push_uint16(entry.port, "port")
    return writer.data()


def pull_installed_packages(value: bytes) -> InstalledPackages:
    """§4.2.7: `Reserved(16) Package Count(16)`, then per package a name and a version,
    each after an 8-bit length (so at least 2 bytes a package). The one large attribute
    (~700 packages on a Debian desktop): walked with plain indexing, not the Buffer."""
    with value_buffer(value) as buf:
        buf.pull_uint16("reserved")
        count = pull_count(buf, "package count", min_entry_size=2)
        data, at, end = value, buf.offset, len(value)
        packages = []
        for _ in range(count):
            fields = []
            for what in ("package name", "package version"):
                if at >= end:
                    raise _invalid(at, f"{what} length: the value ends at {end}")
                size = data[at]
                if at + 1 + size > end:
                    raise _invalid(at, f"{what} of {size} bytes runs past the value's end")
                fields.append(data[at + 1 : at + 1 + size].decode("utf-8", errors="replace"))
                at += 1 + size
            packages.append(Package._make(fields))
        buf.offset = at
        return InstalledPackages(tuple(packages))


def push_installed_packages(attribute: InstalledPackages) -> bytes:
    writer = Writer()
    writer.push_uint16(0)
    push_count(writer, len(attribute.packages), "package count")
    for package in attribute.packages:
        push_string8(writer, package.name, "package name")
        push_string8(writer, package.version, "package version")
    return writer.data()


def pull_pa_tnc_error(value: bytes) -> PaTncErrorAttribute:
    """§4.2.8: `Reserved(8) Error Code Vendor ID(24) Error Code(32)`, then information.
    For each IETF code that is the 8-byte header of the refused message, followed by:
    Invalid Parameter `Offset(32)`; Version Not Supported `Max(8) Min(8) Reserved(16)`;
    Attribute Type Not Supported `Flags(8) Vendor ID(24) Type(32)` of that attribute."""
    with value_buffer(value) as buf:
        buf.pull_uint8("reserved")
        vendor = buf.pull_uint24("error code vendor id")
        code = buf.pull_uint32("error code")
        info: ErrorInformation
        if vendor != IETF_PEN or code not in _IETF_ERROR_CODES.values():
            info = OtherErrorInfo(vendor, code, buf.pull_rest())
            return PaTncErrorAttribute(info)
        header = buf.pull_bytes(MESSAGE_HEADER_SIZE, "copy of the message header")
        if code == PaErrorCode.INVALID_PARAMETER:
            info = InvalidParameterInfo(header, buf.pull_uint32("offset"))
        elif code == PaErrorCode.VERSION_NOT_SUPPORTED:
            max_version = buf.pull_uint8("max version")
            min_version = buf.pull_uint8("min version")
            buf.pull_uint16("reserved")
            info = VersionNotSupportedInfo(header, max_version, min_version)
        else:
            flags = buf.pull_uint8("unsupported attribute flags")
            attr_vendor = buf.pull_uint24("unsupported attribute vendor id")
            attr_type = buf.pull_uint32("unsupported attribute type")
            info = AttributeTypeNotSupportedInfo(
                header, flags, AttributeKey(attr_vendor, attr_type)
            )
        return PaTncErrorAttribute(info)


def push_pa_tnc_error(attribute: PaTncErrorAttribute) -> bytes:
    writer = Writer()
    info = attribute.information
    writer.push_uint8(0)
    writer.push_uint24(attribute.vendor, "error code vendor id")
    writer.push_uint32(attribute.code, "error code")
    if isinstance(info, OtherErrorInfo):
        writer.push_bytes(info.information)
        return writer.data()
    if len(info.message_header) != MESSAGE_HEADER_SIZE:
        raise LocalProtocolError(
            f"the quoted message header is {len(info.message_header)} bytes, it must be 8"
        )
    writer.push_bytes(info.message_header)
    if isinstance(info, InvalidParameterInfo):
        writer.push_uint32(info.offset, "error offset")
    elif isinstance(info, VersionNotSupportedInfo):
        writer.push_uint8(info.max_version, "max version")
        writer.push_uint8(info.min_version, "min version")
        writer.push_uint16(0)
    else:
        writer.push_uint8(info.flags, "unsupported attribute flags")
        writer.push_uint24(info.attribute.vendor, "unsupported attribute vendor id")
        writer.push_uint32(info.attribute.type, "unsupported attribute type")
    return writer.data()


def pull_assessment_result(value: bytes) -> AssessmentResult:
    """§4.2.9: `Assessment Result(32)`."""
    with value_buffer(value) as buf:
        return AssessmentResult(pull_enum(buf, AssessmentResultCode, 32, "assessment result"))


def push_assessment_result(attribute: AssessmentResult) -> bytes:
    writer = Writer()
    push_enum(writer, AssessmentResultCode, attribute.result, 32, "assessment result")
    return writer.data()


def pull_remediation_instructions(value: bytes) -> RemediationInstructions:
    """§4.2.10: `Reserved(8) Parameters Vendor ID(24) Parameters Type(32)`, then the
    parameters. IETF URI: the URI, to the end. IETF string: `Length(32)` string
    `Lang Code Len(8)` language tag (RFC 5793 §4.8.2)."""
    with value_buffer(value) as buf:
        buf.pull_uint8("reserved")
        vendor = buf.pull_uint24("remediation parameters vendor id")
        kind = buf.pull_uint32("remediation parameters type")
        parameters: RemediationParameters
        if vendor == IETF_PEN and kind == RemediationParametersType.URI:
            parameters = RemediationUri(_decode_utf8(buf.pull_rest()))
        elif vendor == IETF_PEN and kind == RemediationParametersType.STRING:
            size = buf.pull_uint32("remediation string length")
            text = _decode_utf8(buf.pull_bytes(size, "remediation string"))
            parameters = RemediationString(text, pull_string8(buf, "remediation language"))
        else:
            parameters = RawRemediationParameters(vendor, kind, buf.pull_rest())
        return RemediationInstructions(parameters)


def push_remediation_instructions(attribute: RemediationInstructions) -> bytes:
    writer = Writer()
    parameters = attribute.parameters
    writer.push_uint8(0)
    if isinstance(parameters, RemediationUri):
        writer.push_uint24(IETF_PEN)
        writer.push_uint32(RemediationParametersType.URI)
        writer.push_bytes(_encode_utf8(parameters.uri, "remediation uri"))
    elif isinstance(parameters, RemediationString):
        writer.push_uint24(IETF_PEN)
        writer.push_uint32(RemediationParametersType.STRING)
        text = _encode_utf8(parameters.text, "remediation string")
        writer.push_uint32(len(text), "remediation string length")
        writer.push_bytes(text)
        push_string8(writer, parameters.language, "remediation language")
    else:
        writer.push_uint24(parameters.vendor, "remediation parameters vendor id")
        writer.push_uint32(parameters.type, "remediation parameters type")
        writer.push_bytes(parameters.value)
    return writer.data()


def pull_forwarding_enabled(value: bytes) -> ForwardingEnabled:
    """§4.2.11: `Forwarding Enabled(32)`."""
    with value_buffer(value) as buf:
        return ForwardingEnabled(pull_enum(buf, ForwardingState, 32, "forwarding enabled"))


def push_forwarding_enabled(attribute: ForwardingEnabled) -> bytes:
    writer = Writer()
    push_enum(writer, ForwardingState, attribute.state, 32, "forwarding enabled")
    return writer.data()


def pull_factory_default_password_enabled(value: bytes) -> FactoryDefaultPasswordEnabled:
    """§4.2.12: `Factory Default Password Enabled(32)`, 0 or 1."""
    with value_buffer(value) as buf:
        raw = buf.pull_uint32("factory default password enabled")
        if raw > 1:
            raise _invalid(0, f"factory default password enabled {raw} is neither 0 nor 1")
        return FactoryDefaultPasswordEnabled(bool(raw))


def push_factory_default_password_enabled(attribute: FactoryDefaultPasswordEnabled) -> bytes:
    writer = Writer()
    writer.push_uint32(1 if attribute.enabled else 0)
    return writer.data()


# --- the registry -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttributeCodec(Generic[A]):
    """How one (vendor, type) decodes to `kind` and back; value bytes only, no header."""

    key: AttributeKey
    kind: type[A]
    pull: Callable[[bytes], A]
    push: Callable[[A], bytes]


_BY_KEY: dict[AttributeKey, AttributeCodec[Any]] = {}
_BY_KIND: dict[type[PaAttribute], AttributeCodec[Any]] = {}


def register_attribute(
    key: AttributeKey, kind: type[A], pull: Callable[[bytes], A], push: Callable[[A], bytes]
) -> None:
    """Teach pull_pa_message() and push_pa_message() an attribute. `pull` must raise only
    PaTncError, with offsets within the value (value_buffer() does that); `push` only
    LocalProtocolError. A key or class already taken by another codec is refused."""
    key = AttributeKey(int(key.vendor), int(key.type))  # plain ints, for plain reprs
    codec = AttributeCodec(key, kind, pull, push)
    for taken in (_BY_KEY.get(key), _BY_KIND.get(kind)):
        if taken is not None and taken != codec:
            raise LocalProtocolError(
                f"{kind.__name__} as vendor {key.vendor} type {key.type}: "
                f"{taken.kind.__name__} already has vendor {taken.key.vendor} type {taken.key.type}"
            )
    _BY_KEY[key] = codec
    _BY_KIND[kind] = codec


def attribute_key(kind: type[PaAttribute]) -> AttributeKey:
    """The (vendor, type) a registered attribute class travels as, e.g. for an
    AttributeRequest: `AttributeRequest((attribute_key(InstalledPackages),))`."""
    codec = _BY_KIND.get(kind)
    if codec is None:
        raise LocalProtocolError(f"{kind.__name__} is not a registered attribute")
    return codec.key


def _describe(key: AttributeKey) -> str:
    codec = _BY_KEY.get(key)
    if codec is not None:
        return codec.kind.__name__
    return f"attribute vendor {key.vendor} type {key.type}"


# --- messages (§4.1, §4.2) --------------------------------------------------------------------


def pull_pa_message(data: bytes) -> PaMessage:
    """Decodes a whole PA-TNC message. Unknown attributes without NOSKIP come back as
    SkippedAttribute; with NOSKIP they refuse the message (UnsupportedAttributeError).
    Raises only PaTncError; its offset counts from the start of `data` and its header is
    the first 8 bytes of `data` (fewer if there are fewer)."""
    data = bytes(data)
    header = data[:MESSAGE_HEADER_SIZE]
    if data and data[0] != PA_TNC_VERSION:
        raise PaTncError(
            PaErrorCode.VERSION_NOT_SUPPORTED,
            f"PA-TNC version {data[0]}; only {PA_TNC_VERSION} is supported",
            offset=0,
            header=header,
        )
    buf = Buffer(data)
    try:
        buf.pull_uint8("version")
        buf.pull_uint24("reserved")
        message_id = buf.pull_uint32("message identifier")
        attributes = []
        while not buf.at_end():
            attributes.append(_pull_attribute(buf, header))
    except BufferUnderrun as error:
        raise PaTncError(
            PaErrorCode.INVALID_PARAMETER, str(error), offset=error.offset, header=header
        ) from error
    return PaMessage(message_id, tuple(attributes))


def _pull_attribute(buf: Buffer, header: bytes) -> PaAttribute:
    start = buf.offset
    flags = buf.pull_uint8("attribute flags")
    key = AttributeKey(buf.pull_uint24("attribute vendor id"), buf.pull_uint32("attribute type"))
    length_at = buf.offset
    length = buf.pull_uint32("attribute length")
    if length < ATTRIBUTE_HEADER_SIZE:
        raise PaTncError(
            PaErrorCode.INVALID_PARAMETER,
            f"{_describe(key)} at offset {start}: length {length} is shorter than its header",
            offset=length_at,
            header=header,
        )
    if length - ATTRIBUTE_HEADER_SIZE > buf.remaining:
        raise PaTncError(
            PaErrorCode.INVALID_PARAMETER,
            f"{_describe(key)} at offset {start}: length {length} runs "
            f"{length - ATTRIBUTE_HEADER_SIZE - buf.remaining} bytes past the message",
            offset=length_at,
            header=header,
        )
    value_at = buf.offset
    value = buf.pull_bytes(length - ATTRIBUTE_HEADER_SIZE, "attribute value")
    noskip = bool(flags & NOSKIP)
    codec = _BY_KEY.get(key)
    if codec is None:
        if noskip:
            raise UnsupportedAttributeError(key, flags, offset=start, header=header)
        return SkippedAttribute(key.vendor, key.type, len(value))
    try:
        attribute: PaAttribute = codec.pull(value)
    except PaTncError as error:
        raise PaTncError(
            error.code,
            f"{_describe(key)} at offset {start}: {error}",
            offset=value_at + error.offset,
            header=header,
        ) from error
    return dataclasses.replace(attribute, noskip=True) if noskip else attribute


def push_pa_message(message: PaMessage) -> bytes:
    """Encodes a whole PA-TNC message; raises LocalProtocolError for a value that does not
    fit, an unregistered attribute class or a SkippedAttribute (it has no value)."""
    writer = Writer()
    writer.push_uint8(PA_TNC_VERSION)
    writer.push_uint24(0)
    writer.push_uint32(message.message_id, "message identifier")
    for attribute in message.attributes:
        key, value = _push_value(attribute)
        writer.push_uint8(NOSKIP if attribute.noskip else 0)
        writer.push_uint24(key.vendor, "attribute vendor id")
        writer.push_uint32(key.type, "attribute type")
        writer.push_uint32(ATTRIBUTE_HEADER_SIZE + len(value), "attribute length")
        writer.push_bytes(value)
    return writer.data()


def _push_value(attribute: PaAttribute) -> tuple[AttributeKey, bytes]:
    if isinstance(attribute, RawAttribute):
        return AttributeKey(attribute.vendor, attribute.type), attribute.value
    if isinstance(attribute, SkippedAttribute):
        raise LocalProtocolError(
            f"a skipped attribute (vendor {attribute.vendor} type {attribute.type}) "
            "has no value to send"
        )
    codec = _BY_KIND.get(type(attribute))
    if codec is None:
        raise LocalProtocolError(f"{type(attribute).__name__} is not a registered attribute")
    return codec.key, codec.push(attribute)


def error_attribute_for(error: PaTncError) -> PaTncErrorAttribute:
    """The §4.2.8 PA-TNC Error attribute that answers `error`. The quoted header is the
    refused message's first 8 bytes, zero-padded when the message was shorter; a Version
    Not Supported answer offers version 1 only. Attribute Type Not Supported needs the
    UnsupportedAttributeError that pull_pa_message() raises, which names the attribute."""
    header = error.header[:MESSAGE_HEADER_SIZE].ljust(MESSAGE_HEADER_SIZE, b"\0")
    info: ErrorInformation
    if error.code == PaErrorCode.INVALID_PARAMETER:
        info = InvalidParameterInfo(header, error.offset)
    elif error.code == PaErrorCode.VERSION_NOT_SUPPORTED:
        info = VersionNotSupportedInfo(header, PA_TNC_VERSION, PA_TNC_VERSION)
    elif isinstance(error, UnsupportedAttributeError):
        info = AttributeTypeNotSupportedInfo(header, error.flags, error.attribute)
    else:
        raise LocalProtocolError(
            "an Attribute Type Not Supported answer needs an UnsupportedAttributeError, "
            "which names the attribute"
        )
    return PaTncErrorAttribute(info)


register_attribute(
    AttributeKey(IETF_PEN, AttributeType.ATTRIBUTE_REQUEST),
    AttributeRequest,
    pull_attribute_request,
    push_attribute_request,
)
register_attribute(
    AttributeKey(IETF_PEN, AttributeType.PRODUCT_INFORMATION),
    ProductInformation,
    pull_product_information,
    push_product_information,
)
register_attribute(
    AttributeKey(IETF_PEN, AttributeType.NUMERIC_VERSION),
    NumericVersion,
    pull_numeric_version,
    push_numeric_version,
)
register_attribute(
    AttributeKey(IETF_PEN, AttributeType.STRING_VERSION),
    StringVersion,
    pull_string_version,
    push_string_version,
)
register_attribute(
    AttributeKey(IETF_PEN, AttributeType.OPERATIONAL_STATUS),
    OperationalStatus,
    pull_operational_status,
    push_operational_status,
)
register_attribute(
    AttributeKey(IETF_PEN, AttributeType.PORT_FILTER),
    PortFilter,
    pull_port_filter,
    push_port_filter,
)
register_attribute(
    AttributeKey(IETF_PEN, AttributeType.INSTALLED_PACKAGES),
    InstalledPackages,
    pull_installed_packages,
    push_installed_packages,
)
register_attribute(
    AttributeKey(IETF_PEN, AttributeType.PA_TNC_ERROR),
    PaTncErrorAttribute,
    pull_pa_tnc_error,
    push_pa_tnc_error,
)
register_attribute(
    AttributeKey(IETF_PEN, AttributeType.ASSESSMENT_RESULT),
    AssessmentResult,
    pull_assessment_result,
    push_assessment_result,
)
register_attribute(
    AttributeKey(IETF_PEN, AttributeType.REMEDIATION_INSTRUCTIONS),
    RemediationInstructions,
    pull_remediation_instructions,
    push_remediation_instructions,
)
register_attribute(
    AttributeKey(IETF_PEN, AttributeType.FORWARDING_ENABLED),
    ForwardingEnabled,
    pull_forwarding_enabled,
    push_forwarding_enabled,
)
register_attribute(
    AttributeKey(IETF_PEN, AttributeType.FACTORY_DEFAULT_PASSWORD_ENABLED),
    FactoryDefaultPasswordEnabled,
    pull_factory_default_password_enabled,
    push_factory_default_password_enabled,
)
