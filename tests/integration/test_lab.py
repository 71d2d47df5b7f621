"""The lab itself (tools/labnet): real namespaces, dnsmasq, udhcpc and servers, no appliance
daemon (a stand-in written by the test where the sd_notify handshake is the subject)."""

from __future__ import annotations

import ipaddress
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tools.labnet import Lab, LabError
from tools.labnet.command import netns_names, netns_pids

pytestmark = pytest.mark.integration

LabFactory = Callable[..., Lab]  # the lab_factory fixture (tests/integration/conftest.py)

ACCESS_NET = ipaddress.ip_network("198.18.0.0/22")


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def lab_pids(lab: Lab) -> dict[str, set[int]]:
    return {name: set(netns_pids(name)) for name in lab.existing_namespaces()}


def test_every_endpoint_gets_a_lease_in_the_access_subnet_with_its_own_mac(lab: Lab) -> None:
    leases = lab.wait_for_leases(10)

    assert sorted(leases) == [1, 2, 3]
    for k, lease in leases.items():
        assert ipaddress.ip_address(lease.ip) in ACCESS_NET
        assert lease.mac == f"02:4e:41:00:00:{k:02x}" == lab.endpoint_mac(k)
    assert len({lease.ip for lease in leases.values()}) == 3


def test_lease_carries_router_dns_and_the_captive_portal_api_uri(lab: Lab) -> None:
    lease = lab.lease(2)

    assert lease is not None
    assert (lease.router, lease.dns, lease.prefixlen) == ("198.18.0.1", ("198.18.0.1",), 22)
    assert lease.captive_portal == "https://portal.netaccess.test/api/captive"


def test_endpoint_reaches_the_upstream_web_server_through_the_appliance(lab: Lab) -> None:
    page = lab.exec(
        "ep1", ["busybox", "wget", "-qO-", "http://198.19.0.2/"], capture_output=True, text=True
    )

    assert page.returncode == 0, page.stderr
    assert "upstream web server" in page.stdout


def test_endpoint_resolves_corp_names_through_the_access_dns_server(lab: Lab) -> None:
    answer = lab.exec(
        "ep3",
        ["busybox", "nslookup", "www.corp.test", "198.18.0.1"],
        capture_output=True,
        text=True,
    )

    assert answer.returncode == 0, answer.stdout + answer.stderr
    assert "198.19.0.2" in answer.stdout.split("www.corp.test", 1)[1]


def test_commands_in_an_endpoint_resolve_names_with_the_lab_dns(lab: Lab) -> None:
    page = lab.exec(
        "ep2",
        ["busybox", "wget", "-qO-", "http://remediation.corp.test/"],
        capture_output=True,
        text=True,
    )

    assert page.returncode == 0, page.stderr
    assert "remediation server" in page.stdout


def test_up_twice_changes_nothing(lab: Lab) -> None:
    before_status, before_pids = lab.status(), lab_pids(lab)

    lab.up(appliance=False)

    assert lab.status()["processes"] == before_status["processes"]
    assert lab_pids(lab) == before_pids
    assert lab.wait_for_leases(5) == {k: lab.lease(k) for k in (1, 2, 3)}


def test_up_completes_a_half_built_lab(lab: Lab) -> None:
    www = lab.status()["processes"]["up-www"]
    os.kill(www, signal.SIGKILL)
    lab.stop_dhcp_client(2)
    subprocess.run(["ip", "netns", "delete", lab.endpoint_ns(2)], check=True)

    lab.up(appliance=False)

    lab.wait_for_leases(15)
    page = lab.exec("ep2", ["busybox", "wget", "-qO-", "http://198.19.0.2/"], capture_output=True)
    assert page.returncode == 0


def test_down_leaves_no_namespace_no_process_and_no_workdir(lab_factory: LabFactory) -> None:
    lab = lab_factory(endpoints=2)
    lab.up(appliance=False)
    pids = set().union(*lab_pids(lab).values())
    assert pids

    lab.down()

    assert [name for name in netns_names() if name.startswith(lab.prefix)] == []
    assert [pid for pid in pids if Path(f"/proc/{pid}").exists() and not _zombie(pid)] == []
    assert not lab.workdir.exists()


def test_down_removes_a_partial_lab_and_is_safe_on_none(lab_factory: LabFactory) -> None:
    lab = lab_factory()
    subprocess.run(["ip", "netns", "add", lab.endpoint_ns(7)], check=True)
    subprocess.run(["ip", "netns", "add", lab.app_ns], check=True)

    lab.down()
    lab.down()

    assert [name for name in netns_names() if name.startswith(lab.prefix)] == []


def test_stopping_a_dhcp_client_releases_its_lease_at_the_server(lab: Lab) -> None:
    mac = lab.endpoint_mac(1)
    assert mac in lab.lease_file.read_text()

    lab.stop_dhcp_client(1)

    assert wait_until(lambda: mac not in lab.lease_file.read_text(), timeout=5)
    assert lab.lease(1) is None


def test_malformed_frames_reach_the_appliance_through_a_dhcp_arp_capture_filter(
    lab: Lab, tmp_path: Path
) -> None:
    pcap = tmp_path / "acc0.pcap"
    acc0 = lab.exec("app", ["cat", "/sys/class/net/acc0/address"], capture_output=True, text=True)
    lab_macs = [acc0.stdout.strip()] + [lab.endpoint_mac(k) for k in (1, 2, 3)]
    ours = {bytes.fromhex(mac.replace(":", "")) for mac in lab_macs}

    def foreign() -> list[bytes]:
        return [frame for frame in _pcap_frames(pcap) if frame[6:12] not in ours]

    # --immediate-mode: otherwise libpcap hands over frames in blocks, up to a second late.
    capture = subprocess.Popen(
        [
            *("ip", "netns", "exec", lab.app_ns, "tcpdump", "-i", "acc0", "--immediate-mode"),
            *("-U", "-w", str(pcap), "arp or (udp port 67 or 68)"),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert capture.stderr is not None
        assert "listening on acc0" in capture.stderr.readline()
        lab.send_malformed(1, count=40, seed=7)
        wait_until(lambda: len(foreign()) >= 40, timeout=5)
    finally:
        capture.send_signal(signal.SIGINT)
        capture.wait(10)

    assert len(foreign()) == 40


def _pcap_frames(path: Path) -> list[bytes]:
    """Raw frames (no dissection: they are broken on purpose). Tolerates a file still being
    written: a partial last record ends the list."""
    from scapy.error import Scapy_Exception
    from scapy.utils import RawPcapReader

    frames: list[bytes] = []
    try:
        with RawPcapReader(str(path)) as reader:
            frames.extend(data for data, _meta in reader)
    except (OSError, EOFError, ValueError, struct.error, Scapy_Exception):
        pass
    return frames


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


# --- the appliance handshake, with a stand-in daemon written here -----------------------

STAND_IN = """\
#!{python}
import os, signal, socket, sys, time
print("stand-in netaccessd", *sys.argv[1:], file=sys.stderr, flush=True)
if os.environ.get("STAND_IN_FAIL"):
    print("config broken: no such interface", file=sys.stderr)
    sys.exit(3)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(int(os.environ.get("STAND_IN_EXIT", "0"))))
time.sleep(0.3)
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.connect(os.environ["NOTIFY_SOCKET"])
sock.send(b"STATUS=listening\\nREADY=1")
while True:
    time.sleep(0.01)
    sock.send(b"WATCHDOG=1")
"""


@pytest.fixture
def stand_in_lab(lab_factory: LabFactory, tmp_path: Path) -> Lab:
    bin_dir = tmp_path / "repo" / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    # The lab starts the enforcer first; its stand-in only handshakes (extra_env, and so the
    # STAND_IN_* switches, go to netaccessd alone).
    for program in ("netaccess-enforcer", "netaccessd"):
        (bin_dir / program).write_text(textwrap.dedent(STAND_IN.format(python=sys.executable)))
        (bin_dir / program).chmod(0o755)
    lab = lab_factory(endpoints=1, repo=tmp_path / "repo")
    lab.up(appliance=False, dhcp_clients=False)
    return lab


def test_start_appliance_returns_once_the_daemon_sends_ready(stand_in_lab: Lab) -> None:
    stand_in_lab.start_appliance()

    assert stand_in_lab.appliance_running()
    assert "STATUS=listening\nREADY=1" in stand_in_lab.notify_messages
    pid = stand_in_lab.status()["processes"]["netaccessd"]
    assert pid in netns_pids(stand_in_lab.app_ns)


def test_start_appliance_reports_an_early_exit_with_the_log(stand_in_lab: Lab) -> None:
    with pytest.raises(LabError, match=r"exited with 3 (.|\n)*config broken"):
        stand_in_lab.start_appliance(extra_env={"STAND_IN_FAIL": "1"})

    assert not stand_in_lab.appliance_running()


def test_stop_appliance_returns_the_daemon_exit_code(stand_in_lab: Lab) -> None:
    stand_in_lab.start_appliance(extra_env={"STAND_IN_EXIT": "4"})
    time.sleep(0.5)  # the daemon keeps notifying: the lab must keep draining its socket

    assert stand_in_lab.stop_appliance() == 4
    assert not stand_in_lab.appliance_running()
