"""MAC Authentication Bypass, decided: which endpoint a MAB Access-Request names, and the
attributes that put it in its role's VLAN (RFC 3580 §3.31, RFC 2868: Tunnel-Type VLAN,
Tunnel-Medium-Type IEEE-802, Tunnel-Private-Group-Id; Session-Timeout with
Termination-Action RADIUS-Request from the role's re-check interval, so the switch asks
again)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from netaccess.policy.roles import Role
from netaccess.proto.mac import InvalidMac, parse_mac
from netaccess.proto.radius.dictionary import Decoded, Value

CALL_CHECK = 10  # Service-Type (RFC 2865 §5.6): what switches send for MAB


@dataclass(frozen=True, slots=True)
class MabRequest:
    mac: str  # normalised, aa:bb:cc:dd:ee:ff
    calling_station: str | None  # Calling-Station-Id, normalised when it is a MAC


def mab_request(decoded: list[Decoded]) -> MabRequest | None:
    """The endpoint of a MAB request (User-Name = User-Password = a MAC in any common
    format, the password revealed), or None when the request is not MAB: then it is a
    user's, for 802.1X or the realm users. Service-Type Call-Check alone does not make a
    request MAB: the name and password must both be the MAC."""
    values: dict[str, Value] = {}
    for attribute in decoded:
        values.setdefault(attribute.name, attribute.value)
    name, password = values.get("User-Name"), values.get("User-Password")
    if not isinstance(name, str) or not isinstance(password, str):
        return None
    try:
        mac = parse_mac(name)
        same = parse_mac(password) == mac  # a MAC is no secret: a plain comparison
    except InvalidMac:
        return None
    if not same:
        return None
    calling = values.get("Calling-Station-Id")
    station = None
    if isinstance(calling, str):
        try:
            station = parse_mac(calling)
        except InvalidMac:
            station = calling
    return MabRequest(mac, station)


def mab_mac(user_name: bytes, password: bytes) -> str | None:
    """The MAC of a MAB request from its raw User-Name and revealed User-Password (NUL
    padding stripped), or None when they are not the same MAC: the same rule as
    mab_request, for a server that reads only these two attributes."""
    mac = _mac_of(user_name)
    if mac is None or _mac_of(password) != mac:
        return None
    return mac


@functools.lru_cache(maxsize=65536)
def _mac_of(raw: bytes) -> str | None:
    """Switches re-authenticate the same MACs over and over: each spelling is parsed once."""
    if not 12 <= len(raw) <= 17:
        return None
    try:
        return parse_mac(raw.decode("ascii"))
    except (UnicodeDecodeError, InvalidMac):
        return None


def vlan_attributes(role: Role) -> list[tuple[str, Value]]:
    """What an Access-Accept carries for `role`, as (dictionary name, value), in order."""
    found: list[tuple[str, Value]] = [
        ("Tunnel-Type", "VLAN"),
        ("Tunnel-Medium-Type", "IEEE-802"),
        ("Tunnel-Private-Group-Id", str(role.vlan)),
    ]
    if role.recheck_interval:
        found.append(("Session-Timeout", max(1, int(role.recheck_interval))))
        found.append(("Termination-Action", "RADIUS-Request"))
    return found
