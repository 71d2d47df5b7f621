"""Benchmark: role changes in the kernel (set update + conntrack flush) at 1k, 10k and 100k
enrolled endpoints, a bulk batch, a full load, and the openNDS way (one nft process per change).
Changes go through KernelEnforcement.apply, the enforcer's own path: the role sets hold each
endpoint's MAC, and flushes look its flows up in a seeded, drained flow index.

Run as root: `.venv/bin/python tools/bench/enforce.py`; prints one JSON line on stdout. It
builds its own namespace (na-bench-<hex>), runs itself inside it, and always removes it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import platform
import secrets
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from netaccess.enforce import (
    ConntrackFlusher,
    FlowIndex,
    Nftables,
    RoleMembers,
    RoleSets,
    RulesetSpec,
    detect,
    render_ruleset,
)
from netaccess.enforce import conntrack as ct
from netaccess.enforce.intents import Membership, MembershipChange
from netaccess.enforce.kernel_state import KernelEnforcement, role_changes, settle_heap
from netaccess.io.beside import worker_thread
from netaccess.policy.roles import QUARANTINE, REMEDIATION, Destination, Role, builtin_role

SIZES = (1_000, 10_000, 100_000)
CHANGES_PER_SIZE = 1_000
BULK_CHANGES = 10_000
BULK_RUNS = 5  # bursts of each kind; they need 6 x 10k enrolled and 5 x 10k extra endpoints
ANCHOR_CHANGES = 200
EMPTY_TABLE_FLUSHES = 200
FLOWS_PER_ENDPOINT = 1  # synthetic conntrack entries, so flushes walk a realistic table
# 150k endpoints, from 198.18.0.0 on (198.18.0.0/15 and beyond: conntrack entries, no routes)
ENDPOINT_BASE = int(ipaddress.IPv4Address("198.18.0.0"))
SERVER = ipaddress.IPv4Address("192.0.2.10").packed
FULL = Role(
    "full",
    vlan=10,
    captive=False,
    allow=(
        Destination(ipaddress.ip_network("0.0.0.0/0")),
        Destination(ipaddress.ip_network("::/0")),
    ),
)
ROLES = (builtin_role(QUARANTINE), builtin_role(REMEDIATION), FULL)
ENROLLED = REMEDIATION  # where the enrolled endpoints start


def mac(i: int) -> str:
    return f"02:10:{i >> 24 & 255:02x}:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"


def ipv4(i: int) -> str:
    return str(ipaddress.IPv4Address(ENDPOINT_BASE + i))


def spec(count: int) -> RulesetSpec:
    """`count` endpoints enrolled: assessed, in a role's set (a quarantined one is in none)."""
    members = RoleMembers(tuple(mac(i) for i in range(count)))
    return RulesetSpec(
        roles=ROLES,
        access_interfaces=("acc0",),
        upstream_interfaces=("up0",),
        members={ENROLLED: members},
    )


def move(i: int, old: str, new: str) -> MembershipChange:
    """Endpoint i, an L2 neighbour with one address, changes role from `old` to `new`."""
    return MembershipChange(
        Membership(old, mac(i), (ipv4(i),)), Membership(new, mac(i), (ipv4(i),))
    )


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summary(samples_ns: list[int]) -> dict[str, float]:
    ms = [sample / 1e6 for sample in samples_ns]
    return {"p50": round(percentile(ms, 0.50), 3), "p99": round(percentile(ms, 0.99), 3)}


def timed(action: Callable[[], object]) -> int:
    started = time.perf_counter_ns()
    action()
    return time.perf_counter_ns() - started


def add_flows(flusher: ConntrackFlusher, endpoints: range) -> None:
    """One synthetic UDP entry per endpoint (endpoint:40000 -> 192.0.2.10:53), in batches."""

    def tuple_attr(kind: int, src: bytes, dst: bytes, sport: int, dport: int) -> bytes:
        ip = ct._nest(ct.CTA_TUPLE_IP, ct._attr(1, src) + ct._attr(2, dst))
        ports = ct._attr(1, bytes([17])) + ct._attr(2, struct.pack(">H", sport))
        proto = ct._nest(2, ports + ct._attr(3, struct.pack(">H", dport)))
        return ct._nest(kind, ip + proto)

    batch: list[tuple[int, bytes]] = []
    for i in endpoints:
        endpoint = ipaddress.IPv4Address(ENDPOINT_BASE + i).packed
        attrs = (
            tuple_attr(ct.CTA_TUPLE_ORIG, endpoint, SERVER, 40000, 53)
            + tuple_attr(ct.CTA_TUPLE_REPLY, SERVER, endpoint, 53, 40000)
            + ct._attr(7, struct.pack(">I", 3600))  # CTA_TIMEOUT
        )
        seq = flusher._next_seq()
        flags = ct.NLM_F_REQUEST | ct.NLM_F_ACK | 0x400  # NLM_F_CREATE
        batch.append((seq, ct._message(ct.IPCTNL_MSG_CT_NEW, flags, seq, ct.AF_INET, attrs)))
        if len(batch) == 500 or i == endpoints[-1]:
            flusher._exchange(batch, expect_acks=True)
            batch = []


def inside() -> dict[str, object]:
    nft = Nftables()
    index = FlowIndex()
    flusher = ConntrackFlusher(index=index)
    sets = RoleSets(nft)
    beside, stop_worker = worker_thread()  # as the enforcer runs it
    kernel = KernelEnforcement(spec(0), nft, sets, flusher, detect(), index, beside)
    result: dict[str, object] = {
        "conntrack_events": flusher.events_enabled,
        "flows_per_endpoint": FLOWS_PER_ENDPOINT,
        "changes_per_size": CHANGES_PER_SIZE,
    }

    # Flush cost with an empty conntrack table, for scale.
    nft.load_ruleset(render_ruleset(spec(0)))
    result["flush_empty_table_ms"] = summary(
        [timed(lambda i=i: flusher.flush([ipv4(i)])) for i in range(EMPTY_TABLE_FLUSHES)]
    )

    per_size: dict[str, object] = {}
    for size in SIZES:
        started = time.perf_counter_ns()
        text = render_ruleset(spec(size))
        rendered = time.perf_counter_ns()
        nft.load_ruleset(text)
        loaded = time.perf_counter_ns()
        if size == SIZES[-1]:
            result["full_load_100k_ms"] = {
                "render": round((rendered - started) / 1e6, 1),
                "nft_f": round((loaded - rendered) / 1e6, 1),
                "total": round((loaded - started) / 1e6, 1),
            }
        ct_flush_all(flusher)
        index.drain()
        add_flows(flusher, range(size * FLOWS_PER_ENDPOINT))
        # The enforcer drains as events come; here all at once, outside the timings.
        drain_ns = timed(index.drain)
        if size == SIZES[-1]:
            result["index_drain_100k_new_events_ms"] = round(drain_ns / 1e6, 1)
            result["index_seed_100k_ms"] = round(timed(index.reseed) / 1e6, 1)
        assert index.healthy and len(index) == size * FLOWS_PER_ENDPOINT, "index incomplete"
        settle_heap()  # as the enforcer does once its index is seeded
        step = max(1, size // CHANGES_PER_SIZE)
        chosen = [(n * step) % size for n in range(CHANGES_PER_SIZE)]
        # The first changes of each size warm up and are not counted.
        for i in range(size - 100, size):
            kernel.apply([move(i, ENROLLED, FULL.name)])
        deleted_before = kernel.flows_deleted
        singles = [[move(i, ENROLLED, FULL.name)] for i in chosen]
        change_ns = [timed(lambda c=c: kernel.apply(c)) for c in singles]
        # The same changes back, set update alone (flows are gone now): how the time splits.
        backs = [role_changes(move(i, FULL.name, ENROLLED)) for i in chosen]
        set_ns = [timed(lambda b=b: sets.apply(b)) for b in backs]
        per_size[str(size)] = {
            "role_change_ms": summary(change_ns),
            "set_update_ms": summary(set_ns),
            "conntrack_entries": size * FLOWS_PER_ENDPOINT,
            "flows_deleted": kernel.flows_deleted - deleted_before,
            "flush_by_index": flusher.last_flush_by_index,
        }
    result["at_enrolled"] = per_size

    # Bursts at 100k enrolled, each one apply (one set transaction, one flush of the flows),
    # as a burst of changes reaches the enforcer, BULK_RUNS of each on fresh endpoints (one
    # sample on a shared VM says little; the median and the worst are reported):
    # - move: 10k enrolled endpoints change role (two element operations each, the most);
    # - admit: 10k quarantined endpoints, in no set, are admitted (one operation each).
    size = SIZES[-1]
    untouched = [i for i in range(size - 100) if i % max(1, size // CHANGES_PER_SIZE)]
    movers = [untouched[n * BULK_CHANGES : (n + 1) * BULK_CHANGES] for n in range(BULK_RUNS)]
    bulk_split = untouched[BULK_RUNS * BULK_CHANGES : (BULK_RUNS + 1) * BULK_CHANGES]
    admitted = [
        range(size + n * BULK_CHANGES, size + (n + 1) * BULK_CHANGES) for n in range(BULK_RUNS)
    ]
    add_flows(flusher, range(size, size + BULK_RUNS * BULK_CHANGES))
    index.drain()
    settle_heap()
    bursts: dict[str, list[int]] = {"move": [], "admit": []}
    deleted: dict[str, int] = {"move": 0, "admit": 0}
    for run in range(BULK_RUNS):
        for name, burst in (
            ("move", [move(i, ENROLLED, FULL.name) for i in movers[run]]),
            ("admit", [move(i, QUARANTINE, FULL.name) for i in admitted[run]]),
        ):
            deleted_before = kernel.flows_deleted
            bursts[name].append(timed(lambda b=burst: kernel.apply(b)))
            deleted[name] += kernel.flows_deleted - deleted_before
    for name, samples in bursts.items():
        ms = sorted(round(sample / 1e6, 1) for sample in samples)
        result[f"bulk_10k_{name}_ms"] = ms[len(ms) // 2]  # the median
        result[f"bulk_10k_{name}_max_ms"] = ms[-1]
        result[f"bulk_10k_{name}_runs_ms"] = ms
        result[f"bulk_10k_{name}_flows_deleted"] = deleted[name]
    result["bulk_10k_flush_by_index"] = flusher.last_flush_by_index
    # How a move burst splits: the set transaction alone for another 10k, then their flush,
    # one after the other.
    moves = [c for i in bulk_split for c in role_changes(move(i, ENROLLED, FULL.name))]
    result["bulk_10k_move_set_update_ms"] = round(timed(lambda: sets.apply(moves)) / 1e6, 1)
    addresses = [ipv4(i) for i in bulk_split]
    flushed: list[int] = []
    result["bulk_10k_flush_ms"] = round(
        timed(lambda: flushed.append(flusher.flush(addresses))) / 1e6, 1
    )
    result["bulk_10k_flush_flows_deleted"] = flushed[0]
    result["index_overflows"] = index.overflows

    # The openNDS way, side by side at 100k enrolled: one nft process per change.
    anchor = [
        timed(
            lambda i=i: subprocess.run(
                ["nft", "add", "element", "inet", "netaccess", "role_full_mac", f"{{ {mac(i)} }}"],
                check=True,
                capture_output=True,
            )
        )
        for i in untouched[-ANCHOR_CHANGES:]
    ]
    result["opennds_nft_process_per_change_ms"] = summary(anchor)
    at_max = per_size[str(size)]
    assert isinstance(at_max, dict)
    ours_set = at_max["set_update_ms"]["p50"]
    ours_change = at_max["role_change_ms"]["p50"]
    anchor_p50 = result["opennds_nft_process_per_change_ms"]["p50"]  # type: ignore[index]
    result["ratio_vs_set_update_p50"] = round(anchor_p50 / ours_set, 1)
    result["ratio_vs_role_change_p50"] = round(anchor_p50 / ours_change, 1)
    nft.close()
    flusher.close()
    index.close()
    stop_worker()
    return result


def ct_flush_all(flusher: ConntrackFlusher) -> None:
    seq = flusher._next_seq()
    flusher._exchange(
        [(seq, ct._message(ct.IPCTNL_MSG_CT_DELETE, ct.NLM_F_REQUEST | ct.NLM_F_ACK, seq, 0, b""))],
        expect_acks=True,
    )


def main() -> None:
    if "--inside" in sys.argv:
        print(json.dumps(inside()))
        return
    if os.geteuid() != 0:
        sys.exit("tools/bench/enforce.py needs root (it builds a network namespace)")
    namespace = f"na-bench-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    try:
        # As the appliance sets it: event data on every flow, so flushes run in the kernel.
        subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                namespace,
                "sysctl",
                "-qw",
                "net.netfilter.nf_conntrack_events=1",
            ],
            check=True,
        )
        run = subprocess.run(
            ["ip", "netns", "exec", namespace, sys.executable, __file__, "--inside"],
            check=True,
            capture_output=True,
            text=True,
        )
        figures = json.loads(run.stdout)
    finally:
        subprocess.run(["ip", "netns", "delete", namespace], check=False)
    line = {
        "bench": "enforce",
        "python": platform.python_version(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        **figures,
    }
    print(json.dumps(line))


if __name__ == "__main__":
    main()
