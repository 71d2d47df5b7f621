"""Roles enforced for real: nftables in the appliance namespace, curl from endpoints, conntrack."""

from __future__ import annotations

import json
import os
import pwd
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.appliance_cli import cli, cli_json, write_config

pytestmark = pytest.mark.integration

WEB = "198.19.0.2"
UPSTREAM_PAGE = "corp.test web server"
PORTAL_PAGE = "Network login required: https://portal.netaccess.test/login"
STREAM_PORT = 9000


@pytest.fixture
def lab(lab_factory: Any) -> Any:
    built = lab_factory(endpoints=2)
    built.up(config=write_config(built.workdir / "appliance", "reconcile_interval = 1.0\n"))
    built.wait_for_leases(30)
    wait_listed(built, 2)
    return built


def base_of(lab: Any) -> Path:
    path: Path = lab.workdir / "appliance"
    return path


def wait_listed(lab: Any, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(cli_json(base_of(lab), "endpoints", "list")) < count:
        assert time.monotonic() < deadline, "endpoints never listed"
        time.sleep(0.05)


def curl(lab: Any, endpoint: int, url: str) -> subprocess.CompletedProcess[str]:
    return lab.exec(
        f"ep{endpoint}",
        ["curl", "-sS", "--max-time", "5", "--connect-timeout", "4", url],
        capture_output=True,
        text=True,
    )


def set_role(lab: Any, endpoint: int, role: str) -> None:
    cli(base_of(lab), "endpoints", "set-role", lab.endpoint_mac(endpoint), role, "--reason", "test")


def wait_for_page(lab: Any, endpoint: int, url: str, text: str) -> str:
    """Role changes reach the kernel asynchronously (milliseconds); poll briefly."""
    deadline = time.monotonic() + 5
    while True:
        out = curl(lab, endpoint, url)
        if text in out.stdout:
            return out.stdout
        assert time.monotonic() < deadline, (
            f"{url} from ep{endpoint}: {out.stdout!r} {out.stderr!r}"
        )
        time.sleep(0.1)


def test_a_fresh_endpoints_http_lands_on_the_portal_not_upstream(lab: Any) -> None:
    out = curl(lab, 1, f"http://{WEB}/")
    assert PORTAL_PAGE in out.stdout
    assert UPSTREAM_PAGE not in out.stdout


def test_a_connectivity_probe_by_name_lands_on_the_portal(lab: Any) -> None:
    out = curl(lab, 1, "http://connectivitycheck.gstatic.com/generate_204")
    assert PORTAL_PAGE in out.stdout


def test_a_fresh_endpoints_https_upstream_is_refused_not_left_hanging(lab: Any) -> None:
    out = curl(lab, 1, f"https://{WEB}/")
    # curl exit 7: the connection was refused (TCP reset); 28 would mean it timed out.
    assert out.returncode == 7, out.stderr


def test_full_access_reaches_upstream_and_quarantine_does_not(lab: Any) -> None:
    set_role(lab, 1, "full")
    assert UPSTREAM_PAGE in wait_for_page(lab, 1, f"http://{WEB}/", UPSTREAM_PAGE)
    assert PORTAL_PAGE in curl(lab, 2, f"http://{WEB}/").stdout


def test_demotion_cuts_a_long_lived_connection_within_a_second(lab: Any) -> None:
    set_role(lab, 1, "full")
    wait_for_page(lab, 1, f"http://{WEB}/", UPSTREAM_PAGE)
    streamer = stream_server(lab)
    receipts = lab.workdir / "receipts"
    client = stream_client(lab, receipts)
    try:
        deadline = time.monotonic() + 5
        while not receipts.exists() or len(receipts.read_text().split()) < 5:
            assert time.monotonic() < deadline, "the stream never started"
            time.sleep(0.05)
        demoted_at = time.time()
        set_role(lab, 1, "quarantine")
        time.sleep(2.0)
        last = max(float(t) for t in receipts.read_text().split())
        assert last < demoted_at + 1.0, (
            f"data still arrived {last - demoted_at:.2f} s after demotion"
        )
    finally:
        for proc in (client, streamer):
            proc.kill()
            proc.wait()


def test_killing_the_daemon_leaves_enforcement_in_place(lab: Any) -> None:
    set_role(lab, 1, "full")
    wait_for_page(lab, 1, f"http://{WEB}/", UPSTREAM_PAGE)
    lab.kill_appliance()
    assert UPSTREAM_PAGE in curl(lab, 1, f"http://{WEB}/").stdout
    assert UPSTREAM_PAGE not in curl(lab, 2, f"http://{WEB}/").stdout


def test_a_captive_request_during_a_daemon_restart_waits_and_is_then_served(lab: Any) -> None:
    lab.kill_appliance()
    # The enforcer still holds the portal listener: the connection waits in its backlog.
    waiting = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            lab.endpoint_ns(2),
            "curl",
            "-sS",
            "--max-time",
            "20",
            f"http://{WEB}/",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    lab.start_appliance(config=base_of(lab) / "appliance.toml")
    out, _ = waiting.communicate(timeout=30)
    assert PORTAL_PAGE in out


def test_a_change_made_while_the_enforcer_is_down_is_applied_when_it_returns(lab: Any) -> None:
    assert lab.stop_enforcer() == 0
    set_role(lab, 1, "full")  # accepted by netaccessd and queued: the network fails closed
    # The kernel still redirects it (the portal, knowing the role, says to retry).
    assert UPSTREAM_PAGE not in curl(lab, 1, f"http://{WEB}/").stdout
    lab.start_enforcer(base_of(lab) / "appliance.toml")
    assert UPSTREAM_PAGE in wait_for_page(lab, 1, f"http://{WEB}/", UPSTREAM_PAGE)


def test_a_hand_deleted_set_element_is_restored_and_logged(lab: Any) -> None:
    set_role(lab, 1, "full")
    wait_for_page(lab, 1, f"http://{WEB}/", UPSTREAM_PAGE)
    mac = lab.endpoint_mac(1)
    lab.exec(
        "app",
        ["nft", "delete", "element", "inet", "netaccess", "role_full_mac", f"{{ {mac} }}"],
        check=True,
    )
    deadline = time.monotonic() + 10
    while True:
        listing = lab.exec(
            "app",
            ["nft", "-j", "list", "set", "inet", "netaccess", "role_full_mac"],
            capture_output=True,
            text=True,
        ).stdout
        if mac in listing:
            break
        assert time.monotonic() < deadline, "reconciliation never restored the element"
        time.sleep(0.2)
    events = cli_json(base_of(lab), "endpoints", "show", mac)["events"]
    repaired = [e for e in events if e["kind"] == "enforcement-repaired"]
    assert repaired and repaired[0]["detail"]["action"] == "restored"


def test_a_stray_element_is_removed_by_reconciliation(lab: Any) -> None:
    stray = "02:99:99:99:99:99"
    lab.exec(
        "app",
        ["nft", "add", "element", "inet", "netaccess", "role_full_mac", f"{{ {stray} }}"],
        check=True,
    )
    deadline = time.monotonic() + 10
    while (
        stray
        in lab.exec(
            "app",
            ["nft", "list", "set", "inet", "netaccess", "role_full_mac"],
            capture_output=True,
            text=True,
        ).stdout
    ):
        assert time.monotonic() < deadline, "reconciliation never removed the stray element"
        time.sleep(0.2)


def test_the_daemon_runs_unprivileged_and_the_enforcer_as_root(lab: Any) -> None:
    daemon = proc_status(lab.appliance_pid())
    enforcer = proc_status(lab.enforcer_pid())
    netaccess_uid = pwd.getpwnam("netaccess").pw_uid
    assert daemon["Uid"].split()[:2] == [str(netaccess_uid)] * 2
    assert daemon["CapEff"] == "0000000000000000"
    assert enforcer["Uid"].split()[0] == "0"


def test_the_enforcer_refuses_a_peer_with_the_wrong_uid(lab: Any) -> None:
    path = base_of(lab) / "run" / "enforcer.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:  # as root: wrong uid
        sock.settimeout(5)
        sock.connect(str(path))
        # The refusal comes unasked, right after the peer check, and the enforcer hangs up.
        answer = json.loads(sock.makefile().readline())
    assert answer["ok"] is False
    assert "is not netaccessd's uid" in answer["error"]


def test_set_role_with_an_unknown_role_or_bad_mac_changes_nothing(lab: Any) -> None:
    mac = lab.endpoint_mac(1)
    before = cli_json(base_of(lab), "endpoints", "show", mac)
    unknown = cli(
        base_of(lab), "endpoints", "set-role", mac, "superuser", "--reason", "x", check=False
    )
    bad_mac = cli(base_of(lab), "endpoints", "set-role", "zz", "full", "--reason", "x", check=False)
    assert unknown.returncode == 2 and "unknown role 'superuser'" in unknown.stderr
    assert bad_mac.returncode == 2 and "not a MAC address" in bad_mac.stderr
    after = cli_json(base_of(lab), "endpoints", "show", mac)
    assert (after["role"], len(after["events"])) == (before["role"], len(before["events"]))


def test_set_role_is_recorded_with_its_reason(lab: Any) -> None:
    mac = lab.endpoint_mac(2)
    cli(base_of(lab), "endpoints", "set-role", mac, "remediation", "--reason", "ticket 7")
    events = cli_json(base_of(lab), "endpoints", "show", mac)["events"]
    changed = [e for e in events if e["kind"] == "role-changed"]
    assert changed[0]["detail"] == {
        "old": "quarantine",
        "new": "remediation",
        "reason": "ticket 7",
        "by": "admin",
    }


def test_roles_list_and_enforcement_show(lab: Any) -> None:
    roles = {r["name"]: r for r in cli_json(base_of(lab), "roles", "list")}
    assert {"quarantine", "remediation", "full"} <= roles.keys()
    set_role(lab, 1, "full")
    deadline = time.monotonic() + 5
    while True:
        shown = cli_json(base_of(lab), "enforcement", "show")
        if shown["roles"]["full"]["macs"] == 1:
            break
        assert time.monotonic() < deadline, shown
        time.sleep(0.1)
    # ep2 is quarantined by the ruleset's default: it needs no element.
    assert shown["roles"]["quarantine"]["macs"] == 0
    assert shown["link"]["connected"] is True
    curl(lab, 2, "https://198.19.0.2/")  # refused under quarantine, and counted there
    after = cli_json(base_of(lab), "enforcement", "show")
    assert after["roles"]["quarantine"]["packets"] > shown["roles"]["quarantine"]["packets"]


def proc_status(pid: int | None) -> dict[str, str]:
    assert pid is not None
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


STREAM_SERVER = f"""
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("{WEB}", {STREAM_PORT})); s.listen(1)
c, _ = s.accept()
for _ in range(600):
    c.sendall(b"tick\\n"); time.sleep(0.05)
"""

STREAM_CLIENT = f"""
import socket, sys, time
c = socket.create_connection(("{WEB}", {STREAM_PORT}), timeout=30)
with open(sys.argv[1], "a") as out:
    while True:
        data = c.recv(100)
        if not data:
            break
        out.write(f"{{time.time()}}\\n"); out.flush()
"""


def stream_server(lab: Any) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(["ip", "netns", "exec", lab.up_ns, sys.executable, "-c", STREAM_SERVER])
    time.sleep(0.3)
    return proc


def stream_client(lab: Any, receipts: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            lab.endpoint_ns(1),
            sys.executable,
            "-c",
            STREAM_CLIENT,
            str(receipts),
        ],
        env={**os.environ},
    )
