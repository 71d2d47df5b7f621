"""The typed intents netaccessd sends the privileged enforcer, and its answers (sans-IO).

One JSON object per line each way. The enforcer accepts nothing but these shapes: a request
that does not decode into one of them is refused before it reaches the kernel. File
descriptors (capture sockets, listeners) ride beside an answer as SCM_RIGHTS.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from netaccess.policy.roles import QUARANTINE

MAX_LINE = 256 * 1024 * 1024  # a full reconcile of a million endpoints fits
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
_ROLE = re.compile(r"[a-z][a-z0-9_]{0,23}")
_IFNAME = re.compile(r"[^/\s:\0]{1,15}")


class IntentError(Exception):
    """A message that is not one of the intents (or answers) below."""


@dataclass(frozen=True, slots=True)
class Membership:
    """Where one endpoint belongs: its MAC and addresses in one role's sets."""

    role: str
    mac: str | None = None
    ipv4: tuple[str, ...] = ()
    ipv6: tuple[str, ...] = ()

    def set_elements(self) -> tuple[str | None, tuple[str, ...], tuple[str, ...]]:
        """What the role sets hold for this endpoint: its MAC when it has one, else its
        addresses; nothing in quarantine.

        An L2-adjacent endpoint is judged by its MAC alone, so a neighbour forging its
        address gains nothing, and its address changes touch no set; a routed endpoint (no
        MAC seen) can only be judged by its addresses. Quarantine is what the ruleset gives
        an endpoint in no set, so a quarantined endpoint needs no element: admitting one or
        sending one back is a single element operation, and the endpoints that never leave
        quarantine (most guests) cost the kernel nothing.
        """
        if self.role == QUARANTINE:
            return None, (), ()
        if self.mac is not None:
            return self.mac, (), ()
        return None, self.ipv4, self.ipv6

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "mac": self.mac,
            "ipv4": list(self.ipv4),
            "ipv6": list(self.ipv6),
        }


@dataclass(frozen=True, slots=True)
class MembershipChange:
    """An endpoint leaves `old` (None: it was in no set) and joins `new`."""

    old: Membership | None
    new: Membership

    def addresses(self) -> tuple[str, ...]:
        """Addresses whose flows must die: all the endpoint had and has, if its role changed."""
        if self.old is not None and self.old.role == self.new.role:
            return ()
        olds = (*self.old.ipv4, *self.old.ipv6) if self.old else ()
        return tuple(dict.fromkeys((*olds, *self.new.ipv4, *self.new.ipv6)))


@dataclass(frozen=True, slots=True)
class SetMemberships:
    changes: tuple[MembershipChange, ...]


@dataclass(frozen=True, slots=True)
class FlushFlows:
    addresses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Reconcile:
    """The whole desired state, per role (the enforcer repairs the kernel to match)."""

    desired: tuple[Membership, ...]


@dataclass(frozen=True, slots=True)
class OpenCapture:
    ifname: str
    receive_buffer: int


@dataclass(frozen=True, slots=True)
class OpenListener:
    port: int
    backlog: int = 1024


@dataclass(frozen=True, slots=True)
class Status:
    pass


Intent = SetMemberships | FlushFlows | Reconcile | OpenCapture | OpenListener | Status


@dataclass(frozen=True, slots=True)
class Answer:
    ok: bool
    result: dict[str, Any] = field(default_factory=dict)
    error: str = ""


def encode_intent(intent: Intent) -> bytes:
    body: dict[str, Any]
    match intent:
        case SetMemberships(changes):
            body = {
                "op": "set-memberships",
                "changes": [
                    {"old": c.old.to_json() if c.old else None, "new": c.new.to_json()}
                    for c in changes
                ],
            }
        case FlushFlows(addresses):
            body = {"op": "flush-flows", "addresses": list(addresses)}
        case Reconcile(desired):
            body = {"op": "reconcile", "desired": [m.to_json() for m in desired]}
        case OpenCapture(ifname, receive_buffer):
            body = {"op": "open-capture", "ifname": ifname, "receive_buffer": receive_buffer}
        case OpenListener(port, backlog):
            body = {"op": "open-listener", "port": port, "backlog": backlog}
        case Status():
            body = {"op": "status"}
    return _line(body)


def encode_answer(answer: Answer) -> bytes:
    return _line({"ok": answer.ok, "result": answer.result, "error": answer.error})


def decode_answer(line: bytes) -> Answer:
    obj = _object(line)
    ok, result, error = obj.get("ok"), obj.get("result", {}), obj.get("error", "")
    if not isinstance(ok, bool) or not isinstance(result, dict) or not isinstance(error, str):
        raise IntentError("answer needs a boolean ok, an object result and a string error")
    return Answer(ok, result, error)


def decode_intent(line: bytes) -> Intent:
    obj = _object(line)
    op = obj.get("op")
    if op == "set-memberships":
        changes = _list(obj, "changes")
        return SetMemberships(tuple(_change(c) for c in changes))
    if op == "flush-flows":
        return FlushFlows(tuple(_address(a) for a in _list(obj, "addresses")))
    if op == "reconcile":
        return Reconcile(tuple(_membership(m) for m in _list(obj, "desired")))
    if op == "open-capture":
        ifname = obj.get("ifname")
        if not isinstance(ifname, str) or not _IFNAME.fullmatch(ifname):
            raise IntentError(f"open-capture: bad interface name {ifname!r}")
        return OpenCapture(ifname, _int(obj, "receive_buffer", 64 * 1024, 256 * 1024 * 1024))
    if op == "open-listener":
        return OpenListener(_int(obj, "port", 1, 65535), _int(obj, "backlog", 1, 65535))
    if op == "status":
        return Status()
    raise IntentError(f"unknown intent {op!r}")


def _line(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode() + b"\n"


def _object(line: bytes) -> dict[str, Any]:
    if len(line) > MAX_LINE:
        raise IntentError(f"message longer than {MAX_LINE} bytes")
    try:
        obj = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise IntentError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise IntentError("expected a JSON object")
    return obj


def _list(obj: Mapping[str, Any], key: str) -> list[Any]:
    value = obj.get(key)
    if not isinstance(value, list):
        raise IntentError(f"{key} must be a list")
    return value


def _int(obj: Mapping[str, Any], key: str, low: int, high: int) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise IntentError(f"{key} must be an integer between {low} and {high}")
    return value


def _address(value: object, version: int | None = None) -> str:
    if not isinstance(value, str):
        raise IntentError(f"expected an IP address, got {value!r}")
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise IntentError(f"{value!r} is not an IP address") from None
    if version is not None and address.version != version:
        raise IntentError(f"{value!r} is not an IPv{version} address")
    return str(address)


def _membership(value: object) -> Membership:
    if not isinstance(value, dict):
        raise IntentError("a membership must be an object")
    role, mac = value.get("role"), value.get("mac")
    if not isinstance(role, str) or not _ROLE.fullmatch(role):
        raise IntentError(f"bad role name {role!r}")
    if mac is not None and (not isinstance(mac, str) or not _MAC.fullmatch(mac)):
        raise IntentError(f"bad MAC {mac!r} (expected lower-case aa:bb:cc:dd:ee:ff)")
    ipv4 = tuple(_address(a, 4) for a in _list(value, "ipv4"))
    ipv6 = tuple(_address(a, 6) for a in _list(value, "ipv6"))
    if mac is None and not ipv4 and not ipv6:
        raise IntentError("a membership needs a MAC or an address")
    return Membership(role, mac, ipv4, ipv6)


def _change(value: object) -> MembershipChange:
    if not isinstance(value, dict):
        raise IntentError("a change must be an object")
    old = value.get("old")
    return MembershipChange(
        None if old is None else _membership(old), _membership(value.get("new"))
    )
