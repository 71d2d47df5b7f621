"""The DHCP/ARP dissector: what each kind of frame teaches, and which frames it refuses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, TCP, UDP, IPOption_Router_Alert
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
from scapy.packet import Packet, Raw

from netaccess.proto.detect import (
    DhcpMessageType,
    MalformedFrame,
    Observation,
    ObservationSource,
    dissect,
)

AT = 1_700_000_000.5
CLIENT_MAC = "02:00:5e:10:00:01"
SERVER_MAC = "02:00:5e:10:00:fe"
COOKIE = b"\x63\x82\x53\x63"
CLIENT_TYPES = {
    DhcpMessageType.DISCOVER,
    DhcpMessageType.REQUEST,
    DhcpMessageType.DECLINE,
    DhcpMessageType.RELEASE,
    DhcpMessageType.INFORM,
}


# --- frame builders ----------------------------------------------------------------------------


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def opt(code: int, value: bytes) -> bytes:
    return bytes([code, len(value)]) + value


def udp_ip(*, sport: int, dport: int, ip_options: Sequence[Any] = ()) -> Packet:
    server_to_client = sport == 67 and dport == 68
    src, dst = ("10.0.0.1", "255.255.255.255") if server_to_client else ("0.0.0.0", "10.0.0.1")
    return IP(src=src, dst=dst, options=list(ip_options)) / UDP(sport=sport, dport=dport)


def ip(**fields: Any) -> Packet:
    return IP(**{"src": "10.0.0.9", "dst": "10.0.0.1", **fields})


def ether(*, src: str = CLIENT_MAC, tags: Sequence[Packet] = ()) -> Packet:
    layer: Packet = Ether(src=src, dst="ff:ff:ff:ff:ff:ff")
    for tag in tags:
        layer = layer / tag
    return layer


def dhcp_frame(
    message_type: DhcpMessageType,
    *options: Any,
    ciaddr: str = "0.0.0.0",
    yiaddr: str = "0.0.0.0",
    chaddr: str = CLIENT_MAC,
    tags: Sequence[Packet] = (),
    ip_options: Sequence[Any] = (),
) -> bytes:
    """A DHCP message built entirely by scapy; op and ports follow the message type."""
    client = message_type in CLIENT_TYPES
    sport, dport = (68, 67) if client else (67, 68)
    frame = (
        ether(src=CLIENT_MAC if client else SERVER_MAC, tags=tags)
        / udp_ip(sport=sport, dport=dport, ip_options=ip_options)
        / BOOTP(op=1 if client else 2, chaddr=mac_bytes(chaddr), ciaddr=ciaddr, yiaddr=yiaddr)
        / DHCP(options=[("message-type", int(message_type)), *options, "end"])
    )
    return bytes(frame)


def bootp_frame(
    options: bytes,
    *,
    op: int = 1,
    htype: int = 1,
    hlen: int = 6,
    chaddr: bytes = mac_bytes(CLIENT_MAC),
    ciaddr: str = "0.0.0.0",
    sname: bytes = b"",
    file: bytes = b"",
    cookie: bytes = COOKIE,
) -> bytes:
    """A BOOTP message whose vendor area is exactly `cookie + options`, for hand-made options."""
    sport, dport = (68, 67) if op == 1 else (67, 68)
    frame = (
        ether()
        / udp_ip(sport=sport, dport=dport)
        / BOOTP(
            op=op,
            htype=htype,
            hlen=hlen,
            chaddr=chaddr,
            ciaddr=ciaddr,
            sname=sname,
            file=file,
            options=cookie + options,
        )
    )
    return bytes(frame)


def arp_frame(op: int, *, hwsrc: str = CLIENT_MAC, psrc: str, pdst: str) -> bytes:
    return bytes(
        Ether(src=hwsrc, dst="ff:ff:ff:ff:ff:ff") / ARP(op=op, hwsrc=hwsrc, psrc=psrc, pdst=pdst)
    )


def patched(frame: bytes, offset: int, value: bytes) -> bytes:
    return frame[:offset] + value + frame[offset + len(value) :]


DISCOVER_OPTIONS = (
    ("hostname", b"alice-laptop"),
    ("vendor_class_id", b"MSFT 5.0"),
    ("param_req_list", [1, 3, 6, 15, 31, 33, 43, 44, 46, 47, 119, 121, 249, 252]),
)
MESSAGE_TYPE_DISCOVER = opt(53, b"\x01")
BOOTP_AT = 14 + 20 + 8  # Ethernet, IPv4 without options, UDP
OPTIONS_AT = BOOTP_AT + 240


# --- DHCP --------------------------------------------------------------------------------------


def test_discover_teaches_mac_hostname_vendor_class_and_fingerprint() -> None:
    frame = dhcp_frame(DhcpMessageType.DISCOVER, *DISCOVER_OPTIONS)

    assert dissect(frame, AT) == Observation(
        source=ObservationSource.DHCP,
        mac=CLIENT_MAC,
        at=AT,
        ip=None,
        hostname="alice-laptop",
        vendor_class="MSFT 5.0",
        fingerprint="1,3,6,15,31,33,43,44,46,47,119,121,249,252",
        dhcp_type=DhcpMessageType.DISCOVER,
        from_client=True,
    )


def test_request_teaches_no_ip_even_with_a_requested_address() -> None:
    frame = dhcp_frame(DhcpMessageType.REQUEST, ("requested_addr", "10.0.0.50"), *DISCOVER_OPTIONS)

    obs = dissect(frame, AT)

    assert obs is not None and (obs.dhcp_type, obs.ip) == (DhcpMessageType.REQUEST, None)


def test_ack_teaches_yiaddr() -> None:
    frame = dhcp_frame(DhcpMessageType.ACK, yiaddr="10.0.0.50")

    obs = dissect(frame, AT)

    assert obs is not None and obs.ip == "10.0.0.50"


def test_ack_to_inform_teaches_ciaddr() -> None:
    frame = dhcp_frame(DhcpMessageType.ACK, ciaddr="10.0.0.77", yiaddr="0.0.0.0")

    obs = dissect(frame, AT)

    assert obs is not None and obs.ip == "10.0.0.77"


def test_ack_without_any_address_teaches_no_ip() -> None:
    obs = dissect(dhcp_frame(DhcpMessageType.ACK), AT)

    assert obs is not None and obs.ip is None


def test_server_reply_is_not_from_client() -> None:
    obs = dissect(dhcp_frame(DhcpMessageType.ACK, yiaddr="10.0.0.50"), AT)

    assert obs is not None and obs.from_client is False


def test_offer_teaches_no_ip_and_no_fingerprint() -> None:
    frame = dhcp_frame(DhcpMessageType.OFFER, ("param_req_list", [1, 3, 6]), yiaddr="10.0.0.50")

    obs = dissect(frame, AT)

    assert obs is not None and (obs.ip, obs.fingerprint) == (None, None)


def test_release_teaches_the_released_ciaddr() -> None:
    obs = dissect(dhcp_frame(DhcpMessageType.RELEASE, ciaddr="10.0.0.50"), AT)

    assert obs is not None and (obs.is_release, obs.ip) == (True, "10.0.0.50")


def test_inform_teaches_no_ip() -> None:
    obs = dissect(dhcp_frame(DhcpMessageType.INFORM, ciaddr="10.0.0.77"), AT)

    assert obs is not None and obs.ip is None


def test_chaddr_is_reported_in_lower_case_colon_form() -> None:
    obs = dissect(dhcp_frame(DhcpMessageType.DISCOVER, chaddr="AC:DE:48:00:11:22"), AT)

    assert obs is not None and obs.mac == "ac:de:48:00:11:22"


def test_hostname_trailing_nuls_are_stripped() -> None:
    obs = dissect(dhcp_frame(DhcpMessageType.DISCOVER, ("hostname", b"printer\x00\x00")), AT)

    assert obs is not None and obs.hostname == "printer"


def test_hostname_that_is_not_utf8_is_decoded_with_replacement() -> None:
    obs = dissect(dhcp_frame(DhcpMessageType.DISCOVER, ("hostname", b"caf\xe9")), AT)

    assert obs is not None and obs.hostname == "caf\ufffd"


def test_option_split_in_two_instances_is_concatenated() -> None:
    frame = bootp_frame(MESSAGE_TYPE_DISCOVER + opt(12, b"alice-") + opt(12, b"laptop") + b"\xff")

    obs = dissect(frame, AT)

    assert obs is not None and obs.hostname == "alice-laptop"


def test_hostname_longer_than_255_characters_is_capped() -> None:
    frame = bootp_frame(MESSAGE_TYPE_DISCOVER + opt(12, b"a" * 200) + opt(12, b"b" * 200) + b"\xff")

    obs = dissect(frame, AT)

    assert obs is not None and obs.hostname == "a" * 200 + "b" * 55


def test_pad_options_are_skipped() -> None:
    frame = bootp_frame(b"\x00\x00" + MESSAGE_TYPE_DISCOVER + b"\x00" + opt(12, b"pc") + b"\xff")

    obs = dissect(frame, AT)

    assert obs is not None and obs.hostname == "pc"


def test_options_overloaded_into_file_are_read() -> None:
    file = opt(12, b"from-file") + b"\xff"
    frame = bootp_frame(MESSAGE_TYPE_DISCOVER + opt(52, b"\x01") + b"\xff", file=file)

    obs = dissect(frame, AT)

    assert obs is not None and obs.hostname == "from-file"


def test_options_overloaded_into_file_and_sname_are_read_file_first() -> None:
    file = opt(12, b"alice-") + b"\xff"
    sname = opt(12, b"laptop") + b"\xff"
    frame = bootp_frame(MESSAGE_TYPE_DISCOVER + opt(52, b"\x03") + b"\xff", file=file, sname=sname)

    obs = dissect(frame, AT)

    assert obs is not None and obs.hostname == "alice-laptop"


def test_file_field_is_not_read_without_overload() -> None:
    frame = bootp_frame(MESSAGE_TYPE_DISCOVER + b"\xff", file=opt(12, b"boot-file-name"))

    obs = dissect(frame, AT)

    assert obs is not None and obs.hostname is None


def test_message_type_may_come_from_an_overloaded_field() -> None:
    frame = bootp_frame(opt(52, b"\x02") + b"\xff", sname=MESSAGE_TYPE_DISCOVER + b"\xff")

    obs = dissect(frame, AT)

    assert obs is not None and obs.dhcp_type is DhcpMessageType.DISCOVER


def test_single_vlan_tagged_dhcp_is_dissected() -> None:
    frame = dhcp_frame(DhcpMessageType.DISCOVER, *DISCOVER_OPTIONS, tags=[Dot1Q(vlan=42)])

    obs = dissect(frame, AT)

    assert obs is not None and obs.hostname == "alice-laptop"


def test_double_tagged_dhcp_is_dissected() -> None:
    frame = dhcp_frame(
        DhcpMessageType.DISCOVER, *DISCOVER_OPTIONS, tags=[Dot1AD(vlan=100), Dot1Q(vlan=42)]
    )

    obs = dissect(frame, AT)

    assert obs is not None and obs.hostname == "alice-laptop"


def test_three_vlan_tags_are_ignored() -> None:
    tags = [Dot1AD(vlan=100), Dot1Q(vlan=42, type=0x8100), Dot1Q(vlan=7)]

    assert dissect(dhcp_frame(DhcpMessageType.DISCOVER, tags=tags), AT) is None


def test_ip_options_do_not_hide_dhcp() -> None:
    frame = dhcp_frame(
        DhcpMessageType.DISCOVER, *DISCOVER_OPTIONS, ip_options=[IPOption_Router_Alert()]
    )

    obs = dissect(frame, AT)

    assert obs is not None and obs.hostname == "alice-laptop"


def test_ethernet_padding_after_the_datagram_is_ignored() -> None:
    frame = dhcp_frame(DhcpMessageType.DISCOVER, *DISCOVER_OPTIONS) + b"\xaa" * 20

    obs = dissect(frame, AT)

    assert obs is not None and obs.hostname == "alice-laptop"


def test_relay_to_server_message_is_dissected() -> None:
    frame = bytes(
        ether()
        / udp_ip(sport=67, dport=67)
        / BOOTP(op=1, chaddr=mac_bytes(CLIENT_MAC), giaddr="10.9.0.1")
        / DHCP(options=[("message-type", "request"), "end"])
    )

    obs = dissect(frame, AT)

    assert obs is not None and obs.mac == CLIENT_MAC


# --- ARP ---------------------------------------------------------------------------------------


def test_arp_request_teaches_sender_mac_and_ip() -> None:
    obs = dissect(arp_frame(1, psrc="10.0.0.5", pdst="10.0.0.1"), AT)

    assert obs == Observation(source=ObservationSource.ARP, mac=CLIENT_MAC, at=AT, ip="10.0.0.5")


def test_arp_reply_teaches_sender_mac_and_ip() -> None:
    obs = dissect(arp_frame(2, psrc="10.0.0.5", pdst="10.0.0.1"), AT)

    assert obs is not None and (obs.mac, obs.ip) == (CLIENT_MAC, "10.0.0.5")


def test_arp_probe_teaches_mac_without_ip() -> None:
    obs = dissect(arp_frame(1, psrc="0.0.0.0", pdst="10.0.0.5"), AT)

    assert obs is not None and (obs.mac, obs.ip) == (CLIENT_MAC, None)


def test_gratuitous_arp_teaches_the_announced_ip() -> None:
    obs = dissect(arp_frame(1, psrc="10.0.0.5", pdst="10.0.0.5"), AT)

    assert obs is not None and obs.ip == "10.0.0.5"


def test_arp_observation_is_from_the_endpoint() -> None:
    obs = dissect(arp_frame(2, psrc="10.0.0.5", pdst="10.0.0.1"), AT)

    assert obs is not None and (obs.from_client, obs.dhcp_type) == (True, None)


def test_arp_for_a_protocol_other_than_ipv4_is_ignored() -> None:
    frame = bytes(Ether(src=CLIENT_MAC) / ARP(ptype=0x86DD, plen=16, psrc="::1", pdst="::2"))

    assert dissect(frame, AT) is None


def test_tagged_arp_is_dissected() -> None:
    frame = bytes(ether(tags=[Dot1Q(vlan=42)]) / ARP(hwsrc=CLIENT_MAC, psrc="10.0.0.5"))

    obs = dissect(frame, AT)

    assert obs is not None and obs.ip == "10.0.0.5"


# --- frames that are fine but say nothing ------------------------------------------------------

DISCOVER_BOOTP = BOOTP(op=1, chaddr=mac_bytes(CLIENT_MAC)) / DHCP(
    options=[("message-type", "discover"), "end"]
)
UNINTERESTING = {
    "dns-over-udp": ether() / ip(dst="10.0.0.1") / UDP(sport=5353, dport=53) / Raw(b"\x00" * 30),
    "tcp-port-67": ether() / ip(dst="10.0.0.1") / TCP(sport=40000, dport=67),
    "ipv6-udp-67": ether()
    / IPv6(src="fe80::1", dst="ff02::1:2")
    / UDP(sport=68, dport=67)
    / Raw(b"\x00" * 300),
    "lldp": Ether(src=CLIENT_MAC, dst="01:80:c2:00:00:0e", type=0x88CC)
    / Raw(b"\x02\x07\x04" + b"\x00" * 40),
    # Both fragments carry a complete DISCOVER, so only the fragment check can reject them.
    "first-fragment": ether() / ip(flags="MF") / UDP(sport=68, dport=67) / DISCOVER_BOOTP,
    "later-fragment": ether() / ip(frag=100) / UDP(sport=68, dport=67) / DISCOVER_BOOTP,
    "bootp-without-cookie": ether() / ip() / UDP(sport=68, dport=67) / BOOTP(chaddr=b"\x02" * 6),
    "dhcp-without-message-type": ether()
    / ip()
    / UDP(sport=68, dport=67)
    / BOOTP(chaddr=b"\x02" * 6)
    / DHCP(options=[("hostname", b"pc"), "end"]),
    "forcerenew": ether()
    / ip()
    / UDP(sport=67, dport=68)
    / BOOTP(op=2, chaddr=b"\x02" * 6)
    / DHCP(options=[("message-type", 9), "end"]),
}


@pytest.mark.parametrize("frame", UNINTERESTING.values(), ids=UNINTERESTING.keys())
def test_frames_without_endpoint_information_are_ignored(frame: Packet) -> None:
    assert dissect(bytes(frame), AT) is None


# --- malformed frames --------------------------------------------------------------------------

DISCOVER = dhcp_frame(DhcpMessageType.DISCOVER, *DISCOVER_OPTIONS)
ARP_REQUEST = arp_frame(1, psrc="10.0.0.5", pdst="10.0.0.1")
SHORT_UDP_67 = bytes(ether() / ip() / UDP(sport=68, dport=67))

MALFORMED = {
    "ethernet-header-cut": ("truncated-ethernet", DISCOVER[:13]),
    "vlan-tag-cut": (
        "truncated-vlan",
        bytes(Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff", type=0x8100)) + b"\x00\x2a",
    ),
    "arp-header-cut": ("truncated-arp", ARP_REQUEST[:18]),
    "arp-addresses-cut": ("truncated-arp", ARP_REQUEST[:36]),
    "arp-hlen-8": ("bad-arp-length", patched(ARP_REQUEST, 18, b"\x08")),
    "arp-plen-16": ("bad-arp-length", patched(ARP_REQUEST, 19, b"\x10")),
    "arp-opcode-3": ("bad-arp-op", patched(ARP_REQUEST, 20, b"\x00\x03")),
    "arp-broadcast-sender": (
        "bad-mac",
        arp_frame(1, hwsrc="ff:ff:ff:ff:ff:ff", psrc="10.0.0.5", pdst="10.0.0.1"),
    ),
    "arp-multicast-sender": (
        "bad-mac",
        arp_frame(2, hwsrc="01:00:5e:00:00:01", psrc="10.0.0.5", pdst="10.0.0.1"),
    ),
    "arp-zero-sender": (
        "bad-mac",
        arp_frame(1, hwsrc="00:00:00:00:00:00", psrc="10.0.0.5", pdst="10.0.0.1"),
    ),
    "ip-header-cut": ("truncated-ip", DISCOVER[:30]),
    "ip-version-6-as-ipv4": ("bad-ip-version", patched(DISCOVER, 14, b"\x65")),
    "ip-ihl-4": ("bad-ip-header-length", patched(DISCOVER, 14, b"\x44")),
    "ip-ihl-past-frame": ("truncated-ip", patched(SHORT_UDP_67, 14, b"\x4f")),
    "ip-total-length-past-frame": ("bad-ip-length", DISCOVER[:-10]),
    "ip-total-length-below-header": ("bad-ip-length", patched(DISCOVER, 16, b"\x00\x10")),
    "udp-header-cut": ("truncated-udp", patched(SHORT_UDP_67, 16, b"\x00\x18")[:38]),
    "udp-length-past-datagram": ("bad-udp-length", patched(SHORT_UDP_67, 38, b"\x01\x00")),
    "udp-length-below-header": ("bad-udp-length", patched(SHORT_UDP_67, 38, b"\x00\x04")),
    "bootp-header-cut": (
        "truncated-bootp",
        bytes(ether() / ip() / UDP(sport=68, dport=67) / Raw(b"\x01" * 100)),
    ),
    "option-runs-past-end": ("bad-dhcp-option", bootp_frame(MESSAGE_TYPE_DISCOVER + b"\x0c\x40pc")),
    "option-without-length": ("bad-dhcp-option", bootp_frame(MESSAGE_TYPE_DISCOVER + b"\x0c")),
    "options-without-end": (
        "missing-dhcp-end",
        bootp_frame(MESSAGE_TYPE_DISCOVER + opt(12, b"pc")),
    ),
    "overload-value-4": (
        "bad-overload",
        bootp_frame(MESSAGE_TYPE_DISCOVER + opt(52, b"\x04") + b"\xff"),
    ),
    "overload-length-2": (
        "bad-overload",
        bootp_frame(MESSAGE_TYPE_DISCOVER + opt(52, b"\x01\x01") + b"\xff"),
    ),
    "overloaded-file-option-runs-past-field": (
        "bad-dhcp-option",
        bootp_frame(
            MESSAGE_TYPE_DISCOVER + opt(52, b"\x01") + b"\xff", file=b"\x00" * 125 + b"\x0c\x05ab"
        ),
    ),
    "message-type-length-2": ("bad-message-type", bootp_frame(opt(53, b"\x01\x01") + b"\xff")),
    "message-type-0": ("bad-message-type", bootp_frame(opt(53, b"\x00") + b"\xff")),
    "message-type-200": ("bad-message-type", bootp_frame(opt(53, b"\xc8") + b"\xff")),
    "message-type-twice": ("bad-message-type", bootp_frame(MESSAGE_TYPE_DISCOVER * 2 + b"\xff")),
    "ack-in-a-bootrequest": ("bad-message-type", bootp_frame(opt(53, b"\x05") + b"\xff", op=1)),
    "discover-in-a-bootreply": (
        "bad-message-type",
        bootp_frame(MESSAGE_TYPE_DISCOVER + b"\xff", op=2),
    ),
    "bootp-op-3": ("bad-bootp-op", bootp_frame(MESSAGE_TYPE_DISCOVER + b"\xff", op=3)),
    "htype-infiniband": (
        "bad-hardware-type",
        bootp_frame(MESSAGE_TYPE_DISCOVER + b"\xff", htype=32, hlen=0),
    ),
    "ethernet-hlen-16": (
        "bad-hardware-length",
        bootp_frame(MESSAGE_TYPE_DISCOVER + b"\xff", hlen=16),
    ),
    "zero-chaddr": ("bad-mac", bootp_frame(MESSAGE_TYPE_DISCOVER + b"\xff", chaddr=b"\x00" * 6)),
    "multicast-chaddr": (
        "bad-mac",
        bootp_frame(MESSAGE_TYPE_DISCOVER + b"\xff", chaddr=b"\x01\x00\x5e\x00\x00\x01"),
    ),
    "release-without-ciaddr": ("bad-release", bootp_frame(opt(53, b"\x07") + b"\xff")),
}


@pytest.mark.parametrize(("reason", "frame"), MALFORMED.values(), ids=MALFORMED.keys())
def test_broken_frame_is_malformed_with_a_stable_reason(reason: str, frame: bytes) -> None:
    with pytest.raises(MalformedFrame) as raised:
        dissect(frame, AT)

    assert raised.value.reason == reason


# --- differential test against scapy's own parse -----------------------------------------------

# I/G bit clear (unicast); an all-zero draw is nudged to a valid address instead of filtered.
unicast_macs = st.builds(
    lambda first, rest: bytes([first & 0xFE]) + (rest if any(rest) else b"\x00" * 4 + b"\x01"),
    st.integers(0, 255),
    st.binary(min_size=5, max_size=5),
)
addresses = st.ip_addresses(v=4).map(str)
option_text = st.binary(min_size=1, max_size=255)


@st.composite
def valid_dhcp_messages(draw: st.DrawFn) -> bytes:
    message_type = draw(st.sampled_from(DhcpMessageType))
    client = message_type in CLIENT_TYPES
    options: list[Any] = []
    if draw(st.booleans()):
        options.append(("hostname", draw(option_text)))
    if draw(st.booleans()):
        options.append(("vendor_class_id", draw(option_text)))
    if draw(st.booleans()):
        options.append(
            ("param_req_list", draw(st.lists(st.integers(1, 254), min_size=1, max_size=40)))
        )
    options.extend(["pad"] * draw(st.integers(0, 3)))
    options = draw(st.permutations(options))
    ciaddr = draw(addresses)
    if message_type is DhcpMessageType.RELEASE and ciaddr == "0.0.0.0":
        ciaddr = "10.0.0.1"
    tags = [Dot1Q(vlan=draw(st.integers(1, 4094)))] if draw(st.booleans()) else []
    frame = (
        ether(tags=tags)
        / udp_ip(sport=68 if client else 67, dport=67 if client else 68)
        / BOOTP(
            op=1 if client else 2,
            chaddr=draw(unicast_macs) + draw(st.binary(min_size=10, max_size=10)),
            ciaddr=ciaddr,
            yiaddr=draw(addresses),
            siaddr=draw(addresses),
            giaddr=draw(addresses),
        )
        / DHCP(options=[("message-type", int(message_type)), *options, "end"])
    )
    return bytes(frame)


def expected_from_scapy(frame: bytes) -> Observation:
    """The Observation the field rules derive from scapy's parse of the same bytes."""
    bootp = Ether(frame)[BOOTP]
    options = {o[0]: o[1] for o in Ether(frame)[DHCP].options if isinstance(o, tuple)}
    dhcp_type = DhcpMessageType(options["message-type"])
    ip = None
    if dhcp_type is DhcpMessageType.ACK:
        ip = bootp.yiaddr if bootp.yiaddr != "0.0.0.0" else bootp.ciaddr
    elif dhcp_type is DhcpMessageType.RELEASE:
        ip = bootp.ciaddr

    def text(key: str) -> str | None:
        raw = options.get(key)
        return raw.rstrip(b"\x00").decode("utf-8", "replace") or None if raw is not None else None

    params = options.get("param_req_list")
    return Observation(
        source=ObservationSource.DHCP,
        mac=bootp.chaddr[:6].hex(":"),
        at=AT,
        ip=None if ip == "0.0.0.0" else ip,
        hostname=text("hostname"),
        vendor_class=text("vendor_class_id") if bootp.op == 1 else None,
        fingerprint=",".join(map(str, params)) if params and bootp.op == 1 else None,
        dhcp_type=dhcp_type,
        from_client=bootp.op == 1,
    )


@settings(max_examples=300, deadline=None)
@given(valid_dhcp_messages())
def test_valid_dhcp_messages_dissect_as_scapy_parses_them(frame: bytes) -> None:
    assert dissect(frame, AT) == expected_from_scapy(frame)


def test_a_servers_vendor_class_is_not_taken_as_the_clients() -> None:
    offer = (
        Ether(src="02:00:00:00:00:fe", dst="ff:ff:ff:ff:ff:ff")
        / IP(src="198.18.0.1", dst="255.255.255.255")
        / UDP(sport=67, dport=68)
        / BOOTP(op=2, chaddr=bytes.fromhex("024e41000001"), yiaddr="198.18.0.10")
        / DHCP(options=[("message-type", "offer"), ("vendor_class_id", b"PXEClient"), "end"])
    )
    obs = dissect(bytes(offer), AT)
    assert obs is not None and obs.vendor_class is None


# --- EAPOL (802.1X) ----------------------------------------------------------------------------

PAE_GROUP = "01:80:c2:00:00:03"


def eapol_frame(
    kind: int, body: bytes = b"", *, src: str = CLIENT_MAC, length: int | None = None
) -> bytes:
    header = bytes([2, kind]) + (len(body) if length is None else length).to_bytes(2, "big")
    return bytes(Ether(src=src, dst=PAE_GROUP, type=0x888E) / Raw(header + body))


def test_eapol_start_names_the_supplicant_at_layer_2_only() -> None:
    obs = dissect(eapol_frame(1), AT)
    assert obs == Observation(ObservationSource.EAPOL, CLIENT_MAC, AT)
    assert obs.ip is None and obs.dhcp_type is None


def test_an_eap_response_names_the_supplicant_a_request_names_nobody() -> None:
    identity = b"\x02\x01\x00\x0aalice"  # EAP Response/Identity "alice"
    assert dissect(eapol_frame(0, identity), AT) == Observation(
        ObservationSource.EAPOL, CLIENT_MAC, AT
    )
    request = b"\x01\x01\x00\x05\x01"  # the authenticator's Request/Identity
    assert dissect(eapol_frame(0, request, src=SERVER_MAC), AT) is None
    assert dissect(eapol_frame(3, b"\x00" * 8), AT) is None  # EAPOL-Key


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (
            bytes(Ether(src=CLIENT_MAC, dst=PAE_GROUP, type=0x888E) / Raw(b"\x02\x01")),
            "truncated-eapol",
        ),
        (eapol_frame(0, b"\x02\x01", length=2), "truncated-eap"),
        (eapol_frame(1, length=40), "truncated-eapol"),
        (eapol_frame(1, src="03:00:00:00:00:01"), "bad-mac"),
    ],
    ids=["short-header", "short-eap", "body-cut-off", "group-source"],
)
def test_broken_eapol_is_malformed(frame: bytes, reason: str) -> None:
    with pytest.raises(MalformedFrame) as caught:
        dissect(frame, AT)
    assert caught.value.reason == reason
