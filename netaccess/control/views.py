"""How the daemon's domain objects appear on the control protocol (JSON-ready dicts)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from netaccess.policy.endpoint import LAYER2_ONLY_INSTRUCTIONS, Endpoint, EndpointEvent
from netaccess.policy.radius_sessions import Session
from netaccess.policy.roles import REMEDIATION, Role


def iso_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def endpoint_view(ep: Endpoint) -> dict[str, Any]:
    return {
        "mac": ep.mac,
        "ips": list(ep.ips),
        "hostname": ep.hostname,
        "vendor_class": ep.vendor_class,
        "fingerprint": ep.fingerprint,
        "role": ep.role,
        "state": ep.state.value,
        "first_seen": iso_time(ep.first_seen),
        "last_seen": iso_time(ep.last_seen),
        "layer2_only": ep.layer2_only,
        # what to do, for an endpoint held in remediation because it has no IP path
        "instructions": (
            LAYER2_ONLY_INSTRUCTIONS if ep.layer2_only and ep.role == REMEDIATION else None
        ),
    }


def event_view(ev: EndpointEvent) -> dict[str, Any]:
    return {"at": iso_time(ev.at), "kind": ev.kind.value, "detail": dict(ev.detail)}


def role_view(role: Role) -> dict[str, Any]:
    return {
        "name": role.name,
        "vlan": role.vlan,
        "captive": role.captive,
        "builtin": role.builtin,
        "allow": [
            {
                "cidr": str(d.network),
                "proto": d.protocol.value,
                "ports": list(d.ports),
            }
            for d in role.allow
        ],
        "recheck_interval": role.recheck_interval,
        "session_lifetime": role.session_lifetime,
    }


def session_view(session: Session) -> dict[str, Any]:
    return {
        "nas": session.nas,
        "nas_address": session.nas_address,
        "session_id": session.session_id,
        "mac": session.mac,
        "user_name": session.user_name,
        "nas_port": session.nas_port,
        "nas_port_id": session.nas_port_id,
        "framed_ip": session.framed_ip,
        "started": iso_time(session.started),
        "updated": iso_time(session.updated),
    }
