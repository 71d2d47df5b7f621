"""The Linux collector on a made-up file tree and recorded command outputs
(tests/fixtures/agent/linux), and once on this machine itself."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from netaccess.agent.collect import (
    ANTIVIRUS,
    FIREWALL,
    NEA_CLIENT,
    OS,
    PATCH_MANAGEMENT,
    CollectError,
    CommandOutput,
    Posture,
)
from netaccess.agent.linux import LinuxCollector
from netaccess.proto.tnc.pa import (
    InstalledPackages,
    PortFilter,
    PortFilterEntry,
    ProductInformation,
)
from netaccess.proto.tnc.vendor import (
    AgentInfo,
    Antivirus,
    Firewall,
    FirewallProfile,
    PatchManagement,
    RunningProcesses,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "agent" / "linux"
NOW = 1_800_000_000.0
# /proc/net/tcp: sshd on 0.0.0.0:22 listening, one established connection to :443.
PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1
   1: 0A00000A:D2F0 5DB8D822:01BB 01 00000000:00000000 00:00000000 00000000  1000        0 2
"""
PROC_NET_UDP6 = """\
  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:0202 00000000000000000000000000000000:0000 07 0
"""


class Recorded:
    """A Run that answers from fixture files, keyed by the command's first words."""

    def __init__(self, answers: dict[str, str | CommandOutput]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def __call__(self, argv: Sequence[str]) -> CommandOutput:
        key = " ".join(argv[:2])
        self.asked.append(key)
        if key not in self.answers:
            raise CollectError(f"{argv[0]} is not installed")
        answer = self.answers[key]
        if isinstance(answer, CommandOutput):
            return answer
        return CommandOutput(0, (FIXTURES / answer).read_text())


def tree(root: Path, *, clamd: bool = True, unattended: bool = True) -> Path:
    files = {
        "etc/os-release": 'NAME="Debian GNU/Linux"\nID=debian\nVERSION_ID="12"\n',
        "etc/debian_version": "12.8\n",
        "proc/sys/net/ipv4/ip_forward": "0\n",
        "proc/stat": "cpu 1 2 3\nbtime 1700000000\n",
        "proc/net/tcp": PROC_NET_TCP,
        "proc/net/udp6": PROC_NET_UDP6,
        "proc/1/comm": "systemd\n",
        "var/lib/dpkg/status": "",
        "var/lib/clamav/daily.cld": "",
    }
    if clamd:
        files["proc/812/comm"] = "clamd\n"
    if unattended:
        files["usr/bin/unattended-upgrade"] = ""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    os.utime(root / "var/lib/clamav/daily.cld", (NOW - 7200, NOW - 7200))
    (root / "var/lib/apt/lists").mkdir(parents=True)
    os.utime(root / "var/lib/apt/lists", (NOW - 600, NOW - 600))
    return root


def collect(root: Path, run: Recorded) -> Posture:
    return LinuxCollector(agent_version="1.0.0", run=run, root=root, clock=lambda: NOW).collect()


ALL = {
    "nft -j": "nft-ruleset-drop.json",
    "apt-config dump": "apt-config-unattended-on.txt",
    "apt-get -s": "apt-get-s-upgrade.txt",
    "dpkg-query -W": "dpkg-query.txt",
}


def test_a_debian_endpoint_reports_every_fact(tmp_path: Path) -> None:
    posture = collect(tree(tmp_path), Recorded(ALL))
    assert posture.problems == ()
    product = posture.sent[OS][0]
    assert isinstance(product, ProductInformation) and product.name == "Debian GNU/Linux"
    assert posture.sent[OS][-1] == PortFilter(
        (PortFilterEntry(False, 6, 22), PortFilterEntry(False, 17, 514))
    )
    assert posture.sent[FIREWALL] == (Firewall("nftables", (FirewallProfile("default", True),)),)
    assert posture.sent[ANTIVIRUS] == (Antivirus("ClamAV", "Cisco", "", True, False, "", 7200),)
    (patches,) = posture.sent[PATCH_MANAGEMENT]
    assert isinstance(patches, PatchManagement)
    assert (patches.product, patches.enabled, patches.last_scan_age) == (
        "unattended-upgrades",
        True,
        600,
    )
    ids = [patch.id for patch in patches.missing]
    assert "openssl/3.0.22-1~deb12u2" in ids
    assert not any(i.startswith("bash/") for i in ids)  # an update, not from security
    assert len(ids) == 81
    info, processes = posture.sent[NEA_CLIENT]
    assert info == AgentInfo("linux", "1.0.0", False, "")
    assert isinstance(processes, RunningProcesses)
    assert [p.name for p in processes.processes] == ["systemd", "clamd"]
    (packages,) = posture.held[OS]
    assert isinstance(packages, InstalledPackages) and len(packages.packages) == 40


def test_a_firewall_with_an_accepting_input_and_no_ufw_is_reported_off(tmp_path: Path) -> None:
    posture = collect(tree(tmp_path), Recorded({**ALL, "nft -j": "nft-ruleset-accept.json"}))
    assert posture.sent[FIREWALL] == (Firewall("nftables", (FirewallProfile("default", False),)),)


def test_ufw_decides_when_nftables_has_no_dropping_input(tmp_path: Path) -> None:
    root = tree(tmp_path)
    (root / "usr/sbin").mkdir(parents=True)
    (root / "usr/sbin/ufw").write_text("")
    active = CommandOutput(0, "Status: active\n\nTo Action From\n")
    posture = collect(
        root, Recorded({**ALL, "nft -j": "nft-ruleset-accept.json", "ufw status": active})
    )
    assert posture.sent[FIREWALL] == (Firewall("ufw", (FirewallProfile("default", True),)),)


def test_a_fact_that_cannot_be_collected_is_left_out_and_named(tmp_path: Path) -> None:
    broken = {**ALL, "apt-get -s": CommandOutput(100, "E: Could not open lock file\n")}
    del broken["nft -j"]
    posture = collect(tree(tmp_path, clamd=False), Recorded(broken))
    assert FIREWALL not in posture.sent and PATCH_MANAGEMENT not in posture.sent
    assert posture.problems == (
        "firewall: neither nft nor ufw could be asked",
        "patch management: apt-get -s upgrade exited 100",
    )
    (antivirus,) = posture.sent[ANTIVIRUS]
    assert isinstance(antivirus, Antivirus) and not antivirus.running  # installed, stopped


def test_what_changed_between_two_collections_is_named(tmp_path: Path) -> None:
    root = tree(tmp_path)
    before = collect(root, Recorded(ALL))
    assert (
        before.changes_from(before) == []
        and before.fingerprint() == collect(root, Recorded(ALL)).fingerprint()
    )
    after = collect(root, Recorded({**ALL, "nft -j": "nft-ruleset-accept.json"}))
    assert after.changes_from(before) == ["Firewall"]
    assert after.fingerprint() != before.fingerprint()


def test_this_machine_collects_without_a_crash() -> None:
    if not Path("/etc/os-release").exists():
        pytest.skip("no /etc/os-release here")
    posture = LinuxCollector(agent_version="1.0.0").collect()
    assert OS in posture.sent
    assert all(isinstance(problem, str) for problem in posture.problems)
