"""RADIUS dictionaries: the shipped FreeRADIUS-format files load, typed values encode and
decode (tags, VLAN attributes, hidden values, vendor attributes, concat), and a wrong
dictionary line is an error naming the file and line."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from netaccess.config.radius_dictionary import load_dictionary, standard_dictionary
from netaccess.proto.radius import auth
from netaccess.proto.radius.dictionary import DataType, parse_dictionary
from netaccess.proto.radius.errors import BadAttribute, DictionaryError, EncodeError
from netaccess.proto.radius.packet import Code, Packet, decode_packet

SECRET = b"testing123"
AUTHENTICATOR = bytes(range(16))


@pytest.fixture(scope="module")
def dictionary():  # type: ignore[no-untyped-def]
    return standard_dictionary()


def packet_of(*attributes: tuple[int, bytes]) -> Packet:
    return Packet(Code.ACCESS_ACCEPT, 1, AUTHENTICATOR, attributes)


def test_the_shipped_dictionary_has_the_rfc_and_vendor_attributes(dictionary) -> None:  # type: ignore[no-untyped-def]
    for name, code in [
        ("User-Name", 1),
        ("Acct-Session-Id", 44),
        ("Tunnel-Private-Group-Id", 81),
        ("Event-Timestamp", 55),
        ("EAP-Message", 79),
        ("Message-Authenticator", 80),
        ("Error-Cause", 101),
        ("NAS-IPv6-Address", 95),
    ]:
        assert dictionary.attribute(name).code == code
    assert dictionary.attribute("cisco-avpair").vendor == 9
    send_key = dictionary.attribute("MS-MPPE-Send-Key")
    assert (send_key.vendor, send_key.code, send_key.encrypt) == (311, 16, 2)
    assert dictionary.attribute("Service-Type").values["Call-Check"] == 10
    assert dictionary.attribute("Error-Cause").value_name(503) == "Session-Context-Not-Found"


def test_vlan_attributes_are_encoded_as_rfc_3580_wants(dictionary) -> None:  # type: ignore[no-untyped-def]
    assert dictionary.encode("Tunnel-Type", "VLAN") == [(64, b"\x00\x00\x00\x0d")]
    assert dictionary.encode("Tunnel-Medium-Type", "IEEE-802") == [(65, b"\x00\x00\x00\x06")]
    assert dictionary.encode("Tunnel-Private-Group-Id", "100") == [(81, b"100")]
    assert dictionary.encode("Tunnel-Private-Group-Id", "100", tag=1) == [(81, b"\x01100")]
    decoded = dictionary.decode(
        packet_of((64, b"\x00\x00\x00\x0d"), (81, b"\x00100"), (81, b"100"), (81, b"\x027"))
    )
    assert [(d.name, d.value, d.tag) for d in decoded] == [
        ("Tunnel-Type", 13, 0),
        ("Tunnel-Private-Group-Id", "100", 0),
        ("Tunnel-Private-Group-Id", "100", 0),
        ("Tunnel-Private-Group-Id", "7", 2),
    ]


def test_typed_values_round_trip(dictionary) -> None:  # type: ignore[no-untyped-def]
    cases = [
        ("User-Name", "aa-bb-cc-dd-ee-ff"),
        ("Class", b"\x00\xffclass"),
        ("NAS-IP-Address", ipaddress.IPv4Address("192.0.2.1")),
        ("NAS-IPv6-Address", ipaddress.IPv6Address("2001:db8::1")),
        ("Framed-IPv6-Prefix", ipaddress.IPv6Network("2001:db8:1::/48")),
        ("Session-Timeout", 3600),
        ("Event-Timestamp", 1_700_000_000),
        ("Framed-Interface-Id", bytes(range(8))),
        ("Cisco-AVPair", "subscriber:command=reauthenticate"),
    ]
    for name, value in cases:
        attributes = dictionary.encode(name, value)
        (decoded,) = dictionary.decode(packet_of(*attributes))
        assert (decoded.name, decoded.value) == (name, value)


def test_hidden_values_need_the_secret_and_round_trip(dictionary) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(EncodeError):
        dictionary.encode("User-Password", "secret")
    attributes = dictionary.encode(
        "User-Password", "s3cret", secret=SECRET, authenticator=AUTHENTICATOR
    )
    assert attributes[0][1] != b"s3cret"
    (revealed,) = dictionary.decode(
        packet_of(*attributes), secret=SECRET, authenticator=AUTHENTICATOR
    )
    assert revealed.value == "s3cret"
    (kept,) = dictionary.decode(packet_of(*attributes))
    assert kept.value == attributes[0][1]  # without the secret: the octets as sent
    key = bytes(range(32))
    mppe = dictionary.encode("MS-MPPE-Recv-Key", key, secret=SECRET, authenticator=AUTHENTICATOR)
    (decoded,) = dictionary.decode(packet_of(*mppe), secret=SECRET, authenticator=AUTHENTICATOR)
    assert (decoded.name, decoded.value) == ("MS-MPPE-Recv-Key", key)
    tunnel = dictionary.encode(
        "Tunnel-Password", "pw", tag=3, secret=SECRET, authenticator=AUTHENTICATOR
    )
    (decoded,) = dictionary.decode(packet_of(*tunnel), secret=SECRET, authenticator=AUTHENTICATOR)
    assert (decoded.value, decoded.tag) == ("pw", 3)


def test_a_long_eap_message_is_split_and_decoded_whole(dictionary) -> None:  # type: ignore[no-untyped-def]
    message = bytes(600)
    attributes = dictionary.encode("EAP-Message", message)
    assert len(attributes) == 3
    decoded = dictionary.decode(packet_of((1, b"u"), *attributes, (24, b"s")))
    assert [d.name for d in decoded] == ["User-Name", "EAP-Message", "State"]
    assert decoded[1].value == message


def test_unknown_attributes_decode_as_octets(dictionary) -> None:  # type: ignore[no-untyped-def]
    (decoded,) = dictionary.decode(packet_of((200, b"\x01\x02")))
    assert (decoded.name, decoded.value, decoded.definition) == ("Attr-200", b"\x01\x02", None)


@pytest.mark.parametrize(
    "attribute",
    [
        (4, b"\x01\x02\x03"),
        (27, b"\x00\x01"),
        (95, bytes(15)),
        (97, b"\x00\x81"),
        (97, b"\x00\x40"),
    ],
)
def test_values_that_do_not_fit_their_type_are_bad_attributes(dictionary, attribute) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BadAttribute):
        dictionary.decode(packet_of(attribute))


@pytest.mark.parametrize(
    ("name", "value", "tag"),
    [
        ("Session-Timeout", "soon", 0),
        ("Session-Timeout", 2**32, 0),
        ("NAS-IP-Address", "not an address", 0),
        ("User-Name", "x", 1),  # User-Name takes no tag
        ("Tunnel-Type", 13, 32),
        ("No-Such-Attribute", "x", 0),
        ("User-Name", "x" * 254, 0),
    ],
)
def test_values_that_cannot_be_encoded_are_refused(dictionary, name, value, tag) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(EncodeError):
        dictionary.encode(name, value, tag=tag)


def test_an_accept_built_from_the_dictionary_verifies(dictionary) -> None:  # type: ignore[no-untyped-def]
    attributes = [
        *dictionary.encode("Tunnel-Type", "VLAN"),
        *dictionary.encode("Tunnel-Medium-Type", "IEEE-802"),
        *dictionary.encode("Tunnel-Private-Group-Id", "20"),
        *dictionary.encode("Session-Timeout", 900),
        *dictionary.encode("Termination-Action", "RADIUS-Request"),
    ]
    data = auth.encode_reply(Code.ACCESS_ACCEPT, 5, AUTHENTICATOR, attributes, SECRET)
    packet = decode_packet(data)
    auth.verify_reply(data, packet, AUTHENTICATOR, SECRET)
    names = [d.name for d in dictionary.decode(packet)]
    assert names[0] == "Message-Authenticator"
    assert names[1:] == [
        "Tunnel-Type",
        "Tunnel-Medium-Type",
        "Tunnel-Private-Group-Id",
        "Session-Timeout",
        "Termination-Action",
    ]


# --- the file format --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "says"),
    [
        ("ATTRIBUTE\tX\t1\n", 1, "ATTRIBUTE takes"),
        ("\nATTRIBUTE X 300 integer\n", 2, "outside 1..255"),
        ("ATTRIBUTE X 1 blob\n", 1, "unknown type 'blob'"),
        ("ATTRIBUTE X 1 string odd_flag\n", 1, "unknown flag"),
        ("ATTRIBUTE X 241.1 string\n", 1, "RFC 6929"),
        ("ATTRIBUTE X 1 string\nATTRIBUTE x 2 string\n", 2, "defined twice"),
        ("VALUE Nope A 1\n", 1, "unknown attribute Nope"),
        ("BEGIN-VENDOR Acme\n", 1, "undeclared vendor"),
        ("VENDOR Acme 99\nBEGIN-VENDOR Acme\n", 2, "never ended"),
        ("END-VENDOR Acme\n", 1, "does not close"),
        ("VENDOR Acme zero\n", 1, "not a number"),
        ("VENDOR Acme 99 format=2,1\n", 1, "format=1,1"),
        ("FROB x\n", 1, "unknown keyword"),
        ("$INCLUDE other\n", 1, "no way to read"),
    ],
)
def test_dictionary_errors_name_the_file_and_line(text: str, line: int, says: str) -> None:
    with pytest.raises(DictionaryError) as caught:
        parse_dictionary(text, "site.dict")
    assert caught.value.line == line
    assert str(caught.value).startswith(f"site.dict:{line}: ")
    assert says in str(caught.value)


def test_a_site_dictionary_file_with_includes_loads(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "acme").write_text(
        "VENDOR Acme 4242\nBEGIN-VENDOR Acme\nATTRIBUTE Acme-Role 1 integer # role\n"
        "VALUE Acme-Role Full 3\nEND-VENDOR Acme\n"
    )
    (tmp_path / "dictionary").write_text("$INCLUDE sub/acme\nATTRIBUTE Site-Thing 240 text\n")
    loaded = load_dictionary(tmp_path / "dictionary")
    role = loaded.attribute("Acme-Role")
    assert (role.vendor, role.code, role.values["Full"]) == (4242, 1, 3)
    assert loaded.attribute("Site-Thing").type is DataType.STRING
    assert loaded.encode("Acme-Role", "Full") == [(26, b"\x00\x00\x10\x92\x01\x06\x00\x00\x00\x03")]


def test_a_missing_included_file_names_its_includer(tmp_path: Path) -> None:
    (tmp_path / "dictionary").write_text("$INCLUDE missing\n")
    with pytest.raises(DictionaryError) as caught:
        load_dictionary(tmp_path / "dictionary")
    assert "missing" in str(caught.value) and str(tmp_path / "dictionary") in str(caught.value)


def test_an_include_loop_is_an_error_not_a_hang(tmp_path: Path) -> None:
    (tmp_path / "dictionary").write_text("$INCLUDE dictionary\n")
    with pytest.raises(DictionaryError, match="nested"):
        load_dictionary(tmp_path / "dictionary")


def test_a_second_name_for_a_number_is_an_alias() -> None:
    loaded = parse_dictionary("ATTRIBUTE First 7 integer\nATTRIBUTE Second 7 integer\n")
    assert loaded.encode("Second", 1) == loaded.encode("First", 1)
    (decoded,) = loaded.decode(packet_of((7, b"\0\0\0\1")))
    assert decoded.name == "First"


FREERADIUS = Path("/usr/share/freeradius")
FREERADIUS_FILES = [
    "rfc2865",
    "rfc2866",
    "rfc2867",
    "rfc2868",
    "rfc2869",
    "rfc3162",
    "rfc3576",
    "rfc3580",
    "rfc4072",
    "rfc4675",
    "rfc5176",
    "cisco",
    "microsoft",
    "aruba",
    "juniper",
    "hp",
]


@pytest.mark.skipif(
    not FREERADIUS.is_dir(),
    reason="FreeRADIUS's dictionaries are not installed "
    "(Debian's freeradius-common; tools/bootstrap installs it)",
)
def test_freeradius_own_dictionary_files_load_and_agree_with_ours(tmp_path: Path) -> None:
    top = tmp_path / "dictionary"
    top.write_text(
        "".join(f"$INCLUDE {FREERADIUS}/dictionary.{name}\n" for name in FREERADIUS_FILES)
    )
    theirs = load_dictionary(top)
    ours = standard_dictionary()
    for name in [
        "User-Name",
        "Tunnel-Private-Group-Id",
        "Cisco-AVPair",
        "MS-MPPE-Send-Key",
        "Error-Cause",
        "EAP-Message",
        "Acct-Status-Type",
    ]:
        mine, other = ours.attribute(name), theirs.attribute(name)
        assert (mine.code, mine.vendor, mine.type, mine.has_tag, mine.encrypt) == (
            other.code,
            other.vendor,
            other.type,
            other.has_tag,
            other.encrypt,
        ), name
    assert theirs.attribute("Aruba-User-Role").vendor == 14823
    assert ours.encode("Tunnel-Type", "VLAN") == theirs.encode("Tunnel-Type", "VLAN")
