"""The enforcer's view of the kernel: the ruleset, the role sets and conntrack, behind intents.

Memberships arrive as (old, new) pairs from netaccessd; this turns them into one nftables
transaction and one conntrack flush, and reports per-role state for `enforcement show`.
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Callable, Sequence
from typing import Any

from netaccess.enforce.conntrack import Beside, ConntrackFlusher, FlowIndex
from netaccess.enforce.errors import EnforcementError
from netaccess.enforce.intents import Membership, MembershipChange
from netaccess.enforce.kernel import KernelFeatures, detect
from netaccess.enforce.nft import Nftables
from netaccess.enforce.ruleset import RoleMembers, RulesetSpec, render_ruleset
from netaccess.enforce.sets import RoleChange, RoleSets
from netaccess.policy.roles import QUARANTINE

# From this many changes on, with a `beside` to run it on, a burst's set transaction commits
# on another thread while this one deletes the flows: for a few changes, handing work to a
# thread would cost more than it saves.
BESIDE_FROM = 64
# The flow index sweeps the identities bursts left stale (FlowIndex.compact) once there are
# this many, or a quarter of its size if that is more.
COMPACT_FROM = 4096


class KernelEnforcement:
    def __init__(
        self,
        spec: RulesetSpec,
        nft: Nftables,
        sets: RoleSets,
        conntrack: ConntrackFlusher,
        features: KernelFeatures,
        flow_index: FlowIndex | None = None,
        beside: Beside | None = None,
    ) -> None:
        self.spec = spec
        self._beside = beside
        self._nft = nft
        self._sets = sets
        self._conntrack = conntrack
        # Owned here, lent to the flusher: flushes look flows up in it while it is healthy.
        self._flow_index = flow_index
        conntrack.index = flow_index
        self.flow_index_error: str | None = None  # the last failure to drain or rebuild it
        self.features = features
        self.changes_applied = 0
        self.flows_deleted = 0
        self.reconciles = 0
        self.repairs = 0

    @classmethod
    def start(cls, spec: RulesetSpec, beside: Beside | None = None) -> KernelEnforcement:
        """Load the ruleset, keeping the memberships the kernel already holds.

        An enforcer restart must not open or close anything: the table is replaced atomically
        with the same elements it had, and netaccessd's reconcile corrects them afterwards.
        """
        nft = Nftables()
        sets = RoleSets(nft)
        try:
            current = sets.members()
        except EnforcementError:
            current = {}  # no table yet: first start
        roles = {role.name for role in spec.roles}
        kept = {name: members for name, members in current.items() if name in roles}
        nft.load_ruleset(render_ruleset(dataclasses.replace(spec, members=kept)))
        kernel = cls(spec, nft, sets, ConntrackFlusher(), detect(), FlowIndex(), beside)
        settle_heap()  # the index was just seeded
        return kernel

    def apply(self, changes: Sequence[MembershipChange]) -> int:
        """One transaction for all set changes, then one flush for the endpoints whose role
        changed; returns the number of flows deleted. A burst (BESIDE_FROM changes or more,
        given a `beside`) commits the transaction on another thread while the flush runs:
        see ConntrackFlusher.flush_alongside."""
        update: Callable[[], None]
        burst = _same_mac_moves(changes)
        if burst is not None:
            by_pair, flushed = burst
            update = self._sets.prepare_move_macs(by_pair)
        else:
            moves: list[RoleChange] = []
            flushed = []  # MembershipChange.addresses of each, inlined for bursts
            for change in changes:
                moves += role_changes(change)
                old, new = change.old, change.new
                if old is None or old.role != new.role:
                    if old is not None:
                        flushed += old.ipv4
                        flushed += old.ipv6
                    flushed += new.ipv4
                    flushed += new.ipv6
            update = self._sets.prepare_apply(moves)
        addresses = flushed  # repeats included: the flush packs them into sets
        beside = self._beside
        if beside is not None and addresses and len(changes) >= BESIDE_FROM:
            deleted = self._counted(self._conntrack.flush_alongside(addresses, update, beside))
        else:
            update()
            deleted = self.flush(addresses) if addresses else 0
        self.changes_applied += len(changes)
        return deleted

    def flush(self, addresses: Sequence[str]) -> int:
        return self._counted(self._conntrack.flush(addresses))  # drains the flow index first

    def _counted(self, deleted: int) -> int:
        """Count a flush's deletions; rebuild the flow index if the flush found it stale."""
        self.flows_deleted += deleted
        index = self._flow_index
        if index is not None and not index.healthy:
            # This flush walked the table; rebuild the index so that the next one need not.
            # A failed rebuild must not fail the flush that succeeded: the index stays stale,
            # flushes keep walking the table, and the next one (or an event) retries.
            try:
                index.reseed()
                settle_heap()
            except EnforcementError as exc:
                self.flow_index_error = str(exc)
        return deleted

    def flow_index_fileno(self) -> int | None:
        """The descriptor that becomes readable when conntrack events wait for
        refresh_flow_index(); None without a flow index."""
        return self._flow_index.fileno() if self._flow_index is not None else None

    def refresh_flow_index(self) -> None:
        """Apply waiting conntrack events; rebuild the index if some were lost."""
        index = self._flow_index
        if index is None:
            return
        try:
            index.drain()
            if not index.healthy:
                index.reseed()
                settle_heap()
            else:
                # Amortised: a sweep walks about as many identities as bursts left stale.
                index.compact(at_least=max(COMPACT_FROM, len(index) // 4))
        except EnforcementError as exc:
            self.flow_index_error = str(exc)
            raise

    def reconcile(self, desired: Sequence[Membership]) -> dict[str, Any]:
        grouped: dict[str, dict[str, list[str]]] = {
            role.name: {"macs": [], "ipv4": [], "ipv6": []} for role in self.spec.roles
        }
        for m in desired:
            if m.role not in grouped:
                raise EnforcementError(f"reconcile: role {m.role!r} is not in the loaded ruleset")
            mac, ipv4, ipv6 = m.set_elements()
            if mac is not None:
                grouped[m.role]["macs"].append(mac)
            grouped[m.role]["ipv4"] += ipv4
            grouped[m.role]["ipv6"] += ipv6
        repairs = self._sets.reconcile(
            {
                role: RoleMembers(tuple(g["macs"]), tuple(g["ipv4"]), tuple(g["ipv6"]))
                for role, g in grouped.items()
            }
        )
        self.reconciles += 1
        settle_heap()  # periodic, and the flows indexed since the last time are few
        result = {
            "restored": {role: _elements(m) for role, m in repairs.restored.items()},
            "removed": {role: _elements(m) for role, m in repairs.removed.items()},
        }
        self.repairs += sum(len(v) for part in result.values() for v in part.values())
        return result

    def status(self) -> dict[str, Any]:
        members = self._sets.members()
        counters = self._sets.counters()
        roles = {
            role.name: {
                "macs": len(members.get(role.name, RoleMembers()).macs),
                "ipv4": len(members.get(role.name, RoleMembers()).ipv4),
                "ipv6": len(members.get(role.name, RoleMembers()).ipv6),
                "packets": counters.get(role.name, (0, 0))[0],
                "bytes": counters.get(role.name, (0, 0))[1],
            }
            for role in self.spec.roles
        }
        return {
            "roles": roles,
            "changes_applied": self.changes_applied,
            "flows_deleted": self.flows_deleted,
            "reconciles": self.reconciles,
            "repairs": self.repairs,
            "flow_index": None
            if self._flow_index is None
            else {
                "healthy": self._flow_index.healthy,
                "flows": len(self._flow_index),
                "overflows": self._flow_index.overflows,
                "seeds": self._flow_index.seeds,
                "last_error": self.flow_index_error,
            },
            "kernel": dataclasses.asdict(self.features),
        }


def _elements(members: RoleMembers) -> list[str]:
    return [*members.macs, *members.ipv4, *members.ipv6]


def _same_mac_moves(
    changes: Sequence[MembershipChange],
) -> tuple[dict[tuple[str | None, str | None], list[str]], list[str]] | None:
    """For a burst of L2 endpoints that keep their MAC (the usual one): the MACs grouped by
    (old role's set, new role's set), None standing for quarantine's empty sets, and the
    addresses to flush (MembershipChange.addresses of each, not yet deduplicated). None if
    any change is another kind: then role_changes takes them one by one."""
    by_pair: dict[tuple[str | None, str | None], list[str]] = {}
    flushed: list[str] = []
    for change in changes:
        old, new = change.old, change.new
        if old is None:
            return None
        mac = new.mac
        if mac is None or old.mac != mac:
            return None
        old_role, new_role = old.role, new.role
        if old_role == new_role:
            continue  # renumbered at most: no set holds its addresses, its flows stay
        pair = (
            None if old_role == QUARANTINE else old_role,
            None if new_role == QUARANTINE else new_role,
        )
        group = by_pair.get(pair)
        if group is None:
            group = by_pair[pair] = []
        group.append(mac)
        flushed += old.ipv4
        flushed += old.ipv6
        if new.ipv4 != old.ipv4 or new.ipv6 != old.ipv6:
            flushed += new.ipv4
            flushed += new.ipv6
    return by_pair, flushed


def role_changes(change: MembershipChange) -> list[RoleChange]:
    """The set moves of one membership change: each element the endpoint has in its new role
    moves there from wherever it was; each element it no longer has leaves its old role.
    Nothing at all when the elements and the role stay (an L2 endpoint renumbered)."""
    new, old = change.new, change.old
    if old is not None and new.mac is not None and old.mac == new.mac:
        # An L2 endpoint, the usual case, short-cut for bursts: its MAC moves, unless
        # quarantine (in no set) is where it comes from and where it goes.
        source = None if old.role == QUARANTINE else old.role
        target = None if new.role == QUARANTINE else new.role
        return [] if source == target else [RoleChange(new.mac, (), (), source, target)]
    new_mac, new4, new6 = new.set_elements()
    if old is None:
        old_mac: str | None = None
        old4: tuple[str, ...] = ()
        old6: tuple[str, ...] = ()
        old_role = None
    else:
        old_mac, old4, old6 = old.set_elements()
        old_role = old.role
    if not (old4 or old6 or new4 or new6):
        # MACs alone, the usual case: one move at most.
        if old_mac == new_mac:
            if new_mac is None or old_role == new.role:
                return []
            return [RoleChange(new_mac, (), (), old_role, new.role)]
        out = []
        if new_mac is not None:
            out.append(RoleChange(new_mac, (), (), None, new.role))
        if old_mac is not None:
            out.append(RoleChange(old_mac, (), (), old_role, None))
        return out
    # The general case: group the elements by where they come from and where they go.
    moves: dict[tuple[str | None, str | None], tuple[list[str], list[str], list[str]]] = {}
    for index, (olds, news) in enumerate(
        (
            (() if old_mac is None else (old_mac,), () if new_mac is None else (new_mac,)),
            (old4, new4),
            (old6, new6),
        )
    ):
        for element in dict.fromkeys((*news, *olds)):
            source = old_role if element in olds else None
            target = new.role if element in news else None
            if source != target:
                moves.setdefault((source, target), ([], [], []))[index].append(element)
    return [
        RoleChange(macs[0] if macs else None, tuple(v4), tuple(v6), source, target)
        for (source, target), (macs, v4, v6) in moves.items()
    ]


def settle_heap() -> None:
    """Collect garbage once, then put every surviving object out of the collector's sight
    (gc.freeze). The flow index holds hundreds of thousands of long-lived containers; a full
    collection that walks them stalls the process for tens of milliseconds at a moment of
    its choosing, often in the middle of a burst of role changes. Frozen objects are still
    freed when their last reference goes; only cycles among them would stay, and the index
    makes none. Call it when idle: after seeding the index, and periodically (each reconcile)
    so that what was indexed since is frozen too; a collection after a freeze walks only the
    objects made since, so it costs little."""
    gc.collect()
    gc.freeze()
