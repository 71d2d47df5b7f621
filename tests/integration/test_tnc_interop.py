"""Interop with the reference NEA client: strongSwan's pt-tls-client (built from Debian's
source by tools/interop/strongswan-tnc) with and without its OS IMC, inside an endpoint
namespace, against the real netaccessd's PT-TLS server. strongSwan's client exits 1 even
on success, so each session is judged by its log and by what the appliance stored."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration import strongswan
from tests.integration.appliance_cli import cli, cli_json, write_config

pytestmark = pytest.mark.integration

PORTAL = "portal.netaccess.test"  # the self-signed certificate's name; the lab DNS has it


@pytest.fixture(scope="module")
def client_prefix() -> Path:
    prefix = strongswan.build_client()
    if prefix is None:
        reason = strongswan.why_unavailable()
        print(f"\n*** strongSwan interop tests SKIPPED: {reason} ***\n")
        pytest.skip(f"strongSwan pt-tls-client unavailable: {reason}")
    return prefix


def start_lab(lab_factory: Any, extra: str = "") -> Any:
    lab = lab_factory(endpoints=1)
    lab.up(config=write_config(lab.workdir / "appliance", extra))
    lab.wait_for_leases(30)
    return lab


def run_client(
    lab: Any,
    prefix: Path,
    tmp_path: Path,
    *,
    imcs: bool,
    client_id: str | None = None,
    secret: str | None = None,
) -> str:
    """pt-tls-client's whole log (stdout and stderr) from ep1."""
    directory = tmp_path / ("client-imc" if imcs else "client")
    directory.mkdir(exist_ok=True)
    directory.chmod(0o755)
    env = strongswan.write_client_config(directory, prefix, imcs=imcs)
    certificate = lab.workdir / "appliance" / "state" / "tls" / "portal.crt"
    command = strongswan.client_command(
        prefix,
        server=PORTAL,
        port=271,
        ca_cert=certificate,
        client_id=client_id,
        secret=secret,
    )
    done = lab.exec(
        "ep1",
        command,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=90,
    )
    return str(done.stdout) + str(done.stderr)


def reports(lab: Any, *, attributes: bool = False) -> list[dict[str, Any]]:
    """The stored posture reports, waiting for the first (they are written in batches)."""
    args = ["posture", "reports"] + (["--attributes"] if attributes else [])
    deadline = time.monotonic() + 10
    while True:
        found: list[dict[str, Any]] = cli_json(lab.workdir / "appliance", *args)
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_a_client_without_imcs_is_found_compliant(
    lab_factory: Any, client_prefix: Path, tmp_path: Path
) -> None:
    lab = start_lab(lab_factory)
    log = run_client(lab, client_prefix, tmp_path, imcs=False)
    assert strongswan.LOG_COMPLIANT in log, log
    (report,) = reports(lab)
    assert (report["verdict"], report["recommendation"]) == ("compliant", "allowed")
    assert report["attribute_count"] == 0


def test_the_os_imc_reports_debian_and_its_installed_packages_on_request(
    lab_factory: Any, client_prefix: Path, tmp_path: Path
) -> None:
    lab = start_lab(lab_factory)
    log = run_client(lab, client_prefix, tmp_path, imcs=True)
    assert strongswan.LOG_COMPLIANT in log, log
    (report,) = reports(lab, attributes=True)
    values = {a["name"]: a["value"] for a in report["attributes"]}
    assert values["ProductInformation"]["name"] == "Debian"
    assert values["StringVersion"]["version"].startswith("12")
    assert values["NumericVersion"]["major"] == 12
    assert values["ForwardingEnabled"]["state"] == "disabled"
    # The OS IMV's Attribute Request brought back the real package list of this machine.
    installed = subprocess.run(
        ["dpkg-query", "-W", "-f", "${db:Status-Status}\n"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    packages = values["InstalledPackages"]["packages"]
    assert len(packages) == installed.count("installed")
    assert any(name == "bash" and version for name, version in packages)
    assert report["mac"] is not None


def test_sasl_plain_with_good_credentials_passes_and_bad_ones_are_refused(
    lab_factory: Any, client_prefix: Path, tmp_path: Path
) -> None:
    lab = start_lab(lab_factory, '\n[posture]\nauthentication = "plain"\n')
    cli(
        lab.workdir / "appliance",
        "users",
        "add",
        "staff",
        "alice",
        "--password-stdin",
        input="correct horse battery\n",
    )
    bad = run_client(
        lab, client_prefix, tmp_path, imcs=False, client_id="alice", secret="wrong password"
    )
    assert strongswan.LOG_COMPLIANT not in bad, bad
    good = run_client(
        lab, client_prefix, tmp_path, imcs=False, client_id="alice", secret="correct horse battery"
    )
    assert strongswan.LOG_COMPLIANT in good, good
    (report,) = reports(lab)
    assert report["user"] == "alice@staff"
    daemon_log = (lab.workdir / "netaccessd.log").read_text()
    assert "SASL PLAIN refused for alice@staff" in daemon_log


def test_a_result_with_reasons_and_remediation_reaches_the_client(
    lab_factory: Any, client_prefix: Path, tmp_path: Path
) -> None:
    lab = start_lab(lab_factory)
    lab.exec("ep1", ["sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True)
    log = run_client(lab, client_prefix, tmp_path, imcs=True)
    assert strongswan.LOG_ASSESSMENT.format("non-compliant minor") in log, log
    assert strongswan.LOG_RECOMMENDATION.format("Quarantined") in log, log
    assert "IP forwarding is enabled" in log  # the Reason-String
    assert "ip_forward=0" in log  # the Remediation-Parameters string
    (report,) = reports(lab)
    assert report["verdict"] == "minor non-compliance"
