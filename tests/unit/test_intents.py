"""The enforcer accepts only typed intents: everything else is refused before the kernel."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netaccess.enforce.intents import (
    Answer,
    FlushFlows,
    IntentError,
    Membership,
    MembershipChange,
    OpenCapture,
    OpenListener,
    Reconcile,
    SetMemberships,
    Status,
    decode_answer,
    decode_intent,
    encode_answer,
    encode_intent,
)

ENDPOINT = Membership("quarantine", "02:4e:41:00:00:01", ("198.18.0.10",), ("2001:db8::10",))


@pytest.mark.parametrize(
    "intent",
    [
        SetMemberships((MembershipChange(None, ENDPOINT),)),
        SetMemberships(
            (MembershipChange(ENDPOINT, Membership("full", ENDPOINT.mac, ENDPOINT.ipv4)),)
        ),
        FlushFlows(("198.18.0.10", "2001:db8::10")),
        Reconcile((ENDPOINT,)),
        OpenCapture("acc0", 4 * 1024 * 1024),
        OpenListener(80),
        Status(),
    ],
)
def test_every_intent_round_trips_through_one_line(intent: object) -> None:
    wire = encode_intent(intent)  # type: ignore[arg-type]
    assert wire.count(b"\n") == 1
    assert decode_intent(wire[:-1]) == intent


def test_answers_round_trip() -> None:
    answer = Answer(False, {}, "no such interface")
    assert decode_answer(encode_answer(answer)[:-1]) == answer


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({"op": "run-shell", "cmd": "nft flush ruleset"}, "unknown intent"),
        ({"op": "open-capture", "ifname": "../../etc", "receive_buffer": 65536}, "bad interface"),
        ({"op": "open-listener", "port": 70000}, "port must be"),
        ({"op": "flush-flows", "addresses": ["198.18.0.300"]}, "not an IP address"),
        (
            {
                "op": "reconcile",
                "desired": [{"role": "full; drop", "mac": None, "ipv4": [], "ipv6": []}],
            },
            "bad role name",
        ),
        (
            {
                "op": "reconcile",
                "desired": [{"role": "full", "mac": "02:4E:41:00:00:01", "ipv4": [], "ipv6": []}],
            },
            "bad MAC",
        ),
        (
            {
                "op": "reconcile",
                "desired": [{"role": "full", "mac": None, "ipv4": ["2001:db8::1"], "ipv6": []}],
            },
            "not an IPv4 address",
        ),
        (
            {"op": "reconcile", "desired": [{"role": "full", "mac": None, "ipv4": [], "ipv6": []}]},
            "needs a MAC",
        ),
    ],
)
def test_malformed_intents_are_refused_with_the_reason(
    body: dict[str, object], complaint: str
) -> None:
    with pytest.raises(IntentError, match=complaint):
        decode_intent(json.dumps(body).encode())


def test_a_role_change_flushes_the_old_and_new_addresses_but_a_same_role_update_does_not() -> None:
    promoted = MembershipChange(ENDPOINT, Membership("full", ENDPOINT.mac, ("198.18.0.11",)))
    renumbered = MembershipChange(
        ENDPOINT, Membership("quarantine", ENDPOINT.mac, ("198.18.0.11",))
    )
    assert promoted.addresses() == ("198.18.0.10", "2001:db8::10", "198.18.0.11")
    assert renumbered.addresses() == ()


@given(st.binary(max_size=300))
def test_decoding_garbage_raises_only_intent_errors(data: bytes) -> None:
    with contextlib.suppress(IntentError):
        decode_intent(data)
    with contextlib.suppress(IntentError):
        decode_answer(data)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=20,
    ),
    st.sampled_from(
        ["set-memberships", "flush-flows", "reconcile", "open-capture", "open-listener", "status"]
    ),
)
def test_well_formed_json_with_wrong_shapes_raises_only_intent_errors(
    payload: object, op: str
) -> None:
    body = {
        "op": op,
        "changes": payload,
        "addresses": payload,
        "desired": payload,
        "ifname": payload,
        "port": payload,
    }
    with contextlib.suppress(IntentError):
        decode_intent(json.dumps(body).encode())
