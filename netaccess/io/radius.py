"""The RADIUS server for switches: MAB on the auth port, accounting on the acct port.

Each datagram goes: source -> NAS client (else dropped and counted) -> duplicate cache
(a retransmit gets the reply already sent, RFC 5080) -> proto.radius.server.accept_request
(framing, authenticators, the BlastRADIUS rules) -> the MAB decision or the session table ->
a reply, with the Message-Authenticator first in every Access-* reply.

Everything a MAB, Status-Server or accounting request needs is in memory, so each port's
thread, blocked in recvmsg, answers them inline: two system calls per request and no
event-loop round trip; only inventory changes (a new MAC, an IP from accounting) go through
the trio loop. The socket's receive queue is the bounded queue: its buffer holds about
`radius.queue` datagrams, past that the kernel drops new ones (the server never stalls),
and SO_RXQ_OVFL tells us how many, counted as dropped.overload.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import secrets
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import trio

from netaccess.config import ApplianceConfig
from netaccess.config.model import CoaMethod, RadiusClientConfig
from netaccess.io.inventory import Inventory
from netaccess.policy.endpoint import Endpoint
from netaccess.policy.radius_mab import mab_mac, vlan_attributes
from netaccess.policy.radius_sessions import (
    AccountingError,
    Session,
    SessionTable,
    accounting_record,
)
from netaccess.policy.roles import QUARANTINE
from netaccess.proto.detect import Observation
from netaccess.proto.detect.observation import ObservationSource
from netaccess.proto.radius import auth
from netaccess.proto.radius.coa import CoaExchange, Next, Outcome
from netaccess.proto.radius.dedup import DuplicateCache, Key, Seen
from netaccess.proto.radius.dictionary import Dictionary
from netaccess.proto.radius.errors import RadiusError
from netaccess.proto.radius.packet import (
    USER_NAME,
    USER_PASSWORD,
    Attribute,
    Code,
    encode_attributes,
)
from netaccess.proto.radius.server import (
    ACCOUNTING_CODES,
    AUTH_CODES,
    Accepted,
    Drop,
    NasPolicy,
    accept_request,
)

log = logging.getLogger("netaccess.radius")

SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)  # linux/socket.h
_OVERFLOW_SPACE = socket.CMSG_SPACE(4)
# What one queued datagram costs the receive buffer: its bytes plus the kernel's sk_buff
# (about 1 KiB on 64-bit with the truesize rounding); RADIUS requests are mostly < 300 bytes.
_QUEUED_DATAGRAM_COST = 1536
MAX_DATAGRAM = 4096
_ADDRESS_CACHE = 4096
STOP_POLL = 0.5  # seconds a receive thread may take to notice the server stopping
_T = TypeVar("_T")


def _directly(work: Callable[[], _T]) -> _T:
    return work()


@dataclass(frozen=True, slots=True)
class _Nas:
    config: RadiusClientConfig
    policy: NasPolicy


class RadiusServer:
    """`secret_of(name)`: a vault entry's bytes, or None when it is not set."""

    def __init__(
        self,
        config: ApplianceConfig,
        inventory: Inventory,
        dictionary: Dictionary,
        secret_of: Callable[[str], bytes | None],
    ) -> None:
        self.config = config
        self.settings = config.radius
        self.inventory = inventory
        self.dictionary = dictionary
        self._secret_of = secret_of
        # One cache per port: each port's thread owns its own, so none is shared between
        # threads (the codes differ anyway, so no key could be in both).
        self._dedup_auth, self._dedup_acct = (
            DuplicateCache(
                lifetime=self.settings.duplicate_window,
                capacity=max(4096, self.settings.queue * 4),
            )
            for _ in range(2)
        )
        self.sessions = SessionTable(self.settings.max_sessions)
        self.counters: Counter[str] = Counter()
        self.per_client: dict[str, Counter[str]] = {
            c.name: Counter() for c in self.settings.clients
        }
        self._by_address: dict[str, RadiusClientConfig | None] = {}
        self._nas: dict[str, _Nas | None] = {}
        self._replies: dict[str, bytes] = {}
        self.bound: dict[str, tuple[str, int]] = {}
        # How inventory changes reach the trio loop: directly when the caller is on it (or
        # there is none, as in unit tests); from the receive threads, through the loop.
        self._on_loop: Callable[[Callable[[], Any]], Any] = _directly
        self._sessions_lock = threading.Lock()
        self._nursery: trio.Nursery | None = None
        self._coa_identifier = secrets.randbelow(256)
        self._load_clients()

    # --- configuration ----------------------------------------------------------------------

    def _load_clients(self) -> None:
        """Each client's secret from the vault; a client without one is kept but its
        datagrams are dropped (counted as no-secret) until `appliance secrets set` gives it."""
        self._by_address.clear()
        for client in self.settings.clients:
            secret = self._secret_of(client.secret)
            if secret is None:
                self._nas[client.name] = None
                log.warning(
                    "RADIUS client has no secret in the vault: its requests are dropped",
                    extra={"client": client.name, "secret": client.secret},
                )
                continue
            self._nas[client.name] = _Nas(
                client, NasPolicy(secret, client.require_message_authenticator)
            )

    def secrets_changed(self) -> None:
        self._load_clients()

    def client_for(self, address: str) -> RadiusClientConfig | None:
        for client in self.settings.clients:
            try:
                if ipaddress.ip_address(address) in client.network:
                    return client
            except ValueError:
                return None
        return None

    def _client_at(self, address: str) -> RadiusClientConfig | None:
        """The client whose network holds `address` (as the socket reports it), cached."""
        try:
            return self._by_address[address]
        except KeyError:
            pass
        client = self.client_for(_unmapped(address))
        if len(self._by_address) >= _ADDRESS_CACHE:
            self._by_address.clear()  # spoofed sources cannot grow it without bound
        self._by_address[address] = client
        return client

    def _role_reply(self, role_name: str) -> bytes:
        """The Accept attributes of a role, encoded once per role."""
        body = self._replies.get(role_name)
        if body is None:
            role = self.config.role(role_name) or self.config.role(QUARANTINE)
            assert role is not None
            attributes: list[Attribute] = []
            for name, value in vlan_attributes(role):
                attributes += self.dictionary.encode(name, value)
            body = self._replies[role_name] = encode_attributes(attributes)
        return body

    # --- one datagram ----------------------------------------------------------------------

    def handle_auth(self, data: bytes, source: tuple[Any, ...], now: float) -> bytes | None:
        return self._handle(data, source, now, AUTH_CODES, self._authorize, self._dedup_auth)

    def handle_accounting(self, data: bytes, source: tuple[Any, ...], now: float) -> bytes | None:
        return self._handle(data, source, now, ACCOUNTING_CODES, self._account, self._dedup_acct)

    def _handle(
        self,
        data: bytes,
        source: tuple[Any, ...],
        now: float,
        codes: frozenset[Code],
        process: Callable[[_Nas, Accepted, str, float], bytes | None],
        dedup: DuplicateCache,
    ) -> bytes | None:
        counters = self.counters
        counters["received"] += 1
        client = self._client_at(source[0])
        if client is None:
            counters["dropped.unknown-client"] += 1
            return None
        nas = self._nas[client.name]
        if nas is None:
            counters["dropped.no-secret"] += 1
            self.per_client[client.name]["dropped.no-secret"] += 1
            return None
        if len(data) < 20:
            self._drop(nas, Drop.MALFORMED)
            return None
        key: Key = (source[0], source[1], data[0], data[1], data[4:20])
        seen = dedup.arrive(key, now)
        if seen.seen is not Seen.NEW:
            counters["duplicates"] += 1
            return seen.reply
        result = accept_request(data, nas.policy, codes)
        if isinstance(result, Drop):
            dedup.forget(key)
            self._drop(nas, result)
            return None
        try:
            reply = process(nas, result, _unmapped(source[0]), now)
        except RadiusError as exc:
            dedup.forget(key)
            self._drop(nas, Drop.MALFORMED, str(exc))
            return None
        if reply is None:
            dedup.forget(key)
            return None
        dedup.answer(key, reply, now)
        counters["answered"] += 1
        return reply

    def _drop(self, nas: _Nas, reason: Drop, detail: str = "") -> None:
        self.counters["dropped." + reason.value] += 1
        self.per_client[nas.config.name]["dropped." + reason.value] += 1
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "RADIUS request dropped",
                extra={"client": nas.config.name, "reason": reason.value, "detail": detail},
            )

    def _authorize(self, nas: _Nas, accepted: Accepted, address: str, now: float) -> bytes:
        packet = accepted.packet
        secret = nas.policy.secret
        stats = self.per_client[nas.config.name]
        if packet.code == Code.STATUS_SERVER:  # RFC 5997 §3: alive, and the secret is right
            stats["status-server"] += 1
            return auth.encode_reply(
                Code.ACCESS_ACCEPT, packet.identifier, packet.authenticator, (), secret
            )
        name, hidden = packet.first(USER_NAME), packet.first(USER_PASSWORD)
        mac = None
        if name is not None and hidden is not None:
            password = auth.reveal_password(hidden, secret, packet.authenticator)
            mac = mab_mac(name, password.rstrip(b"\0"))
        if mac is None:
            # 802.1X (EAP) and user PAP are not served yet: a clear no, not silence.
            stats["rejected.not-mab"] += 1
            return auth.encode_reply(
                Code.ACCESS_REJECT,
                packet.identifier,
                packet.authenticator,
                self.dictionary.encode("Reply-Message", "only MAC authentication is served"),
                secret,
            )
        endpoint = self.inventory.get(mac)
        if endpoint is None:
            endpoint = self._on_loop(partial(self._learn, mac, now, None))
        role = endpoint.role if endpoint is not None else QUARANTINE
        stats["accepted.mab"] += 1
        return auth.encode_signed_reply(
            Code.ACCESS_ACCEPT,
            packet.identifier,
            packet.authenticator,
            self._role_reply(role),
            secret,
        )

    def _learn(self, mac: str, now: float, ip: str | None) -> Endpoint | None:
        """On the trio loop: the inventory learns `mac` (and `ip`) from RADIUS."""
        self.inventory.observe([Observation(ObservationSource.RADIUS, mac, now, ip=ip)])
        return self.inventory.get(mac)

    def session_list(self) -> list[Session]:
        with self._sessions_lock:
            return self.sessions.sessions()

    def _account(self, nas: _Nas, accepted: Accepted, address: str, now: float) -> bytes:
        packet = accepted.packet
        stats = self.per_client[nas.config.name]
        decoded = self.dictionary.decode(packet)
        try:
            record = accounting_record(decoded)
        except AccountingError as exc:
            stats["accounting.ignored"] += 1
            log.info(
                "accounting request kept out of the session table",
                extra={"client": nas.config.name, "reason": str(exc)},
            )
        else:
            stats[f"accounting.{record.status.name.lower()}"] += 1
            with self._sessions_lock:
                session = self.sessions.apply(nas.config.name, address, record, now)
            if session is not None and session.mac is not None and session.framed_ip:
                endpoint = self.inventory.get(session.mac)
                if endpoint is None or session.framed_ip not in endpoint.ips:
                    self._on_loop(partial(self._learn, session.mac, now, session.framed_ip))
        # RFC 2866 §4.2: answered once recorded (even when there was nothing to keep), or the
        # NAS retransmits for ever. No Message-Authenticator: RFC 2866 replies do not need one.
        return auth.encode_reply(
            Code.ACCOUNTING_RESPONSE,
            packet.identifier,
            packet.authenticator,
            (),
            nas.policy.secret,
            message_authenticator=accepted.message_authenticator,
        )

    # --- the sockets -----------------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Bind both ports and serve them, each from its own thread blocked in recvmsg: a
        request costs two system calls, not an event-loop round trip. What must change the
        inventory (a new MAC, an IP from accounting) runs on the trio loop, which the thread
        waits for; everything else the threads read is in memory."""
        settings = self.settings
        buffer = settings.queue * _QUEUED_DATAGRAM_COST
        auth_sock = _udp_socket(settings.address, settings.auth_port, buffer)
        try:
            acct_sock = _udp_socket(settings.address, settings.acct_port, buffer)
        except OSError:
            auth_sock.close()
            raise
        self.bound = {"auth": auth_sock.getsockname()[:2], "acct": acct_sock.getsockname()[:2]}
        log.info(
            "RADIUS listening",
            extra={
                "address": settings.address,
                "auth_port": settings.auth_port,
                "acct_port": settings.acct_port,
                "clients": len(settings.clients),
            },
        )
        token = trio.lowlevel.current_trio_token()
        self.inventory.add_role_listener(self.role_changed)
        stop = threading.Event()
        self._on_loop = lambda work: trio.from_thread.run_sync(work, trio_token=token)
        try:
            async with trio.open_nursery() as nursery:
                for sock, handle in (
                    (auth_sock, self.handle_auth),
                    (acct_sock, self.handle_accounting),
                ):
                    nursery.start_soon(
                        partial(
                            trio.to_thread.run_sync,
                            self._receive,
                            sock,
                            handle,
                            stop,
                            abandon_on_cancel=True,
                            limiter=trio.CapacityLimiter(1),
                        )
                    )
                self._nursery = nursery
                task_status.started()
        finally:
            self._nursery = None
            stop.set()  # each thread closes its socket within STOP_POLL seconds
            self._on_loop = _directly

    # --- Change-of-Authorization (RFC 5176) --------------------------------------------------

    def role_changed(self, mac: str, old: str, new: str) -> None:
        """On the trio loop, after an endpoint's role changed (a verdict, an admin, a
        demotion): each NAS session holding it is told, in the background."""
        if self._nursery is None:
            return
        for session in self._sessions_of(mac):
            self._nursery.start_soon(self.push, session, f"role {old} -> {new}")

    def _sessions_of(self, mac: str) -> list[Session]:
        with self._sessions_lock:
            return self.sessions.of_mac(mac)

    async def push_to(self, mac: str) -> list[dict[str, Any]]:
        """`appliance endpoints coa MAC`: every session of `mac` told again, with outcomes."""
        results: list[dict[str, Any]] = []

        async def one(session: Session) -> None:
            results.append(await self.push(session, "admin re-send"))

        async with trio.open_nursery() as nursery:
            for session in self._sessions_of(mac):
                nursery.start_soon(one, session)
        return results

    async def push(self, session: Session, why: str) -> dict[str, Any]:
        """One session's NAS told per its `coa` setting; a NAK 401/405 to a CoA falls back
        to Disconnect, a NAK 503 forgets the session. Logged with every outcome."""
        client = next((c for c in self.settings.clients if c.name == session.nas), None)
        nas = self._nas.get(session.nas)
        view: dict[str, Any] = {"nas": session.nas, "session_id": session.session_id}
        if client is None or nas is None or client.coa is CoaMethod.NONE:
            view.update(outcome="not-sent", why="no CoA for this NAS (coa = none, or no secret)")
            return view
        code = Code.DISCONNECT_REQUEST if client.coa is CoaMethod.DISCONNECT else Code.COA_REQUEST
        steps = []
        outcome = await self._exchange(code, session, client, nas.policy.secret)
        steps.append((code, outcome))
        if outcome.next is Next.TRY_DISCONNECT:
            code = Code.DISCONNECT_REQUEST
            outcome = await self._exchange(code, session, client, nas.policy.secret)
            steps.append((code, outcome))
        if outcome.next is Next.FORGET_SESSION:
            with self._sessions_lock:
                self.sessions.forget(session.nas, session.session_id)
        self.counters[f"coa.{outcome.next.value}"] += 1
        view.update(
            outcome=outcome.next.value,
            steps=[
                {
                    "request": c.name.lower().replace("_", "-"),
                    "acked": o.acked,
                    "error_cause": o.error_cause,
                    "tries": o.tries,
                    "why": o.why,
                }
                for c, o in steps
            ],
        )
        level = logging.INFO if outcome.acked else logging.WARNING
        log.log(
            level,
            "RADIUS CoA " + outcome.next.value,
            extra={"mac": session.mac, "why": why, **view},
        )
        return view

    async def _exchange(
        self, code: Code, session: Session, client: RadiusClientConfig, secret: bytes
    ) -> Outcome:
        attributes = self.dictionary.encode("Acct-Session-Id", session.session_id)
        if session.mac is not None:
            attributes += self.dictionary.encode(
                "Calling-Station-Id", session.mac.replace(":", "-").upper()
            )
        if code == Code.COA_REQUEST:
            command = (
                "bounce-host-port" if client.coa is CoaMethod.BOUNCE_PORT else "reauthenticate"
            )
            attributes += self.dictionary.encode("Cisco-AVPair", f"subscriber:command={command}")
        self._coa_identifier = (self._coa_identifier + 1) & 0xFF
        exchange = CoaExchange(
            code,
            self._coa_identifier,
            attributes,
            secret,
            tries=self.settings.coa_tries,
            interval=self.settings.coa_timeout,
        )
        family = socket.AF_INET6 if ":" in session.nas_address else socket.AF_INET
        with trio.socket.socket(family, socket.SOCK_DGRAM) as sock:
            await sock.connect((session.nas_address, client.coa_port))
            await sock.send(exchange.start(trio.current_time()))
            while True:
                due = exchange.timer_due()
                if due is None:
                    break
                with trio.move_on_at(due):
                    try:
                        data = await sock.recv(MAX_DATAGRAM)
                    except OSError:  # ICMP port unreachable: as no answer, try again
                        await trio.sleep_until(due)
                        continue
                    if exchange.receive(data, trio.current_time()) is not None:
                        break
                    continue
                again = exchange.on_timer(trio.current_time())
                if again is not None:
                    await sock.send(again)
        assert exchange.outcome is not None
        return exchange.outcome

    def _receive(
        self,
        sock: socket.socket,
        handle: Callable[[bytes, tuple[Any, ...], float], bytes | None],
        stop: threading.Event,
    ) -> None:
        recvmsg, sendto, clock = sock.recvmsg, sock.sendto, time.time
        overflowed = 0  # the kernel's count of datagrams dropped on this socket
        sock.settimeout(STOP_POLL)
        try:
            while not stop.is_set():
                try:
                    data, ancillary, _flags, source = recvmsg(MAX_DATAGRAM, _OVERFLOW_SPACE)
                except TimeoutError:
                    continue
                except OSError as exc:  # an ICMP error queued on the socket, say
                    if exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
                        continue
                    raise
                if ancillary:
                    total = _overflow_count(ancillary)
                    if total != overflowed:
                        self.counters["dropped.overload"] += (total - overflowed) & 0xFFFFFFFF
                        overflowed = total
                try:
                    reply = handle(data, source, clock())
                except trio.RunFinishedError:
                    return  # the daemon is stopping
                if reply is not None:
                    try:
                        sendto(reply, source)
                    except OSError:
                        self.counters["send-failed"] += 1
        finally:
            sock.close()

    # --- views -----------------------------------------------------------------------------

    def clients_view(self) -> list[dict[str, Any]]:
        out = []
        for client in self.settings.clients:
            stats = self.per_client[client.name]
            out.append(
                {
                    "name": client.name,
                    "address": str(client.network),
                    "secret": client.secret,
                    "secret_set": self._nas.get(client.name) is not None,
                    "require_message_authenticator": client.require_message_authenticator,
                    "coa": client.coa.value,
                    "coa_port": client.coa_port,
                    "counters": dict(sorted(stats.items())),
                }
            )
        return out


def _unmapped(address: str) -> str:
    """An IPv4 source as a dual-stack socket reports it (::ffff:a.b.c.d), as a.b.c.d."""
    if address.startswith("::ffff:"):
        return address[7:]
    return address


def _overflow_count(ancillary: list[tuple[int, int, bytes]]) -> int:
    for level, kind, value in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(value) >= 4:
            return int.from_bytes(value[:4], sys.byteorder)  # a native __u32
    return 0


def _udp_socket(address: str, port: int, receive_buffer: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
        sock.bind((address, port))
    except OSError:
        sock.close()
        raise
    return sock
