"""The RADIUS packet codec and what the shared secret protects: RFC 2865 §7.1's example
packets byte for byte, Message-Authenticator placement and checks (RFC 3579, BlastRADIUS),
signed requests (RFC 2866, RFC 5176), password and salted hiding, and the framing errors
that make a packet be dropped."""

from __future__ import annotations

import pytest

from netaccess.proto.radius import auth
from netaccess.proto.radius.errors import (
    BadAttribute,
    BadAuthenticator,
    EncodeError,
    MalformedPacket,
)
from netaccess.proto.radius.packet import (
    EAP_MESSAGE,
    MESSAGE_AUTHENTICATOR,
    Code,
    decode_packet,
    encode_packet,
    split_value,
    split_vendor_specific,
    vendor_specific,
)

# RFC 2865 §7.1: user nemo, password arctangent, secret xyzzy5461, NAS 192.168.1.16 port 3.
SECRET = b"xyzzy5461"
RFC_REQUEST = bytes.fromhex(
    "010000380f403f9473978057bd83d5cb98f4227a01066e656d6f02120dbe708d93d413ce3196e43f782a0aee"
    "0406c0a801100506"
    "00000003"
)
RFC_ACCEPT = bytes.fromhex(
    "0200002686fe220e7624ba2a1005f6bf9b55e0b20606000000010f06000000000e06c0a80103"
)


def test_rfc2865_example_request_decodes_and_its_password_is_revealed() -> None:
    packet = decode_packet(RFC_REQUEST)
    assert (packet.code, packet.identifier) == (Code.ACCESS_REQUEST, 0)
    assert packet.first(1) == b"nemo"
    hidden = packet.first(2)
    assert hidden is not None
    assert auth.reveal_password(hidden, SECRET, packet.authenticator) == b"arctangent"
    assert auth.hide_password(b"arctangent", SECRET, packet.authenticator) == hidden


def test_rfc2865_example_accept_is_encoded_byte_for_byte() -> None:
    request = decode_packet(RFC_REQUEST)
    accept = decode_packet(RFC_ACCEPT)
    encoded = auth.encode_reply(
        Code.ACCESS_ACCEPT,
        0,
        request.authenticator,
        accept.attributes,
        SECRET,
        message_authenticator=False,
    )
    assert encoded == RFC_ACCEPT
    auth.verify_reply(RFC_ACCEPT, accept, request.authenticator, SECRET)


def test_a_reply_with_the_wrong_secret_fails_verification() -> None:
    request = decode_packet(RFC_REQUEST)
    with pytest.raises(BadAuthenticator):
        auth.verify_reply(RFC_ACCEPT, decode_packet(RFC_ACCEPT), request.authenticator, b"other")


def test_replies_carry_the_message_authenticator_first_and_it_verifies() -> None:
    request_auth = bytes(range(16))
    data = auth.encode_reply(Code.ACCESS_ACCEPT, 9, request_auth, [(27, b"\0\0\x0e\x10")], SECRET)
    packet = decode_packet(data)
    assert packet.attributes[0][0] == MESSAGE_AUTHENTICATOR
    assert auth.message_authenticator_is_first(packet.attributes)
    auth.verify_reply(data, packet, request_auth, SECRET)
    assert auth.verify_message_authenticator(data, packet, SECRET, request_auth)


def test_an_access_request_message_authenticator_is_checked() -> None:
    data = auth.encode_request(Code.ACCESS_REQUEST, 3, [(1, b"aabbccddeeff")], SECRET)
    packet = decode_packet(data)
    assert auth.verify_message_authenticator(data, packet, SECRET)
    with pytest.raises(BadAuthenticator):
        auth.verify_message_authenticator(data, packet, b"wrong")
    tampered = data[:-1] + bytes([data[-1] ^ 1])
    with pytest.raises(BadAuthenticator):
        auth.verify_message_authenticator(tampered, decode_packet(tampered), SECRET)


def test_a_request_without_message_authenticator_says_so() -> None:
    data = auth.encode_request(
        Code.ACCESS_REQUEST, 3, [(1, b"x")], SECRET, message_authenticator=False
    )
    assert auth.verify_message_authenticator(data, decode_packet(data), SECRET) is False


@pytest.mark.parametrize(
    "code", [Code.ACCOUNTING_REQUEST, Code.COA_REQUEST, Code.DISCONNECT_REQUEST]
)
def test_signed_requests_verify_and_a_wrong_secret_does_not(code: Code) -> None:
    data = auth.encode_request(code, 7, [(44, b"session-1")], SECRET)
    packet = decode_packet(data)
    auth.verify_request_authenticator(data, SECRET)
    assert auth.verify_message_authenticator(data, packet, SECRET)
    with pytest.raises(BadAuthenticator):
        auth.verify_request_authenticator(data, b"other")


def test_a_signed_request_cannot_be_given_a_chosen_authenticator() -> None:
    with pytest.raises(EncodeError):
        auth.encode_request(Code.COA_REQUEST, 1, [], SECRET, authenticator=bytes(16))


@pytest.mark.parametrize("password", [b"", b"a", b"x" * 16, b"y" * 17, b"z" * 128])
def test_password_hiding_round_trips(password: bytes) -> None:
    authenticator = bytes(range(16, 32))
    hidden = auth.hide_password(password, SECRET, authenticator)
    assert len(hidden) % 16 == 0 and 16 <= len(hidden) <= 128
    assert auth.reveal_password(hidden, SECRET, authenticator) == password


def test_a_password_over_128_octets_is_refused() -> None:
    with pytest.raises(EncodeError):
        auth.hide_password(b"p" * 129, SECRET, bytes(16))


@pytest.mark.parametrize("size", [0, 15, 17, 144])
def test_a_hidden_password_of_a_bad_length_is_a_bad_attribute(size: int) -> None:
    with pytest.raises(BadAttribute):
        auth.reveal_password(bytes(size), SECRET, bytes(16))


@pytest.mark.parametrize("value", [b"", b"k" * 15, b"k" * 32, b"\x00" * 64])
def test_salted_hiding_round_trips(value: bytes) -> None:
    authenticator = bytes(range(16))
    hidden = auth.salt_hide(value, SECRET, authenticator)
    assert hidden[0] & 0x80 and (len(hidden) - 2) % 16 == 0
    assert auth.salt_reveal(hidden, SECRET, authenticator) == value
    assert auth.salt_hide(value, SECRET, authenticator, hidden[:2]) == hidden


def test_salts_without_the_high_bit_are_refused() -> None:
    with pytest.raises(EncodeError):
        auth.salt_hide(b"k", SECRET, bytes(16), b"\x01\x02")
    with pytest.raises(BadAttribute):
        auth.salt_reveal(b"\x01\x02" + bytes(16), SECRET, bytes(16))


# --- framing --------------------------------------------------------------------------------


def header(code: int = 1, identifier: int = 1, length: int = 20) -> bytes:
    return bytes([code, identifier]) + length.to_bytes(2, "big") + bytes(16)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        header()[:19],
        header(length=19),
        header(length=4097) + bytes(4077),
        header(length=30),  # longer than what arrived
        header(length=21) + b"\x01",  # an attribute header cut off
        header(length=22) + b"\x01\x01",  # an attribute Length below 2
        header(length=24) + b"\x01\x06ab",  # an attribute overrunning the packet
        header(length=22 + 16) + b"\x50\x12" + bytes(14),  # a short Message-Authenticator
        header(length=20 + 36) + (b"\x50\x12" + bytes(16)) * 2,  # two of them
        header(length=20 + 17) + b"\x50\x11" + bytes(15),
    ],
)
def test_malformed_packets_are_refused(data: bytes) -> None:
    with pytest.raises(MalformedPacket):
        decode_packet(data)


def test_octets_past_the_length_are_padding() -> None:
    data = header(length=26) + b"\x01\x06abcd" + b"padding"
    packet = decode_packet(data)
    assert packet.attributes == ((1, b"abcd"),)


def test_encoding_refuses_what_radius_cannot_carry() -> None:
    with pytest.raises(EncodeError):
        encode_packet(1, 1, bytes(16), [(1, b"x" * 254)])
    with pytest.raises(EncodeError):
        encode_packet(1, 1, bytes(16), [(79, b"x" * 253)] * 17)  # over 4096 octets
    with pytest.raises(EncodeError):
        encode_packet(1, 256, bytes(16), [])
    with pytest.raises(EncodeError):
        encode_packet(1, 1, bytes(15), [])


def test_long_eap_messages_are_split_and_joined_in_order() -> None:
    message = bytes(range(256)) * 3
    parts = split_value(EAP_MESSAGE, message)
    assert [len(v) for _, v in parts] == [253, 253, 253, 9]
    packet = decode_packet(encode_packet(1, 1, bytes(16), [(1, b"u"), *parts]))
    assert packet.joined(EAP_MESSAGE) == message
    assert packet.joined(24) is None


def test_vendor_specific_round_trips_and_several_share_one_attribute() -> None:
    kind, value = vendor_specific(9, 1, b"subscriber:command=reauthenticate")
    assert kind == 26
    assert split_vendor_specific(value) == [(9, 1, b"subscriber:command=reauthenticate")]
    shared = value + b"\x02\x05abc"
    assert split_vendor_specific(shared)[1] == (9, 2, b"abc")
    packet = decode_packet(encode_packet(2, 1, bytes(16), [(kind, shared)]))
    assert packet.vendor_attributes() == [
        (9, 1, b"subscriber:command=reauthenticate"),
        (9, 2, b"abc"),
    ]


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"\0\0\0",
        b"\0\0\0\x09",
        b"\0\0\0\x09\x01",
        b"\0\0\0\x09\x01\x01",
        b"\0\0\0\x09\x01\x09ab",
    ],
)
def test_malformed_vendor_specific_values_are_bad_attributes(value: bytes) -> None:
    with pytest.raises(BadAttribute):
        split_vendor_specific(value)
