"""What the RADIUS server keeps between the round trips of EAP conversations, sans-IO: the
conversations by their State attribute (RFC 2865 §5.24, RFC 3579 §2.6.1), bounded and
expiring (time is a parameter), and whom an identity names (a user, and a realm when it
says one: "user@realm" as in RFC 7542's NAI, or Windows' "realm\\user")."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class _Kept(Generic[T]):
    value: T
    expires: float


class ConversationTable(Generic[T]):
    """At most `capacity` conversations, each forgotten `timeout` seconds after its last
    round trip. A full table refuses new conversations rather than cutting one short: a
    flood of EAP-Starts must not end the handshakes already under way."""

    def __init__(self, capacity: int, timeout: float) -> None:
        if capacity < 1 or timeout <= 0:
            raise ValueError("a conversation table needs a positive capacity and timeout")
        self.capacity = capacity
        self.timeout = timeout
        self._kept: OrderedDict[bytes, _Kept[T]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._kept)

    def add(self, state: bytes, value: T, now: float) -> bool:
        """Keep `value` under `state`; False (nothing kept) when the table is full."""
        self.expire(now)
        if state in self._kept:
            raise KeyError("this State is already in use")
        if len(self._kept) >= self.capacity:
            return False
        self._kept[state] = _Kept(value, now + self.timeout)
        return True

    def get(self, state: bytes, now: float) -> T | None:
        """The conversation under `state`, its timeout restarted; None when unknown or
        expired."""
        kept = self._kept.get(state)
        if kept is None:
            return None
        if kept.expires <= now:
            del self._kept[state]
            return None
        kept.expires = now + self.timeout
        self._kept.move_to_end(state)
        return kept.value

    def remove(self, state: bytes) -> None:
        self._kept.pop(state, None)

    def expire(self, now: float) -> int:
        """Forget the conversations whose time is up; how many went."""
        # Every use moves an entry to the end with the same timeout: the oldest deadlines
        # are at the front.
        gone = 0
        kept = self._kept
        while kept:
            state, first = next(iter(kept.items()))
            if first.expires > now:
                break
            del kept[state]
            gone += 1
        return gone


def split_identity(name: str, realms: Collection[str], default: str) -> tuple[str, str]:
    """(realm, user) of an EAP or inner identity. "alice@staff" and "staff\\alice" name the
    realm staff when it is one of `realms`; otherwise the whole name is a user of
    `default` (an e-mail address as a user name stays whole)."""
    if "\\" in name:
        realm, _, user = name.partition("\\")
        if realm in realms and user:
            return realm, user
    if "@" in name:
        user, _, realm = name.rpartition("@")
        if realm in realms and user:
            return realm, user
    return default, name


__all__ = ["ConversationTable", "split_identity"]
