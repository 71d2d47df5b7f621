"""Garbage in: the dissector answers None, an Observation, or MalformedFrame, and nothing else."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Packet

from netaccess.proto.detect import MalformedFrame, Observation, dissect

AT = 1_700_000_000.0
CLIENT_MAC = "02:00:5e:10:00:01"
CHADDR = bytes.fromhex("02005e100001")
COOKIE = b"\x63\x82\x53\x63"
FUZZ = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def udp_to_server() -> Packet:
    return (
        Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff")
        / IP(src="0.0.0.0", dst="255.255.255.255")
        / UDP(sport=68, dport=67)
    )


def dhcp(*options: object, file: bytes = b"", sname: bytes = b"") -> bytes:
    return bytes(
        udp_to_server()
        / BOOTP(op=1, chaddr=CHADDR, file=file, sname=sname)
        / DHCP(options=[*options, "end"])
    )


SEEDS = {
    "discover": dhcp(
        ("message-type", "discover"),
        ("hostname", b"alice-laptop"),
        ("vendor_class_id", b"android-dhcp-14"),
        ("param_req_list", [1, 3, 6, 15, 26, 28, 51, 58, 59, 43, 114]),
    ),
    "overloaded": dhcp(
        ("message-type", "request"),
        ("dhcp-option-overload", 3),
        file=b"\x0c\x05alice\xff",
        sname=b"\x3c\x03abc\xff",
    ),
    "tagged-ack": bytes(
        Ether(src="02:00:5e:10:00:fe", dst=CLIENT_MAC)
        / Dot1Q(vlan=42)
        / IP(src="10.0.0.1", dst="10.0.0.50", options=b"\x94\x04\x00\x00")
        / UDP(sport=67, dport=68)
        / BOOTP(op=2, chaddr=CHADDR, yiaddr="10.0.0.50")
        / DHCP(options=[("message-type", "ack"), ("lease_time", 3600), "end"])
    ),
    "arp": bytes(
        Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff")
        / ARP(op=1, hwsrc=CLIENT_MAC, psrc="10.0.0.5", pdst="10.0.0.1")
    ),
}
# Everything up to and including the magic cookie of a valid DISCOVER.
BOOTP_PREFIX = SEEDS["discover"][: 14 + 20 + 8 + 236 + 4]


def dissect_checked(frame: bytes) -> Observation | None:
    """dissect(), failing the test on any exception other than MalformedFrame."""
    try:
        result = dissect(frame, AT)
    except MalformedFrame as error:
        assert error.reason and error.reason == error.reason.strip()
        return None
    assert result is None or isinstance(result, Observation)
    return result


def with_lengths_fixed(header: bytes, payload: bytes) -> bytes:
    """Ethernet/IPv4/UDP `header` with total and UDP lengths rewritten to cover `payload`."""
    udp_length = 8 + len(payload)
    ip_total = 20 + udp_length
    frame = bytearray(header + payload)
    frame[16:18] = ip_total.to_bytes(2, "big")
    frame[38:40] = udp_length.to_bytes(2, "big")
    return bytes(frame)


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes_never_escape_as_another_exception(frame: bytes) -> None:
    dissect_checked(frame)


@FUZZ
@given(st.sampled_from([0x0800, 0x0806, 0x8100, 0x88A8]), st.binary(max_size=400))
def test_random_bytes_after_an_interesting_ethertype_never_escape(
    ethertype: int, payload: bytes
) -> None:
    dissect_checked(
        bytes(6) + bytes.fromhex("02005e100001") + ethertype.to_bytes(2, "big") + payload
    )


@FUZZ
@given(st.binary(max_size=400))
def test_random_udp_payload_to_port_67_never_escapes(payload: bytes) -> None:
    dissect_checked(with_lengths_fixed(bytes(udp_to_server()), payload))


@pytest.mark.parametrize("seed", SEEDS.values(), ids=SEEDS.keys())
def test_every_truncation_of_a_valid_frame_is_malformed(seed: bytes) -> None:
    for length in range(len(seed)):
        with pytest.raises(MalformedFrame):
            dissect(seed[:length], AT)


@FUZZ
@given(st.sampled_from(list(SEEDS.values())), st.data())
def test_valid_frames_with_flipped_bytes_never_escape(seed: bytes, data: st.DataObject) -> None:
    frame = bytearray(seed)
    positions = data.draw(st.lists(st.integers(0, len(seed) - 1), min_size=1, max_size=8))
    for position in positions:
        frame[position] ^= data.draw(st.integers(1, 255))
    dissect_checked(bytes(frame))


@FUZZ
@given(st.binary(max_size=320))
def test_random_options_after_a_valid_bootp_header_never_escape(options: bytes) -> None:
    dissect_checked(with_lengths_fixed(BOOTP_PREFIX[:42], BOOTP_PREFIX[42:] + options))


@FUZZ
@given(
    st.sampled_from([1, 2, 3]),
    st.binary(min_size=128, max_size=128),
    st.binary(min_size=64, max_size=64),
)
def test_random_overloaded_fields_never_escape(overload: int, file: bytes, sname: bytes) -> None:
    bootp = bytearray(BOOTP_PREFIX[42:])
    bootp[108:236] = file
    bootp[44:108] = sname
    options = bytes([53, 1, 1, 52, 1, overload, 255])
    dissect_checked(with_lengths_fixed(BOOTP_PREFIX[:42], bytes(bootp) + options))


@FUZZ
@given(st.lists(st.tuples(st.integers(1, 254), st.binary(max_size=40)), max_size=12))
def test_well_formed_random_options_are_dissected(
    options: list[tuple[int, bytes]],
) -> None:
    # Structurally valid options (message type 1 first, end last) whose contents are random:
    # only option 52 and a second option 53 may make such a message malformed.
    area = bytes([53, 1, 1]) + b"".join(bytes([c, len(v)]) + v for c, v in options) + b"\xff"
    frame = with_lengths_fixed(BOOTP_PREFIX[:42], BOOTP_PREFIX[42:] + area)
    if any(code in (52, 53) for code, _ in options):
        dissect_checked(frame)
    else:
        assert isinstance(dissect(frame, AT), Observation)
