"""Host Checker: policies of rules over an endpoint's posture, judged by a pure function.

`evaluate(policy, facts, feed, now)` gives a verdict (compliant, non-compliant, unknown)
with a trace per rule (what was seen, what was required, pass/fail/unknown) and the
remediation of the rules that failed. A fact the endpoint did not report makes its rule
unknown, never a silent pass. The facts come from a posture report's attributes
(`facts_from_report`), so live sessions and stored reports (what-if) are judged alike.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from netaccess.policy.debversion import DebianVersionError, compare_versions
from netaccess.policy.expression import (
    Expression,
    Truth,
    all_of,
    evaluate_expression,
    names_in,
)
from netaccess.policy.posture import ReportedAttribute


class Platform(enum.Enum):
    WINDOWS = "windows"
    MACOS = "macos"
    LINUX = "linux"
    IOS = "ios"
    ANDROID = "android"

    @property
    def mobile(self) -> bool:
        return self in (Platform.IOS, Platform.ANDROID)


class AgentAction(enum.Enum):
    """What the agent may do on its own to fix a failed rule."""

    TRIGGER_PATCH_MANAGER = "trigger_patch_manager"
    ENABLE_FIREWALL = "enable_firewall"
    START_ANTIVIRUS = "start_antivirus"
    UPDATE_SIGNATURES = "update_signatures"


class Severity(enum.Enum):
    UNKNOWN = "unknown"
    LOW = "low"
    MODERATE = "moderate"
    IMPORTANT = "important"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Remediation:
    instructions: str = ""
    link: str = ""
    action: AgentAction | None = None


# --- facts ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProtectionFact:
    """An antivirus or anti-spyware product (our vendor attribute type 1)."""

    product: str
    running: bool
    real_time: bool
    signature_age: int | None  # seconds, None when the endpoint does not know


@dataclass(frozen=True, slots=True)
class PatchManagerFact:
    product: str
    enabled: bool
    missing: tuple[tuple[str, Severity], ...]  # (patch id, severity)


@dataclass(frozen=True, slots=True)
class CertificateFact:
    store: str
    subject: str
    issuer: str
    not_after: str  # ISO 8601


@dataclass(frozen=True, slots=True)
class PostureFacts:
    """What an endpoint reported, normalised. None: the endpoint reported nothing of that
    kind (the rule is unknown); an empty collection: it reported none."""

    platform: Platform | None = None
    os_name: str | None = None
    os_version: str | None = None
    service_pack: int | None = None
    packages: Mapping[str, str] | None = None
    antivirus: tuple[ProtectionFact, ...] | None = None
    antispyware: tuple[ProtectionFact, ...] | None = None
    firewall_profiles: Mapping[str, bool] | None = None
    patch_managers: tuple[PatchManagerFact, ...] | None = None
    processes: tuple[tuple[str, str], ...] | None = None  # (name, path)
    files: Mapping[str, str] | None = None  # path -> sha256 hex
    registry: Mapping[tuple[str, str], str] | None = None  # (key, value name) -> data
    ports: Mapping[tuple[int, int], bool] | None = None  # (protocol, port) -> blocked
    certificates: tuple[CertificateFact, ...] | None = None


IETF = 0
_OS, _ANTIVIRUS, _ANTISPYWARE = 1, 2, 3
_PLATFORM_OF_PRODUCT = (
    (re.compile(r"windows", re.I), Platform.WINDOWS),
    (re.compile(r"mac ?os|os x|darwin", re.I), Platform.MACOS),
    (re.compile(r"\bios\b|ipados|iphone", re.I), Platform.IOS),
    (re.compile(r"android", re.I), Platform.ANDROID),
    (
        re.compile(r"debian|ubuntu|fedora|red hat|rhel|suse|linux|centos|alma|rocky|arch", re.I),
        Platform.LINUX,
    ),
)


def platform_of(product: str) -> Platform | None:
    for pattern, platform in _PLATFORM_OF_PRODUCT:
        if pattern.search(product):
            return platform
    return None


def facts_from_report(attributes: Iterable[ReportedAttribute]) -> PostureFacts:
    """Facts from a report's attributes (their JSON values, as stored)."""
    found: dict[str, Any] = {}
    antivirus: list[ProtectionFact] = []
    antispyware: list[ProtectionFact] = []
    for attribute in attributes:
        value = attribute.value if isinstance(attribute.value, dict) else {}
        name = attribute.name
        if name == "ProductInformation" and attribute.component_subtype == _OS:
            found["os_name"] = str(value.get("name", ""))
            found["platform"] = platform_of(found["os_name"])
        elif name == "StringVersion" and attribute.component_subtype == _OS:
            found["os_version"] = str(value.get("version", ""))
        elif name == "NumericVersion" and attribute.component_subtype == _OS:
            found["service_pack"] = _int(value.get("service_pack_major"))
            found.setdefault("os_version", f"{value.get('major')}.{value.get('minor')}")
        elif name == "InstalledPackages":
            packages = found.setdefault("packages", {})
            for pair in value.get("packages", ()):
                if isinstance(pair, list | tuple) and len(pair) == 2:
                    packages[str(pair[0])] = str(pair[1])
        elif name == "Antivirus":
            fact = ProtectionFact(
                str(value.get("product", "")),
                bool(value.get("running")),
                bool(value.get("real_time_protection")),
                _int(value.get("signature_age")),
            )
            (antispyware if attribute.component_subtype == _ANTISPYWARE else antivirus).append(fact)
        elif name == "Firewall":
            profiles = found.setdefault("firewall_profiles", {})
            for profile in value.get("profiles", ()):
                profiles[str(profile.get("name", ""))] = bool(profile.get("enabled"))
        elif name == "PatchManagement":
            missing = tuple(
                (str(patch.get("id", "")), _severity(patch.get("severity")))
                for patch in value.get("missing", ())
            )
            found.setdefault("patch_managers", []).append(
                PatchManagerFact(str(value.get("product", "")), bool(value.get("enabled")), missing)
            )
        elif name == "RunningProcesses":
            found["processes"] = tuple(
                (str(p.get("name", "")), str(p.get("path", ""))) for p in value.get("processes", ())
            )
        elif name == "FileHashes":
            found["files"] = {
                str(f.get("path", "")): str(f.get("sha256", "")).lower()
                for f in value.get("files", ())
            }
        elif name == "RegistryValues":
            found["registry"] = {
                (str(v.get("key", "")).lower(), str(v.get("name", "")).lower()): str(
                    v.get("data", "")
                )
                for v in value.get("values", ())
            }
        elif name == "PortFilter":
            found["ports"] = {
                (int(e.get("protocol", 0)), int(e.get("port", 0))): bool(e.get("blocked"))
                for e in value.get("entries", ())
            }
        elif name == "Certificates":
            found["certificates"] = tuple(
                CertificateFact(
                    str(c.get("store", "")),
                    str(c.get("subject", "")),
                    str(c.get("issuer", "")),
                    str(c.get("not_after", "")),
                )
                for c in value.get("certificates", ())
            )
    if antivirus:
        found["antivirus"] = tuple(antivirus)
    if antispyware:
        found["antispyware"] = tuple(antispyware)
    if "patch_managers" in found:
        found["patch_managers"] = tuple(found["patch_managers"])
    return PostureFacts(**found)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _severity(value: object) -> Severity:
    try:
        return Severity(str(value).lower())
    except ValueError:
        return Severity.UNKNOWN


# --- the patch feed, as rules see it -----------------------------------------------------


class FeedProduct(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def latest_version(self) -> str: ...


class FeedPatch(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def product(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def released(self) -> date: ...
    @property
    def fixed_version(self) -> str: ...


class PatchCatalog(Protocol):
    """What patch rules need from the patch feed (netaccess.policy.feed)."""

    def product_named(self, name: str, platform: str) -> FeedProduct | None: ...

    def product_by_id(self, product_id: str) -> FeedProduct | None: ...

    def patch(self, patch_id: str) -> FeedPatch | None: ...


# --- rules ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleResult:
    rule: str
    kind: str
    outcome: Truth
    seen: str
    required: str


@dataclass(frozen=True, slots=True)
class Context:
    facts: PostureFacts
    feed: PatchCatalog | None
    now: datetime
    platform: Platform


def version_compare(a: str, b: str, platform: Platform) -> int:
    """Debian's algorithm on Linux (its packages), dotted numbers elsewhere."""
    if platform is Platform.LINUX:
        try:
            return compare_versions(a, b)
        except DebianVersionError:
            pass
    left, right = _numbers(a), _numbers(b)
    return (left > right) - (left < right)


def _numbers(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:8])


def _result(rule: Rule, ok: bool | None, seen: str, required: str) -> RuleResult:
    outcome = Truth.UNKNOWN if ok is None else (Truth.TRUE if ok else Truth.FALSE)
    return RuleResult(rule.name, rule.kind, outcome, seen, required)


@dataclass(frozen=True, slots=True)
class OsRule:
    name: str
    os: str  # a substring of the reported OS name, e.g. "Debian", "Windows 11"
    min_version: str = ""
    min_service_pack: int | None = None
    remediation: Remediation = Remediation()
    kind = "os"

    def check(self, ctx: Context) -> RuleResult:
        facts = ctx.facts
        required = " ".join(
            part
            for part in (
                self.os,
                f">= {self.min_version}" if self.min_version else "",
                f"SP >= {self.min_service_pack}" if self.min_service_pack is not None else "",
            )
            if part
        )
        if facts.os_name is None:
            return _result(self, None, "no OS reported", required)
        seen = f"{facts.os_name} {facts.os_version or '?'}"
        if self.os.lower() not in facts.os_name.lower():
            return _result(self, False, seen, required)
        if self.min_version:
            if facts.os_version is None:
                return _result(self, None, seen, required)
            if version_compare(facts.os_version, self.min_version, ctx.platform) < 0:
                return _result(self, False, seen, required)
        if self.min_service_pack is not None:
            if facts.service_pack is None:
                return _result(self, None, f"{seen}, no service pack reported", required)
            seen += f" SP{facts.service_pack}"
            if facts.service_pack < self.min_service_pack:
                return _result(self, False, seen, required)
        return _result(self, True, seen, required)


@dataclass(frozen=True, slots=True)
class SoftwareRule:
    """A product installed at a minimum version (from the Installed Packages list)."""

    name: str
    product: str
    min_version: str
    remediation: Remediation = Remediation()
    kind = "software"

    def check(self, ctx: Context) -> RuleResult:
        required = f"{self.product} >= {self.min_version}"
        packages = ctx.facts.packages
        if packages is None:
            return _result(self, None, "no package list reported", required)
        installed = packages.get(self.product)
        if installed is None:
            return _result(self, False, f"{self.product} not installed", required)
        ok = version_compare(installed, self.min_version, ctx.platform) >= 0
        return _result(self, ok, f"{self.product} {installed}", required)


@dataclass(frozen=True, slots=True)
class PatchRule:
    """Either whole products at the feed's latest version (`products`; ["*"]: every
    installed package the feed knows), or specific patches (`patches`). Patches of
    ignored severities, and patches released less than `grace_days` ago, do not count."""

    name: str
    products: tuple[str, ...] = ()
    patches: tuple[str, ...] = ()
    ignore_severities: frozenset[Severity] = frozenset()
    grace_days: int = 0
    remediation: Remediation = Remediation()
    kind = "patch"

    @property
    def by_product(self) -> bool:
        return bool(self.products)

    def check(self, ctx: Context) -> RuleResult:
        required = (
            f"latest versions of {', '.join(self.products)}"
            if self.by_product
            else f"patches {', '.join(self.patches)}"
        )
        if self.ignore_severities:
            ignored = ", ".join(sorted(s.value for s in self.ignore_severities))
            required += f" (ignoring {ignored})"
        if ctx.feed is None:
            return _result(self, None, "no patch feed loaded", required)
        packages = ctx.facts.packages
        if self.by_product and packages is not None:
            missing = self._missing_products(ctx, packages)
        elif not self.by_product and (packages is not None or ctx.facts.patch_managers):
            missing = self._missing_patches(ctx, packages)
        else:
            return _result(self, None, "no package list reported", required)
        if missing is None:
            return _result(self, None, "the feed does not know these products", required)
        seen = "none missing" if not missing else "missing: " + ", ".join(missing[:20])
        if len(missing) > 20:
            seen += f" (+{len(missing) - 20} more)"
        return _result(self, not missing, seen, required)

    def _counts(self, severity: str, released: date, now: datetime) -> bool:
        if _severity(severity) in self.ignore_severities:
            return False
        return released + timedelta(days=self.grace_days) <= now.date()

    def _missing_products(self, ctx: Context, packages: Mapping[str, str]) -> list[str] | None:
        assert ctx.feed is not None
        names = sorted(packages) if self.products == ("*",) else list(self.products)
        missing, known = [], 0
        for name in names:
            product = ctx.feed.product_named(name, ctx.platform.value)
            if product is None:
                continue
            known += 1
            installed = packages.get(name)
            if installed is None:
                continue  # not installed: nothing to patch
            if version_compare(installed, product.latest_version, ctx.platform) >= 0:
                continue
            patch = ctx.feed.patch(f"{product.id}/{product.latest_version}")
            if patch is not None and not self._counts(patch.severity, patch.released, ctx.now):
                continue
            missing.append(f"{name} {installed} < {product.latest_version}")
        return missing if known or self.products == ("*",) else None

    def _missing_patches(self, ctx: Context, packages: Mapping[str, str] | None) -> list[str]:
        assert ctx.feed is not None
        reported_missing = {
            patch_id
            for manager in ctx.facts.patch_managers or ()
            for patch_id, _ in manager.missing
        }
        missing = []
        for patch_id in self.patches:
            patch = ctx.feed.patch(patch_id)
            if patch is None:
                if patch_id in reported_missing:
                    missing.append(patch_id)
                continue
            if not self._counts(patch.severity, patch.released, ctx.now):
                continue
            if patch_id in reported_missing:
                missing.append(patch_id)
                continue
            product = ctx.feed.product_by_id(patch.product)
            if packages is None or product is None:
                continue
            installed = packages.get(product.name)
            if installed is not None and (
                version_compare(installed, patch.fixed_version, ctx.platform) < 0
            ):
                missing.append(patch_id)
        return missing


@dataclass(frozen=True, slots=True)
class ProtectionRule:
    """Antivirus (or anti-spyware): a product running with real-time protection, with
    signatures no older than `max_signature_days`."""

    name: str
    max_signature_days: int | None = None
    product: str = ""  # a substring of the product name; "": any
    antispyware: bool = False
    remediation: Remediation = Remediation()

    @property
    def kind(self) -> str:
        return "antispyware" if self.antispyware else "antivirus"

    def check(self, ctx: Context) -> RuleResult:
        required = (self.product or f"an {self.kind} product") + ", running, real-time"
        if self.max_signature_days is not None:
            required += f", signatures <= {self.max_signature_days} days old"
        products = ctx.facts.antispyware if self.antispyware else ctx.facts.antivirus
        if products is None:
            return _result(self, None, f"no {self.kind} reported", required)
        candidates = [p for p in products if self.product.lower() in p.product.lower()]
        if not candidates:
            return _result(self, False, "not installed", required)
        unknown_age = False
        for product in candidates:
            if not (product.running and product.real_time):
                continue
            if self.max_signature_days is None:
                return _result(self, True, f"{product.product} running", required)
            if product.signature_age is None:
                unknown_age = True
                continue
            if product.signature_age <= self.max_signature_days * 86400:
                days = product.signature_age / 86400
                return _result(
                    self, True, f"{product.product}, signatures {days:.1f} days", required
                )
        seen = "; ".join(
            f"{p.product}: {'running' if p.running else 'stopped'}, "
            f"real-time {'on' if p.real_time else 'off'}, signatures "
            + ("age unknown" if p.signature_age is None else f"{p.signature_age / 86400:.1f} days")
            for p in candidates
        )
        return _result(self, None if unknown_age else False, seen, required)


@dataclass(frozen=True, slots=True)
class FirewallRule:
    """The firewall on in every reported profile (or in the ones named)."""

    name: str
    profiles: tuple[str, ...] = ()
    remediation: Remediation = Remediation()
    kind = "firewall"

    def check(self, ctx: Context) -> RuleResult:
        required = "enabled" + (f" in {', '.join(self.profiles)}" if self.profiles else "")
        profiles = ctx.facts.firewall_profiles
        if profiles is None:
            return _result(self, None, "no firewall reported", required)
        wanted = self.profiles or tuple(profiles)
        if not wanted:
            return _result(self, False, "no firewall profiles", required)
        states = {name: profiles.get(name) for name in wanted}
        seen = ", ".join(
            f"{n}: {'on' if s else 'off' if s is not None else 'not reported'}"
            for n, s in states.items()
        )
        if any(state is False for state in states.values()):
            return _result(self, False, seen, required)
        if any(state is None for state in states.values()):
            return _result(self, None, seen, required)
        return _result(self, True, seen, required)


@dataclass(frozen=True, slots=True)
class PatchManagementRule:
    """Patch-management software present and enabled, with no missing patches (of the
    severities that count)."""

    name: str
    product: str = ""
    max_missing: int = 0
    ignore_severities: frozenset[Severity] = frozenset()
    remediation: Remediation = Remediation()
    kind = "patch_management"

    def check(self, ctx: Context) -> RuleResult:
        required = f"{self.product or 'a patch manager'} enabled, <= {self.max_missing} missing"
        managers = ctx.facts.patch_managers
        if managers is None:
            return _result(self, None, "no patch management reported", required)
        candidates = [m for m in managers if self.product.lower() in m.product.lower()]
        if not candidates:
            return _result(self, False, "none installed", required)
        best = None
        for manager in candidates:
            counted = [pid for pid, sev in manager.missing if sev not in self.ignore_severities]
            if manager.enabled and len(counted) <= self.max_missing:
                return _result(self, True, f"{manager.product}: {len(counted)} missing", required)
            best = best or (manager, counted)
        manager, counted = best if best else (candidates[0], [])
        state = "enabled" if manager.enabled else "disabled"
        seen = f"{manager.product} {state}, missing: {', '.join(counted[:10]) or 'none'}"
        return _result(self, False, seen, required)


@dataclass(frozen=True, slots=True)
class ProcessRule:
    """A process running (or absent), optionally with its executable's SHA-256."""

    name: str
    process: str
    running: bool = True
    sha256: str = ""
    remediation: Remediation = Remediation()
    kind = "process"

    def check(self, ctx: Context) -> RuleResult:
        required = f"{self.process} {'running' if self.running else 'not running'}"
        if self.sha256:
            required += f" with SHA-256 {self.sha256[:16]}…"
        processes = ctx.facts.processes
        if processes is None:
            return _result(self, None, "no process list reported", required)
        matching = [path for name, path in processes if name.lower() == self.process.lower()]
        if self.running and self.sha256 and matching:
            files = ctx.facts.files
            if files is None:
                return _result(self, None, "running; no file hashes reported", required)
            hashes = {files.get(path) for path in matching}
            if self.sha256.lower() not in hashes:
                return _result(self, False, "running with another SHA-256", required)
        seen = f"{len(matching)} running" if matching else "not running"
        return _result(self, bool(matching) == self.running, seen, required)


@dataclass(frozen=True, slots=True)
class FileRule:
    name: str
    path: str
    sha256: str = ""
    remediation: Remediation = Remediation()
    kind = "file"

    def check(self, ctx: Context) -> RuleResult:
        required = f"{self.path} present" + (
            f", SHA-256 {self.sha256[:16]}…" if self.sha256 else ""
        )
        files = ctx.facts.files
        if files is None:
            return _result(self, None, "no file hashes reported", required)
        if self.path not in files:
            return _result(self, False, "absent", required)
        digest = files[self.path]
        if self.sha256 and digest != self.sha256.lower():
            return _result(self, False, f"SHA-256 {digest[:16]}…", required)
        return _result(self, True, "present", required)


@dataclass(frozen=True, slots=True)
class RegistryRule:
    name: str
    key: str
    value_name: str
    data: str
    remediation: Remediation = Remediation()
    kind = "registry"

    def check(self, ctx: Context) -> RuleResult:
        required = f"{self.key}\\{self.value_name} = {self.data}"
        registry = ctx.facts.registry
        if registry is None:
            return _result(self, None, "no registry values reported", required)
        seen_value = registry.get((self.key.lower(), self.value_name.lower()))
        if seen_value is None:
            return _result(self, False, "not set", required)
        return _result(self, seen_value == self.data, seen_value, required)


@dataclass(frozen=True, slots=True)
class PortRule:
    name: str
    port: int
    protocol: int = 6  # IP protocol number: 6 TCP, 17 UDP
    open: bool = False
    remediation: Remediation = Remediation()
    kind = "port"

    def check(self, ctx: Context) -> RuleResult:
        label = {6: "tcp", 17: "udp"}.get(self.protocol, str(self.protocol))
        required = f"{label}/{self.port} {'open' if self.open else 'closed'}"
        ports = ctx.facts.ports
        if ports is None:
            return _result(self, None, "no port filter reported", required)
        blocked = ports.get((self.protocol, self.port))
        if blocked is None:
            return _result(self, None, f"{label}/{self.port} not in the report", required)
        seen = f"{label}/{self.port} {'closed' if blocked else 'open'}"
        return _result(self, blocked != self.open, seen, required)


@dataclass(frozen=True, slots=True)
class CertificateRule:
    """A certificate issued by a given CA (a substring of its issuer DN), optionally with
    a subject matching, in any store."""

    name: str
    issuer: str
    subject: str = ""
    remediation: Remediation = Remediation()
    kind = "certificate"

    def check(self, ctx: Context) -> RuleResult:
        required = f"issued by {self.issuer}" + (
            f", subject {self.subject}" if self.subject else ""
        )
        certificates = ctx.facts.certificates
        if certificates is None:
            return _result(self, None, "no certificates reported", required)
        now = ctx.now.isoformat()
        for certificate in certificates:
            if self.issuer.lower() not in certificate.issuer.lower():
                continue
            if self.subject and self.subject.lower() not in certificate.subject.lower():
                continue
            if certificate.not_after and certificate.not_after < now[: len(certificate.not_after)]:
                continue  # expired
            return _result(self, True, certificate.subject, required)
        return _result(self, False, f"{len(certificates)} certificates, none matching", required)


Rule = (
    OsRule
    | SoftwareRule
    | PatchRule
    | ProtectionRule
    | FirewallRule
    | PatchManagementRule
    | ProcessRule
    | FileRule
    | RegistryRule
    | PortRule
    | CertificateRule
)


class PolicyError(ValueError):
    """The policy cannot be used as written; the message names the rule or field."""


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    platform: Platform
    rules: tuple[Rule, ...]
    require: Expression | None = None  # None: every rule

    def __post_init__(self) -> None:
        names = [rule.name for rule in self.rules]
        if not names:
            raise PolicyError(f"policy {self.name}: no rules")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise PolicyError(f"policy {self.name}: rule names used twice: {', '.join(duplicates)}")
        patch_rules = [rule for rule in self.rules if isinstance(rule, PatchRule)]
        if any(r.by_product for r in patch_rules) and any(not r.by_product for r in patch_rules):
            raise PolicyError(
                f"policy {self.name}: patch rules by product and by patch id cannot be in the"
                " same policy"
            )
        for rule in patch_rules:
            if bool(rule.products) == bool(rule.patches):
                raise PolicyError(
                    f"policy {self.name}, rule {rule.name}: give products or patches, not both"
                )
        if self.require is not None:
            unknown = sorted(names_in(self.require) - set(names))
            if unknown:
                raise PolicyError(
                    f"policy {self.name}: require names unknown rules: {', '.join(unknown)}"
                )

    @property
    def expression(self) -> Expression:
        return self.require or all_of([rule.name for rule in self.rules])


class Compliance(enum.Enum):
    COMPLIANT = "compliant"
    NON_COMPLIANT = "non-compliant"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class HostCheckerVerdict:
    policy: str
    compliance: Compliance
    trace: tuple[RuleResult, ...]
    remediation: tuple[tuple[str, Remediation], ...] = field(default=())  # (rule, what to do)


_COMPLIANCE = {
    Truth.TRUE: Compliance.COMPLIANT,
    Truth.FALSE: Compliance.NON_COMPLIANT,
    Truth.UNKNOWN: Compliance.UNKNOWN,
}


def evaluate(
    policy: Policy, facts: PostureFacts, feed: PatchCatalog | None, now: datetime
) -> HostCheckerVerdict:
    """Judge `facts` by `policy`. An endpoint of another platform than the policy's is
    non-compliant (the policy is not for it), with a trace that says so."""
    if facts.platform is not policy.platform:
        seen = facts.platform.value if facts.platform else "unknown"
        result = RuleResult(
            "platform",
            "platform",
            Truth.FALSE if facts.platform else Truth.UNKNOWN,
            seen,
            policy.platform.value,
        )
        return HostCheckerVerdict(policy.name, _COMPLIANCE[result.outcome], (result,))
    ctx = Context(facts, feed, now, policy.platform)
    results = {rule.name: rule.check(ctx) for rule in policy.rules}
    truth = evaluate_expression(policy.expression, lambda name: results[name].outcome)
    remediation = tuple(
        (rule.name, rule.remediation)
        for rule in policy.rules
        if results[rule.name].outcome is Truth.FALSE
        and (rule.remediation.instructions or rule.remediation.link or rule.remediation.action)
    )
    return HostCheckerVerdict(policy.name, _COMPLIANCE[truth], tuple(results.values()), remediation)


def evaluate_all(
    policies: Sequence[Policy], facts: PostureFacts, feed: PatchCatalog | None, now: datetime
) -> tuple[HostCheckerVerdict, ...]:
    return tuple(evaluate(policy, facts, feed, now) for policy in policies)
