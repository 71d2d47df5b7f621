"""`tools/lab`: build, inspect and remove the lab from a shell (namespace prefix "na-")."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from tools.labnet import addressing as net
from tools.labnet.errors import LabError
from tools.labnet.topology import Lab

LEASE_TIMEOUT = 30.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tools/lab", description="The netaccess network-namespace lab (DESIGN.md §8)."
    )
    parser.add_argument(
        "--prefix",
        default="na-",
        help="namespace prefix (default na-); e.g. to remove a test lab a killed run left",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = commands.add_parser("up", help="build the lab (idempotent) and wait for DHCP leases")
    up.add_argument("--endpoints", type=int, default=3, help="endpoint namespaces (1..250)")
    up.add_argument("--config", type=Path, help="netaccessd config file (default: its own)")
    up.add_argument("--no-appliance", action="store_true", help="do not start netaccessd")
    commands.add_parser("down", help="stop every lab process and delete the namespaces")
    commands.add_parser("status", help="show namespaces, processes and leases")
    run = commands.add_parser("exec", help="run a command in a lab namespace")
    run.add_argument("namespace", metavar="EP", help="app, sw, up, nas or epN")
    run.add_argument("argv", metavar="CMD", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    if args.command != "status" and os.geteuid() != 0:
        print("tools/lab: must run as root (it manages network namespaces)", file=sys.stderr)
        return 1
    try:
        if args.command == "up":
            lab = Lab(prefix=args.prefix, endpoints=args.endpoints)
            lab.up(appliance=not args.no_appliance, config=args.config)
            lab.wait_for_leases(LEASE_TIMEOUT)
            print(describe(lab))
            print("\nnext, try:")
            if lab.appliance_running():
                print("  appliance endpoints list")
            print("  tools/lab exec ep1 ip addr")
            return 0
        lab = Lab(prefix=args.prefix)
        if args.command == "down":
            lab.down()
            print(f"lab {args.prefix} is down")
            return 0
        if args.command == "status":
            print(describe(lab))
            return 0
        if not args.argv:
            parser.error("exec needs a command, e.g. tools/lab exec ep1 ip addr")
        code = lab.exec(args.namespace, args.argv).returncode
        return 128 - code if code < 0 else code
    except (LabError, ValueError) as exc:
        print(f"tools/lab: {exc}", file=sys.stderr)
        return 1


def describe(lab: Lab) -> str:
    """A human-readable account of what the lab has now."""
    status = lab.status()
    if not any(status["namespaces"].values()):
        return f"lab {lab.prefix} is down (no namespaces)"
    procs: dict[str, int | None] = status["processes"]

    def proc(name: str) -> str:
        pid = procs.get(name)
        return f"pid {pid}" if pid else "NOT RUNNING"

    def ns(name: str) -> str:
        return name if status["namespaces"].get(name) else f"{name} (MISSING)"

    lines = [
        f"lab {lab.prefix} (workdir {lab.workdir})",
        f"  {ns(lab.app_ns)}: acc0 {net.APPLIANCE_ACCESS_IP}/{net.ACCESS_PREFIXLEN},"
        f" up0 {net.APPLIANCE_UPSTREAM_IP}/{net.UPSTREAM_PREFIXLEN}, ip_forward=1",
        f"      dnsmasq DHCP+DNS on acc0 ({proc('app-dnsmasq')}),"
        f" netaccessd ({proc('netaccessd')}, log {lab.appliance_log})",
        f"  {ns(lab.sw_ns)}: bridge br0, ports app and ep1..ep{len(status['leases'])}",
        f"  {ns(lab.up_ns)}: eth0 {net.WEB_IP}/{net.UPSTREAM_PREFIXLEN}"
        f" and {net.REMEDIATION_IP}/{net.UPSTREAM_PREFIXLEN}",
        f"      web http://{net.WEB_IP}/ ({proc('up-www')}),"
        f" remediation http://{net.REMEDIATION_IP}/ ({proc('up-remediation')}),"
        f" DNS {net.WEB_IP} for corp.test and netaccess.test ({proc('up-dnsmasq')})",
    ]
    now = time.time()
    for k, lease in status["leases"].items():
        client = proc(f"ep{k}-udhcpc")
        if lease is None:
            held = "no lease"
        else:
            held = f"{lease.ip}/{lease.prefixlen}, leased {now - lease.at:.0f} s ago"
        lines.append(
            f"  {ns(lab.endpoint_ns(k))}: eth0 {lab.endpoint_mac(k)} {held} (udhcpc {client})"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
