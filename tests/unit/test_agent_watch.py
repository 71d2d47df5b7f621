"""Local change signals: inotify on watched directories under a made-up root (the watched
names reported once a burst settles, other names not, a missing directory left out), and
the nftables multicast group heard from inside a network namespace of its own."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from netaccess.agent.watch import ChangeWatcher

REPO = Path(__file__).resolve().parents[2]
DPKG = ("/var/lib/dpkg", frozenset({"status"}), "installed packages")
CLAMAV = ("/var/lib/clamav", None, "antivirus signatures")
SOON = 10.0  # the most a test waits for a signal it expects; wait() returns when it comes
NOTHING = 0.5  # how long a test listens for a signal it expects not to come


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "var/lib/dpkg").mkdir(parents=True)
    (tmp_path / "var/lib/clamav").mkdir(parents=True)
    return tmp_path


def watcher(root: Path, *watches: tuple[str, frozenset[str] | None, str]) -> ChangeWatcher:
    return ChangeWatcher(watches or (DPKG, CLAMAV), nftables=False, root=root)


def test_writing_a_watched_file_is_reported(root: Path) -> None:
    with watcher(root) as watch:
        assert watch.unavailable == []
        (root / "var/lib/dpkg/status").write_text("Package: openssl\n")
        assert watch.wait(SOON) == ["installed packages"]


def test_renaming_onto_a_watched_name_is_reported(root: Path) -> None:
    new = root / "var/lib/dpkg/status-new"
    new.write_text("Package: openssl\n")
    with watcher(root) as watch:
        os.replace(new, root / "var/lib/dpkg/status")
        assert watch.wait(SOON) == ["installed packages"]


def test_an_unwatched_name_in_a_watched_directory_is_not_reported(root: Path) -> None:
    with watcher(root) as watch:
        (root / "var/lib/dpkg/lock").write_text("")
        assert watch.wait(NOTHING) == []


def test_any_name_counts_where_the_watch_names_none(root: Path) -> None:
    with watcher(root) as watch:
        (root / "var/lib/clamav/daily.cvd").write_bytes(b"signatures")
        assert watch.wait(SOON) == ["antivirus signatures"]


def test_a_burst_of_signals_is_one_answer_naming_each_change_once(root: Path) -> None:
    with watcher(root) as watch:
        for _ in range(3):
            (root / "var/lib/dpkg/status").write_text("Package: openssl\n")
        (root / "var/lib/clamav/main.cvd").write_bytes(b"signatures")
        changes = watch.wait(SOON)
        assert sorted(changes) == ["antivirus signatures", "installed packages"]
        assert watch.wait(NOTHING) == []  # all of the burst was read


def test_a_missing_directory_is_named_unavailable_and_the_rest_still_work(root: Path) -> None:
    ufw = ("/etc/ufw", frozenset({"ufw.conf"}), "firewall")
    with watcher(root, ufw, DPKG) as watch:
        assert watch.unavailable == [f"firewall ({root}/etc/ufw): No such file or directory"]
        (root / "var/lib/dpkg/status").write_text("")
        assert watch.wait(SOON) == ["installed packages"]


def test_waiting_with_nothing_happening_returns_nothing(root: Path) -> None:
    with watcher(root) as watch:
        assert watch.wait(NOTHING) == []
        assert watch.wait(0) == []


def test_a_watcher_without_any_signal_just_waits(root: Path) -> None:
    watch = ChangeWatcher((), nftables=False, root=root)
    watch.close()
    assert watch.wait(0.1) == []
    watch.close()  # closing twice is harmless


# -- the nftables ruleset, in a network namespace of the test's own

CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from netaccess.agent.watch import ChangeWatcher
with ChangeWatcher(watches=(), nftables=True) as watch:
    print("ready" if not watch.unavailable else watch.unavailable, flush=True)
    print(",".join(watch.wait(float(sys.argv[2]))), flush=True)
"""


def namespaces_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "hearing nftables changes needs root (a network namespace of its own)"
    missing = [tool for tool in ("ip", "nft") if shutil.which(tool) is None]
    if missing:
        return f"needs {', '.join(missing)}"
    return None


@pytest.mark.skipif(namespaces_unavailable() is not None, reason=str(namespaces_unavailable()))
def test_a_ruleset_change_in_the_namespace_is_reported_as_firewall() -> None:
    namespace = f"na-{secrets.token_hex(4)}"
    made = subprocess.run(
        ["ip", "netns", "add", namespace], capture_output=True, text=True, check=False
    )
    if made.returncode != 0:
        pytest.skip(f"`ip netns add` is unusable here: {made.stderr.strip()}")
    child: subprocess.Popen[str] | None = None
    try:
        child = subprocess.Popen(
            ["ip", "netns", "exec", namespace, sys.executable, "-c", CHILD, str(REPO), str(SOON)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        subprocess.run(
            ["ip", "netns", "exec", namespace, "nft", "add", "table", "inet", "t"],
            check=True,
            capture_output=True,
        )
        out, err = child.communicate(timeout=SOON + 20)
        assert out.strip() == "firewall", err
    finally:
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()
        subprocess.run(["ip", "netns", "delete", namespace], capture_output=True, check=False)
