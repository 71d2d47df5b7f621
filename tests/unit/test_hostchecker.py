"""Host Checker rules and evaluate(): each rule type passing, failing and unknown (facts
missing), the patch rules' product/patch exclusivity, ignored severities and grace period,
the require expression, and facts read from a stored report's attributes."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

import pytest

from netaccess.policy.expression import Truth, parse_expression
from netaccess.policy.hostchecker import (
    AgentAction,
    CertificateFact,
    CertificateRule,
    Compliance,
    FileRule,
    FirewallRule,
    OsRule,
    PatchManagementRule,
    PatchManagerFact,
    PatchRule,
    Platform,
    Policy,
    PolicyError,
    PortRule,
    PostureFacts,
    ProcessRule,
    ProtectionFact,
    ProtectionRule,
    RegistryRule,
    Remediation,
    Rule,
    Severity,
    SoftwareRule,
    evaluate,
    facts_from_report,
)
from netaccess.policy.posture import ReportedAttribute

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
DEBIAN = PostureFacts(
    platform=Platform.LINUX,
    os_name="Debian",
    os_version="12.7",
    packages={"openssl": "3.0.15-1~deb12u1", "bash": "5.2.15-2+b7", "curl": "7.88.1-10+deb12u8"},
)
WINDOWS = PostureFacts(
    platform=Platform.WINDOWS,
    os_name="Windows 11 Enterprise",
    os_version="10.0.22631",
    service_pack=0,
    antivirus=(ProtectionFact("Microsoft Defender", True, True, 3600),),
    firewall_profiles={"domain": True, "private": True, "public": False},
    patch_managers=(PatchManagerFact("Windows Update", True, (("KB5031455", Severity.CRITICAL),)),),
    processes=(("MsMpEng.exe", r"C:\Program Files\Defender\MsMpEng.exe"),),
    files={r"C:\Program Files\Defender\MsMpEng.exe": "ab" * 32},
    registry={(r"hklm\software\policies\corp", "managed"): "1"},
    ports={(6, 3389): True, (6, 445): False},
    certificates=(
        CertificateFact(
            "LocalMachine\\My", "CN=laptop-17", "CN=Corp Issuing CA", "2027-01-01T00:00:00"
        ),
    ),
)


@dataclass(frozen=True)
class Product:
    id: str
    name: str
    latest_version: str


@dataclass(frozen=True)
class Patch:
    id: str
    product: str
    severity: str
    released: date
    fixed_version: str


class Feed:
    """A patch feed as the rules see it."""

    def __init__(self, products: list[Product], patches: list[Patch]) -> None:
        self.products = {(p.name, "linux"): p for p in products}
        self.by_id = {p.id: p for p in products}
        self.patches = {p.id: p for p in patches}

    def product_named(self, name: str, platform: str) -> Product | None:
        return self.products.get((name, platform))

    def product_by_id(self, product_id: str) -> Product | None:
        return self.by_id.get(product_id)

    def patch(self, patch_id: str) -> Patch | None:
        return self.patches.get(patch_id)


FEED = Feed(
    [
        Product("debian-12/openssl", "openssl", "3.0.17-1~deb12u2"),
        Product("debian-12/bash", "bash", "5.2.15-2+b7"),
        Product("debian-12/curl", "curl", "7.88.1-10+deb12u12"),
    ],
    [
        Patch(
            "debian-12/openssl/3.0.17-1~deb12u2",
            "debian-12/openssl",
            "critical",
            date(2026, 11, 1),
            "3.0.17-1~deb12u2",
        ),
        Patch(
            "debian-12/curl/7.88.1-10+deb12u12",
            "debian-12/curl",
            "low",
            date(2026, 11, 20),
            "7.88.1-10+deb12u12",
        ),
    ],
)


def check(rule: Rule, facts: PostureFacts, platform: Platform | None = None) -> tuple[Truth, str]:
    policy = Policy("p", platform or facts.platform or Platform.LINUX, (rule,))
    verdict = evaluate(policy, facts, FEED, NOW)
    (result,) = verdict.trace
    return result.outcome, result.seen


T, F, U = Truth.TRUE, Truth.FALSE, Truth.UNKNOWN


@pytest.mark.parametrize(
    ("rule", "facts", "outcome"),
    [
        (OsRule("os", "Debian", "12"), DEBIAN, T),
        (OsRule("os", "Debian", "13"), DEBIAN, F),
        (OsRule("os", "Ubuntu"), DEBIAN, F),
        (OsRule("os", "Debian", "12"), replace(DEBIAN, os_name=None), U),
        (OsRule("os", "Windows 11", "10.0.22000", 0), WINDOWS, T),
        (OsRule("os", "Windows 11", min_service_pack=1), WINDOWS, F),
        (OsRule("os", "Windows", min_service_pack=0), replace(WINDOWS, service_pack=None), U),
        (SoftwareRule("ssl", "openssl", "3.0.11"), DEBIAN, T),
        (SoftwareRule("ssl", "openssl", "3.0.17"), DEBIAN, F),
        (SoftwareRule("vim", "vim", "9"), DEBIAN, F),
        (SoftwareRule("ssl", "openssl", "3.0"), replace(DEBIAN, packages=None), U),
        (ProtectionRule("av", max_signature_days=1), WINDOWS, T),
        (ProtectionRule("av", max_signature_days=0), WINDOWS, F),
        (ProtectionRule("av", product="Sophos"), WINDOWS, F),
        (ProtectionRule("av"), replace(WINDOWS, antivirus=None), U),
        (
            ProtectionRule("av", max_signature_days=3),
            replace(WINDOWS, antivirus=(ProtectionFact("Defender", True, True, None),)),
            U,
        ),
        (
            ProtectionRule("av"),
            replace(WINDOWS, antivirus=(ProtectionFact("Defender", True, False, 60),)),
            F,
        ),
        (ProtectionRule("as", antispyware=True), WINDOWS, U),
        (FirewallRule("fw", ("domain", "private")), WINDOWS, T),
        (FirewallRule("fw"), WINDOWS, F),
        (FirewallRule("fw", ("work",)), WINDOWS, U),
        (FirewallRule("fw"), replace(WINDOWS, firewall_profiles=None), U),
        (PatchManagementRule("pm", "Windows Update"), WINDOWS, F),
        (
            PatchManagementRule("pm", ignore_severities=frozenset({Severity.CRITICAL})),
            WINDOWS,
            T,
        ),
        (PatchManagementRule("pm", "SCCM"), WINDOWS, F),
        (PatchManagementRule("pm"), replace(WINDOWS, patch_managers=None), U),
        (ProcessRule("defender", "msmpeng.exe"), WINDOWS, T),
        (ProcessRule("defender", "MsMpEng.exe", sha256="AB" * 32), WINDOWS, T),
        (ProcessRule("defender", "MsMpEng.exe", sha256="cd" * 32), WINDOWS, F),
        (ProcessRule("no-rdp", "mstsc.exe", running=False), WINDOWS, T),
        (ProcessRule("defender", "MsMpEng.exe"), replace(WINDOWS, processes=None), U),
        (FileRule("agent", r"C:\Program Files\Defender\MsMpEng.exe", "ab" * 32), WINDOWS, T),
        (FileRule("agent", r"C:\missing.exe"), WINDOWS, F),
        (FileRule("agent", r"C:\x.exe"), replace(WINDOWS, files=None), U),
        (RegistryRule("managed", r"HKLM\Software\Policies\Corp", "Managed", "1"), WINDOWS, T),
        (RegistryRule("managed", r"HKLM\Software\Policies\Corp", "Managed", "0"), WINDOWS, F),
        (RegistryRule("other", r"HKLM\Other", "X", "1"), WINDOWS, F),
        (RegistryRule("r", "k", "v", "1"), replace(WINDOWS, registry=None), U),
        (PortRule("rdp-closed", 3389), WINDOWS, T),
        (PortRule("smb-closed", 445), WINDOWS, F),
        (PortRule("smb-open", 445, open=True), WINDOWS, T),
        (PortRule("ssh", 22), WINDOWS, U),
        (PortRule("ssh", 22), replace(WINDOWS, ports=None), U),
        (CertificateRule("corp-cert", "Corp Issuing CA"), WINDOWS, T),
        (CertificateRule("corp-cert", "Corp Issuing CA", subject="server"), WINDOWS, F),
        (CertificateRule("other-ca", "Other CA"), WINDOWS, F),
        (
            CertificateRule("corp-cert", "Corp Issuing CA"),
            replace(
                WINDOWS,
                certificates=(
                    CertificateFact("My", "CN=a", "CN=Corp Issuing CA", "2026-01-01T00:00:00"),
                ),
            ),
            F,
        ),
        (CertificateRule("c", "X"), replace(WINDOWS, certificates=None), U),
    ],
)
def test_each_rule_passes_fails_or_is_unknown(
    rule: Rule, facts: PostureFacts, outcome: Truth
) -> None:
    assert check(rule, facts)[0] is outcome


def test_a_patch_rule_by_product_finds_packages_older_than_the_feed() -> None:
    outcome, seen = check(PatchRule("patched", products=("*",)), DEBIAN)
    assert outcome is F
    assert "openssl 3.0.15-1~deb12u1 < 3.0.17-1~deb12u2" in seen
    assert "curl" in seen and "bash" not in seen


def test_ignored_severities_do_not_count() -> None:
    rule = PatchRule("patched", products=("curl",), ignore_severities=frozenset({Severity.LOW}))
    assert check(rule, DEBIAN)[0] is T


def test_a_patch_inside_its_grace_period_does_not_count_yet() -> None:
    assert check(PatchRule("p", products=("curl",), grace_days=7), DEBIAN)[0] is T
    assert check(PatchRule("p", products=("curl",), grace_days=2), DEBIAN)[0] is F


def test_a_patch_rule_by_patch_id_checks_the_fixed_version() -> None:
    rule = PatchRule("p", patches=("debian-12/openssl/3.0.17-1~deb12u2",))
    outcome, seen = check(rule, DEBIAN)
    assert (outcome, seen) == (F, "missing: debian-12/openssl/3.0.17-1~deb12u2")
    upgraded = replace(DEBIAN, packages={"openssl": "3.0.17-1~deb12u2"})
    assert check(rule, upgraded)[0] is T


def test_a_windows_patch_rule_uses_the_patch_managers_missing_list() -> None:
    assert check(PatchRule("kb", patches=("KB5031455",)), WINDOWS)[0] is F
    assert check(PatchRule("kb", patches=("KB5000001",)), WINDOWS)[0] is T


def test_without_a_feed_or_packages_a_patch_rule_is_unknown() -> None:
    policy = Policy("p", Platform.LINUX, (PatchRule("patched", products=("*",)),))
    assert evaluate(policy, DEBIAN, None, NOW).compliance is Compliance.UNKNOWN
    assert check(PatchRule("p", products=("*",)), replace(DEBIAN, packages=None))[0] is U


def test_a_policy_mixing_patch_rules_by_product_and_by_patch_is_refused() -> None:
    with pytest.raises(PolicyError, match="by product and by patch id cannot be in the same"):
        Policy(
            "mixed",
            Platform.LINUX,
            (PatchRule("a", products=("openssl",)), PatchRule("b", patches=("X",))),
        )


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ((), "no rules"),
        ((FileRule("a", "/x"), FileRule("a", "/y")), "rule names used twice: a"),
        ((PatchRule("p", products=("a",), patches=("b",)),), "give products or patches"),
    ],
)
def test_malformed_policies_are_refused(rules: tuple[Rule, ...], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        Policy("bad", Platform.LINUX, rules)


def test_require_names_must_be_rules() -> None:
    with pytest.raises(PolicyError, match="require names unknown rules: antivirus"):
        Policy("p", Platform.LINUX, (FileRule("a", "/x"),), parse_expression("a and antivirus"))


def test_the_require_expression_decides_and_the_trace_keeps_every_rule() -> None:
    rules = (
        OsRule("os", "Windows 11", remediation=Remediation("Upgrade")),
        ProtectionRule("av", product="Sophos", remediation=Remediation("Install Sophos")),
        FirewallRule("fw", ("domain",)),
    )
    either = Policy("p", Platform.WINDOWS, rules, parse_expression("os and (av or fw)"))
    verdict = evaluate(either, WINDOWS, None, NOW)
    assert verdict.compliance is Compliance.COMPLIANT
    assert [(r.rule, r.outcome) for r in verdict.trace] == [("os", T), ("av", F), ("fw", T)]
    everything = Policy("p", Platform.WINDOWS, rules)
    verdict = evaluate(everything, WINDOWS, None, NOW)
    assert verdict.compliance is Compliance.NON_COMPLIANT
    assert verdict.remediation == (("av", Remediation("Install Sophos")),)


def test_unknown_facts_never_pass_silently() -> None:
    policy = Policy("p", Platform.WINDOWS, (ProtectionRule("av"), FirewallRule("fw", ("domain",))))
    verdict = evaluate(policy, replace(WINDOWS, antivirus=None), None, NOW)
    assert verdict.compliance is Compliance.UNKNOWN


def test_a_policy_for_another_platform_does_not_apply() -> None:
    policy = Policy("p", Platform.WINDOWS, (FirewallRule("fw"),))
    assert evaluate(policy, DEBIAN, FEED, NOW).compliance is Compliance.NON_COMPLIANT
    unknown = evaluate(policy, PostureFacts(), FEED, NOW)
    assert unknown.compliance is Compliance.UNKNOWN


def test_remediation_carries_the_agents_action() -> None:
    rule = FirewallRule(
        "fw", remediation=Remediation("Turn it on", action=AgentAction.ENABLE_FIREWALL)
    )
    verdict = evaluate(Policy("p", Platform.WINDOWS, (rule,)), WINDOWS, None, NOW)
    assert verdict.remediation[0][1].action is AgentAction.ENABLE_FIREWALL


def test_facts_come_from_a_stored_reports_attributes() -> None:
    attributes = [
        ReportedAttribute(
            0, 1, 0, 2, "ProductInformation", {"vendor": 0, "product_id": 0, "name": "Debian"}
        ),
        ReportedAttribute(
            0, 1, 0, 4, "StringVersion", {"version": "12", "build": "", "configuration": ""}
        ),
        ReportedAttribute(0, 1, 0, 7, "InstalledPackages", {"packages": [["bash", "5.2"]]}),
        ReportedAttribute(
            0,
            2,
            32473,
            1,
            "Antivirus",
            {
                "product": "ClamAV",
                "vendor": "Cisco",
                "version": "1.0",
                "running": True,
                "real_time_protection": False,
                "signature_version": "27000",
                "signature_age": 7200,
            },
        ),
        ReportedAttribute(
            0,
            5,
            32473,
            2,
            "Firewall",
            {
                "product": "nftables",
                "profiles": [{"name": "default", "enabled": True}],
            },
        ),
        ReportedAttribute(
            0,
            0,
            32473,
            3,
            "PatchManagement",
            {
                "product": "unattended-upgrades",
                "enabled": True,
                "last_scan_age": 60,
                "missing": [{"id": "DSA-1", "severity": "important"}],
            },
        ),
    ]
    facts = facts_from_report(attributes)
    assert facts.platform is Platform.LINUX
    assert (facts.os_name, facts.os_version) == ("Debian", "12")
    assert facts.packages == {"bash": "5.2"}
    assert facts.antivirus == (ProtectionFact("ClamAV", True, False, 7200),)
    assert facts.firewall_profiles == {"default": True}
    assert facts.patch_managers == (
        PatchManagerFact("unattended-upgrades", True, (("DSA-1", Severity.IMPORTANT),)),
    )
    assert facts.processes is None and facts.certificates is None
