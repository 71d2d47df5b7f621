"""Sign-in decisions from Host Checker verdicts: realm-level failures (deny or remediation
role), role mapping, several candidate roles, remediation with the union of items, and the
mobile endpoint facing desktop-only roles, with and without a role free of Host Checker."""

from __future__ import annotations

from netaccess.policy.admission import (
    Outcome,
    RealmAdmission,
    RoleAdmission,
    RoleMapping,
    decide,
)
from netaccess.policy.hostchecker import (
    Compliance,
    FileRule,
    HostCheckerVerdict,
    Platform,
    Policy,
    Remediation,
)

POLICIES = {
    name: Policy(name, platform, (FileRule("f", "/x"),))
    for name, platform in (
        ("realm-win", Platform.WINDOWS),
        ("win-strict", Platform.WINDOWS),
        ("win-basic", Platform.WINDOWS),
        ("linux-basic", Platform.LINUX),
        ("android-basic", Platform.ANDROID),
    )
}
ROLES = {
    "engineering": RoleAdmission("engineering", ("win-strict", "linux-basic")),
    "staff": RoleAdmission("staff", ("win-basic", "linux-basic")),
    "guest-web": RoleAdmission("guest-web"),
    "phones": RoleAdmission("phones", ("android-basic",)),
}
STAFF = RealmAdmission(
    "corp",
    policies=("realm-win",),
    mappings=(
        RoleMapping("engineering", groups=frozenset({"eng"})),
        RoleMapping("staff"),
    ),
)


def verdict(policy: str, compliance: Compliance, fix: str = "") -> HostCheckerVerdict:
    remediation = (("f", Remediation(fix)),) if fix else ()
    return HostCheckerVerdict(policy, compliance, (), remediation)


OK = Compliance.COMPLIANT
BAD = Compliance.NON_COMPLIANT


def test_a_realm_level_failure_denies_sign_in_with_what_failed() -> None:
    decision = decide(
        STAFF,
        ROLES,
        POLICIES,
        {"realm-win": verdict("realm-win", BAD, "Encrypt the disk")},
        user="ann",
        platform=Platform.WINDOWS,
    )
    assert (decision.outcome, decision.role) == (Outcome.DENIED, None)
    assert "realm-win (non-compliant)" in decision.message
    assert decision.remediation[0][2].instructions == "Encrypt the disk"


def test_a_realm_level_failure_gives_the_realms_remediation_role_when_it_has_one() -> None:
    realm = RealmAdmission("corp", ("realm-win",), "remediation", STAFF.mappings)
    decision = decide(
        realm,
        ROLES,
        POLICIES,
        {"realm-win": verdict("realm-win", Compliance.UNKNOWN)},
        user="ann",
        platform=Platform.WINDOWS,
    )
    assert (decision.outcome, decision.role) == (Outcome.REMEDIATION, "remediation")


def test_the_endpoint_gets_every_satisfied_candidate_role_the_first_as_its_role() -> None:
    verdicts = {
        "realm-win": verdict("realm-win", OK),
        "win-strict": verdict("win-strict", OK),
        "win-basic": verdict("win-basic", OK),
    }
    decision = decide(
        STAFF,
        ROLES,
        POLICIES,
        verdicts,
        user="ann",
        groups=frozenset({"eng"}),
        platform=Platform.WINDOWS,
    )
    assert (decision.outcome, decision.role, decision.roles) == (
        Outcome.ADMITTED,
        "engineering",
        ("engineering", "staff"),
    )


def test_a_failing_candidate_is_skipped_for_one_that_passes() -> None:
    verdicts = {
        "realm-win": verdict("realm-win", OK),
        "win-strict": verdict("win-strict", BAD, "Install EDR"),
        "win-basic": verdict("win-basic", OK),
    }
    decision = decide(
        STAFF,
        ROLES,
        POLICIES,
        verdicts,
        user="ann",
        groups=frozenset({"eng"}),
        platform=Platform.WINDOWS,
    )
    assert (decision.role, decision.roles) == ("staff", ("staff",))


def test_with_no_role_satisfied_the_remediation_role_carries_every_failed_rules_fix() -> None:
    verdicts = {
        "realm-win": verdict("realm-win", OK),
        "win-strict": verdict("win-strict", BAD, "Install EDR"),
        "win-basic": verdict("win-basic", BAD, "Turn the firewall on"),
    }
    decision = decide(
        STAFF,
        ROLES,
        POLICIES,
        verdicts,
        user="ann",
        groups=frozenset({"eng"}),
        platform=Platform.WINDOWS,
    )
    assert (decision.outcome, decision.role) == (Outcome.REMEDIATION, "remediation")
    assert [item[2].instructions for item in decision.remediation] == [
        "Install EDR",
        "Turn the firewall on",
    ]


def test_a_role_policy_without_a_verdict_is_not_a_pass() -> None:
    decision = decide(
        STAFF,
        ROLES,
        POLICIES,
        {"realm-win": verdict("realm-win", OK)},
        user="ann",
        platform=Platform.WINDOWS,
    )
    assert decision.outcome is Outcome.REMEDIATION


def test_a_mobile_endpoint_facing_desktop_only_roles_gets_a_role_without_host_checker() -> None:
    realm = RealmAdmission(
        "corp", ("realm-win",), mappings=(RoleMapping("staff"), RoleMapping("guest-web"))
    )
    decision = decide(realm, ROLES, POLICIES, {}, user="ann", platform=Platform.IOS)
    assert (decision.outcome, decision.role) == (Outcome.ADMITTED, "guest-web")


def test_a_mobile_endpoint_facing_only_desktop_roles_is_denied_with_a_clear_message() -> None:
    decision = decide(STAFF, ROLES, POLICIES, {}, user="ann", platform=Platform.IOS)
    assert (decision.outcome, decision.role) == (Outcome.DENIED, None)
    assert "check desktop devices only" in decision.message


def test_a_mobile_role_with_mobile_policies_is_judged_by_them() -> None:
    realm = RealmAdmission("corp", mappings=(RoleMapping("phones"), RoleMapping("staff")))
    verdicts = {"android-basic": verdict("android-basic", OK)}
    decision = decide(realm, ROLES, POLICIES, verdicts, user="ann", platform=Platform.ANDROID)
    assert decision.role == "phones"


def test_mapping_rules_match_users_groups_and_platforms() -> None:
    realm = RealmAdmission(
        "corp",
        mappings=(
            RoleMapping("guest-web", users=frozenset({"visitor"})),
            RoleMapping("phones", platforms=frozenset({Platform.ANDROID})),
        ),
    )
    assert decide(realm, ROLES, POLICIES, {}, user="visitor", platform=Platform.LINUX).role == (
        "guest-web"
    )
    nobody = decide(realm, ROLES, POLICIES, {}, user="ann", platform=Platform.LINUX)
    assert (nobody.outcome, nobody.message) == (Outcome.DENIED, "no role of corp maps to ann")


def test_an_endpoint_of_unknown_platform_passes_no_host_checker() -> None:
    # No report and a browser that names no platform: every policy applies, none has a
    # verdict, so the realm's policies are unknown (never a silent pass).
    decision = decide(STAFF, ROLES, POLICIES, {}, user="ann", platform=None)
    assert (decision.outcome, decision.role) == (Outcome.DENIED, None)
    assert "realm-win (unknown)" in decision.message
    open_realm = RealmAdmission("corp", mappings=STAFF.mappings)
    decision = decide(open_realm, ROLES, POLICIES, {}, user="ann", platform=None)
    assert (decision.outcome, decision.role) == (Outcome.REMEDIATION, "remediation")
    web = RealmAdmission("web", mappings=(RoleMapping("guest-web"),))
    decision = decide(web, ROLES, POLICIES, {}, user="ann", platform=None)
    assert (decision.outcome, decision.role) == (Outcome.ADMITTED, "guest-web")  # no checks
