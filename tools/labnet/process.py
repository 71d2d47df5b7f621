"""Long-running lab processes (servers, DHCP clients, the daemon) started inside a namespace.

Each is tracked by a pidfile in the workdir, so a later `tools/lab` invocation finds it again;
a PID counts as ours only while it is alive in the expected namespace (guards against reuse).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from tools.labnet.command import namespace_inode
from tools.labnet.errors import LabError


def alive_in_namespace(pid: int, namespace: str) -> bool:
    """True when `pid` runs (not a zombie) and its network namespace is `namespace`."""
    inode = namespace_inode(namespace)
    if inode is None or not is_running(pid):
        return False
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino == inode
    except OSError:
        return False


def is_running(pid: int) -> bool:
    """True when `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The command name is in parentheses and may itself contain spaces or parentheses.
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def signal_quietly(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def wait_gone(pids: Iterable[int], timeout: float) -> set[int]:
    """Wait until every PID has exited; return those still running after `timeout`."""
    remaining = set(pids)
    deadline = time.monotonic() + timeout
    while remaining:
        remaining = {pid for pid in remaining if is_running(pid)}
        if not remaining or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    return remaining


def tail(path: Path, lines: int = 20, since: int = 0) -> str:
    """The last `lines` lines of a log file from byte offset `since`, or a note that there
    are none."""
    try:
        with path.open("rb") as log:
            log.seek(since)
            text = log.read().decode(errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    chosen = text.splitlines()[-lines:]
    return "\n".join(chosen) if chosen else f"({path} is empty)"


class ProcessTable:
    """Named background processes of one lab, each bound to one namespace."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        # Popen handles of the processes this object started: needed to reap them and to
        # learn their exit codes. Processes started by another invocation have only a pidfile.
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    def pidfile(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def start(
        self,
        name: str,
        namespace: str,
        argv: Sequence[str],
        log: Path,
        env: Mapping[str, str] | None = None,
    ) -> int:
        """Start `argv` in `namespace` with stdout and stderr appended to `log`; return its PID.

        `ip netns exec` execs the command in place, so the PID is the command's own. The
        process gets its own session: it outlives the CLI and ignores the terminal's Ctrl-C.
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        full = ["ip", "netns", "exec", namespace, *argv]
        with log.open("ab") as out:
            try:
                child = subprocess.Popen(
                    full,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=dict(env) if env is not None else None,
                    start_new_session=True,
                )
            except OSError as exc:
                raise LabError(f"{shlex.join(full)}: {exc}") from exc
        self._children[name] = child
        self.pidfile(name).write_text(f"{child.pid}\n")
        return child.pid

    def pid(self, name: str, namespace: str) -> int | None:
        """PID of process `name` if it is alive in `namespace`, else None."""
        child = self._children.get(name)
        if child is not None:
            # Our own child: its handle is the truth. (Checking its namespace would race with
            # `ip netns exec`, which is still in the host's namespace until it calls setns.)
            return child.pid if child.poll() is None else None
        try:
            pid = int(self.pidfile(name).read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None
        return pid if alive_in_namespace(pid, namespace) else None

    def exit_code(self, name: str) -> int | None:
        """Exit code of a process this object started and which has exited, else None."""
        child = self._children.get(name)
        return None if child is None else child.poll()

    def stop(self, name: str, namespace: str, timeout: float) -> tuple[int | None, bool]:
        """SIGTERM, wait up to `timeout`, then SIGKILL.

        Returns (exit code, killed): the exit code is known only for processes this object
        started (negative: killed by that signal, as in subprocess); None when it was not
        running or was started elsewhere.
        """
        child = self._children.get(name)
        pid = self.pid(name, namespace)
        killed = False
        if pid is not None:
            signal_quietly(pid, signal.SIGTERM)
            if wait_gone_or_reaped(pid, child, timeout):
                signal_quietly(pid, signal.SIGKILL)
                wait_gone_or_reaped(pid, child, 5.0)
                killed = True
        self.pidfile(name).unlink(missing_ok=True)
        code = None if child is None else child.poll()
        return code, killed

    def reap(self) -> None:
        """Collect exit statuses of finished children so none lingers as a zombie."""
        for child in self._children.values():
            child.poll()

    def forget(self) -> None:
        self.reap()
        self._children.clear()


def wait_gone_or_reaped(pid: int, child: subprocess.Popen[bytes] | None, timeout: float) -> bool:
    """Wait for `pid` to exit; True when it is still running after `timeout`."""
    if child is not None and child.pid == pid:
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            return True
        return False
    return bool(wait_gone([pid], timeout))
