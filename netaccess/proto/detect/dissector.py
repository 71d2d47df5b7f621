"""Ethernet frame -> Observation: the sans-IO dissector behind the DHCP/ARP sniffer.

Layers: Ethernet II with up to two 802.1Q/802.1ad tags, ARP (RFC 826), EAPOL (IEEE
802.1X-2010 §11: a supplicant's Start and EAP Responses), IPv4 (RFC 791), UDP (RFC 768),
BOOTP/DHCP (RFC 2131 §2, §4.1) and DHCP options (RFC 2132, RFC 3396).
"""

from __future__ import annotations

import struct

from netaccess.proto.detect.observation import (
    DhcpMessageType,
    MalformedFrame,
    Observation,
    ObservationSource,
)

# Hand-written with struct rather than scapy: scapy builds a layer object per header and manages
# a few thousand frames a second, while a busy access segment needs tens of thousands.

_ETHERTYPE_IPV4 = 0x0800
_ETHERTYPE_ARP = 0x0806
_ETHERTYPE_EAPOL = 0x888E
_EAPOL_HEADER = struct.Struct("!BBH")  # protocol version, packet type, body length
_EAPOL_EAP_PACKET, _EAPOL_START, _EAPOL_LOGOFF = 0, 1, 2
_EAP_RESPONSE = 2  # RFC 3748 §4: the code a peer (the supplicant) sends
# 802.1Q customer tag and 802.1ad service tag (Q-in-Q); two are enough for any access port.
_VLAN_TPIDS = frozenset({0x8100, 0x88A8})
_MAX_VLAN_TAGS = 2
_ETHERNET_HEADER_LEN = 14
_VLAN_TAG_LEN = 4

_IPPROTO_UDP = 17
_IPV4_MIN_HEADER_LEN = 20
_IP_MF = 0x2000
_IP_OFFSET_MASK = 0x1FFF
# version/IHL, (tos), total length, (id), flags/fragment offset, (ttl), protocol
_IPV4_HEADER = struct.Struct("!BxH2xHxB")
_UDP_HEADER = struct.Struct("!HHH")
_UDP_HEADER_LEN = 8
_BOOTP_PORTS = frozenset({67, 68})

# RFC 826: hardware type, protocol type, hardware length, protocol length, opcode.
_ARP_FIXED = struct.Struct("!HHBBH")
_ARP_FIXED_LEN = 8
_ARP_ETHERNET_IPV4_LEN = 28  # fixed part plus 6+4+6+4 address bytes
_ARP_HTYPE_ETHERNET = 1
_ARP_REQUEST = 1
_ARP_REPLY = 2

# RFC 2131 §2, figure 1: offsets inside the fixed 236-byte BOOTP header.
_BOOTP_FIXED_LEN = 236
_BOOTP_CIADDR = 12
_BOOTP_YIADDR = 16
_BOOTP_CHADDR = 28
_BOOTP_SNAME = 44
_BOOTP_SNAME_LEN = 64
_BOOTP_FILE = 108
_BOOTP_FILE_LEN = 128
_BOOTREQUEST = 1
_BOOTREPLY = 2
_HTYPE_ETHERNET = 1
_MAC_LEN = 6
# RFC 2131 §3 / RFC 2132 §2: the vendor area starts with this cookie when it holds DHCP options.
_DHCP_MAGIC_COOKIE = b"\x63\x82\x53\x63"
_DHCP_OPTIONS_START = _BOOTP_FIXED_LEN + len(_DHCP_MAGIC_COOKIE)

# RFC 2132 option codes.
_OPT_PAD = 0  # §3.1
_OPT_HOSTNAME = 12  # §3.14
_OPT_OVERLOAD = 52  # §9.3
_OPT_MESSAGE_TYPE = 53  # §9.6
_OPT_PARAMETER_LIST = 55  # §9.8
_OPT_VENDOR_CLASS = 60  # §9.13
_OPT_END = 255  # §3.2
_WANTED_OPTIONS = frozenset(
    {_OPT_HOSTNAME, _OPT_OVERLOAD, _OPT_MESSAGE_TYPE, _OPT_PARAMETER_LIST, _OPT_VENDOR_CLASS}
)
_OVERLOAD_FILE = 1
_OVERLOAD_SNAME = 2
_MAX_TEXT_CHARS = 255

# Types the client sends as BOOTREQUEST and the server as BOOTREPLY (RFC 2131 §3, table 2/3).
_CLIENT_TYPES = frozenset(
    {
        DhcpMessageType.DISCOVER,
        DhcpMessageType.REQUEST,
        DhcpMessageType.DECLINE,
        DhcpMessageType.RELEASE,
        DhcpMessageType.INFORM,
    }
)
# Registered message types that say nothing about an endpoint: FORCERENEW (RFC 3203),
# the leasequery family (RFC 4388, 6926, 7724). They are valid, so not malformed.
_UNINTERESTING_TYPES = range(9, 19)


def dissect(frame: bytes, at: float) -> Observation | None:
    """One captured Ethernet II frame, as read from an AF_PACKET socket, as an Observation.

    Returns None for frames that are well formed but carry nothing about an endpoint (other
    protocols, IP fragments, plain BOOTP, ...). Raises MalformedFrame, and nothing else, for
    frames that claim to be ARP or DHCP but are broken. `at` is the capture time.

    A bytearray or memoryview works as well (e.g. a recv_into buffer); the Observation keeps
    no reference to it.
    """
    ethertype, offset = _ethernet(frame)
    if ethertype == _ETHERTYPE_ARP:
        return _arp(frame, offset, at)
    if ethertype == _ETHERTYPE_EAPOL:
        return _eapol(frame, offset, at)
    if ethertype != _ETHERTYPE_IPV4:
        return None
    payload = _ipv4_udp_payload(frame, offset)
    if payload is None:
        return None
    start, stop = payload
    return _dhcp(frame, start, stop, at)


# --- Ethernet II and IEEE 802.1Q/802.1ad -------------------------------------------------------


def _ethernet(frame: bytes) -> tuple[int, int]:
    """The ethertype after up to two VLAN tags, and where its payload starts.

    A third tag is left in place; its TPID then reads as an ethertype nobody handles.
    """
    size = len(frame)
    if size < _ETHERNET_HEADER_LEN:
        raise MalformedFrame("truncated-ethernet", f"{size} bytes, need {_ETHERNET_HEADER_LEN}")
    ethertype = (frame[12] << 8) | frame[13]
    offset = _ETHERNET_HEADER_LEN
    for tag in range(1, _MAX_VLAN_TAGS + 1):
        if ethertype not in _VLAN_TPIDS:
            break
        if size < offset + _VLAN_TAG_LEN:
            raise MalformedFrame("truncated-vlan", f"tag {tag} at byte {offset - 2} cut off")
        # The tag control information (priority, VLAN id) does not matter to detection.
        ethertype = (frame[offset + 2] << 8) | frame[offset + 3]
        offset += _VLAN_TAG_LEN
    return ethertype, offset


# --- ARP (RFC 826) ---------------------------------------------------------------------------


def _arp(frame: bytes, offset: int, at: float) -> Observation | None:
    if len(frame) < offset + _ARP_FIXED_LEN:
        raise MalformedFrame("truncated-arp", f"{len(frame) - offset} bytes of ARP header")
    htype, ptype, hlen, plen, oper = _ARP_FIXED.unpack_from(frame, offset)
    if htype != _ARP_HTYPE_ETHERNET or ptype != _ETHERTYPE_IPV4:
        return None
    if hlen != _MAC_LEN or plen != 4:
        raise MalformedFrame("bad-arp-length", f"Ethernet/IPv4 ARP with hlen={hlen} plen={plen}")
    if len(frame) < offset + _ARP_ETHERNET_IPV4_LEN:
        raise MalformedFrame("truncated-arp", f"{len(frame) - offset} of 28 bytes")
    if oper != _ARP_REQUEST and oper != _ARP_REPLY:
        raise MalformedFrame("bad-arp-op", f"opcode {oper}, expected 1 (request) or 2 (reply)")
    sha = offset + _ARP_FIXED_LEN
    spa = sha + _MAC_LEN
    mac = _unicast_mac(frame, sha, "ARP sender hardware address")
    # An ARP probe (RFC 5227 §2.1.1) has sender IP 0.0.0.0: the host does not own one yet.
    ip = _ipv4_address(frame, spa)
    return Observation(
        source=ObservationSource.ARP,
        mac=mac,
        at=at,
        ip=None if ip == "0.0.0.0" else ip,
    )


# --- EAPOL (IEEE 802.1X-2010 §11.3) ------------------------------------------------------------


def _eapol(frame: bytes, offset: int, at: float) -> Observation | None:
    """A supplicant's frame (EAPOL-Start, -Logoff, or an EAP Response) names an endpoint
    that speaks 802.1X; an authenticator's (EAP Request, Success, Failure) and key frames
    name none. Only the source address is used: the EAP inside is the switch's business."""
    if len(frame) < offset + _EAPOL_HEADER.size:
        raise MalformedFrame("truncated-eapol", f"{len(frame) - offset} of 4 header bytes")
    _version, kind, length = _EAPOL_HEADER.unpack_from(frame, offset)
    body = offset + _EAPOL_HEADER.size
    if len(frame) < body + length:
        raise MalformedFrame("truncated-eapol", f"body of {length} bytes, {len(frame) - body} here")
    if kind == _EAPOL_EAP_PACKET:
        if length < 4:
            raise MalformedFrame("truncated-eap", f"EAP packet of {length} bytes, need 4")
        if frame[body] != _EAP_RESPONSE:
            return None
    elif kind not in (_EAPOL_START, _EAPOL_LOGOFF):
        return None
    mac = _unicast_mac(frame, 6, "EAPOL source address")
    return Observation(source=ObservationSource.EAPOL, mac=mac, at=at)


# --- IPv4 (RFC 791) and UDP (RFC 768) ----------------------------------------------------------


def _ipv4_udp_payload(frame: bytes, offset: int) -> tuple[int, int] | None:
    """Bounds of the UDP payload when the packet is unfragmented UDP to or from port 67/68."""
    size = len(frame)
    if size < offset + _IPV4_MIN_HEADER_LEN:
        raise MalformedFrame("truncated-ip", f"{size - offset} bytes of IPv4 header, need 20")
    version_ihl, total_length, flags_fragment, protocol = _IPV4_HEADER.unpack_from(frame, offset)
    if version_ihl >> 4 != 4:
        raise MalformedFrame("bad-ip-version", f"version {version_ihl >> 4} under ethertype IPv4")
    header_len = (version_ihl & 0x0F) * 4
    if header_len < _IPV4_MIN_HEADER_LEN:
        raise MalformedFrame("bad-ip-header-length", f"IHL {header_len // 4}, minimum is 5")
    if size < offset + header_len:
        raise MalformedFrame("truncated-ip", f"{size - offset} bytes, IHL says {header_len}")
    # The frame may be longer than the datagram (Ethernet pads to 60 bytes), never shorter.
    if total_length < header_len or offset + total_length > size:
        raise MalformedFrame(
            "bad-ip-length",
            f"total length {total_length}, header {header_len}, {size - offset} bytes in frame",
        )
    if protocol != _IPPROTO_UDP:
        return None
    # DHCP messages fit one datagram; a fragment alone cannot be dissected, and reassembly
    # would let a peer make us hold state.
    if flags_fragment & (_IP_MF | _IP_OFFSET_MASK):
        return None
    udp = offset + header_len
    ip_end = offset + total_length
    if ip_end - udp < _UDP_HEADER_LEN:
        raise MalformedFrame("truncated-udp", f"{ip_end - udp} bytes of UDP header, need 8")
    src_port, dst_port, udp_length = _UDP_HEADER.unpack_from(frame, udp)
    if src_port not in _BOOTP_PORTS and dst_port not in _BOOTP_PORTS:
        return None
    if udp_length < _UDP_HEADER_LEN or udp + udp_length > ip_end:
        raise MalformedFrame(
            "bad-udp-length", f"UDP length {udp_length}, IP payload is {ip_end - udp} bytes"
        )
    # Checksums are deliberately not verified: frames this host sends are captured before the
    # NIC fills in offloaded checksums, so a correct DHCP reply would look corrupt.
    return udp + _UDP_HEADER_LEN, udp + udp_length


# --- BOOTP/DHCP (RFC 2131, RFC 2132) -----------------------------------------------------------


def _dhcp(frame: bytes, bootp: int, stop: int, at: float) -> Observation | None:
    if stop - bootp < _BOOTP_FIXED_LEN:
        raise MalformedFrame("truncated-bootp", f"{stop - bootp} bytes, fixed header is 236")
    if frame[bootp + _BOOTP_FIXED_LEN : bootp + _DHCP_OPTIONS_START] != _DHCP_MAGIC_COOKIE:
        return None  # plain BOOTP (RFC 951), or a cookie-less vendor area
    options = _dhcp_options(frame, bootp, stop)
    raw_type = options.get(_OPT_MESSAGE_TYPE)
    if raw_type is None:
        # RFC 1497 BOOTP vendor extensions share the cookie; option 53 is what makes DHCP.
        return None
    dhcp_type = _message_type(raw_type)
    if dhcp_type is None:
        return None

    op = frame[bootp]
    if op != _BOOTREQUEST and op != _BOOTREPLY:
        raise MalformedFrame("bad-bootp-op", f"op {op}, expected 1 or 2")
    from_client = op == _BOOTREQUEST
    if from_client != (dhcp_type in _CLIENT_TYPES):
        raise MalformedFrame(
            "bad-message-type", f"{dhcp_type.name} in a {'request' if from_client else 'reply'}"
        )
    htype = frame[bootp + 1]
    hlen = frame[bootp + 2]
    if htype != _HTYPE_ETHERNET:
        raise MalformedFrame("bad-hardware-type", f"htype {htype} on an Ethernet segment")
    if hlen != _MAC_LEN:
        raise MalformedFrame("bad-hardware-length", f"hlen {hlen} for Ethernet, expected 6")
    mac = _unicast_mac(frame, bootp + _BOOTP_CHADDR, "chaddr")

    parameters = options.get(_OPT_PARAMETER_LIST)
    return Observation(
        source=ObservationSource.DHCP,
        mac=mac,
        at=at,
        ip=_proven_ip(frame, bootp, dhcp_type),
        hostname=_text(options.get(_OPT_HOSTNAME)),
        # Option 60 and the parameter request list describe the client only when the client
        # sends them: a PXE proxy server puts its own "PXEClient" in its OFFERs.
        vendor_class=_text(options.get(_OPT_VENDOR_CLASS)) if from_client else None,
        fingerprint=",".join(map(str, parameters)) if from_client and parameters else None,
        dhcp_type=dhcp_type,
        from_client=from_client,
    )


def _dhcp_options(frame: bytes, bootp: int, stop: int) -> dict[int, bytes]:
    """The options this dissector uses, after walking every option area of the message.

    RFC 2131 §4.1: the options field is read first, then `file`, then `sname` when option 52
    says they were overloaded. RFC 3396: an option split into several instances is their
    concatenation, which applies across areas too.
    """
    found: dict[int, bytes] = {}
    start = bootp + _DHCP_OPTIONS_START
    # The options field is bounded only by the datagram, so the end option is what proves the
    # sender meant it to stop there (RFC 2132 §3.2); it is required.
    if not _walk_options(frame, start, stop, "options", found):
        raise MalformedFrame("missing-dhcp-end", f"options field of {stop - start} bytes")
    overload = found.get(_OPT_OVERLOAD)
    if overload is None:
        return found
    if len(overload) != 1 or not 1 <= overload[0] <= 3:
        raise MalformedFrame("bad-overload", f"option 52 value {overload.hex()}, expected 1-3")
    # `file` and `sname` are fixed-size fields, so reaching their last byte is a clean stop
    # even without an end option.
    if overload[0] & _OVERLOAD_FILE:
        area = bootp + _BOOTP_FILE
        _walk_options(frame, area, area + _BOOTP_FILE_LEN, "file", found)
    if overload[0] & _OVERLOAD_SNAME:
        area = bootp + _BOOTP_SNAME
        _walk_options(frame, area, area + _BOOTP_SNAME_LEN, "sname", found)
    return found


def _walk_options(frame: bytes, start: int, stop: int, area: str, found: dict[int, bytes]) -> bool:
    """Walk one option area (RFC 2132 §2), adding wanted options to `found`.

    Returns True when an end option closed the area, False when the area ran out cleanly.
    """
    i = start
    while i < stop:
        code = frame[i]
        if code == _OPT_PAD:
            i += 1
            continue
        if code == _OPT_END:
            return True  # what follows is padding and means nothing
        if i + 1 >= stop:
            raise MalformedFrame(
                "bad-dhcp-option", f"option {code} at {area}+{i - start}: no length"
            )
        value_end = i + 2 + frame[i + 1]
        if value_end > stop:
            raise MalformedFrame(
                "bad-dhcp-option",
                f"option {code} at {area}+{i - start}: length {frame[i + 1]} runs past the end",
            )
        if code in _WANTED_OPTIONS:
            value = bytes(frame[i + 2 : value_end])
            previous = found.get(code)
            found[code] = value if previous is None else previous + value
        i = value_end
    return False


def _message_type(raw: bytes) -> DhcpMessageType | None:
    """Option 53 (RFC 2132 §9.6); None for registered types that are not about endpoints."""
    if len(raw) != 1:
        raise MalformedFrame("bad-message-type", f"option 53 of length {len(raw)}, expected 1")
    value = raw[0]
    if value in _UNINTERESTING_TYPES:
        return None
    try:
        return DhcpMessageType(value)
    except ValueError:
        raise MalformedFrame("bad-message-type", f"option 53 value {value}") from None


def _proven_ip(frame: bytes, bootp: int, dhcp_type: DhcpMessageType) -> str | None:
    """The address a message proves belongs to chaddr (RFC 2131 §4.3.1, §4.3.4, §4.4.6)."""
    if dhcp_type is DhcpMessageType.ACK:
        yiaddr = _ipv4_address(frame, bootp + _BOOTP_YIADDR)
        if yiaddr != "0.0.0.0":
            return yiaddr
        # An ACK to an INFORM assigns nothing and leaves yiaddr zero; the client's own address
        # is then in ciaddr.
        ciaddr = _ipv4_address(frame, bootp + _BOOTP_CIADDR)
        return None if ciaddr == "0.0.0.0" else ciaddr
    if dhcp_type is DhcpMessageType.RELEASE:
        ciaddr = _ipv4_address(frame, bootp + _BOOTP_CIADDR)
        if ciaddr == "0.0.0.0":
            # The client MUST name the address it gives up; without one there is nothing to
            # release and the endpoint must not be marked gone.
            raise MalformedFrame("bad-release", "DHCPRELEASE with ciaddr 0.0.0.0")
        return ciaddr
    # An OFFER or a REQUEST proves nothing: the lease is not granted yet.
    return None


# --- Field decoding ----------------------------------------------------------------------------


def _unicast_mac(frame: bytes, offset: int, what: str) -> str:
    raw = frame[offset : offset + _MAC_LEN]
    # A group address (I/G bit set, broadcast included) or all zeros names no endpoint.
    if raw[0] & 0x01 or not any(raw):
        raise MalformedFrame("bad-mac", f"{what} {raw.hex(':')} is not a unicast address")
    return raw.hex(":")


def _ipv4_address(frame: bytes, offset: int) -> str:
    return f"{frame[offset]}.{frame[offset + 1]}.{frame[offset + 2]}.{frame[offset + 3]}"


def _text(raw: bytes | None) -> str | None:
    """Options 12 and 60: NVT ASCII in theory, UTF-8 and NUL-terminated in practice."""
    if raw is None:
        return None
    text = raw.rstrip(b"\x00").decode("utf-8", errors="replace")[:_MAX_TEXT_CHARS]
    return text or None
