"""Per-endpoint role changes as set element updates: many changes, one nft transaction, O(1)
each in the number of enrolled endpoints; and reconciliation of the sets with the store."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from netaccess.enforce.errors import EnforcementError
from netaccess.enforce.nft import ElementOp, ElementUpdate, Nftables, set_elements
from netaccess.enforce.ruleset import (
    MAC,
    TABLE,
    RoleMembers,
    SetKind,
    normalize,
    normalize_ipv4,
    normalize_ipv6,
    normalize_mac,
    set_names,
)

# Already in normal form (lower case), the usual input: one match instead of two steps.
_is_normal_mac = MAC.match
_SET_NAME = re.compile(r"role_([a-z][a-z0-9_]{0,23})_(mac|v4|v6)\Z")
_KIND_OF_SUFFIX = {"mac": SetKind.MAC, "v4": SetKind.IPV4, "v6": SetKind.IPV6}


class RoleChange(NamedTuple):
    """Move an endpoint's MAC and/or addresses from old_role (None: in no set) to new_role
    (None: in no set any more, e.g. an address the endpoint released). A named tuple: a
    burst of 10k changes builds 10k of them, and a frozen dataclass costs four times more."""

    mac: str | None
    ipv4: tuple[str, ...]
    ipv6: tuple[str, ...]
    old_role: str | None
    new_role: str | None

    @property
    def addresses(self) -> tuple[str, ...]:
        """The IP addresses whose conntrack entries the change should flush."""
        return (*self.ipv4, *self.ipv6)


@dataclass(frozen=True, slots=True)
class Repairs:
    """What reconcile changed, per role: elements put back, and stray elements taken out."""

    restored: Mapping[str, RoleMembers]
    removed: Mapping[str, RoleMembers]

    def __bool__(self) -> bool:
        return bool(self.restored or self.removed)


class RoleSets:
    """The role sets of the netaccess table, changed through one Nftables context."""

    def __init__(self, nft: Nftables) -> None:
        self._nft = nft

    def apply(self, changes: Sequence[RoleChange]) -> None:
        """Apply `changes` in one transaction: all of them take effect at once, or none.
        prepare_apply(changes)() in one step.

        Several changes of one element in a batch fold into its last role. Removing an
        element that is already gone (deleted by hand, say) never fails the batch: nft 1.0.6
        has no `destroy element`, but the kernel's DESTROYSETELEM (Linux 6.3) is sent
        directly, and on older kernels an add of the same element precedes the delete in
        the same transaction, which makes the pair always succeed. No listing is needed.
        """
        self.prepare_apply(changes)()

    def prepare_apply(self, changes: Sequence[RoleChange]) -> Callable[[], None]:
        """Work out and encode the transaction of apply(changes) now (Python), and return
        the function that commits it (the kernel's work, on whichever thread calls it).
        Malformed elements raise here, before anything is sent."""
        roles = ({c.old_role for c in changes} | {c.new_role for c in changes}) - {None}
        for role in roles:
            set_names(role)
        # Per kind: where each element ends up, and every role it may have been in.
        final: dict[SetKind, dict[str, str | None]] = {kind: {} for kind in SetKind}
        leaving: dict[SetKind, list[tuple[str, str]]] = {kind: [] for kind in SetKind}
        macs, macs_leaving = final[SetKind.MAC], leaving[SetKind.MAC]
        v4, v4_leaving = final[SetKind.IPV4], leaving[SetKind.IPV4]
        v6, v6_leaving = final[SetKind.IPV6], leaving[SetKind.IPV6]
        for mac, ipv4, ipv6, old, new in changes:
            if mac is not None:
                value = mac if _is_normal_mac(mac) else normalize_mac(mac)
                _fold(value, old, new, macs, macs_leaving)
            for address in ipv4:
                _fold(normalize_ipv4(address), old, new, v4, v4_leaving)
            for address in ipv6:
                _fold(normalize_ipv6(address), old, new, v6, v6_leaving)
        removals: dict[tuple[str, SetKind], list[str]] = {}
        additions: dict[tuple[str, SetKind], list[str]] = {}
        for kind in SetKind:
            ends = final[kind]
            leave_by_role: dict[str | None, list[str]] = {role: [] for role in roles}
            for value, role in leaving[kind]:
                if ends[value] != role:
                    leave_by_role[role].append(value)
            join_by_role: dict[str | None, list[str]] = {role: [] for role in roles}
            join_by_role[None] = []  # what ends in no set
            for value, new_role in ends.items():
                join_by_role[new_role].append(value)
            removals.update(((r, kind), v) for r, v in leave_by_role.items() if v and r)
            additions.update(((r, kind), v) for r, v in join_by_role.items() if v and r)
        return self._prepared(removals, additions, f"applying {len(changes)} role changes")

    def move_macs(self, moves: Mapping[tuple[str | None, str | None], Sequence[str]]) -> None:
        """Move each MAC from the first role of its (old, new) pair to the second (None: in
        no set), in one transaction: the usual burst, L2 endpoints changing role. The fast
        path of apply(): when every MAC is already in normal form and appears once, no
        element needs folding, and the changes group as they come. Otherwise apply() does
        the normalising, the folding and the errors."""
        self.prepare_move_macs(moves)()

    def prepare_move_macs(
        self, moves: Mapping[tuple[str | None, str | None], Sequence[str]]
    ) -> Callable[[], None]:
        """move_macs in two steps, as prepare_apply is apply."""
        macs = [mac for group in moves.values() for mac in group]
        if len(set(macs)) != len(macs) or not normal_macs(macs):
            return self.prepare_apply(
                [
                    RoleChange(mac, (), (), old, new)
                    for (old, new), group in moves.items()
                    for mac in group
                ]
            )
        removals: dict[tuple[str, SetKind], list[str]] = {}
        additions: dict[tuple[str, SetKind], list[str]] = {}
        for (old, new), group in moves.items():
            if old == new or not group:
                continue
            if old is not None:
                set_names(old)
                removals.setdefault((old, SetKind.MAC), []).extend(group)
            if new is not None:
                set_names(new)
                additions.setdefault((new, SetKind.MAC), []).extend(group)
        return self._prepared(
            removals, additions, f"moving {len(macs)} MACs between role sets", distinct=True
        )

    def members(self) -> dict[str, RoleMembers]:
        """The kernel's truth: the elements of every role's sets, by role name."""
        listing = self._nft.run_json(f"list table {TABLE}")
        found: dict[str, dict[SetKind, list[str]]] = {}
        for item in listing.get("nftables", []):
            set_json = item.get("set")
            if set_json is None:
                continue
            match = _SET_NAME.match(str(set_json.get("name", "")))
            if match is None:
                continue
            role, suffix = match.groups()
            kinds = found.setdefault(role, {kind: [] for kind in SetKind})
            kinds[_KIND_OF_SUFFIX[suffix]] = sorted(set_elements(set_json))
        return {
            role: RoleMembers(
                macs=tuple(kinds[SetKind.MAC]),
                ipv4=tuple(kinds[SetKind.IPV4]),
                ipv6=tuple(kinds[SetKind.IPV6]),
            )
            for role, kinds in sorted(found.items())
        }

    def counters(self) -> dict[str, tuple[int, int]]:
        """Packets and bytes judged under each role so far, from its chain's counter."""
        listing = self._nft.run_json(f"list table {TABLE}")
        found: dict[str, tuple[int, int]] = {}
        chain = ""
        for item in listing.get("nftables", []):
            rule = item.get("rule")
            if rule is None:
                continue
            chain = str(rule.get("chain", ""))
            if not chain.startswith("role_"):
                continue
            for statement in rule.get("expr", []):
                counter = statement.get("counter") if isinstance(statement, dict) else None
                if isinstance(counter, dict):
                    found[chain.removeprefix("role_")] = (
                        int(counter.get("packets", 0)),
                        int(counter.get("bytes", 0)),
                    )
        return found

    def reconcile(self, desired: Mapping[str, RoleMembers]) -> Repairs:
        """Make the kernel's sets equal `desired` (every role's complete membership; a role
        left out must be empty) in one transaction, and report what had to change.

        Call it from the thread that calls apply, so no change lands between the listing
        and the repair.
        """
        actual = self.members()
        unknown = sorted(set(desired) - set(actual))
        if unknown:
            raise EnforcementError(
                f"reconcile: roles {unknown} have no sets in table {TABLE}; load a ruleset"
                " that declares them first"
            )
        removals: dict[tuple[str, SetKind], list[str]] = {}
        additions: dict[tuple[str, SetKind], list[str]] = {}
        for role, have in actual.items():
            want = desired.get(role, RoleMembers())
            for kind in SetKind:
                wanted = {normalize(kind, value) for value in _of_kind(want, kind)}
                present = set(_of_kind(have, kind))
                if wanted - present:
                    additions[(role, kind)] = sorted(wanted - present)
                if present - wanted:
                    removals[(role, kind)] = sorted(present - wanted)
        self._prepared(removals, additions, "reconciling the role sets")()
        return Repairs(restored=_by_role(additions), removed=_by_role(removals))

    def _prepared(
        self,
        removals: Mapping[tuple[str, SetKind], list[str]],
        additions: Mapping[tuple[str, SetKind], list[str]],
        what: str,
        *,
        distinct: bool = False,
    ) -> Callable[[], None]:
        """The commit of these removals and additions, encoded. distinct: no value repeats
        within a group (the caller checked), so none need be dropped here."""
        # Removals first: an element moving between roles is never in two roles' sets, not
        # even inside the transaction.
        updates = [
            ElementUpdate(
                op,
                set_names(role).of(kind),
                kind,
                tuple(values) if distinct else tuple(dict.fromkeys(values)),
            )
            for op, group in ((ElementOp.REMOVE, removals), (ElementOp.ADD, additions))
            for (role, kind), values in sorted(group.items(), key=_key)
        ]
        commit = self._nft.prepare_elements(updates)

        def committed() -> None:
            try:
                commit()
            except EnforcementError as exc:
                raise EnforcementError(f"{what}: {exc}") from exc

        return committed


def normal_macs(macs: Sequence[str]) -> bool:
    """Whether every one of `macs` is in normal form (what ruleset.MAC matches: lower-case hex
    pairs joined by colons), checked in a few passes over one string rather than a regular
    expression per MAC: a burst brings 10k."""
    count = len(macs)
    if not count:
        return True
    text = ":".join(macs) + ":"
    if len(text) != 18 * count or text[2::3] != ":" * (6 * count):
        return False
    digits = text.replace(":", "")
    # isascii and isalnum: no whitespace or other characters fromhex would skip or accept.
    if not (digits.isascii() and digits.isalnum()) or digits != digits.lower():
        return False
    try:
        return len(bytes.fromhex(digits)) == 6 * count
    except ValueError:
        return False


def _fold(
    value: str,
    old: str | None,
    new: str | None,
    final: dict[str, str | None],
    leaving: list[tuple[str, str]],
) -> None:
    """Record that `value` moves from `old` to `new`, after what earlier changes did."""
    earlier = final.get(value)
    if earlier is not None:
        leaving.append((value, earlier))
    if old is not None:
        leaving.append((value, old))
    final[value] = new


def _key(item: tuple[tuple[str, SetKind], list[str]]) -> tuple[str, str]:
    (role, kind), _ = item
    return role, kind.value


def _of_kind(members: RoleMembers, kind: SetKind) -> tuple[str, ...]:
    if kind is SetKind.MAC:
        return members.macs
    return members.ipv4 if kind is SetKind.IPV4 else members.ipv6


def _by_role(changes: Mapping[tuple[str, SetKind], list[str]]) -> dict[str, RoleMembers]:
    roles: dict[str, dict[SetKind, tuple[str, ...]]] = {}
    for (role, kind), values in changes.items():
        roles.setdefault(role, {})[kind] = tuple(sorted(values))
    return {
        role: RoleMembers(
            macs=kinds.get(SetKind.MAC, ()),
            ipv4=kinds.get(SetKind.IPV4, ()),
            ipv6=kinds.get(SetKind.IPV6, ()),
        )
        for role, kinds in sorted(roles.items())
    }
