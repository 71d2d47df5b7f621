"""Benchmark peer: the load process of tools/bench/storm.py, one trio process run inside the
lab appliance's namespace. It takes endpoints one after another, `--concurrency` at a time,
and drives each through admission as the endpoint itself would:

1. detection: a DHCP DISCOVER from its MAC and the site server's ACK giving its address,
   crafted here and sent into the access switch from an endpoint namespace's eth0 (one
   AF_PACKET socket, opened there through setns), so the appliance's capture learns it;
2. login: HTTPS to the portal from the endpoint's address (a /18 routed to `lo` here: each
   endpoint has an address of its own), GET /login until the page names its MAC, then POST
   the form (csrf, realm, user, password): the password is checked with scrypt;
3. posture: a PT-TLS session from the same address with the agent's client: Debian 12, the
   firewall on, and 700 packages when the OS IMV asks;
4. role applied: the kernel announces the endpoint's MAC added to its role_full_mac set
   (the ruleset matches access traffic by source MAC), which is when its traffic is let
   through; a netlink socket in the nftables multicast group here hears it.

Prints one JSON line: times per endpoint summarised (first DHCP frame to role applied, and
per stage), errors, and the CPU the daemon, the enforcer and this process used."""

from __future__ import annotations

import argparse
import collections
import ctypes
import ipaddress
import json
import os
import re
import socket
import ssl
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

BENCH = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(BENCH.parents[1]), str(BENCH)]

import h11  # noqa: E402
import trio  # noqa: E402
from tnc_peers.load import core_ticks, percentile, process_cpu_seconds  # noqa: E402

from netaccess.agent.os_facts import (  # noqa: E402
    SYNTHETIC_OS,
    HeldAttributes,
    os_attributes,
    pre_encoded,
    synthetic_packages,
)
from netaccess.agent.tnc_client import OS, Component, report_posture  # noqa: E402
from netaccess.proto.tnc import vendor  # noqa: E402
from netaccess.proto.tnc.errors import IETF_PEN  # noqa: E402
from netaccess.proto.tnc.pa import ComponentSubtype, ForwardingState, PaAttribute  # noqa: E402
from netaccess.proto.tnc.pb import AssessmentResult  # noqa: E402

CLONE_NEWNET = 0x40000000  # <sched.h>
ETH_P_IP = 0x0800
BROADCAST_MAC = b"\xff" * 6
BROADCAST_IP = b"\xff" * 4
# The site DHCP server's frames come from this made-up MAC (outside the endpoints' block):
# the switch learns it on the port we send from, so no frame meant for a real station (the
# appliance's acc0) is drawn there.
SERVER_MAC = bytes.fromhex("025353000001")
DHCP_MAGIC = b"\x63\x82\x53\x63"
DHCP_DISCOVER, DHCP_ACK = 1, 5
LEASE_SECONDS = 12 * 3600
# What a Debian 12 dhclient asks for (option 55), and RFC 8910's captive-portal option.
PARAMETER_LIST = bytes([1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42, 114])
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CSRF = re.compile(rb'name="csrf" value="([^"]+)"')
DEVICE = re.compile(rb"This device: [0-9.]+ \(([0-9a-f:]{17})\)")

ENDPOINT_TIMEOUT = 60.0  # one endpoint's detection, login and posture, at most
DETECTION_POLL = 0.02  # seconds between GET /login while the page does not name us yet
SETTLE_SECONDS = 15.0  # after the last posture session: roles still being applied
ERROR_SAMPLES = 5
RECEIVE_SIZE = 64 * 1024


class StepFailed(Exception):
    """The appliance answered something an admitted endpoint never gets; says what."""


# --- the fake endpoints -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FakeEndpoint:
    number: int
    mac: bytes
    ip: str
    user: str

    @property
    def mac_text(self) -> str:
        return self.mac.hex(":")


def fake_endpoint(number: int, first_ip: ipaddress.IPv4Address, user_prefix: str) -> FakeEndpoint:
    """Endpoint `number` (0-based): MAC 02:53:54:NN:NN:NN (locally administered, unicast),
    the number-th address from `first_ip`, and its own portal user."""
    mac = bytes([0x02, 0x53, 0x54]) + number.to_bytes(3, "big")
    return FakeEndpoint(number, mac, str(first_ip + number), f"{user_prefix}{number:06d}")


# --- DHCP frames (RFC 2131 §2, RFC 2132; IPv4 RFC 791, UDP RFC 768) ------------------------------


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _udp_frame(
    src_mac: bytes, src_ip: bytes, dst_ip: bytes, sport: int, dport: int, payload: bytes
) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload  # no UDP checksum
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src_ip, dst_ip)
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return BROADCAST_MAC + src_mac + struct.pack("!H", ETH_P_IP) + header + udp


def _bootp(op: int, xid: int, mac: bytes, yiaddr: bytes, options: bytes) -> bytes:
    fixed = struct.pack(
        "!BBBBIHH4s4s4s4s16s64s128s",
        op,
        1,  # Ethernet
        6,
        0,
        xid,
        0,
        0x8000,  # broadcast: the answer goes to every port, as a client without an address asks
        bytes(4),
        yiaddr,
        bytes(4),
        bytes(4),
        mac,
        b"",
        b"",
    )
    return fixed + DHCP_MAGIC + options + b"\xff"


def _option(code: int, value: bytes) -> bytes:
    return bytes([code, len(value)]) + value


def dhcp_frames(endpoint: FakeEndpoint, server_ip: bytes) -> tuple[bytes, bytes]:
    """The endpoint's DISCOVER (from its MAC, broadcast) and the server's ACK granting it its
    address (yiaddr), which is what teaches the appliance MAC -> IP."""
    xid = 0x53540000 | (endpoint.number & 0xFFFF)
    hostname = f"storm-{endpoint.number:06d}".encode()
    discover = _bootp(
        1,
        xid,
        endpoint.mac,
        bytes(4),
        _option(53, bytes([DHCP_DISCOVER])) + _option(12, hostname) + _option(55, PARAMETER_LIST),
    )
    ack = _bootp(
        2,
        xid,
        endpoint.mac,
        ipaddress.IPv4Address(endpoint.ip).packed,
        _option(53, bytes([DHCP_ACK]))
        + _option(54, server_ip)
        + _option(51, LEASE_SECONDS.to_bytes(4, "big"))
        + _option(1, bytes([255, 255, 192, 0])),
    )
    return (
        _udp_frame(endpoint.mac, bytes(4), BROADCAST_IP, 68, 67, discover),
        _udp_frame(SERVER_MAC, server_ip, BROADCAST_IP, 67, 68, ack),
    )


def packet_socket_in(namespace: Path, ifname: str) -> socket.socket:
    """An AF_PACKET socket bound to `ifname` of the network namespace at `namespace` (a
    /run/netns file): this thread enters it to create the socket, then comes back. Protocol
    0: it only sends, and receives nothing."""
    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    there = os.open(namespace, os.O_RDONLY)
    try:
        if libc.setns(there, CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"setns into {namespace}: {os.strerror(error)}")
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            sock.bind((ifname, 0))
        finally:
            if libc.setns(home, CLONE_NEWNET) != 0:
                # Staying in the wrong namespace would send everything else astray.
                os.write(2, f"setns back failed: {os.strerror(ctypes.get_errno())}\n".encode())
                os._exit(70)
    finally:
        os.close(there)
        os.close(home)
    return sock


# --- HTTPS with h11 ---------------------------------------------------------------------------


@dataclass(slots=True)
class Page:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        return next((value for key, value in self.headers if key == name), None)


class Browser:
    """One keep-alive HTTPS connection to the portal with its cookies, as a browser has."""

    def __init__(self, stream: trio.SSLStream[trio.SocketStream], host: str) -> None:
        self._stream = stream
        self._host = host
        self._http = h11.Connection(h11.CLIENT)
        self.cookies: dict[str, str] = {}

    async def request(
        self, method: str, target: str, body: bytes = b"", content_type: str = ""
    ) -> Page:
        headers = [("host", self._host), ("user-agent", USER_AGENT), ("accept", "text/html")]
        if self.cookies:
            headers.append(("cookie", "; ".join(f"{k}={v}" for k, v in self.cookies.items())))
        if body:
            headers += [("content-type", content_type), ("content-length", str(len(body)))]
        out = self._http.send(h11.Request(method=method, target=target, headers=headers))
        if body:
            out += self._http.send(h11.Data(data=body))
        out += self._http.send(h11.EndOfMessage())
        await self._stream.send_all(out)
        response: h11.Response | None = None
        chunks: list[bytes] = []
        while True:
            event = self._http.next_event()
            if event is h11.NEED_DATA:
                self._http.receive_data(bytes(await self._stream.receive_some(RECEIVE_SIZE)))
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise StepFailed(f"the portal closed the connection during {method} {target}")
        assert response is not None
        page = Page(response.status_code, list(response.headers), b"".join(chunks))
        for key, value in page.headers:
            if key == b"set-cookie":
                name, _, rest = value.decode().partition("=")
                self.cookies[name] = rest.split(";", 1)[0]
        self._http.start_next_cycle()
        return page


# --- one endpoint -----------------------------------------------------------------------------


@dataclass(slots=True)
class Timeline:
    """When each step of one endpoint's admission ended (time.monotonic())."""

    dhcp: float
    detected: float = 0.0
    logged_in: float = 0.0
    posture: float = 0.0
    applied: float | None = None  # from the kernel, via the monitor
    detection_tries: int = 0


@dataclass(frozen=True, slots=True)
class Plan:
    portal_ip: str
    server_name: str
    https_port: int
    pt_tls_port: int
    context: ssl.SSLContext
    realm: str
    password: str
    components: dict[Component, tuple[PaAttribute, ...]]
    answer: HeldAttributes
    server_ip: bytes


def posture_plan(packages: int) -> tuple[dict[Component, tuple[PaAttribute, ...]], HeldAttributes]:
    """What every endpoint reports: Debian 12 (the OS component's first message), its
    firewall on (the firewall component), and `packages` packages held for the OS IMV."""
    firewall = vendor.Firewall("nftables", (vendor.FirewallProfile("default", True),))
    components: dict[Component, tuple[PaAttribute, ...]] = {
        OS: os_attributes(SYNTHETIC_OS["debian"], forwarding=ForwardingState.DISABLED),
        (IETF_PEN, int(ComponentSubtype.FIREWALL)): (firewall,),
    }
    # Encoded once: each session copies the same ~18 KB instead of encoding 700 packages.
    return components, HeldAttributes({OS: [pre_encoded(synthetic_packages(packages))]})


async def tls_from(plan: Plan, source_ip: str, port: int) -> trio.SSLStream[trio.SocketStream]:
    tcp = await trio.open_tcp_stream(plan.portal_ip, port, local_address=source_ip)
    stream = trio.SSLStream(tcp, plan.context, server_hostname=plan.server_name)
    try:
        await stream.do_handshake()
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return stream


async def sign_in(plan: Plan, endpoint: FakeEndpoint, line: Timeline) -> None:
    """GET /login until the page names this MAC (the appliance has learned the endpoint),
    then POST the form; an admitted sign-in is a 303 to /status."""
    stream = await tls_from(plan, endpoint.ip, plan.https_port)
    try:
        browser = Browser(stream, plan.server_name)
        while True:
            line.detection_tries += 1
            page = await browser.request("GET", "/login")
            if page.status != 200:
                raise StepFailed(f"GET /login: {page.status}")
            device = DEVICE.search(page.body)
            if device and device[1].decode() == endpoint.mac_text:
                break
            if device:
                raise StepFailed(f"the portal takes {endpoint.ip} for {device[1].decode()}")
            await trio.sleep(DETECTION_POLL)
        line.detected = time.monotonic()
        csrf = CSRF.search(page.body)
        if csrf is None:
            raise StepFailed("GET /login: no csrf field in the form")
        form = urlencode(
            {
                "csrf": csrf[1].decode(),
                "next": "",
                "realm": plan.realm,
                "username": endpoint.user,
                "password": plan.password,
            }
        ).encode()
        page = await browser.request("POST", "/login", form, "application/x-www-form-urlencoded")
        if page.status != 303 or page.header(b"location") != b"/status":
            raise StepFailed(f"POST /login: {page.status} {page.body[:120]!r}")
        line.logged_in = time.monotonic()
    finally:
        await trio.aclose_forcefully(stream)


async def report(plan: Plan, endpoint: FakeEndpoint, line: Timeline) -> None:
    stream = await tls_from(plan, endpoint.ip, plan.pt_tls_port)
    try:
        outcome = await report_posture(stream, plan.components, answer=plan.answer)
    finally:
        await trio.aclose_forcefully(stream)
    if outcome.result != AssessmentResult.COMPLIANT:
        raise StepFailed(f"posture: result {int(outcome.result)}, reasons {outcome.reasons}")
    line.posture = time.monotonic()


# --- the kernel's view ------------------------------------------------------------------------

# linux/netlink.h, linux/netfilter/nfnetlink.h, linux/netfilter/nf_tables.h
NETLINK_NETFILTER = 12
NFNLGRP_NFTABLES = 7
SO_RCVBUFFORCE = 33
MONITOR_BUFFER = 64 * 1024 * 1024  # a storm's notifications, should we fall behind
NEWSETELEM = (10 << 8) | 12  # NFNL_SUBSYS_NFTABLES, NFT_MSG_NEWSETELEM
NFTA_SET_ELEM_LIST_SET = 2
NFTA_SET_ELEM_LIST_ELEMENTS = 3
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED and NLA_F_NET_BYTEORDER
NLMSG_HEADER = struct.Struct("=IHHII")
NLA_HEADER = struct.Struct("=HH")
NFGENMSG_SIZE = 4


def _attributes(data: bytes, start: int, stop: int) -> dict[int, bytes]:
    found = {}
    while start + NLA_HEADER.size <= stop:
        length, kind = NLA_HEADER.unpack_from(data, start)
        if length < NLA_HEADER.size:
            break
        found.setdefault(kind & NLA_TYPE_MASK, data[start + NLA_HEADER.size : start + length])
        start += (length + 3) & ~3
    return found


def _element_keys(elements: bytes) -> list[bytes]:
    """LIST_ELEM { KEY { DATA_VALUE value } } ... -> the values."""
    keys = []
    at = 0
    while at + NLA_HEADER.size <= len(elements):
        length, _kind = NLA_HEADER.unpack_from(elements, at)
        if length < NLA_HEADER.size:
            break
        element = _attributes(elements, at + NLA_HEADER.size, at + length)
        key = _attributes(element.get(1, b""), 0, len(element.get(1, b"")))
        if 1 in key:
            keys.append(key[1])
        at += (length + 3) & ~3
    return keys


def added_elements(datagram: bytes) -> list[tuple[str, bytes]]:
    """(set name, element key) of each element a NEWSETELEM notification adds."""
    added = []
    at = 0
    while at + NLMSG_HEADER.size <= len(datagram):
        length, kind, _flags, _seq, _pid = NLMSG_HEADER.unpack_from(datagram, at)
        if length < NLMSG_HEADER.size:
            break
        if kind == NEWSETELEM:
            body = at + NLMSG_HEADER.size + NFGENMSG_SIZE
            attributes = _attributes(datagram, body, at + length)
            name = attributes.get(NFTA_SET_ELEM_LIST_SET, b"").rstrip(b"\0").decode()
            for key in _element_keys(attributes.get(NFTA_SET_ELEM_LIST_ELEMENTS, b"")):
                added.append((name, key))
        at += (length + 3) & ~3
    return added


async def watch_sets(
    role_set: str, seen: dict[str, float], counts: collections.Counter[str], ready: trio.Event
) -> None:
    """Record when each MAC enters `role_set`, as the kernel announces it to the nftables
    multicast group (what `nft monitor` hears, with a buffer a storm cannot overflow)."""
    sock = socket.socket(
        socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK, NETLINK_NETFILTER
    )
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, MONITOR_BUFFER)
        sock.bind((0, 1 << (NFNLGRP_NFTABLES - 1)))
        ready.set()
        while True:
            await trio.lowlevel.wait_readable(sock)
            while True:
                try:
                    datagram = sock.recv(RECEIVE_SIZE)
                except BlockingIOError:
                    break
                except OSError as exc:  # ENOBUFS: notifications were lost
                    counts[f"lost: {exc.strerror}"] += 1
                    continue
                now = time.monotonic()
                counts["datagrams"] += 1
                for name, key in added_elements(datagram):
                    counts["added"] += 1
                    if name == role_set and len(key) == 6:
                        seen.setdefault(key.hex(":"), now)
    finally:
        sock.close()


# --- the run ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Run:
    timelines: dict[str, Timeline] = field(default_factory=dict)  # by MAC
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    started: int = 0
    finished: int = 0


async def storm(args: argparse.Namespace, plan: Plan, sock: socket.socket) -> tuple[Run, Any]:
    run = Run()
    applied: dict[str, float] = {}
    monitor_counts: collections.Counter[str] = collections.Counter()
    first_ip = ipaddress.IPv4Address(args.first_ip)
    max_errors = max(20, args.endpoints // 10)
    async with trio.open_nursery() as outer:
        ready = trio.Event()
        outer.start_soon(watch_sets, args.role_set, applied, monitor_counts, ready)
        await ready.wait()
        began = time.monotonic()
        deadline = began + args.seconds

        async def worker() -> None:
            while (
                run.started < args.endpoints
                and time.monotonic() < deadline
                and sum(run.errors.values()) < max_errors
            ):
                endpoint = fake_endpoint(args.first + run.started, first_ip, args.user_prefix)
                run.started += 1
                line = Timeline(time.monotonic())
                run.timelines[endpoint.mac_text] = line
                try:
                    for frame in dhcp_frames(endpoint, plan.server_ip):
                        sock.send(frame)
                    with trio.fail_after(ENDPOINT_TIMEOUT):
                        await sign_in(plan, endpoint, line)
                        await report(plan, endpoint, line)
                    run.finished += 1
                except Exception as exc:
                    text = f"{type(exc).__name__}: {exc}"[:200]
                    run.errors[text] += 1
                    del run.timelines[endpoint.mac_text]

        async with trio.open_nursery() as workers:
            for _ in range(args.concurrency):
                workers.start_soon(worker)
        # The last roles are being applied: wait for them, within bounds.
        with trio.move_on_after(SETTLE_SECONDS):
            while any(mac not in applied for mac in run.timelines):
                await trio.sleep(0.05)
        outer.cancel_scope.cancel()
    for mac, line in run.timelines.items():
        line.applied = applied.get(mac)
    return run, {"began": began, "monitor": dict(monitor_counts)}


def thread_cpu_seconds(pid: int, tid: int) -> float:
    """User and system time of one thread, from /proc (the fields of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summary(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "p50_ms": round(percentile(values, 0.50) * 1000, 1),
        "p99_ms": round(percentile(values, 0.99) * 1000, 1),
        "max_ms": round(max(values) * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint-netns", type=Path, required=True, help="/run/netns/NAME")
    parser.add_argument("--interface", default="eth0")
    parser.add_argument("--portal-ip", required=True)
    parser.add_argument("--server-name", required=True)
    parser.add_argument("--https-port", type=int, default=443)
    parser.add_argument("--pt-tls-port", type=int, default=271)
    parser.add_argument("--ca", type=Path, required=True)
    parser.add_argument("--first-ip", required=True)
    parser.add_argument("--user-prefix", required=True)
    parser.add_argument("--realm", required=True)
    parser.add_argument("--password-file", type=Path, required=True)
    parser.add_argument("--role-set", default="role_full_mac")
    parser.add_argument("--endpoints", type=int, default=1000)
    parser.add_argument("--first", type=int, default=0, help="the first endpoint's number")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--packages", type=int, default=700)
    parser.add_argument("--goal-count", type=int, default=1000, help="when this many were in")
    parser.add_argument("--daemon-pid", type=int, required=True)
    parser.add_argument("--enforcer-pid", type=int, required=True)
    args = parser.parse_args()

    sock = packet_socket_in(args.endpoint_netns, args.interface)
    context = ssl.create_default_context(cafile=str(args.ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    components, answer = posture_plan(args.packages)
    plan = Plan(
        portal_ip=args.portal_ip,
        server_name=args.server_name,
        https_port=args.https_port,
        pt_tls_port=args.pt_tls_port,
        context=context,
        realm=args.realm,
        password=args.password_file.read_text().strip(),
        components=components,
        answer=answer,
        server_ip=ipaddress.IPv4Address(args.portal_ip).packed,
    )

    def cpu_now() -> dict[str, float]:
        return {
            "daemon": process_cpu_seconds(args.daemon_pid),
            # netaccessd's main thread is its event loop; the rest ran in worker threads
            # (the scrypt checks, store writes), so the loop's share shows apart.
            "daemon_event_loop": thread_cpu_seconds(args.daemon_pid, args.daemon_pid),
            "enforcer": process_cpu_seconds(args.enforcer_pid),
            "load": time.process_time(),
        }

    cpu_before = cpu_now()
    cores_before = core_ticks()
    run, extra = trio.run(storm, args, plan, sock)
    cores_after = core_ticks()
    cpu = {name: value - cpu_before[name] for name, value in cpu_now().items()}
    cpu["daemon_worker_threads"] = cpu["daemon"] - cpu["daemon_event_loop"]
    sock.close()

    lines = list(run.timelines.values())
    admitted = [line for line in lines if line.applied is not None]
    last = max((line.applied for line in admitted if line.applied is not None), default=None)
    wall = (last - extra["began"]) if last is not None else None
    ends = sorted(line.applied - extra["began"] for line in admitted)  # type: ignore[operator]
    busy, steal = {}, {}
    for cpu_number, (b1, s1, t1) in cores_after.items():
        b0, s0, t0 = cores_before.get(cpu_number, (b1, s1, t1))
        total = max(t1 - t0, 1)
        busy[str(cpu_number)] = round((b1 - b0) / total, 3)
        steal[str(cpu_number)] = round((s1 - s0) / total, 3)
    result = {
        "endpoints_started": run.started,
        "endpoints_through_posture": run.finished,
        "endpoints_admitted": len(admitted),
        "admitted_macs": sorted(
            mac for mac, line in run.timelines.items() if line.applied is not None
        ),
        "wall_s": None if wall is None else round(wall, 3),
        "admitted_per_s": round(len(admitted) / wall, 2) if wall else None,
        "seconds_to_goal_count": round(ends[args.goal_count - 1], 3)
        if len(ends) >= args.goal_count
        else None,
        "time_to_admission": summary([line.applied - line.dhcp for line in admitted]),  # type: ignore[operator]
        "stages": {
            "detection": summary([line.detected - line.dhcp for line in admitted]),
            "login": summary([line.logged_in - line.detected for line in admitted]),
            "posture": summary([line.posture - line.logged_in for line in admitted]),
            "role_applied": summary([line.applied - line.posture for line in admitted]),  # type: ignore[operator]
        },
        "detection_polls_per_endpoint": round(
            sum(line.detection_tries for line in lines) / len(lines), 2
        )
        if lines
        else None,
        "errors": sum(run.errors.values()),
        "error_samples": [text for text, _ in run.errors.most_common(ERROR_SAMPLES)],
        "cpu_s": {name: round(value, 2) for name, value in cpu.items()},
        "cpu_ms_per_admission": {
            name: round(value / len(admitted) * 1000, 2) if admitted else None
            for name, value in cpu.items()
        },
        "core_busy": busy,
        "core_steal": steal,
        "monitor": extra["monitor"],
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
