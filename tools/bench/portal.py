"""Benchmark: the captive portal's plain-HTTP answer (302 to the login page) from our trio + h11
HttpServer against hypercorn's trio worker, uvicorn with httptools and nginx, on loopback with
wrk; and the memory 10,000 idle keep-alive connections cost our server.

Run `.venv/bin/python tools/bench/portal.py` (needs wrk, nginx and the `bench` extra; root is
not needed). One JSON line on stdout, progress on stderr. Every server runs on the first CPU
of our affinity set and wrk on the second. The four run side by side (idle but for their
turn) and are loaded in alternating rounds; the idle-connection test uses a fresh ours alone.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[2]

from benchlib import BenchError, bounded, commit_info, die_with_parent, free_port, goal, notes, run  # noqa: E402

PEERS = Path(__file__).resolve().parent / "portal_peers"
WRK_SCRIPT = PEERS / "wrk_report.lua"
WRK_MARKER = "portal-bench-wrk "

PROBE_HOST = "connectivitycheck.gstatic.com"
PROBE_PATH = "/generate_204"
LOGIN_URL = "https://portal.netaccess.test/login"
# Worked out here, not by our code: the check must not share a bug with the server it checks.
EXPECTED_LOCATION = f"{LOGIN_URL}?next={quote(f'http://{PROBE_HOST}{PROBE_PATH}', safe='')}"
PROBE_REQUEST = (
    f"GET {PROBE_PATH} HTTP/1.1\r\nHost: {PROBE_HOST}\r\nUser-Agent: portal-bench\r\n\r\n"
).encode()

GOAL_VS_HYPERCORN = 5.0  # ours / hypercorn-trio, at least
GOAL_VS_UVICORN = 0.5  # ours / uvicorn-httptools, at least
GOAL_IDLE_ADDED_MB = 100.0  # RSS added by the idle connections, at most (MB = 10**6 bytes)

WARMUP_SECONDS = 1
START_SECONDS = 20.0  # a server must accept connections this soon after starting
STOP_SECONDS = 5.0
IO_TIMEOUT = 5.0  # one request/response on loopback
IDLE_BATCH = 100  # idle connections opened (and answered) together
IDLE_OPEN_SECONDS = 180.0  # all idle connections must be open by then
IDLE_SETTLE_SECONDS = 1.0
IDLE_SAMPLE_EVERY = 100  # after measuring, re-ask on every 100th idle connection
MAX_RESPONSE_BYTES = 64 * 1024
MAX_SECONDS = 30 * 60  # the whole run; each step has its own, smaller bound too
FD_MARGIN = 1024


note = notes("portal-bench")


# --- prerequisites ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tools:
    wrk: str
    nginx: str
    taskset: str
    server_cpu: int
    load_cpu: int
    uvicorn_loop: str  # uvloop when installed, else asyncio


def check_prerequisites() -> Tools:
    """Everything the run needs, or exit naming all that is missing and how to get it."""
    missing: list[str] = []
    if not Path("/proc/self/status").exists():
        raise SystemExit("portal-bench: needs Linux (/proc, CPU affinity)")
    wrk = shutil.which("wrk")
    nginx = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    taskset = shutil.which("taskset")
    if wrk is None:
        missing.append("wrk (apt-get install wrk)")
    if nginx is None:
        missing.append("nginx (apt-get install nginx)")
    if taskset is None:
        missing.append("taskset (apt-get install util-linux)")
    modules = [m for m in ("hypercorn", "uvicorn", "httptools") if not _importable(m)]
    if modules:
        missing.append(
            f"Python packages {', '.join(modules)} in {sys.executable} "
            "(.venv/bin/pip install -e '.[bench]')"
        )
    for module in ("trio", "h11"):
        if not _importable(module):
            missing.append(f"Python package {module} (the project's own dependencies)")
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        missing.append(f"a second CPU (we may run on {cpus}): server and wrk need one each")
    if missing:
        raise SystemExit("portal-bench: cannot run, missing:\n  " + "\n  ".join(missing))
    assert wrk is not None and nginx is not None and taskset is not None
    loop = "uvloop" if _importable("uvloop") else "asyncio"
    return Tools(wrk, nginx, taskset, cpus[0], cpus[1], loop)


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def raise_fd_limit(needed: int) -> int:
    """Raise RLIMIT_NOFILE (inherited by the servers) to at least `needed`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return soft
    if hard != resource.RLIM_INFINITY and hard < needed:
        try:  # root may raise the hard limit too
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
            return needed
        except (ValueError, OSError):
            raise SystemExit(
                f"portal-bench: needs {needed} open files, the hard limit is {hard}: "
                "run as root, raise it (ulimit -Hn), or lower --idle-connections"
            ) from None
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return needed


def check_port_range(needed: int) -> None:
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    if high - low + 1 < needed:
        raise SystemExit(
            f"portal-bench: {needed} client connections need as many local ports; "
            f"net.ipv4.ip_local_port_range has {high - low + 1}"
        )


# --- the servers ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Contender:
    """One server under test: how to start it on a port, from files in a work directory."""

    name: str
    describe: str
    command: Callable[[int, Path], list[str]]
    cwd: Path = PEERS


def contenders(tools: Tools) -> list[Contender]:
    python = sys.executable

    def ours(port: int, work: Path) -> list[str]:
        return [python, str(PEERS / "ours.py"), "--port", str(port)]

    def hypercorn(port: int, work: Path) -> list[str]:
        # Hypercorn closes a connection after 1000 requests by default; ours, uvicorn and
        # (as configured below) nginx do not, and wrk's reconnects would cost it alone.
        config = work / "hypercorn.toml"
        config.write_text("keep_alive_max_requests = 1000000\n")
        return [
            python,
            "-m",
            "hypercorn",
            "--worker-class",
            "trio",
            "--bind",
            f"127.0.0.1:{port}",
            "--backlog",
            "1024",
            "--config",
            str(config),
            "asgi_app:app",
        ]

    def uvicorn(port: int, work: Path) -> list[str]:
        return [
            python,
            "-m",
            "uvicorn",
            "asgi_app:app",
            "--app-dir",
            str(PEERS),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--http",
            "httptools",
            "--loop",
            tools.uvicorn_loop,
            "--backlog",
            "1024",
            "--no-access-log",
            "--log-level",
            "warning",
        ]

    def nginx(port: int, work: Path) -> list[str]:
        config = work / "nginx.conf"
        config.write_text(nginx_config(port, work))
        return [tools.nginx, "-p", str(work), "-c", str(config), "-e", str(work / "error.log")]

    return [
        Contender("ours", "netaccess HttpServer (trio + h11), captive_redirect handler", ours),
        Contender("hypercorn_trio", "hypercorn --worker-class trio, minimal ASGI app", hypercorn),
        Contender(
            "uvicorn_httptools",
            f"uvicorn --http httptools --loop {tools.uvicorn_loop}, minimal ASGI app",
            uvicorn,
        ),
        Contender("nginx", "nginx, 1 worker, return 302 from the config", nginx),
    ]


def nginx_config(port: int, work: Path) -> str:
    """One worker on loopback giving the portal's answer. `return 302 URL` would send nginx's
    own HTML page; the 418 detour lets `return 200 TEXT` supply the body while =302 sets the
    status. The location's characters are those quote() leaves alone, so for a one-segment
    path like the probe's the Location is the one ours builds; other paths get the bare URL."""
    return f"""daemon off;
master_process on;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {work}/client_body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 600s;
    default_type "text/plain; charset=utf-8";
    server {{
        listen 127.0.0.1:{port} backlog=1024;
        set $portal "{LOGIN_URL}";
        location ~ ^/(?<segment>[A-Za-z0-9_.~-]*)$ {{
            set $portal "{LOGIN_URL}?next=http%3A%2F%2F$host%2F$segment";
            error_page 418 =302 @captive;
            return 418;
        }}
        location / {{
            error_page 418 =302 @captive;
            return 418;
        }}
        location @captive {{
            add_header Location $portal always;
            add_header Cache-Control "no-store, no-cache, must-revalidate" always;
            return 200 "Network login required: $portal\\n";
        }}
    }}
}}
"""


@dataclass(slots=True)
class Running:
    contender: Contender
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    work: Path

    @property
    def name(self) -> str:
        return self.contender.name

    def pids(self) -> list[int]:
        return process_tree(self.process.pid)

    def log_tail(self, lines: int = 20) -> str:
        texts = [self.log.read_text(errors="replace")]
        nginx_log = self.work / "error.log"
        if nginx_log.exists():
            texts.append(nginx_log.read_text(errors="replace"))
        return "\n".join("\n".join(t.splitlines()[-lines:]) for t in texts if t)


PAGE_RENDERS = 2000  # login pages rendered for the figure (bounded: well under a second each)


def page_renders() -> dict[str, Any]:
    """The portal's sign-in page rendered and answered in this process (jinja2 render, CSRF
    form session, security headers), per second on one core; no network."""
    sys.path.insert(0, str(REPO))
    from netaccess.config import default_config
    from netaccess.io.http_server import Peer
    from netaccess.io.inventory import Inventory
    from netaccess.io.portal import Portal
    from netaccess.proto.http import Request
    from netaccess.store import Store

    store = Store.open_memory()
    try:
        portal = Portal(default_config(), Inventory(store, []), store)
        request = Request("GET", "/login", (("host", "portal.netaccess.test"),))
        peer = Peer("198.18.0.10", 40000)
        size = len(portal.login_form(request, peer).body)
        started = time.perf_counter()
        for _ in range(PAGE_RENDERS):
            portal.login_form(request, peer)
        elapsed = time.perf_counter() - started
    finally:
        store.close()
    return {
        "page_renders_per_s": round(PAGE_RENDERS / elapsed),
        "page_renders_note": f"the sign-in page ({size} bytes), rendered in-process, one core",
    }


def start(contender: Contender, tools: Tools, root: Path) -> Running:
    work = Path(tempfile.mkdtemp(prefix=f"{contender.name}-", dir=root))
    work.chmod(0o755)  # nginx's workers drop to nobody when we are root
    port = free_port()
    log = work / "server.log"
    argv = [tools.taskset, "-c", str(tools.server_cpu), *contender.command(port, work)]
    with log.open("wb") as out:
        # Its own session: stopping it signals the whole group (hypercorn's and nginx's
        # workers with their parent) and nothing else.
        process = subprocess.Popen(
            argv,
            cwd=contender.cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    running = Running(contender, port, process, log, work)
    deadline = time.monotonic() + START_SECONDS
    while True:
        if process.poll() is not None:
            raise BenchError(
                f"{contender.name} exited with status {process.returncode} on start:\n"
                + running.log_tail()
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1.0):
            return running
        if time.monotonic() > deadline:
            stop(running)
            raise BenchError(
                f"{contender.name} not accepting on port {port} after "
                f"{START_SECONDS:g} s:\n" + running.log_tail()
            )
        time.sleep(0.05)


def stop(running: Running) -> None:
    process = running.process
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(STOP_SECONDS)
    with contextlib.suppress(ProcessLookupError):  # workers that outlived their parent
        os.killpg(process.pid, signal.SIGKILL)


# --- /proc ----------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # the name, in parentheses, may hold spaces


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree: list[int] = []
    todo = [root]
    while todo:  # a tree: every pid once
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def cpu_seconds(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


# --- one request, by hand -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def read_answer(sock: socket.socket) -> Answer:
    """One response with a Content-Length body (what all four servers send here)."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_RESPONSE_BYTES:
            raise BenchError("response head too long")
        chunk = sock.recv(4096)
        if not chunk:
            raise BenchError(f"connection closed mid-response after {len(data)} bytes")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" not in headers:
        raise BenchError(f"response without Content-Length: {headers}")
    length = int(headers["content-length"])
    if length > MAX_RESPONSE_BYTES:
        raise BenchError(f"response body of {length} bytes")
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        if not chunk:
            raise BenchError("connection closed mid-body")
        body += chunk
    return Answer(int(status_line.split()[1]), headers, body[:length])


def ask(sock: socket.socket) -> Answer:
    sock.sendall(PROBE_REQUEST)
    return read_answer(sock)


def verify(running: Running) -> dict[str, Any]:
    """The captive answer, checked once before loading: fail loudly on anything else."""
    with socket.create_connection(("127.0.0.1", running.port), IO_TIMEOUT) as sock:
        answer = ask(sock)
        again = ask(sock)  # kept alive, as wrk expects
    problems = []
    if answer.status != 302:
        problems.append(f"status {answer.status}, expected 302")
    if answer.headers.get("location") != EXPECTED_LOCATION:
        problems.append(
            f"Location {answer.headers.get('location')!r}, expected {EXPECTED_LOCATION!r}"
        )
    if "no-store" not in answer.headers.get("cache-control", ""):
        problems.append(f"Cache-Control {answer.headers.get('cache-control')!r}, no no-store")
    if not answer.headers.get("content-type", "").startswith("text/plain"):
        problems.append(f"Content-Type {answer.headers.get('content-type')!r}, not text/plain")
    if not 0 < len(answer.body) <= 512:
        problems.append(f"a body of {len(answer.body)} bytes, expected a short text")
    if answer.headers.get("connection", "").lower() == "close":
        problems.append("Connection: close on a GET")
    if again.status != answer.status or again.body != answer.body:
        problems.append("a second request on the connection got a different answer")
    if problems:
        raise BenchError(f"{running.name} gives the wrong answer: " + "; ".join(problems))
    return {"status": answer.status, "bytes": len(answer.body), "headers": answer.headers}


# --- load -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Load:
    threads: int
    connections: int
    seconds: int


@dataclass(frozen=True, slots=True)
class Run:
    """One wrk run against one server. CPU figures are fractions of one core over the run:
    the processes' own time, and each core's busy time (which adds the loopback softirq
    work the kernel does outside any process) and time stolen by the hypervisor."""

    requests_per_s: float
    latency_p50_ms: float
    latency_p99_ms: float
    errors: int
    server_process_cpu: float
    server_core_busy: float
    wrk_process_cpu: float
    wrk_core_busy: float
    steal: float  # the larger of the two cores'


@dataclass(slots=True)
class Figures:
    contender: Contender
    runs: list[Run] = field(default_factory=list)
    rss_mib_after_load: float | None = None

    def median(self, pick: Callable[[Run], float]) -> float:
        return round(statistics.median(pick(run) for run in self.runs), 3)


def core_ticks(cpu: int) -> tuple[int, int, int]:
    """(busy, stolen, total) clock ticks of one CPU since boot, from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            # user nice system idle iowait irq softirq steal (guest time is inside user)
            ticks = [int(value) for value in line.split()[1:9]]
            idle = ticks[3] + ticks[4]
            return sum(ticks) - idle - ticks[7], ticks[7], sum(ticks)
    raise BenchError(f"cpu{cpu} not in /proc/stat")


def _share(before: tuple[int, int, int], after: tuple[int, int, int]) -> tuple[float, float]:
    total = max(after[2] - before[2], 1)
    return (after[0] - before[0]) / total, (after[1] - before[1]) / total


def run_wrk(running: Running, tools: Tools, load: Load) -> Run:
    argv = [
        tools.taskset,
        "-c",
        str(tools.load_cpu),
        tools.wrk,
        f"-t{load.threads}",
        f"-c{load.connections}",
        f"-d{load.seconds}s",
        "--timeout",
        f"{IO_TIMEOUT:g}s",
        "-s",
        str(WRK_SCRIPT),
        f"http://127.0.0.1:{running.port}{PROBE_PATH}",
    ]
    pids = running.pids()
    server_before = cpu_seconds(pids)
    wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk is our only child to end
    server_core_before = core_ticks(tools.server_cpu)
    wrk_core_before = core_ticks(tools.load_cpu)
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=load.seconds + 30)
    wall = time.monotonic() - started
    server_busy, server_steal = _share(server_core_before, core_ticks(tools.server_cpu))
    wrk_busy, wrk_steal = _share(wrk_core_before, core_ticks(tools.load_cpu))
    wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_used = cpu_seconds(pids) - server_before
    if running.process.poll() is not None:
        raise BenchError(
            f"{running.name} exited (status {running.process.returncode}) under load:\n"
            + running.log_tail()
        )
    if done.returncode != 0:
        raise BenchError(f"wrk against {running.name} failed: {done.stderr.strip()}")
    lines = [line for line in done.stdout.splitlines() if line.startswith(WRK_MARKER)]
    if not lines:
        raise BenchError(f"wrk printed no figures against {running.name}:\n{done.stdout}")
    report = json.loads(lines[-1][len(WRK_MARKER) :])
    wrk_used = (wrk_after.ru_utime - wrk_before.ru_utime) + (
        wrk_after.ru_stime - wrk_before.ru_stime
    )
    errors = sum(
        int(report[key])
        for key in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
    )
    return Run(
        requests_per_s=round(report["requests"] / (report["duration_us"] / 1e6), 1),
        latency_p50_ms=round(report["latency_p50_us"] / 1000, 3),
        latency_p99_ms=round(report["latency_p99_us"] / 1000, 3),
        errors=errors,
        server_process_cpu=round(server_used / wall, 3),
        server_core_busy=round(server_busy, 3),
        wrk_process_cpu=round(wrk_used / wall, 3),
        wrk_core_busy=round(wrk_busy, 3),
        steal=round(max(server_steal, wrk_steal), 3),
    )


def rotated(items: list[Running], by: int) -> Iterator[Running]:
    for i in range(len(items)):
        yield items[(i + by) % len(items)]


def load_rounds(servers: list[Running], tools: Tools, load: Load, rounds: int) -> list[Figures]:
    figures = {s.name: Figures(s.contender) for s in servers}
    for server in servers:
        note(f"warming up {server.name} ({WARMUP_SECONDS} s)")
        run_wrk(server, tools, Load(load.threads, load.connections, WARMUP_SECONDS))
    for round_index in range(rounds):
        # Each round starts with a different server, so none always runs first or last.
        for server in rotated(servers, round_index):
            run = run_wrk(server, tools, load)
            figures[server.name].runs.append(run)
            note(
                f"round {round_index + 1}/{rounds} {server.name}: {run.requests_per_s:,.0f} "
                f"req/s, p99 {run.latency_p99_ms:.1f} ms, server core {run.server_core_busy:.2f} "
                f"busy, wrk core {run.wrk_core_busy:.2f}, steal {run.steal:.2f}"
                + (f", {run.errors} errors" if run.errors else "")
            )
    for server in servers:
        figures[server.name].rss_mib_after_load = round(rss_kib(server.pids()) / 1024, 1)
    return [figures[s.name] for s in servers]


def limited_by(figures: Figures) -> str:
    """Which core was saturated: the server's, wrk's, or both (then the server's figure is a
    lower bound). Neither: the two sides spent time waiting on each other."""
    server = figures.median(lambda run: run.server_core_busy) >= 0.9
    load = figures.median(lambda run: run.wrk_core_busy) >= 0.9
    if server and load:
        return "both"
    if server:
        return "server"
    return "load generator" if load else "neither"


def summary(figures: Figures) -> dict[str, Any]:
    return {
        "server": figures.contender.describe,
        "requests_per_s": figures.median(lambda run: run.requests_per_s),
        "rounds_requests_per_s": [run.requests_per_s for run in figures.runs],
        "latency_p50_ms": figures.median(lambda run: run.latency_p50_ms),
        "latency_p99_ms": figures.median(lambda run: run.latency_p99_ms),
        "server_process_cpu": figures.median(lambda run: run.server_process_cpu),
        "server_core_busy": figures.median(lambda run: run.server_core_busy),
        "wrk_process_cpu": figures.median(lambda run: run.wrk_process_cpu),
        "wrk_core_busy": figures.median(lambda run: run.wrk_core_busy),
        "steal": figures.median(lambda run: run.steal),
        "limited_by": limited_by(figures),
        "errors": sum(run.errors for run in figures.runs),
        "rss_mib_after_load": figures.rss_mib_after_load,
    }


# --- idle connections -----------------------------------------------------------------------


def measure_idle(running: Running, count: int) -> dict[str, Any]:
    """RSS our server adds for `count` kept-alive connections that each had one request
    answered and then say nothing."""
    with socket.create_connection(("127.0.0.1", running.port), IO_TIMEOUT) as sock:
        for _ in range(200):  # every code path a connection takes has run once
            ask(sock)
    time.sleep(IDLE_SETTLE_SECONDS)
    before = rss_kib(running.pids())
    sockets: list[socket.socket] = []
    started = time.monotonic()
    deadline = started + IDLE_OPEN_SECONDS
    try:
        while len(sockets) < count:
            if time.monotonic() > deadline:
                raise BenchError(
                    f"only {len(sockets)} of {count} idle connections open after "
                    f"{IDLE_OPEN_SECONDS:g} s"
                )
            batch: list[socket.socket] = []
            for _ in range(min(IDLE_BATCH, count - len(sockets))):
                sock = socket.create_connection(("127.0.0.1", running.port), IO_TIMEOUT)
                sockets.append(sock)
                batch.append(sock)
            for sock in batch:
                sock.sendall(PROBE_REQUEST)
            for sock in batch:
                answer = read_answer(sock)
                if answer.status != 302:
                    raise BenchError(f"idle connection answered {answer.status}")
        opened = time.monotonic() - started
        time.sleep(IDLE_SETTLE_SECONDS)
        after = rss_kib(running.pids())
        # Still open and served, not dropped by a timeout or the connection cap.
        sample = sockets[::IDLE_SAMPLE_EVERY]
        alive = sum(1 for sock in sample if ask(sock).status == 302)
    finally:
        for sock in sockets:
            sock.close()
    time.sleep(IDLE_SETTLE_SECONDS)
    after_close = rss_kib(running.pids())
    added = (after - before) * 1024
    return {
        "connections": count,
        "opened_in_s": round(opened, 2),
        "rss_before_mib": round(before / 1024, 1),
        "rss_with_idle_mib": round(after / 1024, 1),
        "rss_after_close_mib": round(after_close / 1024, 1),
        "added_mb": round(added / 1e6, 1),
        "added_mib": round(added / 2**20, 1),
        "added_kib_per_connection": round((after - before) / count, 2) if count else None,
        "sampled_still_served": f"{alive}/{len(sample)}",
    }


# --- versions and the report ----------------------------------------------------------------


def versions(tools: Tools) -> dict[str, Any]:
    found: dict[str, Any] = {"python": platform.python_version()}
    for package in ("netaccess", "trio", "h11", "hypercorn", "uvicorn", "httptools", "uvloop"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    nginx = subprocess.run([tools.nginx, "-v"], capture_output=True, text=True, timeout=10)
    found["nginx"] = nginx.stderr.strip().rsplit("/", 1)[-1] or None
    wrk = subprocess.run([tools.wrk, "-v"], capture_output=True, text=True, timeout=10)
    first = (wrk.stdout + wrk.stderr).split()
    found["wrk"] = first[1] if len(first) > 1 else None
    found.update(commit_info())
    return found


def _give_up(signum: int, frame: object) -> None:
    raise BenchError(f"stopped by {signal.Signals(signum).name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=bounded(int, 1, 20), default=3, metavar="1..20")
    parser.add_argument(
        "--duration", type=bounded(int, 1, 60), default=5, metavar="1..60", help="seconds per run"
    )
    parser.add_argument("--connections", type=bounded(int, 1, 1000), default=64, metavar="1..1000")
    parser.add_argument(
        "--idle-connections", type=bounded(int, 0, 50_000), default=10_000, metavar="0..50000"
    )
    args = parser.parse_args()
    tools = check_prerequisites()
    check_port_range(args.idle_connections + args.connections + 1000)
    raise_fd_limit(args.idle_connections + FD_MARGIN)
    # Both end the run through the `finally`s below, so no server is left behind.
    signal.signal(signal.SIGTERM, _give_up)
    signal.signal(signal.SIGALRM, _give_up)
    signal.alarm(MAX_SECONDS)  # a last bound on the whole run

    load = Load(threads=1, connections=args.connections, seconds=args.duration)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="portal-bench-") as root_dir:
        root = Path(root_dir)
        root.chmod(0o755)
        all_contenders = contenders(tools)
        servers: list[Running] = []
        try:
            answers = {}
            for contender in all_contenders:
                note(f"starting {contender.name}")
                server = start(contender, tools, root)
                servers.append(server)
                answers[server.name] = verify(server)
            note(
                f"{args.rounds} rounds x {len(servers)} servers x {args.duration} s, "
                f"server on CPU {tools.server_cpu}, wrk on CPU {tools.load_cpu}"
            )
            figures = load_rounds(servers, tools, load, args.rounds)
        finally:
            for server in servers:
                stop(server)
        idle: dict[str, Any] | None = None
        if args.idle_connections:
            note(f"idle: {args.idle_connections} keep-alive connections to a fresh ours")
            ours = start(all_contenders[0], tools, root)
            try:
                verify(ours)
                idle = measure_idle(ours, args.idle_connections)
            finally:
                stop(ours)

    by_name = {f.contender.name: summary(f) for f in figures}
    rate = {name: float(s["requests_per_s"]) for name, s in by_name.items()}
    ratios = {
        f"ours/{other}": round(rate["ours"] / rate[other], 3)
        for other in ("hypercorn_trio", "uvicorn_httptools", "nginx")
    }
    goals: dict[str, dict[str, Any]] = {
        "ours/hypercorn_trio": goal(
            ratios["ours/hypercorn_trio"],
            f">= {GOAL_VS_HYPERCORN:g}",
            ratios["ours/hypercorn_trio"] >= GOAL_VS_HYPERCORN,
        ),
        "ours/uvicorn_httptools": goal(
            ratios["ours/uvicorn_httptools"],
            f">= {GOAL_VS_UVICORN:g}",
            ratios["ours/uvicorn_httptools"] >= GOAL_VS_UVICORN,
        ),
    }
    if idle is not None:
        added = float(idle["added_mb"])
        goals["idle_rss_added_mb"] = goal(
            added, f"<= {GOAL_IDLE_ADDED_MB:g}", added <= GOAL_IDLE_ADDED_MB
        )
    line = {
        "benchmark": "portal",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "cpu_count": os.cpu_count(),
        "cpus": {"server": tools.server_cpu, "wrk": tools.load_cpu},
        "request": f"GET {PROBE_PATH} Host: {PROBE_HOST} (keep-alive)",
        "expected_location": EXPECTED_LOCATION,
        "load": {
            "tool": "wrk",
            "threads": load.threads,
            "connections": load.connections,
            "seconds_per_run": load.seconds,
            "rounds": args.rounds,
            "warmup_seconds": WARMUP_SECONDS,
        },
        "servers": by_name,
        "answer_bytes": {name: a["bytes"] for name, a in answers.items()},
        "ratios": ratios,
        "idle_connections": idle,
        **page_renders(),
        "goals": goals,
        "all_goals_met": all(g["met"] for g in goals.values()),
        "versions": versions(tools),
        "uvicorn_loop": tools.uvicorn_loop,
        "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(line))


if __name__ == "__main__":
    run(main, "portal-bench")
