from __future__ import annotations

import pytest

from netaccess.policy.endpoint import (
    LAST_SEEN_PERSIST_INTERVAL,
    LAYER2_ONLY_INSTRUCTIONS,
    QUARANTINE,
    REMEDIATION,
    EndpointState,
    EventKind,
    assign_role,
    learn,
)
from netaccess.proto.detect import DhcpMessageType, Observation, ObservationSource

MAC = "02:4e:41:00:00:01"


def dhcp(kind: DhcpMessageType, at: float, ip: str | None = None, **kw: object) -> Observation:
    return Observation(ObservationSource.DHCP, MAC, at, ip=ip, dhcp_type=kind, **kw)  # type: ignore[arg-type]


def arp(at: float, ip: str | None) -> Observation:
    return Observation(ObservationSource.ARP, MAC, at, ip=ip)


def test_first_sighting_creates_a_quarantined_endpoint_with_a_discovered_event() -> None:
    out = learn(
        None, dhcp(DhcpMessageType.DISCOVER, 100.0, hostname="ep1", fingerprint="1,3,6"), None
    )
    assert out.endpoint.role == QUARANTINE
    assert out.endpoint.first_seen == out.endpoint.last_seen == 100.0
    assert (out.endpoint.hostname, out.endpoint.fingerprint) == ("ep1", "1,3,6")
    assert out.events[0].kind is EventKind.DISCOVERED
    assert out.persist


def test_ack_teaches_the_ip_once() -> None:
    first = learn(None, dhcp(DhcpMessageType.ACK, 1.0, ip="198.18.0.10", from_client=False), None)
    again = learn(
        first.endpoint, dhcp(DhcpMessageType.ACK, 2.0, ip="198.18.0.10", from_client=False), 1.0
    )
    assert first.endpoint.ips == ("198.18.0.10",)
    assert EventKind.IP_LEARNED in [e.kind for e in first.events]
    assert again.endpoint.ips == ("198.18.0.10",)
    assert again.events == ()


def test_release_drops_the_ip_and_marks_the_endpoint_gone_but_keeps_it() -> None:
    leased = learn(None, dhcp(DhcpMessageType.ACK, 1.0, ip="198.18.0.10", from_client=False), None)
    released = learn(leased.endpoint, dhcp(DhcpMessageType.RELEASE, 5.0, ip="198.18.0.10"), 1.0)
    assert released.endpoint.state is EndpointState.GONE
    assert released.endpoint.ips == ()
    assert released.endpoint.first_seen == 1.0
    assert {e.kind for e in released.events} == {EventKind.IP_RELEASED, EventKind.GONE}


def test_a_gone_endpoint_that_speaks_again_returns() -> None:
    gone = learn(None, dhcp(DhcpMessageType.RELEASE, 1.0, ip=None), None).endpoint
    back = learn(gone, dhcp(DhcpMessageType.DISCOVER, 9.0), 1.0)
    assert back.endpoint.state is EndpointState.ACTIVE
    assert EventKind.RETURNED in [e.kind for e in back.events]


def test_arp_chatter_updates_last_seen_without_a_write_until_the_persist_interval() -> None:
    ep = learn(None, arp(0.0, "198.18.0.10"), None).endpoint
    soon = learn(ep, arp(1.0, "198.18.0.10"), 0.0)
    later = learn(soon.endpoint, arp(LAST_SEEN_PERSIST_INTERVAL, "198.18.0.10"), 0.0)
    assert soon.endpoint.last_seen == 1.0
    assert not soon.persist
    assert later.persist


def test_arp_probe_without_sender_ip_teaches_no_ip() -> None:
    out = learn(None, arp(0.0, None), None)
    assert out.endpoint.ips == ()


def test_hostname_change_is_an_event_with_old_and_new() -> None:
    ep = learn(None, dhcp(DhcpMessageType.DISCOVER, 0.0, hostname="old"), None).endpoint
    out = learn(ep, dhcp(DhcpMessageType.REQUEST, 1.0, hostname="new"), 0.0)
    changed = [e for e in out.events if e.kind is EventKind.HOSTNAME_CHANGED]
    assert changed[0].detail == {"old": "old", "new": "new"}
    assert out.endpoint.hostname == "new"


def test_first_hostname_and_fingerprint_are_part_of_discovery_not_change_events() -> None:
    out = learn(None, dhcp(DhcpMessageType.DISCOVER, 0.0, hostname="ep1", fingerprint="1,3"), None)
    assert [e.kind for e in out.events] == [EventKind.DISCOVERED]


def test_assigning_a_role_records_old_new_reason_and_who() -> None:
    ep = learn(None, arp(0.0, "198.18.0.10"), None).endpoint
    out = assign_role(ep, "full", at=5.0, reason="helpdesk ticket 42", by="admin")
    assert out.endpoint.role == "full"
    assert out.persist
    assert out.events[0].kind is EventKind.ROLE_CHANGED
    assert out.events[0].detail == {
        "old": QUARANTINE,
        "new": "full",
        "reason": "helpdesk ticket 42",
        "by": "admin",
    }


def test_assigning_the_current_role_again_is_no_event() -> None:
    ep = learn(None, arp(0.0, "198.18.0.10"), None).endpoint
    out = assign_role(ep, QUARANTINE, at=5.0, reason="again", by="admin")
    assert out.events == () and not out.persist


# --- Layer 2 only (802.1X supplicants) ---------------------------------------------------------


def eapol(at: float) -> Observation:
    return Observation(ObservationSource.EAPOL, MAC, at)


def test_an_endpoint_heard_only_over_eapol_gets_remediation_with_the_layer_3_advice() -> None:
    out = learn(None, eapol(10.0), None)
    assert out.endpoint.layer2_only and out.endpoint.role == REMEDIATION
    assert [e.kind for e in out.events] == [EventKind.DISCOVERED, EventKind.ROLE_CHANGED]
    assert out.events[1].detail == {
        "old": QUARANTINE,
        "new": REMEDIATION,
        "reason": LAYER2_ONLY_INSTRUCTIONS,
        "by": "detection",
    }
    assert "retry over Layer 3, or contact the administrator" in LAYER2_ONLY_INSTRUCTIONS
    again = learn(out.endpoint, eapol(11.0), 10.0)
    assert again.endpoint.role == REMEDIATION and not again.events


@pytest.mark.parametrize(
    "contact",
    [dhcp(DhcpMessageType.DISCOVER, 20.0), arp(20.0, "198.18.0.10"), arp(20.0, None)],
    ids=["dhcp-discover", "arp", "arp-probe"],
)
def test_contact_at_layer_3_returns_it_to_quarantine_and_the_portal(contact: Observation) -> None:
    first = learn(None, eapol(10.0), None).endpoint
    out = learn(first, contact, 10.0)
    assert not out.endpoint.layer2_only and out.endpoint.role == QUARANTINE
    (changed,) = [e for e in out.events if e.kind is EventKind.ROLE_CHANGED]
    assert changed.detail["old"] == REMEDIATION and changed.detail["by"] == "detection"
    assert out.persist


def test_an_endpoint_known_at_layer_3_is_not_made_layer_2_only_by_eapol() -> None:
    known = learn(None, dhcp(DhcpMessageType.DISCOVER, 1.0), None).endpoint
    out = learn(known, eapol(2.0), 1.0)
    assert not out.endpoint.layer2_only and out.endpoint.role == QUARANTINE


def test_a_role_given_while_layer_2_only_is_kept_when_layer_3_arrives() -> None:
    first = learn(None, eapol(10.0), None).endpoint
    admin = assign_role(first, "full", at=11.0, reason="exempt", by="admin").endpoint
    out = learn(admin, dhcp(DhcpMessageType.DISCOVER, 12.0), 11.0)
    assert out.endpoint.role == "full" and not out.endpoint.layer2_only


def test_radius_says_nothing_about_layer_3() -> None:
    first = learn(None, eapol(10.0), None).endpoint
    out = learn(first, Observation(ObservationSource.RADIUS, MAC, 11.0), 10.0)
    assert out.endpoint.layer2_only and out.endpoint.role == REMEDIATION
