"""`[[posture.remote_imvs]]`: remote IMV servers in the config, their defaults, and errors
that name the entry, the key and the line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from netaccess.config import ConfigError, default_config, load_config_text
from netaccess.config.load import DEFAULT_CONFIG_TEXT
from netaccess.config.model import RemoteImvConfig, RemoteImvFailure

SOURCE = "appliance.toml"
ANTIVIRUS = """
[[posture.remote_imvs]]
name = "antivirus"
address = "imv.corp.example"
port = 2710
subscriptions = [[0, 2], [32473, 5]]
certificate = "/etc/netaccess/imv/client.crt"
key = "/etc/netaccess/imv/client.key"
ca = "/etc/netaccess/imv/ca.crt"
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, SOURCE)
    return str(caught.value).splitlines()


def the_problem(text: str) -> str:
    [only] = problems(text)
    return only


def with_line(line: str, *, replacing: str | None = None) -> str:
    """ANTIVIRUS with `line` added (or put in place of the line starting with `replacing`)."""
    if replacing is None:
        return ANTIVIRUS + line + "\n"
    return re.sub(rf"(?m)^{replacing} = .*$", line, ANTIVIRUS)


def test_there_are_no_remote_imvs_by_default() -> None:
    assert default_config().posture.remote_imvs == ()


def test_the_commented_out_example_loads_when_uncommented() -> None:
    start = DEFAULT_CONFIG_TEXT.index("# [[posture.remote_imvs]]")
    block = []
    for line in DEFAULT_CONFIG_TEXT[start:].splitlines():
        if not line.startswith("# "):
            break
        block.append(line.removeprefix("# "))
    config = load_config_text("\n".join(block) + "\n", SOURCE)
    assert [imv.name for imv in config.posture.remote_imvs] == ["antivirus"]


def test_a_remote_imv_loads_with_its_defaults() -> None:
    config = load_config_text(ANTIVIRUS, SOURCE)
    assert config.posture.remote_imvs == (
        RemoteImvConfig(
            name="antivirus",
            address="imv.corp.example",
            port=2710,
            subscriptions=((0, 2), (32473, 5)),
            certificate=Path("/etc/netaccess/imv/client.crt"),
            key=Path("/etc/netaccess/imv/client.key"),
            ca=Path("/etc/netaccess/imv/ca.crt"),
            server_name="imv.corp.example",
            timeout=5.0,
            on_failure=RemoteImvFailure.DONT_KNOW,
        ),
    )


def test_every_optional_key_can_be_given() -> None:
    text = ANTIVIRUS.replace('"imv.corp.example"', '"192.0.2.7"') + (
        'server_name = "imv.corp.example"\ntimeout = 0.5\non_failure = "no-access"\n'
    )
    (imv,) = load_config_text(text, SOURCE).posture.remote_imvs
    assert (imv.address, imv.server_name, imv.timeout, imv.on_failure) == (
        "192.0.2.7",
        "imv.corp.example",
        0.5,
        RemoteImvFailure.NO_ACCESS,
    )


def test_remote_imvs_keep_file_order() -> None:
    second = ANTIVIRUS.replace('"antivirus"', '"firewall"')
    names = [imv.name for imv in load_config_text(ANTIVIRUS + second, SOURCE).posture.remote_imvs]
    assert names == ["antivirus", "firewall"]


def test_missing_required_keys_are_named_together() -> None:
    assert the_problem('[[posture.remote_imvs]]\nname = "antivirus"\n') == (
        "appliance.toml:1: posture.remote_imvs[0]: missing required keys address, port, "
        "subscriptions, certificate, key, ca"
    )


def test_one_missing_key_is_named_alone() -> None:
    text = ANTIVIRUS.replace('ca = "/etc/netaccess/imv/ca.crt"\n', "")
    assert the_problem(text) == (
        "appliance.toml:2: posture.remote_imvs[0]: missing required key ca"
    )


@pytest.mark.parametrize(
    ("line", "replacing", "expected"),
    [
        (
            'name = "Anti Virus"',
            "name",
            "appliance.toml:3: posture.remote_imvs[0].name: expected a name (a-z, 0-9, _ and -, "
            'at most 32), got "Anti Virus"',
        ),
        (
            'address = "imv_1.example"',
            "address",
            "appliance.toml:4: posture.remote_imvs[0].address: expected a DNS name in lower case "
            'or an IP address, got "imv_1.example"',
        ),
        (
            "port = 70000",
            "port",
            "appliance.toml:5: posture.remote_imvs[0].port: expected an integer number of a TCP "
            "port between 1 and 65535, got 70000",
        ),
        (
            'certificate = "client.crt"',
            "certificate",
            "appliance.toml:7: posture.remote_imvs[0].certificate: expected an absolute path, "
            'got "client.crt"',
        ),
        (
            "server_name = 5",
            None,
            "appliance.toml:10: posture.remote_imvs[0].server_name: expected a DNS name in "
            "lower case or an IP address, got 5",
        ),
        (
            "timeout = 0",
            None,
            "appliance.toml:10: posture.remote_imvs[0].timeout: expected a number of seconds "
            "> 0 and <= 60, got 0",
        ),
        (
            'on_failure = "allow"',
            None,
            "appliance.toml:10: posture.remote_imvs[0].on_failure: expected one of "
            '"dont-know", "no-access", got "allow"',
        ),
        (
            "tiemout = 3",
            None,
            "appliance.toml:10: posture.remote_imvs[0].tiemout: unknown key (known: address, "
            "ca, certificate, key, name, on_failure, port, server_name, subscriptions, timeout)",
        ),
    ],
)
def test_a_bad_value_names_its_entry_key_and_line(
    line: str, replacing: str | None, expected: str
) -> None:
    assert the_problem(with_line(line, replacing=replacing)) == expected


@pytest.mark.parametrize(
    ("subscriptions", "expected"),
    [
        (
            "[]",
            "subscriptions: expected a list of at least one [vendor, subtype] pair, got []",
        ),
        (
            '"0:2"',
            'subscriptions: expected a list of at least one [vendor, subtype] pair, got "0:2"',
        ),
        (
            "[[0, 2], [2]]",
            "subscriptions[1]: expected a [vendor, subtype] pair of integers (vendor 0 to "
            "16777214, subtype 0 to 4294967294), got [2]",
        ),
        (
            "[[16777215, 2]]",
            "subscriptions[0]: expected a [vendor, subtype] pair of integers (vendor 0 to "
            "16777214, subtype 0 to 4294967294), got [16777215, 2]",
        ),
        (
            "[[0, true]]",
            "subscriptions[0]: expected a [vendor, subtype] pair of integers (vendor 0 to "
            "16777214, subtype 0 to 4294967294), got [0, true]",
        ),
        ("[[0, 2], [0, 2]]", "subscriptions[1]: [0, 2] is listed twice"),
    ],
)
def test_subscriptions_are_distinct_vendor_subtype_pairs(subscriptions: str, expected: str) -> None:
    problem = the_problem(with_line(f"subscriptions = {subscriptions}", replacing="subscriptions"))
    assert problem == f"appliance.toml:6: posture.remote_imvs[0].{expected}"


def test_a_name_declared_twice_is_an_error() -> None:
    assert the_problem(ANTIVIRUS + ANTIVIRUS) == (
        'appliance.toml:12: posture.remote_imvs[1].name: remote IMV "antivirus" is declared twice'
    )


def test_the_built_in_os_imvs_name_is_taken() -> None:
    assert the_problem(with_line('name = "os"', replacing="name")) == (
        'appliance.toml:3: posture.remote_imvs[0].name: the built-in OS IMV is named "os": '
        "choose another name"
    )


def test_remote_imvs_must_be_tables() -> None:
    assert the_problem("[posture]\nremote_imvs = 3\n") == (
        "appliance.toml:2: posture.remote_imvs: expected an array of tables, got 3"
    )


def test_an_ipv6_address_is_kept_in_its_short_form() -> None:
    text = with_line('address = "2001:db8:0:0::7"', replacing="address")
    (imv,) = load_config_text(text, SOURCE).posture.remote_imvs
    assert (imv.address, imv.server_name) == ("2001:db8::7", "2001:db8::7")
