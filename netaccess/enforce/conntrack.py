"""Deleting an endpoint's conntrack entries over ctnetlink, so that flows opened under its old
role (and their NAT bindings) end with the role change; a per-address index of the table, fed
by conntrack events, lets that delete exactly those entries without walking the table."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pyroute2 import NFCTSocket  # type: ignore[import-untyped,unused-ignore]

from netaccess.enforce.errors import EnforcementError
from netaccess.enforce.nft import entered_netns
from netaccess.enforce.resource import SocketOwner

# Starts a piece of work beside the caller (on another thread) and returns a function that
# waits for it to end and raises its error. The io layer provides one; enforce starts no threads.
Beside = Callable[[Callable[[], None]], Callable[[], object]]

# linux/netlink.h, linux/netfilter/nfnetlink.h, linux/netfilter/nfnetlink_conntrack.h
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_ECHO = 0x8
NLM_F_DUMP = 0x300
NLA_F_NESTED = 0x8000
NLA_TYPE_MASK = 0x3FFF
NFNL_SUBSYS_CTNETLINK = 1
IPCTNL_MSG_CT_NEW = 0
IPCTNL_MSG_CT_GET = 1
IPCTNL_MSG_CT_DELETE = 2
IPCTNL_MSG_CT_GET_STATS = 5
CTA_TUPLE_ORIG = 1
CTA_TUPLE_REPLY = 2
CTA_ZONE = 18
CTA_FILTER = 25
CTA_TUPLE_IP = 1
CTA_IP_V4_SRC, CTA_IP_V4_DST, CTA_IP_V6_SRC, CTA_IP_V6_DST = 1, 2, 3, 4
CTA_FILTER_ORIG_FLAGS = 1
CTA_FILTER_REPLY_FLAGS = 2
CTA_FILTER_FLAG_IP_SRC = 1 << 0
CTA_FILTER_FLAG_IP_DST = 1 << 1
CTA_STATS_GLOBAL_ENTRIES = 1
AF_INET = 2
AF_INET6 = 10
EOPNOTSUPP = 95
ENOBUFS = 105
EINVAL = 22
ENOENT = 2
SOL_SOCKET = 1
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
NETLINK_DROP_MEMBERSHIP = 2
MSG_DONTWAIT = 0x40
NFNLGRP_CONNTRACK_NEW = 1
NFNLGRP_CONNTRACK_DESTROY = 3
SO_RCVTIMEO = 20
SO_RCVBUFFORCE = 33

RECEIVE_TIMEOUT = 5.0  # seconds; the kernel answers within milliseconds even for a full dump
# Only charged while messages wait in it. The kernel doubles it; a destroy event costs about
# 1.3 KB of it (skb overhead included), so it holds the events of ~170k deleted entries.
RECEIVE_BUFFER = 128 * 1024 * 1024
EVENT_TRUESIZE = 1536
RECV_SIZE = 1024 * 1024
# Requests per send: each gets a 36-byte ACK, which must fit the receive buffer.
REQUESTS_PER_SEND = 1024
EVENTS_SYSCTL = "/proc/sys/net/netfilter/nf_conntrack_events"

# Cost model, measured on the reference 2-core VM (262,144 conntrack buckets), in µs. A
# kernel-filtered flush walks the whole table once per filter, skipping empty buckets; a dump
# walks it once, locking every bucket, and costs a few µs of Python per entry to parse.
WALK_FIXED_US = 120.0
WALK_PER_ENTRY_US = 0.27
DUMP_FIXED_US = 9000.0
DUMP_PER_ENTRY_US = 3.0

_DESTROY_EVENT = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE
# A NEW event and a dump entry share this type; events carry sequence number 0.
_NEW_ENTRY = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, seq, pid
_NFGEN = struct.Struct("=BBH")  # nfgenmsg: family, version, res_id (big-endian, 0 here)
_ATTR = struct.Struct("=HH")  # nlattr: length, type
_ERROR = struct.Struct("=i")
_U32 = struct.Struct("=I")
# nlmsghdr and nfgenmsg of a ctnetlink request in one pack: a delete is this plus the identity.
_REQUEST_HEAD = struct.Struct("=IHHIIBBH")
_BE32 = struct.Struct(">I")


class ConntrackFlusher(SocketOwner):
    """Deletes conntrack entries by endpoint address, in `netns` or the caller's namespace.

    ipv6_in_kernel: let the kernel filter IPv6 flushes too; only where kernel.detect found
    its IPv6 filter sound. index: a FlowIndex of the same namespace; while it is healthy,
    flushes delete the indexed entries only. Not thread-safe: one owner thread, like Nftables.
    """

    def __init__(
        self,
        netns: str | None = None,
        *,
        ipv6_in_kernel: bool = False,
        index: FlowIndex | None = None,
    ) -> None:
        self._netns = netns
        self.index = index
        self._ipv6_in_kernel = ipv6_in_kernel
        try:
            self._sock: Any = NFCTSocket(netns=netns) if netns else NFCTSocket()
        except OSError as exc:
            raise EnforcementError(f"ctnetlink socket ({_where(netns)}): {exc}") from exc
        timeout = int(RECEIVE_TIMEOUT)
        self._sock.setsockopt(SOL_SOCKET, SO_RCVTIMEO, struct.pack("@ll", timeout, 0))
        self._sock.setsockopt(SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
        self._seq = 0
        self._kernel_filter: bool | None = None  # unknown until the first filtered flush
        self._events = _conntrack_events(netns)
        self.last_flush_in_kernel: bool | None = None
        self.last_flush_by_index: bool | None = None

    @property
    def kernel_filtered_flush(self) -> bool | None:
        """Whether the kernel flushes by CTA_FILTER (None: not tried yet)."""
        return self._kernel_filter

    @property
    def events_enabled(self) -> bool:
        """Whether every entry carries event data (nf_conntrack_events=1), which a flush in
        the kernel needs to report what it deleted."""
        return self._events

    def supports_filtered_flush(self) -> bool:
        """Whether this kernel deletes by CTA_FILTER (asks it once, with an address that
        matches nothing: 192.0.2.1, TEST-NET-1)."""
        if self._kernel_filter is None:
            self._flush_in_kernel(_Targets.of(["192.0.2.1"]))
        return bool(self._kernel_filter)

    def count(self) -> int:
        """Conntrack entries in this namespace."""
        (reply,), _ = self._exchange([self._stats_request()], expect_acks=False)
        return _entries_of(reply)

    def flush(self, addresses: Iterable[str]) -> int:
        """Delete every entry whose original source or reply destination is one of
        `addresses` (IPv4 or IPv6); return how many were deleted.

        Two ways. The kernel can filter and delete by itself (CTA_FILTER on a flush: two table
        walks per address, no entry crosses to user space), echoing a destroy event per
        deleted entry so the count stays exact; that needs a kernel that filters flushes and
        nf_conntrack_events=1 in the namespace, and is used for IPv4 only unless
        `ipv6_in_kernel` (6.18 matches IPv6 filters inverted: see kernel.detect). Otherwise,
        and when a cost model says many addresses make one pass cheaper, one dump of the
        table is matched here and the hits deleted by exact tuple. An entry that vanishes
        meanwhile is simply not counted.
        """
        return self._flush_targets(_Targets.of(addresses))

    def flush_alongside(
        self, addresses: Iterable[str], update: Callable[[], None], beside: Beside
    ) -> int:
        """Run `update`, the set transaction that changes the role of the endpoints at
        `addresses`, on another thread through `beside`, while this one deletes their flows
        as flush() would; return how many were deleted.

        `update` is a prepared commit (RoleSets.prepare_apply): the kernel's work only, which
        a second core does while this one finds the flows in the index and has the kernel
        delete them.
        A flow that an endpoint opens under its old role meanwhile is deleted too: once the
        update has committed, a second pass takes what the index learnt since (usually
        nothing), or walks the table if the index is stale. If `update` fails its error is
        raised, and the flows it would have cut are gone anyway: the endpoints reconnect
        under the role they kept.
        """
        targets = _Targets.of(addresses)  # a malformed address fails before anything is sent
        index = self.index
        if index is None or not targets:
            update()
            return self._flush_targets(targets)
        deleted = 0
        taken_all = False
        with index.recording() as indexed_meanwhile:
            # The commit first: its encoding is done, and the kernel works on it while this
            # thread finds the flows (Python) and deletes them (the kernel again).
            wait = beside(update)
            try:
                # Flows opened just before the role change may still be unread events.
                with contextlib.suppress(EnforcementError):  # then stale: walk, below
                    index.drain()
                if index.healthy:
                    for family, packed in targets.by_family.items():
                        deleted += self._delete_taken(family, index.take(packed), index)
                    taken_all = True
            finally:
                wait()  # the update's error, if any, wins: the role change did not happen
            # The transaction is in force now: nothing opens under the old role any more.
            with contextlib.suppress(EnforcementError):  # then stale: walk, below
                index.drain()
        self.last_flush_by_index, self.last_flush_in_kernel = True, False
        if not (taken_all and index.healthy):
            return deleted + self._flush_targets(targets)
        # What the endpoints opened while the update committed: usually nothing.
        if indexed_meanwhile:
            late = dict.fromkeys(indexed_meanwhile)
            for family, packed in targets.by_family.items():
                found = index.take(a for a in late if a in packed)
                deleted += self._delete_taken(family, found, index)
        return deleted

    def _flush_targets(self, targets: _Targets) -> int:
        if not targets:
            return 0
        index = self.index
        if index is not None:
            # Flows opened just before the role change may still be unread events.
            with contextlib.suppress(EnforcementError):  # then stale: walk the table
                index.drain()
            if index.healthy:
                self.last_flush_by_index, self.last_flush_in_kernel = True, False
                return self._flush_by_index(targets, index)
        self.last_flush_by_index = False
        trusted = (AF_INET, AF_INET6) if self._ipv6_in_kernel else (AF_INET,)
        in_kernel, by_dump = targets.split(trusted)
        deleted = 0
        if in_kernel and self._kernel_pays_off(len(in_kernel)):
            flushed = self._flush_in_kernel(in_kernel)
            if flushed is None:
                by_dump = targets
            else:
                deleted += flushed
        else:
            by_dump = targets
        self.last_flush_in_kernel = not by_dump
        if by_dump:
            deleted += self._flush_by_dump(by_dump)
        return deleted

    def _kernel_pays_off(self, addresses: int) -> bool:
        if self._kernel_filter is False or not self._events:
            return False
        entries = self.count()
        kernel_cost = 2 * addresses * (WALK_FIXED_US + entries * WALK_PER_ENTRY_US)
        dump_cost = DUMP_FIXED_US + entries * DUMP_PER_ENTRY_US
        # Even if every entry went, its destroy event must fit the receive buffer.
        return entries * EVENT_TRUESIZE <= 2 * RECEIVE_BUFFER and kernel_cost <= dump_cost

    # --- the strategies

    def _flush_by_index(self, targets: _Targets, index: FlowIndex) -> int:
        return sum(
            self._delete_taken(family, index.take(packed), index)
            for family, packed in targets.by_family.items()
        )

    def _delete_taken(self, family: int, taken: list[bytes], index: FlowIndex) -> int:
        """Delete the entries of `family` just taken out of `index`."""
        if not taken:
            return 0
        try:
            # The index forgot these entries already, so it need not hear of them: the kernel
            # then builds no destroy event per entry, which halves its cost of a delete and
            # spares the index parsing each one.
            with index.deaf_to_destroys():
                return self._delete_exactly(family, taken)
        except BaseException:
            index.invalidate()  # some taken entries may still exist: reseed before trusting it
            raise

    def _flush_in_kernel(self, targets: _Targets) -> int | None:
        """Filtered flushes; None when this kernel cannot filter a flush (then nothing was
        deleted). Counts the destroy events the kernel echoes before each acknowledgement."""
        requests = []
        for family, packed in targets:
            requests.append(self._filtered_flush(family, CTA_TUPLE_ORIG, packed))
            requests.append(self._filtered_flush(family, CTA_TUPLE_REPLY, packed))
        deleted = 0
        for chunk_start in range(0, len(requests), REQUESTS_PER_SEND):
            chunk = requests[chunk_start : chunk_start + REQUESTS_PER_SEND]
            acks, events = self._exchange(chunk, expect_acks=True)
            for ack in acks:
                code = _error_of(ack)
                if code in (-EOPNOTSUPP, -EINVAL) and self._kernel_filter is None:
                    self._kernel_filter = False
                    return None
                if code != 0:
                    raise EnforcementError(
                        f"conntrack flush by address ({_where(self._netns)}): the kernel"
                        f" answered {_strerror(code)}"
                    )
            deleted += events
        self._kernel_filter = True
        return deleted

    def _flush_by_dump(self, targets: _Targets) -> int:
        deleted = 0
        for family in targets.families():
            wanted = targets.by_family[family]
            deletes: list[bytes] = []
            for body in self._dump(family):
                identity = _identity_if_wanted(body, wanted)
                if identity is not None:
                    deletes.append(identity)
            deleted += self._delete_exactly(family, deletes)
        return deleted

    def _delete_exactly(self, family: int, identities: list[bytes]) -> int:
        """Delete the entries of `family` with each of `identities`; return how many existed.
        Only the last request of
        each datagram asks for an acknowledgement: the kernel answers the others only when
        they fail, which spares an answer to build and parse per deleted entry (half the
        cost of a bulk flush). Requests are handled in order, so the last answer ends it.
        The others share one sequence number (a failure need not say which request it was)
        and so one header, joined between the identities rather than packed per request."""
        deleted = 0
        for chunk_start in range(0, len(identities), REQUESTS_PER_SEND):
            chunk = identities[chunk_start : chunk_start + REQUESTS_PER_SEND]
            others_seq = self._next_seq()
            last_seq = self._next_seq()
            last = chunk[-1]
            self._send(
                _deletes(family, chunk[:-1], others_seq)
                + _delete_head(family, len(last), NLM_F_REQUEST | NLM_F_ACK, last_seq)
                + last
            )
            deleted += len(chunk)
            finished = False
            while not finished:
                for msg_type, seq, body in self._receive():
                    if msg_type != NLMSG_ERROR or seq not in (others_seq, last_seq):
                        continue  # a late answer to an earlier, abandoned exchange
                    finished = finished or seq == last_seq
                    code = _error_of(body)
                    if code == 0:
                        continue
                    deleted -= 1
                    if code != -ENOENT:  # ENOENT: the entry ended since it was seen
                        raise EnforcementError(
                            f"conntrack delete ({_where(self._netns)}): the kernel answered"
                            f" {_strerror(code)}"
                        )
        return deleted

    def _dump(self, family: int) -> Iterator[bytes]:
        """The body of every entry of `family` in the namespace."""
        seq = self._next_seq()
        request = _message(IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP, seq, family, b"")
        self._send(request)
        while True:
            for msg_type, msg_seq, body in self._receive():
                if msg_seq != seq:
                    continue
                if msg_type == NLMSG_DONE:
                    return
                if msg_type == NLMSG_ERROR:
                    raise EnforcementError(
                        f"conntrack dump ({_where(self._netns)}): the kernel answered"
                        f" {_strerror(_error_of(body))}"
                    )
                yield body

    # --- requests

    def _stats_request(self) -> tuple[int, bytes]:
        seq = self._next_seq()
        return seq, _message(IPCTNL_MSG_CT_GET_STATS, NLM_F_REQUEST, seq, 0, b"")

    def _filtered_flush(self, family: int, direction: int, packed: bytes) -> tuple[int, bytes]:
        # Original source, or reply destination: the endpoint's own flows, whatever NAT did.
        if direction == CTA_TUPLE_ORIG:
            ip_attr = CTA_IP_V4_SRC if family == AF_INET else CTA_IP_V6_SRC
            flags_attr, flag = CTA_FILTER_ORIG_FLAGS, CTA_FILTER_FLAG_IP_SRC
        else:
            ip_attr = CTA_IP_V4_DST if family == AF_INET else CTA_IP_V6_DST
            flags_attr, flag = CTA_FILTER_REPLY_FLAGS, CTA_FILTER_FLAG_IP_DST
        tuple_attr = _nest(direction, _nest(CTA_TUPLE_IP, _attr(ip_attr, packed)))
        filter_attr = _nest(CTA_FILTER, _attr(flags_attr, _U32.pack(flag)))
        seq = self._next_seq()
        # ECHO: the kernel sends us a destroy event for each entry it deletes.
        flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_ECHO
        return seq, _message(IPCTNL_MSG_CT_DELETE, flags, seq, family, tuple_attr + filter_attr)

    def _next_seq(self) -> int:
        self._seq = _following_seq(self._seq)
        return self._seq

    # --- transport

    def _exchange(
        self, requests: list[tuple[int, bytes]], *, expect_acks: bool
    ) -> tuple[list[bytes], int]:
        """Send `requests` in one datagram; return one answer body per request, in order,
        and how many destroy events the kernel echoed meanwhile.

        expect_acks: the answers are NLMSG_ERROR acknowledgements (error 0 is success);
        otherwise each is the request's single reply message.
        """
        self._send(b"".join(message for _, message in requests))
        pending = {seq: index for index, (seq, _) in enumerate(requests)}
        answers: list[bytes] = [b""] * len(requests)
        destroyed = 0
        while pending:
            for msg_type, seq, body in self._receive():
                if msg_type == _DESTROY_EVENT:
                    destroyed += 1  # echoed events carry no sequence number of ours
                    continue
                index = pending.pop(seq, None)
                if index is None:
                    continue  # a late answer to an earlier, abandoned exchange
                if not expect_acks and msg_type == NLMSG_ERROR:
                    raise EnforcementError(
                        f"ctnetlink request ({_where(self._netns)}): the kernel answered"
                        f" {_strerror(_error_of(body))}"
                    )
                answers[index] = body
        return answers, destroyed

    def _send(self, data: bytes) -> None:
        if self._sock is None:
            raise EnforcementError("conntrack flusher used after close()")
        try:
            self._sock.send(data)
        except OSError as exc:
            raise EnforcementError(f"ctnetlink send ({_where(self._netns)}): {exc}") from exc

    def _receive(self) -> list[tuple[int, int, bytes]]:
        try:
            data: bytes = self._sock.recv(RECV_SIZE)
        except OSError as exc:
            if exc.errno == ENOBUFS:
                raise EnforcementError(
                    f"ctnetlink receive ({_where(self._netns)}): answers were lost to a full"
                    " receive buffer; the entries were deleted but not all were counted"
                ) from exc
            raise EnforcementError(
                f"ctnetlink receive ({_where(self._netns)}): no answer within"
                f" {RECEIVE_TIMEOUT:g} s ({exc})"
            ) from exc
        return _messages(data)


class FlowIndex(SocketOwner):
    """Which conntrack entries each address has, kept current by ctnetlink's NEW and DESTROY
    events, so that a flush deletes an endpoint's entries without walking the whole table.

    Entries are indexed under their original source and their reply destination, the two
    addresses a flush matches. The index is seeded by one dump, taken after subscribing so
    that no entry slips in between. If the kernel drops events (the receive buffer overflowed)
    the index is stale until reseed(): a flush must not trust it meanwhile. Events are only
    sent with nf_conntrack_events=1 in the namespace; without it the index never becomes
    healthy. Not thread-safe; sans-I/O towards its owner: fileno() to wait on, drain() to read.
    """

    def __init__(self, netns: str | None = None, *, receive_buffer: int = RECEIVE_BUFFER) -> None:
        self._netns = netns
        try:
            self._sock: Any = NFCTSocket(netns=netns) if netns else NFCTSocket()
            timeout = int(RECEIVE_TIMEOUT)
            self._sock.setsockopt(SOL_SOCKET, SO_RCVTIMEO, struct.pack("@ll", timeout, 0))
            self._sock.setsockopt(SOL_SOCKET, SO_RCVBUFFORCE, receive_buffer)
            for group in (NFNLGRP_CONNTRACK_NEW, NFNLGRP_CONNTRACK_DESTROY):
                self._sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group)
        except OSError as exc:
            raise EnforcementError(
                f"conntrack event subscription ({_where(netns)}): {exc}"
            ) from exc
        self._seq = 0
        self._healthy = False
        # identity -> the addresses it is indexed under, and address -> its identities: the
        # identity itself while it is the only one (most addresses: no set to allocate and,
        # in a burst's take(), none to visit), a set once there are more.
        self._flows: dict[bytes, tuple[bytes, ...]] = {}
        self._by_address: dict[bytes, bytes | set[bytes]] = {}
        # address -> how many stale identities take() left in its set (see compact()).
        self._stale_at: dict[bytes, int] = {}
        self._recording: list[bytes] | None = None  # see recording()
        self.overflows = 0
        self.seeds = 0
        self.reseed()

    @property
    def healthy(self) -> bool:
        """Whether every entry of the table is indexed (no event lost since the last seed)."""
        return self._healthy

    def fileno(self) -> int:
        """Readable when events wait: then call drain()."""
        if self._sock is None:
            raise EnforcementError("flow index used after close()")
        fd: int = self._sock.fileno()
        return fd

    def __len__(self) -> int:
        return len(self._flows)

    def flows_of(self, address: str) -> frozenset[bytes]:
        """The identities of the entries indexed under `address`."""
        return frozenset(self.identities_at(ipaddress.ip_address(address).packed))

    def identities_at(self, packed: bytes) -> tuple[bytes, ...]:
        flows = self._flows
        return tuple(i for i in _each(self._by_address.get(packed)) if packed in flows.get(i, ()))

    def drain(self) -> None:
        """Apply every event waiting in the socket, without blocking. A lost event (ENOBUFS)
        makes the index stale; what follows is then read and dropped, to keep the buffer
        from overflowing again, until reseed()."""
        while True:
            try:
                data: bytes = self._sock.recv(RECV_SIZE, MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError as exc:
                self._healthy = False  # whatever was lost, the index can no longer be trusted
                if exc.errno != ENOBUFS:
                    raise EnforcementError(
                        f"conntrack events ({_where(self._netns)}): {exc}"
                    ) from exc
                self.overflows += 1
                continue
            if self._healthy:
                for msg_type, seq, body in _messages(data):
                    if seq == 0:
                        self._apply(msg_type, body)

    def reseed(self) -> None:
        """Rebuild the index from one dump of the table (all families), applying the events
        that arrive meanwhile; healthy afterwards unless events were lost again."""
        self._healthy = False
        if not _conntrack_events(self._netns):
            return  # no events to keep it current: flushes keep walking the table
        self._discard_pending()  # older than the dump, and some of their successors are lost
        self._flows.clear()
        self._by_address.clear()
        self._stale_at.clear()
        self._seq = _following_seq(self._seq)
        seq = self._seq
        self._send(_message(IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP, seq, 0, b""))
        # An entry destroyed while the dump runs may still be dumped after its event came.
        destroyed: set[bytes] = set()
        complete = True
        done = False
        while not done:
            try:
                data: bytes = self._sock.recv(RECV_SIZE)
            except OSError as exc:
                if exc.errno == ENOBUFS:
                    complete = False
                    self.overflows += 1
                    continue
                raise EnforcementError(
                    f"conntrack dump for the flow index ({_where(self._netns)}): no answer"
                    f" within {RECEIVE_TIMEOUT:g} s ({exc})"
                ) from exc
            for msg_type, msg_seq, body in _messages(data):
                if msg_seq == 0:
                    flow = _flow_of(body)
                    if flow is not None:
                        if msg_type == _DESTROY_EVENT:
                            destroyed.add(flow[0])
                        else:
                            destroyed.discard(flow[0])
                    self._apply(msg_type, body)
                elif msg_seq != seq:
                    continue  # a late answer to an abandoned dump
                elif msg_type == NLMSG_DONE:
                    done = True
                elif msg_type == NLMSG_ERROR:
                    raise EnforcementError(
                        f"conntrack dump for the flow index ({_where(self._netns)}): the kernel"
                        f" answered {_strerror(_error_of(body))}"
                    )
                elif msg_type == _NEW_ENTRY:
                    flow = _flow_of(body)
                    if flow is not None and flow[0] not in destroyed:
                        self._add(*flow)
        self.seeds += 1
        self._healthy = complete

    def take(self, addresses: Iterable[bytes]) -> list[bytes]:
        """Remove every entry indexed under one of `addresses` (packed, all of one family)
        from the index and return the identity of each, once: for a flush about to delete
        them.

        Hot: a burst takes 10k addresses. An entry indexed under a second address (its reply
        destination, when NAT rewrote it) stays listed there, stale, rather than be discarded
        from what is often one huge set (every masqueraded flow shares the appliance's
        address); lookups skip stale identities, and compact() sweeps them when idle."""
        by_address, flows = self._by_address, self._flows
        pop, flows_pop = by_address.pop, flows.pop
        taken: list[bytes] = []
        append = taken.append
        left_behind = self._stale_at
        for packed in addresses:
            held = pop(packed, None)
            if held is None:
                continue
            for identity in (held,) if isinstance(held, bytes) else held:
                indexed_under = flows_pop(identity, None)
                if indexed_under is None:
                    continue  # taken under another address already
                if packed not in indexed_under:
                    flows[identity] = indexed_under  # stale here: it lives on elsewhere
                    continue
                append(identity)
                if len(indexed_under) > 1:
                    for other in indexed_under:
                        if other != packed:
                            left_behind[other] = left_behind.get(other, 0) + 1
        return taken

    @property
    def stale(self) -> int:
        """Identities take() left listed under an entry's other address, not yet swept."""
        return sum(self._stale_at.values())

    def compact(self, *, at_least: int = 0) -> int:
        """Sweep the stale identities take() left behind, if there are at least `at_least`;
        return how many were swept. Call it when idle: it walks each affected address's set."""
        if not self._stale_at or self.stale < at_least:
            return 0
        by_address, flows = self._by_address, self._flows
        swept = 0
        for address in self._stale_at:
            held = by_address.get(address)
            if held is None:
                continue
            identities = _each(held)
            live = {i for i in identities if address in flows.get(i, ())}
            swept += len(identities) - len(live)
            if len(live) > 1:
                by_address[address] = live
            elif live:
                by_address[address] = live.pop()
            else:
                del by_address[address]
        self._stale_at.clear()
        return swept

    def invalidate(self) -> None:
        """The index may be wrong (a flush failed half-way): untrusted until reseed()."""
        self._healthy = False

    def forget(self, identity: bytes) -> None:
        """Drop an entry from the index (it was deleted)."""
        addresses = self._flows.pop(identity, None)
        if addresses is None:
            return
        by_address = self._by_address
        for address in addresses:
            held = by_address.get(address)
            if held is None:
                continue
            if isinstance(held, bytes):
                if held == identity:
                    del by_address[address]
            else:
                held.discard(identity)
                if not held:
                    del by_address[address]

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[bytes]]:
        """Collect, in the list it yields, the addresses of every entry indexed during the
        body (repeats included): what a flush must look at again once a concurrent update
        has committed, without taking every one of its addresses a second time."""
        if self._recording is not None:
            raise EnforcementError("flow index: recording() does not nest")
        added: list[bytes] = []
        self._recording = added
        try:
            yield added
        finally:
            self._recording = None

    @contextlib.contextmanager
    def deaf_to_destroys(self) -> Iterator[None]:
        """Leave the destroy events' group for the body: for deletes whose entries the caller
        forgets itself. An entry that ends by itself meanwhile (a timeout) is not forgotten;
        it stays indexed, harmlessly, until a flush of its address finds it gone. If the group
        cannot be joined again the index stops being healthy, so flushes walk the table."""
        sock = self._sock
        if sock is None:
            raise EnforcementError("flow index used after close()")
        try:
            sock.setsockopt(SOL_NETLINK, NETLINK_DROP_MEMBERSHIP, NFNLGRP_CONNTRACK_DESTROY)
            left = True
        except OSError:
            left = False  # still subscribed: the events come, and find nothing to forget
        try:
            yield
        finally:
            if left:
                try:
                    sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, NFNLGRP_CONNTRACK_DESTROY)
                except OSError:
                    self._healthy = False

    def _apply(self, msg_type: int, body: bytes) -> None:
        flow = _flow_of(body)
        if flow is None:
            return
        if msg_type == _NEW_ENTRY:
            self._add(*flow)
        elif msg_type == _DESTROY_EVENT:
            self.forget(flow[0])

    def _add(self, identity: bytes, source: bytes | None, reply_destination: bytes | None) -> None:
        if identity in self._flows:
            return
        addresses = tuple(a for a in dict.fromkeys((source, reply_destination)) if a is not None)
        self._flows[identity] = addresses
        if self._recording is not None:
            self._recording += addresses
        for address in addresses:
            held = self._by_address.get(address)
            if held is None:
                self._by_address[address] = identity
            elif isinstance(held, bytes):
                if held != identity:
                    self._by_address[address] = {held, identity}
            else:
                held.add(identity)

    def _discard_pending(self) -> None:
        while True:
            try:
                self._sock.recv(RECV_SIZE, MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno != ENOBUFS:
                    raise EnforcementError(
                        f"conntrack events ({_where(self._netns)}): {exc}"
                    ) from exc

    def _send(self, data: bytes) -> None:
        if self._sock is None:
            raise EnforcementError("flow index used after close()")
        try:
            self._sock.send(data)
        except OSError as exc:
            raise EnforcementError(f"ctnetlink send ({_where(self._netns)}): {exc}") from exc


def _each(held: bytes | set[bytes] | None) -> tuple[bytes, ...] | set[bytes]:
    """The identities an address holds in FlowIndex._by_address, as a collection."""
    if held is None:
        return ()
    return (held,) if isinstance(held, bytes) else held


def _identity_if_wanted(body: bytes, wanted: set[bytes]) -> bytes | None:
    """The identity of the dumped entry in `body` (see _flow_of) if its original source or
    reply destination is in `wanted`; else None. Hot: runs once per entry of the table."""
    flow = _flow_of(body)
    if flow is None:
        return None
    identity, source, reply_destination = flow
    return identity if source in wanted or reply_destination in wanted else None


def _flow_of(body: bytes) -> tuple[bytes, bytes | None, bytes | None] | None:
    """(identity, original source, reply destination) of the entry in a dump or event body;
    the identity is what names it for an exact delete: its original tuple, and its zone if it
    has one. None if the body holds no pair of tuples."""
    unpack = _ATTR.unpack_from
    end = len(body)
    offset = _NFGEN.size
    identity = b""
    source: bytes | None = None
    while offset + _ATTR.size <= end:
        length, attr_type = unpack(body, offset)
        if length < _ATTR.size:
            return None
        following = offset + ((length + 3) & ~3)
        kind = attr_type & NLA_TYPE_MASK
        if kind == CTA_TUPLE_ORIG:
            identity = _padded(body[offset : offset + length])
            source = _tuple_ip(body, offset + _ATTR.size, offset + length, source=True)
        elif kind == CTA_TUPLE_REPLY:
            if not identity:
                return None
            reply_destination = _tuple_ip(body, offset + _ATTR.size, offset + length, False)
            # ctnetlink_fill_info and ctnetlink_conntrack_event write CTA_ZONE, when the entry
            # has one, right after the tuples: an entry in another zone is only found with it.
            if following + _ATTR.size <= end:
                zone_length, zone_type = unpack(body, following)
                if zone_type & NLA_TYPE_MASK == CTA_ZONE:
                    identity += _padded(body[following : following + zone_length])
            return identity, source, reply_destination
        offset = following
    return None


def _tuple_ip(data: bytes, start: int, end: int, source: bool) -> bytes | None:
    """The source (or destination) address inside a CTA_TUPLE_* nest, as raw bytes."""
    unpack = _ATTR.unpack_from
    offset = start
    while offset + _ATTR.size <= end:
        length, attr_type = unpack(data, offset)
        if length < _ATTR.size:
            return None
        if attr_type & NLA_TYPE_MASK == CTA_TUPLE_IP:
            inner, inner_end = offset + _ATTR.size, offset + length
            wanted = (CTA_IP_V4_SRC, CTA_IP_V6_SRC) if source else (CTA_IP_V4_DST, CTA_IP_V6_DST)
            while inner + _ATTR.size <= inner_end:
                ip_length, ip_type = unpack(data, inner)
                if ip_length < _ATTR.size:
                    return None
                if ip_type & NLA_TYPE_MASK in wanted:
                    return data[inner + _ATTR.size : inner + ip_length]
                inner += (ip_length + 3) & ~3
            return None
        offset += (length + 3) & ~3
    return None


@dataclass(slots=True)
class _Targets:
    """The addresses to flush, packed, per address family."""

    by_family: dict[int, set[bytes]] = field(default_factory=dict)

    @classmethod
    def of(cls, addresses: Iterable[str]) -> _Targets:
        targets = cls()
        v4: set[bytes] = set()
        v6: set[bytes] = set()
        for address in addresses:
            packed = _packed(address)
            (v4 if len(packed) == 4 else v6).add(packed)
        if v4:
            targets.by_family[AF_INET] = v4
        if v6:
            targets.by_family[AF_INET6] = v6
        return targets

    def families(self) -> list[int]:
        return sorted(self.by_family)

    def split(self, families: tuple[int, ...]) -> tuple[_Targets, _Targets]:
        """(the addresses of `families`, the others)."""
        inside = {f: packed for f, packed in self.by_family.items() if f in families}
        outside = {f: packed for f, packed in self.by_family.items() if f not in families}
        return _Targets(inside), _Targets(outside)

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        for family in self.families():
            for packed in sorted(self.by_family[family]):
                yield family, packed

    def __len__(self) -> int:
        return sum(len(packed) for packed in self.by_family.values())


def _messages(data: bytes) -> list[tuple[int, int, bytes]]:
    """(type, sequence number, body) of each netlink message in one datagram."""
    messages = []
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, msg_type, _flags, seq, _pid = _HEADER.unpack_from(data, offset)
        if length < _HEADER.size:
            break
        messages.append((msg_type, seq, data[offset + _HEADER.size : offset + length]))
        offset += _align(length)
    return messages


def _delete_head(family: int, identity_size: int, flags: int, seq: int) -> bytes:
    """nlmsghdr and nfgenmsg of a delete by exact identity (the identity follows)."""
    msg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE
    return _REQUEST_HEAD.pack(
        _REQUEST_HEAD.size + identity_size, msg_type, flags, seq, 0, family, 0, 0
    )


def _deletes(family: int, identities: list[bytes], seq: int) -> bytes:
    """Delete requests for each of `identities`, unacknowledged, all numbered `seq`."""
    if not identities:
        return b""
    size = len(identities[0])
    if all(len(identity) == size for identity in identities):
        head = _delete_head(family, size, NLM_F_REQUEST, seq)  # the usual case
        return head + head.join(identities)
    return b"".join(
        _delete_head(family, len(identity), NLM_F_REQUEST, seq) + identity
        for identity in identities
    )


def _following_seq(seq: int) -> int:
    # Never 0: events carry 0, and the index tells its dump's answers from events by it.
    return seq % 0xFFFFFFFF + 1


def _packed(address: str) -> bytes:
    """`address` (IPv4 or IPv6, as ipaddress accepts it) packed, in a fraction of ipaddress's
    time: glibc's inet_pton takes exactly the dotted quads ipaddress does (no leading zeros)."""
    try:
        if ":" in address:
            return socket.inet_pton(socket.AF_INET6, address)
        return socket.inet_pton(socket.AF_INET, address)
    except (OSError, ValueError, TypeError):
        pass
    try:
        return ipaddress.ip_address(address).packed  # scoped IPv6 ("fe80::1%eth0") and the like
    except ValueError:
        raise ValueError(f"conntrack flush: {address!r} is not an IPv4 or IPv6 address") from None


def _message(kind: int, flags: int, seq: int, family: int, attributes: bytes) -> bytes:
    payload = _NFGEN.pack(family, 0, 0) + attributes
    msg_type = (NFNL_SUBSYS_CTNETLINK << 8) | kind
    return _HEADER.pack(_HEADER.size + len(payload), msg_type, flags, seq, 0) + payload


def _attr(attr_type: int, value: bytes) -> bytes:
    length = _ATTR.size + len(value)
    return _ATTR.pack(length, attr_type) + value + b"\0" * (_align(length) - length)


def _nest(attr_type: int, inner: bytes) -> bytes:
    return _attr(attr_type | NLA_F_NESTED, inner)


def _attributes(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(type without flags, value start, value end) of each attribute in data[start:end]."""
    offset = start
    while offset + _ATTR.size <= end:
        length, attr_type = _ATTR.unpack_from(data, offset)
        if length < _ATTR.size or offset + length > end:
            return
        yield attr_type & NLA_TYPE_MASK, offset + _ATTR.size, offset + length
        offset += _align(length)


def _padded(attribute: bytes) -> bytes:
    return attribute + b"\0" * (-len(attribute) % 4)


def _entries_of(stats_body: bytes) -> int:
    for attr_type, start, end in _attributes(stats_body, _NFGEN.size, len(stats_body)):
        if attr_type == CTA_STATS_GLOBAL_ENTRIES and end - start >= 4:
            entries: int = _BE32.unpack_from(stats_body, start)[0]
            return entries
    raise EnforcementError("conntrack statistics: the kernel's answer holds no entry count")


def _error_of(body: bytes) -> int:
    if len(body) < _ERROR.size:
        raise EnforcementError("ctnetlink: truncated acknowledgement from the kernel")
    code: int = _ERROR.unpack_from(body, 0)[0]
    return code


def _align(length: int) -> int:
    return (length + 3) & ~3


def _strerror(code: int) -> str:
    return f"{os.strerror(-code)} (errno {-code})" if code < 0 else f"code {code}"


def _conntrack_events(netns: str | None) -> bool:
    """Whether nf_conntrack_events is 1 (event data on every entry) in `netns`."""
    try:
        with entered_netns(netns), open(EVENTS_SYSCTL) as setting:
            return setting.read().strip() == "1"
    except OSError:
        return False


def _where(netns: str | None) -> str:
    return f"network namespace {netns}" if netns is not None else "this network namespace"
