"""Duplicate detection (RFC 5080 §2.2.2): a retransmitted request (same client address and
port, code, Identifier and Request Authenticator) gets the reply already sent, and is never
processed twice; one that arrives while the first is still being processed is dropped.
Time is a parameter; entries live `lifetime` seconds after their reply."""

from __future__ import annotations

import enum
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
    """Bounded: past `capacity` entries the oldest go first (a flood cannot grow it).

    Entries sit in two generations, plain dicts: new ones go into the current one, which
    becomes the previous one every `lifetime` seconds (or once it holds half the capacity),
    when the previous one is dropped whole. An entry therefore lives between one and two
    generations, and its own expiry, checked on every lookup, decides exactly. That costs
    nothing per request, where evicting the oldest entry of one ordered dict on every
    arrival at capacity did (0.25 us, measured at 60,000 requests a second). Requests still
    in progress when their generation is dropped are carried into the new one when it is
    time, not a flood, that turned it over."""

    def __init__(self, lifetime: float = 5.0, capacity: int = 65536, in_progress: float = 30.0):
        self.lifetime = lifetime
        self.capacity = capacity
        self.in_progress = in_progress  # how long a request may stay unanswered
        self._current: dict[Key, list[Any]] = {}
        self._previous: dict[Key, list[Any]] = {}
        self._half = max(1, capacity // 2)
        self._turn_at = float("-inf")  # when the current generation turns over
        self.duplicates = 0

    def __len__(self) -> int:
        return len(self._current) + len(self._previous)

    def arrive(self, key: Key, now: float) -> Lookup:
        """Note a request: NEW (and now in progress) or a duplicate of one seen."""
        current = self._current
        # Due, full, or the clock stepped back past the last turn.
        if not self._turn_at - self.lifetime <= now < self._turn_at or len(current) >= self._half:
            self._turn(now)
            current = self._current
        entry = current.get(key)
        if entry is None:
            entry = self._previous.get(key)
        if entry is not None and entry[_EXPIRES] > now:
            self.duplicates += 1
            if entry[_REPLY] is None:
                return Lookup(Seen.IN_PROGRESS)
            return Lookup(Seen.ANSWERED, entry[_REPLY])
        current[key] = [None, now + self.in_progress]  # shadows an expired one in previous
        return NEW

    def answer(self, key: Key, reply: bytes, now: float) -> None:
        """The reply sent to `key`, kept for its retransmits."""
        entry = self._current.get(key)
        if entry is None:
            entry = self._previous.pop(key, None)
            if entry is None:
                return  # dropped meanwhile (a flood): nothing to keep
            self._current[key] = entry  # so it lives its whole lifetime from now
        entry[_REPLY] = reply
        entry[_EXPIRES] = now + self.lifetime

    def forget(self, key: Key) -> None:
        """A request dropped without reply: a retransmit is processed afresh."""
        self._current.pop(key, None)
        self._previous.pop(key, None)

    def _turn(self, now: float) -> None:
        dropped, self._previous, self._current = self._previous, self._current, {}
        timely = now >= self._turn_at and len(self._previous) < self._half
        if timely and dropped:  # in-progress requests outlive a generation; a flood's do not
            self._current = {
                key: entry
                for key, entry in dropped.items()
                if entry[_REPLY] is None and entry[_EXPIRES] > now
            }
        self._turn_at = now + self.lifetime
