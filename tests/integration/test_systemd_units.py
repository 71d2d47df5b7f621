"""The systemd units, sysusers.d and tmpfiles.d files in systemd/, checked offline with systemd's
own tools (Debian package `systemd`, installed by tools/bootstrap): the exposure score of
`systemd-analyze security --offline=true` (<= 2.5 for each unit), `systemd-analyze verify`,
and that sysusers.d and tmpfiles.d create what the units rely on, in a throwaway root.

No running systemd is needed. Only the tmpfiles ownership check needs root (chown).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from netaccess.config import default_config

REPO = Path(__file__).resolve().parents[2]
SYSTEMD = REPO / "systemd"
DAEMON_UNIT = SYSTEMD / "netaccessd.service"
ENFORCER_UNIT = SYSTEMD / "netaccess-enforcer.service"
UNITS = [DAEMON_UNIT, ENFORCER_UNIT]
SYSUSERS = SYSTEMD / "netaccess.sysusers"
TMPFILES = SYSTEMD / "netaccess.tmpfiles"
MAX_EXPOSURE = 2.5  # STANDARDS.md, Appliance: systemd-networkd scores 2.8
TIMEOUT = 60


def _tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/bin:/bin:/usr/sbin:/sbin")
    if path is None:
        pytest.skip(f"{name} is missing: run tools/bootstrap (it installs Debian's systemd)")
    return path


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def _directives(unit: Path) -> dict[str, list[str]]:
    """Section.Key -> every value assigned, in order (systemd keys may repeat)."""
    found: dict[str, list[str]] = {}
    section = ""
    for raw in unit.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return found


def _last(directives: dict[str, list[str]], key: str) -> str | None:
    values = directives.get(key)
    return values[-1] if values else None


def _is_yes(value: str | None) -> bool:
    return value is not None and value.lower() in ("yes", "true", "on", "1")


# --- exposure score -------------------------------------------------------------------------


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_exposure_score_is_at_most_2_5(unit: Path) -> None:
    analyze = _tool("systemd-analyze")
    out = _run(analyze, "security", "--offline=true", "--no-pager", unit)
    assert out.returncode == 0, out.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", out.stdout)
    assert match, f"no overall exposure level in:\n{out.stdout}\n{out.stderr}"
    score = float(match.group(1))
    flagged = [line for line in out.stdout.splitlines() if line.startswith("✗")]
    assert score <= MAX_EXPOSURE, f"{unit.name} scores {score}:\n" + "\n".join(flagged)


# --- verify ---------------------------------------------------------------------------------


def test_units_verify_cleanly(tmp_path: Path) -> None:
    """`systemd-analyze verify` in a throwaway root: this machine's unit directory (for the
    targets and services the units name) plus ours, and stand-ins for the two executables, which
    verify requires to exist. Any warning about our units (unknown key, bad value) fails."""
    analyze = _tool("systemd-analyze")
    candidates = [Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")]
    system_units = next((d for d in candidates if (d / "sysinit.target").exists()), None)
    if system_units is None:
        pytest.skip("no systemd unit directory to resolve the units' dependencies against")
    root = tmp_path / "root"
    unit_dir = root / "usr/lib/systemd/system"
    shutil.copytree(system_units, unit_dir, symlinks=True)
    for unit in UNITS:
        shutil.copy(unit, unit_dir / unit.name)
    for unit in UNITS:
        for exec_start in _directives(unit)["Service.ExecStart"]:
            binary = root / exec_start.split()[0].lstrip("/")
            binary.parent.mkdir(parents=True, exist_ok=True)
            binary.write_text("#!/bin/sh\n")
            binary.chmod(0o755)
    out = _run(
        analyze,
        "verify",
        "--man=no",
        "--recursive-errors=no",
        f"--root={root}",
        *(unit.name for unit in UNITS),
    )
    ours = [line for line in out.stderr.splitlines() if any(u.name in line for u in UNITS)]
    assert out.returncode == 0 and not ours, out.stderr


# --- what the units promise -------------------------------------------------------------------


def test_enforcer_holds_exactly_the_three_network_capabilities() -> None:
    unit = _directives(ENFORCER_UNIT)
    caps = {"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_NET_BIND_SERVICE"}
    assert set((_last(unit, "Service.CapabilityBoundingSet") or "").split()) == caps
    if _last(unit, "Service.User") not in (None, "root", "0"):
        # Not root: the capabilities must be ambient, so the `nft -f` child gets them too.
        assert set((_last(unit, "Service.AmbientCapabilities") or "").split()) == caps
    assert not _is_yes(_last(unit, "Service.PrivateUsers")), "capabilities need the host userns"
    assert not _is_yes(_last(unit, "Service.PrivateNetwork")), "it enforces in the host netns"
    # A socket stays in its creator's cgroup: an IP firewall on this unit would drop the traffic
    # of the listeners it hands to netaccessd.
    assert "Service.IPAddressDeny" not in unit
    families = set((_last(unit, "Service.RestrictAddressFamilies") or "").split())
    assert {"AF_UNIX", "AF_NETLINK", "AF_PACKET", "AF_INET", "AF_INET6"} <= families


def test_daemon_holds_no_capability_and_cannot_make_raw_sockets() -> None:
    unit = _directives(DAEMON_UNIT)
    assert _last(unit, "Service.CapabilityBoundingSet") == ""
    assert _last(unit, "Service.AmbientCapabilities") == ""
    assert _is_yes(_last(unit, "Service.NoNewPrivileges"))
    assert _last(unit, "Service.User") == "netaccess"
    families = set((_last(unit, "Service.RestrictAddressFamilies") or "").split())
    assert families and not families & {"AF_PACKET", "AF_NETLINK"}
    after = " ".join(unit.get("Unit.After", [])).split()
    assert ENFORCER_UNIT.name in after


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_notify_with_watchdog_and_restart(unit: Path) -> None:
    directives = _directives(unit)
    assert _last(directives, "Service.Type") == "notify"
    assert _last(directives, "Service.WatchdogSec") not in (None, "", "0")
    assert _last(directives, "Service.Restart") == "on-failure"
    exec_start = _last(directives, "Service.ExecStart") or ""
    assert exec_start.endswith("--config /etc/netaccess/appliance.toml")


def test_units_agree_with_the_default_config_paths() -> None:
    """The runtime directory the units open up and tmpfiles.d creates holds both sockets the
    code uses by default; the state directory is the code's state_dir."""
    config = default_config()
    daemon = _directives(DAEMON_UNIT)
    run_dir = Path("/run/netaccess")
    assert config.daemon.control_socket.parent == run_dir
    assert config.enforcement.enforcer_socket.parent == run_dir
    state_directory = _last(daemon, "Service.StateDirectory") or ""
    assert config.daemon.state_dir == Path("/var/lib", state_directory)
    assert config.daemon.user == _last(daemon, "Service.User")
    assert config.daemon.admin_group == "netaccess-admin"
    for unit in UNITS:
        assert str(run_dir) in _directives(unit)["Service.ReadWritePaths"]
    assert re.search(rf"^d\s+{re.escape(str(run_dir))}\s", TMPFILES.read_text(), re.M)


# --- sysusers.d and tmpfiles.d ------------------------------------------------------------------


def _sysusers_root(tmp_path: Path) -> Path:
    sysusers = _tool("systemd-sysusers")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    out = _run(sysusers, f"--root={root}", "--dry-run", SYSUSERS)
    assert out.returncode == 0, out.stderr
    out = _run(sysusers, f"--root={root}", SYSUSERS)
    assert out.returncode == 0, out.stderr
    return root


def _entries(path: Path) -> dict[str, list[str]]:
    return {line.split(":")[0]: line.split(":") for line in path.read_text().splitlines()}


def test_sysusers_creates_the_users_and_groups(tmp_path: Path) -> None:
    root = _sysusers_root(tmp_path)
    users = _entries(root / "etc/passwd")
    groups = _entries(root / "etc/group")
    assert {"netaccess", "netaccess-admin"} <= groups.keys()
    gid = {name: entry[2] for name, entry in groups.items()}
    daemon = users["netaccess"]
    assert daemon[3] == gid["netaccess"]
    assert daemon[5] == "/var/lib/netaccess"
    assert daemon[6].endswith("nologin")
    # The daemon joins the admin group so it can hand its control socket to that group.
    assert "netaccess" in groups["netaccess-admin"][3].split(",")
    enforcer_user = _last(_directives(ENFORCER_UNIT), "Service.User")
    if enforcer_user not in (None, "root"):
        assert users[enforcer_user][3] == gid["netaccess"]
        assert users[enforcer_user][6].endswith("nologin")


def test_tmpfiles_parses_against_those_users(tmp_path: Path) -> None:
    """--clean with no ages changes nothing but parses every line and resolves every user and
    group against the root's /etc (systemd 252's tmpfiles has no --dry-run)."""
    tmpfiles = _tool("systemd-tmpfiles")
    root = _sysusers_root(tmp_path)
    out = _run(tmpfiles, f"--root={root}", "--clean", TMPFILES)
    assert out.returncode == 0 and not out.stderr, out.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="systemd-tmpfiles --create must chown: needs root")
def test_tmpfiles_creates_the_shared_runtime_directory(tmp_path: Path) -> None:
    tmpfiles = _tool("systemd-tmpfiles")
    root = _sysusers_root(tmp_path)
    out = _run(tmpfiles, f"--root={root}", "--create", TMPFILES)
    assert out.returncode == 0, out.stderr
    users = _entries(root / "etc/passwd")
    groups = _entries(root / "etc/group")
    enforcer_user = _last(_directives(ENFORCER_UNIT), "Service.User") or "root"
    enforcer_uid = 0 if enforcer_user == "root" else int(users[enforcer_user][2])
    run_dir = (root / "run/netaccess").stat()
    # The enforcer owns it (it has no CAP_DAC_OVERRIDE), netaccessd writes through the group,
    # admins may only traverse it, and the sticky bit keeps each socket its owner's.
    assert (run_dir.st_uid, run_dir.st_gid) == (enforcer_uid, int(groups["netaccess"][2]))
    assert run_dir.st_mode & 0o7777 == 0o1771
    etc_dir = (root / "etc/netaccess").stat()
    assert (etc_dir.st_uid, etc_dir.st_gid) == (0, int(groups["netaccess"][2]))
    assert etc_dir.st_mode & 0o7777 == 0o750
