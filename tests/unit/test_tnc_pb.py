"""PB-TNC (RFC 5793): batch and message codecs against hand-written bytes, the batch state
machine driven client against server in memory (every legal and illegal batch type in every
state), and garbage that must raise only PbTncError."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netaccess.proto.errors import LocalProtocolError
from netaccess.proto.tnc.errors import PbErrorCode, PbTncError
from netaccess.proto.tnc.pb import (
    AccessRecommendation,
    AssessmentResult,
    BatchType,
    PbAccessRecommendation,
    PbAssessmentResult,
    PbBatch,
    PbError,
    PbLanguagePreference,
    PbPa,
    PbReasonString,
    PbRemediationOther,
    PbRemediationString,
    PbRemediationUri,
    PbRole,
    PbSkipped,
    PbState,
    PbTncSession,
    pull_pb_batch,
    push_pb_batch,
)

# A client's first batch, by hand from RFC 5793 §4.1, §4.2, §4.5 and §4.10.
CDATA = bytes.fromhex(
    "02 000001 0000003f"  # version 2, D=0, CDATA, 63 bytes
    "00 000000 00000006 0000001f"  # IETF, Language-Preference (no NOSKIP), 12 + 19
    + b"Accept-Language: en".hex()
    + "80 000000 00000001 00000018"  # NOSKIP, IETF, PB-PA, 12 + 12
    "00 000000 00000001 0001 ffff"  # not exclusive, IETF, subtype OS, IMC 1, any IMV
)
# A server's decision: §4.6, §4.7, §4.8 (URI) and §4.11.
RESULT = bytes.fromhex(
    "02 800003 00000061"  # version 2, D=1, RESULT, 97 bytes
    "80 000000 00000002 00000010 00000002"  # Assessment-Result: major non-compliance
    "00 000000 00000003 00000010 0000 0003"  # Access-Recommendation (no NOSKIP): quarantined
    "00 000000 00000004 00000023 00 000000 00000001"  # Remediation-Parameters (no NOSKIP), URI
    + b"https://p.test/".hex()
    + "00 000000 00000007 00000016 00000003"  # Reason-String (no NOSKIP), 3 bytes
    + b"bad".hex()
    + "02"
    + b"en".hex()
)


def test_a_client_data_batch_decodes_to_its_messages() -> None:
    assert pull_pb_batch(CDATA) == PbBatch(
        BatchType.CDATA,
        (PbLanguagePreference("Accept-Language: en"), PbPa(0, 1, b"", collector_id=1)),
    )


def test_a_result_batch_decodes_to_its_messages() -> None:
    assert pull_pb_batch(RESULT) == PbBatch(
        BatchType.RESULT,
        (
            PbAssessmentResult(AssessmentResult.MAJOR_NON_COMPLIANCE),
            PbAccessRecommendation(AccessRecommendation.QUARANTINED),
            PbRemediationUri("https://p.test/"),
            PbReasonString("bad", "en"),
        ),
        from_server=True,
    )


@pytest.mark.parametrize("golden", [CDATA, RESULT], ids=["cdata", "result"])
def test_encoding_gives_back_the_hand_written_bytes(golden: bytes) -> None:
    assert push_pb_batch(pull_pb_batch(golden)) == golden


@pytest.mark.parametrize(
    "message",
    [
        PbPa(0, 1, b"\x01\x00\x00\x00\x00\x00\x00\x07", collector_id=3, validator_id=2),
        PbPa(0x902A, 5, b"x", exclusive=True),
        PbRemediationString("Turn the firewall on", "en"),
        PbRemediationOther(32473, 9, b"\x00\x01"),
        PbError(PbErrorCode.INVALID_PARAMETER, offset=12),
        PbError(PbErrorCode.UNSUPPORTED_MANDATORY_MESSAGE, offset=8, fatal=False),
        PbError(PbErrorCode.VERSION_NOT_SUPPORTED, versions=(3, 2, 2)),
        PbError(PbErrorCode.LOCAL_ERROR),
        PbError(7, vendor=32473, parameters=b"vendor specific"),
    ],
)
def test_each_message_survives_a_round_trip(message: object) -> None:
    batch_type = BatchType.RESULT if "Remediation" in type(message).__name__ else BatchType.SDATA
    messages = (message,)
    if batch_type is BatchType.RESULT:
        messages = (PbAssessmentResult(AssessmentResult.COMPLIANT), message)
    batch = PbBatch(batch_type, messages, from_server=True)  # type: ignore[arg-type]
    assert pull_pb_batch(push_pb_batch(batch)) == batch


def test_an_unknown_message_without_noskip_is_skipped() -> None:
    unknown = bytes.fromhex("00 007e59 00000009 0000000e beef")
    batch = bytes.fromhex("02 000001") + (8 + len(unknown)).to_bytes(4, "big") + unknown
    assert pull_pb_batch(batch).messages == (PbSkipped(0x7E59, 9, 14),)


def test_an_unknown_message_with_noskip_is_an_unsupported_mandatory_message() -> None:
    unknown = bytes.fromhex("80 007e59 00000009 0000000c")
    batch = bytes.fromhex("02 000001") + (8 + len(unknown)).to_bytes(4, "big") + unknown
    with pytest.raises(PbTncError) as caught:
        pull_pb_batch(batch)
    assert (caught.value.code, caught.value.offset) == (
        PbErrorCode.UNSUPPORTED_MANDATORY_MESSAGE,
        8,
    )


def test_another_pb_version_is_refused_as_version_not_supported() -> None:
    with pytest.raises(PbTncError) as caught:
        pull_pb_batch(b"\x01" + CDATA[1:])
    assert caught.value.code is PbErrorCode.VERSION_NOT_SUPPORTED


def test_a_batch_length_that_disagrees_with_the_bytes_is_an_invalid_parameter() -> None:
    with pytest.raises(PbTncError) as caught:
        pull_pb_batch(CDATA + b"\x00")
    assert (caught.value.code, caught.value.offset) == (PbErrorCode.INVALID_PARAMETER, 4)


def test_an_assessment_result_outside_a_result_batch_is_an_invalid_parameter() -> None:
    batch = push_pb_batch(
        PbBatch(BatchType.SDATA, (PbAssessmentResult(AssessmentResult.COMPLIANT),), True)
    )
    with pytest.raises(PbTncError) as caught:
        pull_pb_batch(batch)
    assert (caught.value.code, caught.value.offset) == (PbErrorCode.INVALID_PARAMETER, 8)


def test_a_batch_over_the_size_limit_is_refused() -> None:
    with pytest.raises(PbTncError):
        pull_pb_batch(CDATA, max_size=len(CDATA) - 1)


# --- the state machine, client against server -------------------------------------------


def pair() -> tuple[PbTncSession, PbTncSession]:
    return PbTncSession(PbRole.CLIENT), PbTncSession(PbRole.SERVER)


def result(verdict: AssessmentResult = AssessmentResult.COMPLIANT) -> PbBatch:
    return PbBatch(BatchType.RESULT, (PbAssessmentResult(verdict),))


def exchange(sender: PbTncSession, receiver: PbTncSession, batch: PbBatch) -> PbBatch:
    return receiver.receive(sender.send(batch))


def test_a_whole_assessment_moves_both_sides_through_the_same_states() -> None:
    client, server = pair()
    steps = [
        (client, server, PbBatch(BatchType.CDATA), PbState.SERVER_WORKING),
        (server, client, PbBatch(BatchType.SDATA), PbState.CLIENT_WORKING),
        (client, server, PbBatch(BatchType.CDATA), PbState.SERVER_WORKING),
        (server, client, result(), PbState.DECIDED),
        (client, server, PbBatch(BatchType.CRETRY), PbState.SERVER_WORKING),
        (server, client, result(), PbState.DECIDED),
        (server, client, PbBatch(BatchType.SRETRY), PbState.SERVER_WORKING),
        (server, client, PbBatch(BatchType.SRETRY), PbState.CLIENT_WORKING),
        (client, server, PbBatch(BatchType.CRETRY), PbState.SERVER_WORKING),
        (client, server, PbBatch(BatchType.CLOSE), PbState.END),
    ]
    for sender, receiver, batch, state in steps:
        received = exchange(sender, receiver, batch)
        assert received.type is batch.type
        assert received.from_server == (sender is server)
        assert client.state is server.state is state


# Which batch types each state accepts, by sender (§3.2); CLOSE always ends it.
LEGAL = {
    PbState.INIT: {BatchType.CDATA},
    PbState.SERVER_WORKING: {BatchType.SDATA, BatchType.SRETRY, BatchType.RESULT},
    PbState.CLIENT_WORKING: {BatchType.CDATA, BatchType.CRETRY},
    PbState.DECIDED: {BatchType.CRETRY, BatchType.SRETRY},
}
CLIENT_TYPES = (BatchType.CDATA, BatchType.CRETRY)
SERVER_TYPES = (BatchType.SDATA, BatchType.RESULT, BatchType.SRETRY)


def session_in(state: PbState, role: PbRole) -> PbTncSession:
    client, server = pair()
    path = {
        PbState.INIT: [],
        PbState.SERVER_WORKING: [(client, server, PbBatch(BatchType.CDATA))],
        PbState.CLIENT_WORKING: [
            (client, server, PbBatch(BatchType.CDATA)),
            (server, client, PbBatch(BatchType.SDATA)),
        ],
        PbState.DECIDED: [(client, server, PbBatch(BatchType.CDATA)), (server, client, result())],
    }[state]
    for sender, receiver, batch in path:
        exchange(sender, receiver, batch)
    return client if role is PbRole.CLIENT else server


@pytest.mark.parametrize("state", list(LEGAL))
@pytest.mark.parametrize("batch_type", CLIENT_TYPES + SERVER_TYPES)
def test_every_batch_type_in_every_state_is_taken_or_refused_as_unexpected(
    state: PbState, batch_type: BatchType
) -> None:
    sent_by_server = batch_type in SERVER_TYPES
    receiver = session_in(state, PbRole.CLIENT if sent_by_server else PbRole.SERVER)
    batch = result() if batch_type is BatchType.RESULT else PbBatch(batch_type)
    wire = push_pb_batch(PbBatch(batch.type, batch.messages, from_server=sent_by_server))
    if batch_type in LEGAL[state]:
        receiver.receive(wire)
        assert receiver.state is not state or batch_type is BatchType.SRETRY
    else:
        with pytest.raises(PbTncError) as caught:
            receiver.receive(wire)
        assert caught.value.code is PbErrorCode.UNEXPECTED_BATCH_TYPE
        assert caught.value.fatal


@pytest.mark.parametrize("state", list(LEGAL))
@pytest.mark.parametrize("role", list(PbRole))
def test_close_ends_the_session_from_any_state(state: PbState, role: PbRole) -> None:
    receiver = session_in(state, role)
    receiver.receive(push_pb_batch(PbBatch(BatchType.CLOSE, from_server=role is PbRole.CLIENT)))
    assert receiver.state is PbState.END


def test_a_batch_after_close_is_refused() -> None:
    client, server = pair()
    exchange(client, server, PbBatch(BatchType.CLOSE))
    with pytest.raises(PbTncError):
        server.receive(push_pb_batch(PbBatch(BatchType.CDATA)))


def test_a_client_batch_type_from_the_server_is_unexpected() -> None:
    client = PbTncSession(PbRole.CLIENT)
    with pytest.raises(PbTncError) as caught:
        client.receive(push_pb_batch(PbBatch(BatchType.CDATA, from_server=True)))
    assert caught.value.code is PbErrorCode.UNEXPECTED_BATCH_TYPE


def test_a_batch_with_the_wrong_direction_bit_is_an_invalid_parameter() -> None:
    server = PbTncSession(PbRole.SERVER)
    with pytest.raises(PbTncError) as caught:
        server.receive(push_pb_batch(PbBatch(BatchType.CDATA, from_server=True)))
    assert caught.value.code is PbErrorCode.INVALID_PARAMETER


def test_a_result_without_exactly_one_assessment_result_is_refused() -> None:
    client = session_in(PbState.SERVER_WORKING, PbRole.CLIENT)
    client.state = PbState.SERVER_WORKING
    twice = PbAssessmentResult(AssessmentResult.COMPLIANT)
    with pytest.raises(PbTncError) as caught:
        client.receive(push_pb_batch(PbBatch(BatchType.RESULT, (twice, twice), True)))
    assert caught.value.code is PbErrorCode.INVALID_PARAMETER


def test_our_own_illegal_batch_is_a_local_error_and_changes_nothing() -> None:
    client, server = pair()
    with pytest.raises(LocalProtocolError):
        server.send(PbBatch(BatchType.SDATA))  # the client speaks first
    with pytest.raises(LocalProtocolError):
        client.send(PbBatch(BatchType.RESULT))
    assert client.state is server.state is PbState.INIT


def test_a_fatal_error_is_answered_with_a_pb_error_inside_a_close() -> None:
    server = PbTncSession(PbRole.SERVER)
    try:
        server.receive(b"\x02\x00\x00\x01\x00\x00\x00\x09\x00")  # a message cut short
    except PbTncError as exc:
        answer = pull_pb_batch(server.close_with_error(exc))
    assert answer.type is BatchType.CLOSE and answer.from_server
    assert answer.messages == (PbError(PbErrorCode.INVALID_PARAMETER, offset=8),)
    assert server.state is PbState.END


# --- garbage -----------------------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_raises_only_pb_tnc_errors(data: bytes) -> None:
    with contextlib.suppress(PbTncError):
        pull_pb_batch(data)


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from([CDATA, RESULT]),
    st.integers(0, 200),
    st.binary(min_size=1, max_size=4),
    st.booleans(),
)
def test_damaged_batches_raise_only_pb_tnc_errors_in_a_session(
    golden: bytes, at: int, noise: bytes, insert: bool
) -> None:
    at = at % len(golden)
    damaged = (
        golden[:at] + noise + golden[at:] if insert else golden[:at] + noise + golden[at + 1 :]
    )
    role = PbRole.SERVER if golden is CDATA else PbRole.CLIENT
    session = PbTncSession(role)
    if role is PbRole.CLIENT:
        session.state = PbState.SERVER_WORKING
    try:
        session.receive(damaged)
    except PbTncError as exc:
        assert pull_pb_batch(session.close_with_error(exc)).type is BatchType.CLOSE
