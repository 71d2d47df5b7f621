"""`[patch_feed]`: the keys that may sign the patch feed and where it is pulled from; its
defaults, and errors that name the key and the line."""

from __future__ import annotations

import base64
import dataclasses
import tomllib
from pathlib import Path

import pytest

from netaccess.config import ConfigError, default_config, load_config_text
from netaccess.config.load import DEFAULT_CONFIG_TEXT
from netaccess.config.model import PatchFeedConfig

SOURCE = "appliance.toml"
KEY = base64.b64encode(bytes(range(32))).decode()
OTHER = base64.b64encode(bytes(range(1, 33))).decode()


def loaded(body: str) -> PatchFeedConfig:
    return load_config_text(f"[patch_feed]\n{body}", SOURCE).patch_feed


def the_problem(body: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config_text(f"[patch_feed]\n{body}", SOURCE)
    [only] = str(caught.value).splitlines()
    return only


def test_by_default_no_key_is_trusted_and_nothing_is_pulled() -> None:
    assert default_config().patch_feed == PatchFeedConfig()
    assert (PatchFeedConfig().url, PatchFeedConfig().interval) == ("", 3600.0)


def test_the_embedded_default_spells_out_every_key() -> None:
    document = tomllib.loads(DEFAULT_CONFIG_TEXT)
    assert set(document["patch_feed"]) == {f.name for f in dataclasses.fields(PatchFeedConfig)}


def test_a_full_section_loads() -> None:
    feed = loaded(
        f'trusted_keys = ["{KEY}", "{OTHER}"]\n'
        'url = "https://feeds.corp.test/debian-12.json"\n'
        'signature_url = "https://feeds.corp.test/sig/debian-12.json.sig"\n'
        "interval = 600\ntimeout = 20\n"
        'ca = "/etc/netaccess/feeds-ca.pem"\n'
    )
    assert feed == PatchFeedConfig(
        trusted_keys=(bytes(range(32)), bytes(range(1, 33))),
        url="https://feeds.corp.test/debian-12.json",
        signature_url="https://feeds.corp.test/sig/debian-12.json.sig",
        interval=600.0,
        timeout=20.0,
        ca=Path("/etc/netaccess/feeds-ca.pem"),
    )


def test_the_signature_url_defaults_to_the_feed_url_with_sig_appended() -> None:
    feed = loaded(f'trusted_keys = ["{KEY}"]\nurl = "http://198.19.0.2:8080/feed.json?os=12"\n')
    assert feed.signature_url == "http://198.19.0.2:8080/feed.json.sig?os=12"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            'trusted_keys = ["not base64!"]',
            'appliance.toml:2: patch_feed.trusted_keys[0]: not base64: "not base64!"',
        ),
        (
            f'trusted_keys = ["{base64.b64encode(bytes(31)).decode()}"]',
            "appliance.toml:2: patch_feed.trusted_keys[0]: decodes to 31 bytes; an Ed25519 "
            "public key has 32 (give the raw key in base64, not PEM or OpenSSH format)",
        ),
        (
            f'trusted_keys = ["{KEY}", "{KEY}"]',
            f'appliance.toml:2: patch_feed.trusted_keys[1]: key "{KEY}" is listed twice',
        ),
        (
            f'trusted_keys = "{KEY}"',
            "appliance.toml:2: patch_feed.trusted_keys: expected a list of Ed25519 public keys "
            f'(base64 of the raw 32 bytes), got "{KEY}"',
        ),
        (
            f'trusted_keys = ["{KEY}"]\nurl = "ftp://feeds.corp.test/feed.json"',
            'appliance.toml:3: patch_feed.url: expected an http:// or https:// URL, or "" for '
            'none, got "ftp://feeds.corp.test/feed.json": the scheme must be http or https',
        ),
        (
            f'trusted_keys = ["{KEY}"]\nurl = "https://user:pw@feeds.corp.test/f"',
            'appliance.toml:3: patch_feed.url: expected an http:// or https:// URL, or "" for '
            'none, got "https://user:pw@feeds.corp.test/f": credentials do not belong in a URL '
            "here",
        ),
        (
            f'trusted_keys = ["{KEY}"]\nurl = "http://feeds corp/f"',
            'appliance.toml:3: patch_feed.url: expected an http:// or https:// URL, or "" for '
            'none, got "http://feeds corp/f": it contains whitespace or control characters',
        ),
        (
            'url = "http://198.19.0.2/feed.json"',
            "appliance.toml:2: patch_feed.url: a feed URL needs trusted_keys to verify what it "
            "serves",
        ),
        (
            'signature_url = "http://198.19.0.2/feed.json.sig"',
            "appliance.toml:2: patch_feed.signature_url: signature_url without url: give the "
            "feed's url too",
        ),
        (
            "interval = 59",
            "appliance.toml:2: patch_feed.interval: expected a number of seconds between 60 and "
            "604800, got 59",
        ),
        (
            "timeout = 0",
            "appliance.toml:2: patch_feed.timeout: expected a number of seconds between 1 and "
            "600, got 0",
        ),
        (
            'ca = "feeds-ca.pem"',
            'appliance.toml:2: patch_feed.ca: expected an absolute path, or "" for none, got '
            '"feeds-ca.pem"',
        ),
        (
            "retries = 3",
            "appliance.toml:2: patch_feed.retries: unknown key (known: ca, interval, "
            "signature_url, timeout, trusted_keys, url)",
        ),
    ],
)
def test_a_bad_value_is_reported_with_its_key_and_line(body: str, message: str) -> None:
    assert the_problem(body + "\n") == message
