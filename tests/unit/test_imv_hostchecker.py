"""The Host Checker IMV in a posture session: the agent's attributes become facts, the
platform's policies judge them, and the RESULT carries failed rules and their fixes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from netaccess.agent.tnc_client import OS
from netaccess.config.model import PostureConfig
from netaccess.io.posture import PostureServer
from netaccess.policy.hostchecker import (
    FirewallRule,
    OsRule,
    Platform,
    Policy,
    Remediation,
    SoftwareRule,
)
from netaccess.policy.imv_hostchecker import HostCheckerImv
from netaccess.proto.tnc.pa import InstalledPackages, Package, ProductInformation, StringVersion
from netaccess.proto.tnc.pb import AccessRecommendation, AssessmentResult
from netaccess.proto.tnc.vendor import Firewall, FirewallProfile
from netaccess.store import Store
from tests.unit.test_posture_server import session

FIREWALL = (0, 5)  # IETF component 5: Firewall
DEBIAN = (
    ProductInformation(0, 0, "Debian"),
    StringVersion("12", "", "x86_64"),
    InstalledPackages((Package("openssl", "3.0.15-1~deb12u1"),)),
)
LINUX = Policy(
    "linux-desktop",
    Platform.LINUX,
    (
        OsRule("os", "Debian", "12"),
        SoftwareRule("ssl", "openssl", "3.0.11", Remediation("Upgrade OpenSSL")),
        FirewallRule("fw", remediation=Remediation("Turn the firewall on", "https://help/fw")),
    ),
)
WINDOWS = Policy("windows", Platform.WINDOWS, (OsRule("os", "Windows 11"),))


@pytest.fixture
def store() -> Iterator[Store]:
    with Store.open_memory() as s:
        yield s


def server(store: Store) -> PostureServer:
    imv = HostCheckerImv([LINUX, WINDOWS], lambda: None, lambda: datetime(2026, 11, 23, tzinfo=UTC))
    return PostureServer(PostureConfig(), store, lambda: [imv], lambda ip: None)


async def test_a_compliant_linux_endpoint_is_allowed(store: Store) -> None:
    firewall = Firewall("nftables", (FirewallProfile("default", True),))
    outcome = await session(server(store), {OS: DEBIAN, FIREWALL: (firewall,)})
    assert outcome.result is AssessmentResult.COMPLIANT  # type: ignore[attr-defined]
    assert outcome.recommendation is AccessRecommendation.ALLOWED  # type: ignore[attr-defined]


async def test_a_failed_rule_comes_back_as_a_reason_with_its_fix(store: Store) -> None:
    firewall = Firewall("nftables", (FirewallProfile("default", False),))
    outcome = await session(server(store), {OS: DEBIAN, FIREWALL: (firewall,)})
    assert outcome.result is AssessmentResult.MAJOR_NON_COMPLIANCE  # type: ignore[attr-defined]
    assert outcome.reasons == (  # type: ignore[attr-defined]
        "linux-desktop/fw failed: default: off (required: enabled)",
    )
    assert outcome.remediation == ("https://help/fw", "Turn the firewall on")  # type: ignore[attr-defined]


async def test_missing_facts_make_the_verdict_unknown_not_compliant(store: Store) -> None:
    outcome = await session(server(store), {OS: DEBIAN})
    assert outcome.result is AssessmentResult.DONT_KNOW  # type: ignore[attr-defined]
    assert outcome.recommendation is AccessRecommendation.QUARANTINED  # type: ignore[attr-defined]
    assert "linux-desktop/fw unknown: no firewall reported" in outcome.reasons[0]  # type: ignore[attr-defined]


async def test_an_endpoint_of_a_platform_without_policies_is_not_judged(store: Store) -> None:
    macos = (ProductInformation(0, 0, "macOS"), StringVersion("14.5", "", ""))
    outcome = await session(server(store), {OS: macos})
    assert outcome.result is AssessmentResult.COMPLIANT  # type: ignore[attr-defined]


def test_the_agents_patch_management_component_reaches_the_verdict() -> None:
    # The agent sends PatchManagement under (IETF, 0); the IMV must hear it, or a patch
    # management rule would read unknown in the session's own verdict.
    from netaccess.agent.collect import PATCH_MANAGEMENT
    from netaccess.policy.imv_hostchecker import HostCheckerImv

    assert PATCH_MANAGEMENT in HostCheckerImv.subscriptions
