"""tools/tnc-probe as an admin runs it: a subprocess against the posture server on 127.0.0.1
(TLS with a throwaway self-signed certificate, the OS IMV, reports in an in-memory store),
judged by its exit status, its --json outcome and its one-line errors."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from netaccess.config.model import PostureConfig
from netaccess.io.http_server import SocketListener, TlsListener
from netaccess.io.posture import PostureServer
from netaccess.io.tls import posture_context, self_signed
from netaccess.policy.imv_os import OsImv
from netaccess.policy.posture import PostureReport
from netaccess.store import Store

PROBE = Path(__file__).resolve().parents[2] / "tools" / "tnc-probe"
RUN_SECONDS = 20  # one probe run; each takes well under a second here


@dataclass(frozen=True, slots=True)
class Appliance:
    port: int
    ca: Path
    store: Store


@dataclass(frozen=True, slots=True)
class Run:
    status: int
    stdout: str
    stderr: str

    def outcome(self) -> dict[str, object]:
        parsed = json.loads(self.stdout)
        assert isinstance(parsed, dict)
        return parsed


@pytest.fixture
async def appliance(tmp_path: Path) -> AsyncIterator[Appliance]:
    cert, key = self_signed(tmp_path / "tls", "127.0.0.1")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    with Store.open_memory() as store:
        server = PostureServer(PostureConfig(), store, lambda: [OsImv()], lambda ip: None)
        listener = TlsListener(SocketListener(sock), posture_context(cert, key))
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve, [listener])
            yield Appliance(port, cert, store)
            nursery.cancel_scope.cancel()


async def probe(*args: str, executable: bool = False) -> Run:
    command = [str(PROBE)] if executable else [sys.executable, str(PROBE)]
    with trio.fail_after(RUN_SECONDS):
        done = await trio.run_process(
            [*command, *args], capture_stdout=True, capture_stderr=True, check=False
        )
    return Run(done.returncode, done.stdout.decode(), done.stderr.decode())


def at(appliance: Appliance, *args: str) -> tuple[str, ...]:
    return (
        "--connect",
        "127.0.0.1",
        "--port",
        str(appliance.port),
        "--ca",
        str(appliance.ca),
        *args,
    )


async def reports(store: Store, count: int) -> list[PostureReport]:
    """The store's reports once `count` are there (the server writes them in batches)."""
    with trio.fail_after(5):
        while len(found := store.posture_reports()) < count:
            await trio.sleep(0.05)
    return found


async def test_a_compliant_endpoint_exits_0_with_the_outcome_as_json(appliance: Appliance) -> None:
    run = await probe(*at(appliance, "--os", "debian", "--packages", "700", "--json"))
    assert run.status == 0, run.stderr
    outcome = run.outcome()
    assert outcome["compliant"] is True
    assert (outcome["result"], outcome["recommendation"]) == ("compliant", "allowed")
    assert outcome["rounds"] == 2  # the OS IMV asked for the packages, and got them
    assert outcome["packages"] == 700


async def test_the_report_keeps_the_packages_and_the_added_attributes(
    appliance: Appliance,
) -> None:
    antivirus = {"type": "Antivirus", "product": "Defender", "running": True, "signature_age": 60}
    run = await probe(
        *at(appliance, "--os", "windows", "--packages", "25"),
        *("--attribute", json.dumps(antivirus)),
    )
    assert run.status == 0, run.stderr
    (report,) = await reports(appliance.store, 1)
    by_name = {a.name: a for a in report.attributes}
    assert by_name["ProductInformation"].value["name"] == "Windows 11 Enterprise"
    assert len(by_name["InstalledPackages"].value["packages"]) == 25
    assert (by_name["Antivirus"].component_subtype, by_name["Antivirus"].value["running"]) == (
        2,
        True,
    )


async def test_ip_forwarding_exits_1_with_the_reason(appliance: Appliance) -> None:
    run = await probe(*at(appliance, "--os", "debian", "--forwarding", "enabled", "--json"))
    assert run.status == 1, run.stderr
    outcome = run.outcome()
    assert (outcome["result"], outcome["recommendation"]) == (
        "minor non-compliance",
        "quarantined",
    )
    assert outcome["reasons"] == ["IP forwarding is enabled"]
    assert "ip_forward=0" in str(outcome["remediation"])


async def test_a_server_certificate_the_ca_does_not_vouch_for_exits_2(
    appliance: Appliance, tmp_path: Path
) -> None:
    stranger, _ = self_signed(tmp_path / "stranger", "127.0.0.1")
    run = await probe(*at(appliance, "--os", "debian"), "--ca", str(stranger))
    assert run.status == 2
    assert run.stdout == ""
    assert len(run.stderr.splitlines()) == 1
    assert "certificate verify failed" in run.stderr


async def test_run_as_an_executable_it_prints_the_verdict_as_text(appliance: Appliance) -> None:
    run = await probe(*at(appliance, "--os", "macos"), executable=True)
    assert run.status == 0, run.stderr
    assert f"127.0.0.1:{appliance.port} (TLSv1.3," in run.stdout
    assert run.stdout.rstrip().endswith("compliant, allowed")


async def test_nothing_listening_exits_2(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        ca, _ = self_signed(tmp_path / "tls", "127.0.0.1")
        run = await probe("--connect", "127.0.0.1", "--port", str(port), "--ca", str(ca), "--json")
    assert run.status == 2
    assert "cannot connect" in run.stderr
    assert "error" in run.outcome()


async def test_an_attribute_with_an_unknown_field_exits_2_naming_it(tmp_path: Path) -> None:
    ca, _ = self_signed(tmp_path / "tls", "127.0.0.1")
    attribute = json.dumps({"type": "Firewall", "profile": []})
    run = await probe("--connect", "127.0.0.1", "--ca", str(ca), "--attribute", attribute)
    assert run.status == 2
    assert "no field profile" in run.stderr
