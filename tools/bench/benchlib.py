"""What the benchmarks under tools/bench share: argument ranges, goals in the JSON line,
the commit measured, and child processes that die with the benchmark."""

from __future__ import annotations

import argparse
import ctypes
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class BenchError(Exception):
    """Something a benchmark cannot go on with; the message says what and where."""


def notes(name: str) -> Callable[[str], None]:
    """A progress printer for benchmark `name` (stderr: stdout carries the JSON line)."""

    def note(message: str) -> None:
        print(f"{name}: {message}", file=sys.stderr, flush=True)

    return note


def run(main: Callable[[], None], name: str) -> None:
    """Run a benchmark's main; a BenchError ends it with one line and a failing status."""
    try:
        main()
    except BenchError as exc:
        raise SystemExit(f"{name}: {exc}") from None


def goal(value: float, want: str, met: bool) -> dict[str, Any]:
    return {"value": round(value, 3), "want": want, "met": met}


def bounded(kind: Callable[[str], Any], low: float, high: float) -> Callable[[str], Any]:
    """An argparse type: `kind(text)` within low..high."""

    def parse(text: str) -> Any:
        value = kind(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not in {low:g}..{high:g}")
        return value

    return parse


def commit_info() -> dict[str, Any]:
    """The commit measured, and whether netaccess/ on disk differs from it (the servers run
    what is on disk)."""
    changed = _git("status", "--porcelain", "--untracked-files=no", "--", "netaccess")
    return {
        "netaccess_commit": _git("rev-parse", "--short", "HEAD") or None,
        "netaccess_changed_since_commit": None if changed is None else bool(changed),
    }


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:
    """In a child, before exec: a SIGTERM when the benchmark dies, even by SIGKILL, so no
    server outlives it."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
