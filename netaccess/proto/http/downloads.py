"""The rules of a file download (RFC 9110): validators (§8.8.3 ETag, §13.1.2 If-None-Match),
a single byte range (§14: Range, Content-Range, 206 and 416), and the platform an agent
download is for, read from the User-Agent."""

from __future__ import annotations

import re
from dataclasses import dataclass

_RANGE = re.compile(r"bytes=(\d*)-(\d*)\Z")


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes first..last of a representation of `size` bytes, both inclusive."""

    first: int
    last: int
    size: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1

    def content_range(self) -> str:
        return f"bytes {self.first}-{self.last}/{self.size}"


class Unsatisfiable(ValueError):
    """A range that lies wholly outside the representation: answer 416."""


def byte_range(header: str | None, size: int) -> ByteRange | None:
    """The single range `header` asks for, or None to send the whole representation (no
    Range, a multi-range or malformed one, which a server may ignore: §14.2). Raises
    Unsatisfiable for a range that starts past the end or asks for the last 0 bytes."""
    if header is None:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text and not last_text:
        return None
    if not first_text:  # a suffix: the last N bytes
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            raise Unsatisfiable(header)
        return ByteRange(max(0, size - suffix), size - 1, size)
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None  # invalid: ignore it
    if first >= size:
        raise Unsatisfiable(header)
    last = int(last_text) if last_text else size - 1
    return ByteRange(first, min(last, size - 1), size)


def etag_of(sha256_hex: str) -> str:
    return f'"{sha256_hex}"'


def none_match(header: str | None, etag: str) -> bool:
    """Whether If-None-Match `header` matches `etag` (weak comparison, §13.1.2): then the
    client's copy is current and the answer is 304."""
    if header is None:
        return False
    if header.strip() == "*":
        return True
    candidates = (tag.strip().removeprefix("W/") for tag in header.split(","))
    return etag.removeprefix("W/") in candidates


def platform_of(user_agent: str | None) -> str | None:
    """The agent platform a browser runs on, from its User-Agent; None if unknown. Order
    matters: Android says Linux, and iPads may say Macintosh (with Mobile)."""
    ua = (user_agent or "").lower()
    if "android" in ua:
        return "android"
    if "iphone" in ua or "ipad" in ua or "ipod" in ua or ("macintosh" in ua and "mobile" in ua):
        return "ios"
    if "windows" in ua:
        return "windows"
    if "mac os x" in ua or "macintosh" in ua:
        return "macos"
    if "linux" in ua or "x11" in ua or "cros" in ua:
        return "linux"
    return None
