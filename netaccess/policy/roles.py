"""Roles: what an endpoint may reach, its VLAN for switches, and whether it is captive."""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass

from netaccess.policy.admission import RealmAdmission, RoleMapping

QUARANTINE = "quarantine"
REMEDIATION = "remediation"
BUILTIN_ROLES = (QUARANTINE, REMEDIATION)
ROLE_NAME_MAX = 24  # role names become nftables set and chain names


class Protocol(enum.Enum):
    ANY = "any"
    TCP = "tcp"
    UDP = "udp"
    ICMP = "icmp"


@dataclass(frozen=True, slots=True)
class Destination:
    """One `allow` entry: a network, optionally narrowed to a protocol and ports."""

    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    protocol: Protocol = Protocol.ANY
    ports: tuple[int, ...] = ()  # empty: every port; only with tcp or udp


@dataclass(frozen=True, slots=True)
class Realm:
    """Where portal users log in. Its local users, once authenticated, get a role: the
    first of `mappings` (then `role`, the default) whose Host Checker policies they pass
    (netaccess.policy.admission). `policies`: realm-level Host Checker policies, checked
    before sign-in; failing them denies sign-in, or gives `remediation_role` if set."""

    name: str
    role: str
    title: str = ""
    policies: tuple[str, ...] = ()
    remediation_role: str | None = None
    mappings: tuple[RoleMapping, ...] = ()
    # Seconds a collected posture report may stand for an endpoint without a new one
    # (netaccess.policy.standing); None: no lease, the latest report always counts.
    reuse_result_for: float | None = None
    # Whether its users may sign in with MSCHAPv2 (802.1X PEAP): their NT hash, a password
    # equivalent, is then kept (sealed) beside the scrypt hash when a password is set.
    mschapv2: bool = False

    def admission(self) -> RealmAdmission:
        """The realm as sign-in decides on it: its mappings, then the default role."""
        return RealmAdmission(
            self.name,
            self.policies,
            self.remediation_role,
            (*self.mappings, RoleMapping(self.role)),
        )


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    vlan: int
    captive: bool
    allow: tuple[Destination, ...] = ()
    recheck_interval: float | None = None  # seconds
    session_lifetime: float | None = None  # seconds
    policies: tuple[str, ...] = ()  # role-level Host Checker policies (by name)

    @property
    def builtin(self) -> bool:
        return self.name in BUILTIN_ROLES


def builtin_role(name: str) -> Role:
    """The built-in roles as they are when the config says nothing about them.

    quarantine reaches only the appliance (DHCP, DNS, portal, agent download: the ruleset's
    input side) and is captive; remediation adds whatever the config allows (the remediation
    servers), and is captive too.
    """
    if name == QUARANTINE:
        return Role(QUARANTINE, vlan=999, captive=True)
    if name == REMEDIATION:
        return Role(REMEDIATION, vlan=998, captive=True)
    raise KeyError(name)
