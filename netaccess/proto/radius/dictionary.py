"""RADIUS dictionaries in FreeRADIUS's file format (ATTRIBUTE, VALUE, VENDOR, BEGIN-VENDOR,
END-VENDOR, $INCLUDE), and the typed values they give attributes: RFC 2865 §5's data types,
tags (RFC 2868 §3) and the hidden ones (encrypt=1: RFC 2865 §5.2; encrypt=2: RFC 2868 §3.5).
Parsing takes text; reading the files is the caller's (config/radius.py)."""

from __future__ import annotations

import enum
import ipaddress
import re
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from netaccess.proto.radius import auth
from netaccess.proto.radius.errors import BadAttribute, DictionaryError, EncodeError
from netaccess.proto.radius.packet import (
    MAX_VALUE,
    VENDOR_SPECIFIC,
    Attribute,
    Packet,
    split_value,
    split_vendor_specific,
    vendor_specific,
)


class DataType(enum.Enum):
    STRING = "string"
    OCTETS = "octets"
    IPADDR = "ipaddr"
    IPV6ADDR = "ipv6addr"
    IPV6PREFIX = "ipv6prefix"
    IPV4PREFIX = "ipv4prefix"
    INTEGER = "integer"
    SIGNED = "signed"
    BYTE = "byte"
    SHORT = "short"
    INTEGER64 = "integer64"
    DATE = "date"
    IFID = "ifid"
    ETHER = "ether"
    VSA = "vsa"


# Flags that change nothing for a codec of single values: `array` (several values in one
# attribute; we keep the octets) and `virtual`/`internal` (server-side only names).
_IGNORED_FLAGS = frozenset({"array", "virtual", "internal", "secret"})
_ALIASES = {
    "text": DataType.STRING,
    "uint32": DataType.INTEGER,
    "ipv4addr": DataType.IPADDR,
    "abinary": DataType.OCTETS,  # Ascend binary filters: kept as octets
    "combo-ip": DataType.OCTETS,
}
_INTEGER_SIZES = {
    DataType.BYTE: 1,
    DataType.SHORT: 2,
    DataType.INTEGER: 4,
    DataType.DATE: 4,
    DataType.INTEGER64: 8,
}

Value = str | bytes | int | ipaddress.IPv4Address | ipaddress.IPv6Address | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class AttributeDef:
    name: str
    code: int
    type: DataType
    vendor: int = 0  # 0: a standard attribute; else the vendor's SMI enterprise number
    has_tag: bool = False
    encrypt: int = 0  # 1: User-Password hiding, 2: salted (Tunnel-Password, MPPE keys)
    concat: bool = False  # a long value spans several attributes (EAP-Message)
    values: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    def value_name(self, number: int) -> str | None:
        for name, found in self.values.items():
            if found == number:
                return name
        return None


@dataclass(frozen=True, slots=True)
class Decoded:
    """One attribute as the dictionary reads it; `definition` None for an attribute the
    dictionary does not know (its value is then the raw octets)."""

    definition: AttributeDef | None
    code: int
    vendor: int
    value: Value
    tag: int = 0

    @property
    def name(self) -> str:
        if self.definition is not None:
            return self.definition.name
        return f"Attr-{self.vendor}-{self.code}" if self.vendor else f"Attr-{self.code}"


@dataclass(frozen=True, slots=True)
class Dictionary:
    attributes: Mapping[str, AttributeDef]  # by lower-cased name
    by_code: Mapping[tuple[int, int], AttributeDef]  # by (vendor, code)
    vendors: Mapping[str, int]  # by lower-cased name

    def attribute(self, name: str) -> AttributeDef:
        try:
            return self.attributes[name.lower()]
        except KeyError:
            raise EncodeError(f"the RADIUS dictionary has no attribute {name!r}") from None

    def lookup(self, code: int, vendor: int = 0) -> AttributeDef | None:
        return self.by_code.get((vendor, code))

    # --- encoding ---------------------------------------------------------------------------

    def encode(
        self,
        name: str,
        value: Value,
        *,
        tag: int = 0,
        secret: bytes | None = None,
        authenticator: bytes | None = None,
        salt: bytes | None = None,
    ) -> list[Attribute]:
        """`name` = `value` as packet attributes (one, or several for a concat value, or one
        Vendor-Specific). A VALUE name may stand for an integer. Hidden attributes need the
        secret and the (request) authenticator."""
        definition = self.attribute(name)
        if isinstance(value, str) and definition.type in _INTEGER_SIZES and definition.values:
            lowered = {k.lower(): v for k, v in definition.values.items()}
            if value.lower() in lowered:
                value = lowered[value.lower()]
        octets = _encode_value(definition, value, tag)
        if definition.encrypt:
            if secret is None or authenticator is None:
                raise EncodeError(f"{definition.name} is hidden: it needs the secret")
            if definition.encrypt == 1:
                octets = auth.hide_password(octets, secret, authenticator)
            else:
                octets = auth.salt_hide(octets, secret, authenticator, salt)
            if definition.has_tag:
                octets = bytes([tag]) + octets
        if definition.vendor:
            return [vendor_specific(definition.vendor, definition.code, octets)]
        if definition.concat:
            return split_value(definition.code, octets)
        if len(octets) > MAX_VALUE:
            raise EncodeError(f"{definition.name}: {len(octets)} octets is over {MAX_VALUE}")
        return [(definition.code, octets)]

    # --- decoding ---------------------------------------------------------------------------

    def decode(
        self, packet: Packet, *, secret: bytes | None = None, authenticator: bytes | None = None
    ) -> list[Decoded]:
        """Every attribute of `packet`, typed; concat attributes joined into one, and
        Vendor-Specific ones split. Hidden values are revealed when the secret is given
        (`authenticator`: the request's), else kept as octets. BadAttribute for a value
        that does not fit its type."""
        found: list[Decoded] = []
        joined: dict[int, int] = {}  # concat code -> its index in found
        for code, octets in packet.attributes:
            if code == VENDOR_SPECIFIC:
                for vendor, vendor_type, value in split_vendor_specific(octets):
                    found.append(
                        self._decode_one(vendor_type, vendor, value, secret, authenticator)
                    )
                continue
            definition = self.by_code.get((0, code))
            if definition is not None and definition.concat:
                if code in joined:
                    earlier = found[joined[code]]
                    assert isinstance(earlier.value, bytes)
                    found[joined[code]] = Decoded(definition, code, 0, earlier.value + octets)
                    continue
                joined[code] = len(found)
            found.append(self._decode_one(code, 0, octets, secret, authenticator))
        return found

    def _decode_one(
        self,
        code: int,
        vendor: int,
        octets: bytes,
        secret: bytes | None,
        authenticator: bytes | None,
    ) -> Decoded:
        definition = self.by_code.get((vendor, code))
        if definition is None:
            return Decoded(None, code, vendor, octets)
        tag = 0
        if definition.encrypt:
            if definition.has_tag:
                if not octets:
                    raise BadAttribute(f"{definition.name} is empty")
                tag, octets = octets[0], octets[1:]
            if secret is None or authenticator is None:
                return Decoded(definition, code, vendor, octets, tag)
            if definition.encrypt == 1:
                octets = auth.reveal_password(octets, secret, authenticator)
            else:
                octets = auth.salt_reveal(octets, secret, authenticator)
            return Decoded(definition, code, vendor, _decode_value(definition, octets), tag)
        if definition.has_tag:
            if definition.type in _INTEGER_SIZES:
                if len(octets) != 4:
                    raise BadAttribute(f"{definition.name}: {len(octets)} octets, want 4")
                return Decoded(
                    definition, code, vendor, int.from_bytes(octets[1:], "big"), octets[0]
                )
            if octets and octets[0] <= 0x1F:  # RFC 2868 §3: > 0x1F is the value's first
                tag, octets = octets[0], octets[1:]
        return Decoded(definition, code, vendor, _decode_value(definition, octets), tag)


def _encode_value(definition: AttributeDef, value: Value, tag: int) -> bytes:
    kind = definition.type
    name = definition.name
    if not 0 <= tag <= 0x1F:
        raise EncodeError(f"{name}: tag {tag} is outside 0..31")
    if tag and not definition.has_tag:
        raise EncodeError(f"{name} takes no tag")
    try:
        if kind in (DataType.STRING, DataType.OCTETS, DataType.IFID, DataType.ETHER):
            octets = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
            if not isinstance(octets, bytes):
                raise EncodeError(f"{name} is {kind.value}: give str or bytes")
            if kind is DataType.IFID and len(octets) != 8:
                raise EncodeError(f"{name} is an interface id of 8 octets")
            if kind is DataType.ETHER and len(octets) != 6:
                raise EncodeError(f"{name} is an Ethernet address of 6 octets")
            if definition.has_tag and not definition.encrypt and (tag or octets[:1] <= b"\x1f"):
                octets = bytes([tag]) + octets  # a tag octet only where it must be there
            return octets
        if kind in _INTEGER_SIZES or kind is DataType.SIGNED:
            if not isinstance(value, int) or isinstance(value, bool):
                raise EncodeError(f"{name} is {kind.value}: give an int (or a VALUE name)")
            if kind is DataType.SIGNED:
                return struct.pack("!i", value)
            size = _INTEGER_SIZES[kind]
            if definition.has_tag:
                return bytes([tag]) + value.to_bytes(3, "big")
            return value.to_bytes(size, "big")
        if kind is DataType.IPADDR:
            return ipaddress.IPv4Address(value).packed
        if kind is DataType.IPV6ADDR:
            return ipaddress.IPv6Address(value).packed
        if kind is DataType.IPV6PREFIX:
            network = ipaddress.IPv6Network(value)
            size = (network.prefixlen + 7) // 8
            return bytes([0, network.prefixlen]) + network.network_address.packed[:size]
        if kind is DataType.IPV4PREFIX:
            network4 = ipaddress.IPv4Network(value)
            return bytes([0, network4.prefixlen]) + network4.network_address.packed
    except (ValueError, OverflowError, TypeError) as exc:
        raise EncodeError(f"{name}: {value!r} does not fit {kind.value}: {exc}") from None
    raise EncodeError(f"{name}: values of type {kind.value} are not encoded here")


def _decode_value(definition: AttributeDef, octets: bytes) -> Value:
    kind = definition.type
    name = definition.name
    if kind is DataType.STRING:
        return octets.decode("utf-8", "surrogateescape")
    if kind is DataType.OCTETS or kind is DataType.VSA:
        return octets
    if kind in _INTEGER_SIZES or kind is DataType.SIGNED:
        size = _INTEGER_SIZES.get(kind, 4)
        if len(octets) != size:
            raise BadAttribute(f"{name}: {len(octets)} octets, want {size}")
        return int.from_bytes(octets, "big", signed=kind is DataType.SIGNED)
    if kind is DataType.IPADDR:
        if len(octets) != 4:
            raise BadAttribute(f"{name}: {len(octets)} octets, want an IPv4 address (4)")
        return ipaddress.IPv4Address(octets)
    if kind is DataType.IPV6ADDR:
        if len(octets) != 16:
            raise BadAttribute(f"{name}: {len(octets)} octets, want an IPv6 address (16)")
        return ipaddress.IPv6Address(octets)
    if kind is DataType.IPV6PREFIX:
        if not 2 <= len(octets) <= 18 or octets[1] > 128 or len(octets) - 2 > 16:
            raise BadAttribute(f"{name}: malformed IPv6 prefix of {len(octets)} octets")
        if len(octets) - 2 < (octets[1] + 7) // 8:
            raise BadAttribute(f"{name}: prefix /{octets[1]} needs more octets")
        address = ipaddress.IPv6Address(octets[2:].ljust(16, b"\x00"))
        try:
            return ipaddress.IPv6Network(f"{address}/{octets[1]}")
        except ValueError:
            raise BadAttribute(f"{name}: prefix has host bits set") from None
    if kind is DataType.IFID:
        if len(octets) != 8:
            raise BadAttribute(f"{name}: {len(octets)} octets, want 8")
        return octets
    if kind is DataType.ETHER:
        if len(octets) != 6:
            raise BadAttribute(f"{name}: {len(octets)} octets, want 6")
        return octets
    return octets  # IPV4PREFIX and the rest: raw


# --- the file format ----------------------------------------------------------------------


Include = Callable[[str, str], tuple[str, str]]  # (file name, includer) -> (source name, text)


@dataclass
class _Builder:
    attributes: dict[str, AttributeDef] = field(default_factory=dict)
    by_code: dict[tuple[int, int], AttributeDef] = field(default_factory=dict)
    vendors: dict[str, int] = field(default_factory=dict)
    values: dict[str, dict[str, int]] = field(default_factory=dict)  # lower attr -> names
    pending_values: list[tuple[str, int, str, str, int]] = field(default_factory=list)


def parse_dictionary(
    text: str, source: str = "dictionary", include: Include | None = None
) -> Dictionary:
    """A Dictionary from a FreeRADIUS-format file's text; `include` reads a `$INCLUDE`d
    file. Every error names the file and line."""
    builder = _Builder()
    _parse_into(builder, text, source, include, depth=0)
    for source_name, line, attribute, value_name, number in builder.pending_values:
        if attribute.lower() not in builder.attributes:
            raise DictionaryError(source_name, line, f"VALUE for unknown attribute {attribute}")
        builder.values.setdefault(attribute.lower(), {})[value_name] = number
    attributes: dict[str, AttributeDef] = {}
    for key, definition in builder.attributes.items():
        values = builder.values.get(key, {})
        final = AttributeDef(
            definition.name,
            definition.code,
            definition.type,
            definition.vendor,
            definition.has_tag,
            definition.encrypt,
            definition.concat,
            MappingProxyType(dict(values)),
        )
        attributes[key] = final
    by_code = {key: attributes[d.name.lower()] for key, d in builder.by_code.items()}
    return Dictionary(
        MappingProxyType(attributes), MappingProxyType(by_code), MappingProxyType(builder.vendors)
    )


_MAX_INCLUDE_DEPTH = 8


def _parse_into(
    builder: _Builder, text: str, source: str, include: Include | None, depth: int
) -> None:
    vendor = 0
    vendor_name = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        keyword = words[0]

        def fail(message: str, line_no: int = number) -> DictionaryError:
            return DictionaryError(source, line_no, message)

        if keyword == "$INCLUDE":
            if len(words) != 2:
                raise fail("$INCLUDE takes one file name")
            if include is None:
                raise fail(f"$INCLUDE {words[1]}: no way to read included files here")
            if depth >= _MAX_INCLUDE_DEPTH:
                raise fail(f"$INCLUDE nested over {_MAX_INCLUDE_DEPTH} deep (a loop?)")
            name, included = include(words[1], source)
            _parse_into(builder, included, name, include, depth + 1)
        elif keyword == "VENDOR":
            if len(words) not in (3, 4):
                raise fail("VENDOR takes a name and a number")
            vendor_id = _number(words[2], fail)
            if not 0 < vendor_id < 1 << 24:
                raise fail(f"vendor number {vendor_id} is not an SMI enterprise number")
            if len(words) == 4 and words[3] not in ("format=1,1",):
                raise fail(f"VENDOR {words[1]}: only format=1,1 is supported, not {words[3]}")
            builder.vendors[words[1].lower()] = vendor_id
        elif keyword == "BEGIN-VENDOR":
            if len(words) != 2 or words[1].lower() not in builder.vendors:
                raise fail(f"BEGIN-VENDOR of an undeclared vendor: {' '.join(words[1:])}")
            if vendor:
                raise fail(f"BEGIN-VENDOR inside BEGIN-VENDOR {vendor_name}")
            vendor, vendor_name = builder.vendors[words[1].lower()], words[1]
        elif keyword == "END-VENDOR":
            if len(words) != 2 or words[1].lower() != vendor_name.lower() or not vendor:
                raise fail(f"END-VENDOR {' '.join(words[1:])} does not close a BEGIN-VENDOR")
            vendor, vendor_name = 0, ""
        elif keyword == "ATTRIBUTE":
            _attribute(builder, words, vendor, fail)
        elif keyword == "VALUE":
            if len(words) != 4:
                raise fail("VALUE takes an attribute, a name and a number")
            builder.pending_values.append(
                (source, number, words[1], words[2], _number(words[3], fail))
            )
        else:
            raise fail(f"unknown keyword {keyword!r}")
    if vendor:
        raise DictionaryError(
            source, len(text.splitlines()), f"BEGIN-VENDOR {vendor_name} never ended"
        )


def _number(text: str, fail: Callable[[str], DictionaryError]) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise fail(f"{text!r} is not a number") from None


def _attribute(
    builder: _Builder, words: list[str], vendor: int, fail: Callable[[str], DictionaryError]
) -> None:
    if len(words) not in (4, 5):
        raise fail("ATTRIBUTE takes a name, a number, a type and optional flags")
    name, code_text, type_text = words[1], words[2], words[3].lower()
    if "." in code_text:
        raise fail(f"{name}: extended attribute numbers ({code_text}, RFC 6929) are not supported")
    code = _number(code_text, fail)
    size = re.fullmatch(r"(string|octets)\[(\d+)\]", type_text)
    if size is not None:  # a fixed length: the type is what counts here
        type_text = size.group(1)
    if not 1 <= code <= 255:
        raise fail(f"attribute number {code} is outside 1..255")
    kind = _ALIASES.get(type_text)
    if kind is None:
        try:
            kind = DataType(type_text)
        except ValueError:
            raise fail(f"{name}: unknown type {type_text!r}") from None
    has_tag = concat = False
    encrypt = 0
    for flag in words[4].split(",") if len(words) == 5 else []:
        if flag == "has_tag":
            has_tag = True
        elif flag == "concat":
            concat = True
        elif flag in ("encrypt=1", "encrypt=2"):
            encrypt = int(flag[-1])
        elif flag in _IGNORED_FLAGS:
            pass
        else:
            raise fail(f"{name}: unknown flag {flag!r}")
    if name.lower() in builder.attributes:
        raise fail(f"attribute {name} is defined twice")
    definition = AttributeDef(name, code, kind, vendor, has_tag, encrypt, concat)
    builder.attributes[name.lower()] = definition
    # A second name for a number is an alias (vendor files have them): decoding names the
    # attribute by its first definition; either name encodes it.
    builder.by_code.setdefault((vendor, code), definition)


def named(decoded: Iterable[Decoded]) -> dict[str, list[Value]]:
    """Decoded attributes by name, in order."""
    found: dict[str, list[Value]] = {}
    for attribute in decoded:
        found.setdefault(attribute.name, []).append(attribute.value)
    return found
