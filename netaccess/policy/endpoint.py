"""The endpoint as the appliance knows it, and how one Observation changes it (pure)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

from netaccess.policy.roles import QUARANTINE, REMEDIATION
from netaccess.proto.detect import DhcpMessageType, Observation, ObservationSource

# An endpoint heard only at Layer 2 (an 802.1X supplicant's EAPOL, no DHCP, no ARP) has no IP
# path to the portal, so it cannot fetch the agent (DESIGN.md §4): it gets the remediation
# role with these instructions until it shows up at Layer 3, when it returns to quarantine
# and the captive portal.
LAYER2_ONLY_INSTRUCTIONS = (
    "The agent cannot be downloaded over a Layer 2 connection: retry over Layer 3,"
    " or contact the administrator."
)
REACHED_OVER_LAYER3 = "seen at Layer 3: the portal and the agent download can be reached"

# last_seen alone is persisted at most this often per endpoint: ARP chatter must not turn
# into a database write per frame. The in-memory copy is always exact.
LAST_SEEN_PERSIST_INTERVAL = 30.0


class EndpointState(enum.Enum):
    ACTIVE = "active"
    GONE = "gone"


class EventKind(enum.Enum):
    DISCOVERED = "discovered"
    IP_LEARNED = "ip-learned"
    IP_RELEASED = "ip-released"
    HOSTNAME_CHANGED = "hostname-changed"
    FINGERPRINT_CHANGED = "fingerprint-changed"
    GONE = "gone"
    RETURNED = "returned"
    ROLE_CHANGED = "role-changed"
    ENFORCEMENT_REPAIRED = "enforcement-repaired"
    COA = "coa"  # a CoA or Disconnect to the NAS holding its session, and what came of it


@dataclass(frozen=True, slots=True)
class Endpoint:
    mac: str
    first_seen: float
    last_seen: float
    ips: tuple[str, ...] = ()
    hostname: str | None = None
    vendor_class: str | None = None
    fingerprint: str | None = None
    role: str = QUARANTINE
    state: EndpointState = EndpointState.ACTIVE
    layer2_only: bool = False  # heard at Layer 2 only so far (see LAYER2_ONLY_INSTRUCTIONS)


@dataclass(frozen=True, slots=True)
class EndpointEvent:
    at: float
    mac: str
    kind: EventKind
    detail: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Learned:
    """The outcome of one observation.

    persist: the endpoint changed in a way the store must keep now (anything but a small
    last_seen advance).
    """

    endpoint: Endpoint
    events: tuple[EndpointEvent, ...]
    persist: bool


def proves_presence(obs: Observation) -> bool:
    """Whether `obs` may create an endpoint we have never seen.

    The endpoint's own frames do, and so does a server's ACK (it grants a live lease). An
    OFFER or NAK does not: a server answers any chaddr, even one a broken or forged DISCOVER
    made up, and such a MAC must not enter the inventory.
    """
    return obs.from_client or obs.dhcp_type is DhcpMessageType.ACK


def learn(current: Endpoint | None, obs: Observation, last_persisted: float | None) -> Learned:
    """Fold one Observation into the endpoint it is about.

    `last_persisted` is when this endpoint's row was last written (None if never); it lets
    last_seen-only updates be coalesced.
    """
    now = obs.at
    events: list[EndpointEvent] = []
    if current is None:
        ep = Endpoint(mac=obs.mac, first_seen=now, last_seen=now)
        events.append(EndpointEvent(now, obs.mac, EventKind.DISCOVERED, {"via": obs.source.value}))
        if obs.source is ObservationSource.EAPOL:
            ep = replace(ep, layer2_only=True, role=REMEDIATION)
            events.append(
                _detected_role(now, obs.mac, QUARANTINE, REMEDIATION, LAYER2_ONLY_INSTRUCTIONS)
            )
    else:
        ep = replace(current, last_seen=max(current.last_seen, now))
    if ep.layer2_only and obs.source in _LAYER3_CONTACT:
        ep = replace(ep, layer2_only=False)
        if ep.role == REMEDIATION:
            ep = replace(ep, role=QUARANTINE)
            events.append(
                _detected_role(now, obs.mac, REMEDIATION, QUARANTINE, REACHED_OVER_LAYER3)
            )

    if obs.is_release:
        if obs.ip is not None and obs.ip in ep.ips:
            ep = replace(ep, ips=tuple(i for i in ep.ips if i != obs.ip))
            events.append(EndpointEvent(now, obs.mac, EventKind.IP_RELEASED, {"ip": obs.ip}))
        if ep.state is not EndpointState.GONE:
            ep = replace(ep, state=EndpointState.GONE)
            events.append(EndpointEvent(now, obs.mac, EventKind.GONE, {"reason": "dhcp-release"}))
        return Learned(ep, tuple(events), True)

    # Any sighting after a release brings the endpoint back: its own frames prove it is
    # present, and a server's ACK hands it a live lease.
    if ep.state is EndpointState.GONE:
        ep = replace(ep, state=EndpointState.ACTIVE)
        events.append(EndpointEvent(now, obs.mac, EventKind.RETURNED, {"via": obs.source.value}))

    if obs.ip is not None and obs.ip not in ep.ips:
        ep = replace(ep, ips=(*ep.ips, obs.ip))
        events.append(
            EndpointEvent(now, obs.mac, EventKind.IP_LEARNED, {"ip": obs.ip, "via": _via(obs)})
        )
    # First values are part of discovery; only replacing a known value is news.
    if obs.hostname is not None and obs.hostname != ep.hostname:
        if ep.hostname is not None:
            events.append(
                EndpointEvent(
                    now,
                    obs.mac,
                    EventKind.HOSTNAME_CHANGED,
                    {"old": ep.hostname, "new": obs.hostname},
                )
            )
        ep = replace(ep, hostname=obs.hostname)
    if obs.vendor_class is not None and obs.vendor_class != ep.vendor_class:
        ep = replace(ep, vendor_class=obs.vendor_class)
    if obs.fingerprint is not None and obs.fingerprint != ep.fingerprint:
        if ep.fingerprint is not None:
            events.append(
                EndpointEvent(
                    now,
                    obs.mac,
                    EventKind.FINGERPRINT_CHANGED,
                    {"old": ep.fingerprint, "new": obs.fingerprint},
                )
            )
        ep = replace(ep, fingerprint=obs.fingerprint)

    changed = current is None or _fields_differ(current, ep)
    stale = last_persisted is None or now - last_persisted >= LAST_SEEN_PERSIST_INTERVAL
    return Learned(ep, tuple(events), changed or stale)


# DHCP and ARP are IPv4 on the way: the endpoint can reach the portal. A RADIUS request
# (MAB, 802.1X) says nothing either way.
_LAYER3_CONTACT = frozenset({ObservationSource.DHCP, ObservationSource.ARP})


def _detected_role(at: float, mac: str, old: str, new: str, reason: str) -> EndpointEvent:
    detail = {"old": old, "new": new, "reason": reason, "by": "detection"}
    return EndpointEvent(at, mac, EventKind.ROLE_CHANGED, detail)


def without_ip(ep: Endpoint, ip: str, at: float) -> tuple[Endpoint, EndpointEvent]:
    """The endpoint after `ip` moved to another MAC (an IP belongs to one MAC at a time)."""
    moved = replace(ep, ips=tuple(i for i in ep.ips if i != ip))
    return moved, EndpointEvent(at, ep.mac, EventKind.IP_RELEASED, {"ip": ip, "reason": "moved"})


def _via(obs: Observation) -> str:
    if obs.source is ObservationSource.ARP:
        return "arp"
    if obs.source is ObservationSource.RADIUS:
        return "radius-accounting"
    assert obs.dhcp_type is not None
    return f"dhcp-{obs.dhcp_type.name.lower()}"


def _fields_differ(a: Endpoint, b: Endpoint) -> bool:
    return (a.ips, a.hostname, a.vendor_class, a.fingerprint, a.role, a.state, a.layer2_only) != (
        b.ips,
        b.hostname,
        b.vendor_class,
        b.fingerprint,
        b.role,
        b.state,
        b.layer2_only,
    )


def assign_role(ep: Endpoint, role: str, *, at: float, reason: str, by: str) -> Learned:
    """An explicit role decision (an admin override now; Host Checker later), with its reason.

    Assigning the role an endpoint already has is not an event and needs no write.
    """
    if ep.role == role:
        return Learned(ep, (), False)
    event = EndpointEvent(
        at,
        ep.mac,
        EventKind.ROLE_CHANGED,
        {"old": ep.role, "new": role, "reason": reason, "by": by},
    )
    return Learned(replace(ep, role=role), (event,), True)
