"""The RADIUS server for switches: MAB and 802.1X on the auth port, accounting on the acct
port.

Each datagram goes: source -> NAS client (else dropped and counted) -> duplicate cache
(a retransmit gets the reply already sent, RFC 5080) -> proto.radius.server.accept_request
(framing, authenticators, the BlastRADIUS rules) -> the MAB decision, an EAP conversation or
the session table -> a reply, with the Message-Authenticator first in every Access-* reply.

802.1X (RFC 3579): a request carrying EAP-Message goes to the conversation its State names
(proto.radius.eap_server, TLS from io.eap_tls), or starts one under a new random State. A
conversation ends in an Access-Accept with EAP-Success, the MS-MPPE keys and the VLAN of
the role the sign-in gave (AdmissionKeeper.sign_in_layer2), or an Access-Reject with
EAP-Failure. EAP-TTLS's inner PAP password is checked against the realm users' scrypt
hashes: a success is remembered for a while (keyed by an HMAC over the credentials and the
stored hash), and a check that needs scrypt runs on a worker thread which sends the reply
itself, the request's duplicate-cache entry staying in progress meanwhile so retransmits
are absorbed.

Everything a MAB, Status-Server or accounting request needs is in memory, so each port's
thread answers them inline, with no event-loop round trip: it blocks in recvmmsg, which
hands it every datagram queued (up to RECEIVE_BATCH), answers each in order, and sends the
replies with one sendmmsg (io.mmsg; where those are missing, a recvfrom and a sendto per
request). Only inventory changes (a new MAC, an IP from accounting) go through
the trio loop, and a new MAC's quarantine reply does not wait for it. The socket's receive
queue is the bounded queue: its buffer holds about `radius.queue` datagrams, past that the
kernel drops new ones (the server never stalls), and the socket's drop count (SO_MEMINFO),
read at most every DROPS_POLL seconds, says how many: dropped.overload. The sockets have no
timeout (with one, CPython polls before every recvfrom); stopping shuts them down, which
wakes their threads.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import hmac
import ipaddress
import logging
import secrets
import socket
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple, TypeVar

import trio

from netaccess.config import ApplianceConfig
from netaccess.config.model import CoaMethod, RadiusClientConfig
from netaccess.io.admission import AdmissionKeeper
from netaccess.io.eap_tls import CRL_CHECK_EVERY, EapTls
from netaccess.io.inventory import Inventory
from netaccess.io.mmsg import Batches, OneAtATime
from netaccess.policy.admission import Outcome as AdmissionOutcome
from netaccess.policy.credentials import (
    CredentialError,
    LoginThrottle,
    hash_password,
    verify_password,
)
from netaccess.policy.endpoint import Endpoint, EndpointEvent, EventKind
from netaccess.policy.radius_mab import mab_mac, vlan_attributes
from netaccess.policy.radius_sessions import (
    AccountingError,
    Session,
    SessionKey,
    SessionTable,
    accounting_record,
)
from netaccess.policy.roles import QUARANTINE
from netaccess.proto.detect import Observation
from netaccess.proto.detect.observation import ObservationSource
from netaccess.proto.mac import InvalidMac, parse_mac
from netaccess.proto.radius import auth
from netaccess.proto.radius.coa import CoaExchange, Next, Outcome
from netaccess.proto.radius.dedup import NEW, DuplicateCache, Key
from netaccess.proto.radius.dictionary import Dictionary
from netaccess.proto.radius.eap import EapCode, EapType, encode_eap
from netaccess.proto.radius.eap_server import (
    DEFAULT_FRAGMENT,
    Challenge,
    CheckNtResponse,
    CheckPassword,
    Discard,
    EapConversation,
    Failure,
    Step,
    Success,
    mppe_keys,
)
from netaccess.proto.radius.eap_sessions import ConversationTable, split_identity
from netaccess.proto.radius.errors import RadiusError
from netaccess.proto.radius.mschapv2 import (
    ERROR_AUTHENTICATION_FAILURE,
    ERROR_NO_DIALIN_PERMISSION,
    NT_HASH_BYTES,
    MschapResponse,
    check_response,
)
from netaccess.proto.radius.packet import (
    CALLING_STATION_ID,
    EAP_MESSAGE,
    FRAMED_MTU,
    MAX_VALUE,
    REPLY_MESSAGE,
    STATE,
    USER_NAME,
    USER_PASSWORD,
    Attribute,
    Code,
    Packet,
    encode_attributes,
    split_value,
)
from netaccess.proto.radius.server import (
    ACCOUNTING_CODES,
    AUTH_CODES,
    Drop,
    NasPolicy,
    accept_request,
)
from netaccess.store import Store, StoreError
from netaccess.store.vault import SEALED_OVERHEAD, VaultError

log = logging.getLogger("netaccess.radius")

SO_MEMINFO = getattr(socket, "SO_MEMINFO", 55)  # linux/socket.h
_SK_MEMINFO_DROPS = 8  # linux/sock_diag.h: the index of the drop count among the u32s
SESSIONS_SAVE_EVERY = 1.0  # seconds between saves of the accounting session table
DROPS_POLL = 1.0  # seconds between reads of a socket's drop count while serving
# What one queued datagram costs the receive buffer: its bytes plus the kernel's sk_buff
# (about 1 KiB on 64-bit with the truesize rounding); RADIUS requests are mostly < 300 bytes.
_QUEUED_DATAGRAM_COST = 1536
MAX_DATAGRAM = 4096
# Datagrams taken per recvmmsg. Under the race's load the queue holds 32 or more at most
# calls; 16 and 32 measured alike, 4 and 8 lower. A batch's first reply waits for the rest
# (32 MAB requests: about 0.3 ms).
RECEIVE_BATCH = 32
_TRANSIENT_RECEIVE_ERRORS = frozenset((errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH))
_ADDRESS_CACHE = 4096
# Inner PAP: a success is remembered this long (a password change or removal ends it at
# once: the stored hash is part of the key); workers for the checks that need scrypt.
PASSWORD_CACHE_TTL = 600.0
PASSWORD_CACHE_SIZE = 10_000
# How long a stored password hash read from the store is used without reading it again,
# when the store reports no change to its users meanwhile (Store.users_generation).
PASSWORD_HASH_FRESH = 2.0
PASSWORD_WORKERS = 2
LEARN_BACKLOG = 4096  # new MACs waiting to be learned on the loop before replies wait too
POST_BATCH_WINDOW = 0.005  # s: how long work posted to the loop gathers while it keeps coming
_EAP_OVERHEAD = 10  # EAP header, type, flags and TLS Message Length, under a Framed-MTU
_T = TypeVar("_T")


def _directly(work: Callable[[], _T]) -> _T:
    return work()


@dataclass(frozen=True, slots=True)
class _Nas:
    config: RadiusClientConfig
    policy: NasPolicy


class _Later:
    """process() returns this when a worker will send the reply (and cache it) later."""


_LATER = _Later()


class PasswordVerdict(enum.Enum):
    OK = "ok"
    WRONG = "wrong"
    LOCKED = "locked"  # too many failures: refused whatever the password
    NO_NT_HASH = "no-nt-hash"  # MSCHAPv2: the user has no NT hash kept (set it again)
    NOT_ALLOWED = "not-allowed"  # MSCHAPv2: the realm does not allow it


class _Refusal(NamedTuple):
    """What a refused credential's peer is told (the Reject's Reply-Message, and the message
    of PEAP's MS-CHAPv2 Failure or EAP-TTLS's MS-CHAP-Error), the MS-CHAP error, the counter,
    and what the log says (None: the conversation's own why; {realm} is filled in)."""

    told: str
    error: int
    stat: str
    logged: str | None


_WRONG_CREDENTIALS = "wrong user name or password"  # the same for an unknown user: no probing
_REFUSALS = {
    PasswordVerdict.LOCKED: _Refusal(
        "too many failed sign-ins: locked for a while",
        ERROR_AUTHENTICATION_FAILURE,
        "rejected.eap-locked",
        "locked out by the login throttle",
    ),
    PasswordVerdict.NOT_ALLOWED: _Refusal(
        "MSCHAPv2 (PEAP, or inside EAP-TTLS) is not allowed in this realm: use EAP-TTLS with PAP",
        ERROR_NO_DIALIN_PERMISSION,
        "rejected.eap-no-mschapv2",
        "realm {realm!r} does not allow MSCHAPv2",
    ),
    # The admin's to mend, so the log says which; the peer hears what a wrong password gets.
    PasswordVerdict.NO_NT_HASH: _Refusal(
        _WRONG_CREDENTIALS,
        ERROR_AUTHENTICATION_FAILURE,
        "rejected.eap-no-mschapv2",
        "the user has no MSCHAPv2 credential (NT hash): its password was set before the "
        "realm allowed MSCHAPv2; set it again",
    ),
}
_REFUSED_PASSWORD = _Refusal(
    _WRONG_CREDENTIALS, ERROR_AUTHENTICATION_FAILURE, "rejected.eap-password", None
)


class PasswordChecker:
    """The inner PAP passwords of EAP-TTLS, checked as the portal checks its logins: the
    realm user's scrypt hash (a decoy for an unknown user, so both cost the same), and the
    login throttle per user and per endpoint. Successes are remembered PASSWORD_CACHE_TTL
    seconds under an HMAC (a key made per process) of the realm, user, password and stored
    hash, so a re-authentication costs no scrypt; failures always cost one. The stored hash
    quick() needs is kept too, for PASSWORD_HASH_FRESH seconds while the store's users are
    unchanged: the read costs more than the rest of quick() (25-60 us, measured), and any
    change through the store is seen at once. Thread-safe: the receive thread asks quick(),
    workers run verify()."""

    def __init__(
        self,
        store: Store,
        *,
        ttl: float = PASSWORD_CACHE_TTL,
        capacity: int = PASSWORD_CACHE_SIZE,
        unseal: Callable[[str, bytes], bytes] | None = None,
    ) -> None:
        """`unseal`: Vault.unseal, which opens the NT hashes MSCHAPv2 checks against."""
        self._store = store
        self._unseal = unseal
        self.ttl = ttl
        self.capacity = capacity
        self.throttle = LoginThrottle()
        self.scrypt_checks = 0
        self._key = secrets.token_bytes(32)
        self._remembered: OrderedDict[bytes, float] = OrderedDict()  # fingerprint -> until
        # (realm, user) -> (the store's users_generation before the read, read at, hash)
        self._hashes: dict[tuple[str, str], tuple[int, float, str]] = {}
        self._lock = threading.Lock()
        self._decoy: str | None = None
        # MSCHAPv2's decoys for an unknown user (or one without an NT hash): a sealed value
        # of a sealed NT hash's size that opens to nothing, and an NT hash to check the
        # response against, so the answer costs what a wrong password's does.
        self._nt_decoy = secrets.token_bytes(NT_HASH_BYTES)
        self._sealed_decoy = secrets.token_bytes(SEALED_OVERHEAD + NT_HASH_BYTES)

    def _fingerprint(self, realm: str, user: str, password: bytes, stored: str) -> bytes:
        parts = (realm.encode(), user.encode(), password, stored.encode())
        framed = b"".join(len(part).to_bytes(4, "big") + part for part in parts)
        return hmac.digest(self._key, framed, "sha256")

    def _stored(self, realm: str, user: str, now: float) -> str | None:
        """The user's stored hash: kept from an earlier read while still fresh."""
        generation = self._store.users_generation
        kept = self._hashes.get((realm, user))
        if kept is not None and kept[0] == generation and 0 <= now - kept[1] < PASSWORD_HASH_FRESH:
            return kept[2]
        stored = self._store.password_hash(realm, user)
        if stored is not None:
            if len(self._hashes) >= self.capacity:
                self._hashes.clear()
            self._hashes[(realm, user)] = (generation, now, stored)
        return stored

    def quick(
        self, realm: str, user: str, password: bytes, keys: tuple[str, ...], now: float
    ) -> PasswordVerdict | None:
        """OK when remembered, LOCKED when throttled; None: verify() must decide."""
        with self._lock:
            if self.throttle.locked_until(keys, now) is not None:
                return PasswordVerdict.LOCKED
        stored = self._stored(realm, user, now)
        if stored is None:
            return None
        fingerprint = self._fingerprint(realm, user, password, stored)
        with self._lock:
            until = self._remembered.get(fingerprint)
            if until is not None and until > now:
                return PasswordVerdict.OK
        return None

    def verify(
        self, realm: str, user: str, password: bytes, keys: tuple[str, ...], now: float
    ) -> PasswordVerdict:
        """scrypt, tens of milliseconds: call it off the receive thread when one is free."""
        stored = self._store.password_hash(realm, user)
        with self._lock:
            if self._decoy is None:
                self._decoy = hash_password(secrets.token_urlsafe(16))
            decoy = self._decoy
        try:
            text = password.decode("utf-8")
        except UnicodeDecodeError:
            text = "\ufffd"  # matches no stored password, at the same cost
        try:
            ok = verify_password(text, stored or decoy) and stored is not None
        except CredentialError as exc:
            log.error(
                "stored password hash unusable",
                extra={"realm": realm, "user": user, "error": str(exc)},
            )
            ok = False
        with self._lock:
            self.scrypt_checks += 1
            if self.throttle.locked_until(keys, now) is not None:
                return PasswordVerdict.LOCKED
            if not ok:
                self.throttle.failed(keys, now)
                return PasswordVerdict.WRONG
            self.throttle.succeeded(keys)
            assert stored is not None
            self._remembered[self._fingerprint(realm, user, password, stored)] = now + self.ttl
            while len(self._remembered) > self.capacity:
                self._remembered.popitem(last=False)
        return PasswordVerdict.OK

    def check_nt(
        self,
        realm: str,
        user: str,
        challenge: bytes,
        response: MschapResponse,
        keys: tuple[str, ...],
        now: float,
    ) -> tuple[PasswordVerdict, bytes | None]:
        """MSCHAPv2 (PEAP): the verdict on the peer's NT-Response and, when OK, the
        Authenticator Response that proves we hold the NT hash too. MD4 and DES: microseconds,
        so it runs where it is asked. An unknown user counts as a failure, as a wrong
        password does, and costs what one does (a decoy seal opened, a decoy hash checked,
        as for a user without an NT hash); a user without one does not count as a failure
        (it is not the peer's guess)."""
        with self._lock:
            if self.throttle.locked_until(keys, now) is not None:
                return PasswordVerdict.LOCKED, None
        exists, sealed = self._store.sealed_nt_hash(realm, user)
        proof: bytes | None = None
        if sealed is None:  # no such user, or no NT hash kept for it
            self._decoy_nt_check(realm, user, challenge, response)
            if exists:
                return PasswordVerdict.NO_NT_HASH, None
        else:
            try:
                if self._unseal is None:
                    raise VaultError("no vault to open it with")
                nt_hash = self._unseal(Store.nt_hash_context(realm, user), sealed)
            except VaultError as exc:
                log.error(
                    "stored NT hash unusable",
                    extra={"realm": realm, "user": user, "error": str(exc)},
                )
                return PasswordVerdict.NO_NT_HASH, None
            proof = check_response(nt_hash, challenge, response)
        with self._lock:
            if proof is None:
                self.throttle.failed(keys, now)
                return PasswordVerdict.WRONG, None
            self.throttle.succeeded(keys)
        return PasswordVerdict.OK, proof

    def _decoy_nt_check(
        self, realm: str, user: str, challenge: bytes, response: MschapResponse
    ) -> None:
        """What checking a known user's response costs, spent on decoys."""
        if self._unseal is not None:
            with contextlib.suppress(VaultError):
                self._unseal(Store.nt_hash_context(realm, user), self._sealed_decoy)
        check_response(self._nt_decoy, challenge, response)


@dataclass(slots=True)
class _EapSession:
    """One conversation between its round trips; its lock serialises the receive thread
    and a password worker."""

    conversation: EapConversation
    nas: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    # MSCHAPv2 (PEAP, EAP-TTLS): the verdict on a refused response and its realm, kept for
    # the Reject that follows the peer's answers to our Failure (or MS-CHAP-Error).
    refused: tuple[PasswordVerdict, str] | None = None


@dataclass(frozen=True, slots=True)
class _EapRequest:
    """What answering one EAP Access-Request needs."""

    nas: _Nas
    packet: Packet
    state: bytes | None
    key: Key
    source: tuple[Any, ...]

    @property
    def mac(self) -> str | None:
        """Calling-Station-Id, normalised; None when it is not a MAC. Parsed when asked:
        only the request that ends a conversation needs it."""
        return _station_mac(self.packet)


class RadiusServer:
    """`secret_of(name)`: a vault entry's bytes, or None when it is not set."""

    def __init__(
        self,
        config: ApplianceConfig,
        inventory: Inventory,
        dictionary: Dictionary,
        secret_of: Callable[[str], bytes | None],
        *,
        store: Store | None = None,
        admissions: AdmissionKeeper | None = None,
        eap: EapTls | None = None,
        unseal: Callable[[str, bytes], bytes] | None = None,
    ) -> None:
        """802.1X is served when `eap` is given, which needs `store` (the realm users) and
        `admissions` (the sign-in); without, EAP requests are rejected. `unseal`
        (Vault.unseal) opens the NT hashes MSCHAPv2 (PEAP, EAP-TTLS) checks."""
        if eap is not None and (store is None or admissions is None):
            raise ValueError("EAP needs the store and the admission keeper")
        self.config = config
        self.settings = config.radius
        self.inventory = inventory
        self.dictionary = dictionary
        self._secret_of = secret_of
        self.eap = eap
        self.admissions = admissions
        self.passwords = PasswordChecker(store, unseal=unseal) if store is not None else None
        self._conversations: ConversationTable[_EapSession] = ConversationTable(
            self.settings.eap_sessions, self.settings.eap_timeout
        )
        self._conversations_lock = threading.Lock()
        self._realm_names = frozenset(realm.name for realm in config.realms)
        self.eap_realm = self.settings.eap_realm or (config.realms[0].name if config.realms else "")
        # Password checks that need scrypt, when serving (None: inline, as in unit tests);
        # their replies come back through _finished for the auth port's duplicate cache.
        self._password_workers: Executor | None = None
        self._finished: deque[tuple[Key, bytes | None, float]] = deque()
        self._auth_send: Callable[[bytes, Any], Any] | None = None
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
        # The table is kept in the store (every SESSIONS_SAVE_EVERY while serving, and when
        # stopping), so a restart can still send CoA to the switches holding the sessions.
        self._store = store
        self._unsaved: dict[SessionKey, Session | None] = {}  # changes a failed save kept
        if store is not None:
            self.sessions.load(store.radius_sessions())
        # Plain dicts, not Counters: a Counter's `+=` is a generic subscript (0.1 us against
        # 0.035 for a dict's), and three run on every request. The hot keys are seeded;
        # every other count goes through _bump.
        self.counters: dict[str, int] = dict.fromkeys(_HOT_COUNTERS, 0)
        self._drops_seen: dict[socket.socket, int] = {}  # each serving socket's last count
        self.per_client: dict[str, dict[str, int]] = {
            c.name: dict.fromkeys(_HOT_CLIENT_COUNTERS, 0) for c in self.settings.clients
        }
        self._by_address: dict[str, RadiusClientConfig | None] = {}
        self._nas: dict[str, _Nas | None] = {}
        self._replies: dict[str, bytes] = {}
        self.bound: dict[str, tuple[str, int]] = {}
        # How inventory changes reach the trio loop: directly when the caller is on it (or
        # there is none, as in unit tests); from the receive threads, through the loop.
        self._on_loop: Callable[[Callable[[], Any]], Any] = _directly
        # ... and how they reach it without waiting: _post queues the work in _posted, and
        # the loop runs it in batches (_posted_batches), woken through trio's run_sync_soon
        # only when it is not already at it. A wakeup costs the receive thread a hand-over
        # of the GIL to the loop and back, some hundreds of microseconds: one per new MAC
        # made the first sight of a thousand MACs cost a third of a second (measured).
        # _learning: the MACs posted, not learned yet.
        self._soon: Callable[[Callable[[], Any]], Any] = _directly
        self._posted: deque[Callable[[], Any]] = deque()
        self._posted_wakeup = False  # the loop is woken, or at the batches: no need to wake it
        self._posted_arrived: trio.Event | None = None  # what the batch task waits on
        self._learning: set[str] = set()
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
        if self._finished:
            self._collect_finished()
        return self._handle(data, source, now, AUTH_CODES, self._authorize, self._dedup_auth)

    def _collect_finished(self) -> None:
        """On the auth thread: the replies workers sent, into the duplicate cache (which only
        this thread touches)."""
        while self._finished:
            key, reply, at = self._finished.popleft()
            if reply is None:
                self._dedup_auth.forget(key)
            else:
                self._dedup_auth.answer(key, reply, at)

    def handle_accounting(self, data: bytes, source: tuple[Any, ...], now: float) -> bytes | None:
        return self._handle(data, source, now, ACCOUNTING_CODES, self._account, self._dedup_acct)

    def _handle(
        self,
        data: bytes,
        source: tuple[Any, ...],
        now: float,
        codes: frozenset[Code],
        process: Callable[[_Nas, Packet, tuple[Any, ...], float, Key], bytes | _Later | None],
        dedup: DuplicateCache,
    ) -> bytes | None:
        counters = self.counters
        counters["received"] += 1
        client = self._client_at(source[0])
        if client is None:
            _bump(counters, "dropped.unknown-client")
            return None
        nas = self._nas[client.name]
        if nas is None:
            _bump(counters, "dropped.no-secret")
            _bump(self.per_client[client.name], "dropped.no-secret")
            return None
        if len(data) < 20:
            self._drop(nas, Drop.MALFORMED)
            return None
        key: Key = (source[0], source[1], data[0], data[1], data[4:20])
        seen = dedup.arrive(key, now)
        if seen is not NEW:
            counters["duplicates"] += 1
            return seen.reply
        result = accept_request(data, nas.policy, codes)
        if isinstance(result, Drop):
            dedup.forget(key)
            self._drop(nas, result)
            return None
        try:
            reply = process(nas, result, source, now, key)
        except RadiusError as exc:
            dedup.forget(key)
            self._drop(nas, Drop.MALFORMED, str(exc))
            return None
        if reply is _LATER:
            return None  # a worker answers; the entry stays in progress until then
        if not isinstance(reply, bytes):
            dedup.forget(key)
            return None
        dedup.answer(key, reply, now)
        counters["answered"] += 1
        return reply

    def _drop(self, nas: _Nas, reason: Drop, detail: str = "") -> None:
        _bump(self.counters, "dropped." + reason.value)
        _bump(self.per_client[nas.config.name], "dropped." + reason.value)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "RADIUS request dropped",
                extra={"client": nas.config.name, "reason": reason.value, "detail": detail},
            )

    def _authorize(
        self, nas: _Nas, packet: Packet, source: tuple[Any, ...], now: float, key: Key
    ) -> bytes | _Later | None:
        secret = nas.policy.secret
        stats = self.per_client[nas.config.name]
        if packet.code == Code.STATUS_SERVER:  # RFC 5997 §3: alive, and the secret is right
            _bump(stats, "status-server")
            return auth.encode_reply(
                Code.ACCESS_ACCEPT, packet.identifier, packet.authenticator, (), secret
            )
        eap = packet.joined(EAP_MESSAGE)
        if eap is not None:  # 802.1X; accept_request dropped it if it came without an MA
            try:
                return self._eap(nas, packet, eap, source, now, key)
            except (RadiusError, trio.RunFinishedError):
                raise
            except Exception:
                # A bug must cost one request, never the auth port's receive thread.
                _bump(stats, "dropped.eap-error")
                log.exception("802.1X request failed", extra={"client": nas.config.name})
                return None
        name, hidden = packet.first(USER_NAME), packet.first(USER_PASSWORD)
        mac = None
        if name is not None and hidden is not None:
            password = auth.reveal_password(hidden, secret, packet.authenticator)
            mac = mab_mac(name, password)  # reveal_password strips the NUL padding
        if mac is None:
            # Plain user PAP is not served (users sign in with 802.1X or at the portal): a
            # clear no, not silence.
            _bump(stats, "rejected.not-mab")
            return auth.encode_reply(
                Code.ACCESS_REJECT,
                packet.identifier,
                packet.authenticator,
                self.dictionary.encode(
                    "Reply-Message", "only MAC authentication and 802.1X (EAP) are served"
                ),
                secret,
            )
        endpoint = self.inventory.get(mac)
        if endpoint is None:
            role = QUARANTINE  # what a new endpoint gets, learned or refused (inventory full)
            self._learn_soon(mac, now)
        else:
            role = endpoint.role
        stats["accepted.mab"] += 1
        return auth.encode_signed_reply(
            Code.ACCESS_ACCEPT,
            packet.identifier,
            packet.authenticator,
            self._role_reply(role),
            secret,
        )

    # --- 802.1X (RFC 3579) --------------------------------------------------------------------

    def _eap(
        self, nas: _Nas, packet: Packet, eap: bytes, source: tuple[Any, ...], now: float, key: Key
    ) -> bytes | _Later | None:
        stats = self.per_client[nas.config.name]
        request = _EapRequest(nas, packet, packet.first(STATE), key, source)
        if self.eap is None:
            _bump(stats, "rejected.eap-not-served")
            return self._eap_reject(request, _failure_for(eap), "802.1X (EAP) is not served")
        if request.state is None:
            mtu = packet.first(FRAMED_MTU)
            fragment = DEFAULT_FRAGMENT
            if mtu is not None and len(mtu) == 4:
                fragment = max(64, min(fragment, int.from_bytes(mtu, "big") - _EAP_OVERHEAD))
            session = _EapSession(
                EapConversation(self.eap.methods, self.eap.engine, fragment_size=fragment),
                nas.config.name,
            )
            step = session.conversation.receive(eap)
            if isinstance(step, Challenge):
                state = secrets.token_bytes(16)
                with self._conversations_lock:
                    added = self._conversations.add(state, session, now)
                if not added:
                    _bump(stats, "rejected.eap-busy")
                    return self._eap_reject(
                        request,
                        _failure_for(eap),
                        "too many 802.1X sign-ins under way: try again shortly",
                    )
                _bump(stats, "eap.started")
                request = _EapRequest(nas, packet, state, key, source)
            return self._eap_step(request, session, step, now)
        with self._conversations_lock:
            found = self._conversations.get(request.state, now)
        if found is None or found.nas != nas.config.name:
            _bump(stats, "rejected.eap-unknown-state")
            return self._eap_reject(
                request, _failure_for(eap), "the 802.1X sign-in timed out: start again"
            )
        with found.lock:
            step = found.conversation.receive(eap)
        return self._eap_step(request, found, step, now)

    def _eap_step(
        self, request: _EapRequest, session: _EapSession, step: Step, now: float
    ) -> bytes | _Later | None:
        stats = self.per_client[request.nas.config.name]
        if isinstance(step, Challenge):
            assert request.state is not None
            _bump(stats, "eap.challenge")
            packet = request.packet
            return auth.encode_reply(
                Code.ACCESS_CHALLENGE,
                packet.identifier,
                packet.authenticator,
                [*split_value(EAP_MESSAGE, step.eap), (STATE, request.state)],
                request.nas.policy.secret,
            )
        if isinstance(step, Discard):
            _bump(stats, "dropped.eap-discarded")
            if log.isEnabledFor(logging.DEBUG):
                log.debug("EAP message discarded", extra={"why": step.why})
            return None
        if isinstance(step, CheckPassword):
            return self._check_password(request, session, step, now)
        if isinstance(step, CheckNtResponse):
            return self._check_nt_response(request, session, step, now)
        self._end(request)
        if isinstance(step, Failure):
            if session.refused is not None:  # MSCHAPv2, after the peer was told why
                verdict, realm = session.refused
                reply, stat = self._credential_failure(request, session, step, verdict, realm)
                _bump(stats, stat)
                return reply
            _bump(stats, "rejected.eap")
            self._log_failure(request, session, step.why)
            return self._eap_reject(request, step.eap, "802.1X authentication failed")
        reply, stat = self._eap_success(request, session, step, now)
        _bump(stats, stat)
        return reply

    def _user_of(self, session: _EapSession, name: str) -> tuple[str, str]:
        """(realm, user) of a name the conversation authenticates (the inner one, or the
        certificate's): the realm it names, else the one its outer identity names
        ("anonymous@guests"), else radius.eap_realm."""
        outer, _ = split_identity(session.conversation.identity or "", self._realm_names, "")
        return split_identity(name, self._realm_names, outer or self.eap_realm)

    def _end(self, request: _EapRequest) -> None:
        if request.state is not None:
            with self._conversations_lock:
                self._conversations.remove(request.state)

    def _check_password(
        self, request: _EapRequest, session: _EapSession, step: CheckPassword, now: float
    ) -> bytes | _Later:
        assert self.passwords is not None
        realm, user = self._user_of(session, step.user)
        keys = (f"user:{realm}/{user}", f"endpoint:{request.mac or request.nas.config.name}")
        verdict = self.passwords.quick(realm, user, step.password, keys, now)
        if verdict is None and self._password_workers is not None:
            self._password_workers.submit(
                self._check_later, request, session, realm, user, step.password, keys
            )
            return _LATER
        if verdict is None:
            verdict = self.passwords.verify(realm, user, step.password, keys, now)
        reply, stat = self._password_result(request, session, verdict, now)
        _bump(self.per_client[request.nas.config.name], stat)
        return reply

    def _check_nt_response(
        self, request: _EapRequest, session: _EapSession, step: CheckNtResponse, now: float
    ) -> bytes | _Later | None:
        """MSCHAPv2 (PEAP, or EAP-TTLS's MS-CHAP-V2): checked here on the receive thread (no
        scrypt in it). A refusal is told to the peer first (PEAP's MS-CHAPv2 Failure, or
        EAP-TTLS's MS-CHAP-Error); the Reject comes after."""
        assert self.passwords is not None
        realm, user = self._user_of(session, step.user)
        settings = self.config.realm(realm)
        keys = (f"user:{realm}/{user}", f"endpoint:{request.mac or request.nas.config.name}")
        if settings is None or not settings.mschapv2:
            verdict, proof = PasswordVerdict.NOT_ALLOWED, None
        else:
            verdict, proof = self.passwords.check_nt(
                realm, user, step.challenge, step.response, keys, now
            )
        refusal = _REFUSALS.get(verdict, _REFUSED_PASSWORD)
        if proof is None:
            session.refused = (verdict, realm)
        with session.lock:
            answer = session.conversation.nt_response_checked(
                proof, error=refusal.error, message=refusal.told
            )
        return self._eap_step(request, session, answer, now)

    def _check_later(
        self,
        request: _EapRequest,
        session: _EapSession,
        realm: str,
        user: str,
        password: bytes,
        keys: tuple[str, ...],
    ) -> None:
        """On a password worker: scrypt, the conversation's answer, and the reply sent from
        here; the auth thread files it in its duplicate cache (_collect_finished)."""
        assert self.passwords is not None
        reply: bytes | None = None
        stat = ""
        try:
            verdict = self.passwords.verify(realm, user, password, keys, time.time())
            reply, stat = self._password_result(request, session, verdict, time.time())
        except trio.RunFinishedError:
            pass  # the daemon is stopping
        except Exception:
            log.exception("802.1X password check failed", extra={"realm": realm, "user": user})
        self._finished.append((request.key, reply, time.time()))
        # Counted here, at once, as the accounting thread counts beside the auth one (the
        # counters are views; the GIL makes each increment all but atomic).
        if stat:
            _bump(self.per_client[request.nas.config.name], stat)
        send = self._auth_send
        if reply is not None and send is not None:
            self.counters["answered"] += 1
            try:
                send(reply, request.source)
            except OSError:
                _bump(self.counters, "send-failed")

    def _password_result(
        self, request: _EapRequest, session: _EapSession, verdict: PasswordVerdict, now: float
    ) -> tuple[bytes, str]:
        with session.lock:
            step = session.conversation.password_checked(verdict is PasswordVerdict.OK)
        self._end(request)
        if isinstance(step, Success):
            return self._eap_success(request, session, step, now)
        assert isinstance(step, Failure)
        return self._credential_failure(request, session, step, verdict)

    def _credential_failure(
        self,
        request: _EapRequest,
        session: _EapSession,
        step: Failure,
        verdict: PasswordVerdict,
        realm: str = "",
    ) -> tuple[bytes, str]:
        """The Reject for a refused password or MSCHAPv2 response, and its counter."""
        refusal = _REFUSALS.get(verdict, _REFUSED_PASSWORD)
        logged = step.why if refusal.logged is None else refusal.logged.format(realm=realm)
        self._log_failure(request, session, logged)
        return self._eap_reject(request, step.eap, refusal.told), refusal.stat

    def _eap_success(
        self, request: _EapRequest, session: _EapSession, step: Success, now: float
    ) -> tuple[bytes, str]:
        """The authenticated user signs the endpoint in (Layer 2 only): its role's VLAN and
        the MPPE keys in an Access-Accept, or a Reject when the sign-in is refused."""
        assert self.admissions is not None
        method = _METHOD_NAMES[step.method]
        realm_name, user = self._user_of(session, step.user)
        realm = self.config.realm(realm_name)
        mac = request.mac
        if mac is None or realm is None:
            why = "no Calling-Station-Id MAC" if mac is None else f"no realm {realm_name!r}"
            self._log_failure(request, None, why, user=step.user)
            failure = encode_eap(EapCode.FAILURE, step.eap[1])
            return self._eap_reject(request, failure, "802.1X sign-in refused: " + why), (
                "rejected.eap-sign-in"
            )
        if self.inventory.get(mac) is None:
            self._learn_soon(mac, now)  # posted before the keeper's role change: learned first
        # The keeper reads the store here and sends only what changes to the loop; the move
        # to remediation is posted without waiting, as the learning.
        decision = self.admissions.sign_in_layer2(
            mac, realm, user, on_loop=self._on_loop, post=self._post
        )
        if decision.outcome is AdmissionOutcome.DENIED or decision.role is None:
            self._log_failure(request, None, decision.message, user=step.user)
            failure = encode_eap(EapCode.FAILURE, step.eap[1])
            return self._eap_reject(request, failure, decision.message or "sign-in refused"), (
                "rejected.eap-sign-in"
            )
        log.info(
            "802.1X sign-in",
            extra={
                "client": request.nas.config.name,
                "method": method,
                "realm": realm.name,
                "user": user,
                "mac": mac,
                "role": decision.role,
                "outcome": decision.outcome.value,
            },
        )
        packet, secret = request.packet, request.nas.policy.secret
        receive_key, send_key = mppe_keys(step.msk)
        encode = self.dictionary.encode
        body = encode_attributes(
            [
                *split_value(EAP_MESSAGE, step.eap),
                *encode(
                    "MS-MPPE-Recv-Key",
                    receive_key,
                    secret=secret,
                    authenticator=packet.authenticator,
                ),
                *encode(
                    "MS-MPPE-Send-Key", send_key, secret=secret, authenticator=packet.authenticator
                ),
            ]
        )
        body += self._role_reply(decision.role)
        message = decision.message or f"signed in as {realm.name}/{user}: role {decision.role}"
        body += encode_attributes([(USER_NAME, _clipped(step.user)), *self._reply_message(message)])
        reply = auth.encode_signed_reply(
            Code.ACCESS_ACCEPT, packet.identifier, packet.authenticator, body, secret
        )
        return reply, f"accepted.{method}"

    def _eap_reject(self, request: _EapRequest, failure: bytes, message: str) -> bytes:
        packet = request.packet
        return auth.encode_reply(
            Code.ACCESS_REJECT,
            packet.identifier,
            packet.authenticator,
            [*split_value(EAP_MESSAGE, failure), *self._reply_message(message)],
            request.nas.policy.secret,
        )

    def _reply_message(self, text: str) -> list[Attribute]:
        return [(REPLY_MESSAGE, _clipped(text))]

    def _log_failure(
        self, request: _EapRequest, session: _EapSession | None, why: str, *, user: str = ""
    ) -> None:
        conversation = session.conversation if session is not None else None
        method = conversation.method if conversation is not None else None
        log.info(
            "802.1X sign-in refused",
            extra={
                "client": request.nas.config.name,
                "mac": request.mac,
                "identity": conversation.identity if conversation is not None else None,
                "method": method.name if method is not None else None,
                "user": user,
                "why": why,
            },
        )

    def _learn_soon(self, mac: str, now: float) -> None:
        """A new MAC (MAB, 802.1X), learned on the trio loop without the reply waiting for it
        (a storm of new MACs after a power cut is answered at the receive thread's pace). Once
        per MAC while it waits; past LEARN_BACKLOG waiting, each waits for the loop again,
        which bounds the work queued there."""
        if mac in self._learning:
            return
        if len(self._learning) >= LEARN_BACKLOG:
            _bump(self.counters, "learn.waited")
            self._on_loop(partial(self._learn, mac, now, None))
            return
        self._learning.add(mac)
        self._post(partial(self._learned_soon, mac, now))

    def _post(self, work: Callable[[], Any]) -> None:
        """Run `work` on the trio loop without waiting, in order with the rest posted; the
        loop is woken only when no wakeup is already on its way. Any thread."""
        self._posted.append(work)
        if not self._posted_wakeup:
            self._posted_wakeup = True
            self._soon(self._wake_posted)

    def _wake_posted(self) -> None:
        """On the loop: the batch task's wakeup; without one (not serving), the batch."""
        if self._posted_arrived is not None:
            self._posted_arrived.set()
        else:
            self._posted_wakeup = False
            self._run_posted()

    async def _posted_batches(self) -> None:
        """On the loop while serving: once woken, run what was posted, then again every
        POST_BATCH_WINDOW while more keeps coming (the posters see the flag and do not wake
        the loop), and sleep again once a window brings nothing."""
        while True:
            self._posted_arrived = arrived = trio.Event()
            await arrived.wait()
            while True:
                self._run_posted()
                await trio.sleep(POST_BATCH_WINDOW)
                if self._posted:
                    continue
                self._posted_wakeup = False
                if not self._posted:
                    break
                # Posted between the check and the clear: its poster may have woken us
                # (a spare wakeup, harmless) or not; either way it is run next.
                self._posted_wakeup = True

    async def _reload_crl_every(self, period: float) -> None:
        """EAP-TLS's CRL, read again when its file changes (EapTls.reload_crl), on a worker
        thread: parsing a long one must not hold up the receive threads."""
        assert self.eap is not None
        while True:
            await trio.sleep(period)
            await trio.to_thread.run_sync(self.eap.reload_crl)

    async def _save_sessions_every(self, period: float) -> None:
        while True:
            await trio.sleep(period)
            self.expire_sessions(time.time())
            self.save_sessions()

    def expire_sessions(self, now: float) -> int:
        """Drop the sessions no accounting has refreshed for `radius.session_idle`."""
        with self._sessions_lock:
            ended = self.sessions.expire(now, self.settings.session_idle)
        if ended:
            _bump(self.counters, "sessions.expired", ended)
            log.info("RADIUS sessions expired", extra={"count": ended})
        return ended

    def save_sessions(self) -> bool:
        """Write the session table's changes to the store, in one transaction. When that
        fails, they are kept and tried again with the next (logged; False)."""
        if self._store is None:
            return True
        with self._sessions_lock:
            changes = self.sessions.take_changes()
        if self._unsaved:
            self._unsaved.update(changes)  # the newer state of a key wins
            changes, self._unsaved = self._unsaved, {}
        if not changes:
            return True
        try:
            self._store.save_radius_sessions(changes)
        except StoreError as exc:
            self._unsaved = changes
            log.error("RADIUS sessions not saved", extra={"error": str(exc)})
            return False
        return True

    def _run_posted(self) -> None:
        """On the loop: what was posted, in order. At most what is queued now runs, so
        threads that keep posting cannot hold the loop here."""
        posted = self._posted
        for _ in range(len(posted)):
            work = posted.popleft()
            try:
                work()
            except Exception:  # a bug costs that one change, not the loop or the rest
                _bump(self.counters, "posted.failed")
                log.exception("posted RADIUS work failed")

    def _learned_soon(self, mac: str, now: float) -> None:
        self._learning.discard(mac)
        self._learn(mac, now, None)

    def _learn(self, mac: str, now: float, ip: str | None) -> Endpoint | None:
        """On the trio loop: the inventory learns `mac` (and `ip`) from RADIUS."""
        self.inventory.observe([Observation(ObservationSource.RADIUS, mac, now, ip=ip)])
        return self.inventory.get(mac)

    def session_list(self) -> list[Session]:
        with self._sessions_lock:
            return self.sessions.sessions()

    def _account(
        self, nas: _Nas, packet: Packet, source: tuple[Any, ...], now: float, _key: Key
    ) -> bytes:
        address = _unmapped(source[0])
        stats = self.per_client[nas.config.name]
        decoded = self.dictionary.decode(packet)
        try:
            record = accounting_record(decoded)
        except AccountingError as exc:
            _bump(stats, "accounting.ignored")
            log.info(
                "accounting request kept out of the session table",
                extra={"client": nas.config.name, "reason": str(exc)},
            )
        else:
            _bump(stats, f"accounting.{record.status.name.lower()}")
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
            message_authenticator=packet.message_authenticator_at is not None,
        )

    # --- the sockets -----------------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Bind both ports and serve them, each from its own thread (_receive): a request
        costs a share of two system calls, not an event-loop round trip. What must change the
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
        self._soon = token.run_sync_soon
        self._auth_send = auth_sock.sendto
        if self.eap is not None:
            self._password_workers = ThreadPoolExecutor(
                PASSWORD_WORKERS, thread_name_prefix="radius-password"
            )
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
                nursery.start_soon(self._posted_batches)
                if self._store is not None:
                    nursery.start_soon(self._save_sessions_every, SESSIONS_SAVE_EVERY)
                if self.eap is not None and self.eap.watches_crl:
                    nursery.start_soon(self._reload_crl_every, CRL_CHECK_EVERY)
                self._nursery = nursery
                task_status.started()
        finally:
            self._nursery = None
            stop.set()
            for sock in (auth_sock, acct_sock):
                _wake(sock)  # its thread sees the shutdown, stops and closes it
            if self._password_workers is not None:
                self._password_workers.shutdown(wait=False, cancel_futures=True)
                self._password_workers = None
            self._auth_send = None
            self._on_loop = self._soon = _directly
            # Posted work the batch task will no longer run: done here, on the loop.
            self._posted_arrived = None
            self._posted_wakeup = False
            self._run_posted()
            self.save_sessions()  # what changed since the last save, before the daemon ends

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
            self._audit_coa(session, why, view)
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
        _bump(self.counters, f"coa.{outcome.next.value}")
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
        self._audit_coa(session, why, view)
        return view

    def _audit_coa(self, session: Session, why: str, view: dict[str, Any]) -> None:
        """The push in the endpoint's history (`appliance endpoints show`): which NAS and
        session, why, the outcome, and each request with its answer, NAK Error-Cause and
        tries. On the loop, as the inventory is."""
        if session.mac is None:
            return
        detail = {
            "nas": session.nas,
            "session_id": session.session_id,
            "why": why,
            "outcome": view["outcome"],
        }
        if "steps" in view:
            detail["steps"] = "; ".join(_coa_step_text(step) for step in view["steps"])
        else:
            detail["detail"] = view["why"]
        self.inventory.record(EndpointEvent(time.time(), session.mac, EventKind.COA, detail))

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
        """Serve `sock` until `stop` is set and the socket is shut down (_wake), then close
        it: batches of datagrams through recvmmsg/sendmmsg where the system has them (two
        system calls per batch), else one datagram at a time (two per request)."""
        sock.setblocking(True)  # and no timeout: no poll before each receive
        self._drops_seen[sock] = _drops(sock)  # the kernel's count of datagrams dropped
        try:
            self._receive_batches(
                sock,
                Batches.open(sock, RECEIVE_BATCH, MAX_DATAGRAM) or OneAtATime(sock, MAX_DATAGRAM),
                handle,
                stop,
            )
        finally:
            self._count_drops(sock)
            del self._drops_seen[sock]
            sock.close()

    def _receive_batches(
        self,
        sock: socket.socket,
        batches: Batches | OneAtATime,
        handle: Callable[[bytes, tuple[Any, ...], float], bytes | None],
        stop: threading.Event,
    ) -> None:
        """Take every queued datagram (up to RECEIVE_BATCH) in one call, answer each in
        arrival order, and send the replies in one call. Under load the queue is rarely
        short of a batch, so both calls are shared by many requests; an idle server's one
        request still goes out as soon as it is answered. With OneAtATime, each batch is
        one datagram (a recvfrom and a sendto)."""
        receive, send, clock = batches.receive, batches.send, time.time
        drops_due = clock() + DROPS_POLL
        while not stop.is_set():
            try:
                datagrams = receive()
            except OSError as exc:  # an ICMP error queued on the socket, say
                if exc.errno in _TRANSIENT_RECEIVE_ERRORS:
                    continue
                raise
            now = clock()
            if now >= drops_due:
                self._count_drops(sock)
                drops_due = now + DROPS_POLL
            replies = []
            for slot, (data, source) in enumerate(datagrams):
                if source is None:
                    return  # shut down (_wake): the server is stopping
                try:
                    reply = handle(data, source, now)
                except trio.RunFinishedError:
                    return  # the daemon is stopping
                if reply is not None:
                    replies.append((slot, reply))
            if replies:
                for _ in send(replies):
                    _bump(self.counters, "send-failed")

    def _count_drops(self, sock: socket.socket) -> None:
        total, counted = _drops(sock), self._drops_seen[sock]
        if total != counted:
            _bump(self.counters, "dropped.overload", (total - counted) & 0xFFFFFFFF)
            self._drops_seen[sock] = total

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


_HOT_COUNTERS = ("received", "answered", "duplicates")
_HOT_CLIENT_COUNTERS = ("accepted.mab",)


_METHOD_NAMES = {EapType.TTLS: "eap-ttls", EapType.TLS: "eap-tls", EapType.PEAP: "peap"}


def _bump(counts: dict[str, int], key: str, by: int = 1) -> None:
    counts[key] = counts.get(key, 0) + by


def _coa_step_text(step: dict[str, Any]) -> str:
    """One request of a push, as its event says it: "coa-request nak 401 (1 try)"."""
    if step["acked"]:
        answer = "ack"
    elif step["error_cause"] is not None:
        answer = f"nak {step['error_cause']}"
    else:
        answer = step["why"] or "no answer"  # "no answer", or a NAK without an Error-Cause
    tries = step["tries"]
    return f"{step['request']} {answer} ({tries} {'try' if tries == 1 else 'tries'})"


def _clipped(text: str) -> bytes:
    """`text` in one attribute: cut at 253 octets, never inside a UTF-8 character."""
    return text.encode("utf-8")[:MAX_VALUE].decode("utf-8", "ignore").encode("utf-8")


def _station_mac(packet: Packet) -> str | None:
    """The endpoint's MAC from Calling-Station-Id (RFC 3580 §3.20), in any common format."""
    raw = packet.first(CALLING_STATION_ID)
    if raw is None:
        return None
    try:
        return parse_mac(raw.decode("ascii"))
    except (UnicodeDecodeError, InvalidMac):
        return None


def _failure_for(eap: bytes) -> bytes:
    """EAP-Failure for a message outside any conversation, with its identifier."""
    return encode_eap(EapCode.FAILURE, eap[1] if len(eap) >= 2 else 0)


def _unmapped(address: str) -> str:
    """An IPv4 source as a dual-stack socket reports it (::ffff:a.b.c.d), as a.b.c.d."""
    if address.startswith("::ffff:"):
        return address[7:]
    return address


def _drops(sock: socket.socket) -> int:
    """The socket's count of datagrams the kernel dropped (a full receive buffer, mostly):
    SK_MEMINFO_DROPS, a native __u32; 0 where SO_MEMINFO is missing."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 4 * (_SK_MEMINFO_DROPS + 1))
    except OSError:
        return 0
    if len(raw) < 4 * (_SK_MEMINFO_DROPS + 1):
        return 0
    at = 4 * _SK_MEMINFO_DROPS
    return int.from_bytes(raw[at : at + 4], sys.byteorder)


def _wake(sock: socket.socket) -> None:
    """Shut `sock` down for reading: a thread blocked in recvfrom on it returns (b"", None).
    Linux does it on an unconnected UDP socket too, answering ENOTCONN."""
    # ENOTCONN: done all the same; EBADF: its thread closed it already.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)


def _udp_socket(address: str, port: int, receive_buffer: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.bind((address, port))
    except OSError:
        sock.close()
        raise
    return sock
