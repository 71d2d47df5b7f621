"""Driving a lab appliance the way an admin does: a config file and the real `appliance` CLI."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
APPLIANCE = [str(REPO / ".venv" / "bin" / "appliance")]


def write_config(tmp_path: Path) -> Path:
    config = tmp_path / "appliance.toml"
    config.write_text(
        f"""
[daemon]
state_dir = "{tmp_path / "state"}"
control_socket = "{tmp_path / "control.sock"}"
shutdown_grace = 5.0

[interfaces]
access = ["acc0"]
upstream = ["up0"]

[detection]
malformed_log_interval = 1.0
"""
    )
    return config


def cli(tmp_path: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*APPLIANCE, "--socket", str(tmp_path / "control.sock"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=check,
    )


def listed(tmp_path: Path) -> list[dict[str, Any]]:
    out = cli(tmp_path, "endpoints", "list", "--json")
    result: list[dict[str, Any]] = json.loads(out.stdout)
    return result


def status(tmp_path: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(cli(tmp_path, "status", "--json").stdout)
    return result
