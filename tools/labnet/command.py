"""Running ip(8) and friends: argv lists only, return codes checked, failures as LabError."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from tools.labnet.errors import LabError

NETNS_DIR = Path("/run/netns")
# Tools the lab runs; tools/bootstrap installs them (nftables is for the appliance itself).
REQUIRED_TOOLS = ("ip", "dnsmasq", "udhcpc", "busybox", "sysctl")
COMMAND_TIMEOUT = 30.0


def run(
    argv: Sequence[str], *, input: str | None = None, timeout: float = COMMAND_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run `argv` to completion; raise LabError naming the command and its stderr on failure."""
    try:
        result = subprocess.run(
            list(argv),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise LabError(f"{shlex.join(argv)}: {argv[0]} not found (run tools/bootstrap)") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{shlex.join(argv)}: no answer within {timeout:g} s") from exc
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip() or "(no output)"
        raise LabError(f"{shlex.join(argv)} exited with {result.returncode}: {detail}")
    return result


def missing_tools() -> list[str]:
    """Required programs not found on PATH or in the sbin directories."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])
    return [tool for tool in REQUIRED_TOOLS if shutil.which(tool, path=path) is None]


def netns_names() -> list[str]:
    """Names of the named network namespaces (`ip netns list`)."""
    out = run(["ip", "-j", "netns", "list"]).stdout.strip()
    if not out:  # some iproute2 versions print nothing at all for an empty list
        return []
    return [entry["name"] for entry in json.loads(out)]


def netns_pids(namespace: str) -> list[int]:
    """PIDs of the processes whose network namespace is `namespace` (empty when it is gone)."""
    if not (NETNS_DIR / namespace).exists():
        return []
    result = subprocess.run(
        ["ip", "netns", "pids", namespace], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        if not (NETNS_DIR / namespace).exists():  # deleted while we looked
            return []
        raise LabError(f"ip netns pids {namespace}: {result.stderr.strip()}")
    return [int(word) for word in result.stdout.split()]


def link_names(namespace: str) -> set[str]:
    """Interface names present in `namespace`."""
    out = run(["ip", "-n", namespace, "-j", "link", "show"]).stdout.strip()
    return {link["ifname"] for link in json.loads(out or "[]")}


def ip_batch(namespace: str, commands: Sequence[str]) -> None:
    """Run many ip(8) commands in one process (fast for hundreds of endpoints)."""
    if commands:
        run(["ip", "-n", namespace, "-batch", "-"], input="\n".join(commands) + "\n")


def namespace_inode(namespace: str) -> int | None:
    """The inode identifying `namespace`, or None when it does not exist."""
    try:
        return (NETNS_DIR / namespace).stat().st_ino
    except FileNotFoundError:
        return None
