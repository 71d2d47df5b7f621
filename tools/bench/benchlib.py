"""What the benchmarks under tools/bench share: argument ranges, goals in the JSON line,
the commit measured, child processes that die with the benchmark, and py-spy profiles."""

from __future__ import annotations

import argparse
import collections
import ctypes
import shutil
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


# --- py-spy --------------------------------------------------------------------------------


def py_spy() -> str | None:
    """py-spy beside our interpreter (the venv's), else on PATH; None when missing."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def py_spy_record(
    pid: int, seconds: int, rate: int, out: Path, *options: str
) -> subprocess.Popen[str]:
    """py-spy sampling process `pid` for `seconds` into `out` (raw, collapsed stacks)."""
    tool = py_spy()
    if tool is None:
        raise BenchError(
            f"profiling needs py-spy ({Path(sys.executable).parent / 'pip'} install py-spy)"
        )
    return subprocess.Popen(
        [
            tool,
            "record",
            *("-p", str(pid), "-d", str(seconds), "-r", str(rate)),
            *("-f", "raw", "-o", str(out), *options),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def summarise_profile(text: str, top: int = 25) -> dict[str, Any]:
    """py-spy's raw (collapsed) stacks → the functions with the largest share of samples,
    inclusive (anywhere on the stack above trio's scheduler) and self (on top)."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_short(frame) for frame in stack.split(";")]
        # The scheduler and what lies under it are on every stack: start above it.
        for at, frame in enumerate(frames):
            if frame.startswith("unrolled_run "):
                frames = frames[at + 1 :]
                break
        for frame in set(frames):
            inclusive[frame] += count
        if frames:
            own[frames[-1]] += count
    share = 100.0 / total if total else 0.0
    return {
        "samples": total,
        "inclusive_pct": [[f, round(n * share, 1)] for f, n in inclusive.most_common(top)],
        "self_pct": [[f, round(n * share, 1)] for f, n in own.most_common(top)],
    }


def _short(frame: str) -> str:
    """'send_all (trio/_ssl.py)' with the path cut to its last two parts."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path = where.split(":")[0]
    parts = Path(path).parts
    return f"{name} ({'/'.join(parts[-2:])})" if parts else name
