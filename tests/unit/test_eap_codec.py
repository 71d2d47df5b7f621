"""The EAP codec (proto.radius.eap): EAP packets, the EAP-TLS/TTLS framing with its
fragmentation and reassembly, and EAP-TTLS's Diameter AVPs. Round trips, the RFC layouts,
and hypothesis garbage that may raise only MalformedEap."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netaccess.proto.radius.eap import (
    FLAG_LENGTH,
    FLAG_MORE,
    FLAG_START,
    Avp,
    EapCode,
    EapPacket,
    EapType,
    MalformedEap,
    Reassembly,
    TlsFrame,
    decode_avps,
    decode_eap,
    decode_tls_frame,
    encode_avps,
    encode_eap,
    encode_tls_frame,
    fragments,
)
from netaccess.proto.radius.errors import RadiusError

# --- EAP packets (RFC 3748 §4) --------------------------------------------------------------


def test_an_identity_response_round_trips() -> None:
    data = encode_eap(EapCode.RESPONSE, 7, EapType.IDENTITY, b"alice@staff")
    assert data == b"\x02\x07\x00\x10\x01alice@staff"
    assert decode_eap(data) == EapPacket(EapCode.RESPONSE, 7, EapType.IDENTITY, b"alice@staff")


def test_success_and_failure_are_four_octets_without_a_type() -> None:
    assert encode_eap(EapCode.SUCCESS, 9) == b"\x03\x09\x00\x04"
    assert decode_eap(b"\x04\x01\x00\x04") == EapPacket(EapCode.FAILURE, 1, None)
    with pytest.raises(MalformedEap, match="not 4"):
        decode_eap(b"\x03\x01\x00\x05\x01")


def test_octets_past_the_length_are_padding() -> None:
    assert decode_eap(b"\x01\x02\x00\x05\x01\xff\xff").data == b""


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\x01\x02\x00", "shorter than its header"),
        (b"\x01\x02\x00\x09\x01", "Length 9 with 5"),
        (b"\x01\x02\x00\x03\x01", "Length 3"),
        (b"\x05\x02\x00\x05\x01", "code 5"),
        (b"\x02\x02\x00\x04", "without a Type"),
    ],
)
def test_malformed_packets_say_why(data: bytes, why: str) -> None:
    with pytest.raises(MalformedEap, match=why):
        decode_eap(data)


def test_malformed_eap_is_a_radius_error_so_the_server_drops_it() -> None:
    assert issubclass(MalformedEap, RadiusError)


def test_encoding_refuses_what_eap_cannot_carry() -> None:
    with pytest.raises(ValueError):
        encode_eap(EapCode.REQUEST, 1)
    with pytest.raises(ValueError):
        encode_eap(EapCode.REQUEST, 1, EapType.TTLS, bytes(65531))


# --- the TLS framing (RFC 5216 §3.1, RFC 5281 §9.1) -----------------------------------------


def test_a_start_frame_and_an_acknowledgement() -> None:
    start = encode_tls_frame(b"", start=True, version=0)
    assert start == bytes((FLAG_START,))
    frame = decode_tls_frame(encode_tls_frame(b""))
    assert frame == TlsFrame(0, None, b"") and frame.is_ack and not frame.more


def test_the_length_flag_carries_the_total() -> None:
    frame = decode_tls_frame(bytes((FLAG_LENGTH | FLAG_MORE,)) + b"\x00\x00\x01\x00abc")
    assert (frame.total, frame.data, frame.more, frame.is_ack) == (256, b"abc", True, False)
    assert decode_tls_frame(b"\x01x").version == 1


def test_a_frame_without_flags_or_with_a_cut_length_is_malformed() -> None:
    with pytest.raises(MalformedEap):
        decode_tls_frame(b"")
    with pytest.raises(MalformedEap):
        decode_tls_frame(bytes((FLAG_LENGTH,)) + b"\x00\x01")


def test_a_short_message_is_one_frame_without_a_length() -> None:
    assert fragments(b"hello", 10) == [b"\x00hello"]


def test_fragments_carry_the_total_first_and_more_on_all_but_the_last() -> None:
    message = bytes(range(25))
    frames = [decode_tls_frame(f) for f in fragments(message, 10)]
    assert [len(f.data) for f in frames] == [10, 10, 5]
    assert [f.total for f in frames] == [25, None, None]
    assert [f.more for f in frames] == [True, True, False]
    reassembly = Reassembly()
    assert [reassembly.add(f) for f in frames] == [None, None, message]
    assert not reassembly.pending


def test_fragment_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        fragments(b"x", 0)


@given(st.binary(min_size=0, max_size=3000), st.integers(1, 700))
def test_any_message_reassembles_from_its_fragments(message: bytes, size: int) -> None:
    reassembly = Reassembly()
    got = [reassembly.add(decode_tls_frame(f)) for f in fragments(message, size)]
    assert got[-1] == message and all(part is None for part in got[:-1])


def test_a_reassembly_is_reusable_after_a_message() -> None:
    reassembly = Reassembly()
    for message in (b"a" * 30, b"b" * 7):
        for frame in fragments(message, 8):
            result = reassembly.add(decode_tls_frame(frame))
        assert result == message


def test_an_announced_length_over_the_limit_is_refused_at_once() -> None:
    reassembly = Reassembly(limit=100)
    with pytest.raises(MalformedEap, match="at most 100"):
        reassembly.add(TlsFrame(FLAG_LENGTH | FLAG_MORE, 101, b"x"))


def test_fragments_over_the_limit_without_a_length_are_refused() -> None:
    reassembly = Reassembly(limit=100)
    assert reassembly.add(TlsFrame(FLAG_MORE, None, bytes(60))) is None
    with pytest.raises(MalformedEap, match="longer than 100"):
        reassembly.add(TlsFrame(FLAG_MORE, None, bytes(60)))


def test_a_total_that_changes_or_is_not_met_is_refused() -> None:
    changing = Reassembly()
    changing.add(TlsFrame(FLAG_LENGTH | FLAG_MORE, 20, bytes(10)))
    with pytest.raises(MalformedEap, match="changed"):
        changing.add(TlsFrame(FLAG_LENGTH | FLAG_MORE, 30, bytes(10)))
    short = Reassembly()
    short.add(TlsFrame(FLAG_LENGTH | FLAG_MORE, 20, bytes(10)))
    with pytest.raises(MalformedEap, match="its length said 20"):
        short.add(TlsFrame(0, None, bytes(5)))


def test_the_limit_holds_exactly() -> None:
    reassembly = Reassembly(limit=16)
    assert reassembly.add(TlsFrame(FLAG_LENGTH, 16, bytes(16))) == bytes(16)


# --- EAP-TTLS AVPs (RFC 5281 §10) ------------------------------------------------------------


def test_avps_are_padded_to_four_octets_and_round_trip() -> None:
    avps = [Avp(1, b"alice"), Avp(2, b"pass\0\0\0\0", mandatory=False)]
    data = encode_avps(avps)
    # code(4) flags(1) length(3, without padding) value, then padding to 4
    assert data[:16] == b"\x00\x00\x00\x01\x40\x00\x00\x0dalice\0\0\0"
    assert data[16:24] == b"\x00\x00\x00\x02\x00\x00\x00\x10"
    assert len(data) % 4 == 0
    assert decode_avps(data) == avps


def test_a_vendor_avp_carries_the_v_flag_and_its_vendor_id() -> None:
    avp = Avp(26, b"\x01\x02", vendor=311)
    data = encode_avps([avp])
    assert data == b"\x00\x00\x00\x1a\xc0\x00\x00\x0e\x00\x00\x01\x37\x01\x02\0\0"
    assert decode_avps(data) == [avp]


def test_the_last_avp_may_come_without_its_padding() -> None:
    assert decode_avps(b"\x00\x00\x00\x01\x40\x00\x00\x09a") == [Avp(1, b"a")]


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x00\x00\x01\x40\x00\x00",  # a header cut short
        b"\x00\x00\x00\x01\x40\x00\x00\x07",  # length under the header
        b"\x00\x00\x00\x01\x40\x00\x00\x20abc",  # length past the data
        b"\x00\x00\x00\x01\xc0\x00\x00\x09\x00",  # a vendor AVP too short for its id
    ],
)
def test_malformed_avps_are_refused(data: bytes) -> None:
    with pytest.raises(MalformedEap):
        decode_avps(data)


# --- garbage raises only MalformedEap ----------------------------------------------------------


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_garbage_into_every_decoder_raises_only_malformed_eap(data: bytes) -> None:
    for decode in (decode_eap, decode_tls_frame, decode_avps):
        with contextlib.suppress(MalformedEap):
            decode(data)


frames = st.builds(
    TlsFrame,
    st.integers(0, 255),
    st.one_of(st.none(), st.integers(0, (1 << 32) - 1)),
    st.binary(max_size=200),
)


@settings(max_examples=300)
@given(st.lists(frames, max_size=12))
def test_any_frame_sequence_into_a_reassembly_raises_only_malformed_eap(
    sequence: list[TlsFrame],
) -> None:
    reassembly = Reassembly(limit=1000)
    for frame in sequence:
        try:
            message = reassembly.add(frame)
        except MalformedEap:
            return
        if message is not None:
            assert len(message) <= 1000


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_garbage_framed_as_a_tls_message_raises_only_malformed_eap(data: bytes) -> None:
    reassembly = Reassembly(limit=256)
    try:
        for offset in range(0, max(len(data), 1), 37):
            frame = decode_tls_frame(data[offset : offset + 37])
            reassembly.add(frame)
    except MalformedEap:
        pass
