"""The kernel capture filter, run by a small classic-BPF interpreter over scapy-built frames."""

from __future__ import annotations

import shutil
import struct
import subprocess

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet, Raw

from netaccess.proto.detect.bpf import CAPTURE_FILTER, packed_instructions

Program = tuple[tuple[int, int, int, int], ...]
CLIENT_MAC = "02:00:5e:10:00:01"
SERVER_MAC = "02:00:5e:10:00:fe"
EXPRESSION = "arp or ether proto 0x888e or (ip and udp and (port 67 or port 68))"
PAE_GROUP = "01:80:c2:00:00:03"  # IEEE 802.1X port access entity group address


def run_bpf(program: Program, frame: bytes) -> int:
    """The snap length a classic BPF program returns for `frame` (0 = drop).

    Covers only what the capture filter uses: ld/ldh/ldb absolute and indexed, ldxb msh,
    jeq/jgt/jset against a constant, and ret of a constant. Loads past the end of the frame
    drop it, as the kernel does.
    """
    a = x = 0
    pc = 0
    while True:
        code, jt, jf, k = program[pc]
        pc += 1
        if code in (0x20, 0x28, 0x30, 0x40, 0x48, 0x50):  # ld{,h,b} [k] and [x + k]
            offset = k + (x if code & 0x40 else 0)
            size = {0x00: 4, 0x08: 2, 0x10: 1}[code & 0x18]
            if offset + size > len(frame):
                return 0
            a = int.from_bytes(frame[offset : offset + size], "big")
        elif code == 0xB1:  # ldxb 4*([k]&0xf)
            if k >= len(frame):
                return 0
            x = (frame[k] & 0x0F) * 4
        elif code in (0x15, 0x25, 0x45):  # jeq, jgt, jset #k
            taken = {0x15: a == k, 0x25: a > k, 0x45: bool(a & k)}[code]
            pc += jt if taken else jf
        elif code == 0x06:  # ret #k
            return k
        else:
            raise AssertionError(f"opcode {code:#x} at {pc - 1} not understood by this interpreter")


def accepts(frame: Packet, program: Program = CAPTURE_FILTER) -> bool:
    return run_bpf(program, bytes(frame)) > 0


def client_ether() -> Packet:
    return Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff")


def dhcp_bootp(op: int = 1) -> Packet:
    kind = "discover" if op == 1 else "offer"
    return BOOTP(op=op, chaddr=bytes.fromhex("02005e100001")) / DHCP(
        options=[("message-type", kind), "end"]
    )


ACCEPTED = {
    "arp-request": client_ether() / ARP(op=1, hwsrc=CLIENT_MAC, psrc="10.0.0.5", pdst="10.0.0.1"),
    "arp-reply": client_ether() / ARP(op=2, hwsrc=CLIENT_MAC, psrc="10.0.0.5", pdst="10.0.0.1"),
    "dhcp-client-to-server": client_ether()
    / IP(src="0.0.0.0", dst="255.255.255.255")
    / UDP(sport=68, dport=67)
    / dhcp_bootp(),
    "dhcp-server-to-client": Ether(src=SERVER_MAC, dst=CLIENT_MAC)
    / IP(src="10.0.0.1", dst="10.0.0.50")
    / UDP(sport=67, dport=68)
    / dhcp_bootp(op=2),
    "dhcp-relay-to-server": client_ether()
    / IP(src="10.9.0.1", dst="10.0.0.1")
    / UDP(sport=67, dport=67)
    / dhcp_bootp(),
    "eapol-start": Ether(src=CLIENT_MAC, dst=PAE_GROUP, type=0x888E) / Raw(b"\x02\x01\x00\x00"),
    "dhcp-with-ip-options": client_ether()
    / IP(src="0.0.0.0", dst="255.255.255.255", options=b"\x94\x04\x00\x00")
    / UDP(sport=68, dport=67)
    / dhcp_bootp(),
}

REJECTED = {
    "dns-over-udp-53": client_ether()
    / IP(src="10.0.0.5", dst="10.0.0.1")
    / UDP(sport=40000, dport=53)
    / Raw(b"\x12\x34" + b"\x00" * 10),
    "tcp-port-67": client_ether() / IP(src="10.0.0.5", dst="10.0.0.1") / TCP(sport=40000, dport=67),
    "ipv6-udp-port-67": client_ether()
    / IPv6(src="fe80::1", dst="ff02::1:2")
    / UDP(sport=68, dport=67)
    / dhcp_bootp(),
    "non-first-fragment-to-port-67": client_ether()
    / IP(src="10.0.0.5", dst="10.0.0.1", frag=185)
    / UDP(sport=68, dport=67)
    / dhcp_bootp(),
    "lldp": Ether(src=CLIENT_MAC, dst="01:80:c2:00:00:0e", type=0x88CC) / Raw(b"\x02\x07"),
    "ntp-over-udp-123": client_ether()
    / IP(src="10.0.0.5", dst="10.0.0.1")
    / UDP(sport=123, dport=123)
    / Raw(b"\x00" * 48),
}


@pytest.mark.parametrize("frame", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_filter_accepts_arp_eapol_and_dhcp(frame: Packet) -> None:
    assert accepts(frame)


@pytest.mark.parametrize("frame", REJECTED.values(), ids=REJECTED.keys())
def test_filter_rejects_everything_else(frame: Packet) -> None:
    assert not accepts(frame)


def test_filter_accepts_the_whole_frame() -> None:
    frame = bytes(ACCEPTED["dhcp-client-to-server"])

    assert run_bpf(CAPTURE_FILTER, frame) >= 65535


def test_filter_drops_a_frame_too_short_to_hold_its_headers() -> None:
    assert not accepts(Raw(bytes(ACCEPTED["dhcp-client-to-server"])[:30]))


def test_every_jump_lands_inside_the_program() -> None:
    # The kernel's checker refuses a program whose jumps leave it.
    for index, (code, jt, jf, _k) in enumerate(CAPTURE_FILTER):
        if code & 0x07 == 0x05:
            assert index + 1 + max(jt, jf) < len(CAPTURE_FILTER)


def test_program_ends_in_a_return() -> None:
    assert CAPTURE_FILTER[-1][0] & 0x07 == 0x06


def test_packed_instructions_are_eight_bytes_each() -> None:
    assert len(packed_instructions()) == 8 * len(CAPTURE_FILTER)


def test_packed_instructions_are_struct_sock_filter_in_host_order() -> None:
    first = struct.unpack_from("HBBI", packed_instructions())

    assert first == CAPTURE_FILTER[0]


def tcpdump_program(expression: str) -> Program:
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        pytest.skip("tcpdump is not installed")
    output = subprocess.run(
        [tcpdump, "-dd", "-y", "EN10MB", expression],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = [line.strip().strip("{},").split(",") for line in output.splitlines() if "{" in line]
    return tuple((int(c, 0), int(jt, 0), int(jf, 0), int(k, 0)) for c, jt, jf, k in rows)


def test_filter_decides_like_the_program_tcpdump_compiles_today() -> None:
    # Compared by verdicts rather than instructions: libpcap versions differ in layout.
    compiled = tcpdump_program(EXPRESSION)
    frames = [*ACCEPTED.values(), *REJECTED.values()]

    assert [accepts(f) for f in frames] == [accepts(f, compiled) for f in frames]
