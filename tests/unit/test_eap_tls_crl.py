"""EAP-TLS with the CA's CRL (radius.eap_tls_crl): a revoked client certificate is refused
in the TLS handshake, others pass; a CRL that is not the CA's, expired, or not a CRL at all
is refused with the reason; a changed file is read again (at most every CRL_CHECK_EVERY
seconds), and one that fails the checks leaves the previous CRL in force."""

from __future__ import annotations

import datetime
import logging
import threading
from pathlib import Path

import pytest
import trio

from netaccess.config import DEFAULT_CONFIG_TEXT, ConfigError, load_config_text
from netaccess.io.admission import AdmissionKeeper
from netaccess.io.eap_tls import EapTls, EapTlsUnavailable, check_crl
from netaccess.io.inventory import Inventory
from netaccess.io.radius import RadiusServer
from netaccess.proto.radius.eap import EapType
from netaccess.proto.radius.eap_server import EapConversation, Failure, Success
from netaccess.store import Store
from tests.unit.test_eap_conversation import EapPeer, Issued, Pki, make_pki, run
from tests.unit.test_eap_radius_io import SECRET, D, config


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path)


def sign_in(tls: EapTls, pki: Pki, client: Issued) -> Success | Failure:
    step, _ = run(
        EapConversation((EapType.TLS,), tls.engine), EapPeer(pki, EapType.TLS, client=client)
    )
    assert isinstance(step, Success | Failure), step
    return step


def test_a_revoked_certificate_is_refused_and_the_others_pass(pki: Pki, tmp_path: Path) -> None:
    other = pki.ca.issue("laptop-9", email="bob@staff.test")
    crl = pki.ca.crl(tmp_path / "ca.crl", (pki.client,))
    tls = EapTls(pki.server.certificate, pki.server.key, pki.ca.path, client_crl=crl)
    refused = sign_in(tls, pki, pki.client)
    assert isinstance(refused, Failure) and "certificate revoked" in refused.why
    assert isinstance(sign_in(tls, pki, other), Success)
    # Without the CRL the same certificate passes: the refusal is the CRL's.
    plain = EapTls(pki.server.certificate, pki.server.key, pki.ca.path)
    assert isinstance(sign_in(plain, pki, pki.client), Success)


def test_unfit_crls_are_refused_with_the_reason(pki: Pki, tmp_path: Path) -> None:
    foreign = pki.stranger.crl(tmp_path / "stranger.crl")
    expired = pki.ca.crl(tmp_path / "expired.crl", fresh_for=-60)
    not_one = tmp_path / "not.crl"
    not_one.write_bytes(pki.ca.path.read_bytes())  # a certificate, not a CRL
    cases = [
        (foreign, "not signed by a CA in radius.eap_tls_ca"),
        (expired, "expired at"),
        (not_one, "no CRL in it"),
        (tmp_path / "missing.crl", "No such file"),
    ]
    for path, reason in cases:
        with pytest.raises(EapTlsUnavailable, match=reason):
            check_crl(path, pki.ca.path)
        with pytest.raises(EapTlsUnavailable, match=reason):
            EapTls(pki.server.certificate, pki.server.key, pki.ca.path, client_crl=path)
    check_crl(pki.ca.crl(tmp_path / "good.crl"), pki.ca.path)  # a fit one passes


def test_a_changed_crl_is_read_again_and_an_unfit_one_keeps_the_last(
    pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    crl = pki.ca.crl(tmp_path / "ca.crl")
    tls = EapTls(pki.server.certificate, pki.server.key, pki.ca.path, client_crl=crl)
    assert tls.watches_crl and not tls.reload_crl()  # unchanged: not read again
    assert isinstance(sign_in(tls, pki, pki.client), Success)
    pki.ca.crl(crl, (pki.client,))  # revoked now
    assert isinstance(sign_in(tls, pki, pki.client), Success)  # not read yet
    assert tls.reload_crl()
    assert isinstance(sign_in(tls, pki, pki.client), Failure)
    caplog.set_level(logging.INFO, "netaccess.radius")
    pki.stranger.crl(crl)  # an unfit replacement
    assert not tls.reload_crl()
    assert isinstance(sign_in(tls, pki, pki.client), Failure)  # the last fit CRL stays
    assert any("not reloaded" in r.getMessage() for r in caplog.records)
    pki.ca.crl(crl)  # fit again, revoking nothing
    assert tls.reload_crl()
    assert isinstance(sign_in(tls, pki, pki.client), Success)
    assert not EapTls(pki.server.certificate, pki.server.key, pki.ca.path).watches_crl


def test_a_crl_past_its_next_update_is_told_once(
    pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    crl = pki.ca.crl(tmp_path / "ca.crl", fresh_for=3600)
    tls = EapTls(pki.server.certificate, pki.server.key, pki.ca.path, client_crl=crl)
    caplog.set_level(logging.ERROR, "netaccess.radius")
    now = datetime.datetime.now(datetime.UTC)
    assert not tls.reload_crl(now)  # still fresh: nothing to say
    later = now + datetime.timedelta(hours=2)
    tls.reload_crl(later)
    tls.reload_crl(later)
    told = [r for r in caplog.records if r.getMessage().startswith("EAP-TLS CRL expired")]
    assert len(told) == 1
    pki.ca.crl(crl)  # a fresh one: told again only once it too expires
    assert tls.reload_crl(later)
    tls.reload_crl(later)
    assert len([r for r in caplog.records if "expired" in r.getMessage()]) == 1


async def test_the_server_reloads_the_crl_off_its_receive_thread(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    crl = pki.ca.crl(tmp_path / "ca.crl")
    tls = EapTls(pki.server.certificate, pki.server.key, pki.ca.path, client_crl=crl)
    threads: list[str] = []
    monkeypatch.setattr(tls, "reload_crl", lambda: threads.append(threading.current_thread().name))
    cfg = config(pki)
    with Store.open_memory() as store:
        inventory = Inventory(store, [])
        admissions = AdmissionKeeper(cfg, store, inventory, lambda: None)
        server = RadiusServer(
            cfg, inventory, D, {"sw": SECRET}.get, store=store, admissions=admissions, eap=tls
        )
    with trio.move_on_after(0.5):
        await server._reload_crl_every(0.05)
    assert len(threads) >= 3 and threading.main_thread().name not in threads


def test_the_crl_setting_needs_the_ca_and_an_absolute_path() -> None:
    def loaded(ca: str, crl: str) -> object:
        text = DEFAULT_CONFIG_TEXT.replace('eap_tls_ca = ""', f'eap_tls_ca = "{ca}"')
        text = text.replace('eap_tls_crl = ""', f'eap_tls_crl = "{crl}"')
        return load_config_text(text, "t.toml").radius

    radius = loaded("/etc/netaccess/clients-ca.pem", "/etc/netaccess/clients.crl")
    assert str(radius.eap_tls_crl) == "/etc/netaccess/clients.crl"  # type: ignore[attr-defined]
    assert loaded("", "").eap_tls_crl is None  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=r"eap_tls_crl.*needs radius\.eap_tls_ca"):
        loaded("", "/etc/netaccess/clients.crl")
    with pytest.raises(ConfigError, match="eap_tls_crl"):
        loaded("/etc/netaccess/clients-ca.pem", "clients.crl")
