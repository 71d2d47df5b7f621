"""Command lines of the real servers the lab runs: the site's DHCP/DNS server (dnsmasq on the
access side), the upstream DNS, web and remediation servers, and the endpoints' DHCP client."""

from __future__ import annotations

import sys
from pathlib import Path

from tools.labnet import addressing as net

WEB_PAGE = (
    "<!doctype html><title>corp.test web server</title>\n"
    f"<p>netaccess lab: upstream web server www.corp.test ({net.WEB_IP}).</p>\n"
)
REMEDIATION_PAGE = (
    "<!doctype html><title>corp.test remediation server</title>\n"
    f"<p>netaccess lab: remediation server remediation.corp.test ({net.REMEDIATION_IP}).</p>\n"
)

# dnsmasq options common to both instances: no config file, no host files, no upstream from
# /etc/resolv.conf (those are the host's), stay root so it can write into the workdir, and
# stay in the foreground so the PID we track is the server's.
_DNSMASQ_BASE = (
    "dnsmasq",
    "--keep-in-foreground",
    "--conf-file=/dev/null",
    "--user=root",
    "--no-hosts",
    "--no-resolv",
    "--log-queries",
    "--log-facility=-",  # to stderr, which the lab sends to the process's log in the workdir
)


def access_dnsmasq(leasefile: Path, pidfile: Path, interface: str = "acc0") -> list[str]:
    """The site's DHCP and DNS server, serving the access side only (in the appliance netns)."""
    first, last = net.DHCP_RANGE
    return [
        *_DNSMASQ_BASE,
        f"--interface={interface}",
        "--except-interface=lo",
        # Bound to acc0's address, and answering only what arrives on acc0 (bind-interfaces
        # alone would also answer a query routed in through up0).
        "--bind-dynamic",
        f"--server={net.WEB_IP}",
        f"--pid-file={pidfile}",
        "--log-dhcp",
        f"--dhcp-leasefile={leasefile}",
        f"--dhcp-range={first},{last},{net.ACCESS_NETMASK},{net.DHCP_LEASE_TIME}",
        f"--dhcp-option=option:router,{net.APPLIANCE_ACCESS_IP}",
        f"--dhcp-option=option:dns-server,{net.APPLIANCE_ACCESS_IP}",
        # RFC 8910: sent to clients that ask for option 114 in their parameter request list.
        # (No quotes: on dnsmasq's command line they would be sent as part of the value.)
        f"--dhcp-option=114,{net.CAPTIVE_PORTAL_API}",
        "--dhcp-authoritative",
        "--no-ping",  # no ICMP probe before offering: leases in milliseconds, not seconds
    ]


def upstream_dnsmasq(pidfile: Path) -> list[str]:
    """Authoritative DNS for the lab's zones (in the upstream netns, on the web server's IP)."""
    argv = [
        *_DNSMASQ_BASE,
        f"--listen-address={net.WEB_IP}",
        "--bind-interfaces",
        f"--pid-file={pidfile}",
        f"--auth-server=ns.corp.test,{net.WEB_IP}",
    ]
    # corp.test also answers reverse lookups for the upstream subnet (http.server asks).
    argv += [f"--auth-zone={zone}" for zone in net.DNS_ZONES]
    argv += [f"--host-record={name},{ip}" for name, ip in net.DNS_RECORDS.items()]
    return argv


def http_server(directory: Path, address: str) -> list[str]:
    """A static web server on `address`:80 serving `directory`."""
    return [
        sys.executable,
        "-m",
        "http.server",
        "80",
        "--bind",
        address,
        "--directory",
        str(directory),
    ]


def udhcpc(hostname: str, script: Path, pidfile: Path, interface: str = "eth0") -> list[str]:
    """busybox udhcpc in the foreground, asking for option 114, releasing its lease on exit."""
    return [
        "udhcpc",
        "-f",
        "-i",
        interface,
        "-x",
        f"hostname:{hostname}",
        "-O",
        "114",
        "-R",
        "-s",
        str(script),
        "-p",
        str(pidfile),
    ]
