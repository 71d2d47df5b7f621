"""Host Checker policies in the config: every rule type read, errors naming the key path
and line, and the shipped example loading for all five platforms."""

from __future__ import annotations

from pathlib import Path

import pytest

import netaccess.config
from netaccess.config import ConfigError
from netaccess.config.load import TableReader, _IssueLog, _parse_toml
from netaccess.config.policies import RULE_KEYS, read_policies
from netaccess.policy.hostchecker import (
    AgentAction,
    PatchRule,
    Platform,
    Policy,
    PortRule,
    Severity,
)

EXAMPLE = Path(netaccess.config.__file__).parent / "host-checker-example.toml"


def policies_of(text: str) -> tuple[Policy, ...]:
    issues = _IssueLog("hc.toml", text)
    root = TableReader(_parse_toml(text, "hc.toml"), (), issues)
    policies = read_policies(root)
    root.finish()
    issues.raise_if_any()
    return policies


def problem(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        policies_of(text)
    return str(caught.value)


def test_the_example_has_a_policy_for_every_platform_and_every_rule_type() -> None:
    policies = policies_of(EXAMPLE.read_text())
    assert {p.platform for p in policies} == set(Platform)
    kinds = {rule.kind for policy in policies for rule in policy.rules}
    assert kinds >= {
        "os",
        "antivirus",
        "firewall",
        "patch_management",
        "port",
        "certificate",
        "registry",
        "patch",
    }
    assert kinds <= set(RULE_KEYS)
    windows = next(p for p in policies if p.platform is Platform.WINDOWS)
    updates = next(r for r in windows.rules if r.name == "updates")
    assert updates.remediation.action is AgentAction.TRIGGER_PATCH_MANAGER
    assert updates.ignore_severities == frozenset({Severity.LOW, Severity.MODERATE})  # type: ignore[union-attr]


def test_a_patch_rule_and_a_port_rule_read_their_keys() -> None:
    (policy,) = policies_of(
        '[[policies]]\nname = "l"\nplatform = "linux"\n'
        '[[policies.rules]]\nname = "p"\ntype = "patch"\nproducts = ["openssl"]\n'
        'ignore_severities = ["low"]\ngrace_days = 5\n'
        '[[policies.rules]]\nname = "udp"\ntype = "port"\nport = 53\n'
        'protocol = "udp"\nopen = true\n'
    )
    assert policy.rules == (
        PatchRule("p", ("openssl",), (), frozenset({Severity.LOW}), 5),
        PortRule("udp", 53, 17, True),
    )


def test_patch_rules_by_product_and_by_patch_in_one_policy_are_an_error() -> None:
    assert problem(
        '[[policies]]\nname = "mixed"\nplatform = "linux"\n'
        '[[policies.rules]]\nname = "a"\ntype = "patch"\nproducts = ["openssl"]\n'
        '[[policies.rules]]\nname = "b"\ntype = "patch"\npatches = ["DSA-1"]\n'
    ) == (
        "hc.toml:1: policies[0]: policy mixed: patch rules by product and by patch id cannot"
        " be in the same policy"
    )


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ('name = "x"\ntype = "virus"\n', 'policies[0].rules[0].type: expected one of "os",'),
        ('name = "x"\ntype = "software"\nproduct = "vim"\n', "missing required key min_version"),
        ('name = "x"\ntype = "port"\nport = 99999\n', "policies[0].rules[0].port:"),
        ('name = "x"\ntype = "file"\npath = "/a"\nsha256 = "zz"\n', "expected a SHA-256"),
        ('name = "x"\ntype = "firewall"\nport = 22\n', "policies[0].rules[0].port: unknown key"),
        ('name = "x"\ntype = "firewall"\naction = "reboot"\n', 'got "reboot"'),
        ('name = "x"\ntype = "patch"\n', "a patch rule takes products or patches"),
        (
            'name = "x"\ntype = "patch"\nproducts = ["a"]\nignore_severities = ["meh"]\n',
            '"meh" is not a severity',
        ),
    ],
)
def test_rule_errors_name_the_key(rules: str, expected: str) -> None:
    text = '[[policies]]\nname = "p"\nplatform = "linux"\n[[policies.rules]]\n' + rules
    assert expected in problem(text)


def test_a_bad_require_expression_is_reported_with_its_column() -> None:
    text = (
        '[[policies]]\nname = "p"\nplatform = "linux"\nrequire = "fw and (os"\n'
        '[[policies.rules]]\nname = "fw"\ntype = "firewall"\n'
    )
    assert problem(text) == "hc.toml:4: policies[0].require: column 11: expected ')' for column 8"


def test_require_naming_an_unknown_rule_is_reported() -> None:
    text = (
        '[[policies]]\nname = "p"\nplatform = "linux"\nrequire = "fw and av"\n'
        '[[policies.rules]]\nname = "fw"\ntype = "firewall"\n'
    )
    assert "require names unknown rules: av" in problem(text)


def test_a_policy_needs_a_platform_and_rules() -> None:
    assert "missing required key platform" in problem('[[policies]]\nname = "p"\n')
    assert "a policy needs [[policies.rules]]" in problem(
        '[[policies]]\nname = "p"\nplatform = "ios"\n'
    )


def test_a_policy_declared_twice_is_reported() -> None:
    one = (
        '[[policies]]\nname = "p"\nplatform = "ios"\n'
        '[[policies.rules]]\nname = "os"\ntype = "os"\nos = "iOS"\n'
    )
    assert 'policy "p" is declared twice' in problem(one + one)


def test_policies_load_with_the_rest_of_the_config() -> None:
    from netaccess.config import load_config_text

    config = load_config_text(EXAMPLE.read_text(), "example.toml")
    assert config.policy("linux-desktop") is not None
    assert config.policy("linux-desktop").platform is Platform.LINUX  # type: ignore[union-attr]
    assert len(config.policies) == 5


def test_appliance_policy_check_passes_the_example_and_names_a_bad_key(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from appliance.cli import main

    good = CliRunner().invoke(main, ["policy", "check", str(EXAMPLE)])
    assert good.exit_code == 0, good.output
    assert "5 policies, no problems" in good.output
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[[policies]]\nname = "p"\nplatform = "linux"\n'
        '[[policies.rules]]\nname = "x"\ntype = "port"\nport = 99999\n'
    )
    refused = CliRunner().invoke(main, ["policy", "check", str(bad)])
    assert refused.exit_code == 1
    assert f"{bad}:7: policies[0].rules[0].port:" in refused.output


BASE = """
[[policies]]
name = "linux-desktop"
platform = "linux"
[[policies.rules]]
name = "os"
type = "os"
os = "Debian"

[[roles]]
name = "full"
vlan = 100
policies = ["linux-desktop"]

[[roles]]
name = "guests"
vlan = 200
"""


def test_realms_and_roles_name_their_policies_mappings_and_remediation_role() -> None:
    from netaccess.config import load_config_text
    from netaccess.policy.admission import RoleMapping

    config = load_config_text(
        BASE + '[[realms]]\nname = "corp"\nrole = "guests"\npolicies = ["linux-desktop"]\n'
        'remediation_role = "remediation"\n'
        '[[realms.mappings]]\nrole = "full"\ngroups = ["eng"]\nplatforms = ["linux", "macos"]\n',
        "c.toml",
    )
    assert config.role("full").policies == ("linux-desktop",)  # type: ignore[union-attr]
    (realm,) = config.realms
    assert (realm.policies, realm.remediation_role) == (("linux-desktop",), "remediation")
    admission = realm.admission()
    assert admission.mappings == (
        RoleMapping(
            "full", frozenset(), frozenset({"eng"}), frozenset({Platform.LINUX, Platform.MACOS})
        ),
        RoleMapping("guests"),
    )


@pytest.mark.parametrize(
    ("realm", "expected"),
    [
        (
            'policies = ["nope"]\n',
            'realms[0].policies: unknown policy "nope" (declared: linux-desktop)',
        ),
        ('remediation_role = "jail"\n', 'realms[0].remediation_role: unknown role "jail"'),
        ('[[realms.mappings]]\nrole = "gold"\n', 'realms[0].mappings[0].role: unknown role "gold"'),
        ('[[realms.mappings]]\nrole = "full"\nplatforms = ["beos"]\n', '"beos" is not a platform'),
        ("[[realms.mappings]]\ngroups = []\n", "realms[0].mappings[0]: missing required key role"),
    ],
)
def test_realm_references_are_checked(realm: str, expected: str) -> None:
    from netaccess.config import load_config_text

    with pytest.raises(ConfigError) as caught:
        load_config_text(BASE + '[[realms]]\nname = "corp"\nrole = "guests"\n' + realm, "c.toml")
    assert expected in str(caught.value)


def test_a_role_naming_an_unknown_policy_is_reported() -> None:
    from netaccess.config import load_config_text

    with pytest.raises(
        ConfigError, match=r'c.toml:13: roles\[0\]\.policies: unknown policy "windows"'
    ):
        load_config_text(
            BASE.replace('policies = ["linux-desktop"]', 'policies = ["windows"]'), "c.toml"
        )
