"""Endpoint agent builds the portal offers for download: what a build is, and which names
and versions are acceptable (they become paths and URLs)."""

from __future__ import annotations

import re
from dataclasses import dataclass

PLATFORMS = ("windows", "macos", "linux", "android", "ios")
VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,31}")
FILENAME = re.compile(r"[0-9A-Za-z][0-9A-Za-z._+-]{0,127}")


@dataclass(frozen=True, slots=True)
class AgentBuild:
    platform: str
    version: str
    filename: str
    size: int
    sha256: str  # hex
    published_at: float

    @property
    def url(self) -> str:
        return f"/agent/download/{self.platform}/{self.version}/{self.filename}"


def check_build_names(platform: str, version: str, filename: str) -> str | None:
    """What is wrong with these names, or None if they are acceptable."""
    if platform not in PLATFORMS:
        return f"platform {platform!r}: expected one of {', '.join(PLATFORMS)}"
    if not VERSION.fullmatch(version):
        return (
            f"version {version!r}: 1 to 32 of letters, digits and . + _ - (a letter or digit first)"
        )
    if not FILENAME.fullmatch(filename):
        return (
            f"file name {filename!r}: 1 to 128 of letters, digits and . _ + -"
            " (a letter or digit first)"
        )
    return None
