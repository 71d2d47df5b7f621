"""The Android and iOS collectors.

Android: the commands of the device's shell (what `adb shell` runs; an agent app runs the
same through its shell, or a device-owner app writes the same outputs from the
PackageManager and Settings APIs).
- OS: getprop (release, build id, ABI, when it booted).
- Patch management: the security patch level (ro.build.version.security_patch) against
  Google's monthly Android Security Bulletins: each bulletin published since (on the first
  Monday of its month, by this device's clock) that the level does not include is a
  missing patch, "ASB-2026-11" (a level on the 1st holds only half of its month's
  bulletin: that month counts as missing). Google rates the issues, not the bulletin: the
  severity is unknown. Enabled unless automatic system updates are switched off
  (`settings list global`, ota_disable_automatic_update).
- Device security (our DeviceSecurity attribute): compromised when verified boot is not
  green, the bootloader is unlocked, or the build is debuggable or test-signed; storage
  encrypted (ro.crypto.state); USB debugging (adb_enabled). The shell cannot tell whether
  a screen lock is set: unknown.
- Installed packages (held for a request): `pm list packages --show-versioncode`, each
  versioned by its versionName from `dumpsys package packages` where that says, else by its
  versionCode.

iOS has no shell an app may use: the collector reads a device information file that the
site's MDM (its DeviceInformation, SecurityInfo and InstalledApplicationList answers) or
the agent app writes, as JSON or a property list, and refuses one older than `max_age`.
Its keys: ProductVersion (or MDM's OSVersion), BuildVersion, ProductName ("iPhone OS",
"iPadOS", or the MDM's model id such as "iPhone17,1"), ProductType (the model id),
PasscodePresent and HardwareEncryptionCaps (MDM's SecurityInfo, also accepted nested under
that key), Jailbroken (the app's own checks: a determined jailbreak hides from them; no MDM
can tell), InstalledApplicationList (Identifier, ShortVersion or Version), CollectedAt.
Data protection encrypts an iPhone's files once a passcode is set: encrypted is
HardwareEncryptionCaps' file-level bit (2) with a passcode present.
"""

from __future__ import annotations

import json
import os
import plistlib
import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from netaccess.agent.collect import (
    NEA_CLIENT,
    OS,
    PATCH_MANAGEMENT,
    CollectError,
    Component,
    Posture,
    Run,
    assembled,
    attempt,
)
from netaccess.agent.os_facts import APPLE_PEN, numeric_version
from netaccess.agent.platforms import (
    MAX_ENTRIES,
    as_list,
    command_runner,
    fit,
    noted,
    parse_time,
    text_of,
)
from netaccess.proto.tnc.pa import (
    InstalledPackages,
    NumericVersion,
    OperationalResultCode,
    OperationalStatus,
    OperationalStatusCode,
    PaAttribute,
    Package,
    ProductInformation,
    StringVersion,
)
from netaccess.proto.tnc.vendor import (
    AgentInfo,
    DeviceSecurity,
    MissingPatch,
    PatchManagement,
    PatchSeverity,
)

GOOGLE_PEN = 11129  # IANA Private Enterprise Number of Google
ANDROID_PATH = "/system/bin:/system/xbin:/vendor/bin:/product/bin"
ANDROID_UPDATES = "Android security updates"
MAX_BULLETINS = 240  # twenty years of months: a bound, not a limit any device reaches

_GETPROP = re.compile(r"^\[([^\]]+)\]: \[(.*)\]$")
_PM_PACKAGE = re.compile(r"^package:(\S+) versionCode:(\d+)\s*$")
_DUMPSYS_PACKAGE = re.compile(r"^\s+Package \[([^\]]+)\]")
_DUMPSYS_VERSION = re.compile(r"^\s+versionName=(.*?)\s*$")
_PATCH_LEVEL = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_APPLE_MODEL = re.compile(r"^(iPhone|iPad|iPod)\d+,\d+$")
_FILE_LEVEL_ENCRYPTION = 2  # HardwareEncryptionCaps: 1 block-level, 2 file-level

# The real Run on Android: the system's own directories on PATH (pm and settings are
# scripts that run `cmd`).
run_android_command: Run = command_runner(lambda: {**os.environ, "PATH": ANDROID_PATH})


class AndroidCollector:
    platform = "android"

    def __init__(
        self,
        *,
        agent_version: str,
        run: Run = run_android_command,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.agent_version = agent_version
        self._run = run
        self._clock = clock
        self.change = ""

    def collect(self) -> Posture:
        problems: list[str] = []
        properties = noted(problems, "getprop", self.properties, None)
        settings = noted(problems, "settings", self.global_settings, None)
        os_component: list[PaAttribute] = []
        patch_management: list[PaAttribute] = []
        if properties is not None:
            os_component += noted(problems, "os", lambda: self.os(properties), ())
            os_component.append(device_security(properties, settings))
            patch_management = attempt(
                problems, "patch management", lambda: self.patch_management(properties, settings)
            )
        sent: dict[Component, list[PaAttribute]] = {
            OS: os_component,
            PATCH_MANAGEMENT: patch_management,
            NEA_CLIENT: [
                AgentInfo(self.platform, self.agent_version, bool(self.change), self.change)
            ],
        }
        held = {OS: tuple(attempt(problems, "packages", lambda: self.packages(problems)))}
        return assembled(self.platform, sent, held, problems)

    # -- each fact

    def properties(self) -> dict[str, str]:
        found = {}
        for line in self._command(["getprop"]).splitlines():
            match = _GETPROP.match(line.strip())
            if match is not None:
                found[match[1]] = match[2]
        if "ro.build.version.release" not in found:
            raise CollectError("getprop gave no ro.build.version.release")
        return found

    def global_settings(self) -> dict[str, str]:
        out = self._command(["settings", "list", "global"])
        found = {}
        for line in out.splitlines():
            name, equals, value = line.partition("=")
            if equals and name and " " not in name:
                found[name] = value.strip()
        if out.strip() and not found:
            raise CollectError("settings printed no name=value line")
        return found

    def os(self, properties: Mapping[str, str]) -> tuple[PaAttribute, ...]:
        release = properties["ro.build.version.release"].strip()
        if not release[:1].isdigit():
            raise CollectError(f"ro.build.version.release {release[:20]!r} is not a version")
        return (
            ProductInformation(GOOGLE_PEN, 0, "Android"),
            StringVersion(
                fit(release),
                fit(properties.get("ro.build.id", "")),
                fit(properties.get("ro.product.cpu.abi", "")),
            ),
            NumericVersion(*numeric_version(release)),
            OperationalStatus(
                OperationalStatusCode.OPERATIONAL,
                OperationalResultCode.SUCCEEDED,
                _from_milliseconds(properties.get("ro.runtime.firstboot", "")),
            ),
        )

    def patch_management(
        self, properties: Mapping[str, str], settings: Mapping[str, str] | None
    ) -> PatchManagement:
        text = properties.get("ro.build.version.security_patch", "").strip()
        level = _date(text)
        if level is None:
            raise CollectError(f"the security patch level {text[:20]!r} is not a date")
        if settings is None:
            raise CollectError("whether automatic system updates are on is unknown")
        today = datetime.fromtimestamp(self._clock(), UTC).date()
        missing = missing_bulletins(level, today)
        return PatchManagement(
            ANDROID_UPDATES,
            settings.get("ota_disable_automatic_update", "0") != "1",
            None,  # when the device last looked for an update is not the shell's to see
            tuple(MissingPatch(b, PatchSeverity.UNKNOWN) for b in missing),
        )

    def packages(self, problems: list[str]) -> InstalledPackages:
        listed = {}
        for line in self._command(["pm", "list", "packages", "--show-versioncode"]).splitlines():
            match = _PM_PACKAGE.match(line.strip())
            if match is not None:
                listed[match[1]] = match[2]
        if not listed:
            raise CollectError("pm listed no package")
        names = noted(problems, "package versions", self._version_names, {})
        return InstalledPackages(
            tuple(
                Package(fit(name), fit(names.get(name) or code))
                for name, code in sorted(listed.items())[:MAX_ENTRIES]
            )
        )

    # -- helpers

    def _version_names(self) -> dict[str, str]:
        """Each package's versionName from `dumpsys package packages` (its Packages
        section; the hidden system packages that follow are the factory versions)."""
        found: dict[str, str] = {}
        current = None
        started = False
        for line in self._command(["dumpsys", "package", "packages"]).splitlines():
            if line.startswith("Packages:"):
                started = True
                continue
            if not started:
                continue
            if line.strip() and not line[:1].isspace():
                break  # the next section
            package = _DUMPSYS_PACKAGE.match(line)
            if package is not None:
                current = package[1]
                continue
            version = _DUMPSYS_VERSION.match(line)
            if version is not None and current is not None and version[1] != "null":
                found.setdefault(current, version[1])
        if not started:
            raise CollectError("dumpsys printed no Packages section")
        return found

    def _command(self, argv: Sequence[str]) -> str:
        out = self._run(argv)
        if out.status != 0:
            raise CollectError(f"{argv[0]} exited {out.status}")
        return out.stdout


def device_security(
    properties: Mapping[str, str], settings: Mapping[str, str] | None
) -> DeviceSecurity:
    """What getprop and the global settings say of an Android device's integrity."""
    signs = [
        _flag(properties, "ro.boot.verifiedbootstate", {"green": False}, default=True),
        _flag(properties, "ro.boot.flash.locked", {"1": False, "0": True}),
        _flag(properties, "ro.debuggable", {"0": False, "1": True}),
        _flag(properties, "ro.build.tags", {"release-keys": False}, default=True),
    ]
    known = [sign for sign in signs if sign is not None]
    compromised = any(known) if known else None
    encrypted = _flag(properties, "ro.crypto.state", {"encrypted": True, "unencrypted": False})
    debugging = None
    if settings is not None:
        debugging = settings.get("adb_enabled", "0") not in ("0", "")
    return DeviceSecurity(None, compromised, encrypted, debugging)


def missing_bulletins(level: date, today: date) -> list[str]:
    """The Android Security Bulletins published by `today` that a device at patch level
    `level` lacks, oldest first (the newest MAX_BULLETINS of them). A level on the 5th
    holds its month's whole bulletin, one on the 1st only its first half."""
    # months as year * 12 + month - 1, from the newest back to the first one lacking
    first_lacking = level.year * 12 + level.month - 1 + (1 if level.day >= 5 else 0)
    found: list[str] = []
    month = today.year * 12 + today.month - 1
    while month >= first_lacking and len(found) < MAX_BULLETINS:
        year, number = divmod(month, 12)
        first = date(year, number + 1, 1)
        if first + timedelta(days=(7 - first.weekday()) % 7) <= today:  # its first Monday
            found.append(f"ASB-{year:04d}-{number + 1:02d}")
        month -= 1
    return found[::-1]


class IosCollector:
    platform = "ios"

    def __init__(
        self,
        *,
        agent_version: str,
        device_info: Path,
        clock: Callable[[], float] = time.time,
        max_age: float = 86400.0,
    ) -> None:
        self.agent_version = agent_version
        self.device_info = device_info
        self._clock = clock
        self.max_age = max_age
        self.change = ""

    def collect(self) -> Posture:
        problems: list[str] = []
        info = noted(problems, "device information", self.read, None)
        os_component: list[PaAttribute] = []
        held: dict[Component, tuple[PaAttribute, ...]] = {}
        if info is not None:
            os_component += noted(problems, "os", lambda: ios_os(info), ())
            os_component.append(ios_security(info))
            held = {OS: tuple(attempt(problems, "packages", lambda: ios_packages(info)))}
        sent: dict[Component, list[PaAttribute]] = {
            OS: os_component,
            NEA_CLIENT: [
                AgentInfo(self.platform, self.agent_version, bool(self.change), self.change)
            ],
        }
        return assembled(self.platform, sent, held, problems)

    def read(self) -> dict[str, Any]:
        """The device information file, refused when older than `max_age`."""
        try:
            data = self.device_info.read_bytes()
            written = self.device_info.stat().st_mtime
        except OSError as exc:
            raise CollectError(f"cannot read {self.device_info}: {exc.strerror or exc}") from None
        try:
            info = json.loads(data) if data.lstrip()[:1] == b"{" else plistlib.loads(data)
        except Exception:  # json and plistlib raise several kinds for bad input (ValueError,
            # InvalidFileException, ExpatError, OverflowError...): all mean "not readable"
            raise CollectError(f"{self.device_info} is neither JSON nor a property list") from None
        if not isinstance(info, dict):
            raise CollectError(f"{self.device_info} does not hold a dictionary")
        collected = info.get("CollectedAt")
        when = (
            (collected if collected.tzinfo else collected.replace(tzinfo=UTC))
            if isinstance(collected, datetime)
            else parse_time(collected)
        )
        stamp = when.timestamp() if when is not None else written
        if self._clock() - stamp > self.max_age:
            hours = (self._clock() - stamp) / 3600
            raise CollectError(f"the device information is {hours:.0f} hours old")
        return info


def ios_os(info: Mapping[str, Any]) -> tuple[PaAttribute, ...]:
    version = text_of(info.get("ProductVersion") or info.get("OSVersion")).strip()
    if not version[:1].isdigit():
        raise CollectError("no ProductVersion (or OSVersion) in the device information")
    name = text_of(info.get("ProductName")).strip()
    model = text_of(info.get("ProductType")).strip()
    if _APPLE_MODEL.match(name):  # an MDM's ProductName is the model
        model, name = model or name, ""
    if name in ("", "iPhone OS"):
        name = "iPadOS" if model.startswith("iPad") else "iOS"
    return (
        ProductInformation(APPLE_PEN, 0, fit(name)),
        StringVersion(fit(version), fit(text_of(info.get("BuildVersion"))), fit(model)),
        NumericVersion(*numeric_version(version)),
    )


def ios_security(info: Mapping[str, Any]) -> DeviceSecurity:
    nested = info.get("SecurityInfo")
    security: Mapping[str, Any] = nested if isinstance(nested, dict) else info
    passcode = _boolean(security.get("PasscodePresent", info.get("PasscodePresent")))
    capabilities = security.get("HardwareEncryptionCaps", info.get("HardwareEncryptionCaps"))
    encrypted = None
    if (
        isinstance(capabilities, int)
        and not isinstance(capabilities, bool)
        and passcode is not None
    ):
        encrypted = bool(capabilities & _FILE_LEVEL_ENCRYPTION) and passcode
    return DeviceSecurity(passcode, _boolean(info.get("Jailbroken")), encrypted, None)


def ios_packages(info: Mapping[str, Any]) -> InstalledPackages | None:
    """The applications the MDM listed; None when it did not list them."""
    applications = info.get("InstalledApplicationList")
    if applications is None:
        return None
    found = set()
    for app in as_list(applications):
        if not isinstance(app, dict):
            raise CollectError("InstalledApplicationList holds something not an application")
        identifier = text_of(app.get("Identifier")).strip()
        version = text_of(app.get("ShortVersion") or app.get("Version")).strip()
        if identifier:
            found.add((fit(identifier), fit(version)))
    return InstalledPackages(tuple(Package(n, v) for n, v in sorted(found)[:MAX_ENTRIES]))


def _flag(
    properties: Mapping[str, str],
    name: str,
    meanings: Mapping[str, bool],
    default: bool | None = None,
) -> bool | None:
    """What a property's value means, `default` for another value, None when unset."""
    value = properties.get(name)
    if value is None or value == "":
        return None
    return meanings.get(value, default)


def _boolean(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _date(text: str) -> date | None:
    match = _PATCH_LEVEL.match(text)
    if match is None:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


def _from_milliseconds(text: str) -> datetime | None:
    if not text.isdigit() or len(text) > 15:
        return None
    try:
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None
