"""802.1X through RadiusServer's per-datagram entry point (no sockets): a NAS double carries
the EAP peer of test_eap_conversation in Access-Requests (EAP-Message split at 253 octets,
the State echoed, Calling-Station-Id the endpoint), and reads the Challenges, Accepts and
Rejects: the MPPE keys, the role's VLAN, Layer-2-only remediation, the password cache and
throttle, the conversation table's bounds, and a password checked on a worker thread."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from netaccess.config import DEFAULT_CONFIG_TEXT, ApplianceConfig, load_config_text
from netaccess.config.radius_dictionary import standard_dictionary
from netaccess.io.admission import LAYER2_INSTRUCTIONS, AdmissionKeeper
from netaccess.io.eap_tls import EapTls
from netaccess.io.inventory import Inventory
from netaccess.io.radius import (
    PASSWORD_HASH_FRESH,
    PasswordChecker,
    PasswordVerdict,
    RadiusServer,
)
from netaccess.policy.credentials import LoginThrottle, ThrottlePolicy, hash_password
from netaccess.proto.radius import auth
from netaccess.proto.radius.dictionary import named
from netaccess.proto.radius.eap import EapCode, EapType, decode_eap, encode_eap
from netaccess.proto.radius.packet import (
    EAP_MESSAGE,
    MESSAGE_AUTHENTICATOR,
    STATE,
    Attribute,
    Code,
    decode_packet,
    split_value,
)
from netaccess.store import Store
from tests.unit.test_admission_keeper import report
from tests.unit.test_eap_conversation import EapPeer, Pki, make_pki

SECRET = b"eap-unit-secret"
NAS = ("192.0.2.10", 40000)
MAC = "02:00:00:00:00:01"  # the MAC test_admission_keeper's reports are for
D = standard_dictionary()
CLIENT = '[[radius.clients]]\nname = "sw"\naddress = "192.0.2.10"\nsecret = "sw"\n'


def config(pki: Pki | None = None, extra: str = "") -> ApplianceConfig:
    text = DEFAULT_CONFIG_TEXT
    if pki is not None:
        text = text.replace('eap_tls_ca = ""', f'eap_tls_ca = "{pki.ca.path}"')
    return load_config_text(text.replace("eap_sessions = 4096", extra) + CLIENT, "t.toml")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("eap-io-pki"))


@pytest.fixture(scope="module")
def alice_hash() -> str:
    return hash_password("correct horse")


@pytest.fixture
def store(alice_hash: str) -> Iterator[Store]:
    with Store.open_memory() as opened:
        opened.add_user("staff", "alice", alice_hash, 1.0)
        yield opened


def server_for(store: Store, pki: Pki, cfg: ApplianceConfig | None = None) -> RadiusServer:
    cfg = cfg or config(pki)
    inventory = Inventory(store, [])
    admissions = AdmissionKeeper(cfg, store, inventory, lambda: None)
    eap = EapTls(pki.server.certificate, pki.server.key, cfg.radius.eap_tls_ca)
    return RadiusServer(
        cfg, inventory, D, {"sw": SECRET}.get, store=store, admissions=admissions, eap=eap
    )


class Switch:
    """The NAS: EAP from the peer into Access-Requests and back, State echoed."""

    def __init__(
        self,
        server: RadiusServer,
        peer: EapPeer | None,
        *,
        station: str | None = "02-00-00-00-00-01",
    ) -> None:
        self.server = server
        self.peer = peer
        self.station = station
        self.state: bytes | None = None
        self.identifier = 0
        self.now = 1000.0
        self.last_request = b""
        self.last_reply: bytes | None = None

    def request(self, eap: bytes, *, ma: bool = True, state: bytes | None = None) -> bytes:
        self.identifier = (self.identifier + 1) & 0xFF
        attributes: list[Attribute] = [
            *D.encode("User-Name", "alice@staff"),
            *D.encode("NAS-Port-Type", "Ethernet"),
            *D.encode("Framed-MTU", 1400),
        ]
        if self.station is not None:
            attributes += D.encode("Calling-Station-Id", self.station)
        attributes += split_value(EAP_MESSAGE, eap)
        if state is not None or self.state is not None:
            attributes.append((STATE, state if state is not None else self.state or b""))
        self.last_request = auth.encode_request(
            Code.ACCESS_REQUEST,
            self.identifier,
            attributes,
            SECRET,
            authenticator=os.urandom(16),
            message_authenticator=ma,
        )
        return self.last_request

    def send(self, eap: bytes, **kwargs: Any) -> bytes | None:
        self.last_reply = self.server.handle_auth(self.request(eap, **kwargs), NAS, self.now)
        return self.last_reply

    def exchange(self, eap: bytes, **kwargs: Any) -> dict[str, list[Any]]:
        """One round trip: the reply's attributes by name (with "code")."""
        reply = self.send(eap, **kwargs)
        return reply_of(self.last_request, reply)

    def run(self, *, limit: int = 60) -> dict[str, list[Any]]:
        """EAP-Start to the end: the last reply's attributes by name (with "code")."""
        assert self.peer is not None
        reply = self.send(b"")
        for _ in range(limit):
            found = reply_of(self.last_request, reply)
            if found["code"] != [Code.ACCESS_CHALLENGE]:
                return found
            (self.state,) = found["State"]
            (eap,) = found["EAP-Message"]
            reply = self.send(self.peer.answer(eap))
        raise AssertionError("no end")


def reply_of(request: bytes, reply: bytes | None) -> dict[str, list[Any]]:
    assert reply is not None, "no reply"
    packet = decode_packet(reply)
    auth.verify_reply(reply, packet, request[4:20], SECRET)
    assert packet.attributes[0][0] == MESSAGE_AUTHENTICATOR  # first, always
    decoded = D.decode(packet, secret=SECRET, authenticator=request[4:20])
    return {"code": [packet.code], **named(decoded)}


def ttls(pki: Pki, password: bytes = b"correct horse", **kwargs: Any) -> EapPeer:
    return EapPeer(pki, EapType.TTLS, password=password, **kwargs)


def test_ttls_pap_accepts_with_the_mppe_keys_and_layer_2_remediation(
    store: Store, pki: Pki
) -> None:
    server = server_for(store, pki)
    peer = ttls(pki)
    found = Switch(server, peer).run()
    assert found["code"] == [Code.ACCESS_ACCEPT]
    (success,) = found["EAP-Message"]
    assert decode_eap(success).code is EapCode.SUCCESS
    msk = peer.msk()
    assert found["MS-MPPE-Recv-Key"] == [msk[:32]]
    assert found["MS-MPPE-Send-Key"] == [msk[32:]]
    assert found["Tunnel-Private-Group-Id"] == ["998"]  # remediation: no posture yet
    assert found["User-Name"] == ["alice"]
    assert found["Reply-Message"] == [LAYER2_INSTRUCTIONS]
    endpoint = server.inventory.get(MAC)
    assert endpoint is not None and endpoint.role == "remediation"
    assert server.per_client["sw"]["accepted.eap-ttls"] == 1


def test_the_mppe_keys_are_salted_per_reply(store: Store, pki: Pki) -> None:
    server = server_for(store, pki)
    switch = Switch(server, ttls(pki))
    switch.run()
    packet = decode_packet(switch.last_reply or b"")
    raw = [value for vendor, _, value in packet.vendor_attributes() if vendor == 311]
    assert len(raw) == 2 and all(len(value) == 2 + 48 for value in raw)  # salt + 3 blocks
    assert all(value[0] & 0x80 for value in raw)  # the salt's high bit


def test_with_a_usable_posture_report_the_role_is_mapped(store: Store, pki: Pki) -> None:
    store.add_posture_reports([report(999.0)])
    server = server_for(store, pki)
    switch = Switch(server, ttls(pki))
    switch.now = 1000.0
    found = switch.run()
    assert found["code"] == [Code.ACCESS_ACCEPT]
    assert found["Tunnel-Private-Group-Id"] == ["100"]  # full
    assert found["Session-Timeout"] == [3600]
    assert server.admissions is not None and server.admissions.standing(MAC) is not None


def test_a_wrong_password_is_rejected_with_eap_failure(store: Store, pki: Pki) -> None:
    server = server_for(store, pki)
    found = Switch(server, ttls(pki, b"wrong")).run()
    assert found["code"] == [Code.ACCESS_REJECT]
    (failure,) = found["EAP-Message"]
    assert decode_eap(failure).code is EapCode.FAILURE
    assert found["Reply-Message"] == ["wrong user name or password"]
    assert server.inventory.get(MAC) is None
    assert server.per_client["sw"]["rejected.eap-password"] == 1


def test_an_unknown_user_is_rejected_as_a_wrong_password(store: Store, pki: Pki) -> None:
    server = server_for(store, pki)
    found = Switch(server, ttls(pki, user="mallory")).run()
    assert found["Reply-Message"] == ["wrong user name or password"]


def test_the_realm_comes_from_the_inner_name(store: Store, pki: Pki, alice_hash: str) -> None:
    store.add_user("guests", "alice", alice_hash, 1.0)
    guests = '[[realms]]\nname = "guests"\nrole = "full"\ntitle = "Guests"\n'
    server = server_for(store, pki, load_config_text(DEFAULT_CONFIG_TEXT + CLIENT + guests, "t"))
    assert server.eap_realm == "staff"
    for name in ("guests\\alice", "alice@guests"):
        found = Switch(server, ttls(pki, user=name)).run()
        assert found["code"] == [Code.ACCESS_ACCEPT], found
    store.set_password("guests", "alice", hash_password("another one"), 2.0)
    found = Switch(server, ttls(pki, user="alice@guests")).run()
    assert found["code"] == [Code.ACCESS_REJECT]  # the guests' alice has another password now
    assert Switch(server, ttls(pki, user="alice")).run()["code"] == [Code.ACCESS_ACCEPT]


def test_an_inner_name_without_a_realm_takes_the_outer_identitys(
    store: Store, pki: Pki, alice_hash: str, caplog: pytest.LogCaptureFixture
) -> None:
    store.add_user("guests", "gail", alice_hash, 1.0)
    guests = '[[realms]]\nname = "guests"\nrole = "full"\ntitle = "Guests"\n'
    server = server_for(store, pki, load_config_text(DEFAULT_CONFIG_TEXT + CLIENT + guests, "t"))
    caplog.set_level(logging.INFO, "netaccess.radius")

    def signed_in(outer: str, inner: str) -> tuple[str, str] | None:
        caplog.clear()
        found = Switch(server, ttls(pki, identity=outer, user=inner)).run()
        if found["code"] != [Code.ACCESS_ACCEPT]:
            return None
        (record,) = [r for r in caplog.records if r.getMessage() == "802.1X sign-in"]
        return record.realm, record.user  # type: ignore[attr-defined]

    assert signed_in("anonymous@guests", "gail") == ("guests", "gail")
    assert signed_in("anonymous", "gail") is None  # radius.eap_realm (staff) has no gail
    assert signed_in("anonymous@guests", "alice@staff") == ("staff", "alice")  # inner wins
    assert signed_in("alice@nowhere", "alice") == ("staff", "alice")  # not a realm: eap_realm


def test_a_success_is_remembered_and_a_password_change_forgets_it(store: Store, pki: Pki) -> None:
    server = server_for(store, pki)
    assert server.passwords is not None
    for _ in range(3):
        assert Switch(server, ttls(pki)).run()["code"] == [Code.ACCESS_ACCEPT]
    assert server.passwords.scrypt_checks == 1
    assert Switch(server, ttls(pki, b"wrong")).run()["code"] == [Code.ACCESS_REJECT]
    assert server.passwords.scrypt_checks == 2  # failures always cost scrypt
    store.set_password("staff", "alice", hash_password("a new secret"), 5.0)
    assert Switch(server, ttls(pki)).run()["code"] == [Code.ACCESS_REJECT]
    assert server.passwords.scrypt_checks == 3


def test_the_stored_hash_is_kept_while_fresh_and_the_users_unchanged(store: Store) -> None:
    checker = PasswordChecker(store)
    keys = ("user:staff/alice", "endpoint:sw")
    ok = PasswordVerdict.OK
    assert checker.verify("staff", "alice", b"correct horse", keys, 10.0) is ok
    assert checker.quick("staff", "alice", b"correct horse", keys, 10.0) is ok
    stale = 9.0 + PASSWORD_HASH_FRESH
    reads = 0

    def counted(realm: str, name: str) -> str | None:
        nonlocal reads
        reads += 1
        return Store.password_hash(store, realm, name)

    store.password_hash = counted  # type: ignore[method-assign]
    for at in (10.5, 11.0, 10.0 + PASSWORD_HASH_FRESH - 0.1):
        assert checker.quick("staff", "alice", b"correct horse", keys, at) is ok
    assert reads == 0  # kept: no store read per sign-in
    assert checker.quick("staff", "alice", b"correct horse", keys, 9.0) is ok
    assert reads == 1  # a clock gone back reads again
    # Written behind the store object's back (no daemon does): seen once the kept one is stale.
    store._connection.execute(
        "UPDATE portal_users SET password_hash = ? WHERE name = 'alice'", (hash_password("x"),)
    )
    assert checker.quick("staff", "alice", b"correct horse", keys, 9.5) is ok
    assert checker.quick("staff", "alice", b"correct horse", keys, stale) is None
    assert reads == 2
    # Through the store: seen at once.
    assert store.set_password("staff", "alice", hash_password("correct horse"), 20.0)
    assert checker.quick("staff", "alice", b"correct horse", keys, stale) is None
    assert reads == 3
    assert store.delete_user("staff", "alice")
    assert checker.quick("staff", "alice", b"correct horse", keys, 12.0) is None


def test_too_many_failures_lock_the_user_out(store: Store, pki: Pki) -> None:
    server = server_for(store, pki)
    assert server.passwords is not None
    server.passwords.throttle = LoginThrottle(ThrottlePolicy(max_failures=2, lockout=60))
    for _ in range(2):
        Switch(server, ttls(pki, b"guess")).run()
    found = Switch(server, ttls(pki)).run()
    assert found["code"] == [Code.ACCESS_REJECT]
    assert found["Reply-Message"] == ["too many failed sign-ins: locked for a while"]
    later = Switch(server, ttls(pki))
    later.now += 61
    assert later.run()["code"] == [Code.ACCESS_ACCEPT]


def test_eap_tls_accepts_a_certificate_from_the_configured_ca(store: Store, pki: Pki) -> None:
    server = server_for(store, pki)
    peer = EapPeer(pki, EapType.TLS, client=pki.client)
    found = Switch(server, peer).run()
    assert found["code"] == [Code.ACCESS_ACCEPT]
    assert found["MS-MPPE-Recv-Key"] == [peer.msk()[:32]]
    assert found["User-Name"] == ["alice@staff.test"]
    assert server.per_client["sw"]["accepted.eap-tls"] == 1


def test_eap_tls_refuses_another_cas_certificate(store: Store, pki: Pki) -> None:
    server = server_for(store, pki)
    peer = EapPeer(pki, EapType.TLS, client=pki.foreign_client)
    assert Switch(server, peer).run()["code"] == [Code.ACCESS_REJECT]


def test_without_a_client_ca_eap_tls_is_not_offered(store: Store, pki: Pki) -> None:
    server = server_for(store, pki, config())
    assert server.eap is not None and server.eap.methods == (EapType.TTLS,)
    peer = EapPeer(pki, EapType.TLS, client=pki.client)
    assert Switch(server, peer).run()["code"] == [Code.ACCESS_REJECT]


def test_a_peap_peer_is_rejected_cleanly(store: Store, pki: Pki) -> None:
    server = server_for(store, pki)
    found = Switch(server, EapPeer(pki, EapType.PEAP)).run()
    assert found["code"] == [Code.ACCESS_REJECT]
    assert server.per_client["sw"]["rejected.eap"] == 1


def test_eap_without_a_message_authenticator_is_dropped(store: Store, pki: Pki) -> None:
    server = server_for(store, pki)
    assert Switch(server, ttls(pki)).send(b"", ma=False) is None
    assert server.counters["dropped.eap-without-message-authenticator"] == 1


def test_an_unknown_state_is_rejected(store: Store, pki: Pki) -> None:
    server = server_for(store, pki)
    switch = Switch(server, ttls(pki))
    identity = encode_eap(EapCode.RESPONSE, 3, EapType.IDENTITY, b"alice")
    found = switch.exchange(identity, state=os.urandom(16))
    assert found["code"] == [Code.ACCESS_REJECT]
    (failure,) = found["EAP-Message"]
    assert decode_eap(failure).identifier == 3
    assert server.per_client["sw"]["rejected.eap-unknown-state"] == 1


def test_a_conversation_expires_after_eap_timeout(store: Store, pki: Pki) -> None:
    server = server_for(store, pki)
    switch = Switch(server, ttls(pki))
    assert switch.peer is not None
    first = switch.exchange(b"")
    (switch.state,) = first["State"]
    switch.now += server.settings.eap_timeout + 1
    (eap,) = first["EAP-Message"]
    late = switch.exchange(switch.peer.answer(eap))
    assert late["code"] == [Code.ACCESS_REJECT]
    assert late["Reply-Message"] == ["the 802.1X sign-in timed out: start again"]


def test_a_full_table_refuses_new_conversations_not_those_under_way(store: Store, pki: Pki) -> None:
    server = server_for(store, pki, config(pki, "eap_sessions = 2"))
    under_way = [Switch(server, ttls(pki)) for _ in range(2)]
    challenges = [s.exchange(b"") for s in under_way]
    assert all(c["code"] == [Code.ACCESS_CHALLENGE] for c in challenges)
    refused = Switch(server, ttls(pki))
    found = refused.exchange(b"")
    assert found["code"] == [Code.ACCESS_REJECT]
    assert server.per_client["sw"]["rejected.eap-busy"] == 1
    switch, challenge = under_way[0], challenges[0]
    assert switch.peer is not None
    (switch.state,) = challenge["State"]
    (eap,) = challenge["EAP-Message"]
    reply = switch.send(switch.peer.answer(eap))
    assert reply_of(switch.last_request, reply)["code"] == [Code.ACCESS_CHALLENGE]


def test_the_states_are_random_and_each_conversation_keeps_its_own(store: Store, pki: Pki) -> None:
    server = server_for(store, pki)
    states = set()
    for _ in range(5):
        switch = Switch(server, ttls(pki))
        (state,) = switch.exchange(b"")["State"]
        states.add(state)
    assert len(states) == 5 and all(len(state) == 16 for state in states)


def test_a_challenge_splits_eap_message_at_253_octets(store: Store, pki: Pki) -> None:
    server = server_for(store, pki)
    switch = Switch(server, ttls(pki))
    assert switch.peer is not None
    identity = switch.exchange(b"")
    (switch.state,) = identity["State"]
    start = switch.exchange(switch.peer.answer(identity["EAP-Message"][0]))
    reply = switch.send(switch.peer.answer(start["EAP-Message"][0]))  # the server's flight
    assert reply is not None
    packet = decode_packet(reply)
    parts = packet.every(EAP_MESSAGE)
    assert len(parts) > 1 and all(len(part) == 253 for part in parts[:-1])
    assert packet.attributes[0][0] == MESSAGE_AUTHENTICATOR


def test_without_a_calling_station_mac_the_sign_in_is_refused(store: Store, pki: Pki) -> None:
    server = server_for(store, pki)
    found = Switch(server, ttls(pki), station=None).run()
    assert found["code"] == [Code.ACCESS_REJECT]
    assert "Calling-Station-Id" in found["Reply-Message"][0]


def test_without_eap_configured_eap_is_rejected(store: Store, pki: Pki) -> None:
    server = RadiusServer(config(), Inventory(store, []), D, {"sw": SECRET}.get)
    switch = Switch(server, ttls(pki))
    found = switch.exchange(b"")
    assert found["code"] == [Code.ACCESS_REJECT]
    assert found["Reply-Message"] == ["802.1X (EAP) is not served"]


def test_a_password_checked_on_a_worker_is_answered_from_there_and_cached(
    store: Store, pki: Pki
) -> None:
    server = server_for(store, pki)
    sent: list[tuple[bytes, Any]] = []
    done = threading.Event()

    def send(reply: bytes, address: Any) -> None:
        sent.append((reply, address))
        done.set()

    server._auth_send = send
    with ThreadPoolExecutor(1) as workers:
        server._password_workers = workers
        switch = Switch(server, ttls(pki))
        assert switch.peer is not None
        reply = switch.send(b"")
        while True:
            found = reply_of(switch.last_request, reply)
            (switch.state,) = found["State"]
            reply = switch.send(switch.peer.answer(found["EAP-Message"][0]))
            if reply is None:  # the inner PAP went to a worker
                break
        request = switch.last_request
        assert server.handle_auth(request, NAS, switch.now) is None  # in progress: absorbed
        assert done.wait(30)
    ((answer, address),) = sent
    assert address == NAS
    assert reply_of(request, answer)["code"] == [Code.ACCESS_ACCEPT]
    # The next datagram files the worker's reply: a retransmit now gets it again.
    assert server.handle_auth(request, NAS, switch.now) == answer
    assert server.counters["duplicates"] == 2


def test_eap_needs_the_store_and_the_admissions(pki: Pki) -> None:
    cfg = config(pki)
    eap = EapTls(pki.server.certificate, pki.server.key, None)
    with Store.open_memory() as store, pytest.raises(ValueError):
        RadiusServer(cfg, Inventory(store, []), D, {"sw": SECRET}.get, eap=eap)
