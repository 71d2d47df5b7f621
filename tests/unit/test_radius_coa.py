"""A CoA/Disconnect exchange (RFC 5176): retransmits are the same bytes, a bounded number of
times; ACK ends it; NAK Error-Causes say what next (503 forget, 401/405 disconnect instead);
forged or stray answers are ignored."""

from __future__ import annotations

import pytest

from netaccess.proto.radius import auth
from netaccess.proto.radius.coa import CoaExchange, Next
from netaccess.proto.radius.errors import EncodeError
from netaccess.proto.radius.packet import Code, decode_packet

SECRET = b"coa-secret"
SESSION = [(44, b"acct-1"), (31, b"AA-BB-CC-DD-EE-FF")]


def exchange(code: Code = Code.COA_REQUEST, tries: int = 3) -> CoaExchange:
    return CoaExchange(code, 42, list(SESSION), SECRET, tries=tries, interval=2.0)


def answer(request: bytes, code: Code, cause: int | None = None, secret: bytes = SECRET) -> bytes:
    attributes = [] if cause is None else [(101, cause.to_bytes(4, "big"))]
    return auth.encode_reply(code, request[1], request[4:20], attributes, secret)


def test_the_request_is_signed_and_carries_the_session() -> None:
    sent = exchange().start(0.0)
    auth.verify_request_authenticator(sent, SECRET)
    packet = decode_packet(sent)
    assert packet.code == Code.COA_REQUEST and packet.first(44) == b"acct-1"


def test_retransmits_are_the_same_bytes_and_bounded() -> None:
    coa = exchange(tries=3)
    first = coa.start(0.0)
    assert coa.on_timer(1.0) is None  # not due yet
    assert coa.on_timer(2.0) == first
    assert coa.on_timer(4.0) == first
    assert coa.on_timer(6.0) is None
    assert coa.outcome is not None
    assert (coa.outcome.next, coa.outcome.tries) == (Next.GIVE_UP, 3)
    assert coa.timer_due() is None


def test_an_ack_ends_the_exchange() -> None:
    coa = exchange()
    sent = coa.start(0.0)
    outcome = coa.receive(answer(sent, Code.COA_ACK), 0.5)
    assert outcome is not None and outcome.acked and outcome.next is Next.DONE
    assert coa.on_timer(10.0) is None


@pytest.mark.parametrize(
    ("code", "cause", "then"),
    [
        (Code.COA_REQUEST, 503, Next.FORGET_SESSION),
        (Code.COA_REQUEST, 401, Next.TRY_DISCONNECT),
        (Code.COA_REQUEST, 405, Next.TRY_DISCONNECT),
        (Code.COA_REQUEST, 501, Next.GIVE_UP),
        (Code.COA_REQUEST, None, Next.GIVE_UP),
        (Code.DISCONNECT_REQUEST, 503, Next.FORGET_SESSION),
        (Code.DISCONNECT_REQUEST, 405, Next.GIVE_UP),  # nothing further to fall back to
    ],
)
def test_nak_error_causes_say_what_next(code: Code, cause: int | None, then: Next) -> None:
    coa = exchange(code)
    sent = coa.start(0.0)
    nak = Code.COA_NAK if code == Code.COA_REQUEST else Code.DISCONNECT_NAK
    outcome = coa.receive(answer(sent, nak, cause), 0.1)
    assert outcome is not None and not outcome.acked
    assert (outcome.next, outcome.error_cause) == (then, cause)


def test_forged_and_stray_answers_are_ignored() -> None:
    coa = exchange()
    sent = coa.start(0.0)
    assert coa.receive(answer(sent, Code.COA_ACK, secret=b"forger"), 0.1) is None
    assert coa.receive(answer(sent, Code.DISCONNECT_ACK), 0.1) is None  # wrong kind
    other = sent[:1] + bytes([43]) + sent[2:]
    assert coa.receive(answer(other, Code.COA_ACK), 0.1) is None  # another identifier
    assert coa.receive(b"garbage", 0.1) is None
    assert coa.ignored == 4 and coa.outcome is None
    assert coa.receive(answer(sent, Code.COA_ACK), 0.2) is not None


def test_only_dynamic_authorization_requests_are_exchanged() -> None:
    with pytest.raises(EncodeError):
        CoaExchange(Code.ACCESS_REQUEST, 1, [], SECRET)
    with pytest.raises(EncodeError):
        CoaExchange(Code.COA_REQUEST, 1, [], SECRET, tries=0)
