"""Benchmark peer: the posture load generator of tools/bench/tnc.py. N concurrent clients in
one trio process, each running whole PT-TLS sessions one after another with the agent's own
client (report_posture over trio TLS): TCP connect, TLS handshake, PT-TLS version, SASL
mechanisms (none), a CDATA with the OS attributes, the Installed Packages answer to the OS
IMV's Attribute Request, RESULT, CLOSE.

Prints one JSON line per round on stdout (the warm-up first, marked): sessions, latencies,
errors, and the CPU the server (by pid, from /proc) and this process used in the round."""

from __future__ import annotations

import argparse
import collections
import json
import os
import ssl
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import trio

from netaccess.agent.os_facts import (
    SYNTHETIC_OS,
    HeldAttributes,
    os_attributes,
    pre_encoded,
    synthetic_packages,
    value_bytes,
)
from netaccess.agent.tnc_client import OS, Answer, Component, report_posture
from netaccess.proto.tnc.pa import ATTRIBUTE_HEADER_SIZE, ForwardingState, PaAttribute
from netaccess.proto.tnc.pb import AssessmentResult

HOST = "127.0.0.1"
SESSION_TIMEOUT = 30.0  # one session on loopback; far above any latency we expect
ERROR_SAMPLES = 5  # distinct error texts kept per round


class UnexpectedOutcome(Exception):
    """The server decided something other than what this load must get (compliant)."""


@dataclass(frozen=True, slots=True)
class Session:
    """What every session sends: the OS component's first message and the held answers."""

    components: dict[Component, tuple[PaAttribute, ...]]
    answer: Answer
    packages: int
    package_attribute_bytes: int  # with its 12-byte attribute header


@dataclass(slots=True)
class Tally:
    started: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    tls_version: str | None = None
    tls_cipher: str | None = None


def session_plan(packages: int) -> Session:
    identity = SYNTHETIC_OS["debian"]
    installed = synthetic_packages(packages)
    # Encoded once: the clients then copy 18 KB per session instead of re-encoding 700
    # packages, so the load generator's own cost stays small; the bytes sent are the same.
    held = HeldAttributes({OS: [pre_encoded(installed)]})
    return Session(
        components={OS: os_attributes(identity, forwarding=ForwardingState.DISABLED)},
        answer=held,
        packages=packages,
        package_attribute_bytes=ATTRIBUTE_HEADER_SIZE + len(value_bytes(installed)),
    )


def client_context(ca: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


async def one_session(port: int, context: ssl.SSLContext, plan: Session, tally: Tally) -> None:
    started = time.perf_counter()
    with trio.fail_after(SESSION_TIMEOUT):
        tcp = await trio.open_tcp_stream(HOST, port)
        stream = trio.SSLStream(tcp, context, server_hostname=HOST)
        try:
            outcome = await report_posture(stream, plan.components, answer=plan.answer)
            if tally.tls_version is None:
                tally.tls_version = stream.version()
                cipher = stream.cipher()
                tally.tls_cipher = cipher[0] if cipher else None
        finally:
            await trio.aclose_forcefully(stream)
    if outcome.result != AssessmentResult.COMPLIANT or outcome.rounds != 2:
        raise UnexpectedOutcome(
            f"result {int(outcome.result)} after {outcome.rounds} rounds, "
            "expected compliant after 2 (the packages asked for and sent)"
        )
    tally.latencies.append(time.perf_counter() - started)


async def run_round(
    port: int,
    context: ssl.SSLContext,
    plan: Session,
    clients: int,
    sessions: int,
    seconds: float,
    max_errors: int,
) -> tuple[Tally, float]:
    tally = Tally()
    started = time.perf_counter()
    deadline = started + seconds

    async def client() -> None:
        while (
            tally.started < sessions
            and time.perf_counter() < deadline
            and sum(tally.errors.values()) < max_errors
        ):
            tally.started += 1
            try:
                await one_session(port, context, plan, tally)
            except Exception as exc:
                text = f"{type(exc).__name__}: {exc}"[:200]
                tally.errors[text] += 1

    async with trio.open_nursery() as nursery:
        for _ in range(clients):
            nursery.start_soon(client)
    return tally, time.perf_counter() - started


# --- /proc ----------------------------------------------------------------------------------


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def core_ticks() -> dict[int, tuple[int, int, int]]:
    """(busy, stolen, total) clock ticks per CPU since boot, from /proc/stat."""
    ticks: dict[int, tuple[int, int, int]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            # user nice system idle iowait irq softirq steal (guest time is inside user)
            numbers = [int(value) for value in values[:8]]
            idle = numbers[3] + numbers[4]
            ticks[int(name[3:])] = (sum(numbers) - idle - numbers[7], numbers[7], sum(numbers))
    return ticks


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(args: argparse.Namespace, plan: Session, label: str, seconds: float) -> dict[str, Any]:
    context = client_context(args.ca)
    server_before = process_cpu_seconds(args.server_pid)
    own_before = time.process_time()
    cores_before = core_ticks()
    tally, wall = trio.run(
        run_round,
        args.port,
        context,
        plan,
        args.clients,
        args.sessions,
        seconds,
        max(50, args.sessions // 10),
    )
    own = time.process_time() - own_before
    server = process_cpu_seconds(args.server_pid) - server_before
    cores_after = core_ticks()
    done = len(tally.latencies)
    busy = {}
    steal = {}
    for cpu, (b1, s1, t1) in cores_after.items():
        b0, s0, t0 = cores_before.get(cpu, (b1, s1, t1))
        total = max(t1 - t0, 1)
        busy[str(cpu)] = round((b1 - b0) / total, 3)
        steal[str(cpu)] = round((s1 - s0) / total, 3)
    return {
        "round": label,
        "sessions": done,
        "started": tally.started,
        "wall_s": round(wall, 3),
        "sessions_per_s": round(done / wall, 1) if wall > 0 else 0.0,
        "latency_p50_ms": round(percentile(tally.latencies, 0.50) * 1000, 2) if done else None,
        "latency_p99_ms": round(percentile(tally.latencies, 0.99) * 1000, 2) if done else None,
        "errors": sum(tally.errors.values()),
        "error_samples": [text for text, _ in tally.errors.most_common(ERROR_SAMPLES)],
        "server_process_cpu": round(server / wall, 3),
        "server_cpu_ms_per_session": round(server / done * 1000, 3) if done else None,
        "load_process_cpu": round(own / wall, 3),
        "load_cpu_ms_per_session": round(own / done * 1000, 3) if done else None,
        "core_busy": busy,
        "core_steal": steal,
        "tls_version": tally.tls_version,
        "tls_cipher": tally.tls_cipher,
        "packages": plan.packages,
        "package_attribute_bytes": plan.package_attribute_bytes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ca", type=Path, required=True)
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--sessions", type=int, default=3000, help="per round, at most")
    parser.add_argument("--seconds", type=float, default=20.0, help="per round, at most")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup-seconds", type=float, default=2.0)
    parser.add_argument("--packages", type=int, default=700)
    args = parser.parse_args()
    plan = session_plan(args.packages)
    rounds: list[tuple[str, float]] = []
    if args.warmup_seconds > 0:
        rounds.append(("warmup", args.warmup_seconds))
    rounds += [(str(n), args.seconds) for n in range(1, args.rounds + 1)]
    for label, seconds in rounds:
        line = measure(args, plan, label, seconds)
        print(json.dumps(line), flush=True)
        if line["sessions"] == 0:
            break  # nothing gets through: the errors say why, more rounds would not


if __name__ == "__main__":
    main()
