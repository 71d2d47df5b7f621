"""What this kernel can enforce, found by trying each feature in a throwaway network namespace
(never by reading version numbers or config files, which lie about modules and backports)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyroute2 import (  # type: ignore[import-untyped,unused-ignore]
    Conntrack,
    IPRoute,
    netns,
)
from pyroute2.netlink.nfnetlink.nfctsocket import (  # type: ignore[import-untyped,unused-ignore]
    NFCTAttrTuple,
)

from netaccess.enforce.conntrack import AF_INET6, EVENTS_SYSCTL, ConntrackFlusher
from netaccess.enforce.nft import Nftables, entered_netns
from netaccess.enforce.ruleset import RulesetSpec, render_ruleset
from netaccess.policy.roles import REMEDIATION, Role, builtin_role

PROBE_PREFIX = "na-kprobe-"


@dataclass(frozen=True, slots=True)
class KernelFeatures:
    """nftables: the whole netaccess ruleset loads; conntrack: ctnetlink answers;
    vlan_8021q / bridge_vlan_filtering: such links can be made; conntrack_filtered_flush
    (_ipv6): the kernel deletes flows by address itself, correctly (for IPv6). notes say why
    not, or how."""

    nftables: bool
    conntrack: bool
    vlan_8021q: bool
    bridge_vlan_filtering: bool
    notes: tuple[str, ...] = ()
    conntrack_filtered_flush: bool = False
    conntrack_filtered_flush_ipv6: bool = False


def detect() -> KernelFeatures:
    """Probe every feature for real; never raises (a failed probe is a False and a note)."""
    notes: list[str] = []
    name = PROBE_PREFIX + os.urandom(3).hex()
    try:
        netns.create(name)
    except Exception as exc:  # not root, no netns support: nothing can be probed
        notes.append(f"cannot create the probe namespace {name}: {exc}")
        return KernelFeatures(False, False, False, False, tuple(notes))
    try:
        found = (
            _probe("nftables", notes, lambda: _nftables(name)),
            _probe("conntrack", notes, lambda: _conntrack(name)),
            _probe("802.1Q VLAN links", notes, lambda: _vlan(name)),
            _probe("bridge VLAN filtering", notes, lambda: _bridge_vlan_filtering(name)),
            _probe("conntrack filtered flush", notes, lambda: _filtered_flush(name)),
            _probe("conntrack filtered flush for IPv6", notes, lambda: _filtered_flush_v6(name)),
        )
    finally:
        try:
            netns.remove(name)
        except Exception as exc:
            notes.append(f"could not remove the probe namespace {name}: {exc}")
    nftables, conntrack, vlan, bridge, flush, flush_v6 = found
    return KernelFeatures(
        nftables=nftables,
        conntrack=conntrack,
        vlan_8021q=vlan,
        bridge_vlan_filtering=bridge,
        notes=tuple(notes),
        conntrack_filtered_flush=flush,
        conntrack_filtered_flush_ipv6=flush_v6,
    )


def _probe(feature: str, notes: list[str], attempt: Callable[[], None]) -> bool:
    try:
        attempt()
    except Exception as exc:
        notes.append(f"{feature}: unavailable ({type(exc).__name__}: {exc})")
        return False
    return True


def _nftables(namespace: str) -> None:
    # The real ruleset, not a token table: it needs inet nat, fib, reject, ether matches and
    # dynamic sets, any of which a kernel may lack.
    full = Role("probe_full", vlan=10, captive=False)
    spec = RulesetSpec(
        roles=(builtin_role("quarantine"), builtin_role(REMEDIATION), full),
        access_interfaces=("probe-acc0",),
        upstream_interfaces=("probe-up0",),
    )
    with Nftables(namespace) as nft:
        nft.run(render_ruleset(spec))


def _conntrack(namespace: str) -> None:
    with ConntrackFlusher(namespace) as flusher:
        flusher.count()


def _filtered_flush(namespace: str) -> None:
    with ConntrackFlusher(namespace) as flusher:
        if not flusher.supports_filtered_flush():
            raise RuntimeError("the kernel refuses CTA_FILTER on a flush; flushes dump the table")


def _filtered_flush_v6(namespace: str) -> None:
    # Two entries, a flush by the first one's address: a sound kernel deletes that one. Only
    # ever run in a throwaway namespace: a kernel that inverts the match (6.18 does) deletes
    # every OTHER IPv6 entry instead.
    with entered_netns(namespace), open(EVENTS_SYSCTL, "w") as setting:
        setting.write("1")
    sources = ("2001:db8:ffff::1", "2001:db8:ffff::2")
    with Conntrack(netns=namespace, nfgen_family=AF_INET6) as table:
        for source in sources:
            table.entry(
                "add",
                timeout=30,
                tuple_orig=NFCTAttrTuple(
                    family=AF_INET6,
                    saddr=source,
                    daddr="2001:db8:ffff::a",
                    proto=17,
                    sport=4000,
                    dport=53,
                ),
                tuple_reply=NFCTAttrTuple(
                    family=AF_INET6,
                    saddr="2001:db8:ffff::a",
                    daddr=source,
                    proto=17,
                    sport=53,
                    dport=4000,
                ),
            )
        with ConntrackFlusher(namespace, ipv6_in_kernel=True) as flusher:
            flusher.flush([sources[0]])
        left = {str(entry.tuple_orig.saddr) for entry in table.dump_entries()}
    if left != {sources[1]}:
        raise RuntimeError(
            f"a flush of {sources[0]} left {sorted(left)}, expected only {sources[1]}:"
            " the kernel's IPv6 filter is unsound; IPv6 flushes dump the table"
        )


def _vlan(namespace: str) -> None:
    with IPRoute(netns=namespace) as ipr:
        parent = _veth(ipr)
        ipr.link("add", ifname="probe0.7", kind="vlan", link=parent, vlan_id=7)


def _bridge_vlan_filtering(namespace: str) -> None:
    with IPRoute(netns=namespace) as ipr:
        ipr.link("add", ifname="probe-br0", kind="bridge")
        ipr.link("set", ifname="probe-br0", kind="bridge", br_vlan_filtering=1)
        link = ipr.link("get", ifname="probe-br0")[0]
        data = link.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA")
        if data.get_attr("IFLA_BR_VLAN_FILTERING") != 1:
            raise RuntimeError("the bridge accepted vlan_filtering=1 but reports it off")


def _veth(ipr: Any) -> int:
    # veth, not dummy: some kernels (this lab's) build no dummy driver.
    if not ipr.link_lookup(ifname="probe0"):
        ipr.link("add", ifname="probe0", kind="veth", peer="probe1")
    index: int = ipr.link_lookup(ifname="probe0")[0]
    return index
