"""Property tests of the RADIUS codec: whatever bytes arrive, decoding raises only our own
RadiusError (the packet is dropped); what we encode decodes back to the same attributes;
a packet's Message-Authenticator or authenticator survives no bit flip."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netaccess.config.radius_dictionary import standard_dictionary
from netaccess.proto.radius import auth
from netaccess.proto.radius.errors import BadAuthenticator, RadiusError
from netaccess.proto.radius.packet import Code, decode_packet, encode_packet

SECRET = b"fuzz-secret"
DICTIONARY = standard_dictionary()

attribute = st.tuples(st.integers(1, 255), st.binary(max_size=253))
attributes = st.lists(attribute.filter(lambda a: a[0] != 80), max_size=12)


def framed(kinds_values: list[tuple[int, bytes]]) -> bytes:
    return encode_packet(1, 1, bytes(16), kinds_values)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_garbage_raises_only_radius_errors(data: bytes) -> None:
    try:
        packet = decode_packet(data)
    except RadiusError:
        return
    try:
        DICTIONARY.decode(packet, secret=SECRET, authenticator=packet.authenticator)
        auth.verify_message_authenticator(data, packet, SECRET)
    except RadiusError:
        pass


@settings(max_examples=300)
@given(attributes, st.binary(max_size=80))
def test_a_valid_header_over_garbage_attributes_raises_only_radius_errors(
    good: list[tuple[int, bytes]], tail: bytes
) -> None:
    data = framed(good) + tail
    length = min(len(data), 4096)
    data = data[:2] + length.to_bytes(2, "big") + data[4:length]
    try:
        packet = decode_packet(data)
        DICTIONARY.decode(packet, secret=SECRET, authenticator=packet.authenticator)
    except RadiusError:
        pass


@settings(max_examples=300)
@given(attributes)
def test_encoded_attributes_decode_back_in_order(values: list[tuple[int, bytes]]) -> None:
    packet = decode_packet(framed(values))
    assert list(packet.attributes) == values


@settings(max_examples=200)
@given(attributes, st.data())
def test_any_bit_flip_breaks_the_message_authenticator(
    values: list[tuple[int, bytes]], data: st.DataObject
) -> None:
    sent = auth.encode_request(Code.ACCESS_REQUEST, 1, values, SECRET)
    at = data.draw(st.integers(0, len(sent) - 1))
    bit = data.draw(st.integers(0, 7))
    flipped = sent[:at] + bytes([sent[at] ^ (1 << bit)]) + sent[at + 1 :]
    try:
        packet = decode_packet(flipped)
        verified = auth.verify_message_authenticator(flipped, packet, SECRET)
    except RadiusError as exc:  # framing broken, or the HMAC refused
        assert isinstance(exc, RadiusError)
        return
    # Only a flip in the Message-Authenticator's own type octet can make it vanish.
    assert not verified


@settings(max_examples=200)
@given(
    st.binary(max_size=128), st.binary(min_size=16, max_size=16), st.binary(min_size=1, max_size=64)
)
def test_password_hiding_round_trips_for_any_password(
    password: bytes, authenticator: bytes, secret: bytes
) -> None:
    password = password.rstrip(b"\x00")  # NULs at the end are padding, by RFC 2865 §5.2
    hidden = auth.hide_password(password, secret, authenticator)
    assert auth.reveal_password(hidden, secret, authenticator) == password


@settings(max_examples=200)
@given(st.binary(max_size=239), st.binary(min_size=16, max_size=16))
def test_salted_values_round_trip_and_garbage_raises_only_ours(
    value: bytes, authenticator: bytes
) -> None:
    hidden = auth.salt_hide(value, SECRET, authenticator)
    assert auth.salt_reveal(hidden, SECRET, authenticator) == value
    with contextlib.suppress(RadiusError):
        auth.salt_reveal(hidden[:-1] + b"\x00", b"other", authenticator)


def test_a_wrong_request_authenticator_is_refused() -> None:
    data = auth.encode_request(Code.ACCOUNTING_REQUEST, 2, [(44, b"s")], SECRET)
    broken = data[:4] + bytes(16) + data[20:]
    try:
        auth.verify_request_authenticator(broken, SECRET)
    except BadAuthenticator:
        return
    raise AssertionError("a zeroed Request Authenticator verified")
