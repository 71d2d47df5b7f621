"""The appliance's RADIUS server with FreeRADIUS's radclient as the switch, in a lab: radclient
runs in the lab's NAS namespace (the management network) against netaccessd on 198.19.1.1.

MAB of a new MAC gets the quarantine VLAN with the Message-Authenticator first; after
`appliance endpoints set-role MAC full` the full VLAN; accounting fills the session table and
teaches the endpoint's IP. Dropped, with no answer at all: a client whose secret is not in
the vault yet, a wrong secret, a request without Message-Authenticator, and (with
require_message_authenticator = false) an MA-less request carrying Proxy-State."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.appliance_cli import cli, cli_json, listed, write_config
from tools.labnet import Lab
from tools.labnet import addressing as net

pytestmark = pytest.mark.integration

SECRET = "lab-switch-secret"
NEW_MAC = "02:4e:41:99:00:01"
RADCLIENT_SECONDS = 20


def radius_tables(require_ma: bool = True) -> str:
    return f"""
[radius]
duplicate_window = 1.0

[[radius.clients]]
name = "lab-switch"
address = "{net.NAS_IP}"
secret = "lab-switch"
require_message_authenticator = {"true" if require_ma else "false"}
"""


def radclient(
    lab: Lab, attributes: str, *, kind: str = "auth", secret: str = SECRET
) -> subprocess.CompletedProcess[str]:
    if shutil.which("radclient") is None:
        pytest.fail("radclient is missing: tools/bootstrap installs freeradius-utils")
    port = 1813 if kind == "acct" else 1812
    return subprocess.run(
        [
            *("ip", "netns", "exec", lab.nas_ns),
            *("radclient", "-x", "-r", "1", "-t", "2"),
            f"{net.APPLIANCE_MGMT_IP}:{port}",
            kind,
            secret,
        ],
        input=attributes + "\n",
        capture_output=True,
        text=True,
        timeout=RADCLIENT_SECONDS,
        check=False,
    )


def mab(mac: str, *, ma: bool = True, extra: str = "") -> str:
    bare = mac.replace(":", "")
    found = (
        f'User-Name = "{bare}", User-Password = "{bare}", Service-Type = Call-Check, '
        f'Calling-Station-Id = "{mac.replace(":", "-").upper()}", NAS-Port-Id = "Gi1/0/7"'
    )
    if ma:
        found += ", Message-Authenticator = 0x00"
    return found + extra


def accept_attributes(done: subprocess.CompletedProcess[str]) -> list[str]:
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Received Access-Accept" in done.stdout, done.stdout
    lines = done.stdout.split("Received Access-Accept", 1)[1].splitlines()[1:]
    found = []
    for line in lines:
        if not line.startswith(("\t", " ")) or not line.strip():
            break
        found.append(line.strip())
    return found


def no_reply(done: subprocess.CompletedProcess[str]) -> bool:
    return done.returncode != 0 and "Received" not in done.stdout


def client_counters(base: Path) -> dict[str, Any]:
    (client,) = cli_json(base, "radius", "clients")
    counters: dict[str, Any] = client["counters"]
    return {"secret_set": client["secret_set"], **counters}


@pytest.fixture
def radius_lab(lab_factory: Any) -> tuple[Lab, Path]:
    lab = lab_factory(endpoints=1)
    base = lab.workdir / "appliance"
    config = write_config(base, extra=radius_tables(), full_extra="recheck_interval = 900")
    lab.up(config=config, dhcp_clients=False)
    return lab, base


def test_mab_vlans_accounting_and_drops(radius_lab: tuple[Lab, Path]) -> None:
    lab, base = radius_lab

    # Configured, but its secret is not in the vault yet: dropped, and said so.
    assert no_reply(radclient(lab, mab(NEW_MAC)))
    assert client_counters(base)["secret_set"] is False
    assert client_counters(base)["dropped.no-secret"] >= 1
    assert NEW_MAC not in {ep["mac"] for ep in listed(base)}
    stored = cli(base, "secrets", "set", "lab-switch", "--stdin", input=SECRET + "\n")
    assert "lab-switch: stored (used by radius.clients.lab-switch)" in stored.stdout
    assert client_counters(base)["secret_set"] is True
    listing = cli_json(base, "secrets", "list")
    assert listing == [{"name": "lab-switch", "used_by": ["radius.clients.lab-switch"]}]
    vault = (base / "state" / "vault.json").read_text()
    assert SECRET not in vault  # encrypted at rest

    # A new MAC: created in quarantine, and put in its VLAN with the MA first.
    first = accept_attributes(radclient(lab, mab(NEW_MAC)))
    assert first[0].startswith("Message-Authenticator = 0x")
    assert first[1:4] == [
        "Tunnel-Type:0 = VLAN",
        "Tunnel-Medium-Type:0 = IEEE-802",
        'Tunnel-Private-Group-Id:0 = "999"',
    ]
    endpoint = {ep["mac"]: ep for ep in listed(base)}[NEW_MAC]
    assert endpoint["role"] == "quarantine"

    # The admin moves it to full: the next MAB gets the full VLAN and its re-check timer.
    cli(base, "endpoints", "set-role", NEW_MAC, "full", "--reason", "radius lab test")
    full = accept_attributes(radclient(lab, mab(NEW_MAC)))
    assert full[1:6] == [
        "Tunnel-Type:0 = VLAN",
        "Tunnel-Medium-Type:0 = IEEE-802",
        'Tunnel-Private-Group-Id:0 = "100"',
        "Session-Timeout = 900",
        "Termination-Action = RADIUS-Request",
    ]

    # Dropped without an answer: no MA (required by default), and a wrong secret.
    before = client_counters(base)
    assert no_reply(radclient(lab, mab(NEW_MAC, ma=False)))
    assert no_reply(radclient(lab, mab(NEW_MAC), secret="not-the-secret"))
    after = client_counters(base)
    assert after.get("dropped.missing-message-authenticator", 0) > before.get(
        "dropped.missing-message-authenticator", 0
    )
    assert after.get("dropped.bad-message-authenticator", 0) > before.get(
        "dropped.bad-message-authenticator", 0
    )

    # Status-Server (RFC 5997) is answered.
    status = radclient(lab, "Message-Authenticator = 0x00", kind="status")
    assert "Received Access-Accept" in status.stdout, status.stdout + status.stderr

    # Accounting: Start puts the session in the table and teaches the IP; Stop ends it.
    session = (
        f'Acct-Session-Id = "sess-0001", Calling-Station-Id = "{NEW_MAC.upper()}", '
        'NAS-Port-Id = "Gi1/0/7", NAS-Port = 50107, Framed-IP-Address = 198.18.0.77'
    )
    started = radclient(lab, "Acct-Status-Type = Start, " + session, kind="acct")
    assert "Received Accounting-Response" in started.stdout, started.stdout + started.stderr
    (held,) = cli_json(base, "radius", "sessions")
    assert held["nas"] == "lab-switch"
    assert held["nas_address"] == net.NAS_IP
    assert (held["session_id"], held["mac"], held["nas_port_id"], held["nas_port"]) == (
        "sess-0001",
        NEW_MAC,
        "Gi1/0/7",
        50107,
    )
    assert held["framed_ip"] == "198.18.0.77"
    endpoint = {ep["mac"]: ep for ep in listed(base)}[NEW_MAC]
    assert "198.18.0.77" in endpoint["ips"]
    table = cli(base, "radius", "sessions").stdout
    assert "sess-0001" in table and "198.18.0.77" in table
    stopped = radclient(lab, "Acct-Status-Type = Stop, " + session, kind="acct")
    assert "Received Accounting-Response" in stopped.stdout
    assert cli_json(base, "radius", "sessions") == []
    # Accounting signed with another secret is dropped.
    assert no_reply(
        radclient(lab, "Acct-Status-Type = Start, " + session, kind="acct", secret="wrong")
    )


def test_without_required_ma_proxy_state_still_needs_one(lab_factory: Any) -> None:
    lab = lab_factory(endpoints=1)
    base = lab.workdir / "appliance"
    config = write_config(base, extra=radius_tables(require_ma=False))
    lab.up(config=config, dhcp_clients=False)
    cli(base, "secrets", "set", "lab-switch", "--stdin", input=SECRET + "\n")

    # Allowed for this NAS: an MA-less MAB is answered (with an MA all the same)...
    plain = accept_attributes(radclient(lab, mab(NEW_MAC, ma=False)))
    assert plain[0].startswith("Message-Authenticator = 0x")
    # ...but not one carrying Proxy-State: that is the BlastRADIUS attack's shape.
    proxied = radclient(lab, mab(NEW_MAC, ma=False, extra=", Proxy-State = 0x01020304"))
    assert no_reply(proxied)
    assert client_counters(base)["dropped.proxy-state-without-message-authenticator"] >= 1
