"""Which collector runs where, and what the collectors of Windows, macOS, Android and iOS
share: commands run with the platform's own environment, text cut to the attribute's
fields, ages, certificates read from DER, and facts read with their failure noted.

The picker imports only the running platform's collector module (a Windows agent never
loads the Linux one).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from cryptography import x509

from netaccess.agent.collect import (
    COMMAND_SECONDS,
    MAX_OUTPUT,
    CollectError,
    Collector,
    CommandOutput,
    Run,
    run_command,
)
from netaccess.proto.tnc.vendor import Certificate

T = TypeVar("T")
D = TypeVar("D")

PLATFORMS = ("linux", "windows", "macos", "android", "ios")
# sys.platform of each (Python 3.13 names Android and iOS itself: PEP 738, PEP 730).
_SYS_PLATFORMS = {"linux": "linux", "win32": "windows", "darwin": "macos"}
_SYS_PLATFORMS |= {"android": "android", "ios": "ios"}

S8 = 0xFF  # bytes in an 8-bit-length string field
S16 = 0xFFFF
MAX_AGE = 0xFFFFFFFE  # the largest age a vendor attribute carries (0xFFFFFFFF: unknown)
MAX_ENTRIES = 0xFFFF  # a Count(16) field


def current_platform() -> str:
    """This machine's platform as the appliance names platforms ("windows", "macos", ...)."""
    found = _SYS_PLATFORMS.get(sys.platform)
    if found is None:
        raise CollectError(f"no collector for sys.platform {sys.platform!r}")
    return found


def collector_for(
    platform: str,
    *,
    agent_version: str,
    run: Run | None = None,
    device_info: Path | None = None,
) -> Collector:
    """The collector of `platform` (one of PLATFORMS), reading this machine through `run`
    (each platform's own by default). iOS has no commands: `device_info` is the file its
    MDM or the agent app writes (netaccess.agent.mobile.IosCollector)."""
    if platform == "linux":
        from netaccess.agent.linux import LinuxCollector

        return LinuxCollector(agent_version=agent_version, run=run or run_command)
    if platform == "windows":
        from netaccess.agent.windows import WindowsCollector, run_windows_command

        return WindowsCollector(agent_version=agent_version, run=run or run_windows_command)
    if platform == "macos":
        from netaccess.agent.macos import MacosCollector

        return MacosCollector(agent_version=agent_version, run=run or run_command)
    if platform == "android":
        from netaccess.agent.mobile import AndroidCollector, run_android_command

        return AndroidCollector(agent_version=agent_version, run=run or run_android_command)
    if platform == "ios":
        from netaccess.agent.mobile import IosCollector

        if device_info is None:
            raise CollectError("the iOS collector needs the device information file's path")
        return IosCollector(agent_version=agent_version, device_info=device_info)
    raise CollectError(f"no collector for platform {platform!r}: one of {', '.join(PLATFORMS)}")


def command_runner(environment: Callable[[], Mapping[str, str]], creation_flags: int = 0) -> Run:
    """A Run as collect.run_command, in the environment `environment()` gives (Windows
    needs SystemRoot and its own PATH, Android /system/bin)."""

    def run(argv: Sequence[str]) -> CommandOutput:
        try:
            done = subprocess.run(
                list(argv),
                capture_output=True,
                timeout=COMMAND_SECONDS,
                env=dict(environment()),
                check=False,
                creationflags=creation_flags,
            )
        except FileNotFoundError:
            raise CollectError(f"{argv[0]} is not installed") from None
        except (OSError, subprocess.SubprocessError) as exc:
            raise CollectError(f"{argv[0]} failed: {exc}") from None
        return CommandOutput(done.returncode, done.stdout[:MAX_OUTPUT].decode("utf-8", "replace"))

    return run


def inherited_environment() -> Mapping[str, str]:
    return os.environ


# --- fitting what commands print into attribute fields ----------------------------------


def fit(value: object, size: int = S8) -> str:
    """`value` as text of at most `size` UTF-8 bytes, cut on a character boundary; what
    cannot be encoded (a lone surrogate from JSON) becomes "?"."""
    text = value if isinstance(value, str) else "" if value is None else str(value)
    if text.isascii() and len(text) <= size:
        return text
    return text.encode("utf-8", "replace")[:size].decode("utf-8", "ignore")


def text_of(value: object) -> str:
    """A JSON scalar as text ("" for null, lists and objects): fields that must be text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return ""


def age(now: float, then: float | None) -> int | None:
    """Seconds from `then` to `now`, 0 when `then` is ahead (clock skew), None if unknown."""
    if then is None:
        return None
    return min(max(0, int(now - then)), MAX_AGE)


def unsigned(value: object, bits: int) -> int | None:
    """`value` when it is an integer (not a bool) that fits in `bits` unsigned bits."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << bits:
        return value
    return None


def parse_time(text: object) -> datetime | None:
    """An ISO 8601 time ("2026-11-20T07:12:00Z", with an offset, or a date alone, taken as
    UTC midnight), in UTC; None for anything else."""
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: an offset past year 1 or 9999
        return None


def noted(problems: list[str], what: str, read: Callable[[], T], default: D) -> T | D:
    """`read()`, or `default` with the problem noted when it raises CollectError."""
    try:
        return read()
    except CollectError as exc:
        problems.append(f"{what}: {exc}")
        return default


def certificate_from_der(store: str, der: bytes) -> Certificate:
    """A certificate as our Certificates attribute carries it: SHA-256 of the DER, subject
    and issuer as RFC 4514 strings, notAfter in UTC. CollectError if it is not one."""
    try:
        parsed = x509.load_der_x509_certificate(der)
        subject = parsed.subject.rfc4514_string()
        issuer = parsed.issuer.rfc4514_string()
        not_after = parsed.not_valid_after_utc
    except ValueError as exc:  # cryptography's error for DER (or names) it cannot read
        raise CollectError(f"a certificate in {store} cannot be read: {exc}") from None
    return Certificate(
        fit(store), hashlib.sha256(der).digest(), fit(subject, S16), not_after, fit(issuer, S16)
    )


def as_list(value: Any) -> list[Any]:
    """ConvertTo-Json's and plists' "one or many": a list as it is, one object as a list
    of one, null as none."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
