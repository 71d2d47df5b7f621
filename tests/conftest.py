"""Test-wide setup: the repo root on sys.path (for `tools.labnet`), and integration tests
skipped, with the reason, where network namespaces cannot be built."""

from __future__ import annotations

import functools
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


@functools.cache
def integration_unavailable() -> str | None:
    """Why integration tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "integration tests need root (they build network namespaces); run tools/test as root"
    from tools.labnet.command import missing_tools

    missing = missing_tools()
    if missing:
        return f"integration tests need {', '.join(missing)}; run tools/bootstrap"
    probe = f"na-probe-{secrets.token_hex(3)}"
    try:
        made = subprocess.run(
            ["ip", "netns", "add", probe], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`ip netns` is unusable here: {exc}"
    if made.returncode != 0:
        return f"`ip netns add` is unusable here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True, check=False)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    integration = [item for item in items if item.get_closest_marker("integration")]
    if not integration:
        return
    reason = integration_unavailable()
    if reason is not None:
        for item in integration:
            item.add_marker(pytest.mark.skip(reason=reason))
