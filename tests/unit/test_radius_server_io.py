"""netaccess.io.radius.RadiusServer's decisions, through its synchronous per-datagram entry
points: MAB VLANs by role, clients and secrets, duplicates, accounting, and garbage from a
known client never raising; and one receive thread on a loopback socket (overload, stop)."""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from netaccess.config import DEFAULT_CONFIG_TEXT, load_config_text
from netaccess.config.radius_dictionary import standard_dictionary
from netaccess.io import mmsg
from netaccess.io import radius as radius_io
from netaccess.io.inventory import Inventory
from netaccess.io.radius import RadiusServer
from netaccess.policy.endpoint import EventKind
from netaccess.policy.radius_sessions import Session
from netaccess.proto.radius import auth
from netaccess.proto.radius.dictionary import named
from netaccess.proto.radius.packet import MESSAGE_AUTHENTICATOR, Code, decode_packet
from netaccess.store import Store, StoreError

SECRET = b"unit-secret"
NAS = ("192.0.2.10", 40000)
D = standard_dictionary()
CONFIG = load_config_text(
    DEFAULT_CONFIG_TEXT
    + '[[radius.clients]]\nname = "sw"\naddress = "192.0.2.10"\nsecret = "sw"\n',
    "t.toml",
)


@pytest.fixture
def store() -> Iterator[Store]:
    with Store.open_memory() as opened:
        yield opened


def server_with(store: Store, secrets: dict[str, bytes]) -> RadiusServer:
    return RadiusServer(CONFIG, Inventory(store, []), D, secrets.get)


def mab(mac: str, identifier: int = 7, *, ma: bool = True, secret: bytes = SECRET) -> bytes:
    authenticator = os.urandom(16)
    attributes = [
        *D.encode("User-Name", mac),
        *D.encode("User-Password", mac, secret=secret, authenticator=authenticator),
        *D.encode("Service-Type", "Call-Check"),
    ]
    return auth.encode_request(
        Code.ACCESS_REQUEST,
        identifier,
        attributes,
        secret,
        authenticator=authenticator,
        message_authenticator=ma,
    )


def reply_of(request: bytes, reply: bytes | None) -> dict[str, list[object]]:
    assert reply is not None
    packet = decode_packet(reply)
    auth.verify_reply(reply, packet, request[4:20], SECRET)
    assert packet.attributes[0][0] == MESSAGE_AUTHENTICATOR
    return {"code": [packet.code], **named(D.decode(packet))}


def test_a_new_mac_is_quarantined_and_a_role_change_moves_its_vlan(store: Store) -> None:
    server = server_with(store, {"sw": SECRET})
    request = mab("AA-BB-CC-00-00-01")
    first = reply_of(request, server.handle_auth(request, NAS, 100.0))
    assert first["code"] == [Code.ACCESS_ACCEPT]
    assert first["Tunnel-Private-Group-Id"] == ["999"]
    endpoint = server.inventory.get("aa:bb:cc:00:00:01")
    assert endpoint is not None and endpoint.role == "quarantine"
    server.inventory.set_role("aa:bb:cc:00:00:01", "full", at=101.0, reason="t", by="test")
    again = mab("aabb.cc00.0001")  # another spelling of the same MAC
    full = reply_of(again, server.handle_auth(again, ("::ffff:192.0.2.10", 40001), 102.0))
    assert full["Tunnel-Private-Group-Id"] == ["100"]
    assert full["Session-Timeout"] == [3600]
    assert full["Termination-Action"] == [1]


def test_unknown_sources_and_missing_secrets_are_dropped_and_counted(store: Store) -> None:
    secrets: dict[str, bytes] = {}
    server = server_with(store, secrets)
    request = mab("aabbcc000002")
    assert server.handle_auth(request, ("192.0.2.11", 1), 1.0) is None
    assert server.counters["dropped.unknown-client"] == 1
    assert server.handle_auth(request, NAS, 1.0) is None
    assert server.counters["dropped.no-secret"] == 1
    secrets["sw"] = SECRET
    server.secrets_changed()
    assert reply_of(request, server.handle_auth(request, NAS, 2.0))["code"] == [2]
    assert len(server.inventory) == 1


def test_a_retransmission_gets_the_same_reply_without_new_work(store: Store) -> None:
    server = server_with(store, {"sw": SECRET})
    request = mab("aabbcc000003")
    first = server.handle_auth(request, NAS, 10.0)
    assert server.handle_auth(request, NAS, 11.0) == first
    assert server.counters["duplicates"] == 1
    assert server.per_client["sw"]["accepted.mab"] == 1
    later = server.handle_auth(request, NAS, 10.0 + CONFIG.radius.duplicate_window + 1)
    assert later is not None and server.per_client["sw"]["accepted.mab"] == 2


def test_blastradius_rules_and_wrong_secrets(store: Store) -> None:
    server = server_with(store, {"sw": SECRET})
    assert server.handle_auth(mab("aabbcc000004", ma=False), NAS, 1.0) is None
    assert server.counters["dropped.missing-message-authenticator"] == 1
    assert server.handle_auth(mab("aabbcc000004", 8, secret=b"other"), NAS, 1.0) is None
    assert server.counters["dropped.bad-message-authenticator"] == 1
    assert len(server.inventory) == 0


def test_non_mab_requests_are_rejected_and_status_server_answered(store: Store) -> None:
    server = server_with(store, {"sw": SECRET})
    authenticator = os.urandom(16)
    pap = auth.encode_request(
        Code.ACCESS_REQUEST,
        9,
        [
            *D.encode("User-Name", "alice"),
            *D.encode("User-Password", "pw", secret=SECRET, authenticator=authenticator),
        ],
        SECRET,
        authenticator=authenticator,
    )
    assert reply_of(pap, server.handle_auth(pap, NAS, 1.0))["code"] == [Code.ACCESS_REJECT]
    status = auth.encode_request(Code.STATUS_SERVER, 10, [], SECRET)
    assert reply_of(status, server.handle_auth(status, NAS, 1.0))["code"] == [2]


def accounting(status: str, session: str, mac: str, ip: str, secret: bytes = SECRET) -> bytes:
    attributes = [
        *D.encode("Acct-Status-Type", status),
        *D.encode("Acct-Session-Id", session),
        *D.encode("Calling-Station-Id", mac),
        *D.encode("NAS-Port-Id", "Gi1/0/3"),
        *D.encode("Framed-IP-Address", ipaddress.IPv4Address(ip)),
    ]
    return auth.encode_request(
        Code.ACCOUNTING_REQUEST, 11, attributes, secret, message_authenticator=False
    )


def test_accounting_keeps_sessions_and_teaches_the_ip(store: Store) -> None:
    server = server_with(store, {"sw": SECRET})
    start = accounting("Start", "s-1", "AA:BB:CC:00:00:05", "198.18.0.55")
    reply = server.handle_accounting(start, NAS, 5.0)
    assert reply is not None and decode_packet(reply).code == Code.ACCOUNTING_RESPONSE
    (session,) = server.session_list()
    assert (session.nas, session.nas_address, session.mac) == ("sw", NAS[0], "aa:bb:cc:00:00:05")
    endpoint = server.inventory.get("aa:bb:cc:00:00:05")
    assert endpoint is not None and endpoint.ips == ("198.18.0.55",)
    forged = accounting("Stop", "s-1", "AA:BB:CC:00:00:05", "198.18.0.55", secret=b"x")
    assert server.handle_accounting(forged, NAS, 6.0) is None
    assert server.counters["dropped.bad-authenticator"] == 1
    stop = accounting("Stop", "s-1", "AA:BB:CC:00:00:05", "198.18.0.55")
    assert server.handle_accounting(stop, NAS, 7.0) is not None
    assert server.session_list() == []


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300), port=st.integers(1, 65535))
def test_garbage_from_a_client_is_dropped_never_raised(data: bytes, port: int) -> None:
    with Store.open_memory() as opened:
        server = server_with(opened, {"sw": SECRET})
        for handle in (server.handle_auth, server.handle_accounting):
            out = handle(data, (NAS[0], port), 1.0)
            assert out is None or isinstance(out, bytes)
        assert server.counters["answered"] <= 1  # only a valid Status-Server could be


@pytest.mark.parametrize("path", ["batches", "each"])
def test_the_receive_thread_answers_each_datagram_its_handler_answers(
    store: Store, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """A burst from two sources: each gets the replies to its own datagrams, in order, and
    nothing for those the handler drops (None); the handler saw every datagram with its
    source."""
    if path == "each":
        monkeypatch.setattr(mmsg.Batches, "open", lambda *args: None)
    server = server_with(store, {"sw": SECRET})
    listening = radius_io._udp_socket("127.0.0.1", 0, 1 << 16)
    senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    seen: list[tuple[bytes, object]] = []

    def handle(data: bytes, source: tuple[object, ...], now: float) -> bytes | None:
        seen.append((data, source))
        return None if data.endswith(b"drop") else b"re:" + data

    stop = threading.Event()
    thread = threading.Thread(target=server._receive, args=(listening, handle, stop))
    try:
        target = listening.getsockname()
        for sender in senders:
            sender.bind(("127.0.0.1", 0))
            sender.settimeout(5)
        for index in range(40):  # queued before the thread starts: batches of several
            senders[index % 2].sendto(b"%d" % index + (b" drop" if index % 5 == 0 else b""), target)
        thread.start()
        for which, sender in enumerate(senders):
            wanted = [b"re:%d" % i for i in range(which, 40, 2) if i % 5]
            heard = [sender.recvfrom(64) for _ in wanted]
            assert [data for data, _ in heard] == wanted
            assert {source for _, source in heard} == {target}
        assert len(seen) == 40
        assert {source for _, source in seen} == {s.getsockname() for s in senders}
        assert server.counters.get("send-failed", 0) == 0
    finally:
        stop.set()
        radius_io._wake(listening)
        thread.join(10)
        for sender in senders:
            sender.close()
        listening.close()


@pytest.mark.parametrize("path", ["batches", "each"])
def test_a_full_receive_queue_is_counted_and_shutting_down_stops_the_thread(
    store: Store, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """On loopback: while the thread is busy, datagrams past a small receive buffer are
    dropped by the kernel and counted as dropped.overload (the socket's drop count); the
    shutdown the server does when stopping wakes the thread blocked in its receive, and it
    closes the socket. Both receive paths: recvmmsg batches, and recvfrom where the system
    lacks recvmmsg."""
    if path == "each":
        monkeypatch.setattr(mmsg.Batches, "open", lambda *args: None)
    server = server_with(store, {"sw": SECRET})
    listening = radius_io._udp_socket("127.0.0.1", 0, 4096)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy, release = threading.Event(), threading.Event()
    handled: list[bytes] = []

    def handle(data: bytes, source: tuple[object, ...], now: float) -> bytes | None:
        busy.set()
        release.wait(10)  # the first datagram holds the thread while the queue overflows
        handled.append(data)
        return None

    stop = threading.Event()
    thread = threading.Thread(target=server._receive, args=(listening, handle, stop))
    try:
        thread.start()
        target = listening.getsockname()
        sender.sendto(b"\x01" * 300, target)
        assert busy.wait(10)
        for _ in range(200):  # far more than 4 KiB of buffer holds
            sender.sendto(b"\x01" * 300, target)
        dropped = radius_io._drops(listening)
        assert dropped > 0
        release.set()
        deadline = time.monotonic() + 10
        while len(handled) < 201 - dropped and time.monotonic() < deadline:
            time.sleep(0.01)
        assert thread.is_alive()
        stop.set()
        radius_io._wake(listening)
        thread.join(10)
        assert not thread.is_alive()
        assert listening.fileno() == -1  # closed by its thread
        assert len(handled) == 201 - dropped
        assert server.counters["dropped.overload"] == dropped
    finally:
        release.set()
        stop.set()
        radius_io._wake(listening)
        thread.join(10)
        sender.close()
        listening.close()


def test_a_new_mac_is_answered_at_once_and_learned_on_the_loop_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Serving, a new MAC's quarantine Accept does not wait for the loop: its learning is
    posted once however often the MAC retries meanwhile; past the backlog, replies wait."""
    server = server_with(store, {"sw": SECRET})
    posted: list[Callable[[], object]] = []
    waited: list[Callable[[], object]] = []
    server._soon = posted.append
    server._on_loop = lambda work: (waited.append(work), work())[1]
    for identifier in (1, 2, 3):
        reply = reply_of(
            request := mab("aabbcc000011", identifier),
            server.handle_auth(request, NAS, 1.0 + identifier),
        )
        assert reply["Tunnel-Private-Group-Id"] == [str(CONFIG.role("quarantine").vlan)]
    assert len(posted) == 1 and not waited
    assert server.inventory.get("aa:bb:cc:00:00:11") is None  # not yet: the loop has not run
    posted[0]()
    endpoint = server.inventory.get("aa:bb:cc:00:00:11")
    assert endpoint is not None and endpoint.role == "quarantine"
    monkeypatch.setattr(radius_io, "LEARN_BACKLOG", 1)
    server.handle_auth(mab("aabbcc000012"), NAS, 5.0)  # the one allowed to wait
    server.handle_auth(mab("aabbcc000013"), NAS, 5.0)  # over the backlog: the reply waits
    assert len(posted) == 2 and len(waited) == 1
    assert server.inventory.get("aa:bb:cc:00:00:13") is not None
    assert server.counters["learn.waited"] == 1


def test_new_macs_seen_before_the_loop_runs_share_one_wakeup(store: Store) -> None:
    """A burst of new MACs wakes the loop once, not once each; what is posted while the batch
    runs gets a wakeup of its own; a posted change that fails costs only itself."""
    server = server_with(store, {"sw": SECRET})
    wakeups: list[Callable[[], object]] = []
    server._soon = wakeups.append
    macs = [f"aabbcc0001{index:02x}" for index in range(50)]
    for identifier, mac in enumerate(macs):
        server.handle_auth(mab(mac, identifier), NAS, 1.0)
    assert len(wakeups) == 1 and len(server.inventory) == 0

    def fails() -> None:
        raise RuntimeError("a bug in one change")

    server._post(fails)
    server._post(lambda: server.handle_auth(mab("aabbcc000200"), NAS, 2.0))  # posts again
    assert len(wakeups) == 1
    wakeups[0]()
    assert len(server.inventory) == 50 and server.counters["posted.failed"] == 1
    assert len(wakeups) == 2  # the MAC that arrived while the batch ran brought its own
    wakeups[1]()
    assert len(server.inventory) == 51


async def test_a_push_a_nas_cannot_take_is_still_in_the_endpoints_history(store: Store) -> None:
    """A NAS with coa = none is not told, and the endpoint's history says so; a session
    without a MAC leaves no event."""
    config = load_config_text(
        DEFAULT_CONFIG_TEXT
        + '[[radius.clients]]\nname = "sw"\naddress = "192.0.2.10"\nsecret = "sw"\n'
        + 'coa = "none"\n',
        "t.toml",
    )
    server = RadiusServer(config, Inventory(store, []), D, {"sw": SECRET}.get)
    request = mab("aabbcc000009")
    assert server.handle_auth(request, NAS, 1.0) is not None
    mac = "aa:bb:cc:00:00:09"
    await trio.sleep(0)  # the learning runs on the loop
    assert server.inventory.get(mac) is not None
    session = Session("sw", NAS[0], "s-1", mac, None, None, None, None, 1.0, 1.0)
    view = await server.push(session, "role quarantine -> full")
    assert view["outcome"] == "not-sent"
    await server.push(Session("sw", NAS[0], "s-2", None, None, None, None, None, 1.0, 1.0), "x")
    assert await server.inventory.flush()
    (event,) = [e for e in store.events() if e.kind is EventKind.COA]
    assert event.mac == mac
    assert event.detail == {
        "nas": "sw",
        "session_id": "s-1",
        "why": "role quarantine -> full",
        "outcome": "not-sent",
        "detail": "no CoA for this NAS (coa = none, or no secret)",
    }


def test_the_session_table_is_kept_in_the_store_across_a_restart(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """save_sessions writes what changed; a server made later from the same store starts
    with those sessions (CoA can reach their NAS at once). A failed save keeps its changes
    for the next one, where a newer state of the same session wins."""

    def made() -> RadiusServer:
        return RadiusServer(CONFIG, Inventory(store, []), D, {"sw": SECRET}.get, store=store)

    server = made()
    for status, session in (("Start", "s-1"), ("Start", "s-2"), ("Stop", "s-2")):
        request = accounting(status, session, "AA:BB:CC:00:00:06", "198.18.0.56")
        assert server.handle_accounting(request, NAS, 5.0) is not None
    assert server.save_sessions()
    (kept,) = made().session_list()
    assert kept == server.session_list()[0]
    assert (kept.session_id, kept.mac, kept.nas_port_id, kept.framed_ip) == (
        "s-1",
        "aa:bb:cc:00:00:06",
        "Gi1/0/3",
        "198.18.0.56",
    )

    def refuse(changes: object) -> None:
        raise StoreError("disk full")

    monkeypatch.setattr(store, "save_radius_sessions", refuse)
    interim = accounting("Interim-Update", "s-1", "AA:BB:CC:00:00:06", "198.18.0.57")
    assert server.handle_accounting(interim, NAS, 6.0) is not None
    assert not server.save_sessions()
    monkeypatch.undo()
    start_other = accounting("Start", "s-3", "AA:BB:CC:00:00:07", "198.18.0.58")
    assert server.handle_accounting(start_other, NAS, 7.0) is not None
    assert server.save_sessions()
    reloaded = {s.session_id: s for s in made().session_list()}
    assert set(reloaded) == {"s-1", "s-3"}
    assert (reloaded["s-1"].framed_ip, reloaded["s-1"].updated) == ("198.18.0.57", 6.0)

    # Sessions no accounting refreshed for radius.session_idle end, in the store too.
    idle = CONFIG.radius.session_idle
    assert server.expire_sessions(6.0 + idle) == 1  # s-1, last updated at 6.0; s-3 at 7.0
    assert server.counters["sessions.expired"] == 1
    assert server.save_sessions()
    assert [s.session_id for s in made().session_list()] == ["s-3"]
