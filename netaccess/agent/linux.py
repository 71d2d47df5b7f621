"""The Linux collector: real facts of the machine the agent runs on.

- OS: os-release (and Debian's point release), IP forwarding, boot time (OS component).
- Installed packages: dpkg-query, or rpm where there is no dpkg (held for the OS IMV's
  Attribute Request).
- Firewall: on when nftables has an input-hook chain whose policy is drop, or ufw is active.
- Antivirus: ClamAV's clamd running, real-time when clamonacc runs too, and the age of the
  newest signature database.
- Listening ports: /proc/net/{tcp,tcp6,udp,udp6}, as a Port Filter (open, not blocked).
- Patch management: unattended-upgrades present and switched on, the age of apt's last
  update, and the security updates apt would install now (each a missing patch).
- Processes: every process's name and executable.

Every path is read under `root` and every command goes through `run`, so the tests replay
recorded outputs on a made-up tree.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from netaccess.agent.collect import (
    ANTIVIRUS,
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
from netaccess.agent.os_facts import (
    OsFactsError,
    local_forwarding,
    local_identity,
    local_last_boot,
    os_attributes,
    parse_dpkg_list,
)
from netaccess.proto.tnc.pa import (
    InstalledPackages,
    PaAttribute,
    Package,
    PortFilter,
    PortFilterEntry,
)
from netaccess.proto.tnc.vendor import (
    AgentInfo,
    Antivirus,
    Firewall,
    FirewallProfile,
    MissingPatch,
    PatchManagement,
    PatchSeverity,
    Process,
    RunningProcesses,
)

TCP, UDP = 6, 17
_LISTEN, _UNCONNECTED = "0A", "07"  # tcp state LISTEN; udp sockets bound, not connected
CLAMAV_DATABASES = (
    "daily.cld",
    "daily.cvd",
    "main.cld",
    "main.cvd",
    "bytecode.cld",
    "bytecode.cvd",
)
# apt-get -s upgrade, one line per package it would install:
#   Inst openssl [3.0.15-1~deb12u1] (3.0.17-1~deb12u2 Debian-Security:12/stable-security [amd64])
_APT_INST = re.compile(r"^Inst (\S+) (?:\[(\S+)\] )?\((\S+) ([^)]*)\)")
_MAX_PROCESSES = 2000


class LinuxCollector:
    platform = "linux"

    def __init__(
        self,
        *,
        agent_version: str,
        run: Run = run_command,
        root: Path = Path("/"),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.agent_version = agent_version
        self._run = run
        self._root = root
        self._clock = clock
        self.change = ""  # what local change prompted this collection, if any

    def _path(self, path: str) -> Path:
        return self._root / path.lstrip("/")

    def collect(self) -> Posture:
        problems: list[str] = []
        sent: dict[Component, list[PaAttribute]] = {}
        try:
            identity = local_identity(
                self._path("/etc/os-release"), self._path("/etc/debian_version")
            )
            sent[OS] = list(
                os_attributes(
                    identity,
                    forwarding=local_forwarding(self._path("/proc/sys/net/ipv4/ip_forward")),
                    last_boot=local_last_boot(self._path("/proc/stat")),
                )
            )
        except OsFactsError as exc:
            problems.append(f"os: {exc}")
        sent.setdefault(OS, []).extend(attempt(problems, "ports", self.listening_ports))
        sent[FIREWALL] = attempt(problems, "firewall", self.firewall)
        sent[ANTIVIRUS] = attempt(problems, "antivirus", self.antivirus)
        sent[PATCH_MANAGEMENT] = attempt(problems, "patch management", self.patch_management)
        sent[NEA_CLIENT] = [
            AgentInfo(self.platform, self.agent_version, bool(self.change), self.change),
            *attempt(problems, "processes", self.processes),
        ]
        held = {OS: tuple(attempt(problems, "packages", self.packages))}
        return assembled(self.platform, sent, held, problems)

    # -- each fact

    def packages(self) -> InstalledPackages:
        if self._path("/var/lib/dpkg/status").exists():
            out = self._command(["dpkg-query", "-W", "-f", "${Package}\\t${Version}\\n"])
            return InstalledPackages(parse_dpkg_list(out))
        out = self._command(
            ["rpm", "-qa", "--qf", "%{NAME}\\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\\n"]
        )
        packages = []
        for line in out.splitlines():
            name, tab, version = line.partition("\t")
            if tab and name:
                packages.append(Package(name, version.removeprefix("0:")))
        return InstalledPackages(tuple(packages))

    def firewall(self) -> Firewall:
        """nftables with a dropping input hook, else ufw's own status."""
        try:
            ruleset = json.loads(self._command(["nft", "-j", "list", "ruleset"]) or "{}")
        except (CollectError, ValueError):
            ruleset = None
        if isinstance(ruleset, dict):
            for item in ruleset.get("nftables", []):
                chain = item.get("chain") if isinstance(item, dict) else None
                if (
                    isinstance(chain, dict)
                    and chain.get("hook") == "input"
                    and chain.get("policy") == "drop"
                ):
                    return Firewall("nftables", (FirewallProfile("default", True),))
        if self._path("/usr/sbin/ufw").exists():
            status = self._run(["ufw", "status"])
            active = status.status == 0 and "Status: active" in status.stdout
            return Firewall("ufw", (FirewallProfile("default", active),))
        if ruleset is None:
            raise CollectError("neither nft nor ufw could be asked")
        return Firewall("nftables", (FirewallProfile("default", False),))

    def antivirus(self) -> Antivirus | None:
        """ClamAV, when installed (none reported otherwise: the rule is then unknown)."""
        names = {name for _, name in self._process_names()}
        databases = [
            self._path("/var/lib/clamav") / name
            for name in CLAMAV_DATABASES
            if (self._path("/var/lib/clamav") / name).exists()
        ]
        if "clamd" not in names and not databases and not self._path("/usr/sbin/clamd").exists():
            return None
        age = None
        if databases:
            newest = max(path.stat().st_mtime for path in databases)
            age = max(0, int(self._clock() - newest))
        return Antivirus(
            product="ClamAV",
            vendor="Cisco",
            version="",
            running="clamd" in names,
            real_time_protection="clamonacc" in names,
            signature_version="",
            signature_age=age,
        )

    def listening_ports(self) -> PortFilter:
        entries: set[tuple[int, int]] = set()
        for name, protocol, state in (
            ("tcp", TCP, _LISTEN),
            ("tcp6", TCP, _LISTEN),
            ("udp", UDP, _UNCONNECTED),
            ("udp6", UDP, _UNCONNECTED),
        ):
            try:
                lines = self._path(f"/proc/net/{name}").read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                if len(fields) > 3 and fields[3] == state and ":" in fields[1]:
                    entries.add((protocol, int(fields[1].rsplit(":", 1)[1], 16)))
        return PortFilter(tuple(PortFilterEntry(False, p, port) for p, port in sorted(entries)))

    def patch_management(self) -> PatchManagement | None:
        """unattended-upgrades and what apt would install from the security archive."""
        if not self._path("/var/lib/dpkg/status").exists():
            return None
        installed = self._path("/usr/bin/unattended-upgrade").exists()
        enabled = False
        if installed:
            config = self._run(["apt-config", "dump", "APT::Periodic::Unattended-Upgrade"])
            enabled = bool(re.search(r'Unattended-Upgrade "(?!0")[^"]+"', config.stdout))
        stamp = self._path("/var/lib/apt/periodic/update-success-stamp")
        lists = self._path("/var/lib/apt/lists")
        seen = [p.stat().st_mtime for p in (stamp, lists) if p.exists()]
        age = max(0, int(self._clock() - max(seen))) if seen else None
        simulated = self._run(["apt-get", "-s", "-o", "Debug::NoLocking=1", "upgrade"])
        if simulated.status != 0:
            raise CollectError(f"apt-get -s upgrade exited {simulated.status}")
        missing = []
        for line in simulated.stdout.splitlines():
            match = _APT_INST.match(line)
            if match and "security" in match[4].lower():
                missing.append(MissingPatch(f"{match[1]}/{match[3]}", PatchSeverity.UNKNOWN))
        product = "unattended-upgrades" if installed else "apt"
        return PatchManagement(product, installed and enabled, age, tuple(missing))

    def processes(self) -> RunningProcesses:
        found = []
        for pid_text, name in self._process_names():
            try:
                path = os.readlink(self._path(f"/proc/{pid_text}/exe"))
            except OSError:
                path = ""
            found.append(Process(int(pid_text), name[:255], path[:4096]))
            if len(found) >= _MAX_PROCESSES:
                break
        return RunningProcesses(tuple(found))

    # -- helpers

    def _process_names(self) -> list[tuple[str, str]]:
        """(pid, command name) of every process /proc shows."""
        found = []
        try:
            entries = list(self._path("/proc").iterdir())
        except OSError:
            return []
        for entry in entries:
            if entry.name.isdigit():
                try:
                    found.append((entry.name, (entry / "comm").read_text().strip()))
                except OSError:
                    continue  # it exited meanwhile
        return sorted(found, key=lambda pair: int(pair[0]))

    def _command(self, argv: Sequence[str]) -> str:
        out = self._run(argv)
        if out.status != 0:
            raise CollectError(f"{argv[0]} exited {out.status}")
        return out.stdout
