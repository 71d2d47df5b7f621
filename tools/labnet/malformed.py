"""Broadcast broken DHCP and ARP frames from a lab endpoint, to exercise the appliance's
detection path. Every frame passes the capture filter "arp or (udp port 67 or 68)" and then
fails to parse (RFC 2131 §2 BOOTP header, RFC 2132 options, RFC 826 ARP).

Run inside an endpoint namespace: python malformed.py --interface eth0 --count 100 --seed 1
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import random
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

MAX_COUNT = 1_000_000
TIME_LIMIT = 60.0  # seconds; the run stops then, whatever the count
BATCH = 64  # frames per sendp call, between time checks

BOOTP_FIXED_LEN = 236  # op .. file, before the magic cookie
DHCP_MAGIC_COOKIE = bytes.fromhex("63825363")
ARP_BODY_LEN = 28  # Ethernet/IPv4 ARP
BROADCAST = "ff:ff:ff:ff:ff:ff"


def random_mac(rng: random.Random) -> bytes:
    """A unicast, locally administered MAC (bit 0 of the first octet clear, bit 1 set)."""
    octets = bytearray(rng.getrandbits(8) for _ in range(6))
    octets[0] = (octets[0] & 0xFC) | 0x02
    return bytes(octets)


def mac_text(mac: bytes) -> str:
    return ":".join(f"{octet:02x}" for octet in mac)


def bootp_header(rng: random.Random, mac: bytes) -> bytes:
    """A well-formed BOOTREQUEST fixed header for `mac` (236 bytes)."""
    header = struct.pack(
        "!BBBBIHH4s4s4s4s16s64s128s",
        1,  # op: BOOTREQUEST
        1,  # htype: Ethernet
        6,  # hlen
        0,  # hops
        rng.getrandbits(32),  # xid
        0,  # secs
        0x8000,  # flags: broadcast
        bytes(4),  # ciaddr
        bytes(4),  # yiaddr
        bytes(4),  # siaddr
        bytes(4),  # giaddr
        mac,  # chaddr, zero-padded to 16
        b"",  # sname
        b"",  # file
    )
    assert len(header) == BOOTP_FIXED_LEN
    return header


def arp_request(rng: random.Random, mac: bytes) -> bytes:
    sender = ipaddress.IPv4Address("198.18.0.0") + rng.randrange(2, 1024)
    target = ipaddress.IPv4Address("198.18.0.1")
    return struct.pack(
        "!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac, sender.packed, bytes(6), target.packed
    )


class FrameMaker:
    """Builds the four kinds of broken frame; `scapy` is the imported scapy.all module."""

    def __init__(self, scapy: Any, rng: random.Random) -> None:
        self.scapy = scapy
        self.rng = rng
        self.kinds: dict[str, Callable[[bytes], Any]] = {
            "short-bootp": self.short_bootp,
            "short-arp": self.short_arp,
            "option-overrun": self.option_overrun,
            "empty-message-type": self.empty_message_type,
        }

    def _dhcp(self, mac: bytes, payload: bytes) -> Any:
        s = self.scapy
        # scapy fills in the IP and UDP lengths from the payload actually sent.
        return (
            s.Ether(src=mac_text(mac), dst=BROADCAST)
            / s.IP(src="0.0.0.0", dst="255.255.255.255")
            / s.UDP(sport=68, dport=67)
            / s.Raw(load=payload)
        )

    def short_bootp(self, mac: bytes) -> Any:
        """(a) A BOOTP payload cut short of the 236-byte fixed header."""
        cut = self.rng.randrange(1, BOOTP_FIXED_LEN)
        return self._dhcp(mac, bootp_header(self.rng, mac)[:cut])

    def short_arp(self, mac: bytes) -> Any:
        """(b) The ARP ethertype with fewer than 28 bytes of body (veth does not pad)."""
        s = self.scapy
        cut = self.rng.randrange(0, ARP_BODY_LEN)
        frame = s.Ether(src=mac_text(mac), dst=BROADCAST, type=0x0806)
        return frame / s.Raw(load=arp_request(self.rng, mac)[:cut])

    def option_overrun(self, mac: bytes) -> Any:
        """(c) A DHCPDISCOVER whose last option claims more bytes than the packet holds."""
        code = self.rng.choice((12, 55, 60, 61, 81))
        claimed = self.rng.randrange(8, 256)
        present = bytes(self.rng.getrandbits(8) for _ in range(self.rng.randrange(0, claimed)))
        options = bytes([53, 1, 1, code, claimed]) + present
        return self._dhcp(mac, bootp_header(self.rng, mac) + DHCP_MAGIC_COOKIE + options)

    def empty_message_type(self, mac: bytes) -> Any:
        """(d) Option 53 (DHCP message type) with length 0."""
        options = bytes([53, 0, 255])
        return self._dhcp(mac, bootp_header(self.rng, mac) + DHCP_MAGIC_COOKIE + options)

    def frame(self, index: int) -> tuple[str, Any]:
        # Cycle through the kinds so that any four consecutive frames cover all of them.
        kind = list(self.kinds)[index % len(self.kinds)]
        return kind, self.kinds[kind](random_mac(self.rng))


def send(interface: str, count: int, seed: int, time_limit: float = TIME_LIMIT) -> Counter[str]:
    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
    import scapy.all as scapy

    maker = FrameMaker(scapy, random.Random(seed))
    sent: Counter[str] = Counter()
    deadline = time.monotonic() + time_limit
    sock = scapy.conf.L2socket(iface=interface)
    try:
        index = 0
        while index < count and time.monotonic() < deadline:
            batch = [maker.frame(i) for i in range(index, min(index + BATCH, count))]
            scapy.sendp([frame for _, frame in batch], socket=sock, verbose=False)
            sent.update(kind for kind, _ in batch)
            index += len(batch)
    finally:
        sock.close()
    return sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Broadcast broken DHCP/ARP frames.")
    parser.add_argument("--interface", default="eth0")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not 0 <= args.count <= MAX_COUNT:
        parser.error(f"--count must be within 0..{MAX_COUNT}")
    sent = send(args.interface, args.count, args.seed)
    print(json.dumps({"sent": sum(sent.values()), "by_kind": dict(sent)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
