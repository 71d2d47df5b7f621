"""Duplicate detection (RFC 5080 §2.2.2): a retransmitted request (same client address and
port, code, Identifier and Request Authenticator) gets the reply already sent, and is never
processed twice; one that arrives while the first is still being processed is dropped.
Time is a parameter; entries live `lifetime` seconds after their reply."""

from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

Key = tuple[str, int, int, int, bytes]  # (client address, port, code, identifier, authenticator)


class Seen(enum.Enum):
    NEW = "new"  # process it (begin() was done)
    IN_PROGRESS = "in-progress"  # the same request is being processed: drop this copy
    ANSWERED = "answered"  # send the cached reply again


# An entry is [reply or None while in progress, expiry]: a two-slot list, made on every
# request, costs a third of a slotted dataclass instance (0.05 against 0.16 us here).
_REPLY, _EXPIRES = 0, 1


@dataclass(frozen=True, slots=True)
class Lookup:
    seen: Seen
    reply: bytes | None = None


NEW = Lookup(Seen.NEW)  # frozen, so one serves every new request: test `is NEW`


class DuplicateCache:
    """Bounded: past `capacity` entries the oldest go first (a flood cannot grow it)."""

    def __init__(self, lifetime: float = 5.0, capacity: int = 65536, in_progress: float = 30.0):
        self.lifetime = lifetime
        self.capacity = capacity
        self.in_progress = in_progress  # how long a request may stay unanswered
        self._entries: OrderedDict[Key, list[Any]] = OrderedDict()
        self.duplicates = 0
        # Expired entries are swept at most this often (each lookup checks its own entry's
        # expiry, so a late sweep only keeps memory a little longer; capacity bounds it).
        self._sweep_every = min(lifetime, 0.25)
        self._sweep_at = float("-inf")

    def __len__(self) -> int:
        return len(self._entries)

    def arrive(self, key: Key, now: float) -> Lookup:
        """Note a request: NEW (and now in progress) or a duplicate of one seen."""
        # Due, or the clock stepped back past the last sweep.
        if not self._sweep_at - self._sweep_every <= now < self._sweep_at:
            self._sweep_at = now + self._sweep_every
            self._expire(now)
        entries = self._entries
        entry = entries.get(key)
        if entry is not None:
            if entry[_EXPIRES] > now:
                self.duplicates += 1
                if entry[_REPLY] is None:
                    return Lookup(Seen.IN_PROGRESS)
                return Lookup(Seen.ANSWERED, entry[_REPLY])
            entries.move_to_end(key)  # expired but not yet swept: it starts again, at the end
        entries[key] = [None, now + self.in_progress]  # a new key goes in at the end
        while len(entries) > self.capacity:
            entries.popitem(last=False)
        return NEW

    def answer(self, key: Key, reply: bytes, now: float) -> None:
        """The reply sent to `key`, kept for its retransmits."""
        entry = self._entries.get(key)
        if entry is None:
            return  # pushed out meanwhile: nothing to keep
        entry[_REPLY] = reply
        entry[_EXPIRES] = now + self.lifetime
        self._entries.move_to_end(key)

    def forget(self, key: Key) -> None:
        """A request dropped without reply: a retransmit is processed afresh."""
        self._entries.pop(key, None)

    def _expire(self, now: float) -> None:
        # Entries are in order of their last change, and every expiry is that change plus a
        # fixed span, so the expired ones are at the front (in-progress ones may be mixed
        # in but expire later; they stop the walk early, which only delays cleanup).
        entries = self._entries
        while entries:
            key, entry = next(iter(entries.items()))
            if entry[_EXPIRES] > now:
                break
            del entries[key]
