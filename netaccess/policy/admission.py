"""Which role an endpoint gets at sign-in, from Host Checker verdicts (DESIGN.md §4).

1. Realm level, before sign-in: every realm policy for the endpoint's platform must be
   compliant; otherwise sign-in is denied, or the realm's remediation role applies.
2. Role mapping: rules on the user, their groups, the platform and reported facts give the
   candidate roles, in order.
3. Role level: a candidate whose policies (those for the endpoint's platform; every one
   when the platform is unknown, so an unidentified endpoint passes no Host Checker) are all
   compliant is satisfied. The endpoint gets the satisfied candidates (the first is its
   role). None satisfied: the remediation role, with every failed rule's remediation.
4. Mobile endpoints (iOS, Android) facing only roles whose policies are all for desktop
   platforms get a candidate role without Host Checker if one exists; otherwise they are
   denied with a message that says why.

Pure: verdicts come in (netaccess.policy.hostchecker.evaluate), a decision goes out.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from netaccess.policy.hostchecker import (
    Compliance,
    HostCheckerVerdict,
    Platform,
    Policy,
    Remediation,
)


@dataclass(frozen=True, slots=True)
class RoleMapping:
    """A mapping rule: every given condition must hold (an empty one holds for all)."""

    role: str
    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    platforms: frozenset[Platform] = frozenset()

    def matches(self, user: str, groups: frozenset[str], platform: Platform | None) -> bool:
        if self.users and user not in self.users:
            return False
        if self.groups and not (self.groups & groups):
            return False
        return not self.platforms or platform in self.platforms


@dataclass(frozen=True, slots=True)
class RealmAdmission:
    name: str
    policies: tuple[str, ...] = ()  # realm-level Host Checker policies
    remediation_role: str | None = None  # None: a realm-level failure denies sign-in
    mappings: tuple[RoleMapping, ...] = ()


@dataclass(frozen=True, slots=True)
class RoleAdmission:
    name: str
    policies: tuple[str, ...] = ()  # role-level Host Checker policies


class Outcome(enum.Enum):
    ADMITTED = "admitted"
    REMEDIATION = "remediation"
    DENIED = "denied"


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    role: str | None
    roles: tuple[str, ...] = ()  # every satisfied candidate, `role` first
    message: str = ""
    remediation: tuple[tuple[str, str, Remediation], ...] = ()  # (policy, rule, what to do)
    verdicts: tuple[HostCheckerVerdict, ...] = ()


REMEDIATION_ROLE = "remediation"


def decide(
    realm: RealmAdmission,
    roles: Mapping[str, RoleAdmission],
    policies: Mapping[str, Policy],
    verdicts: Mapping[str, HostCheckerVerdict],
    *,
    user: str,
    groups: frozenset[str] = frozenset(),
    platform: Platform | None,
) -> Decision:
    """`verdicts`: by policy name, for the policies that apply to this endpoint (its
    platform's); a policy for another platform is not in it and does not count."""
    used: list[HostCheckerVerdict] = []

    def applicable(names: Sequence[str]) -> list[str]:
        # An endpoint of unknown platform (no report, an unrecognised browser) cannot show
        # that any policy is not for it: every policy applies, and none has a verdict.
        return [
            n
            for n in names
            if n in policies and (platform is None or policies[n].platform is platform)
        ]

    def failures(names: Sequence[str]) -> list[HostCheckerVerdict]:
        found = []
        for name in names:
            verdict = verdicts.get(name)
            if verdict is not None:
                used.append(verdict)
            if verdict is None or verdict.compliance is not Compliance.COMPLIANT:
                found.append(verdict or _missing(name))
        return found

    realm_failed = failures(applicable(realm.policies))
    if realm_failed:
        items = _remediation(realm_failed)
        if realm.remediation_role is None:
            return Decision(
                Outcome.DENIED,
                None,
                message=f"sign-in to {realm.name} needs: {_summary(realm_failed)}",
                remediation=items,
                verdicts=tuple(used),
            )
        return Decision(
            Outcome.REMEDIATION,
            realm.remediation_role,
            (realm.remediation_role,),
            f"{realm.name}: {_summary(realm_failed)}",
            items,
            tuple(used),
        )
    candidates = _unique(
        m.role for m in realm.mappings if m.matches(user, groups, platform) and m.role in roles
    )
    if not candidates:
        return Decision(
            Outcome.DENIED,
            None,
            message=f"no role of {realm.name} maps to {user}",
            verdicts=tuple(used),
        )
    satisfied: list[str] = []
    failed: list[HostCheckerVerdict] = []
    other_platforms: list[str] = []
    for name in candidates:
        role_policies = roles[name].policies
        mine = applicable(role_policies)
        if role_policies and not mine:
            other_platforms.append(name)  # its Host Checker is for other platforms only
            continue
        role_failed = failures(mine)
        if role_failed:
            failed.extend(role_failed)
        else:
            satisfied.append(name)  # a role without Host Checker is satisfied at once
    if satisfied:
        return Decision(Outcome.ADMITTED, satisfied[0], tuple(satisfied), verdicts=tuple(used))
    if other_platforms and platform is not None and platform.mobile and not failed:
        return Decision(
            Outcome.DENIED,
            None,
            message=(
                f"the roles of {realm.name} for {user} check desktop devices only; sign in"
                " from a computer, or ask your administrator for a mobile role"
            ),
            verdicts=tuple(used),
        )
    return Decision(
        Outcome.REMEDIATION,
        REMEDIATION_ROLE,
        (REMEDIATION_ROLE,),
        f"no role's checks pass: {_summary(failed)}" if failed else "no role's checks pass",
        _remediation(failed),
        tuple(used),
    )


def _missing(policy: str) -> HostCheckerVerdict:
    return HostCheckerVerdict(policy, Compliance.UNKNOWN, ())


def _remediation(
    verdicts: Sequence[HostCheckerVerdict],
) -> tuple[tuple[str, str, Remediation], ...]:
    seen: set[tuple[str, str]] = set()
    items = []
    for verdict in verdicts:
        for rule, remediation in verdict.remediation:
            if (verdict.policy, rule) not in seen:
                seen.add((verdict.policy, rule))
                items.append((verdict.policy, rule, remediation))
    return tuple(items)


def _summary(verdicts: Sequence[HostCheckerVerdict]) -> str:
    return ", ".join(f"{v.policy} ({v.compliance.value})" for v in verdicts)


def _unique(names: Iterable[str]) -> list[str]:
    found: list[str] = []
    for name in names:
        if name not in found:
            found.append(name)
    return found
