"""Download rules: one byte range, validators, and the platform from a User-Agent."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netaccess.proto.http.downloads import (
    ByteRange,
    Unsatisfiable,
    byte_range,
    etag_of,
    none_match,
    platform_of,
)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-99", ByteRange(0, 99, 1000)),
        ("bytes=900-", ByteRange(900, 999, 1000)),
        ("bytes=-100", ByteRange(900, 999, 1000)),
        ("bytes=-5000", ByteRange(0, 999, 1000)),
        ("bytes=990-5000", ByteRange(990, 999, 1000)),
        (None, None),
        ("bytes=0-9,20-29", None),  # several ranges: the whole file instead
        ("items=0-9", None),
        ("bytes=9-0", None),
        ("bytes=-", None),
    ],
)
def test_a_single_range_is_resolved_against_the_size(
    header: str | None, expected: ByteRange | None
) -> None:
    assert byte_range(header, 1000) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5000-6000", "bytes=-0"])
def test_a_range_outside_the_file_is_unsatisfiable(header: str) -> None:
    with pytest.raises(Unsatisfiable):
        byte_range(header, 1000)


@given(st.text(max_size=40), st.integers(min_value=0, max_value=10**12))
def test_any_range_header_gives_a_range_inside_the_file_or_none(header: str, size: int) -> None:
    try:
        found = byte_range(header, size)
    except Unsatisfiable:
        return
    if found is not None:
        assert 0 <= found.first <= found.last < size
        assert found.length == found.last - found.first + 1


def test_if_none_match_compares_weakly_and_takes_lists_and_star() -> None:
    tag = etag_of("ab" * 32)
    assert none_match(tag, tag)
    assert none_match(f'"other", W/{tag}', tag)
    assert none_match("*", tag)
    assert not none_match('"other"', tag)
    assert not none_match(None, tag)


@pytest.mark.parametrize(
    ("agent", "platform"),
    [
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0", "windows"),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 Safari/605.1", "macos"),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/120.0", "linux"),
        ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Mobile Safari", "android"),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) Mobile/15E148", "ios"),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Version/17.1 Mobile/15E148", "ios"),
        ("curl/7.88.1", None),
        (None, None),
    ],
)
def test_the_platform_is_read_from_the_user_agent(agent: str | None, platform: str | None) -> None:
    assert platform_of(agent) == platform
