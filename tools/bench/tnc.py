"""Benchmark: whole PT-TLS posture sessions per second against netaccess's posture server
(netaccess.io.posture, the OS IMV asking for Installed Packages, reports kept in a SQLite
file) on loopback, from N concurrent agent clients (netaccess.agent.tnc_client over trio TLS).

Run `.venv/bin/python tools/bench/tnc.py` (root not needed). One JSON line on stdout, progress
on stderr. The server (tnc_peers/server.py) runs on the first CPU of our affinity set and the
load generator (tnc_peers/load.py, one trio process) on the second, each pinned with taskset
(`--pinning unpinned` lets the scheduler place both). A session: TCP connect, TLS handshake,
PT-TLS version, SASL mechanisms (none), a CDATA with the OS attributes, the OS IMV's Attribute
Request answered with 700 Debian-style packages (~18 KB), RESULT, CLOSE. A warm-up, then
rounds bounded by --sessions and --seconds; figures are the rounds' medians.
`--profile SECONDS` adds a round, not counted, with py-spy sampling the server.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

from benchlib import (  # noqa: E402
    BenchError,
    bounded,
    commit_info,
    die_with_parent,
    free_port,
    goal,
    notes,
    py_spy,
    py_spy_record,
    run,
    summarise_profile,
)

PEERS = Path(__file__).resolve().parent / "tnc_peers"
sys.path.insert(0, str(REPO))

GOAL_SESSIONS_PER_S = 300.0  # on 2 cores: the server on one, the load generator on the other

START_SECONDS = 20.0  # the server must listen this soon after starting
STOP_SECONDS = 10.0  # and stop this soon after SIGTERM (it writes queued reports first)
REPORT_SETTLE_SECONDS = 1.0  # reports are written up to 0.1 s after their session
LOAD_SLACK_SECONDS = 60.0  # beyond the rounds' own bounds: start-up, last sessions, timeouts
PROFILE_RATE = 250  # py-spy samples per second
PROFILE_TOP = 25
MAX_SECONDS = 20 * 60  # the whole run; each step has its own, smaller bound too


note = notes("tnc-bench")


# --- prerequisites ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cpus:
    taskset: str
    server: int
    load: int


def check_prerequisites(profile: bool) -> Cpus:
    missing = []
    if not Path("/proc/self/stat").exists():
        raise SystemExit("tnc-bench: needs Linux (/proc, CPU affinity)")
    taskset = shutil.which("taskset")
    if taskset is None:
        missing.append("taskset (apt-get install util-linux)")
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        missing.append(f"a second CPU (we may run on {cpus}): server and load need one each")
    if profile and py_spy() is None:
        missing.append(
            f"py-spy for --profile ({Path(sys.executable).parent / 'pip'} install py-spy)"
        )
    if missing:
        raise SystemExit("tnc-bench: cannot run, missing:\n  " + "\n  ".join(missing))
    assert taskset is not None
    return Cpus(taskset, cpus[0], cpus[1])


# --- the server -------------------------------------------------------------------------------


@dataclass(slots=True)
class Server:
    process: subprocess.Popen[bytes]
    port: int
    store: Path
    log: Path
    out: Path

    def log_tail(self, lines: int = 20) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def start_server(work: Path, cpus: Cpus, pinned: bool, cert: Path, key: Path) -> Server:
    port = free_port()
    ready = work / "ready"
    store = work / "posture.db"
    log, out = work / "server.log", work / "server.out"
    argv = [
        sys.executable,
        str(PEERS / "server.py"),
        *("--port", str(port), "--store", str(store), "--cert", str(cert), "--key", str(key)),
        *("--ready", str(ready)),
    ]
    if pinned:
        argv = [cpus.taskset, "-c", str(cpus.server), *argv]
    with log.open("wb") as err, out.open("wb") as stdout:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=err,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    server = Server(process, port, store, log, out)
    deadline = time.monotonic() + START_SECONDS
    while not ready.exists():
        if process.poll() is not None:
            raise BenchError(
                f"the server exited with status {process.returncode} on start:\n"
                + server.log_tail()
            )
        if time.monotonic() > deadline:
            stop_server(server)
            raise BenchError(
                f"the server not ready after {START_SECONDS:g} s:\n{server.log_tail()}"
            )
        time.sleep(0.05)
    return server


def stop_server(server: Server) -> dict[str, Any]:
    """Stop it (it writes the reports still queued first) and return its counters."""
    process = server.process
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(STOP_SECONDS)
    lines = server.out.read_text().splitlines() if server.out.exists() else []
    try:
        counters: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        counters = {}
    return counters


def stored_reports(store: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=10)) as db:
        (count,) = db.execute("SELECT count(*) FROM posture_reports").fetchone()
    return int(count)


# --- the load generator -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Load:
    clients: int
    sessions: int
    seconds: float
    rounds: int
    warmup_seconds: float
    packages: int


def run_load(
    server: Server, cpus: Cpus, pinned: bool, cert: Path, load: Load
) -> list[dict[str, Any]]:
    argv = [
        sys.executable,
        str(PEERS / "load.py"),
        *("--port", str(server.port), "--ca", str(cert)),
        *("--server-pid", str(server.process.pid), "--clients", str(load.clients)),
        *("--sessions", str(load.sessions), "--seconds", str(load.seconds)),
        *("--rounds", str(load.rounds), "--warmup-seconds", str(load.warmup_seconds)),
        *("--packages", str(load.packages)),
    ]
    if pinned:
        argv = [cpus.taskset, "-c", str(cpus.load), *argv]
    bound = (load.rounds * load.seconds) + load.warmup_seconds + LOAD_SLACK_SECONDS
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=bound)
    except subprocess.TimeoutExpired:
        raise BenchError(f"the load generator took over {bound:g} s") from None
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise BenchError(
            f"the load generator failed (status {done.returncode}):\n{done.stderr.strip()[-2000:]}"
        )
    if server.process.poll() is not None:
        raise BenchError(
            f"the server exited (status {server.process.returncode}) under load:\n"
            + server.log_tail()
        )
    return lines


def describe(line: dict[str, Any]) -> str:
    text = (
        f"round {line['round']}: {line['sessions']} sessions in {line['wall_s']:.1f} s = "
        f"{line['sessions_per_s']:,.0f}/s, p50 {line['latency_p50_ms']} ms, "
        f"p99 {line['latency_p99_ms']} ms, server CPU {line['server_process_cpu']:.2f}, "
        f"load CPU {line['load_process_cpu']:.2f}"
    )
    if line["errors"]:
        text += f", {line['errors']} errors: {line['error_samples'][:2]}"
    return text


# --- profile ----------------------------------------------------------------------------------


def profile_server(
    server: Server, cpus: Cpus, pinned: bool, cert: Path, load: Load, seconds: int, work: Path
) -> dict[str, Any]:
    """A round, not counted, with py-spy sampling the server: where its time goes."""
    raw = work / "profile.txt"
    # Blocking (py-spy pauses the server per sample): whole stacks, at a cost to this
    # round's figure, which is not counted.
    spy = py_spy_record(server.process.pid, seconds, PROFILE_RATE, raw, "--function")
    try:
        time.sleep(0.5)  # attached before the load starts
        extra = Load(load.clients, 1_000_000, seconds + 1, 1, 0, load.packages)
        lines = run_load(server, cpus, pinned, cert, extra)
        _, errors = spy.communicate(timeout=seconds + 30)
    finally:
        if spy.poll() is None:
            spy.kill()
            spy.wait()
    if spy.returncode != 0 or not raw.exists():
        raise BenchError(f"py-spy failed (status {spy.returncode}): {errors.strip()[-500:]}")
    summary = summarise_profile(raw.read_text(), PROFILE_TOP)
    summary["round"] = {
        k: lines[-1][k] for k in ("sessions", "sessions_per_s", "errors", "server_process_cpu")
    }
    return summary


# --- the report -------------------------------------------------------------------------------


def median(rounds: list[dict[str, Any]], key: str) -> Any:
    values = [r[key] for r in rounds if r[key] is not None]
    return round(statistics.median(values), 3) if values else None


def limited_by(rounds: list[dict[str, Any]], cpus: Cpus, pinned: bool) -> str:
    """Which side was saturated: the server's core, the load generator's, both or neither."""
    if not pinned:
        server = median(rounds, "server_process_cpu") >= 0.9
        return "server (one process, one core at most)" if server else "neither"
    server = statistics.median(r["core_busy"][str(cpus.server)] for r in rounds) >= 0.9
    load = statistics.median(r["core_busy"][str(cpus.load)] for r in rounds) >= 0.9
    if server and load:
        return "both"
    if server:
        return "server"
    return "load generator" if load else "neither"


def versions() -> dict[str, Any]:
    found: dict[str, Any] = {"python": platform.python_version()}
    for package in ("netaccess", "trio", "cryptography"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    found["openssl"] = ssl.OPENSSL_VERSION
    found.update(commit_info())
    return found


def _give_up(signum: int, frame: object) -> None:
    raise BenchError(f"stopped by {signal.Signals(signum).name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=bounded(int, 1, 1000), default=32, metavar="1..1000")
    parser.add_argument(
        "--sessions", type=bounded(int, 1, 100_000), default=3000, help="per round, at most"
    )
    parser.add_argument(
        "--seconds", type=bounded(float, 1, 120), default=20.0, help="per round, at most"
    )
    parser.add_argument("--rounds", type=bounded(int, 1, 10), default=3, metavar="1..10")
    parser.add_argument("--warmup-seconds", type=bounded(float, 0, 30), default=2.0)
    parser.add_argument("--packages", type=bounded(int, 0, 5000), default=700)
    parser.add_argument("--pinning", choices=("pinned", "unpinned"), default="pinned")
    parser.add_argument(
        "--profile",
        type=bounded(int, 0, 60),
        default=0,
        metavar="SECONDS",
        help="also sample the server with py-spy for a round of this long (not counted)",
    )
    args = parser.parse_args()
    cpus = check_prerequisites(bool(args.profile))
    pinned = args.pinning == "pinned"
    signal.signal(signal.SIGTERM, _give_up)
    signal.signal(signal.SIGALRM, _give_up)
    signal.alarm(MAX_SECONDS)  # a last bound on the whole run

    from netaccess.io.tls import self_signed

    load = Load(
        args.clients, args.sessions, args.seconds, args.rounds, args.warmup_seconds, args.packages
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tnc-bench-") as work_dir:
        work = Path(work_dir)
        cert, key = self_signed(work / "tls", "127.0.0.1")
        where = (
            f"server on CPU {cpus.server}, load generator on CPU {cpus.load}"
            if pinned
            else "server and load generator unpinned"
        )
        note(
            f"{args.rounds} rounds of at most {args.sessions} sessions / {args.seconds:g} s, "
            f"{args.clients} clients, {where}"
        )
        server = start_server(work, cpus, pinned, cert, key)
        profile: dict[str, Any] | None = None
        try:
            lines = run_load(server, cpus, pinned, cert, load)
            for line in lines:
                note(describe(line))
            time.sleep(REPORT_SETTLE_SECONDS)
            reports = stored_reports(server.store)
            store_bytes = sum(p.stat().st_size for p in work.glob("posture.db*") if p.is_file())
            if args.profile:
                note(f"profiling the server for {args.profile} s (a round not counted)")
                profile = profile_server(server, cpus, pinned, cert, load, args.profile, work)
        finally:
            time.sleep(REPORT_SETTLE_SECONDS)  # the last reports written before it stops
            counters = stop_server(server)

    warmups = [line for line in lines if line["round"] == "warmup"]
    rounds = [line for line in lines if line["round"] != "warmup"]
    if not rounds or any(r["sessions"] == 0 for r in rounds):
        raise BenchError(f"no sessions got through: {lines[-1]['error_samples']}")
    sessions_done = sum(line["sessions"] for line in lines)
    rate = float(median(rounds, "sessions_per_s"))
    goals = {
        "sessions_per_s": goal(rate, f">= {GOAL_SESSIONS_PER_S:g}", rate >= GOAL_SESSIONS_PER_S)
    }
    first = rounds[0]
    line = {
        "benchmark": "tnc",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "cpu_count": os.cpu_count(),
        "pinning": (
            {"server": cpus.server, "load_generator": cpus.load}
            if pinned
            else "none (the scheduler placed server and load generator)"
        ),
        "session": (
            "TCP connect + TLS handshake + PT-TLS version + SASL mechanisms (none) + CDATA (OS "
            "attributes) + SDATA (Attribute Request) + CDATA (Installed Packages) + RESULT + "
            "CLOSE; a report per session in a SQLite file"
        ),
        "server": "netaccess.io.posture.PostureServer, OsImv(request_packages=True), "
        "jsonlog at info, SQLite WAL store",
        "load": {
            "generator": "one trio process, netaccess.agent.tnc_client.report_posture",
            "clients": args.clients,
            "max_sessions_per_round": args.sessions,
            "max_seconds_per_round": args.seconds,
            "rounds": len(rounds),
            "warmup_sessions": sum(w["sessions"] for w in warmups),
        },
        "sessions_per_s": rate,
        "rounds_sessions_per_s": [r["sessions_per_s"] for r in rounds],
        "sessions_per_round": [r["sessions"] for r in rounds],
        "latency_p50_ms": median(rounds, "latency_p50_ms"),
        "latency_p99_ms": median(rounds, "latency_p99_ms"),
        "errors": sum(line["errors"] for line in lines),
        "error_samples": sorted({s for line in lines for s in line["error_samples"]})[:5],
        "server_process_cpu": median(rounds, "server_process_cpu"),
        "server_cpu_ms_per_session": median(rounds, "server_cpu_ms_per_session"),
        "load_process_cpu": median(rounds, "load_process_cpu"),
        "load_cpu_ms_per_session": median(rounds, "load_cpu_ms_per_session"),
        "core_busy": {
            cpu: round(statistics.median(r["core_busy"][cpu] for r in rounds), 3)
            for cpu in first["core_busy"]
        },
        "steal": max(max(r["core_steal"].values()) for r in rounds),
        "limited_by": limited_by(rounds, cpus, pinned),
        "tls": {"version": first["tls_version"], "cipher": first["tls_cipher"]},
        "packages": first["packages"],
        "package_attribute_bytes": first["package_attribute_bytes"],
        "reports": {
            "sessions_completed": sessions_done,
            "stored": reports,
            "server_counters": counters,
            "store_bytes_per_report": round(store_bytes / reports) if reports else None,
        },
        "server_profile": profile,
        "goals": goals,
        "all_goals_met": all(g["met"] for g in goals.values()),
        "versions": versions(),
        "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(line))


if __name__ == "__main__":
    run(main, "tnc-bench")
