"""Host Checker policies from the config: `[[policies]]`, each with `[[policies.rules]]`.

    [[policies]]
    name = "linux-baseline"
    platform = "linux"                    # windows, macos, linux, ios, android
    require = "os and (patched or pm)"    # optional; default: every rule

    [[policies.rules]]
    name = "os"
    type = "os"
    os = "Debian"
    min_version = "12"
    instructions = "Upgrade to Debian 12."   # remediation, all optional
    link = "https://intranet.example/debian"
    action = "trigger_patch_manager"

Each rule type's keys are in RULE_KEYS; every error names the key path and its line.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from netaccess.config.errors import toml_string
from netaccess.policy.expression import ExpressionError, parse_expression
from netaccess.policy.hostchecker import (
    AgentAction,
    CertificateRule,
    FileRule,
    FirewallRule,
    OsRule,
    PatchManagementRule,
    PatchRule,
    Platform,
    Policy,
    PolicyError,
    PortRule,
    ProcessRule,
    ProtectionRule,
    RegistryRule,
    Remediation,
    Rule,
    Severity,
    SoftwareRule,
)

if TYPE_CHECKING:
    from netaccess.config.load import TableReader

_E = TypeVar("_E", bound=enum.Enum)
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,47}")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_COMMON = {"name", "type", "instructions", "link", "action"}
RULE_KEYS: dict[str, set[str]] = {
    "os": {"os", "min_version", "min_service_pack"},
    "software": {"product", "min_version"},
    "patch": {"products", "patches", "ignore_severities", "grace_days"},
    "antivirus": {"product", "max_signature_days"},
    "antispyware": {"product", "max_signature_days"},
    "firewall": {"profiles"},
    "patch_management": {"product", "max_missing", "ignore_severities"},
    "process": {"process", "running", "sha256"},
    "file": {"path", "sha256"},
    "registry": {"key", "value_name", "data"},
    "port": {"port", "protocol", "open"},
    "certificate": {"issuer", "subject"},
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "os": ("os",),
    "software": ("product", "min_version"),
    "process": ("process",),
    "file": ("path",),
    "registry": ("key", "value_name", "data"),
    "port": ("port",),
    "certificate": ("issuer",),
}


def read_policies(root: TableReader) -> tuple[Policy, ...]:
    """Every `[[policies]]` table, in file order; a bad one is reported and left out."""
    policies: dict[str, Policy] = {}
    for table in root.array_of_tables("policies"):
        policy = _policy(table)
        if policy is None:
            continue
        if policy.name in policies:
            table.issue("name", f"policy {toml_string(policy.name)} is declared twice")
            continue
        policies[policy.name] = policy
    return tuple(policies.values())


def _policy(table: TableReader) -> Policy | None:
    for key in ("name", "platform"):
        if not table.has(key):
            table.issue((), f"missing required key {key}")
    name = table.string(
        "name", "", pattern=_NAME, expected="a policy name (a-z first, then a-z, 0-9, _ and -)"
    )
    platform = _choice(table, "platform", Platform)
    require_text = table.string("require", "")
    rules = [rule for rule in map(_rule, table.array_of_tables("rules")) if rule is not None]
    if not table.has("rules"):
        table.issue((), "a policy needs [[policies.rules]]")
    require = None
    if require_text:
        try:
            require = parse_expression(require_text)
        except ExpressionError as exc:
            table.issue("require", str(exc))
            return None
    if not name or platform is None or not rules:
        return None
    try:
        return Policy(name, platform, tuple(rules), require)
    except PolicyError as exc:
        table.issue((), str(exc))
        return None


def _rule(table: TableReader) -> Rule | None:
    kind = table.string("type", "")
    if kind not in RULE_KEYS:
        known = ", ".join(toml_string(k) for k in RULE_KEYS)
        table.issue(
            "type", f"expected one of {known}, got {toml_string(kind) if kind else 'nothing'}"
        )
        table.skip_rest()
        return None
    missing = [key for key in ("name", *_REQUIRED.get(kind, ())) if not table.has(key)]
    for key in missing:
        table.issue((), f"missing required key {key} (for a {kind} rule)")
    name = table.string(
        "name", "", pattern=_NAME, expected="a rule name (a-z first, then a-z, 0-9, _ and -)"
    )
    remediation = Remediation(
        table.string("instructions", ""),
        table.string("link", "", pattern=re.compile(r"https?://\S+"), expected="an http(s) URL"),
        _choice(table, "action", AgentAction),
    )
    # Built even when something is missing, so that every key of this type is read; keys
    # of other rule types never are, and the reader's finish() reports them.
    rule = _BUILDERS[kind](table, name, remediation)
    return None if missing or not name else rule


def _choice(table: TableReader, key: str, kind: type[_E]) -> _E | None:
    value = table.string(key, "")
    if not value:
        return None
    for member in kind:
        if member.value == value:
            return member
    choices = ", ".join(toml_string(m.value) for m in kind)
    table.issue(key, f"expected one of {choices}, got {toml_string(value)}")
    return None


def _strings(table: TableReader, key: str) -> tuple[str, ...]:
    value = table.raw(key)
    if value is None:
        return ()
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    table.issue(key, "expected a list of non-empty strings")
    return ()


def _severities(table: TableReader) -> frozenset[Severity]:
    found = set()
    for value in _strings(table, "ignore_severities"):
        try:
            found.add(Severity(value))
        except ValueError:
            choices = ", ".join(toml_string(s.value) for s in Severity)
            table.issue("ignore_severities", f"{toml_string(value)} is not a severity ({choices})")
    return frozenset(found)


def _sha256(table: TableReader) -> str:
    return table.string(
        "sha256", "", pattern=_SHA256, expected="a SHA-256 in hex (64 digits)"
    ).lower()


def _os(table: TableReader, name: str, remediation: Remediation) -> Rule:
    service_pack = table.integer("min_service_pack", -1, min=-1, max=1000, unit="a service pack")
    return OsRule(
        name,
        table.string("os", ""),
        table.string("min_version", ""),
        None if service_pack < 0 else service_pack,
        remediation,
    )


def _software(table: TableReader, name: str, remediation: Remediation) -> Rule:
    return SoftwareRule(
        name, table.string("product", ""), table.string("min_version", ""), remediation
    )


def _patch(table: TableReader, name: str, remediation: Remediation) -> Rule:
    products, patches = _strings(table, "products"), _strings(table, "patches")
    if bool(products) == bool(patches):
        table.issue((), "a patch rule takes products or patches (one of them, not both)")
    return PatchRule(
        name,
        products,
        patches,
        _severities(table),
        table.integer("grace_days", 0, min=0, max=365, unit="days"),
        remediation,
    )


def _protection(antispyware: bool) -> Callable[[TableReader, str, Remediation], Rule]:
    def build(table: TableReader, name: str, remediation: Remediation) -> Rule:
        days = table.integer("max_signature_days", -1, min=-1, max=365, unit="days")
        return ProtectionRule(
            name, None if days < 0 else days, table.string("product", ""), antispyware, remediation
        )

    return build


def _firewall(table: TableReader, name: str, remediation: Remediation) -> Rule:
    return FirewallRule(name, _strings(table, "profiles"), remediation)


def _patch_management(table: TableReader, name: str, remediation: Remediation) -> Rule:
    return PatchManagementRule(
        name,
        table.string("product", ""),
        table.integer("max_missing", 0, min=0, max=100_000, unit="patches"),
        _severities(table),
        remediation,
    )


def _process(table: TableReader, name: str, remediation: Remediation) -> Rule:
    return ProcessRule(
        name,
        table.string("process", ""),
        table.boolean("running", True),
        _sha256(table),
        remediation,
    )


def _file(table: TableReader, name: str, remediation: Remediation) -> Rule:
    return FileRule(name, table.string("path", ""), _sha256(table), remediation)


def _registry(table: TableReader, name: str, remediation: Remediation) -> Rule:
    return RegistryRule(
        name,
        table.string("key", ""),
        table.string("value_name", ""),
        table.string("data", ""),
        remediation,
    )


def _port(table: TableReader, name: str, remediation: Remediation) -> Rule:
    protocol = table.string(
        "protocol", "tcp", pattern=re.compile(r"tcp|udp"), expected='"tcp" or "udp"'
    )
    return PortRule(
        name,
        table.integer("port", 0, min=1, max=65535, unit="a port"),
        6 if protocol == "tcp" else 17,
        table.boolean("open", False),
        remediation,
    )


def _certificate(table: TableReader, name: str, remediation: Remediation) -> Rule:
    return CertificateRule(
        name, table.string("issuer", ""), table.string("subject", ""), remediation
    )


_BUILDERS: dict[str, Callable[[TableReader, str, Remediation], Rule]] = {
    "os": _os,
    "software": _software,
    "patch": _patch,
    "antivirus": _protection(False),
    "antispyware": _protection(True),
    "firewall": _firewall,
    "patch_management": _patch_management,
    "process": _process,
    "file": _file,
    "registry": _registry,
    "port": _port,
    "certificate": _certificate,
}


def check_policies_text(text: str, source: str) -> tuple[Policy, ...]:
    """Validate a file offline (`appliance policy check`): one with only `[[policies]]`, or
    a whole appliance config. Raises ConfigError naming every problem, key path and line."""
    from netaccess.config.load import TableReader, _IssueLog, _parse_toml, load_config_text

    data = _parse_toml(text, source)
    if set(data) - {"policies"}:
        return load_config_text(text, source).policies
    issues = _IssueLog(source, text)
    root = TableReader(data, (), issues)
    policies = read_policies(root)
    root.finish()
    issues.raise_if_any()
    return policies
