"""Change-of-Authorization to the switch when an endpoint's role changes (RFC 5176), against
the lab's NAS double (tools/labnet/nas.py) on UDP 3799 in the NAS namespace: the double
checks each request's authenticators and answers ACK or NAK as told.

An accounting session makes the appliance know which NAS holds the endpoint; then
`appliance endpoints set-role` sends a CoA (retransmitted, the same bytes, when the first
copy gets no answer), a NAK 401 falls back to a Disconnect-Request, and a NAK 503 makes the
appliance forget the session."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.appliance_cli import REPO, cli, cli_json, write_config
from tests.integration.test_radius_mab import SECRET, radclient, radius_tables
from tools.labnet import Lab

pytestmark = pytest.mark.integration

MAC = "02:4e:41:99:00:07"
SESSION = (
    f'Acct-Status-Type = Start, Acct-Session-Id = "coa-0001", Calling-Station-Id = "{MAC}", '
    'NAS-Port-Id = "Gi1/0/9", Framed-IP-Address = 198.18.0.90'
)


class NasDouble:
    def __init__(self, lab: Lab, log: Path) -> None:
        self.lab, self.log = lab, log
        self.process: subprocess.Popen[str] | None = None

    def start(self, *args: str) -> None:
        self.stop()
        self.log.write_text("")
        self.process = subprocess.Popen(
            [
                *("ip", "netns", "exec", self.lab.nas_ns),
                str(REPO / ".venv" / "bin" / "python"),
                *("-m", "tools.labnet.nas", "--secret", SECRET, "--log", str(self.log)),
                *args,
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready"

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def entries(self, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            lines = [json.loads(line) for line in self.log.read_text().splitlines() if line]
            if len(lines) >= count or time.monotonic() > deadline:
                return lines
            time.sleep(0.1)


@pytest.fixture
def coa_lab(lab_factory: Any) -> Iterator[tuple[Lab, Path, NasDouble]]:
    lab = lab_factory(endpoints=1)
    base = lab.workdir / "appliance"
    extra = radius_tables().replace(
        "duplicate_window = 1.0", "duplicate_window = 1.0\ncoa_timeout = 0.5"
    )
    lab.up(config=write_config(base, extra=extra), dhcp_clients=False)
    cli(base, "secrets", "set", "lab-switch", "--stdin", input=SECRET + "\n")
    double = NasDouble(lab, lab.workdir / "nas-double.jsonl")
    try:
        yield lab, base, double
    finally:
        double.stop()


def test_role_change_sends_coa_retransmits_and_handles_naks(
    coa_lab: tuple[Lab, Path, NasDouble],
) -> None:
    lab, base, double = coa_lab
    started = radclient(lab, SESSION, kind="acct")
    assert "Received Accounting-Response" in started.stdout, started.stdout + started.stderr
    assert [s["session_id"] for s in cli_json(base, "radius", "sessions")] == ["coa-0001"]

    # The first copy goes unanswered: the retransmission is the same bytes, then ACKed.
    double.start("--answer", "ack", "--ignore", "1")
    cli(base, "endpoints", "set-role", MAC, "full", "--reason", "coa lab test")
    first, second = double.entries(2)[:2]
    assert first["answer"] == "ignored" and second["answer"] == "ack"
    assert first["hex"] == second["hex"]  # same Identifier, same Request Authenticator
    assert second["code"] == "COA_REQUEST"
    assert second["message_authenticator"] is True
    assert second["attributes"]["Acct-Session-Id"] == ["coa-0001"]
    assert second["attributes"]["Cisco-AVPair"] == ["subscriber:command=reauthenticate"]
    assert second["attributes"]["Calling-Station-Id"] == [MAC.replace(":", "-").upper()]
    status = cli_json(base, "status")["radius"]["counters"]
    assert status.get("coa.done", 0) == 1

    # A NAS that cannot re-authenticate (NAK 401): the appliance disconnects instead.
    double.start("--answer", "nak:401", "--disconnect", "ack")
    resent = cli_json(base, "endpoints", "coa", MAC)
    (session,) = resent["sessions"]
    assert session["outcome"] == "done"
    assert [(s["request"], s["acked"], s["error_cause"]) for s in session["steps"]] == [
        ("coa-request", False, 401),
        ("disconnect-request", True, None),
    ]
    assert [e["code"] for e in double.entries(2)] == ["COA_REQUEST", "DISCONNECT_REQUEST"]

    # NAK 503, Session-Context-Not-Found: the session is forgotten.
    double.start("--answer", "nak:503")
    (gone,) = cli_json(base, "endpoints", "coa", MAC)["sessions"]
    assert gone["outcome"] == "forget-session"
    assert cli_json(base, "radius", "sessions") == []
    text = cli(base, "endpoints", "coa", MAC).stdout
    assert "no RADIUS accounting session known" in text

    # Each push is in the endpoint's history, oldest first: why, the outcome, every request
    # with its answer (a NAK's Error-Cause) and tries.
    pushes = coa_events(base, 3)
    assert [e["detail"]["why"] for e in pushes] == [
        "role quarantine -> full",
        "admin re-send",
        "admin re-send",
    ]
    assert [e["detail"]["outcome"] for e in pushes] == ["done", "done", "forget-session"]
    assert [e["detail"]["steps"] for e in pushes] == [
        "coa-request ack (2 tries)",
        "coa-request nak 401 (1 try); disconnect-request ack (1 try)",
        "coa-request nak 503 (1 try)",
    ]
    assert {(e["detail"]["nas"], e["detail"]["session_id"]) for e in pushes} == {
        ("lab-switch", "coa-0001")
    }
    assert "coa" in cli(base, "endpoints", "show", MAC).stdout


def test_after_a_restart_the_sessions_are_known_and_coa_still_reaches_the_nas(
    coa_lab: tuple[Lab, Path, NasDouble],
) -> None:
    """The session table is kept in the store: a daemon restarted (a signed update, say)
    still knows which NAS holds the endpoint before that NAS sends any more accounting."""
    lab, base, double = coa_lab
    started = radclient(lab, SESSION, kind="acct")
    assert "Received Accounting-Response" in started.stdout, started.stdout + started.stderr
    before = cli_json(base, "radius", "sessions")
    assert [s["session_id"] for s in before] == ["coa-0001"]
    assert lab.stop_appliance() == 0
    lab.start_appliance(config=base / "appliance.toml")
    assert cli_json(base, "radius", "sessions") == before
    double.start("--answer", "ack")
    cli(base, "endpoints", "set-role", MAC, "full", "--reason", "after a restart")
    (request,) = double.entries(1)
    assert (request["code"], request["answer"]) == ("COA_REQUEST", "ack")
    assert request["attributes"]["Acct-Session-Id"] == ["coa-0001"]


def coa_events(base: Path, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The endpoint's coa events, oldest first, once `count` are stored (the inventory
    writes in batches)."""
    deadline = time.monotonic() + timeout
    while True:
        events = cli_json(base, "endpoints", "show", MAC)["events"]
        found = [e for e in reversed(events) if e["kind"] == "coa"]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)
