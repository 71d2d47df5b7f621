"""The credential vault (store/vault.py), the accounting session table
(policy/radius_sessions.py) and the [radius] config section."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from netaccess.config import DEFAULT_CONFIG_TEXT, ConfigError, load_config_text
from netaccess.config.radius_dictionary import standard_dictionary
from netaccess.policy.radius_sessions import (
    AccountingError,
    Session,
    SessionTable,
    StatusType,
    accounting_record,
)
from netaccess.proto.radius.packet import Packet
from netaccess.store.vault import Vault, VaultError

# --- vault ------------------------------------------------------------------------------------


def test_vault_round_trips_encrypted_and_private(tmp_path: Path) -> None:
    vault = Vault.open(tmp_path)
    assert vault.set("nas-1", b"very-secret-value") is False
    assert vault.set("nas-1", b"very-secret-value-2") is True
    again = Vault.open(tmp_path)
    assert again.get("nas-1") == b"very-secret-value-2"
    assert again.names() == ["nas-1"]
    for name in ("vault.json", "vault.key"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    assert b"very-secret" not in (tmp_path / "vault.json").read_bytes()
    assert again.delete("nas-1") and not again.delete("nas-1")
    assert Vault.open(tmp_path).names() == []


def test_an_entry_copied_under_another_name_does_not_open(tmp_path: Path) -> None:
    Vault.open(tmp_path).set("a", b"secret-a")
    body = json.loads((tmp_path / "vault.json").read_text())
    body["entries"]["b"] = body["entries"]["a"]
    (tmp_path / "vault.json").write_text(json.dumps(body))
    with pytest.raises(VaultError, match="'b' does not decrypt"):
        Vault.open(tmp_path)


def test_a_wrong_or_short_key_and_a_corrupt_file_are_errors(tmp_path: Path) -> None:
    Vault.open(tmp_path).set("a", b"secret-a")
    (tmp_path / "vault.key").write_bytes(os.urandom(32))
    with pytest.raises(VaultError, match="does not decrypt"):
        Vault.open(tmp_path)
    (tmp_path / "vault.key").write_bytes(b"short")
    with pytest.raises(VaultError, match="32 bytes, not 5"):
        Vault.open(tmp_path)
    (tmp_path / "vault.key").unlink()
    (tmp_path / "vault.json").write_text("{not json")
    with pytest.raises(VaultError, match=r"vault\.json: not a vault"):
        Vault.open(tmp_path)


def test_the_systemd_credential_is_the_key_when_given(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    key = os.urandom(32)
    (credentials / "netaccess-vault-key").write_bytes(key)
    state = tmp_path / "state"
    Vault.open(state, str(credentials)).set("a", b"secret-a")
    assert not (state / "vault.key").exists()
    assert Vault.open(state, str(credentials)).get("a") == b"secret-a"
    with pytest.raises(VaultError):
        Vault.open(state)  # a fresh key file is not the credential


def test_bad_input_and_failed_writes_change_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault = Vault.open(tmp_path)
    vault.set("keep", b"kept-value")
    before = (tmp_path / "vault.json").read_bytes()
    for name, value in (("Bad Name", b"x"), ("ok", b""), ("ok", b"x" * 5000)):
        with pytest.raises(VaultError):
            vault.set(name, value)

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(VaultError, match="No space left"):
        vault.set("new", b"new-value")
    monkeypatch.undo()
    assert (tmp_path / "vault.json").read_bytes() == before
    assert vault.names() == ["keep"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    entry = json.loads(before)["entries"]["keep"]
    assert len(base64.b64decode(entry)) == 12 + len(b"kept-value") + 16


# --- sessions ---------------------------------------------------------------------------------

D = standard_dictionary()


def record(**values: object) -> object:
    attributes = []
    for name, value in values.items():
        attributes += D.encode(name.replace("_", "-"), value)  # type: ignore[arg-type]
    return accounting_record(D.decode(Packet(4, 1, bytes(16), tuple(attributes))))


def test_start_interim_stop_and_nas_reboots() -> None:
    table = SessionTable(capacity=2)
    start = record(
        Acct_Status_Type="Start",
        Acct_Session_Id="s1",
        Calling_Station_Id="aabb.cc00.0001",
        NAS_Port=7,
        Framed_IP_Address="255.255.255.254",
    )
    session = table.apply("sw", "192.0.2.1", start, 1.0)  # type: ignore[arg-type]
    assert session is not None and session.mac == "aa:bb:cc:00:00:01"
    assert session.framed_ip is None  # "the NAS assigns" is no address
    interim = record(
        Acct_Status_Type="Interim-Update", Acct_Session_Id="s1", Framed_IP_Address="198.18.0.9"
    )
    kept = table.apply("sw", "192.0.2.1", interim, 2.0)  # type: ignore[arg-type]
    assert kept is not None
    assert (kept.mac, kept.nas_port, kept.framed_ip, kept.started) == (
        "aa:bb:cc:00:00:01",
        7,
        "198.18.0.9",
        1.0,
    )
    other = record(Acct_Status_Type="Start", Acct_Session_Id="s2", Calling_Station_Id="x")
    assert table.apply("other", "192.0.2.2", other, 3.0).mac is None  # type: ignore[arg-type,union-attr]
    table.apply("sw", "192.0.2.1", record(Acct_Status_Type="Accounting-On"), 4.0)  # type: ignore[arg-type]
    assert [s.nas for s in table.sessions()] == ["other"]
    for index in range(3):
        fresh = record(Acct_Status_Type="Start", Acct_Session_Id=f"n{index}")
        table.apply("sw", "192.0.2.1", fresh, 5.0 + index)  # type: ignore[arg-type]
    assert [s.session_id for s in table.sessions()] == ["n1", "n2"]
    assert table.forgotten == 2
    stop = record(Acct_Status_Type="Stop", Acct_Session_Id="n1")
    assert table.apply("sw", "192.0.2.1", stop, 9.0) is None  # type: ignore[arg-type]
    assert [s.session_id for s in table.sessions()] == ["n2"]


def test_every_change_is_journalled_with_its_latest_state() -> None:
    """take_changes: each key once, as it now stands (None once it ended, by Stop, a NAS
    reboot, forget or the capacity); a load is not a change."""
    table = SessionTable(capacity=2)
    table.load(
        [
            Session("sw", "192.0.2.1", "old", None, None, None, None, None, 0.5, 0.5),
            Session("sw", "192.0.2.1", "kept", None, None, None, None, None, 0.2, 0.6),
        ]
    )
    assert [s.session_id for s in table.sessions()] == ["kept", "old"]  # by start
    assert table.take_changes() == {}
    start = record(Acct_Status_Type="Start", Acct_Session_Id="s1", NAS_Port=7)
    table.apply("sw", "192.0.2.1", start, 1.0)  # type: ignore[arg-type]
    interim = record(Acct_Status_Type="Interim-Update", Acct_Session_Id="s1")
    table.apply("sw", "192.0.2.1", interim, 2.0)  # type: ignore[arg-type]
    changes = table.take_changes()
    assert set(changes) == {("sw", "old"), ("sw", "s1")}  # old: pushed out by capacity
    assert changes[("sw", "old")] is None
    assert changes[("sw", "s1")] is not None and changes[("sw", "s1")].updated == 2.0
    assert table.take_changes() == {}
    table.apply("sw", "192.0.2.1", record(Acct_Status_Type="Stop", Acct_Session_Id="s1"), 3.0)  # type: ignore[arg-type]
    table.apply("sw", "192.0.2.1", record(Acct_Status_Type="Stop", Acct_Session_Id="nope"), 3.0)  # type: ignore[arg-type]
    assert table.take_changes() == {("sw", "s1"): None}  # an unknown one changes nothing
    table.apply("other", "192.0.2.2", record(Acct_Status_Type="Start", Acct_Session_Id="o"), 4.0)  # type: ignore[arg-type]
    table.apply("sw", "192.0.2.1", record(Acct_Status_Type="Accounting-On"), 5.0)  # type: ignore[arg-type]
    assert table.forget("other", "o") and not table.forget("other", "o")
    assert table.take_changes() == {("sw", "kept"): None, ("other", "o"): None}
    assert len(table) == 0


def test_sessions_idle_past_the_limit_are_ended_oldest_first() -> None:
    table = SessionTable()
    for index, at in enumerate((1.0, 5.0, 3.0)):
        start = record(Acct_Status_Type="Start", Acct_Session_Id=f"s{index}")
        table.apply("sw", "192.0.2.1", start, at)  # type: ignore[arg-type]
    refresh = record(Acct_Status_Type="Interim-Update", Acct_Session_Id="s0")
    table.apply("sw", "192.0.2.1", refresh, 6.0)  # type: ignore[arg-type]
    table.take_changes()
    assert table.expire(now=10.0, idle=5.0) == 2  # s1 (5.0) and s2 (3.0); s0 was refreshed
    assert [s.session_id for s in table.sessions()] == ["s0"]
    assert table.take_changes() == {("sw", "s1"): None, ("sw", "s2"): None}
    assert table.expire(now=10.0, idle=5.0) == 0
    assert table.expire(now=11.0, idle=5.0) == 1 and len(table) == 0


def test_session_idle_is_bounded() -> None:
    def loaded(value: str) -> object:
        text = DEFAULT_CONFIG_TEXT.replace("session_idle = 86400", f"session_idle = {value}")
        assert text != DEFAULT_CONFIG_TEXT
        return load_config_text(text, "t.toml").radius

    assert loaded("3600").session_idle == 3600  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="session_idle"):
        loaded("10")


def test_records_without_what_the_table_needs_are_refused() -> None:
    with pytest.raises(AccountingError, match="Acct-Session-Id"):
        record(Acct_Status_Type="Start")
    with pytest.raises(AccountingError, match="Acct-Status-Type"):
        record(Acct_Session_Id="s")
    assert StatusType.INTERIM_UPDATE == 3


# --- config -----------------------------------------------------------------------------------


def radius(extra: str) -> object:
    return load_config_text(DEFAULT_CONFIG_TEXT + extra, "t.toml").radius


def test_clients_by_address_and_cidr_with_their_settings() -> None:
    loaded = radius(
        '[[radius.clients]]\nname = "a"\naddress = "192.0.2.10"\nsecret = "a"\n'
        '[[radius.clients]]\nname = "b"\naddress = "2001:db8::/64"\nsecret = "b.key"\n'
        'coa = "disconnect"\ncoa_port = 1700\nrequire_message_authenticator = false\n'
    )
    a, b = loaded.clients  # type: ignore[attr-defined]
    assert str(a.network) == "192.0.2.10/32" and a.coa.value == "reauthenticate"
    assert (str(b.network), b.coa.value, b.coa_port, b.require_message_authenticator) == (
        "2001:db8::/64",
        "disconnect",
        1700,
        False,
    )


def test_radius_config_errors_name_their_lines() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text(
            DEFAULT_CONFIG_TEXT.replace("acct_port = 1813", "acct_port = 1812")
            + '[[radius.clients]]\nname = "a"\naddress = "192.0.2.0/24"\nsecret = "a"\n'
            + '[[radius.clients]]\nname = "b"\naddress = "192.0.2.9"\nsecret = "B"\n'
            + 'coa = "sometimes"\n[[radius.clients]]\nname = "c"\n',
            "t.toml",
        )
    text = str(caught.value)
    for expected in (
        "radius.acct_port: auth_port and acct_port must differ",
        'overlaps the address of client "a"',
        "radius.clients[1].secret: expected the name of a vault entry",
        "radius.clients[1].coa: expected one of",
        "radius.clients[2]: missing required key address",
        "radius.clients[2]: missing required key secret",
    ):
        assert expected in text, text


def test_the_default_documents_every_radius_key() -> None:
    part = DEFAULT_CONFIG_TEXT.split("[radius]", 1)[1]
    for key in (
        "address",
        "auth_port",
        "acct_port",
        "queue",
        "duplicate_window",
        "coa_timeout",
        "coa_tries",
        "max_sessions",
        "dictionary",
    ):
        assert f"\n{key} = " in part, key
    assert radius("").clients == ()  # type: ignore[attr-defined]
