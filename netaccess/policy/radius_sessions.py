"""RADIUS accounting (RFC 2866) folded into a session table: which NAS holds which
endpoint's session, on which port, with which IP address. Start and Interim-Update create
or refresh a session, Stop ends it; Accounting-On/Off (the NAS rebooted) end all of that
NAS's sessions. Time is a parameter; the table is bounded (the oldest update goes first).
Every change is also journalled (take_changes) so the daemon can keep the table in its
store: a restart must not leave it unable to reach the switches holding its endpoints."""

from __future__ import annotations

import enum
import ipaddress
from collections import OrderedDict
from dataclasses import dataclass, replace

from netaccess.proto.mac import InvalidMac, parse_mac
from netaccess.proto.radius.dictionary import Decoded, Value


class StatusType(enum.IntEnum):
    """Acct-Status-Type (RFC 2866 §5.1)."""

    START = 1
    STOP = 2
    INTERIM_UPDATE = 3
    ACCOUNTING_ON = 7
    ACCOUNTING_OFF = 8


class AccountingError(ValueError):
    """An Accounting-Request without what the table needs; it is still acknowledged (the
    NAS would retransmit forever otherwise) but changes nothing."""


@dataclass(frozen=True, slots=True)
class AccountingRecord:
    status: StatusType
    session_id: str
    mac: str | None  # Calling-Station-Id, normalised; None if it is not a MAC
    user_name: str | None
    nas_port: int | None
    nas_port_id: str | None
    framed_ip: str | None


@dataclass(frozen=True, slots=True)
class Session:
    nas: str  # the client's configured name
    nas_address: str  # where its datagrams come from (CoA goes there)
    session_id: str
    mac: str | None
    user_name: str | None
    nas_port: int | None
    nas_port_id: str | None
    framed_ip: str | None
    started: float
    updated: float


def accounting_record(decoded: list[Decoded]) -> AccountingRecord:
    values: dict[str, Value] = {}
    for attribute in decoded:
        values.setdefault(attribute.name, attribute.value)
    raw_status = values.get("Acct-Status-Type")
    try:
        if not isinstance(raw_status, int):
            raise ValueError(raw_status)
        status = StatusType(raw_status)
    except ValueError:
        raise AccountingError(f"Acct-Status-Type {raw_status!r} is not one we keep") from None
    session_id = values.get("Acct-Session-Id")
    if status in (StatusType.ACCOUNTING_ON, StatusType.ACCOUNTING_OFF):
        session_id = session_id if isinstance(session_id, str) else ""
    elif not isinstance(session_id, str) or not session_id:
        raise AccountingError("no Acct-Session-Id")
    mac = None
    calling = values.get("Calling-Station-Id")
    if isinstance(calling, str):
        try:
            mac = parse_mac(calling)
        except InvalidMac:
            mac = None
    framed = values.get("Framed-IP-Address")
    framed_ip = None
    if isinstance(framed, ipaddress.IPv4Address) and not (
        framed.is_unspecified or framed == ipaddress.IPv4Address("255.255.255.254")
    ):
        framed_ip = str(framed)  # 255.255.255.254: "the NAS assigns" (RFC 2865 §5.8)
    port = values.get("NAS-Port")
    port_id = values.get("NAS-Port-Id")
    name = values.get("User-Name")
    return AccountingRecord(
        status=status,
        session_id=session_id,
        mac=mac,
        user_name=name if isinstance(name, str) else None,
        nas_port=port if isinstance(port, int) else None,
        nas_port_id=port_id if isinstance(port_id, str) else None,
        framed_ip=framed_ip,
    )


SessionKey = tuple[str, str]  # (NAS name, Acct-Session-Id)


class SessionTable:
    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._sessions: OrderedDict[SessionKey, Session] = OrderedDict()
        self.forgotten = 0  # pushed out by capacity
        # Each key's latest state since take_changes: the session, or None once it ended.
        self._changes: dict[SessionKey, Session | None] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def load(self, sessions: list[Session]) -> None:
        """Sessions kept from before (the store's), oldest update first; not journalled.
        Past the capacity the oldest are dropped, as they would have been."""
        for session in sorted(sessions, key=lambda s: s.updated):
            key = (session.nas, session.session_id)
            self._sessions[key] = session
            self._sessions.move_to_end(key)
        self._trim()

    def expire(self, now: float, idle: float) -> int:
        """End the sessions with no update for `idle` seconds (journalled); how many. The
        table is in update order, so this reads only the expired ones and one more."""
        ended = 0
        while self._sessions:
            key, oldest = next(iter(self._sessions.items()))
            if now - oldest.updated < idle:
                break
            self._remove(key)
            ended += 1
        return ended

    def take_changes(self) -> dict[SessionKey, Session | None]:
        """What changed since the last call, each key's latest state (None: ended)."""
        changes, self._changes = self._changes, {}
        return changes

    def _remove(self, key: SessionKey) -> bool:
        if self._sessions.pop(key, None) is None:
            return False
        self._changes[key] = None
        return True

    def _trim(self) -> None:
        while len(self._sessions) > self.capacity:
            key, _ = self._sessions.popitem(last=False)
            self._changes[key] = None
            self.forgotten += 1

    def sessions(self) -> list[Session]:
        return sorted(self._sessions.values(), key=lambda s: (s.started, s.nas, s.session_id))

    def of_mac(self, mac: str) -> list[Session]:
        return [s for s in self._sessions.values() if s.mac == mac]

    def forget(self, nas: str, session_id: str) -> bool:
        return self._remove((nas, session_id))

    def apply(
        self, nas: str, nas_address: str, record: AccountingRecord, now: float
    ) -> Session | None:
        """Fold one record; the session as it now stands (None once it ended)."""
        if record.status in (StatusType.ACCOUNTING_ON, StatusType.ACCOUNTING_OFF):
            for key in [k for k in self._sessions if k[0] == nas]:
                self._remove(key)
            return None
        key = (nas, record.session_id)
        if record.status is StatusType.STOP:
            self._remove(key)
            return None
        known = self._sessions.get(key)
        if known is None:
            session = Session(
                nas=nas,
                nas_address=nas_address,
                session_id=record.session_id,
                mac=record.mac,
                user_name=record.user_name,
                nas_port=record.nas_port,
                nas_port_id=record.nas_port_id,
                framed_ip=record.framed_ip,
                started=now,
                updated=now,
            )
        else:
            # An Interim-Update may carry less than the Start did: keep what it omits.
            session = replace(
                known,
                nas_address=nas_address,
                mac=record.mac or known.mac,
                user_name=record.user_name or known.user_name,
                nas_port=record.nas_port if record.nas_port is not None else known.nas_port,
                nas_port_id=record.nas_port_id or known.nas_port_id,
                framed_ip=record.framed_ip or known.framed_ip,
                updated=now,
            )
        self._sessions[key] = session
        self._sessions.move_to_end(key)
        self._changes[key] = session
        self._trim()
        return session
