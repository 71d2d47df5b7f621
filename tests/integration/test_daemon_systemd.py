"""netaccessd under the sd_notify protocol, with the lab standing in for systemd."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest

from tests.integration.appliance_cli import REPO, cli, write_config

pytestmark = pytest.mark.integration


def test_ready_is_sent_only_when_the_control_socket_already_answers(lab_factory: Any) -> None:
    lab = lab_factory(endpoints=1)
    base = lab.workdir / "appliance"
    lab.up(config=write_config(base), dhcp_clients=False)
    # start_appliance returned on READY=1: the very next connection must be served.
    assert cli(base, "status", "--json").returncode == 0
    assert lab.notify_messages[0] == "READY=1"


def test_watchdog_pings_follow_when_watchdog_usec_is_set(lab_factory: Any) -> None:
    lab = lab_factory(endpoints=1)
    lab.up(appliance=False, dhcp_clients=False)
    config = write_config(lab.workdir / "appliance")
    lab.start_appliance(config=config, extra_env={"WATCHDOG_USEC": "200000"})
    deadline = time.monotonic() + 10
    while lab.notify_messages.count("WATCHDOG=1") < 3:
        assert time.monotonic() < deadline, f"too few watchdog pings: {lab.notify_messages}"
        time.sleep(0.05)


def test_sigterm_drains_and_says_stopping(lab_factory: Any) -> None:
    lab = lab_factory(endpoints=1)
    base = lab.workdir / "appliance"
    lab.up(config=write_config(base), dhcp_clients=False)
    assert lab.stop_appliance() == 0
    assert "STOPPING=1" in lab.notify_messages
    assert not (base / "run" / "control.sock").exists()
    log_lines = [
        json.loads(line)
        for line in lab.appliance_log.read_text().splitlines()
        if line.startswith("{")
    ]
    assert [rec["msg"] for rec in log_lines][-2:] == ["shutting down", "stopped"]


def test_logs_are_json_lines_on_stderr(lab_factory: Any) -> None:
    lab = lab_factory(endpoints=1)
    lab.up(config=write_config(lab.workdir / "appliance"), dhcp_clients=False)
    records = [json.loads(line) for line in lab.appliance_log.read_text().splitlines()]
    assert {"ts", "level", "logger", "msg"} <= records[0].keys()


def test_a_missing_access_interface_stops_the_daemon_with_a_clear_error(lab_factory: Any) -> None:
    lab = lab_factory(endpoints=1)
    lab.up(appliance=False, dhcp_clients=False)
    config = write_config(lab.workdir / "appliance")
    config.write_text(config.read_text().replace('access = ["acc0"]', 'access = ["nope0"]'))
    lab.start_enforcer(config)
    daemon = REPO / ".venv" / "bin" / "netaccessd"
    out = subprocess.run(
        ["ip", "netns", "exec", lab.app_ns, str(daemon), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 1
    assert "interfaces.access: access interface 'nope0' does not exist" in out.stderr
