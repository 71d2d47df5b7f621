"""Roles in the config: built-ins always present, declared roles validated with file:line:key."""

from __future__ import annotations

import ipaddress

import pytest

from netaccess.config import ConfigError, load_config_text
from netaccess.policy.roles import Destination, Protocol

SOURCE = "appliance.toml"


def problem(text: str) -> str:
    with pytest.raises(ConfigError) as err:
        load_config_text(text, SOURCE)
    return str(err.value)


def test_builtin_roles_exist_when_the_config_is_silent() -> None:
    roles = load_config_text("", SOURCE).roles
    assert [r.name for r in roles] == ["quarantine", "remediation"]
    assert all(r.captive for r in roles)


def test_a_declared_role_keeps_its_fields() -> None:
    text = """
[[roles]]
name = "staff"
vlan = 20
captive = false
allow = ["10.0.0.0/8", { cidr = "198.19.0.3/32", proto = "tcp", ports = [443, 80] }]
recheck_interval = 600
session_lifetime = 86400
"""
    staff = load_config_text(text, SOURCE).role("staff")
    assert staff is not None
    assert (staff.vlan, staff.captive, staff.recheck_interval, staff.session_lifetime) == (
        20,
        False,
        600.0,
        86400.0,
    )
    assert staff.allow == (
        Destination(ipaddress.ip_network("10.0.0.0/8")),
        Destination(ipaddress.ip_network("198.19.0.3/32"), Protocol.TCP, (80, 443)),
    )


def test_declaring_a_builtin_role_tunes_it_in_place() -> None:
    roles = load_config_text('[[roles]]\nname = "remediation"\nvlan = 55\n', SOURCE).roles
    assert [r.name for r in roles] == ["quarantine", "remediation"]
    assert roles[1].vlan == 55 and roles[1].captive


def test_a_duplicate_role_name_names_the_key_and_line() -> None:
    text = '[[roles]]\nname = "a"\nvlan = 1\n\n[[roles]]\nname = "a"\nvlan = 2\n'
    assert problem(text) == 'appliance.toml:6: roles[1].name: role "a" is declared twice'


def test_an_invalid_cidr_names_the_element_and_suggests_the_network() -> None:
    text = '[[roles]]\nname = "a"\nvlan = 1\nallow = ["10.0.0.1/8"]\n'
    message = problem(text)
    assert message.startswith('appliance.toml:4: roles[0].allow[0].cidr: invalid CIDR "10.0.0.1/8"')
    assert 'did you mean "10.0.0.0/8"?' in message


def test_a_vlan_out_of_range_is_an_error() -> None:
    assert "roles[0].vlan: expected an integer number of a VLAN id between 1 and 4094" in problem(
        '[[roles]]\nname = "a"\nvlan = 4095\n'
    )


def test_a_new_role_without_a_vlan_is_an_error() -> None:
    assert "roles[0]: missing required key vlan" in problem('[[roles]]\nname = "a"\n')


def test_a_role_name_that_cannot_be_an_nftables_name_is_an_error() -> None:
    assert "roles[0].name: expected a role name" in problem(
        '[[roles]]\nname = "Full Access"\nvlan = 1\n'
    )


def test_ports_without_tcp_or_udp_are_an_error() -> None:
    text = '[[roles]]\nname = "a"\nvlan = 1\nallow = [{ cidr = "10.0.0.0/8", ports = [80] }]\n'
    assert 'roles[0].allow[0].ports: ports need proto = "tcp" or "udp"' in problem(text)


def test_an_unknown_key_in_a_role_is_an_error() -> None:
    assert "roles[0].vlna: unknown key" in problem('[[roles]]\nname = "a"\nvlan = 1\nvlna = 2\n')


def test_intervals_take_seconds_or_duration_strings() -> None:
    text = """
[[roles]]
name = "staff"
vlan = 20
recheck_interval = "15m"
session_lifetime = "2w"

[[realms]]
name = "corp"
role = "staff"
reuse_result_for = "7d"
"""
    config = load_config_text(text, SOURCE)
    staff = config.role("staff")
    corp = config.realm("corp")
    assert staff is not None and corp is not None
    assert (staff.recheck_interval, staff.session_lifetime) == (900.0, 14 * 86400.0)
    assert corp.reuse_result_for == 7 * 86400.0
    assert (
        load_config_text('[[realms]]\nname = "x"\nrole = "quarantine"', SOURCE)
        .realms[0]
        .reuse_result_for
        is None
    )


@pytest.mark.parametrize("value", ['"7 days"', '"0s"', '"400d"', '"-1h"', "0", "true", '""'])
def test_a_bad_duration_names_the_key_and_line(value: str) -> None:
    text = f'[[realms]]\nname = "corp"\nrole = "quarantine"\nreuse_result_for = {value}\n'
    message = problem(text)
    assert message.startswith(f"{SOURCE}:4: realms[0].reuse_result_for: expected")
