"""The Host Checker's fast paths and caches give exactly what the plain ones give: the patch
feed's index and its kept patch texts (a new feed object is never served the old one's
results), the kept version orders, the per-rule results kept by the fact each rule reads, the
kept wording of the rules that read many facts, the packages read in C from a report, the
certificate facts kept by value, the process names shared by one evaluation's rules, and the
require expression. No timing here: tools/bench/policy.py measures."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

import pytest

from netaccess.policy import hostchecker
from netaccess.policy.expression import Truth, evaluate_expression, parse_expression
from netaccess.policy.feed import PatchFeed, parse_feed
from netaccess.policy.hostchecker import (
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
    PortRule,
    PostureFacts,
    ProcessRule,
    ProtectionFact,
    ProtectionRule,
    RegistryRule,
    Rule,
    RuleResult,
    Severity,
    SoftwareRule,
    clear_caches,
    evaluate,
    facts_from_report,
    version_compare,
)
from netaccess.policy.posture import ReportedAttribute
from netaccess.proto.tnc.pa import Package

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _empty_caches() -> Iterator[None]:
    clear_caches()
    yield
    clear_caches()


# --- feeds --------------------------------------------------------------------------------------


def make_feed(
    latest: dict[str, str],
    *,
    version: int = 1,
    severity: str = "unknown",
    released: str = "2026-11-20",
    platform: str = "linux",
    without_patch: tuple[str, ...] = (),
    extra_products: list[dict[str, str]] | None = None,
) -> PatchFeed:
    products = [
        {
            "id": f"debian-12/{name}",
            "vendor": "Debian",
            "name": name,
            "platform": platform,
            "os": "Debian 12",
            "latest_version": version_text,
        }
        for name, version_text in latest.items()
    ] + (extra_products or [])
    patches = [
        {
            "id": f"{product['id']}/{product['latest_version']}",
            "product": product["id"],
            "severity": severity,
            "released": released,
            "fixed_version": product["latest_version"],
            "superseded_by": None,
        }
        for product in products
        if product["name"] not in without_patch
    ]
    document = {
        "format": "netaccess-patch-feed/1",
        "version": version,
        "issued": "2026-11-23T00:00:00Z",
        "expires": "2026-12-07T00:00:00Z",
        "source": "test",
        "products": products,
        "patches": patches,
    }
    return parse_feed(json.dumps(document).encode())


class Catalog:
    """The same feed behind the bare PatchCatalog protocol: the rules take the plain path."""

    def __init__(self, feed: PatchFeed) -> None:
        self._feed = feed

    def product_named(self, name: str, platform: str) -> Any:
        return self._feed.product_named(name, platform)

    def product_by_id(self, product_id: str) -> Any:
        return self._feed.product_by_id(product_id)

    def patch(self, patch_id: str) -> Any:
        return self._feed.patch(patch_id)


def linux(packages: dict[str, str], **more: Any) -> PostureFacts:
    return PostureFacts(
        platform=Platform.LINUX, os_name="Debian", os_version="12.7", packages=packages, **more
    )


def trace(rule: Rule, facts: PostureFacts, feed: Any, now: datetime = NOW) -> RuleResult:
    policy = Policy("p", facts.platform or Platform.LINUX, (rule,))
    (result,) = evaluate(policy, facts, feed, now).trace
    return result


def test_a_new_feed_object_is_not_served_the_old_feeds_results() -> None:
    rule = PatchRule("patched", products=("*",))
    facts = linux({"openssl": "3.0.15-1", "curl": "7.88.1-10"})
    old = make_feed({"openssl": "3.0.15-1", "curl": "7.88.1-10"}, version=1)
    new = make_feed({"openssl": "3.0.17-1", "curl": "7.88.1-10"}, version=2)
    assert trace(rule, facts, old).outcome is Truth.TRUE
    assert trace(rule, facts, new).seen == "missing: openssl 3.0.15-1 < 3.0.17-1"
    assert trace(rule, facts, old).outcome is Truth.TRUE  # and back: each feed its own
    assert trace(rule, facts, new).outcome is Truth.FALSE


def test_only_the_last_two_feeds_are_held() -> None:
    rule = PatchRule("patched", products=("*",))
    facts = linux({"openssl": "1"})
    feeds = [make_feed({"openssl": str(n)}, version=n) for n in range(1, 6)]
    for n, feed in enumerate(feeds, start=1):
        expected = Truth.TRUE if n == 1 else Truth.FALSE
        assert trace(rule, facts, feed).outcome is expected
    held = {id(index.feed) for index in hostchecker._FEED_INDEXES.values()}
    assert held <= {id(feeds[-1]), id(feeds[-2])}


PACKAGES = {
    "openssl": "3.0.15-1~deb12u1",  # behind
    "curl": "7.88.1-10+deb12u12",  # current
    "bash": "5.2.15-2+b8",  # ahead of the feed
    "vim": "2:9.0.1378-2",  # behind, patch within the grace period (see below)
    "zlib1g": "1:1.2.13.dfsg-1",  # behind, no patch in the feed
    "libc6": "2.36-9+deb12u4",  # behind, ignored severity
    "local-tool": "1.0",  # not in the feed
    "weird": "not a version!",  # not Debian's syntax: dotted comparison
}
LATEST = {
    "openssl": "3.0.17-1~deb12u2",
    "curl": "7.88.1-10+deb12u12",
    "bash": "5.2.15-2+b7",
    "vim": "2:9.0.1378-2+deb12u2",
    "zlib1g": "1:1.2.13.dfsg-1+deb12u1",
    "libc6": "2.36-9+deb12u10",
    "weird": "not a version 2",
    "not-installed": "1.0",
}


def feed_with_mixed_patches() -> PatchFeed:
    feed = make_feed(LATEST, without_patch=("zlib1g",))
    patches = []
    for patch in feed.patches:
        if patch.product.endswith("/vim"):
            patch = replace(patch, released=date(2026, 11, 22))
        if patch.product.endswith("/libc6"):
            patch = replace(patch, severity=type(patch.severity)("low"))
        patches.append(patch)
    return PatchFeed(
        feed.version, feed.issued, feed.expires, feed.source, feed.products, tuple(patches)
    )


@pytest.mark.parametrize(
    "rule",
    [
        PatchRule("p", products=("*",)),
        PatchRule("p", products=("*",), ignore_severities=frozenset({Severity.LOW})),
        PatchRule("p", products=("*",), grace_days=3),
        PatchRule("p", products=("*",), grace_days=3, ignore_severities=frozenset({Severity.LOW})),
        PatchRule("p", products=("openssl", "curl", "openssl", "local-tool", "not-installed")),
        PatchRule("p", products=("openssl",)),
        PatchRule("p", products=("local-tool", "absent")),  # the feed knows none
        PatchRule("p", products=("not-installed",)),
    ],
)
@pytest.mark.parametrize("platform", [Platform.LINUX, Platform.WINDOWS])
def test_the_feeds_index_judges_as_the_plain_lookups_do(
    rule: PatchRule, platform: Platform
) -> None:
    feed = feed_with_mixed_patches()
    if platform is Platform.WINDOWS:
        feed = make_feed(LATEST, platform="windows")
    facts = replace(linux(PACKAGES), platform=platform)
    for now in (NOW, NOW + timedelta(days=5)):
        plain = trace(rule, facts, Catalog(feed), now)
        indexed = trace(rule, facts, feed, now)
        assert indexed == plain
        clear_caches()
        assert trace(rule, facts, feed, now) == plain  # cold as warm


def test_the_grace_period_is_judged_on_each_evaluations_day() -> None:
    feed = make_feed({"openssl": "2"}, released="2026-11-22")
    rule = PatchRule("p", products=("*",), grace_days=3)
    facts = linux({"openssl": "1"})
    assert trace(rule, facts, feed, NOW).outcome is Truth.TRUE  # within the grace period
    assert trace(rule, facts, feed, NOW + timedelta(days=3)).outcome is Truth.FALSE
    assert trace(rule, facts, feed, NOW).outcome is Truth.TRUE


def test_many_missing_products_are_counted_and_twenty_shown_in_name_order() -> None:
    latest = {f"pkg{n:03d}": "2.0" for n in range(60)}
    installed = {name: "1.0" for name in reversed(list(latest))}
    facts = linux(installed)
    feed = make_feed(latest)
    rule = PatchRule("p", products=("*",))
    result = trace(rule, facts, feed)
    assert result == trace(rule, facts, Catalog(feed))
    shown = ", ".join(f"pkg{n:03d} 1.0 < 2.0" for n in range(20))
    assert result.seen == f"missing: {shown} (+40 more)"


def feed_named(names: list[str]) -> PatchFeed:
    """A feed of these product names, whatever characters they have (parse_feed refuses
    control characters; a PatchFeed built directly does not)."""
    plain = [f"product{n}" for n in range(len(names))]
    feed = make_feed(dict.fromkeys(plain, "2.0"))
    renamed = dict(zip(plain, names, strict=True))
    products = tuple(replace(p, name=renamed[p.name]) for p in feed.products)
    return PatchFeed(feed.version, feed.issued, feed.expires, feed.source, products, feed.patches)


def test_missing_products_are_shown_in_name_order_whatever_characters_the_names_have() -> None:
    # Names that start other names, followed by characters that sort before and after the
    # space between a name and its version in the trace, and names with spaces.
    plain = ["a", "a!", "a-b", "a~", "ab", "b", "a\xe9"]
    odd = ["a b", "a  b", "a !", "a\tb", "a\x00", "a\x7f"]
    feed = feed_named(plain + odd)
    rule = PatchRule("p", products=("*",))
    for extra in ([], ["a !"], ["a\tb"], ["a\x00"], odd):
        clear_caches()
        facts = linux({name: "1.0" for name in reversed(plain + extra)})
        for _ in range(2):  # texts made, then texts kept
            assert trace(rule, facts, feed) == trace(rule, facts, Catalog(feed)), extra


def test_kept_patch_texts_are_bounded_and_stay_right(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostchecker, "_TEXTS_KEPT", 3)
    monkeypatch.setattr(hostchecker, "_COUNTINGS_KEPT", 2)
    feed = feed_with_mixed_patches()
    rules = [
        PatchRule("p", products=("*",)),
        PatchRule("p", products=("*",), grace_days=3),
        PatchRule("p", products=("*",), ignore_severities=frozenset({Severity.LOW})),
    ]
    for round_ in range(3):
        for n in range(6):
            facts = linux({**PACKAGES, "openssl": f"3.0.{13 + n}-1"})
            for rule in rules:
                for now in (NOW, NOW + timedelta(days=5)):
                    expected = trace(rule, facts, Catalog(feed), now)
                    assert trace(rule, facts, feed, now) == expected, round_
    for index in hostchecker._FEED_INDEXES.values():
        assert len(index.missing) <= 2
        assert sum(len(kept) for m in index.missing.values() for kept in m.texts.values()) <= 4


def test_the_first_product_of_a_name_on_the_platform_is_the_one_judged() -> None:
    second = {
        "id": "debian-11/openssl",
        "vendor": "Debian",
        "name": "openssl",
        "platform": "linux",
        "os": "Debian 11",
        "latest_version": "9.9",
    }
    feed = make_feed({"openssl": "2.0"}, extra_products=[second])
    facts = linux({"openssl": "2.0"})
    rule = PatchRule("p", products=("*",))
    assert trace(rule, facts, feed) == trace(rule, facts, Catalog(feed))
    assert trace(rule, facts, feed).outcome is Truth.TRUE


# --- kept version orders ------------------------------------------------------------------------


VERSIONS = ["1.0", "1.0-1", "1:0.9", "1.0~rc1", "2.0+dfsg-1", "1.0.0", "garbage version", "10"]


def test_kept_orders_match_the_algorithm_across_generations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("_LINUX_ORDER", "_DOTTED_ORDER"):
        monkeypatch.setattr(hostchecker, name, hostchecker._Recent(3))
    for _ in range(3):  # the caches fill, turn over, and are read from both generations
        for a, b in itertools.product(VERSIONS, repeat=2):
            for platform in (Platform.LINUX, Platform.MACOS):
                expected = hostchecker._version_compare(a, b, platform)
                assert version_compare(a, b, platform) == expected
    assert len(hostchecker._LINUX_ORDER.young) <= 3
    assert len(hostchecker._LINUX_ORDER.old) <= 3


def test_the_linux_and_dotted_orders_are_kept_apart() -> None:
    assert version_compare("1.0~rc1", "1.0", Platform.LINUX) == -1
    assert version_compare("1.0~rc1", "1.0", Platform.WINDOWS) == 1
    assert version_compare("1.0~rc1", "1.0", Platform.LINUX) == -1


# --- results kept per rule ----------------------------------------------------------------------


def test_kept_results_follow_the_fact_each_rule_reads() -> None:
    software = SoftwareRule("ssl", "openssl", "3.0.11")
    os_rule = OsRule("os", "Debian", min_version="12")
    file_rule = FileRule("conf", "/etc/x", sha256="ab" * 32)
    port = PortRule("ssh", 22, open=True)
    registry = RegistryRule("reg", "HKLM\\Software\\Corp", "Managed", "1")
    rules: tuple[Rule, ...] = (software, os_rule, file_rule, port, registry)
    variants = [
        linux({"openssl": "3.0.15"}, files={"/etc/x": "ab" * 32}, ports={(6, 22): False}),
        linux({"openssl": "3.0.2"}, files={"/etc/x": "cd" * 32}, ports={(6, 22): True}),
        linux({}, files={}, ports={}),
        replace(linux({"openssl": "3.0.11"}), os_version="11.9", registry={}),
        replace(
            linux({"openssl": "3.0.11"}),
            os_name="Ubuntu",
            registry={("hklm\\software\\corp", "managed"): "1"},
        ),
        replace(linux({"openssl": "1.0"}), registry={("hklm\\software\\corp", "managed"): "0"}),
        PostureFacts(platform=Platform.LINUX),
        replace(linux({"openssl": "3.0.11"}), platform=Platform.WINDOWS),
    ]
    for _ in range(2):  # the second time round, every result comes from what was kept
        for facts in variants:
            ctx = hostchecker.Context(facts, None, NOW, facts.platform or Platform.LINUX)
            for rule in rules:
                assert rule.check(ctx) == rule._check(ctx)  # type: ignore[union-attr]


def test_kept_results_are_bounded_and_stay_right(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostchecker, "_RESULTS_KEPT", 4)
    monkeypatch.setattr(hostchecker, "_RULES_KEPT", 2)
    rules = [SoftwareRule(f"r{n}", "openssl", f"3.0.{n}") for n in range(4)]
    for round_ in range(3):
        for n in range(12):
            facts = linux({"openssl": f"3.0.{n}"})
            ctx = hostchecker.Context(facts, None, NOW, Platform.LINUX)
            for rule in rules:
                assert rule.check(ctx) == rule._check(ctx), round_
    assert len(hostchecker._RULE_MEMOS) <= 2
    assert all(len(memo) <= 4 for _, memo in hostchecker._RULE_MEMOS.values())


# --- wording kept per rule ----------------------------------------------------------------------


WORDED_RULES: tuple[Rule, ...] = (
    ProtectionRule("av", max_signature_days=3, product="clam"),
    ProtectionRule("as", antispyware=True),
    FirewallRule("fw"),
    FirewallRule("fw-domain", profiles=("domain", "public")),
    PatchManagementRule("pm", product="unattended", ignore_severities=frozenset({Severity.LOW})),
    ProcessRule("sshd", "sshd"),
    ProcessRule("clamd", "ClamD", sha256="c1" * 32),
    ProcessRule("telnetd", "in.telnetd", running=False),
    CertificateRule("cert", "Corp CA", subject="laptop"),
    PatchRule("patched", products=("*",)),
)


def worded_facts() -> list[PostureFacts]:
    clam = ProtectionFact("ClamAV", True, True, 3600)
    return [
        linux(
            {"openssl": "3.0.15-1~deb12u1", "curl": "7.88.1-10+deb12u12"},
            antivirus=(clam,),
            firewall_profiles={"domain": True, "public": False},
            patch_managers=(
                PatchManagerFact("unattended-upgrades", True, (("DSA-1", Severity.LOW),)),
            ),
            processes=(("sshd", "/usr/sbin/sshd"), ("clamd", "/usr/sbin/clamd")),
            files={"/usr/sbin/clamd": "c1" * 32},
            certificates=(CertificateFact("s", "CN=laptop", "CN=Corp CA", "2030-01-01"),),
        ),
        linux(
            {"openssl": "3.0.17-1~deb12u2"},
            antivirus=(replace(clam, signature_age=9 * 86400),),
            antispyware=(replace(clam, running=False),),
            firewall_profiles={"domain": True},
            patch_managers=(
                PatchManagerFact("unattended-upgrades", False, (("DSA-2", Severity.CRITICAL),)),
            ),
            processes=(("SSHD", "/opt/sshd"), ("clamd", "/opt/clamd"), ("in.telnetd", "")),
            files={},
            certificates=(CertificateFact("s", "CN=laptop", "CN=Corp CA", "2020-01-01"),),
        ),
        PostureFacts(platform=Platform.LINUX),
    ]


def test_kept_wording_gives_the_results_a_fresh_check_gives() -> None:
    feed = make_feed(LATEST)
    fresh = []
    for facts in worded_facts():
        clear_caches()
        fresh.append([trace(rule, facts, feed) for rule in WORDED_RULES])
    for _ in range(2):  # the second time round, every text and result was kept
        kept = [[trace(rule, facts, feed) for rule in WORDED_RULES] for facts in worded_facts()]
        assert kept == fresh


def test_kept_wording_is_bounded_and_stays_right(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostchecker, "_RESULTS_KEPT", 2)
    monkeypatch.setattr(hostchecker, "_RULES_KEPT", 3)
    feed = make_feed(LATEST)
    all_facts = worded_facts()
    expected = []
    for facts in all_facts:
        clear_caches()
        expected.append([trace(rule, facts, feed) for rule in WORDED_RULES])
    for _ in range(3):
        for facts, results in zip(all_facts, expected, strict=True):
            assert [trace(rule, facts, feed) for rule in WORDED_RULES] == results
    assert len(hostchecker._WORDINGS) <= 3
    assert all(len(wording.results) <= 2 for wording in hostchecker._WORDINGS.values())


def test_rules_equal_in_value_keep_their_own_results() -> None:
    first, second = SoftwareRule("a", "openssl", "3"), SoftwareRule("b", "openssl", "4")
    facts = linux({"openssl": "3.5"})
    for _ in range(2):
        assert trace(first, facts, None).outcome is Truth.TRUE
        assert trace(second, facts, None).outcome is Truth.FALSE


# --- packages read in C -------------------------------------------------------------------------


def reference_packages(attributes: list[ReportedAttribute]) -> dict[str, str] | None:
    """facts_from_report's packages as the plain loop reads them."""
    found: dict[str, str] | None = None
    for attribute in attributes:
        if attribute.name != "InstalledPackages":
            continue
        value = attribute.value if isinstance(attribute.value, dict) else {}
        found = {} if found is None else found
        for pair in value.get("packages", ()):
            if isinstance(pair, list | tuple) and len(pair) == 2:
                found[str(pair[0])] = str(pair[1])
    return found


def packages_attribute(pairs: Any) -> ReportedAttribute:
    return ReportedAttribute(0, 1, 0, 7, "InstalledPackages", {"packages": pairs})


class Pair(list[Any]):
    """A list subclass that iterates differently from how it indexes."""

    def __iter__(self) -> Iterator[Any]:
        return iter(["wrong", "wrong"])


@pytest.mark.parametrize(
    "pairs",
    [
        [["bash", "5.2"], ["curl", "7.88"]],
        (("bash", "5.2"), ("curl", "7.88")),
        (Package("bash", "5.2"), Package("curl", "7.88")),
        [["bash", "5.2"], ("curl", "7.88"), Package("vim", "9")],
        [["bash", "5.2"], ["bash", "5.3"]],  # the last one wins
        [],
        [["bash", "5.2", "x"], ["curl", "7.88"]],  # a triple is skipped
        [["bash"], ["curl", "7.88"]],
        ["ab", ["curl", "7.88"]],  # a two-letter string is no pair
        [{"a": 1, "b": 2}, ["curl", "7.88"]],
        [["bash", 5], ["curl", "7.88"]],  # non-strings become strings
        [[5, "1"], ["curl", "7.88"]],
        [[["un", "hashable"], "1"], ["curl", "7.88"]],
        [[None, None]],
        [Pair(["bash", "5.2"])],
        "not a list",
        {"bash": "5.2"},
    ],
)
def test_packages_read_in_c_match_the_plain_loop(pairs: Any) -> None:
    attributes = [packages_attribute(pairs)]
    assert facts_from_report(attributes).packages == reference_packages(attributes)


def test_packages_of_several_attributes_add_up() -> None:
    attributes = [
        packages_attribute([["bash", "5.2"], ["curl", "1"]]),
        packages_attribute([["curl", "2"], ["ab"], "xy"]),
        packages_attribute((Package("vim", "9"),)),
    ]
    facts = facts_from_report(attributes)
    assert facts.packages == reference_packages(attributes)
    assert facts.packages == {"bash": "5.2", "curl": "2", "vim": "9"}


def certificates_attribute(certificates: list[dict[str, str]]) -> ReportedAttribute:
    return ReportedAttribute(0, 1, 0, 7, "Certificates", {"certificates": certificates})


def test_certificate_facts_are_the_same_kept_or_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostchecker, "_CERTIFICATES_KEPT", 2)
    reported = [
        {"store": "/etc/ssl/certs", "subject": f"CN=ca-{n}", "issuer": f"CN=ca-{n}"}
        | ({"not_after": "2030-01-01T00:00:00Z"} if n % 2 else {})
        for n in range(5)
    ] + [{"store": 1, "subject": None}, {}]
    expected = tuple(
        CertificateFact(
            str(c.get("store", "")),
            str(c.get("subject", "")),
            str(c.get("issuer", "")),
            str(c.get("not_after", "")),
        )
        for c in reported
    )
    for _ in range(3):
        copy = json.loads(json.dumps(reported))
        assert facts_from_report([certificates_attribute(copy)]).certificates == expected
    assert len(hostchecker._CERTIFICATE_FACTS) <= 2
    clear_caches()
    assert facts_from_report([certificates_attribute(reported)]).certificates == expected


@pytest.mark.parametrize("text", ["low", "LOW", "Critical", "unknown", "bogus", "", None, 3])
def test_severities_are_read_as_the_enum_reads_them(text: object) -> None:
    try:
        expected = Severity(str(text).lower())
    except ValueError:
        expected = Severity.UNKNOWN
    assert hostchecker._severity(text) is expected


def test_an_attribute_without_a_package_list_gives_an_empty_one() -> None:
    attributes = [ReportedAttribute(0, 1, 0, 7, "InstalledPackages", "not a dict")]
    assert facts_from_report(attributes).packages == {}


# --- processes ----------------------------------------------------------------------------------


def processes_attribute(processes: Any) -> ReportedAttribute:
    return ReportedAttribute(0, 1, 0, 7, "RunningProcesses", {"processes": processes})


@pytest.mark.parametrize(
    "processes",
    [
        [{"name": "sshd", "path": "/usr/sbin/sshd"}, {"name": "cron", "path": ""}],
        [{"name": "sshd", "path": "/usr/sbin/sshd", "pid": 7}],
        [{"name": "sshd"}],  # no path
        [{"path": "/usr/sbin/sshd"}],  # no name
        [{"name": 5, "path": "/x"}],  # non-strings become strings
        [{"name": "a", "path": None}],
        [],
        ({"name": "sshd", "path": "/usr/sbin/sshd"},),  # a tuple: the plain loop
    ],
)
def test_processes_read_in_c_match_the_plain_loop(processes: Any) -> None:
    expected = tuple((str(p.get("name", "")), str(p.get("path", ""))) for p in processes)
    assert facts_from_report([processes_attribute(processes)]).processes == expected


def reference_process_check(rule: ProcessRule, facts: PostureFacts) -> RuleResult:
    """ProcessRule.check as the plain scan does it."""
    required = f"{rule.process} {'running' if rule.running else 'not running'}"
    if rule.sha256:
        required += f" with SHA-256 {rule.sha256[:16]}…"
    outcome = {True: Truth.TRUE, False: Truth.FALSE, None: Truth.UNKNOWN}

    def result(ok: bool | None, seen: str) -> RuleResult:
        return RuleResult(rule.name, rule.kind, outcome[ok], seen, required)

    if facts.processes is None:
        return result(None, "no process list reported")
    matching = [path for name, path in facts.processes if name.lower() == rule.process.lower()]
    if rule.running and rule.sha256 and matching:
        if facts.files is None:
            return result(None, "running; no file hashes reported")
        if rule.sha256.lower() not in {facts.files.get(path) for path in matching}:
            return result(False, "running with another SHA-256")
    seen = f"{len(matching)} running" if matching else "not running"
    return result(bool(matching) == rule.running, seen)


def test_process_rules_sharing_the_lowered_names_judge_as_the_plain_scan() -> None:
    processes = (
        ("sshd", "/usr/sbin/sshd"),
        ("SSHD", "/opt/sshd"),
        ("clamd", "/usr/sbin/clamd"),
        ("Straße", "/bin/x"),
        ("İstanbul", "/bin/y"),
        ("", "/bin/empty"),
        ("bash", "/usr/bin/bash"),
    )
    files = {"/opt/sshd": "ee" * 32, "/usr/sbin/clamd": "c1" * 32}
    rules = [
        ProcessRule("a", "sshd"),
        ProcessRule("b", "SshD", sha256="EE" * 32),
        ProcessRule("c", "sshd", sha256="ff" * 32),
        ProcessRule("d", "clamd", running=False),
        ProcessRule("e", "STRASSE"),
        ProcessRule("f", "straße"),
        ProcessRule("g", "i̇stanbul"),
        ProcessRule("h", ""),
        ProcessRule("i", "telnetd", running=False),
        ProcessRule("j", "bash", sha256="00" * 32),
        ProcessRule("k", "sshd", running=False, sha256="ff" * 32),
        ProcessRule("l", "telnetd", sha256="ff" * 32),
    ]
    for facts in (
        PostureFacts(platform=Platform.LINUX, processes=processes, files=files),
        PostureFacts(platform=Platform.LINUX, processes=processes),
        PostureFacts(platform=Platform.LINUX, processes=()),
        PostureFacts(platform=Platform.LINUX),
    ):
        ctx = hostchecker.Context(facts, None, NOW, Platform.LINUX)
        for rule in rules:
            assert rule.check(ctx) == reference_process_check(rule, facts)


# --- the require expression ---------------------------------------------------------------------


def outcome_of(results: dict[str, RuleResult], name: str) -> Truth:
    return results[name].outcome


@pytest.mark.parametrize(
    "text",
    [
        "a",
        "not a",
        "a and b and c",
        "a or b or c",
        "a and (b or not c)",
        "not (a or b) and c",
        "(a and not b) or (b and not c) or not not a",
    ],
)
def test_the_require_expression_is_judged_as_the_expression_module_does(text: str) -> None:
    expression = parse_expression(text)
    for outcomes in itertools.product(list(Truth), repeat=3):
        results = {
            name: RuleResult(name, "file", outcome, "", "")
            for name, outcome in zip("abc", outcomes, strict=True)
        }
        expected = evaluate_expression(expression, partial(outcome_of, results))
        assert hostchecker._truth(expression, results) is expected


def test_every_rule_is_required_when_there_is_no_require_expression() -> None:
    rules = tuple(PortRule(name, port) for name, port in zip("abc", (1, 2, 3), strict=True))
    expression = parse_expression("a and b and c")
    for states in itertools.product([True, False, None], repeat=3):
        ports = {(6, port): state for port, state in zip((1, 2, 3), states, strict=True)}
        facts = PostureFacts(
            platform=Platform.LINUX,
            ports={key: value for key, value in ports.items() if value is not None},
        )
        every = evaluate(Policy("p", Platform.LINUX, rules), facts, None, NOW)
        spelled = evaluate(Policy("p", Platform.LINUX, rules, expression), facts, None, NOW)
        assert every == spelled


def test_a_whole_policy_judges_alike_cold_and_warm() -> None:
    feed = feed_with_mixed_patches()
    policy = Policy(
        "linux",
        Platform.LINUX,
        (
            OsRule("os", "Debian", min_version="12"),
            SoftwareRule("ssl", "openssl", "3.0.11"),
            PatchRule("patched", products=("*",), grace_days=1),
            ProcessRule("sshd", "sshd"),
            PortRule("telnet", 23),
        ),
        parse_expression("os and ssl and (patched or not sshd) and telnet"),
    )
    facts = linux(PACKAGES, processes=(("sshd", "/usr/sbin/sshd"),), ports={(6, 23): True})
    cold = evaluate(policy, facts, feed, NOW)
    assert cold.compliance is Compliance.NON_COMPLIANT
    for _ in range(3):
        assert evaluate(policy, facts, feed, NOW) == cold
    clear_caches()
    assert evaluate(policy, facts, feed, NOW) == cold
