"""`appliance policy explain` and `policy what-if` through the daemon's control handlers,
over a store of several hundred synthetic posture reports."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netaccess.config import default_config
from netaccess.config.policies import check_policies_text
from netaccess.control import ControlError, ErrorCode, Request
from netaccess.io.control_handlers import Appliance
from netaccess.io.enforcer_link import EnforcerLink
from netaccess.io.inventory import Inventory
from netaccess.policy.credentials import hash_password
from netaccess.policy.posture import PostureReport, Recommendation, ReportedAttribute, Verdict
from netaccess.store import Store

POLICIES = """
[[policies]]
name = "linux-desktop"
platform = "linux"

[[policies.rules]]
name = "os"
type = "os"
os = "Debian"
min_version = "12"

[[policies.rules]]
name = "ssl"
type = "software"
product = "openssl"
min_version = "3.0.11"
instructions = "Upgrade OpenSSL"
"""
STRICTER = POLICIES.replace('min_version = "3.0.11"', 'min_version = "3.0.16"')


def report(n: int, openssl: str) -> PostureReport:
    attributes = (
        ReportedAttribute(0, 1, 0, 2, "ProductInformation", {"name": "Debian"}),
        ReportedAttribute(0, 1, 0, 4, "StringVersion", {"version": "12"}),
        ReportedAttribute(0, 1, 0, 7, "InstalledPackages", {"packages": [["openssl", openssl]]}),
    )
    mac = f"02:00:00:00:{n >> 8:02x}:{n & 0xFF:02x}"
    return PostureReport(
        f"10.0.{n >> 8}.{n & 0xFF}",
        1.0,
        2.0 + n,
        Verdict.COMPLIANT,
        Recommendation.ALLOWED,
        attributes,
        mac=mac,
    )


@pytest.fixture
def appliance(tmp_path: Path) -> Iterator[Appliance]:
    config = default_config()
    config = dataclasses.replace(
        config,
        daemon=dataclasses.replace(config.daemon, state_dir=tmp_path),
        policies=check_policies_text(POLICIES, "test"),
        # The realm staff's role checks the Linux policy (signed-in endpoints' roles).
        roles=tuple(
            dataclasses.replace(role, policies=("linux-desktop",)) if role.name == "full" else role
            for role in config.roles
        ),
    )
    with Store.open_memory() as store:
        # 400 endpoints: every fourth on OpenSSL 3.0.15 (passes today, not under STRICTER).
        store.add_posture_reports(
            [
                report(n, "3.0.15-1~deb12u1" if n % 4 == 0 else "3.0.17-1~deb12u2")
                for n in range(400)
            ]
        )
        inventory = Inventory(store, [])
        link = EnforcerLink(tmp_path / "enforcer.sock", lambda: [], lambda repairs: None, 100)
        yield Appliance(config, store, inventory, link)


async def ask(appliance: Appliance, op: str, **args: Any) -> Any:
    response = await appliance.handle(Request(1, op, args))
    assert response.ok, response.error_message
    return response.result


async def test_explain_shows_every_rule_seen_against_required(appliance: Appliance) -> None:
    found = await ask(appliance, "policy.explain", mac="02:00:00:00:00:04")
    (verdict,) = found["verdicts"]
    assert (found["platform"], verdict["compliance"]) == ("linux", "compliant")
    assert [(r["rule"], r["outcome"], r["seen"]) for r in verdict["rules"]] == [
        ("os", "pass", "Debian 12"),
        ("ssl", "pass", "openssl 3.0.15-1~deb12u1"),
    ]


async def test_explain_of_an_endpoint_without_a_report_is_not_found(appliance: Appliance) -> None:
    with pytest.raises(ControlError, match="no posture report from 02:ff:00:00:00:01") as caught:
        await appliance.handle(Request(1, "policy.explain", {"mac": "02:ff:00:00:00:01"}))
    assert caught.value.code is ErrorCode.NOT_FOUND


async def test_what_if_counts_and_names_the_endpoints_whose_access_would_change(
    appliance: Appliance,
) -> None:
    found = await ask(appliance, "policy.what-if", policies=STRICTER)
    assert (found["endpoints"], found["would_change"]) == (400, 100)
    change = found["changes"][0]
    assert (change["before"]["access"], change["after"]["access"]) == ("allowed", "quarantined")
    assert "openssl 3.0.15-1~deb12u1" in change["after"]["failed"][0]
    assert {c["mac"][-5:] for c in found["changes"]} == {
        f"{n >> 8:02x}:{n & 0xFF:02x}" for n in range(0, 400, 4)
    }


async def test_what_if_with_the_same_policies_changes_nothing(appliance: Appliance) -> None:
    found = await ask(appliance, "policy.what-if", policies=POLICIES)
    assert found["would_change"] == 0


async def test_what_if_refuses_a_broken_policy_file_naming_the_key(appliance: Appliance) -> None:
    broken = POLICIES.replace('type = "software"', 'type = "softwar"')
    with pytest.raises(ControlError) as caught:
        await appliance.handle(Request(1, "policy.what-if", {"policies": broken}))
    assert str(caught.value).startswith("<proposed>:14: policies[0].rules[1].type: expected one of")
    assert "unknown key" not in str(caught.value)


async def test_what_if_decides_the_roles_of_signed_in_endpoints_again(
    appliance: Appliance,
) -> None:
    staff = appliance.config.realm("staff")
    assert staff is not None
    # Two endpoints on OpenSSL 3.0.15 sign in (both admitted today), one on 3.0.17.
    for mac in ("02:00:00:00:00:00", "02:00:00:00:00:04", "02:00:00:00:00:01"):
        assert appliance.admissions.sign_in(mac, staff, "ann", None).role == "full"
    found = await ask(appliance, "policy.what-if", policies=STRICTER)
    assert (found["signed_in"], found["would_change"]) == (3, 100)
    signed_in = {c["mac"]: c["role"] for c in found["changes"] if c["role"] is not None}
    assert signed_in == {
        "02:00:00:00:00:00": {"before": "full", "after": "remediation"},
        "02:00:00:00:00:04": {"before": "full", "after": "remediation"},
    }


async def test_users_get_groups_at_creation_and_later(appliance: Appliance) -> None:
    stored = hash_password("a long enough password")
    await ask(appliance, "users.add", realm="staff", user="ann", password_hash=stored,
              groups=["eng"])  # fmt: skip
    assert appliance.store.user_groups("staff", "ann") == {"eng"}
    found = await ask(appliance, "users.groups", realm="staff", user="ann", groups=["ops", "eng"])
    assert found["groups"] == ["eng", "ops"]
    listed = await ask(appliance, "users.list")
    assert listed[0]["groups"] == ["eng", "ops"]
    for bad in (["has space"], "eng", [""], ["x"] * 65):
        with pytest.raises(ControlError, match="groups: at most 64 names") as caught:
            await appliance.handle(
                Request(1, "users.groups", {"realm": "staff", "user": "ann", "groups": bad})
            )
        assert caught.value.code is ErrorCode.BAD_REQUEST
    assert appliance.store.user_groups("staff", "ann") == {"eng", "ops"}  # nothing half-done
    with pytest.raises(ControlError, match="no user 'bob'"):
        await appliance.handle(
            Request(1, "users.groups", {"realm": "staff", "user": "bob", "groups": []})
        )
