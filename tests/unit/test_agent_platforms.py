"""The platform picker, and the field fitting the platform collectors share."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netaccess.agent import platforms
from netaccess.agent.collect import CollectError, CommandOutput
from netaccess.agent.linux import LinuxCollector
from netaccess.agent.macos import MacosCollector
from netaccess.agent.mobile import AndroidCollector, IosCollector
from netaccess.agent.platforms import (
    PLATFORMS,
    age,
    collector_for,
    current_platform,
    fit,
    parse_time,
)
from netaccess.agent.windows import WindowsCollector


def never(argv: object) -> CommandOutput:
    raise AssertionError("nothing runs while picking")


@pytest.mark.parametrize(
    ("platform", "kind"),
    [
        ("linux", LinuxCollector),
        ("windows", WindowsCollector),
        ("macos", MacosCollector),
        ("android", AndroidCollector),
        ("ios", IosCollector),
    ],
)
def test_each_platform_gets_its_collector(platform: str, kind: type) -> None:
    chosen = collector_for(
        platform, agent_version="2.0", run=never, device_info=Path("/var/mobile/device.plist")
    )
    assert isinstance(chosen, kind) and chosen.platform == platform
    assert platform in PLATFORMS


def test_ios_needs_its_device_information_file() -> None:
    with pytest.raises(CollectError, match="device information file"):
        collector_for("ios", agent_version="2.0")


def test_an_unknown_platform_is_refused() -> None:
    with pytest.raises(CollectError, match="no collector for platform 'beos'"):
        collector_for("beos", agent_version="2.0")


@pytest.mark.parametrize(
    ("sys_platform", "ours"),
    [
        ("linux", "linux"),
        ("win32", "windows"),
        ("darwin", "macos"),
        ("android", "android"),
        ("ios", "ios"),
    ],
)
def test_pythons_platform_names_map_to_ours(
    monkeypatch: pytest.MonkeyPatch, sys_platform: str, ours: str
) -> None:
    monkeypatch.setattr(platforms.sys, "platform", sys_platform)
    assert current_platform() == ours


def test_an_unknown_python_platform_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platforms.sys, "platform", "emscripten")
    with pytest.raises(CollectError, match="emscripten"):
        current_platform()


def test_text_is_cut_on_a_character_boundary() -> None:
    assert fit("é" * 200) == "é" * 127  # 254 bytes: the 128th would need 256
    assert fit("a\ud800b") == "a?b"  # a lone surrogate, as JSON may carry
    assert fit(None) == "" and fit(12) == "12"


@given(st.text())
def test_fitted_text_always_encodes_within_its_field(text: str) -> None:
    assert len(fit(text).encode("utf-8")) <= 255


def test_ages_are_never_negative_nor_past_the_fields_range() -> None:
    assert age(100.0, 160.0) == 0  # clock skew
    assert age(100.0, None) is None
    assert age(1e12, 0.0) == 0xFFFFFFFE


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-20T07:12:00Z", datetime(2026, 11, 20, 7, 12, tzinfo=UTC)),
        ("2026-11-20T08:12:00+01:00", datetime(2026, 11, 20, 7, 12, tzinfo=UTC)),
        ("2026-11-20", datetime(2026, 11, 20, tzinfo=UTC)),
        ("0001-01-01T00:00:00+01:00", None),  # before year 1 in UTC
        ("yesterday", None),
        (17, None),
    ],
)
def test_times_are_read_as_utc(text: object, expected: datetime | None) -> None:
    assert parse_time(text) == expected
