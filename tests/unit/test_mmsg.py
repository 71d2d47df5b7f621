"""netaccess.io.mmsg.Batches on real loopback sockets: what recvmmsg takes matches what
recvfrom would have answered (data, source, order), replies reach the source of their own
slot, and the failure paths (an oversized reply, a send the kernel refuses, a shutdown)."""

from __future__ import annotations

import ctypes
import errno
import socket
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netaccess.io import mmsg
from netaccess.io.mmsg import Batches

pytestmark = pytest.mark.skipif(mmsg._LIBC is None, reason="no recvmmsg/sendmmsg here")


def pair(family: int, host: str) -> tuple[socket.socket, socket.socket]:
    server = socket.socket(family, socket.SOCK_DGRAM)
    server.bind((host, 0))
    client = socket.socket(family, socket.SOCK_DGRAM)
    client.bind((host, 0))
    client.settimeout(5)
    return server, client


@pytest.fixture(params=[(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def sockets(request: pytest.FixtureRequest) -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = pair(*request.param)
    try:
        yield server, client
    finally:
        server.close()
        client.close()


def test_a_batch_is_what_recvfrom_would_have_answered_in_order(
    sockets: tuple[socket.socket, socket.socket],
) -> None:
    server, client = sockets
    batches = Batches.open(server, 4, 512)
    assert batches is not None
    for index in range(6):
        client.sendto(b"request %d" % index, server.getsockname())
    first = batches.receive()
    assert [data for data, _ in first] == [b"request %d" % i for i in range(4)]
    assert {source for _, source in first} == {client.getsockname()}
    second = batches.receive()  # the two left over, not waiting for a full batch
    assert [data for data, _ in second] == [b"request 4", b"request 5"]
    client.sendto(b"", server.getsockname())  # an empty datagram keeps its source
    assert batches.receive() == [(b"", client.getsockname())]


def test_replies_go_to_their_own_slots_source_and_skipped_slots_get_none(
    sockets: tuple[socket.socket, socket.socket],
) -> None:
    server, client = sockets
    other = socket.socket(server.family, socket.SOCK_DGRAM)
    other.bind((server.getsockname()[0], 0))
    other.settimeout(5)
    try:
        batches = Batches.open(server, 8, 512)
        assert batches is not None
        for index in range(3):
            client.sendto(b"c%d" % index, server.getsockname())
            other.sendto(b"o%d" % index, server.getsockname())
        got = batches.receive()
        assert len(got) == 6
        # Answer all but slot 1 (client's second), longest reply first to catch stale lengths.
        replies = [(slot, data + b"-reply" * (6 - slot)) for slot, (data, _) in enumerate(got)]
        del replies[2]  # slot 2 is client's c1 (arrival order c0 o0 c1 o1 c2 o2)
        assert batches.send(replies) == []
        heard: dict[socket.socket, list[bytes]] = {client: [], other: []}
        for sock, count in ((client, 2), (other, 3)):
            for _ in range(count):
                data, source = sock.recvfrom(512)
                assert source == server.getsockname()
                heard[sock].append(data)
        assert heard[client] == [b"c0" + b"-reply" * 6, b"c2" + b"-reply" * 2]
        assert heard[other] == [b"o0" + b"-reply" * 5, b"o1" + b"-reply" * 3, b"o2-reply"]
    finally:
        other.close()


def test_an_oversized_reply_fails_alone(sockets: tuple[socket.socket, socket.socket]) -> None:
    server, client = sockets
    batches = Batches.open(server, 4, 64)
    assert batches is not None
    client.sendto(b"a", server.getsockname())
    client.sendto(b"b", server.getsockname())
    assert len(batches.receive()) == 2
    failed = batches.send([(0, b"x" * 65), (1, b"fits")])
    assert [(slot, error.errno) for slot, error in failed] == [(0, errno.EMSGSIZE)]
    assert client.recvfrom(64)[0] == b"fits"


def test_a_reply_the_kernel_refuses_is_reported_and_the_rest_still_go(
    sockets: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel sends a prefix and refuses the next entry: the loop reports that entry
    with its errno and carries on from the one after it."""
    server, client = sockets
    batches = Batches.open(server, 4, 64)
    assert batches is not None
    for index in range(4):
        client.sendto(b"%d" % index, server.getsockname())
    assert len(batches.receive()) == 4
    real, calls = batches._sendmmsg, []
    stride = ctypes.sizeof(mmsg._MMsgHdr)

    def one_at_a_time_refusing_entry_1(fd: int, at: int, count: int, flags: int) -> int:
        entry = (at - batches._svec_at) // stride
        calls.append((entry, count))
        if entry == 1:
            ctypes.set_errno(errno.ENOBUFS)
            return -1
        return int(real(fd, at, 1, flags))

    monkeypatch.setattr(batches, "_sendmmsg", one_at_a_time_refusing_entry_1)
    failed = batches.send([(slot, b"r%d" % slot) for slot in range(4)])
    assert [(slot, error.errno) for slot, error in failed] == [(1, errno.ENOBUFS)]
    assert calls == [(0, 4), (1, 3), (2, 2), (3, 1)]
    assert [client.recvfrom(64)[0] for _ in range(3)] == [b"r0", b"r2", b"r3"]


def test_shutting_the_socket_down_wakes_a_blocked_receive() -> None:
    server, client = pair(socket.AF_INET, "127.0.0.1")
    try:
        batches = Batches.open(server, 4, 64)
        assert batches is not None
        woke: list[object] = []
        thread = threading.Thread(target=lambda: woke.append(batches.receive()))
        thread.start()
        with pytest.raises(OSError):  # ENOTCONN on a UDP socket, but it wakes the reader
            server.shutdown(socket.SHUT_RD)
        thread.join(10)
        assert not thread.is_alive()
        assert woke == [[(b"", None)]]
        # The slot the shutdown answered still reports sources afterwards.
        client.sendto(b"after", server.getsockname())
        assert batches.receive() == [(b"after", client.getsockname())]
    finally:
        server.close()
        client.close()


def test_a_dual_stack_socket_reports_ipv4_sources_mapped_as_recvfrom_does() -> None:
    server = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    server.bind(("::", 0))
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(5)
    try:
        port = server.getsockname()[1]
        batches = Batches.open(server, 4, 64)
        assert batches is not None
        client.sendto(b"first", ("127.0.0.1", port))
        [(data, source)] = batches.receive()
        client.sendto(b"second", ("127.0.0.1", port))
        assert (data, source) == (b"first", server.recvfrom(64)[1])
        assert source is not None and source[0] == "::ffff:127.0.0.1"
        assert batches.send([(0, b"answer")]) == []
        assert client.recvfrom(64)[0] == b"answer"
    finally:
        server.close()
        client.close()


def test_a_stream_socket_gets_no_batches() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as stream:
        assert Batches.open(stream, 4, 64) is None


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=12))
def test_any_datagrams_come_out_as_sent(payloads: list[bytes]) -> None:
    server, client = pair(socket.AF_INET, "127.0.0.1")
    try:
        batches = Batches.open(server, 5, 300)
        assert batches is not None
        for payload in payloads:
            client.sendto(payload, server.getsockname())
        got: list[bytes] = []
        while len(got) < len(payloads):
            batch = batches.receive()
            assert 1 <= len(batch) <= 5
            assert all(source == client.getsockname() for _, source in batch)
            assert batches.send([(slot, data[::-1]) for slot, (data, _) in enumerate(batch)]) == []
            got.extend(data for data, _ in batch)
        assert got == payloads
        assert [client.recvfrom(300)[0] for _ in payloads] == [p[::-1] for p in payloads]
    finally:
        server.close()
        client.close()
