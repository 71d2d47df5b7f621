"""PEAP through RadiusServer (no sockets) and the NT hash's path to it: the control socket's
users.add and users.passwd keep it sealed with the vault key only for a realm with
mschapv2 = true; the server opens it to check an MSCHAPv2 response. A user without one, a
realm that does not allow it, a wrong password and the throttle are each refused and
counted, the peer told why in the MS-CHAPv2 Failure first; an unknown user costs the same
work as a known one."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netaccess.config import DEFAULT_CONFIG_TEXT, ApplianceConfig, load_config_text
from netaccess.control import ControlError, ErrorCode, Request
from netaccess.io import radius as radius_io
from netaccess.io.admission import AdmissionKeeper
from netaccess.io.control_handlers import Appliance
from netaccess.io.daemon import warn_of_stray_nt_hashes
from netaccess.io.eap_tls import EapTls
from netaccess.io.enforcer_link import EnforcerLink
from netaccess.io.inventory import Inventory
from netaccess.io.radius import RadiusServer
from netaccess.policy.credentials import hash_password
from netaccess.proto.radius.eap import EapType
from netaccess.proto.radius.mschapv2 import (
    MS_CHAP_ERROR,
    MschapResponse,
    check_response,
    nt_password_hash,
)
from netaccess.proto.radius.packet import Code
from netaccess.proto.radius.peap import RESULT_FAILURE
from netaccess.store import Store
from netaccess.store.vault import Vault, VaultError
from tests.unit.test_eap_conversation import Pki, make_pki
from tests.unit.test_eap_radius_io import CLIENT, SECRET, D, Switch
from tests.unit.test_peap import FAILURE_TEXT, PeapPeer
from tests.unit.test_policy_ops import ask
from tests.unit.test_ttls_mschapv2 import MschapPeer

PASSWORD = "correct horse"
GUESTS = '\n[[realms]]\nname = "guests"\nrole = "full"\n'


def config(*, mschapv2: bool = True) -> ApplianceConfig:
    text = DEFAULT_CONFIG_TEXT
    if mschapv2:
        text = text.replace('title = "Staff"\n', 'title = "Staff"\nmschapv2 = true\n', 1)
    text = text.replace("\n[radius]\n", GUESTS + "\n[radius]\n", 1)
    return load_config_text(text + CLIENT, "t.toml")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("peap-io-pki"))


@pytest.fixture
def appliance(tmp_path: Path) -> Iterator[Appliance]:
    cfg = config()
    cfg = dataclasses.replace(cfg, daemon=dataclasses.replace(cfg.daemon, state_dir=tmp_path))
    with Store.open_memory() as store:
        inventory = Inventory(store, [])
        link = EnforcerLink(tmp_path / "enforcer.sock", lambda: [], lambda repairs: None, 100)
        yield Appliance(cfg, store, inventory, link)


async def add(appliance: Appliance, realm: str, user: str, password: str = PASSWORD) -> Any:
    return await ask(
        appliance,
        "users.add",
        realm=realm,
        user=user,
        password_hash=hash_password(password),
        nt_hash=nt_password_hash(password).hex(),
    )


def server_for(appliance: Appliance, pki: Pki) -> RadiusServer:
    cfg, store = appliance.config, appliance.store
    admissions = AdmissionKeeper(cfg, store, appliance.inventory, lambda: None)
    eap = EapTls(pki.server.certificate, pki.server.key, None, peap=True)
    return RadiusServer(
        cfg,
        appliance.inventory,
        D,
        {"sw": SECRET}.get,
        store=store,
        admissions=admissions,
        eap=eap,
        unseal=appliance.vault.unseal,
    )


def peap(pki: Pki, name: str = "alice", password: str = PASSWORD) -> PeapPeer:
    return PeapPeer(pki, name=name, password=password, identity="anonymous@staff")


async def test_the_nt_hash_is_kept_sealed_only_where_the_realm_allows_it(
    appliance: Appliance,
) -> None:
    assert (await add(appliance, "staff", "alice"))["mschapv2"] is True
    assert (await add(appliance, "guests", "gail"))["mschapv2"] is False
    exists, sealed = appliance.store.sealed_nt_hash("staff", "alice")
    assert exists and sealed is not None
    assert nt_password_hash(PASSWORD) not in sealed  # sealed, not stored as is
    context = Store.nt_hash_context("staff", "alice")
    assert appliance.vault.unseal(context, sealed) == nt_password_hash(PASSWORD)
    with pytest.raises(VaultError):  # moved to another user's row, it does not open
        appliance.vault.unseal(Store.nt_hash_context("staff", "bob"), sealed)
    assert appliance.store.sealed_nt_hash("guests", "gail") == (True, None)
    assert appliance.store.sealed_nt_hash("staff", "nobody") == (False, None)


async def test_a_new_password_replaces_the_nt_hash_or_forgets_it(appliance: Appliance) -> None:
    await add(appliance, "staff", "alice")
    _, before = appliance.store.sealed_nt_hash("staff", "alice")
    found = await ask(
        appliance,
        "users.passwd",
        realm="staff",
        user="alice",
        password_hash=hash_password("another horse"),
        nt_hash=nt_password_hash("another horse").hex(),
    )
    assert found["mschapv2"] is True
    _, after = appliance.store.sealed_nt_hash("staff", "alice")
    assert after is not None and after != before
    opened = appliance.vault.unseal(Store.nt_hash_context("staff", "alice"), after)
    assert opened == nt_password_hash("another horse")
    # A client that sends no NT hash: the old one, now wrong, is not kept.
    await ask(
        appliance, "users.passwd", realm="staff", user="alice", password_hash=hash_password("x" * 9)
    )
    assert appliance.store.sealed_nt_hash("staff", "alice") == (True, None)


async def test_nt_hashes_a_realm_no_longer_allows_are_listed_warned_of_and_forgotten(
    appliance: Appliance, caplog: pytest.LogCaptureFixture
) -> None:
    await add(appliance, "staff", "alice")
    await add(appliance, "staff", "bob")
    # Kept while guests allowed MSCHAPv2, and in a realm since removed from the config.
    for realm, user in (("guests", "gail"), ("gone", "old")):
        sealed = appliance.vault.seal(Store.nt_hash_context(realm, user), b"\x01" * 16)
        appliance.store.add_user(realm, user, hash_password(PASSWORD), 1.0, nt_hash=sealed)
    listed = await ask(appliance, "users.list")
    assert {(u["realm"], u["user"]): u["mschapv2"] for u in listed} == {
        ("gone", "old"): True,
        ("guests", "gail"): True,
        ("staff", "alice"): True,
        ("staff", "bob"): True,
    }
    caplog.set_level(logging.WARNING, "netaccess.daemon")
    assert warn_of_stray_nt_hashes(appliance.config, appliance.store) == {"gone": 1, "guests": 1}
    (warning,) = [r for r in caplog.records if r.name == "netaccess.daemon"]
    assert "forget-mschapv2" in warning.fix  # type: ignore[attr-defined]

    found = await ask(appliance, "users.forget-mschapv2")
    assert found == {"forgotten": {"gone": 1, "guests": 1}, "total": 2}
    assert appliance.store.sealed_nt_hash("guests", "gail") == (True, None)
    assert appliance.store.sealed_nt_hash("staff", "alice")[1] is not None  # allowed: kept
    assert await ask(appliance, "users.forget-mschapv2") == {"forgotten": {}, "total": 0}
    caplog.clear()
    assert warn_of_stray_nt_hashes(appliance.config, appliance.store) == {}
    assert not [r for r in caplog.records if r.name == "netaccess.daemon"]


@pytest.mark.parametrize("bad", ["", "00" * 15, "zz" * 16, "AB" * 16, 7])
async def test_a_bad_nt_hash_is_refused_and_nothing_is_written(
    appliance: Appliance, bad: object
) -> None:
    request = Request(
        1,
        "users.add",
        {"realm": "staff", "user": "ann", "password_hash": hash_password(PASSWORD), "nt_hash": bad},
    )
    with pytest.raises(ControlError, match="nt_hash: 32 hex digits") as caught:
        await appliance.handle(request)
    assert caught.value.code is ErrorCode.BAD_REQUEST
    assert appliance.store.password_hash("staff", "ann") is None


def test_sealed_values_do_not_open_when_tampered_or_short(tmp_path: Path) -> None:
    vault = Vault.open(tmp_path)
    sealed = vault.seal("ctx", b"value")
    assert vault.unseal("ctx", sealed) == b"value"
    for broken in (sealed[:-1] + bytes([sealed[-1] ^ 1]), sealed[:10], b""):
        with pytest.raises(VaultError, match="does not open"):
            vault.unseal("ctx", broken)
    assert "ctx" not in vault.names()  # sealing is not a vault entry


async def test_peap_signs_a_user_in_with_the_mppe_keys(appliance: Appliance, pki: Pki) -> None:
    await add(appliance, "staff", "alice")
    server = server_for(appliance, pki)
    assert server.eap is not None and EapType.PEAP in server.eap.methods
    peer = peap(pki)
    found = Switch(server, peer).run()
    assert found["code"] == [Code.ACCESS_ACCEPT], found.get("Reply-Message")
    assert peer.server_proved
    assert found["MS-MPPE-Recv-Key"] == [peer.msk()[:32]]
    assert found["MS-MPPE-Send-Key"] == [peer.msk()[32:]]
    assert found["Tunnel-Private-Group-Id"] == ["998"]  # Layer 2 only: remediation
    assert server.per_client["sw"]["accepted.peap"] == 1


async def test_ttls_with_ms_chap_v2_inside_uses_the_same_credential(
    appliance: Appliance, pki: Pki
) -> None:
    await add(appliance, "staff", "alice")
    await add(appliance, "guests", "gail")
    server = server_for(appliance, pki)
    peer = MschapPeer(pki, identity="anonymous@staff", user="alice", password=PASSWORD)
    found = Switch(server, peer).run()
    assert found["code"] == [Code.ACCESS_ACCEPT], found.get("Reply-Message")
    assert peer.proved()
    assert found["MS-MPPE-Recv-Key"] == [peer.msk()[:32]]
    assert server.per_client["sw"]["accepted.eap-ttls"] == 1
    # guests keeps no NT hashes: refused in MS-CHAP-Error first (E=649), then the Reject.
    peer = MschapPeer(pki, identity="anonymous@guests", user="gail", password=PASSWORD)
    found = Switch(server, peer).run()
    assert found["code"] == [Code.ACCESS_REJECT]
    (message,) = found["Reply-Message"]
    assert "not allowed in this realm" in message
    (error,) = [a.value for a in peer.answers if a.code == MS_CHAP_ERROR]
    assert error[1:].startswith(b"E=649 ") and error.endswith(message.encode())
    assert server.per_client["sw"]["rejected.eap-no-mschapv2"] == 1


async def test_peap_refusals_are_counted_and_say_why(
    appliance: Appliance, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    await add(appliance, "staff", "alice")
    await add(appliance, "guests", "gail")
    # Alice's row as it was before the realm allowed MSCHAPv2: no NT hash.
    appliance.store.add_user("staff", "old", hash_password(PASSWORD), 1.0)
    server = server_for(appliance, pki)
    counts = server.per_client["sw"]

    def refused(peer: PeapPeer) -> tuple[str, str]:
        """The Reject's Reply-Message, and the MS-CHAPv2 Failure the peer was sent first
        (its error and message, the failure Result TLV answered)."""
        found = Switch(server, peer).run()
        assert found["code"] == [Code.ACCESS_REJECT]
        assert peer.results_seen == [RESULT_FAILURE]
        told = FAILURE_TEXT.fullmatch(peer.failure_text)
        assert told is not None, peer.failure_text
        (message,) = found["Reply-Message"]
        assert told.group(2) == message  # the same words both ways
        return message, told.group(1)

    caplog.set_level(logging.INFO, "netaccess.radius")
    wrong = ("wrong user name or password", "691")
    assert refused(peap(pki, password="not it")) == wrong
    assert counts["rejected.eap-password"] == 1

    assert refused(peap(pki, name="old")) == wrong  # no account probing
    assert counts["rejected.eap-no-mschapv2"] == 1
    whys = [getattr(record, "why", "") for record in caplog.records]
    assert any("password was set before the realm allowed MSCHAPv2; set it again" in why
               for why in whys), whys  # fmt: skip

    message, error = refused(peap(pki, name="gail@guests"))
    assert "not allowed in this realm" in message and error == "649"
    assert counts["rejected.eap-no-mschapv2"] == 2

    assert refused(peap(pki, name="nobody")) == wrong
    assert counts["rejected.eap-password"] == 2
    assert "accepted.peap" not in counts and "rejected.eap" not in counts


async def test_the_throttle_locks_peap_guessing_out(appliance: Appliance, pki: Pki) -> None:
    await add(appliance, "staff", "alice")
    server = server_for(appliance, pki)
    assert server.passwords is not None
    limit = server.passwords.throttle.policy.max_failures
    for _ in range(limit):
        Switch(server, peap(pki, password="guess")).run()
    peer = peap(pki)  # the right password, but locked
    found = Switch(server, peer).run()
    assert found["code"] == [Code.ACCESS_REJECT]
    assert "locked" in found["Reply-Message"][0]
    assert "M=too many failed sign-ins" in peer.failure_text
    assert server.per_client["sw"]["rejected.eap-locked"] == 1


async def test_an_unknown_user_costs_what_a_known_one_does(
    appliance: Appliance, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No timing: the work itself. An unknown user (or one without an NT hash) has a seal
    opened and a response checked, as a known user's wrong password has."""
    await add(appliance, "staff", "alice")
    appliance.store.add_user("staff", "old", hash_password(PASSWORD), 1.0)
    opened: list[str] = []
    checked: list[bytes] = []

    def unseal(context: str, sealed: bytes) -> bytes:
        opened.append(context)
        return appliance.vault.unseal(context, sealed)

    def check(nt_hash: bytes, challenge: bytes, response: MschapResponse) -> bytes | None:
        checked.append(nt_hash)
        return check_response(nt_hash, challenge, response)

    monkeypatch.setattr(radius_io, "check_response", check)
    server = server_for(appliance, pki)
    assert server.passwords is not None
    server.passwords._unseal = unseal
    for name in ("alice", "nobody", "old"):
        Switch(server, peap(pki, name=name, password="wrong")).run()
    assert opened == [Store.nt_hash_context("staff", n) for n in ("alice", "nobody", "old")]
    alice, *decoys = checked
    assert alice == nt_password_hash(PASSWORD)
    assert decoys == [decoys[0]] * 2 and decoys[0] != alice  # the decoy hash, each time
    assert server.per_client["sw"]["rejected.eap-password"] == 2  # alice and nobody


async def test_without_a_realm_allowing_it_peap_is_not_offered(
    appliance: Appliance, pki: Pki
) -> None:
    appliance.config = config(mschapv2=False)
    server = server_for(appliance, pki)
    server.eap = EapTls(pki.server.certificate, pki.server.key, None)
    assert server.eap.methods == (EapType.TTLS,)
    assert Switch(server, peap(pki)).run()["code"] == [Code.ACCESS_REJECT]
    assert server.per_client["sw"]["rejected.eap"] == 1
