"""Endpoint agent builds the portal offers for download: what a build is, and which names
and versions are acceptable (they become paths and URLs)."""

from __future__ import annotations

import re
from collections.abc import Sequence
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


def version_order(version: str) -> tuple[int, ...] | None:
    """A build version's order as numbers ("1.10.2" after "1.9"), or None when it is not
    dotted numbers (such a version is offered only by being the newest published)."""
    parts = version.split(".")
    if not all(part.isdigit() for part in parts):
        return None
    return tuple(int(part) for part in parts)


def update_for(builds: Sequence[AgentBuild], platform: str, running: str) -> AgentBuild | None:
    """The build an agent of `platform` running `running` should update to: the platform's
    newest published build (`builds` newest first), when it is newer than the running one.
    Versions that are not dotted numbers are compared by being different (the agent itself
    refuses a downgrade)."""
    for build in builds:
        if build.platform != platform:
            continue
        offered, current = version_order(build.version), version_order(running)
        if offered is not None and current is not None:
            return build if offered > current else None
        return build if build.version != running else None
    return None
