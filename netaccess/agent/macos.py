"""The macOS collector: macOS's own commands and property lists.

- OS: sw_vers (name, version, build), sysctl (architecture, IP forwarding, boot time).
- Installed packages (held for a request): the applications system_profiler lists
  (SPApplicationsDataType, as JSON).
- Firewall: the Application Firewall's global state (socketfilterfw).
- Anti-malware: XProtect, built into macOS and always on (users cannot switch it off, so
  it is reported running with real-time protection): its signatures' version from the
  XProtect bundle in use and their age from that bundle's last update. Installer
  receipts (pkgutil) stopped following XProtect's updates in macOS 15, the bundle did not.
- Patch management: Software Update: automatic checks on (the com.apple.SoftwareUpdate
  preferences, on when unset as by default), the age of its last successful check, and
  what `softwareupdate --list` finds missing. Apple rates no update; Apple's own
  "Recommended" flag becomes the severity: recommended ones important, the others low.
- Processes (ps, whose comm is the executable's path), listening TCP ports (lsof), the
  certificates of the System keychain (security), and the hashes of configured files.

Every command goes through `run` and every file is read under `root`, so tests replay
recorded outputs on a made-up tree.
"""

from __future__ import annotations

import base64
import hashlib
import json
import plistlib
import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from netaccess.agent.collect import (
    FIREWALL,
    NEA_CLIENT,
    OS,
    PATCH_MANAGEMENT,
    CollectError,
    Component,
    Posture,
    Run,
    assembled,
    attempt,
    run_command,
)
from netaccess.agent.os_facts import APPLE_PEN, numeric_version
from netaccess.agent.platforms import (
    MAX_ENTRIES,
    S16,
    age,
    certificate_from_der,
    fit,
    noted,
    text_of,
)
from netaccess.proto.tnc.pa import (
    ForwardingEnabled,
    ForwardingState,
    InstalledPackages,
    NumericVersion,
    OperationalResultCode,
    OperationalStatus,
    OperationalStatusCode,
    PaAttribute,
    Package,
    PortFilter,
    PortFilterEntry,
    ProductInformation,
    StringVersion,
)
from netaccess.proto.tnc.vendor import (
    AgentInfo,
    Antivirus,
    Certificate,
    Certificates,
    FileHash,
    FileHashes,
    Firewall,
    FirewallProfile,
    MissingPatch,
    PatchManagement,
    PatchSeverity,
    Process,
    RunningProcesses,
)

ANTIMALWARE: Component = (0, 4)  # RFC 5792 §4.1 Anti-Malware; Host Checker reads it as antivirus

SOCKETFILTERFW = "/usr/libexec/ApplicationFirewall/socketfilterfw"
SOFTWARE_UPDATE_PREFERENCES = "/Library/Preferences/com.apple.SoftwareUpdate.plist"
XPROTECT_INFO = "/Library/Apple/System/Library/CoreServices/XProtect.bundle/Contents/Info.plist"
SYSTEM_KEYCHAIN = "/Library/Keychains/System.keychain"
APPLICATION_FIREWALL = "Application Firewall"
SOFTWARE_UPDATE = "Software Update"

_SYSCTL = ("sysctl", "hw.machine", "net.inet.ip.forwarding", "kern.boottime")
_BOOT_SECONDS = re.compile(r"\{\s*sec\s*=\s*(\d{1,12})\b")
_FIREWALL_STATE = re.compile(r"\(State = (\d+)\)")
# softwareupdate --list: "* Label: X" then a tab and "Title: ..., Recommended: YES, ..."
# since macOS 10.15; "   * X" then a tab and "X (1.0), 123K [recommended] [restart]" before.
_UPDATE_ITEM = re.compile(r"^\s*\* (?:Label: )?(.+?)\s*$")
_UPDATE_HEADERS = frozenset(
    {
        "Software Update Tool",
        "Finding available software",
        "Software Update found the following new or updated software:",
        "No new software available.",
    }
)
_LSOF_LISTEN = re.compile(r"\sTCP (\S+):(\d{1,5}) \(LISTEN\)\s*$")
_PEM = re.compile(r"-----BEGIN CERTIFICATE-----\s*([A-Za-z0-9+/=\s]+?)\s*-----END CERTIFICATE-----")
_PS_LINE = re.compile(r"^\s*(\d{1,10})\s+(\S.*?)\s*$")
_MAX_PROCESSES = 2000
_MAX_CERTIFICATES = 1000
TCP = 6


class MacosCollector:
    platform = "macos"

    def __init__(
        self,
        *,
        agent_version: str,
        run: Run = run_command,
        root: Path = Path("/"),
        clock: Callable[[], float] = time.time,
        files: Sequence[str] = (),
        keychains: Sequence[str] = (SYSTEM_KEYCHAIN,),
    ) -> None:
        self.agent_version = agent_version
        self._run = run
        self._root = root
        self._clock = clock
        self.files = tuple(files)
        self.keychains = tuple(keychains)
        self.change = ""

    def _path(self, path: str) -> Path:
        return self._root / path.lstrip("/")

    def collect(self) -> Posture:
        problems: list[str] = []
        os_component: list[PaAttribute] = list(noted(problems, "os", lambda: self.os(problems), ()))
        os_component += attempt(problems, "ports", self.listening_ports)
        sent: dict[Component, list[PaAttribute]] = {
            OS: os_component,
            FIREWALL: attempt(problems, "firewall", self.firewall),
            ANTIMALWARE: attempt(problems, "xprotect", self.xprotect),
            PATCH_MANAGEMENT: attempt(problems, "software update", self.software_update),
            NEA_CLIENT: [
                AgentInfo(self.platform, self.agent_version, bool(self.change), self.change),
                *attempt(problems, "processes", self.processes),
                *attempt(problems, "files", self.file_hashes),
                *attempt(problems, "certificates", lambda: self.certificates(problems)),
            ],
        }
        held = {OS: tuple(attempt(problems, "packages", self.packages))}
        return assembled(self.platform, sent, held, problems)

    # -- each fact

    def os(self, problems: list[str]) -> tuple[PaAttribute, ...]:
        """sw_vers' product, version and build; sysctl's architecture, forwarding and boot
        time, left unknown (and noted) when sysctl cannot be read."""
        fields = _colon_fields(self._command(["sw_vers"]))
        name, version = fields.get("ProductName", ""), fields.get("ProductVersion", "")
        if not name or not version[:1].isdigit():
            raise CollectError("sw_vers gave no ProductName or ProductVersion")
        system = noted(problems, "sysctl", lambda: _colon_fields(self._command(_SYSCTL)), {})
        forwarding = {"0": ForwardingState.DISABLED, "1": ForwardingState.ENABLED}.get(
            system.get("net.inet.ip.forwarding", ""), ForwardingState.UNKNOWN
        )
        boot = _BOOT_SECONDS.match(system.get("kern.boottime", ""))
        return (
            ProductInformation(APPLE_PEN, 0, fit(name)),
            StringVersion(
                fit(version), fit(fields.get("BuildVersion", "")), fit(system.get("hw.machine"))
            ),
            NumericVersion(*numeric_version(version)),
            OperationalStatus(
                OperationalStatusCode.OPERATIONAL,
                OperationalResultCode.SUCCEEDED,
                _utc(int(boot[1])) if boot else None,
            ),
            ForwardingEnabled(forwarding),
        )

    def packages(self) -> InstalledPackages:
        out = self._command(["system_profiler", "-json", "SPApplicationsDataType"])
        try:
            applications = json.loads(out)["SPApplicationsDataType"]
        except (ValueError, KeyError, TypeError):
            raise CollectError("system_profiler's output is not its applications JSON") from None
        if not isinstance(applications, list):
            raise CollectError("system_profiler listed no applications")
        found = {
            (fit(text_of(app.get("_name"))), fit(text_of(app.get("version"))))
            for app in applications
            if isinstance(app, dict) and text_of(app.get("_name"))
        }
        if not found:
            raise CollectError("system_profiler listed no applications")
        return InstalledPackages(tuple(Package(n, v) for n, v in sorted(found)[:MAX_ENTRIES]))

    def firewall(self) -> Firewall:
        out = self._command([SOCKETFILTERFW, "--getglobalstate"])
        state = _FIREWALL_STATE.search(out)
        if state is not None:
            enabled = state[1] != "0"  # 1: on, 2: on and blocking all incoming
        elif "Firewall is enabled" in out:
            enabled = True
        elif "Firewall is disabled" in out:
            enabled = False
        else:
            raise CollectError("socketfilterfw did not say whether the firewall is on")
        return Firewall(APPLICATION_FIREWALL, (FirewallProfile("default", enabled),))

    def xprotect(self) -> Antivirus:
        path = self._path(XPROTECT_INFO)
        info = self._plist(path, "XProtect's Info.plist")
        if info is None:
            raise CollectError(f"no XProtect bundle at {XPROTECT_INFO}")
        version = text_of(info.get("CFBundleShortVersionString") or info.get("CFBundleVersion"))
        if not version:
            raise CollectError("XProtect's Info.plist has no version")
        return Antivirus(
            product="XProtect",
            vendor="Apple",
            version="",
            running=True,
            real_time_protection=True,
            signature_version=fit(version),
            signature_age=age(self._clock(), path.stat().st_mtime),
        )

    def software_update(self) -> PatchManagement:
        preferences = self._plist(self._path(SOFTWARE_UPDATE_PREFERENCES), "its preferences")
        preferences = preferences or {}  # none written: Apple's defaults
        last = preferences.get("LastSuccessfulDate")
        out = self._run(["softwareupdate", "--list"])
        if out.status != 0:
            raise CollectError(f"softwareupdate exited {out.status}")
        return PatchManagement(
            SOFTWARE_UPDATE,
            preferences.get("AutomaticCheckEnabled") is not False,
            age(self._clock(), _utc_of(last).timestamp()) if isinstance(last, datetime) else None,
            parse_softwareupdate(out.stdout),
        )

    def processes(self) -> RunningProcesses:
        found = []
        for line in self._command(["ps", "-axo", "pid=,comm="]).splitlines():
            match = _PS_LINE.match(line)
            if match is None or int(match[1]) > 0xFFFFFFFF:
                continue
            command = match[2]
            path = command if command.startswith("/") else ""
            name = command.rsplit("/", 1)[-1] or command
            found.append(Process(int(match[1]), fit(name), fit(path, S16)))
            if len(found) >= _MAX_PROCESSES:
                break
        if not found:
            raise CollectError("ps listed no process")
        return RunningProcesses(tuple(found))

    def listening_ports(self) -> PortFilter:
        out = self._run(["lsof", "-iTCP", "-sTCP:LISTEN", "-nP"])
        lines = out.stdout.splitlines()
        if out.status == 1 and not out.stdout.strip():
            lines = []  # lsof's way of saying it found nothing
        elif out.status != 0:
            raise CollectError(f"lsof exited {out.status}")
        elif not lines or not lines[0].startswith("COMMAND"):
            raise CollectError("lsof's output has no header")
        ports = set()
        for line in lines[1:]:
            match = _LSOF_LISTEN.search(line)
            if match is not None and int(match[2]) <= 0xFFFF:
                ports.add(int(match[2]))
        return PortFilter(tuple(PortFilterEntry(False, TCP, port) for port in sorted(ports)))

    def certificates(self, problems: list[str]) -> Certificates:
        found: list[Certificate] = []
        unreadable = 0
        for keychain in self.keychains:
            out = self._command(["security", "find-certificate", "-a", "-p", keychain])
            blocks = _PEM.findall(out)
            if out.strip() and not blocks:
                raise CollectError(f"security printed no certificate for {keychain}")
            for block in blocks:
                try:
                    der = base64.b64decode("".join(block.split()), validate=True)
                    found.append(certificate_from_der(keychain, der))
                except (ValueError, CollectError):  # binascii.Error is one, so is non-ASCII
                    unreadable += 1
        if unreadable:
            problems.append(f"certificates: {unreadable} could not be read, left out")
        return Certificates(tuple(found[:_MAX_CERTIFICATES]))

    def file_hashes(self) -> FileHashes | None:
        if not self.files:
            return None
        found = []
        for name in self.files:
            try:
                digest = hashlib.sha256(self._path(name).read_bytes()).digest()
            except OSError:
                continue  # absent or unreadable: left out, the rule says "absent"
            found.append(FileHash(fit(name, S16), digest))
        return FileHashes(tuple(found[:MAX_ENTRIES]))

    # -- helpers

    def _command(self, argv: Sequence[str]) -> str:
        out = self._run(argv)
        if out.status != 0:
            raise CollectError(f"{argv[0]} exited {out.status}")
        return out.stdout

    def _plist(self, path: Path, what: str) -> dict[str, Any] | None:
        """A property list file (binary or XML) as a dict; None if there is no such file."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CollectError(f"cannot read {what}: {exc.strerror or exc}") from None
        try:
            found = plistlib.loads(data)
        except Exception:  # plistlib raises several kinds for bad input (InvalidFileException,
            # ValueError, ExpatError, OverflowError...): any of them means "not a plist"
            raise CollectError(f"{what} is not a property list") from None
        if not isinstance(found, dict):
            raise CollectError(f"{what} is not a dictionary")
        return found


def parse_softwareupdate(text: str) -> tuple[MissingPatch, ...]:
    """The updates `softwareupdate --list` lists, each by its label; CollectError for
    output that is not its list (an empty output is: nothing to install)."""
    missing: dict[str, PatchSeverity] = {}
    label = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped in _UPDATE_HEADERS:
            continue
        item = _UPDATE_ITEM.match(line)
        if item is not None:
            label = fit(item[1].removesuffix("-") if "Label: " not in line else item[1])
            if len(missing) < MAX_ENTRIES:
                missing.setdefault(label, PatchSeverity.LOW)
        elif label and line[:1] in "\t ":
            if "Recommended: YES" in line or "[recommended]" in line:
                missing[label] = PatchSeverity.IMPORTANT
        else:
            raise CollectError(f"softwareupdate printed {stripped[:40]!r}, not an update list")
    return tuple(MissingPatch(i, s) for i, s in missing.items())


def _colon_fields(text: str) -> dict[str, str]:
    """sw_vers' and sysctl's "Key: value" lines."""
    fields = {}
    for line in text.splitlines():
        key, colon, value = line.partition(":")
        if colon and key.strip():
            fields[key.strip()] = value.strip()
    return fields


def _utc(seconds: int) -> datetime | None:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _utc_of(when: datetime) -> datetime:
    """plistlib's dates are naive UTC."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when
