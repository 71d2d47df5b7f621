"""netaccess.enforce against the real kernel: client ns -- router ns (the ruleset) -- server ns,
with real TCP through the router; sets, conntrack flush, reconciliation and feature probes."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import ipaddress
import os
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from pyroute2 import Conntrack
from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple

from netaccess.enforce import (
    ConntrackFlusher,
    FlowIndex,
    Nftables,
    RoleChange,
    RoleMembers,
    RoleSets,
    RulesetSpec,
    detect,
    render_ruleset,
)
from netaccess.enforce.conntrack import REQUESTS_PER_SEND
from netaccess.enforce.errors import EnforcementError
from netaccess.io.beside import worker_thread
from netaccess.policy.roles import QUARANTINE, REMEDIATION, Destination, Role, builtin_role

pytestmark = pytest.mark.integration

CLIENT_MAC = "02:00:5e:12:00:0a"
CLIENT_V4, ROUTER_ACCESS_V4 = "198.18.0.10", "198.18.0.1"
SERVER_V4, ROUTER_UPSTREAM_V4 = "198.19.0.10", "198.19.0.1"
CLIENT_V6, ROUTER_ACCESS_V6 = "2001:db8:18::10", "2001:db8:18::1"
SERVER_V6, ROUTER_UPSTREAM_V6 = "2001:db8:19::10", "2001:db8:19::1"
STREAM_PORT = 9000
FULL = Role(
    "full",
    vlan=10,
    captive=False,
    allow=(
        Destination(ipaddress.ip_network("0.0.0.0/0")),
        Destination(ipaddress.ip_network("::/0")),
    ),
)
ROLES = (builtin_role(QUARANTINE), builtin_role(REMEDIATION), FULL)


def ruleset(members: dict[str, RoleMembers] | None = None) -> str:
    return render_ruleset(
        RulesetSpec(
            roles=ROLES,
            access_interfaces=("acc0",),
            upstream_interfaces=("up0",),
            members=members or {},
        )
    )


def promotion() -> RoleChange:
    return RoleChange(CLIENT_MAC, (CLIENT_V4,), (CLIENT_V6,), None, "full")


def demotion() -> RoleChange:
    return RoleChange(CLIENT_MAC, (CLIENT_V4,), (CLIENT_V6,), "full", QUARANTINE)


# -- namespaces and sockets in them -------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


@contextlib.contextmanager
def inside(namespace: str) -> Iterator[None]:
    """This thread in `namespace`; sockets made here stay there after the block."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        assert _libc.setns(target, CLONE_NEWNET) == 0, os.strerror(ctypes.get_errno())
        yield
    finally:
        assert _libc.setns(own, CLONE_NEWNET) == 0, os.strerror(ctypes.get_errno())
        os.close(own)
        os.close(target)


def ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, text=True, timeout=10)


def sysctl(namespace: str, setting: str) -> None:
    subprocess.run(
        ["ip", "netns", "exec", namespace, "sysctl", "-qw", setting],
        check=True,
        capture_output=True,
        timeout=10,
    )


def nft_cli(namespace: str, *argv: str) -> str:
    done = subprocess.run(
        ["ip", "netns", "exec", namespace, "nft", *argv],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done.stdout


def connect(namespace: str, host: str, port: int, timeout: float = 2.0) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with inside(namespace):
        sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def http_get(namespace: str, host: str) -> str:
    with connect(namespace, host, 80) as sock:
        sock.sendall(f"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    return data.decode().split("\r\n\r\n", 1)[1]


@dataclass
class Servers:
    """Listeners run by threads: answer HTTP with a fixed body, or stream bytes forever."""

    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    sockets: list[socket.socket] = field(default_factory=list)

    def http(self, namespace: str, port: int, body: str) -> None:
        self._listen(namespace, port, lambda conn: self._answer(conn, body))

    def stream(self, namespace: str, port: int) -> None:
        self._listen(namespace, port, self._stream)

    def close(self) -> None:
        self.stop.set()
        for sock in self.sockets:
            sock.close()
        for thread in self.threads:
            thread.join(timeout=5)

    def _listen(self, namespace: str, port: int, handle: object) -> None:
        with inside(namespace):
            listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("::", port))
        listener.listen(16)
        listener.settimeout(0.2)
        self.sockets.append(listener)

        def serve() -> None:
            while not self.stop.is_set():
                try:
                    conn, _ = listener.accept()
                except (TimeoutError, OSError):
                    continue
                self.sockets.append(conn)
                worker = threading.Thread(target=handle, args=(conn,), daemon=True)  # type: ignore[arg-type]
                worker.start()
                self.threads.append(worker)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _answer(self, conn: socket.socket, body: str) -> None:
        with conn:
            conn.settimeout(2)
            with contextlib.suppress(OSError):
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    request += chunk
                conn.sendall(f"HTTP/1.0 200 OK\r\n\r\n{body}".encode())

    def _stream(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.settimeout(0.5)
            while not self.stop.is_set():
                with contextlib.suppress(TimeoutError):  # a full window: no more ACKs
                    conn.send(b"x" * 64)
                time.sleep(0.02)


@dataclass
class Topology:
    client: str
    router: str
    server: str
    nft: Nftables
    sets: RoleSets
    flusher: ConntrackFlusher
    servers: Servers


@pytest.fixture
def net() -> Iterator[Topology]:
    prefix = f"na-{secrets.token_hex(3)}-"
    client, router, server = prefix + "cl", prefix + "rt", prefix + "sv"
    made: list[str] = []
    servers = Servers()
    closers: list[object] = []
    try:
        for namespace in (client, router, server):
            ip("netns", "add", namespace)
            made.append(namespace)
            ip("-n", namespace, "link", "set", "lo", "up")
        ip("-n", router, "link", "add", "acc0", "type", "veth", "peer", "eth0", "netns", client)
        ip("-n", router, "link", "add", "up0", "type", "veth", "peer", "eth0", "netns", server)
        ip("-n", client, "link", "set", "eth0", "address", CLIENT_MAC)
        for namespace, ifname, v4, v6 in (
            (client, "eth0", CLIENT_V4, CLIENT_V6),
            (router, "acc0", ROUTER_ACCESS_V4, ROUTER_ACCESS_V6),
            (router, "up0", ROUTER_UPSTREAM_V4, ROUTER_UPSTREAM_V6),
            (server, "eth0", SERVER_V4, SERVER_V6),
        ):
            # No DAD: a tentative link-local address makes the router solicit neighbours
            # from ::, which its peer takes for a DAD probe, for the first second or two.
            sysctl(namespace, f"net.ipv6.conf.{ifname}.accept_dad=0")
            ip("-n", namespace, "addr", "add", f"{v4}/24", "dev", ifname)
            ip("-n", namespace, "addr", "add", f"{v6}/64", "dev", ifname, "nodad")
            ip("-n", namespace, "link", "set", ifname, "up")
        for namespace, gateway_v4, gateway_v6 in (
            (client, ROUTER_ACCESS_V4, ROUTER_ACCESS_V6),
            (server, ROUTER_UPSTREAM_V4, ROUTER_UPSTREAM_V6),
        ):
            ip("-n", namespace, "route", "add", "default", "via", gateway_v4)
            ip("-n", namespace, "-6", "route", "add", "default", "via", gateway_v6)
        # As the appliance sets it: event data on every flow lets a flush run in the kernel
        # and still count what it deleted.
        sysctl(router, "net.netfilter.nf_conntrack_events=1")
        sysctl(router, "net.ipv4.ip_forward=1")
        sysctl(router, "net.ipv6.conf.all.forwarding=1")
        servers.http(router, 80, "portal")
        servers.http(server, 80, "upstream")
        servers.stream(server, STREAM_PORT)
        nft = Nftables(router)
        closers.append(nft)
        flusher = ConntrackFlusher(router)
        closers.append(flusher)
        nft.load_ruleset(ruleset())
        yield Topology(client, router, server, nft, RoleSets(nft), flusher, servers)
    finally:
        servers.close()
        for closer in closers:
            closer.close()  # type: ignore[attr-defined]
        for namespace in made:
            subprocess.run(["ip", "netns", "delete", namespace], check=False, capture_output=True)


@dataclass
class Indexed:
    """A flusher of the router's conntrack that looks flows up in a flow index."""

    index: FlowIndex
    flusher: ConntrackFlusher


def indexed_flusher(net: Topology, **index_options: int) -> Iterator[Indexed]:
    index = FlowIndex(net.router, **index_options)
    flusher = ConntrackFlusher(net.router, index=index)
    try:
        yield Indexed(index, flusher)
    finally:
        flusher.close()
        index.close()


@pytest.fixture
def indexed(net: Topology) -> Iterator[Indexed]:
    yield from indexed_flusher(net)


@pytest.fixture
def overflowing(net: Topology) -> Iterator[Indexed]:
    # The smallest receive buffer the kernel allows: a few events fill it.
    yield from indexed_flusher(net, receive_buffer=1)


def add_udp_entry(
    namespace: str, address: str, sport: int = 5000, reply_to: str | None = None
) -> None:
    """A conntrack entry address:sport -> the server's DNS port, made over ctnetlink; its
    replies go to `reply_to` (as if masqueraded) or to `address`."""
    add_udp_entries(namespace, [address], sport, reply_to)


def add_udp_entries(
    namespace: str, addresses: list[str], sport: int = 5000, reply_to: str | None = None
) -> None:
    family = socket.AF_INET6 if ":" in addresses[0] else socket.AF_INET
    server = SERVER_V6 if family == socket.AF_INET6 else SERVER_V4
    with Conntrack(netns=namespace, nfgen_family=family) as table:
        for address in addresses:
            table.entry(
                "add",
                timeout=60,
                tuple_orig=NFCTAttrTuple(
                    family=family, saddr=address, daddr=server, proto=17, sport=sport, dport=53
                ),
                tuple_reply=NFCTAttrTuple(
                    family=family,
                    saddr=server,
                    daddr=reply_to or address,
                    proto=17,
                    sport=53,
                    dport=sport,
                ),
            )


def many_addresses(count: int) -> list[str]:
    """`count` IPv4 addresses in the access prefix, clear of the client's and the router's."""
    return [f"198.18.{16 + i // 250}.{1 + i % 250}" for i in range(count)]


def entry_sources(namespace: str) -> set[str]:
    sources = set()
    for family in (socket.AF_INET, socket.AF_INET6):
        with Conntrack(netns=namespace, nfgen_family=family) as table:
            sources |= {str(entry.tuple_orig.saddr) for entry in table.dump_entries()}
    return sources


# -- the ruleset --------------------------------------------------------------------------------


def test_loading_the_same_ruleset_twice_leaves_the_same_table(net: Topology) -> None:
    first = net.nft.run("list table inet netaccess")
    net.nft.load_ruleset(ruleset())
    assert net.nft.run("list table inet netaccess") == first
    assert first.count("chain from_access {") == 1


def test_client_in_no_set_gets_https_refused_at_once(net: Topology) -> None:
    started = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        connect(net.client, SERVER_V4, 443).close()
    assert time.monotonic() - started < 0.5


def test_client_in_no_set_cannot_reach_the_server(net: Topology) -> None:
    started = time.monotonic()
    with pytest.raises(OSError) as refused:
        connect(net.client, SERVER_V4, STREAM_PORT).close()
    assert refused.value.errno in (errno.EHOSTUNREACH, errno.ECONNREFUSED, errno.EACCES)
    assert time.monotonic() - started < 0.5


def test_client_in_no_set_has_its_http_redirected_to_the_portal(net: Topology) -> None:
    assert http_get(net.client, SERVER_V4) == "portal"
    assert http_get(net.client, SERVER_V6) == "portal"


def test_quarantined_client_still_resolves_neighbours_and_reaches_the_portal_over_ipv6(
    net: Topology,
) -> None:
    # No static neighbour entry: this connect needs NS/NA through the input chain.
    assert http_get(net.client, ROUTER_ACCESS_V6) == "portal"


def test_promoted_client_reaches_the_server(net: Topology) -> None:
    net.sets.apply([promotion()])
    assert http_get(net.client, SERVER_V4) == "upstream"
    assert http_get(net.client, SERVER_V6) == "upstream"


def test_promotion_by_mac_alone_opens_both_families(net: Topology) -> None:
    net.sets.apply([RoleChange(CLIENT_MAC, (), (), None, "full")])
    assert http_get(net.client, SERVER_V4) == "upstream"
    assert http_get(net.client, SERVER_V6) == "upstream"


def test_a_neighbour_forging_a_promoted_clients_address_stays_captive(net: Topology) -> None:
    net.sets.apply([RoleChange(CLIENT_MAC, (), (), None, "full")])
    assert http_get(net.client, SERVER_V4) == "upstream"
    # Another machine takes over the address (and answers ARP for it): same IP, new MAC.
    ip("-n", net.client, "link", "set", "eth0", "address", "02:00:5e:12:00:66")
    ip("-n", net.router, "neigh", "flush", "dev", "acc0")
    assert http_get(net.client, SERVER_V4) == "portal"
    with pytest.raises(OSError):
        connect(net.client, SERVER_V4, STREAM_PORT).close()


def test_demotion_with_flush_cuts_an_established_connection_within_a_second(
    net: Topology,
) -> None:
    net.sets.apply([promotion()])
    stream = connect(net.client, SERVER_V4, STREAM_PORT)
    with stream:
        stream.settimeout(1.0)
        assert stream.recv(4096)  # data flows while full
        demoted_at = time.monotonic()
        net.sets.apply([demotion()])
        assert net.flusher.flush(demotion().addresses) >= 1
        # What was in flight may still arrive within the second; after it, nothing.
        with contextlib.suppress(TimeoutError):
            while time.monotonic() - demoted_at < 1.0:
                stream.recv(65536)
        stream.settimeout(1.0)
        with pytest.raises((TimeoutError, ConnectionError)):
            if not stream.recv(65536):
                raise ConnectionError("closed")


def test_one_role_change_applies_with_100k_endpoints_enrolled(net: Topology) -> None:
    count = 100_000
    macs = tuple(
        f"02:01:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}:00" for i in range(count)
    )
    v4 = tuple(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(count))
    net.nft.load_ruleset(ruleset({"full": RoleMembers(macs, v4, ())}))
    assert http_get(net.client, SERVER_V4) == "portal"
    net.sets.apply([promotion()])
    assert http_get(net.client, SERVER_V4) == "upstream"
    full = net.sets.members()["full"]
    assert (len(full.macs), len(full.ipv4)) == (count + 1, count + 1)


# -- sets, reconciliation, conntrack ------------------------------------------------------------


def test_demotion_succeeds_when_an_element_was_deleted_by_hand(net: Topology) -> None:
    net.sets.apply([promotion()])
    nft_cli(
        net.router, "delete", "element", "inet", "netaccess", "role_full_mac", f"{{ {CLIENT_MAC} }}"
    )
    net.sets.apply([demotion()])
    members = net.sets.members()
    assert members["full"] == RoleMembers()
    assert members[QUARANTINE] == RoleMembers((CLIENT_MAC,), (CLIENT_V4,), (CLIENT_V6,))


def test_reconcile_restores_a_hand_deleted_element_and_removes_a_stray_one(net: Topology) -> None:
    net.sets.apply([promotion()])
    desired = {"full": RoleMembers((CLIENT_MAC,), (CLIENT_V4,), (CLIENT_V6,))}
    nft_cli(
        net.router, "delete", "element", "inet", "netaccess", "role_full_mac", f"{{ {CLIENT_MAC} }}"
    )
    nft_cli(net.router, "add", "element", "inet", "netaccess", "role_full_v4", "{ 198.18.0.99 }")
    repairs = net.sets.reconcile(desired)
    assert repairs.restored == {"full": RoleMembers(macs=(CLIENT_MAC,))}
    assert repairs.removed == {"full": RoleMembers(ipv4=("198.18.0.99",))}
    assert net.sets.members()["full"] == desired["full"]
    assert not net.sets.reconcile(desired)


def test_reconcile_empties_roles_the_store_does_not_mention(net: Topology) -> None:
    net.sets.apply([promotion()])
    repairs = net.sets.reconcile({})
    assert repairs.removed == {"full": RoleMembers((CLIENT_MAC,), (CLIENT_V4,), (CLIENT_V6,))}
    assert http_get(net.client, SERVER_V4) == "portal"


def test_flush_deletes_only_the_given_addresses_flows(net: Topology) -> None:
    net.sets.apply([promotion()])
    with connect(net.client, SERVER_V4, STREAM_PORT), connect(net.client, SERVER_V6, STREAM_PORT):
        assert net.flusher.flush(["198.18.0.77", "2001:db8:18::77"]) == 0
        assert net.flusher.flush([CLIENT_V4]) == 1
        assert net.flusher.flush([CLIENT_V6]) == 1


def test_flushing_an_ipv6_address_spares_other_endpoints_flows(net: Topology) -> None:
    # 6.18 matches a kernel-side IPv6 filter inverted; the flusher must not trust it.
    other = "2001:db8:18::77"
    with Conntrack(netns=net.router, nfgen_family=socket.AF_INET6) as table:
        table.entry(
            "add",
            timeout=60,
            tuple_orig=NFCTAttrTuple(
                family=socket.AF_INET6,
                saddr=other,
                daddr=SERVER_V6,
                proto=17,
                sport=5000,
                dport=53,
            ),
            tuple_reply=NFCTAttrTuple(
                family=socket.AF_INET6,
                saddr=SERVER_V6,
                daddr=other,
                proto=17,
                sport=53,
                dport=5000,
            ),
        )
        net.sets.apply([promotion()])
        with connect(net.client, SERVER_V6, STREAM_PORT):
            assert net.flusher.flush([CLIENT_V6]) == 1
        left = {str(entry.tuple_orig.saddr) for entry in table.dump_entries()}
    assert left == {other}


def test_flush_of_a_few_addresses_runs_in_the_kernel(net: Topology) -> None:
    net.sets.apply([promotion()])
    with connect(net.client, SERVER_V4, STREAM_PORT):
        assert net.flusher.flush([CLIENT_V4]) == 1
    assert net.flusher.last_flush_in_kernel


def test_flush_of_many_addresses_takes_one_dump_and_still_finds_the_flows(net: Topology) -> None:
    net.sets.apply([promotion()])
    others = [f"198.18.1.{i}" for i in range(1, 200)]
    with connect(net.client, SERVER_V4, STREAM_PORT), connect(net.client, SERVER_V6, STREAM_PORT):
        # Demoted first: a live stream's next packet would otherwise recreate its entry
        # between the two flushes (it did, now and then).
        net.sets.apply([demotion()])
        assert net.flusher.flush([*others, CLIENT_V4, CLIENT_V6]) == 2
        assert net.flusher.last_flush_in_kernel is False
        assert net.flusher.flush([*others, CLIENT_V4, CLIENT_V6]) == 0


def test_kernel_detect_reports_what_this_kernel_lacks_without_raising() -> None:
    features = detect()
    assert features.nftables and features.conntrack
    # This lab's kernel has neither; wherever one is missing, a note says why.
    assert features.vlan_8021q or any("802.1Q" in note for note in features.notes)
    assert features.bridge_vlan_filtering or any("bridge VLAN" in n for n in features.notes)
    assert features.conntrack_filtered_flush_ipv6 or any("IPv6" in n for n in features.notes)


# -- the flow index -----------------------------------------------------------------------------


def test_flush_deletes_a_flow_opened_after_the_index_started_through_the_index(
    net: Topology, indexed: Indexed
) -> None:
    net.sets.apply([promotion()])
    with connect(net.client, SERVER_V4, STREAM_PORT):
        assert indexed.flusher.flush([CLIENT_V4]) == 1
    assert indexed.flusher.last_flush_by_index


def test_flush_through_the_index_spares_other_endpoints_flows(
    net: Topology, indexed: Indexed
) -> None:
    add_udp_entry(net.router, "198.18.0.77")
    add_udp_entry(net.router, "2001:db8:18::77")
    net.sets.apply([promotion()])
    with connect(net.client, SERVER_V4, STREAM_PORT), connect(net.client, SERVER_V6, STREAM_PORT):
        assert indexed.flusher.flush([CLIENT_V4, CLIENT_V6]) == 2
    assert entry_sources(net.router) == {"198.18.0.77", "2001:db8:18::77"}


def test_the_index_is_seeded_with_the_flows_open_before_it_started(net: Topology) -> None:
    add_udp_entry(net.router, "198.18.0.77")
    with FlowIndex(net.router) as index:
        assert len(index.flows_of("198.18.0.77")) == 1


def test_flush_with_a_stale_index_falls_back_to_the_table_and_deletes_every_flow(
    net: Topology, overflowing: Indexed
) -> None:
    for sport in range(5000, 5100):  # more events than the receive buffer holds
        add_udp_entry(net.router, "198.18.0.77", sport)
    net.sets.apply([promotion()])
    with connect(net.client, SERVER_V4, STREAM_PORT):
        deleted = overflowing.flusher.flush([CLIENT_V4, "198.18.0.77"])
    # 100 UDP entries and the stream's; the kernel filters a flush in two passes (original
    # source, then reply destination), and the server's next segment may recreate the
    # stream's entry between them (server -> client, reply destination the client): then
    # the second pass deletes that one too.
    assert deleted in (101, 102)
    assert not overflowing.flusher.last_flush_by_index
    assert "198.18.0.77" not in entry_sources(net.router)


def test_a_reseeded_index_is_healthy_and_finds_the_flows_again(
    net: Topology, overflowing: Indexed
) -> None:
    for sport in range(5000, 5100):
        add_udp_entry(net.router, "198.18.0.77", sport)
    overflowing.index.drain()
    assert not overflowing.index.healthy
    overflowing.index.reseed()
    assert overflowing.index.healthy
    assert len(overflowing.index.flows_of("198.18.0.77")) == 100


def test_the_index_forgets_a_flow_once_the_kernel_destroys_it(
    net: Topology, indexed: Indexed
) -> None:
    add_udp_entry(net.router, "198.18.0.77")
    indexed.index.drain()
    assert indexed.index.flows_of("198.18.0.77")
    with Conntrack(netns=net.router) as table:
        table.entry("del", tuple_orig=next(iter(table.dump_entries())).tuple_orig)
    indexed.index.drain()
    assert (indexed.index.flows_of("198.18.0.77"), len(indexed.index)) == (frozenset(), 0)


def test_the_index_forgets_the_flows_a_flush_deleted(net: Topology, indexed: Indexed) -> None:
    # A quiet UDP entry: a live TCP stream may have its entry recreated by its next packet.
    add_udp_entry(net.router, "198.18.0.77")
    assert indexed.flusher.flush(["198.18.0.77"]) == 1
    indexed.index.drain()
    assert (indexed.index.flows_of("198.18.0.77"), len(indexed.index)) == (frozenset(), 0)


def test_after_a_flush_the_index_still_hears_other_flows_end(
    net: Topology, indexed: Indexed
) -> None:
    # The flush leaves the destroy events' group while it deletes; it must rejoin it.
    add_udp_entry(net.router, "198.18.0.77")
    add_udp_entry(net.router, "198.18.0.78")
    assert indexed.flusher.flush(["198.18.0.77"]) == 1
    with Conntrack(netns=net.router) as table:
        table.entry("del", tuple_orig=next(iter(table.dump_entries())).tuple_orig)
    indexed.index.drain()
    assert indexed.index.healthy
    assert (indexed.index.flows_of("198.18.0.78"), len(indexed.index)) == (frozenset(), 0)


def test_a_flush_through_the_index_deletes_more_flows_than_one_send_carries(
    net: Topology, indexed: Indexed
) -> None:
    # Deletes go out REQUESTS_PER_SEND to a datagram; every datagram must delete its share.
    addresses = many_addresses(2 * REQUESTS_PER_SEND + 100)
    add_udp_entries(net.router, addresses)
    assert indexed.flusher.flush(addresses) == len(addresses)
    assert indexed.flusher.last_flush_by_index
    assert entry_sources(net.router) == set()


def test_a_masqueraded_flow_flushed_under_its_source_is_swept_from_the_shared_address(
    net: Topology, indexed: Indexed
) -> None:
    # Both reply to the router's upstream address, as masqueraded flows do.
    add_udp_entry(net.router, "198.18.0.77", reply_to=ROUTER_UPSTREAM_V4)
    add_udp_entry(net.router, "198.18.0.78", 5001, reply_to=ROUTER_UPSTREAM_V4)
    assert indexed.flusher.flush(["198.18.0.77"]) == 1
    assert len(indexed.index.flows_of(ROUTER_UPSTREAM_V4)) == 1  # the stale one is not listed
    assert indexed.index.stale == 1
    assert indexed.index.compact() == 1
    assert indexed.index.stale == 0
    assert indexed.flusher.flush([ROUTER_UPSTREAM_V4]) == 1
    assert entry_sources(net.router) == set()


def test_a_burst_commits_beside_its_flush_and_a_flow_opened_meanwhile_dies_too(
    net: Topology, indexed: Indexed
) -> None:
    addresses = many_addresses(200)
    add_udp_entries(net.router, addresses)
    beside, stop = worker_thread()

    def update() -> None:
        net.sets.apply([promotion()])
        # Opened under the old role while the transaction commits, after the index was read.
        add_udp_entry(net.router, addresses[0], sport=6000)

    try:
        assert indexed.flusher.flush_alongside(addresses, update, beside) == 201
    finally:
        stop()
    assert entry_sources(net.router) == set()
    assert http_get(net.client, SERVER_V4) == "upstream"


def test_a_burst_whose_transaction_fails_raises_its_error(net: Topology, indexed: Indexed) -> None:
    add_udp_entry(net.router, "198.18.0.77")
    beside, stop = worker_thread()

    def update() -> None:
        net.sets.apply([RoleChange(CLIENT_MAC, (), (), None, "nosuchrole")])

    try:
        with pytest.raises(EnforcementError, match="nosuchrole"):
            indexed.flusher.flush_alongside(["198.18.0.77"], update, beside)
    finally:
        stop()
    assert http_get(net.client, SERVER_V4) == "portal"  # nothing was promoted
