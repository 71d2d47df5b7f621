"""Judging an endpoint after sign-in (netaccess.policy.standing): the decision over its
facts, the reuse lease, the standing a judging leaves and the reason of a role change."""

from __future__ import annotations

from datetime import UTC, datetime

from netaccess.policy.admission import Outcome, RoleMapping
from netaccess.policy.hostchecker import (
    AgentAction,
    FirewallRule,
    OsRule,
    Platform,
    Policy,
    PostureFacts,
    Remediation,
)
from netaccess.policy.roles import Realm, Role
from netaccess.policy.standing import (
    FailedRule,
    Standing,
    Trigger,
    change_reason,
    judge,
    keeps_result,
    next_check,
    remediation_from_json,
    remediation_to_json,
    report_usable,
    standing_after,
)

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
FIX = Remediation("Turn the firewall on.", "https://fix.example/fw", AgentAction.ENABLE_FIREWALL)
LINUX = Policy(
    "linux-desktop",
    Platform.LINUX,
    (OsRule("os", os="Debian", min_version="12"), FirewallRule("firewall", remediation=FIX)),
)
ROLES = (
    Role("quarantine", 999, True),
    Role("remediation", 998, True),
    Role("full", 100, False, recheck_interval=600.0, policies=("linux-desktop",)),
    Role("eng", 101, False, recheck_interval=60.0, policies=("linux-desktop",)),
    Role("web", 102, False),
)
REALM = Realm("staff", "full", mappings=(RoleMapping("eng", groups=frozenset({"eng"})),))
GOOD = PostureFacts(
    platform=Platform.LINUX, os_name="Debian GNU/Linux", os_version="12.8",
    firewall_profiles={"default": True},
)  # fmt: skip
NO_FIREWALL = PostureFacts(
    platform=Platform.LINUX, os_name="Debian GNU/Linux", os_version="12.8",
    firewall_profiles={"default": False},
)  # fmt: skip


def decided(facts: PostureFacts | None, groups: frozenset[str] = frozenset()) -> tuple[str, str]:
    decision = judge(REALM, ROLES, (LINUX,), facts, None, NOW, user="ann", groups=groups)
    return decision.outcome.value, str(decision.role)


def test_a_compliant_endpoint_gets_the_realms_role_and_its_groups_mapped_role() -> None:
    assert decided(GOOD) == ("admitted", "full")
    assert decided(GOOD, frozenset({"eng"})) == ("admitted", "eng")


def test_a_failed_rule_gives_remediation_and_no_report_is_never_a_pass() -> None:
    assert decided(NO_FIREWALL) == ("remediation", "remediation")
    # No usable report, a Linux browser: the Linux policies apply and are unknown.
    decision = judge(
        REALM, ROLES, (LINUX,), None, None, NOW, user="ann", platform_hint=Platform.LINUX
    )
    assert (decision.outcome, decision.role) == (Outcome.REMEDIATION, "remediation")


def test_the_reports_platform_wins_over_the_browsers() -> None:
    decision = judge(
        REALM, ROLES, (LINUX,), NO_FIREWALL, None, NOW, user="ann", platform_hint=Platform.IOS
    )
    assert decision.role == "remediation"  # judged as the Linux endpoint it reported


def test_a_report_is_usable_within_the_lease_and_always_without_one() -> None:
    assert report_usable(100.0, 10_000.0, None)
    assert report_usable(100.0, 200.0, 100.0)
    assert not report_usable(100.0, 200.5, 100.0)
    assert not report_usable(None, 200.0, None)


def standing(**changes: object) -> Standing:
    base = Standing(
        mac="02:00:00:00:00:01",
        realm="staff",
        user="ann",
        groups=frozenset(),
        platform_hint=None,
        signed_in_at=50.0,
        judged_at=100.0,
        collected_at=90.0,
        trigger=Trigger.SIGN_IN,
        outcome=Outcome.ADMITTED,
        role="full",
    )
    fields = {name: getattr(base, name) for name in Standing.__slots__}
    fields.update(changes)
    return Standing(**fields)  # type: ignore[arg-type]


def test_a_recheck_keeps_the_result_only_within_the_lease_and_without_a_newer_report() -> None:
    kept = standing()
    assert keeps_result(kept, 90.0, 1000.0, 3600.0)
    assert not keeps_result(kept, 95.0, 1000.0, 3600.0)  # a newer report: a change event
    assert not keeps_result(kept, 90.0, 5000.0, 3600.0)  # past the lease
    assert not keeps_result(kept, 90.0, 1000.0, None)  # no lease: always judged again
    assert not keeps_result(standing(collected_at=None), None, 1000.0, 3600.0)


def test_the_standing_names_failed_rules_and_a_stale_report_adds_report_again() -> None:
    decision = judge(REALM, ROLES, (LINUX,), NO_FIREWALL, None, NOW, user="ann")
    after = standing_after(
        standing(),
        decision,
        mac="02:00:00:00:00:01",
        realm=REALM,
        user="ann",
        groups=frozenset(),
        platform_hint=None,
        now=200.0,
        collected_at=190.0,
        stale_since=None,
        trigger=Trigger.REPORT,
    )
    assert (after.signed_in_at, after.judged_at, after.collected_at) == (50.0, 200.0, 190.0)
    assert after.failed == (FailedRule("linux-desktop", "firewall", "fail"),)
    assert after.remediation == (("linux-desktop", "firewall", FIX),)
    assert after.enforced_role == "remediation"
    reason = change_reason(Trigger.REPORT, after)
    assert (
        reason == "Host Checker posture report: remediation; failed linux-desktop/firewall (fail)"
    )

    stale = standing_after(
        None,
        judge(REALM, ROLES, (LINUX,), None, None, NOW, user="ann", platform_hint=Platform.LINUX),
        mac="02:00:00:00:00:01",
        realm=REALM,
        user="ann",
        groups=frozenset(),
        platform_hint=Platform.LINUX,
        now=200.0,
        collected_at=None,
        stale_since=10.0,
        trigger=Trigger.RECHECK,
    )
    assert stale.signed_in_at == 200.0
    assert stale.remediation[0][:2] == ("posture", "report")
    assert "older than the realm's reuse_result_for" in stale.message


def test_a_denial_quarantines_and_the_next_check_follows_the_roles_interval() -> None:
    assert standing(role=None, outcome=Outcome.DENIED).enforced_role == "quarantine"
    assert next_check(standing(), ROLES) == 700.0
    assert next_check(standing(role="eng"), ROLES) == 160.0
    assert next_check(standing(role="web"), ROLES) is None  # no interval: reports only
    assert next_check(standing(role="gone"), ROLES) is None


def test_remediation_survives_the_json_the_store_keeps() -> None:
    items = (("p", "r", FIX), ("p", "s", Remediation("Just do it.")))
    assert remediation_from_json(remediation_to_json(items)) == items
    assert remediation_from_json([["p", "r", 3, None, None], "junk"]) == ()
