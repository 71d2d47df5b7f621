#!/usr/bin/env python3
"""The race: netaccess's RADIUS server against FreeRADIUS 3.2.1 on MAB and EAP-TTLS/PAP,
on loopback.

FreeRADIUS (Debian's freeradius package) runs from a config generated in a temporary
directory: loopback only, one client with require_message_authenticator = yes, and a users
file with an entry per MAB MAC returning the VLAN attributes (PAP checks the password), plus
the EAP user's Cleartext-Password; its eap module runs EAP-TTLS (TLS 1.2, PAP inside, in an
inner-tunnel server) with the certificate both servers share. netaccess runs its
RadiusServer (tools/bench/radius_peers/ours.py: the object netaccessd runs, with its own
inventory), its NAS client requiring the MA too, answering the quarantine VLAN, and EAP-TTLS
with the same certificate and the user's scrypt hash in its store.

MAB: the same `radclient -q -s -c 50 -p 64 -f <1000 distinct MAB requests>` runs against
each, alternating, `--rounds` times each; req/s is accepted replies over the wall time of
the radclient run.

EAP-TTLS/PAP: `--eap-handshakes` whole eapol_test runs (each a new process: Identity, the
TLS handshake, the inner PAP, Accept with MPPE keys that eapol_test checks), `--eap-parallel`
at a time, against each server, alternating, `--rounds` times each, each round bounded by
`--eap-seconds` too; handshakes/s is successful runs over the round's wall time. Each run
is one of `--eap-handshakes` endpoints (its Calling-Station-Id); a first round, reported
apart, signs each in for the first time (netaccess learns the endpoint and moves it to
remediation), the timed rounds re-authenticate them, as on a network in service.

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tools.bench.benchlib import (
    BenchError,
    bounded,
    commit_info,
    die_with_parent,
    free_port,
    goal,
    notes,
    run,
)

NAME = "radius-bench"
note = notes(NAME)
PEERS = Path(__file__).resolve().parent / "radius_peers"
SECRET = "race-secret-0123456789"
VLAN = "999"  # netaccess's quarantine VLAN, what a new MAC gets from it
EAP_REALM, EAP_USER, EAP_PASSWORD = "staff", "racer", "race-password-0123"
EAPOL_TIMEOUT = 30  # seconds eapol_test may take for one authentication
START_TIMEOUT = 30.0
RUN_TIMEOUT = 300.0
# eapol_test's debug output: the suite the server chose, and the ServerKeyExchange message
# (type 12, 3-octet length, curve type 3 = named_curve, then the group: RFC 8422 §5.4).
CIPHER_SUITE = re.compile(r"Server selected cipher suite 0x([0-9a-f]{4})")
KEY_EXCHANGE = re.compile(
    r"server key exchange\)\n[^\n]*hexdump\(len=\d+\): 0c (?:\w\w ){3}03 (\w\w) (\w\w)"
)
GROUPS = {0x0017: "secp256r1", 0x0018: "secp384r1", 0x0019: "secp521r1", 0x001D: "x25519"}
SUMMARY = re.compile(r"^\s*(Accepted|Rejected|Lost|Passed filter|Failed filter)\s*:\s*(\d+)", re.M)


@dataclass
class Contender:
    name: str
    what: str
    port: int
    process: subprocess.Popen[str]


def macs(count: int) -> list[str]:
    """Distinct locally administered MACs, as switches send them for MAB (bare hex)."""
    return [f"02{index:010x}" for index in range(1, count + 1)]


def requests_file(path: Path, addresses: list[str]) -> None:
    blocks = []
    for mac in addresses:
        spaced = "-".join(mac[i : i + 2] for i in range(0, 12, 2)).upper()
        blocks.append(
            f'User-Name = "{mac}", User-Password = "{mac}", Service-Type = Call-Check, '
            f'Calling-Station-Id = "{spaced}", NAS-Port-Id = "Gi1/0/1", '
            "Message-Authenticator = 0x00\n"
        )
    path.write_text("\n".join(blocks))


def freeradius_config(
    work: Path, port: int, addresses: list[str], certificate: Path, key: Path
) -> None:
    for sub in ("run", "log"):
        (work / sub).mkdir(exist_ok=True)
    users = "".join(
        f'{mac} Cleartext-Password := "{mac}"\n'
        f'\tTunnel-Type = VLAN, Tunnel-Medium-Type = IEEE-802, Tunnel-Private-Group-Id = "{VLAN}"\n'
        "\n"
        for mac in addresses
    )
    users += f'{EAP_USER} Cleartext-Password := "{EAP_PASSWORD}"\n\n'
    (work / "users").write_text(users)
    (work / "radiusd.conf").write_text(
        f"""
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = {work}/log
raddbdir = {work}
radacctdir = {work}/log
name = freeradius
confdir = {work}
modconfdir = {work}
run_dir = {work}/run
db_dir = {work}
libdir = /usr/lib/freeradius
pidfile = {work}/run/radiusd.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 65536
hostname_lookups = no
log {{
  destination = stderr
  auth = no
}}
security {{
  allow_core_dumps = no
  max_attributes = 200
  reject_delay = 0
  status_server = yes
}}
thread pool {{
  start_servers = 4
  max_servers = 32
  min_spare_servers = 3
  max_spare_servers = 10
  max_requests_per_server = 0
}}
client race {{
  ipaddr = 127.0.0.1
  secret = {SECRET}
  require_message_authenticator = yes
}}
modules {{
  files {{
    filename = {work}/users
  }}
  pap {{
  }}
  eap {{
    default_eap_type = ttls
    timer_expire = 60
    max_sessions = 16384
    ignore_unknown_eap_types = no
    tls-config tls-common {{
      private_key_file = {key}
      certificate_file = {certificate}
      ca_file = {certificate}
      cipher_list = "DEFAULT"
      tls_min_version = "1.2"
      tls_max_version = "1.2"
      # FreeRADIUS's shipped default: OpenSSL's own group list, as netaccess uses.
      ecdh_curve = ""
      cache {{
        enable = no
      }}
      verify {{
      }}
      ocsp {{
        enable = no
      }}
    }}
    md5 {{
    }}
    ttls {{
      tls = tls-common
      default_eap_type = md5
      copy_request_to_tunnel = no
      use_tunneled_reply = no
      virtual_server = "inner-tunnel"
    }}
  }}
}}
server default {{
  listen {{
    type = auth
    ipaddr = 127.0.0.1
    port = {port}
  }}
  authorize {{
    eap {{
      ok = return
    }}
    files
    pap
  }}
  authenticate {{
    Auth-Type PAP {{
      pap
    }}
    Auth-Type eap {{
      eap
    }}
  }}
  post-auth {{
  }}
}}
server inner-tunnel {{
  authorize {{
    files
    pap
  }}
  authenticate {{
    Auth-Type PAP {{
      pap
    }}
  }}
  post-auth {{
  }}
}}
"""
    )


def start_freeradius(binary: str, work: Path, certificate: Path, key: Path) -> Contender:
    port = free_port()
    fr_work = work / "freeradius"
    fr_work.mkdir()
    addresses = macs(1000)
    freeradius_config(fr_work, port, addresses, certificate, key)
    log = (fr_work / "log" / "stderr.txt").open("w")
    process = subprocess.Popen(
        [binary, "-f", "-d", str(fr_work), "-l", "stdout"],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=die_with_parent,
    )
    return Contender("freeradius", f"{binary} -f (threaded), files + pap", port, process)


def start_ours(work: Path, certificate: Path, key: Path) -> Contender:
    port, acct = free_port(), free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            str(PEERS / "ours.py"),
            *("--auth-port", str(port), "--acct-port", str(acct), "--secret", SECRET),
            *("--eap-certificate", str(certificate), "--eap-key", str(key)),
            *("--eap-user", f"{EAP_REALM}/{EAP_USER}:{EAP_PASSWORD}"),
        ],
        stdout=subprocess.PIPE,
        stderr=(work / "ours.stderr").open("w"),
        text=True,
        preexec_fn=die_with_parent,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if line.strip() != "ready":
        raise BenchError(f"ours did not start: {line!r}; see {work / 'ours.stderr'}")
    return Contender(
        "netaccess", "netaccess.io.radius.RadiusServer (trio), 1 process", port, process
    )


def radclient(args: list[str], stdin: str | None = None, timeout: float = RUN_TIMEOUT) -> Any:
    return subprocess.run(
        ["radclient", *args], input=stdin, capture_output=True, text=True, timeout=timeout
    )


def wait_ready(contender: Contender) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if contender.process.poll() is not None:
            raise BenchError(f"{contender.name} exited with {contender.process.returncode}")
        done = radclient(
            ["-r", "1", "-t", "1", f"127.0.0.1:{contender.port}", "status", SECRET],
            stdin="Message-Authenticator = 0x00\n",
            timeout=10,
        )
        if done.returncode == 0:
            return
    raise BenchError(f"{contender.name} did not answer Status-Server in {START_TIMEOUT:g} s")


def verify(contender: Contender, requests: Path) -> dict[str, Any]:
    """One request answered as the race expects: an Accept with the VLAN."""
    first = requests.read_text().split("\n\n", 1)[0] + "\n"
    done = radclient(
        ["-x", "-r", "1", "-t", "3", f"127.0.0.1:{contender.port}", "auth", SECRET],
        stdin=first,
        timeout=20,
    )
    if "Received Access-Accept" not in done.stdout:
        raise BenchError(f"{contender.name} did not accept a MAB request: {done.stdout[-500:]}")
    reply = done.stdout.split("Received Access-Accept", 1)[1]
    if f'Tunnel-Private-Group-Id:0 = "{VLAN}"' not in reply:
        raise BenchError(f"{contender.name}'s Accept lacks VLAN {VLAN}: {reply[-500:]}")
    lines = [line.strip() for line in reply.splitlines()[1:] if line.startswith("\t")]
    return {
        "accept_attributes": lines,
        "message_authenticator_first": bool(lines) and lines[0].startswith("Message-Authenticator"),
    }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def children_cpu_seconds() -> float:
    """CPU time of the finished child processes (the load generators), user and system."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_ticks(stat: str | None = None) -> tuple[int, int]:
    """(busy, idle) clock ticks of the whole machine so far, from /proc/stat's "cpu" line
    (idle counts iowait too; steal and the guest times, already in user, are left out)."""
    text = stat if stat is not None else Path("/proc/stat").read_text()
    fields = [int(value) for value in text.split("\n", 1)[0].split()[1:8]]
    user, nice, system, idle, iowait, irq, softirq = fields
    return user + nice + system + irq + softirq, idle + iowait


def race(contender: Contender, requests: Path, count: int, parallel: int) -> dict[str, Any]:
    cpu_before = cpu_seconds(contender.process.pid)
    load_before = children_cpu_seconds()
    started = time.perf_counter()
    done = radclient(
        [
            *("-q", "-s", "-c", str(count), "-p", str(parallel)),
            *("-f", str(requests)),
            f"127.0.0.1:{contender.port}",
            "auth",
            SECRET,
        ]
    )
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(contender.process.pid) - cpu_before
    load_cpu = children_cpu_seconds() - load_before
    summary = {
        key.lower().replace(" ", "_"): int(value) for key, value in SUMMARY.findall(done.stdout)
    }
    accepted = summary.get("accepted", 0)
    if summary.get("rejected") or summary.get("lost"):
        raise BenchError(f"{contender.name}: radclient saw {summary}: {done.stderr[-300:]}")
    return {
        "per_s": round(accepted / elapsed),
        "seconds": round(elapsed, 3),
        "accepted": accepted,
        "server_cpu_s": round(cpu, 3),
        "server_cpu_us_per_request": round(cpu / max(accepted, 1) * 1e6, 1),
        # radclient is one thread: near 1 s per s here, and it is the load that limits.
        "radclient_cpu_us_per_request": round(load_cpu / max(accepted, 1) * 1e6, 1),
    }


def eap_certificate(work: Path) -> tuple[Path, Path]:
    """The certificate both servers present: made as netaccessd makes the portal's."""
    from netaccess.io.tls import self_signed

    return self_signed(work / "tls", "radius.race.test")


def ttls_conf(work: Path, certificate: Path) -> Path:
    conf = work / "ttls.conf"
    conf.write_text(
        "network={\n"
        "    key_mgmt=IEEE8021X\n"
        "    eap=TTLS\n"
        f'    identity="{EAP_USER}"\n'
        f'    anonymous_identity="anonymous@{EAP_REALM}"\n'
        f'    password="{EAP_PASSWORD}"\n'
        '    phase2="auth=PAP"\n'
        f'    ca_cert="{certificate}"\n'
        "}\n"
    )
    return conf


def eapol_test(contender: Contender, conf: Path, mac: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *("eapol_test", "-c", str(conf), "-t", str(EAPOL_TIMEOUT)),
            *("-a", "127.0.0.1", "-p", str(contender.port), "-s", SECRET),
            *("-N", "30:s:AA-BB-CC-DD-EE-01", "-N", f"31:s:{mac}"),
        ],
        capture_output=True,
        text=True,
        timeout=EAPOL_TIMEOUT + 30,
        check=False,
    )


def ttls_ok(done: subprocess.CompletedProcess[str]) -> bool:
    return done.returncode == 0 and "MPPE keys OK: 1  mismatch: 0" in done.stdout


def verify_ttls(contender: Contender, conf: Path) -> dict[str, Any]:
    """One EAP-TTLS/PAP run that must succeed, MPPE keys checked; and a wrong password that
    must not."""
    done = eapol_test(contender, conf, "02-00-00-00-EE-01")
    if not ttls_ok(done):
        raise BenchError(f"{contender.name} failed EAP-TTLS/PAP: {done.stdout[-800:]}")
    wrong = conf.with_name("ttls-wrong.conf")
    wrong.write_text(conf.read_text().replace(EAP_PASSWORD, "not-the-password"))
    refused = eapol_test(contender, wrong, "02-00-00-00-EE-02")
    if refused.returncode == 0:
        raise BenchError(f"{contender.name} accepted a wrong inner password")
    round_trips = done.stdout.count("Received RADIUS message")
    return {
        "mppe_keys_ok": True,
        "wrong_password_rejected": True,
        "round_trips": round_trips,
        **negotiated(done.stdout),
    }


def negotiated(log: str) -> dict[str, str | None]:
    """The cipher suite and ECDHE group a server chose, from eapol_test's log: the two
    servers must run the same TLS for the race to compare them."""
    suite = CIPHER_SUITE.search(log)
    exchange = KEY_EXCHANGE.search(log)
    group = None
    if exchange:
        code = int(exchange[1] + exchange[2], 16)
        group = GROUPS.get(code, f"0x{code:04x}")
    return {"cipher_suite": f"0x{suite[1]}" if suite else None, "key_exchange": group}


def race_ttls(
    contender: Contender, conf: Path, handshakes: int, parallel: int, seconds: float
) -> dict[str, Any]:
    """`handshakes` eapol_test runs, `parallel` at a time, none started after `seconds`."""
    cpu_before = cpu_seconds(contender.process.pid)
    load_before = children_cpu_seconds()
    busy_before, idle_before = machine_ticks()
    started = time.perf_counter()
    deadline = started + seconds

    def one(index: int) -> bool | None:
        if time.perf_counter() > deadline:
            return None  # over the time bound: not run
        return ttls_ok(
            eapol_test(contender, conf, f"02-00-00-{index >> 8 & 255:02X}-{index & 255:02X}-01")
        )

    with ThreadPoolExecutor(parallel) as pool:
        outcomes = list(pool.map(one, range(handshakes)))
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(contender.process.pid) - cpu_before
    load_cpu = children_cpu_seconds() - load_before
    busy_after, idle_after = machine_ticks()
    busy, idle = busy_after - busy_before, idle_after - idle_before
    done = sum(1 for outcome in outcomes if outcome)
    failed = sum(1 for outcome in outcomes if outcome is False)
    if failed:
        raise BenchError(f"{contender.name}: {failed} of {len(outcomes)} EAP-TTLS runs failed")
    return {
        "per_s": round(done / elapsed, 1),
        "seconds": round(elapsed, 3),
        "handshakes": done,
        "not_run_over_time": sum(1 for outcome in outcomes if outcome is None),
        "server_cpu_s": round(cpu, 3),
        "server_cpu_ms_per_handshake": round(cpu / max(done, 1) * 1e3, 2),
        # The load runs on the same cores: its cost, and how much of the machine sat idle
        # (every eapol_test waiting on the server, say), say what the rate is made of.
        "eapol_test_cpu_ms_per_handshake": round(load_cpu / max(done, 1) * 1e3, 2),
        "machine_busy_ms_per_handshake": round(
            busy / os.sysconf("SC_CLK_TCK") / max(done, 1) * 1e3, 2
        ),
        "machine_idle_percent": round(100 * idle / max(busy + idle, 1), 1),
    }


def medians_of(rounds: list[dict[str, Any]], *figures: str) -> dict[str, Any]:
    """Each named figure's median over a contender's rounds."""
    return {figure: statistics.median(r[figure] for r in rounds) for figure in figures}


def stop(contender: Contender) -> str:
    if contender.process.poll() is None:
        contender.process.send_signal(signal.SIGTERM)
    try:
        out, _ = contender.process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        contender.process.kill()
        out, _ = contender.process.communicate()
    return out or ""


def versions() -> dict[str, Any]:
    done = subprocess.run(["freeradius", "-v"], capture_output=True, text=True, timeout=10)
    first = (done.stdout or done.stderr).splitlines()[:1]
    return {"python": sys.version.split()[0], "freeradius": first[0] if first else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=bounded(int, 1, 10), default=3)
    parser.add_argument("--count", type=bounded(int, 1, 200), default=50, help="radclient -c")
    parser.add_argument("--parallel", type=bounded(int, 1, 255), default=64, help="radclient -p")
    parser.add_argument(
        "--eap-handshakes", type=bounded(int, 0, 5000), default=200, help="per round; 0: none"
    )
    parser.add_argument("--eap-parallel", type=bounded(int, 1, 32), default=4)
    parser.add_argument(
        "--eap-seconds", type=bounded(float, 1, 600), default=120, help="bound per round"
    )
    args = parser.parse_args()
    binary = shutil.which("freeradius") or shutil.which("radiusd")
    if binary is None or shutil.which("radclient") is None:
        raise BenchError("needs freeradius and radclient: apt-get install freeradius")
    if args.eap_handshakes and shutil.which("eapol_test") is None:
        raise BenchError("needs eapol_test for the EAP-TTLS race: apt-get install eapoltest")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="na-radius-race-") as tmp:
        work = Path(tmp)
        requests = work / "requests.txt"
        requests_file(requests, macs(1000))
        certificate, key = eap_certificate(work)
        conf = ttls_conf(work, certificate)
        contenders = [
            start_ours(work, certificate, key),
            start_freeradius(binary, work, certificate, key),
        ]
        try:
            checks = {}
            ttls_checks = {}
            for contender in contenders:
                wait_ready(contender)
                checks[contender.name] = verify(contender, requests)
                if args.eap_handshakes:
                    ttls_checks[contender.name] = verify_ttls(contender, conf)
            tls_chosen = {
                name: (check["cipher_suite"], check["key_exchange"])
                for name, check in ttls_checks.items()
            }
            if any(None in chosen for chosen in tls_chosen.values()):
                raise BenchError(f"eapol_test's log does not show the TLS chosen: {tls_chosen}")
            if len(set(tls_chosen.values())) > 1:
                # One server's handshake costs both ends more: the race would measure that.
                raise BenchError(f"the servers negotiated different TLS: {tls_chosen}")
            results: dict[str, list[dict[str, Any]]] = {c.name: [] for c in contenders}
            ttls_results: dict[str, list[dict[str, Any]]] = {c.name: [] for c in contenders}
            for index in range(args.rounds):
                order = contenders if index % 2 == 0 else contenders[::-1]
                for contender in order:
                    figures = race(contender, requests, args.count, args.parallel)
                    results[contender.name].append(figures)
                    note(f"round {index + 1}: {contender.name} {figures['per_s']:,} req/s")
            first_sign_ins: dict[str, dict[str, Any]] = {}
            for contender in contenders if args.eap_handshakes else []:
                first_sign_ins[contender.name] = race_ttls(
                    contender, conf, args.eap_handshakes, args.eap_parallel, args.eap_seconds
                )
                note(
                    f"first sign-ins: {contender.name} "
                    f"{first_sign_ins[contender.name]['per_s']} EAP-TTLS handshakes/s"
                )
            for index in range(args.rounds if args.eap_handshakes else 0):
                order = contenders if index % 2 == 0 else contenders[::-1]
                for contender in order:
                    figures = race_ttls(
                        contender, conf, args.eap_handshakes, args.eap_parallel, args.eap_seconds
                    )
                    ttls_results[contender.name].append(figures)
                    note(
                        f"round {index + 1}: {contender.name} {figures['per_s']} EAP-TTLS "
                        "handshakes/s"
                    )
        finally:
            for contender in contenders:
                stop(contender)
    medians = {
        name: statistics.median(r["per_s"] for r in rounds) for name, rounds in results.items()
    }
    ratio = medians["netaccess"] / medians["freeradius"]
    eap_ttls: dict[str, Any] = {"measured": False, "why": "--eap-handshakes 0"}
    goals = {"mab_ratio": goal(ratio, ">= 1.0x FreeRADIUS", ratio >= 1.0)}
    if args.eap_handshakes:
        ttls_medians = {
            name: statistics.median(r["per_s"] for r in rounds)
            for name, rounds in ttls_results.items()
        }
        ttls_ratio = ttls_medians["netaccess"] / ttls_medians["freeradius"]
        eap_ttls = {
            "load": f"{args.eap_handshakes} eapol_test runs (EAP-TTLS/PAP, TLS 1.2, server "
            f"certificate checked, MPPE keys checked), {args.eap_parallel} at a time, per "
            f"round, bounded by {args.eap_seconds:g} s, alternating, on loopback",
            **{
                name: {
                    "per_s": ttls_medians[name],
                    "rounds_per_s": [r["per_s"] for r in rounds],
                    **medians_of(
                        rounds,
                        "server_cpu_ms_per_handshake",
                        "eapol_test_cpu_ms_per_handshake",
                        "machine_busy_ms_per_handshake",
                        "machine_idle_percent",
                    ),
                    "first_sign_ins_per_s": first_sign_ins[name]["per_s"],
                    **ttls_checks[name],
                }
                for name, rounds in ttls_results.items()
            },
            "ratio_netaccess_over_freeradius": round(ttls_ratio, 3),
        }
        goals["eap_ttls_ratio"] = goal(ttls_ratio, ">= 1.0x FreeRADIUS", ttls_ratio >= 1.0)
    line = {
        "benchmark": "radius",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "load": f"radclient -q -s -c {args.count} -p {args.parallel} -f <1000 distinct MAB "
        "requests with Message-Authenticator>, alternating, on loopback",
        "mab": {
            name: {
                "per_s": round(medians[name]),
                "rounds_per_s": [r["per_s"] for r in rounds],
                **medians_of(rounds, "server_cpu_us_per_request", "radclient_cpu_us_per_request"),
                "what": next(c.what for c in contenders if c.name == name),
                **checks[name],
            }
            for name, rounds in results.items()
        },
        "mab_ratio_netaccess_over_freeradius": round(ratio, 3),
        "eap_ttls": eap_ttls,
        "goals": goals,
        "versions": {**versions(), **commit_info()},
        "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(line))


if __name__ == "__main__":
    run(main, NAME)
