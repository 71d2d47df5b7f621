"""The [radius] keys for 802.1X: eap_realm (the first realm by default, else one declared),
eap_timeout, eap_sessions and eap_tls_ca."""

from __future__ import annotations

from pathlib import Path

import pytest

from netaccess.config import DEFAULT_CONFIG_TEXT, ConfigError, load_config_text
from netaccess.config.model import RadiusConfig

MORE_REALMS = '\n[[realms]]\nname = "guests"\nrole = "full"\ntitle = "Guests"\n'


def radius(text: str) -> RadiusConfig:
    return load_config_text(text, "t.toml").radius


def test_the_defaults_leave_the_realm_to_the_first_and_offer_no_eap_tls() -> None:
    loaded = radius(DEFAULT_CONFIG_TEXT + MORE_REALMS)
    assert loaded.eap_realm == ""  # the server takes the first realm, "staff"
    assert (loaded.eap_timeout, loaded.eap_sessions, loaded.eap_tls_ca) == (60.0, 4096, None)


def test_eap_keys_are_read() -> None:
    text = (DEFAULT_CONFIG_TEXT + MORE_REALMS).replace(
        'eap_realm = ""',
        'eap_realm = "guests"\neap_timeout = 30\neap_sessions = 10\neap_tls_ca = "/etc/ca.pem"',
    )
    text = text.replace("eap_timeout = 60.0\n", "").replace("eap_sessions = 4096\n", "")
    text = text.replace('eap_tls_ca = ""\n', "")
    loaded = radius(text)
    assert loaded.eap_realm == "guests"
    assert (loaded.eap_timeout, loaded.eap_sessions) == (30, 10)
    assert loaded.eap_tls_ca == Path("/etc/ca.pem")


def test_an_unknown_eap_realm_is_an_error_naming_the_key_and_the_realms() -> None:
    with pytest.raises(ConfigError) as caught:
        radius(DEFAULT_CONFIG_TEXT.replace('eap_realm = ""', 'eap_realm = "nobody"'))
    text = str(caught.value)
    assert 'radius.eap_realm: unknown realm "nobody" (realms: "staff")' in text, text


@pytest.mark.parametrize(
    ("key", "bad", "expected"),
    [
        ("eap_timeout = 60.0", "eap_timeout = 1", "radius.eap_timeout"),
        ("eap_sessions = 4096", "eap_sessions = 0", "radius.eap_sessions"),
        ('eap_tls_ca = ""', 'eap_tls_ca = "relative/ca.pem"', "radius.eap_tls_ca"),
    ],
)
def test_out_of_range_eap_values_name_their_key(key: str, bad: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        radius(DEFAULT_CONFIG_TEXT.replace(key, bad))


def test_the_default_documents_every_eap_key() -> None:
    part = DEFAULT_CONFIG_TEXT.split("[radius]", 1)[1]
    for key in ("eap_realm", "eap_timeout", "eap_sessions", "eap_tls_ca"):
        assert f"\n{key} = " in part, key
