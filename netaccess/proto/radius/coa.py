"""One Dynamic Authorization exchange with a NAS (RFC 5176), sans-IO: a CoA- or
Disconnect-Request sent, retransmitted unchanged (same Identifier and Request
Authenticator, RFC 5176 §2.3 and RFC 5080 §2.2.1) every `interval` up to `tries` times,
and the answer judged: ACK, or NAK with its Error-Cause (§3.5) turned into what to do next.
Time is a parameter: start(now), timer_due(), on_timer(now), receive(data, now)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from netaccess.proto.radius import auth
from netaccess.proto.radius.errors import EncodeError, RadiusError
from netaccess.proto.radius.packet import Attribute, Code, decode_packet

ERROR_CAUSE = 101


class ErrorCause(enum.IntEnum):
    """RFC 5176 §3.5, the values this exchange acts on (others are kept as numbers)."""

    UNSUPPORTED_ATTRIBUTE = 401
    MISSING_ATTRIBUTE = 402
    NAS_IDENTIFICATION_MISMATCH = 403
    INVALID_REQUEST = 404
    UNSUPPORTED_SERVICE = 405
    ADMINISTRATIVELY_PROHIBITED = 501
    SESSION_CONTEXT_NOT_FOUND = 503
    RESOURCES_UNAVAILABLE = 506


class Next(enum.Enum):
    """What the caller does once the exchange has ended."""

    DONE = "done"  # ACK: the NAS applied it
    FORGET_SESSION = "forget-session"  # NAK 503: the NAS has no such session
    TRY_DISCONNECT = "try-disconnect"  # a CoA the NAS cannot do (401, 405): disconnect instead
    GIVE_UP = "give-up"  # any other NAK, or no answer after every try: audit it


@dataclass(frozen=True, slots=True)
class Outcome:
    next: Next
    acked: bool
    error_cause: int | None = None
    tries: int = 0
    why: str = ""


_FALLBACK_CAUSES = frozenset({ErrorCause.UNSUPPORTED_ATTRIBUTE, ErrorCause.UNSUPPORTED_SERVICE})
_ANSWERS = {
    Code.COA_REQUEST: (Code.COA_ACK, Code.COA_NAK),
    Code.DISCONNECT_REQUEST: (Code.DISCONNECT_ACK, Code.DISCONNECT_NAK),
}


@dataclass
class CoaExchange:
    code: Code  # COA_REQUEST or DISCONNECT_REQUEST
    identifier: int
    attributes: list[Attribute]
    secret: bytes
    tries: int = 3
    interval: float = 2.0
    _request: bytes = field(init=False, default=b"")
    _sent: int = field(init=False, default=0)
    _due: float | None = field(init=False, default=None)
    outcome: Outcome | None = field(init=False, default=None)
    ignored: int = field(init=False, default=0)  # datagrams that were not our answer

    def __post_init__(self) -> None:
        if self.code not in _ANSWERS:
            raise EncodeError(f"{self.code!r} is not a Dynamic Authorization request")
        if self.tries < 1 or self.interval <= 0:
            raise EncodeError("tries must be >= 1 and interval > 0")
        self._request = auth.encode_request(
            self.code, self.identifier, self.attributes, self.secret
        )

    @property
    def request(self) -> bytes:
        return self._request

    def start(self, now: float) -> bytes:
        """The first transmission."""
        self._sent = 1
        self._due = now + self.interval
        return self._request

    def timer_due(self) -> float | None:
        return None if self.outcome is not None else self._due

    def on_timer(self, now: float) -> bytes | None:
        """At or after timer_due(): the same bytes again, or None when the tries are spent
        (the outcome is then GIVE_UP)."""
        if self.outcome is not None or self._due is None or now < self._due:
            return None
        if self._sent >= self.tries:
            self.outcome = Outcome(Next.GIVE_UP, False, None, self._sent, "no answer")
            self._due = None
            return None
        self._sent += 1
        self._due = now + self.interval
        return self._request

    def receive(self, data: bytes, now: float) -> Outcome | None:
        """A datagram from the NAS: the outcome if it is our verified answer, else None
        (counted in `ignored`; a forged or stray answer does not end the exchange)."""
        del now
        if self.outcome is not None:
            return None
        try:
            packet = decode_packet(data)
            if packet.identifier != self.identifier or packet.code not in _ANSWERS[self.code]:
                raise RadiusError("not the answer to this request")
            auth.verify_reply(data, packet, self._request[4:20], self.secret)
        except RadiusError:
            self.ignored += 1
            return None
        ack, _ = _ANSWERS[self.code]
        if packet.code == ack:
            self.outcome = Outcome(Next.DONE, True, None, self._sent, "acknowledged")
        else:
            cause_octets = packet.first(ERROR_CAUSE)
            cause = (
                int.from_bytes(cause_octets, "big")
                if cause_octets is not None and len(cause_octets) == 4
                else None
            )
            if cause == ErrorCause.SESSION_CONTEXT_NOT_FOUND:
                then = Next.FORGET_SESSION
            elif cause in _FALLBACK_CAUSES and self.code == Code.COA_REQUEST:
                then = Next.TRY_DISCONNECT
            else:
                then = Next.GIVE_UP
            why = "NAK without an Error-Cause" if cause is None else f"NAK, Error-Cause {cause}"
            self.outcome = Outcome(then, False, cause, self._sent, why)
        self._due = None
        return self.outcome
