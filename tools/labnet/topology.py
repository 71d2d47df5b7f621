"""The lab: endpoints, an access switch, the appliance and an upstream site, each in its own
network namespace, with the real processes that make it a network (see DESIGN.md §8).

    [{P}ep1..N] eth0 --veth-- epK [{P}sw: br0] app --veth-- acc0 [{P}app] up0 --veth-- eth0 [{P}up]

Nothing is created in the host's namespace and nothing is bridged or routed to it. The same
class serves `tools/lab` and the pytest fixtures; state lives in namespaces and pidfiles, so a
later invocation (e.g. `tools/lab down`) finds what an earlier one built.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.labnet import addressing as net
from tools.labnet import services
from tools.labnet.command import (
    ip_batch,
    link_names,
    missing_tools,
    netns_names,
    netns_pids,
    run,
)
from tools.labnet.errors import LabError
from tools.labnet.lease import Lease
from tools.labnet.notify import NotifyListener
from tools.labnet.process import (
    ProcessTable,
    alive_in_namespace,
    signal_quietly,
    tail,
    wait_gone,
)

log = logging.getLogger("tools.labnet")

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKDIR_ROOT = Path("/run/netaccess-lab")
# `ip netns exec NS` bind-mounts /etc/netns/NS/* over /etc, so a lab namespace gets its own
# resolv.conf there without touching the host's (iproute2's documented mechanism).
ETC_NETNS = Path("/etc/netns")
HOOK_SCRIPT = Path(__file__).with_name("udhcpc-script")
MALFORMED_SCRIPT = Path(__file__).with_name("malformed.py")
APPLIANCE_READY_TIMEOUT = 30.0
SERVER_READY_TIMEOUT = 10.0
DOWN_GRACE = 5.0

APPLIANCE = "netaccessd"  # process name; its log is WORKDIR/netaccessd.log
ENFORCER = "netaccess-enforcer"  # the privileged half; WORKDIR/netaccess-enforcer.log


@dataclass(frozen=True, slots=True)
class _Listening:
    """A socket a server must have bound before it counts as started."""

    proto: str  # "tcp" or "udp", as in /proc/net
    ip: str
    port: int

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}/{self.proto}"


class Lab:
    """One lab instance, identified by its namespace prefix.

    Namespaces: {prefix}app (appliance: acc0 198.18.0.1/22, up0 198.19.0.1/24, dnsmasq for
    DHCP and DNS on acc0, netaccessd), {prefix}sw (bridge br0 with ports ep1..epN and app),
    {prefix}up (eth0 198.19.0.2/24 and 198.19.0.3/24: web, remediation and DNS servers),
    {prefix}nas (eth0 198.19.1.2/24, the switch's management side, facing the appliance's
    mgmt0 198.19.1.1/24: RADIUS clients and the CoA listener run here) and
    {prefix}ep1..epN (eth0 with MAC 02:4e:41:00:00:NN, addressed by udhcpc).

    Commands run through `ip netns exec` (exec(), tools/lab exec) resolve names with the lab's
    DNS: /etc/netns/{ns}/resolv.conf points endpoints at 198.18.0.1 and app/up at 198.19.0.2.
    """

    def __init__(
        self,
        prefix: str = "na-",
        endpoints: int = 3,
        workdir: Path | None = None,
        repo: Path = REPO_ROOT,
    ) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", prefix):
            raise ValueError(f"lab prefix {prefix!r}: use letters, digits, '-', '_' or '.'")
        if not 1 <= endpoints <= net.MAX_ENDPOINTS:
            raise ValueError(f"endpoints={endpoints}: the lab supports 1..{net.MAX_ENDPOINTS}")
        self.prefix = prefix
        self.endpoints = endpoints
        self.workdir = Path(workdir) if workdir is not None else WORKDIR_ROOT / prefix.rstrip("-")
        self.repo = Path(repo)
        self._processes = ProcessTable(self.workdir / "run")
        self._notify: NotifyListener | None = None
        self._notified: list[str] = []  # what the last appliance process sent, once stopped
        self._own_namespace = re.compile(
            rf"{re.escape(prefix)}(?:app|sw|up|nas|ep(?P<endpoint>[1-9][0-9]*))"
        )

    # ----------------------------------------------------------------- names and addresses

    @property
    def app_ns(self) -> str:
        return f"{self.prefix}app"

    @property
    def sw_ns(self) -> str:
        return f"{self.prefix}sw"

    @property
    def up_ns(self) -> str:
        return f"{self.prefix}up"

    @property
    def nas_ns(self) -> str:
        return f"{self.prefix}nas"

    def endpoint_ns(self, k: int) -> str:
        return f"{self.prefix}ep{k}"

    @property
    def endpoint_numbers(self) -> range:
        return range(1, self.endpoints + 1)

    @property
    def namespaces(self) -> list[str]:
        """The namespaces this lab builds, appliance first."""
        return [self.app_ns, self.sw_ns, self.up_ns, self.nas_ns] + [
            self.endpoint_ns(k) for k in self.endpoint_numbers
        ]

    @staticmethod
    def endpoint_mac(k: int) -> str:
        """MAC of endpoint k's eth0: 02:4e:41:00:00:NN, NN = k in hex (1..250)."""
        return net.endpoint_mac(k)

    @property
    def lease_file(self) -> Path:
        """dnsmasq's lease database (the site DHCP server's view of the leases)."""
        return self.workdir / "dnsmasq.leases"

    @property
    def appliance_log(self) -> Path:
        return self.workdir / f"{APPLIANCE}.log"

    @property
    def notify_messages(self) -> list[str]:
        """sd_notify datagrams from the running (or last stopped) appliance, oldest first."""
        return list(self._notify.messages) if self._notify else list(self._notified)

    def namespace(self, name_or_ep: str) -> str:
        """Resolve "app", "sw", "up", "nas", "ep2" or a full namespace name of this lab."""
        full = name_or_ep if name_or_ep.startswith(self.prefix) else self.prefix + name_or_ep
        if not self._own_namespace.fullmatch(full):
            raise LabError(f"{name_or_ep!r} is not a lab namespace: use app, sw, up, nas or epN")
        return full

    def existing_namespaces(self) -> list[str]:
        """This lab's namespaces that exist now, whatever endpoint count built them."""
        return [name for name in netns_names() if self._own_namespace.fullmatch(name)]

    def existing_endpoints(self) -> list[int]:
        numbers = set(self.endpoint_numbers)
        for name in netns_names():
            match = self._own_namespace.fullmatch(name)
            if match and match["endpoint"]:
                numbers.add(int(match["endpoint"]))
        return sorted(numbers)

    # ----------------------------------------------------------------------------- up

    def up(
        self,
        *,
        appliance: bool = True,
        config: Path | None = None,
        dhcp_clients: bool = True,
    ) -> None:
        """Build the lab, or complete a half-built one; on a lab that is up, change nothing.

        Order: namespaces, links and addresses; upstream servers; the access dnsmasq; the
        appliance (waits for READY=1); udhcpc in every endpoint (does not wait for leases:
        see wait_for_leases).
        """
        self._check_host()
        for sub in ("run", "leases", "www", "remediation"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        self._build_network()
        self._start_upstream_servers()
        self._start_access_dhcp_dns()
        if appliance and not self.appliance_running():
            self.start_appliance(config)
        if dhcp_clients:
            for k in self.endpoint_numbers:
                self.start_dhcp_client(k)

    def _check_host(self) -> None:
        if os.geteuid() != 0:
            raise LabError("the lab needs root: it creates network namespaces")
        missing = missing_tools()
        if missing:
            raise LabError(f"missing programs: {', '.join(missing)} (run tools/bootstrap)")

    def _build_network(self) -> None:
        present = set(netns_names())
        for name in self.namespaces:
            if name not in present:
                run(["ip", "netns", "add", name])

        self._write_resolv_confs()

        # Links are created from inside a lab namespace with the peer placed straight into
        # the other one, so no interface ever exists in the host's namespace.
        sw_links = link_names(self.sw_ns)
        if "br0" not in sw_links:
            run(
                [
                    *("ip", "-n", self.sw_ns, "link", "add", "br0", "type", "bridge"),
                    *("forward_delay", "0", "stp_state", "0"),
                    # A bridge keeps 802.1X frames (to the PAE group 01:80:c2:00:00:03) to
                    # itself; bit 3 forwards them, so the appliance hears supplicants the way
                    # a switch that passes EAPOL through (or mirrors it) lets it.
                    *("group_fwd_mask", "8"),
                ]
            )
        for k in self.endpoint_numbers:
            self._ensure_veth(
                self.sw_ns,
                f"ep{k}",
                self.endpoint_ns(k),
                "eth0",
                sw_links,
                peer_address=self.endpoint_mac(k),
            )
        self._ensure_veth(self.sw_ns, "app", self.app_ns, "acc0", sw_links)
        self._ensure_veth(self.app_ns, "up0", self.up_ns, "eth0", link_names(self.app_ns))
        self._ensure_veth(self.app_ns, "mgmt0", self.nas_ns, "eth0", link_names(self.app_ns))

        sw = ["link set lo up", "link set br0 up"]
        for port in [f"ep{k}" for k in self.endpoint_numbers] + ["app"]:
            sw += [f"link set {port} master br0", f"link set {port} up"]
        ip_batch(self.sw_ns, sw)
        for k in self.endpoint_numbers:
            ip_batch(
                self.endpoint_ns(k),
                [
                    "link set lo up",
                    f"link set eth0 address {self.endpoint_mac(k)}",
                    "link set eth0 up",
                ],
            )
        ip_batch(
            self.app_ns,
            [
                "link set lo up",
                "link set acc0 up",
                f"addr replace {net.APPLIANCE_ACCESS_IP}/{net.ACCESS_PREFIXLEN} dev acc0",
                "link set up0 up",
                f"addr replace {net.APPLIANCE_UPSTREAM_IP}/{net.UPSTREAM_PREFIXLEN} dev up0",
                "link set mgmt0 up",
                f"addr replace {net.APPLIANCE_MGMT_IP}/{net.MGMT_PREFIXLEN} dev mgmt0",
            ],
        )
        ip_batch(
            self.nas_ns,
            [
                "link set lo up",
                "link set eth0 up",
                f"addr replace {net.NAS_IP}/{net.MGMT_PREFIXLEN} dev eth0",
            ],
        )
        run(["ip", "netns", "exec", self.app_ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
        # Conntrack destroy events let the enforcer count what a kernel-side flush deleted
        # (the appliance image sets the same in sysctl.d). The module may not be loaded yet on
        # a fresh host; the enforcer then counts by dumping instead.
        with contextlib.suppress(LabError):
            sysctl = ["ip", "netns", "exec", self.app_ns, "sysctl", "-qw"]
            run([*sysctl, "net.netfilter.nf_conntrack_events=1"])
        # A switch forwards frames as they are. With br_netfilter in the kernel, bridged ARP
        # and IP would go through arptables/iptables, which drop broken frames (e.g. ARP
        # shorter than 8 bytes) before they reach the appliance. -e: fine if it is absent.
        run(
            ["ip", "netns", "exec", self.sw_ns, "sysctl", "-qe"]
            + [f"net.bridge.bridge-nf-call-{t}=0" for t in ("arptables", "iptables", "ip6tables")]
        )
        ip_batch(
            self.up_ns,
            [
                "link set lo up",
                "link set eth0 up",
                f"addr replace {net.WEB_IP}/{net.UPSTREAM_PREFIXLEN} dev eth0",
                f"addr replace {net.REMEDIATION_IP}/{net.UPSTREAM_PREFIXLEN} dev eth0",
                f"route replace {net.ACCESS_NET} via {net.APPLIANCE_UPSTREAM_IP}",
            ],
        )

    def _ensure_veth(
        self,
        namespace: str,
        name: str,
        peer_namespace: str,
        peer: str,
        present: set[str],
        peer_address: str | None = None,
    ) -> None:
        """Create the veth pair namespace/name <-> peer_namespace/peer unless both ends exist.

        An end without its peer is stale: the other namespace was deleted and the kernel is
        still tearing the pair down. It is removed before the pair is made again.
        """
        peer_present = peer in link_names(peer_namespace)
        if name in present and peer_present:
            return
        if name in present:
            subprocess.run(["ip", "-n", namespace, "link", "delete", name], capture_output=True)
        if peer_present:
            subprocess.run(
                ["ip", "-n", peer_namespace, "link", "delete", peer], capture_output=True
            )
        address = ["address", peer_address] if peer_address else []
        argv = ["ip", "-n", namespace, "link", "add", name, "type", "veth", "peer", "name", peer]
        run([*argv, *address, "netns", peer_namespace])

    def _write_resolv_confs(self) -> None:
        servers = {self.app_ns: net.WEB_IP, self.up_ns: net.WEB_IP}
        servers.update(
            {self.endpoint_ns(k): net.APPLIANCE_ACCESS_IP for k in self.endpoint_numbers}
        )
        for namespace, server in servers.items():
            directory = ETC_NETNS / namespace
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "resolv.conf").write_text(f"nameserver {server}\n")

    def _remove_resolv_confs(self) -> None:
        try:
            entries = list(ETC_NETNS.iterdir())
        except FileNotFoundError:
            return
        for directory in entries:
            if self._own_namespace.fullmatch(directory.name):
                shutil.rmtree(directory, ignore_errors=True)
        with contextlib.suppress(OSError):  # only when empty: other labs may use it
            ETC_NETNS.rmdir()

    def _start_upstream_servers(self) -> None:
        www, remediation = self.workdir / "www", self.workdir / "remediation"
        (www / "index.html").write_text(services.WEB_PAGE)
        (remediation / "index.html").write_text(services.REMEDIATION_PAGE)
        self._ensure_running(
            "up-dnsmasq",
            self.up_ns,
            services.upstream_dnsmasq(self._processes.pidfile("up-dnsmasq")),
            [_Listening("udp", net.WEB_IP, 53)],
        )
        self._ensure_running(
            "up-www",
            self.up_ns,
            services.http_server(www, net.WEB_IP),
            [_Listening("tcp", net.WEB_IP, 80)],
        )
        self._ensure_running(
            "up-remediation",
            self.up_ns,
            services.http_server(remediation, net.REMEDIATION_IP),
            [_Listening("tcp", net.REMEDIATION_IP, 80)],
        )

    def _start_access_dhcp_dns(self) -> None:
        self._ensure_running(
            "app-dnsmasq",
            self.app_ns,
            services.access_dnsmasq(self.lease_file, self._processes.pidfile("app-dnsmasq")),
            [_Listening("udp", net.APPLIANCE_ACCESS_IP, 53), _Listening("udp", "0.0.0.0", 67)],
        )

    def _ensure_running(
        self, name: str, namespace: str, argv: Sequence[str], listening: Sequence[_Listening]
    ) -> None:
        """Start a server unless it already runs, and wait until its sockets are bound."""
        if self._processes.pid(name, namespace) is not None:
            return
        logfile = self.workdir / f"{name}.log"
        pid = self._processes.start(name, namespace, argv, logfile, env=_child_env())
        deadline = time.monotonic() + SERVER_READY_TIMEOUT
        while not (
            alive_in_namespace(pid, namespace)  # not still `ip netns exec` in the host's
            and all(_is_listening(pid, sock) for sock in listening)
        ):
            if self._processes.pid(name, namespace) is None:
                raise LabError(
                    f"{name} ({argv[0]}) exited while starting in {namespace};"
                    f" last lines of {logfile}:\n{tail(logfile)}"
                )
            if time.monotonic() > deadline:
                self._processes.stop(name, namespace, 2.0)
                raise LabError(
                    f"{name} did not bind {', '.join(map(str, listening))} within"
                    f" {SERVER_READY_TIMEOUT:g} s; last lines of {logfile}:\n{tail(logfile)}"
                )
            time.sleep(0.02)

    # ----------------------------------------------------------------- the appliance

    def start_appliance(
        self, config: Path | None = None, extra_env: Mapping[str, str] | None = None
    ) -> None:
        """Run netaccess-enforcer (root) and then netaccessd (which drops to its own user) in
        the appliance namespace, each with `--config FILE` if given, waiting (30 s at most
        each) for READY=1 on a NOTIFY_SOCKET the lab binds in its workdir, as systemd would.

        Output goes to WORKDIR/netaccess-enforcer.log and WORKDIR/netaccessd.log. Raises
        LabError, with the log's last lines, when either exits or is not ready in time.
        `extra_env` goes to netaccessd only. A running enforcer is kept.
        """
        if self.appliance_running():
            raise LabError(f"{APPLIANCE} already runs in {self.app_ns}")
        if not self.enforcer_running():
            # It has said READY; its later pings need no listener.
            self._start_until_ready(ENFORCER, config, None).close()
        self._close_notify()
        self._notify = self._start_until_ready(APPLIANCE, config, extra_env)

    def start_enforcer(self, config: Path | None = None) -> None:
        if self.enforcer_running():
            raise LabError(f"{ENFORCER} already runs in {self.app_ns}")
        self._start_until_ready(ENFORCER, config, None).close()

    def _start_until_ready(
        self, name: str, config: Path | None, extra_env: Mapping[str, str] | None
    ) -> NotifyListener:
        program = self.repo / ".venv" / "bin" / name
        if not os.access(program, os.X_OK):
            raise LabError(f"{program} is missing: run tools/bootstrap")
        self.workdir.mkdir(parents=True, exist_ok=True)
        notify = NotifyListener(self.workdir / f"{name}.notify")
        env = _child_env(NOTIFY_SOCKET=str(notify.path))
        env.update(extra_env or {})
        argv = [str(program)] + (["--config", str(config)] if config is not None else [])
        logfile = self.workdir / f"{name}.log"
        # The log accumulates across restarts; errors quote only this run's part.
        since = logfile.stat().st_size if logfile.exists() else 0
        self._processes.start(name, self.app_ns, argv, logfile, env=env)

        deadline = time.monotonic() + APPLIANCE_READY_TIMEOUT
        while not notify.ready.wait(0.05):
            if self._processes.pid(name, self.app_ns) is None:
                code = self._processes.exit_code(name)
                notify.close()
                raise LabError(
                    f"{name} exited with {code} before sending READY=1;"
                    f" last lines of {logfile}:\n{tail(logfile, since=since)}"
                )
            if time.monotonic() > deadline:
                self._processes.stop(name, self.app_ns, 5.0)
                notify.close()
                raise LabError(
                    f"{name} sent no READY=1 within {APPLIANCE_READY_TIMEOUT:g} s"
                    f" (stopped it); last lines of {logfile}:\n{tail(logfile, since=since)}"
                )
        return notify

    def appliance_running(self) -> bool:
        return self._processes.pid(APPLIANCE, self.app_ns) is not None

    def enforcer_running(self) -> bool:
        return self._processes.pid(ENFORCER, self.app_ns) is not None

    @property
    def enforcer_log(self) -> Path:
        return self.workdir / f"{ENFORCER}.log"

    def appliance_pid(self) -> int | None:
        return self._processes.pid(APPLIANCE, self.app_ns)

    def enforcer_pid(self) -> int | None:
        return self._processes.pid(ENFORCER, self.app_ns)

    def stop_enforcer(self, timeout: float = 10.0) -> int:
        code, killed = self._processes.stop(ENFORCER, self.app_ns, timeout)
        if code is not None:
            return code
        return -signal.SIGKILL if killed else 0

    def kill_appliance(self) -> None:
        """SIGKILL netaccessd: no drain, no goodbye (what a crash looks like to the kernel)."""
        pid = self._processes.pid(APPLIANCE, self.app_ns)
        if pid is None:
            raise LabError(f"{APPLIANCE} is not running in {self.app_ns}")
        self._processes.stop(APPLIANCE, self.app_ns, 0.0)
        self._close_notify()

    def stop_appliance(self, timeout: float = 10.0) -> int:
        """SIGTERM the daemon, wait `timeout` s (then SIGKILL, with a warning); its exit code.

        The code is as in subprocess: negative when a signal ended it (-9 after SIGKILL). For
        a daemon started by another process (e.g. `tools/lab up`) the real code cannot be
        collected: 0 then means "exited after SIGTERM". The enforcer keeps running.
        """
        running = self.appliance_running()
        code, killed = self._processes.stop(APPLIANCE, self.app_ns, timeout)
        self._close_notify()
        if killed:
            message = f"{APPLIANCE} ignored SIGTERM for {timeout:g} s: killed it with SIGKILL"
            log.warning(message)
            with self.appliance_log.open("a") as out:
                out.write(f"[tools.labnet] {message}\n")
        if code is not None:
            return code
        if not running:
            raise LabError(f"{APPLIANCE} is not running in {self.app_ns}")
        return -signal.SIGKILL if killed else 0

    def _close_notify(self) -> None:
        if self._notify is not None:
            self._notify.close()
            self._notified = list(self._notify.messages)
            self._notify = None

    # ----------------------------------------------------------------- DHCP clients

    def start_dhcp_client(self, k: int) -> None:
        """Start udhcpc on endpoint k's eth0 (no-op when it already runs)."""
        name, namespace = f"ep{k}-udhcpc", self.endpoint_ns(k)
        if self._processes.pid(name, namespace) is not None:
            return
        self._lease_record(k).unlink(missing_ok=True)  # stale after a SIGKILL
        self._lease_record(k).parent.mkdir(parents=True, exist_ok=True)
        argv = services.udhcpc(f"ep{k}", self._hook_script(), self._processes.pidfile(name))
        env = _child_env(
            NETACCESS_LAB_LEASES=str(self._lease_record(k).parent),
            NETACCESS_LAB_ENDPOINT=f"ep{k}",
        )
        self._processes.start(name, namespace, argv, self.workdir / f"{name}.log", env=env)

    def stop_dhcp_client(self, k: int, timeout: float = 5.0) -> None:
        """SIGTERM endpoint k's udhcpc, which sends a DHCPRELEASE (-R) and deconfigures eth0."""
        self._processes.stop(f"ep{k}-udhcpc", self.endpoint_ns(k), timeout)
        self._lease_record(k).unlink(missing_ok=True)

    def dhcp_client_running(self, k: int) -> bool:
        return self._processes.pid(f"ep{k}-udhcpc", self.endpoint_ns(k)) is not None

    def lease(self, k: int) -> Lease | None:
        """Endpoint k's current lease as its DHCP client recorded it, or None."""
        return Lease.read(k, self._lease_record(k))

    def wait_for_leases(
        self, timeout: float = 30.0, endpoints: Sequence[int] | None = None
    ) -> dict[int, Lease]:
        """Wait until every endpoint (or those listed) holds a lease; raise LabError if not."""
        wanted = list(endpoints) if endpoints is not None else list(self.endpoint_numbers)
        deadline = time.monotonic() + timeout
        while True:
            leases = {k: lease for k in wanted if (lease := self.lease(k)) is not None}
            if len(leases) == len(wanted):
                return leases
            if time.monotonic() > deadline:
                missing = [k for k in wanted if k not in leases]
                logs = "\n".join(
                    f"--- ep{k}-udhcpc.log:\n{tail(self.workdir / f'ep{k}-udhcpc.log', 5)}"
                    for k in missing
                )
                raise LabError(
                    f"no lease within {timeout:g} s for endpoints {missing};"
                    f" dnsmasq log:\n{tail(self.workdir / 'app-dnsmasq.log', 10)}\n{logs}"
                )
            time.sleep(0.05)

    def _lease_record(self, k: int) -> Path:
        return self.workdir / "leases" / f"ep{k}"

    def _hook_script(self) -> Path:
        """Our udhcpc hook, copied into the workdir so its exec bit never depends on a checkout."""
        target = self.workdir / "udhcpc-script"
        if not target.exists() or target.read_bytes() != HOOK_SCRIPT.read_bytes():
            shutil.copyfile(HOOK_SCRIPT, target)
            target.chmod(0o755)
        return target

    # ----------------------------------------------------------------- running things

    def exec(
        self, name_or_ep: str, argv: Sequence[str], **subprocess_kwargs: Any
    ) -> subprocess.CompletedProcess[Any]:
        """subprocess.run(argv, **subprocess_kwargs) inside a lab namespace ("ep2", "app"...).

        The return code is not checked: pass check=True for that.
        """
        namespace = self.namespace(name_or_ep)
        if namespace not in netns_names():
            raise LabError(f"namespace {namespace} does not exist (is the lab up?)")
        return subprocess.run(["ip", "netns", "exec", namespace, *argv], **subprocess_kwargs)

    def send_malformed(self, k: int, count: int, seed: int = 0) -> None:
        """Broadcast `count` broken DHCP/ARP frames from endpoint k (tools/labnet/malformed.py)."""
        python = self.repo / ".venv" / "bin" / "python"
        interpreter = str(python) if python.exists() else sys.executable
        run(
            [
                *("ip", "netns", "exec", self.endpoint_ns(k), interpreter, str(MALFORMED_SCRIPT)),
                *("--interface", "eth0", "--count", str(count), "--seed", str(seed)),
            ],
            timeout=90,
        )

    # ----------------------------------------------------------------- status and down

    def _process_names(self) -> list[tuple[str, str]]:
        return [
            ("up-dnsmasq", self.up_ns),
            ("up-www", self.up_ns),
            ("up-remediation", self.up_ns),
            ("app-dnsmasq", self.app_ns),
            (APPLIANCE, self.app_ns),
            (ENFORCER, self.app_ns),
        ] + [(f"ep{k}-udhcpc", self.endpoint_ns(k)) for k in self.existing_endpoints()]

    def status(self) -> dict[str, Any]:
        """What exists now: {"prefix", "workdir", "namespaces": {name: present},
        "processes": {name: pid or None}, "leases": {k: Lease or None}}."""
        present = set(netns_names())
        endpoints = self.existing_endpoints()
        names = [self.app_ns, self.sw_ns, self.up_ns] + [self.endpoint_ns(k) for k in endpoints]
        return {
            "prefix": self.prefix,
            "workdir": str(self.workdir),
            "namespaces": {name: name in present for name in names},
            "processes": {
                name: self._processes.pid(name, namespace)
                for name, namespace in self._process_names()
            },
            "leases": {k: self.lease(k) for k in endpoints},
        }

    def down(self) -> None:
        """Stop every process in the lab's namespaces, delete them and remove the workdir.

        Safe on a partial or absent lab. Only namespaces named like this lab's are touched
        ({prefix}app|sw|up|nas|epN), so labs with other prefixes keep running.
        """
        namespaces = self.existing_namespaces()
        pids = {pid for name in namespaces for pid in netns_pids(name)} - {os.getpid()}
        for pid in pids:
            signal_quietly(pid, signal.SIGTERM)
        stubborn = wait_gone(pids, DOWN_GRACE)
        for pid in stubborn:
            signal_quietly(pid, signal.SIGKILL)
        stuck = wait_gone(stubborn, 5.0)
        self._close_notify()  # only now: the daemon may notify STOPPING=1 while it exits
        self._processes.forget()
        for name in namespaces:
            result = subprocess.run(
                ["ip", "netns", "delete", name], capture_output=True, text=True, check=False
            )
            if result.returncode != 0 and name in netns_names():
                raise LabError(f"ip netns delete {name}: {result.stderr.strip()}")
        self._remove_resolv_confs()
        left = self.existing_namespaces()
        if left or stuck:
            raise LabError(f"down left namespaces {left} and processes {sorted(stuck)}")
        shutil.rmtree(self.workdir, ignore_errors=True)
        if self.workdir.parent == WORKDIR_ROOT:
            with contextlib.suppress(OSError):  # other labs still use it
                WORKDIR_ROOT.rmdir()


def _child_env(**extra: str) -> dict[str, str]:
    """Environment for lab processes: ours without systemd's notify/watchdog variables, with
    the sbin directories on PATH (ip, dnsmasq and udhcpc live there)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
    }
    path = env.get("PATH", "/usr/bin:/bin").split(os.pathsep)
    env["PATH"] = os.pathsep.join(
        path + [d for d in ("/usr/local/sbin", "/usr/sbin", "/sbin") if d not in path]
    )
    env.update(extra)
    return env


def _is_listening(pid: int, sock: _Listening) -> bool:
    """Whether a socket bound to sock.ip:sock.port exists in `pid`'s network namespace."""
    packed = int.from_bytes(socket.inet_aton(sock.ip), sys.byteorder)
    local = f"{packed:08X}:{sock.port:04X}"
    try:
        lines = Path(f"/proc/{pid}/net/{sock.proto}").read_text().splitlines()[1:]
    except OSError:
        return False
    for line in lines:
        fields = line.split()
        # TCP must be in LISTEN (0A); a bound UDP socket is enough.
        if fields[1] == local and (sock.proto == "udp" or fields[3] == "0A"):
            return True
    return False
