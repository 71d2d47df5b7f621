"""Driving a lab appliance the way an admin does: a config file and the real `appliance` CLI.

A test's appliance keeps its config, state and sockets in one directory (`base`) that the
unprivileged netaccessd can reach: under the lab's workdir, not pytest's root-only tmp.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
APPLIANCE = [str(REPO / ".venv" / "bin" / "appliance")]


def write_config(base: Path, extra: str = "", realm_extra: str = "", full_extra: str = "") -> Path:
    """The lab appliance's config; `extra` goes after [enforcement] (more tables),
    `realm_extra` into the staff realm (more keys, then sub-tables), `full_extra` into the
    role full (more keys)."""
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)
    config = base / "appliance.toml"
    config.write_text(
        f"""
[daemon]
state_dir = "{base / "state"}"
control_socket = "{base / "run" / "control.sock"}"
shutdown_grace = 5.0

[interfaces]
access = ["acc0"]
upstream = ["up0"]

[detection]
malformed_log_interval = 1.0

[enforcement]
enforcer_socket = "{base / "run" / "enforcer.sock"}"
{extra}

[[roles]]
name = "remediation"
vlan = 998
captive = true
allow = [{{ cidr = "198.19.0.3/32", proto = "tcp", ports = [80] }}]

[[roles]]
name = "full"
vlan = 100
allow = ["0.0.0.0/0", "::/0"]
{full_extra}

[[realms]]
name = "staff"
role = "full"
title = "Staff"
{realm_extra}
"""
    )
    return config


def cli(
    base: Path, *args: str, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*APPLIANCE, "--socket", str(base / "run" / "control.sock"), *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
    )


def cli_json(base: Path, *args: str) -> Any:
    return json.loads(cli(base, *args, "--json").stdout)


def listed(base: Path) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = cli_json(base, "endpoints", "list")
    return result


def status(base: Path) -> dict[str, Any]:
    result: dict[str, Any] = cli_json(base, "status")
    return result
