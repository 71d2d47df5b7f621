"""Host Checker at sign-in, end to end in the lab: an endpoint reports its posture with
tools/tnc-probe over PT-TLS, then signs in on the portal with curl; the realm's policy
decides between its role and remediation, and the status page lists the fix."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.integration.appliance_cli import cli_json, write_config
from tests.integration.test_portal import PASSWORD, add_user, https, sign_in

pytestmark = pytest.mark.integration

POLICY = """
[[policies]]
name = "linux-firewall"
platform = "linux"

[[policies.rules]]
name = "os"
type = "os"
os = "Debian"
min_version = "12"

[[policies.rules]]
name = "firewall"
type = "firewall"
instructions = "Turn the firewall on"
link = "https://remediation.corp.test/firewall"
"""
REALM = 'policies = ["linux-firewall"]\nremediation_role = "remediation"\n'


@pytest.fixture
def lab(lab_factory: Any) -> Any:
    built = lab_factory(endpoints=1)
    built.up(config=write_config(built.workdir / "appliance", POLICY, REALM))
    built.wait_for_leases(30)
    return built


def report_posture(lab: Any, firewall_on: bool) -> dict[str, Any]:
    """One posture session from ep1 with tnc-probe; its outcome."""
    firewall = {
        "type": "Firewall",
        "product": "nftables",
        "profiles": [{"name": "default", "enabled": firewall_on}],
    }
    done = lab.exec(
        "ep1",
        [
            str(lab.repo / "tools" / "tnc-probe"),
            "--connect",
            "portal.netaccess.test",
            "--ca",
            str(lab.workdir / "appliance" / "state" / "tls" / "portal.crt"),
            "--os",
            "debian",
            "--packages",
            "none",
            "--attribute",
            json.dumps(firewall),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode in (0, 1), done.stderr
    return dict(json.loads(done.stdout))


def role_of_ep1(lab: Any) -> str:
    (endpoint,) = cli_json(lab.workdir / "appliance", "endpoints", "list")
    return str(endpoint["role"])


def wait_for_reports(lab: Any, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(cli_json(lab.workdir / "appliance", "posture", "reports")) < count:
        assert time.monotonic() < deadline, "posture reports not stored"
        time.sleep(0.1)


def test_a_failed_realm_policy_gives_remediation_with_the_fix_then_passing_gives_the_role(
    lab: Any,
) -> None:
    add_user(lab, "alice", PASSWORD)
    outcome = report_posture(lab, firewall_on=False)
    assert "linux-firewall/firewall failed" in " ".join(outcome.get("reasons", [])), outcome
    wait_for_reports(lab, 1)
    status, _ = sign_in(lab, 1, "alice", PASSWORD)
    assert status in (200, 303)
    assert role_of_ep1(lab) == "remediation"
    status, page = https(lab, 1, "/status")
    assert status == 200
    assert "Turn the firewall on" in page and "https://remediation.corp.test/firewall" in page

    outcome = report_posture(lab, firewall_on=True)
    wait_for_reports(lab, 2)
    status, _ = sign_in(lab, 1, "alice", PASSWORD)
    assert role_of_ep1(lab) == "full"
    explained = cli_json(lab.workdir / "appliance", "policy", "explain", "02:4e:41:00:00:01")
    assert explained["summary"]["access"] == "allowed"
    assert [r["outcome"] for r in explained["verdicts"][0]["rules"]] == ["pass", "pass"]


def wait_for_role(lab: Any, role: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while role_of_ep1(lab) != role:
        assert time.monotonic() < deadline, f"ep1 is {role_of_ep1(lab)}, not {role}"
        time.sleep(0.1)


def test_after_sign_in_each_report_moves_the_role_until_an_admin_takes_over(lab: Any) -> None:
    base = lab.workdir / "appliance"
    add_user(lab, "alice", PASSWORD)
    report_posture(lab, firewall_on=True)
    wait_for_reports(lab, 1)
    sign_in(lab, 1, "alice", PASSWORD)
    assert role_of_ep1(lab) == "full"

    # The agent reports the firewall off: demoted at once, with no one signing in.
    report_posture(lab, firewall_on=False)
    wait_for_role(lab, "remediation", 5)
    shown = cli_json(base, "endpoints", "show", "02:4e:41:00:00:01")
    admission = shown["admission"]
    assert (admission["user"], admission["trigger"], admission["outcome"]) == (
        "alice",
        "posture report",
        "remediation",
    )
    assert {"policy": "linux-firewall", "rule": "firewall", "outcome": "fail"} in admission[
        "failed"
    ]
    assert admission["remediation"][0]["instructions"] == "Turn the firewall on"
    reasons = [
        e["detail"].get("reason", "") for e in shown["events"] if e["kind"] == "role-changed"
    ]
    assert any("failed linux-firewall/firewall" in reason for reason in reasons), reasons
    status, page = https(lab, 1, "/status")
    assert status == 200 and "Turn the firewall on" in page

    report_posture(lab, firewall_on=True)  # fixed: readmitted
    wait_for_role(lab, "full", 5)

    # An administrator's decision ends Host Checker's hold until the next sign-in.
    done = cli_json(
        base, "endpoints", "set-role", "02:4e:41:00:00:01", "full", "--reason", "exempt"
    )
    assert done["host_checker_released"] is True
    report_posture(lab, firewall_on=False)
    wait_for_reports(lab, 4)
    time.sleep(0.5)
    assert role_of_ep1(lab) == "full"
    assert cli_json(base, "endpoints", "show", "02:4e:41:00:00:01")["admission"] is None


def test_re_checks_keep_a_leased_result_then_ask_for_a_new_report(lab_factory: Any) -> None:
    lab = lab_factory(endpoints=1)
    base = lab.workdir / "appliance"
    lab.up(
        config=write_config(
            base, POLICY, REALM + 'reuse_result_for = "5s"\n', "recheck_interval = 1\n"
        )
    )
    lab.wait_for_leases(30)
    add_user(lab, "alice", PASSWORD)
    report_posture(lab, firewall_on=True)
    wait_for_reports(lab, 1)
    sign_in(lab, 1, "alice", PASSWORD)
    assert role_of_ep1(lab) == "full"
    # Re-checks every second keep the result while the report is within the 5 s lease,
    # then find it too old: remediation, asking for a new report.
    wait_for_role(lab, "remediation", 20)
    admission = cli_json(base, "endpoints", "show", "02:4e:41:00:00:01")["admission"]
    assert admission["trigger"] == "re-check"
    assert "reuse_result_for" in admission["message"]
    assert (admission["remediation"][0]["policy"], admission["remediation"][0]["rule"]) == (
        "posture",
        "report",
    )
    assert cli_json(base, "status")["host_checker"]["judged"] >= 2
    report_posture(lab, firewall_on=True)  # the agent reports again: readmitted at once
    wait_for_role(lab, "full", 5)
