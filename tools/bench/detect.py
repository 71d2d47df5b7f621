"""Benchmark: frames per second through the DHCP/ARP dissector on one core, against scapy.

Run as `.venv/bin/python tools/bench/detect.py`; prints one JSON line on stdout. The target is
50,000 frames/s; scapy's own Ether() dissection of the same frames is the anchor.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether

from netaccess.proto.detect import dissect

DISTINCT_MACS = 1000
MIX_SIZE = 4000  # distinct frames, cycled through during the timed run
MAX_FRAMES = 200_000
MAX_SECONDS = 10.0
ANCHOR_FRAMES = 5_000
SERVER_MAC = "02:00:5e:00:00:fe"

# Parameter request lists of common clients, so option walking costs what it costs in the field.
PARAMETER_LISTS = (
    [1, 3, 6, 15, 31, 33, 43, 44, 46, 47, 119, 121, 249, 252],  # Windows 10/11
    [1, 121, 3, 6, 15, 108, 114, 119, 252, 95, 44, 46],  # macOS / iOS
    [1, 3, 6, 15, 26, 28, 51, 58, 59, 43, 114, 108],  # Android
    [1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42],  # dhclient
    [1, 3, 6, 12, 15, 28, 42, 51, 54, 58, 59, 119],  # embedded udhcpc
)
VENDOR_CLASSES = (b"MSFT 5.0", b"android-dhcp-14", b"udhcp 1.36.1", b"dhcpcd-10.0.6:Linux")


def build_mix(rng: random.Random) -> tuple[list[bytes], int, int]:
    """Half ARP (requests and replies), half DHCP (DISCOVER, REQUEST, ACK), ~1000 MACs."""
    macs = [
        f"02:00:5e:{i >> 16 & 0xFF:02x}:{i >> 8 & 0xFF:02x}:{i & 0xFF:02x}"
        for i in range(1, DISTINCT_MACS + 1)
    ]
    frames: list[bytes] = []
    arp = dhcp = 0
    for n in range(MIX_SIZE):
        index = rng.randrange(DISTINCT_MACS)
        mac = macs[index]
        ip = f"10.{index >> 8 & 0xFF}.{index & 0xFF}.{10 + index % 200}"
        if n % 2 == 0:
            op = rng.choice((1, 2))
            frame = Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / ARP(
                op=op, hwsrc=mac, psrc=ip, pdst="10.0.0.1"
            )
            arp += 1
        else:
            kind = rng.choice(("discover", "request", "ack"))
            options: list[object] = [("message-type", kind)]
            if kind == "ack":
                options += [
                    ("server_id", "10.0.0.1"),
                    ("lease_time", 3600),
                    ("subnet_mask", "255.255.0.0"),
                ]
            else:
                options += [
                    ("hostname", f"host-{index:04d}".encode()),
                    ("vendor_class_id", rng.choice(VENDOR_CLASSES)),
                    ("param_req_list", rng.choice(PARAMETER_LISTS)),
                ]
            client = kind != "ack"
            frame = (
                Ether(src=mac if client else SERVER_MAC, dst="ff:ff:ff:ff:ff:ff" if client else mac)
                / IP(
                    src="0.0.0.0" if client else "10.0.0.1", dst="255.255.255.255" if client else ip
                )
                / UDP(sport=68 if client else 67, dport=67 if client else 68)
                / BOOTP(
                    op=1 if client else 2,
                    chaddr=bytes.fromhex(mac.replace(":", "")),
                    yiaddr="0.0.0.0" if client else ip,
                )
                / DHCP(options=[*options, "end"])
            )
            dhcp += 1
        frames.append(bytes(frame))
    return frames, arp, dhcp


def time_dissector(frames: list[bytes]) -> tuple[int, float]:
    done = 0
    started = time.perf_counter()
    deadline = started + MAX_SECONDS
    while done < MAX_FRAMES and time.perf_counter() < deadline:
        # Batches keep the clock out of the inner loop.
        for frame in frames:
            dissect(frame, 0.0)
        done += len(frames)
    return done, time.perf_counter() - started


def time_scapy(frames: list[bytes]) -> float:
    started = time.perf_counter()
    for i in range(ANCHOR_FRAMES):
        Ether(frames[i % len(frames)])
    return ANCHOR_FRAMES / (time.perf_counter() - started)


def main() -> None:
    # Not Linux, or CPU 0 not in our set: measure unpinned rather than fail.
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {0})
    frames, arp, dhcp = build_mix(random.Random(20240601))
    # The timed loop has no error handling: every frame of the mix must dissect cleanly.
    if any(dissect(frame, 0.0) is None for frame in frames):
        raise SystemExit("the benchmark mix contains a frame the dissector ignores")
    done, seconds = time_dissector(frames)
    rate = done / seconds
    anchor = time_scapy(frames)
    print(
        json.dumps(
            {
                "bench": "detect",
                "frames": done,
                "seconds": round(seconds, 3),
                "frames_per_s": round(rate),
                "mix": {"arp": arp, "dhcp": dhcp},
                "anchor": "scapy Ether() dissection",
                "anchor_frames_per_s": round(anchor),
                "ratio_vs_anchor": round(rate / anchor, 1),
                "python": platform.python_version(),
            }
        )
    )


if __name__ == "__main__":
    main()
