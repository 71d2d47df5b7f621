"""PT-TLS (RFC 6876): a client and a server machine wired together in memory, byte vectors
written by hand from the RFC's layouts, and garbage that must raise only PtTlsError."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netaccess.proto.errors import LocalProtocolError, ProtocolError
from netaccess.proto.tnc.errors import PtTlsError, PtTlsErrorCode
from netaccess.proto.tnc.pt_tls import (
    CLOSED,
    NEED_DATA,
    AuthenticationDone,
    Event,
    PbTncBatchReceived,
    PtTlsConnection,
    PtTlsErrorReceived,
    PtTlsRole,
    PtTlsState,
    SaslAuthenticationData,
    SaslMechanismSelected,
    SaslMechanismsOffered,
    SaslPlainCredentials,
    SaslResult,
    SaslResultCode,
    VersionAgreed,
    VersionRequested,
    Wait,
    push_pt_tls_message,
)

# Bare PB-TNC batch headers (RFC 5793 §4.1), opaque to PT-TLS: version 2, then D (1 bit,
# set by the server), reserved and the batch type (CDATA 1, SDATA 2), then length 8.
CDATA = bytes.fromhex("02 000001 00000008")
SDATA = bytes.fromhex("02 800002 00000008")
PLAIN_ALICE = b"\x00alice\x00s3cret"  # RFC 4616: no authzid, authcid "alice", passwd "s3cret"


class Pair:
    """A client and a server machine; to_server()/to_client() deliver bytes and return the
    events they produce."""

    def __init__(self, mechanisms: tuple[str, ...] = ()) -> None:
        self.client = PtTlsConnection(PtTlsRole.CLIENT)
        self.server = PtTlsConnection(PtTlsRole.SERVER, sasl_mechanisms=mechanisms)

    def to_server(self, data: bytes) -> list[Event]:
        return drain(self.server, data)

    def to_client(self, data: bytes) -> list[Event]:
        return drain(self.client, data)

    def negotiate_version(self) -> None:
        assert self.to_server(self.client.send_version_request()) == [VersionRequested(1, 1, 1)]
        assert self.to_client(self.server.send_version_response()) == [VersionAgreed(1)]


def drain(conn: PtTlsConnection, data: bytes) -> list[Event]:
    conn.receive_data(data)
    events: list[Event] = []
    while not isinstance(event := conn.next_event(), Wait):
        events.append(event)
    return events


def raw(message_type: int, value: bytes = b"", *, message_id: int = 7, vendor: int = 0) -> bytes:
    return push_pt_tls_message(vendor, message_type, message_id, value)


@pytest.fixture
def plain_pair() -> Pair:
    """Versions agreed; the server has offered PLAIN and the client has seen the offer."""
    pair = Pair(mechanisms=("PLAIN",))
    pair.negotiate_version()
    assert pair.to_client(pair.server.send_sasl_mechanisms()) == [SaslMechanismsOffered(("PLAIN",))]
    return pair


@pytest.fixture
def open_pair() -> Pair:
    """In the data transport phase, without client authentication."""
    pair = Pair()
    pair.negotiate_version()
    assert pair.to_client(pair.server.send_sasl_mechanisms()) == [AuthenticationDone()]
    return pair


# --- sessions -----------------------------------------------------------------------------


def test_without_client_authentication_batches_flow_both_ways(open_pair: Pair) -> None:
    assert open_pair.server.state is PtTlsState.DATA_TRANSPORT
    assert open_pair.to_server(open_pair.client.send_batch(CDATA)) == [PbTncBatchReceived(CDATA)]
    assert open_pair.to_client(open_pair.server.send_batch(SDATA)) == [PbTncBatchReceived(SDATA)]


def test_plain_credentials_reach_the_caller(plain_pair: Pair) -> None:
    selection = plain_pair.client.select_plain("alice", "s3cret", authzid="admin")
    assert plain_pair.to_server(selection) == [SaslPlainCredentials("admin", "alice", "s3cret")]
    assert plain_pair.server.state is PtTlsState.SEND_SASL_OUTCOME


def test_accepted_plain_sends_result_00_00_then_an_empty_mechanism_list(
    plain_pair: Pair,
) -> None:
    plain_pair.to_server(plain_pair.client.select_plain("alice", "s3cret"))
    answer = plain_pair.server.accept_credentials()
    # SASL Result (type 6, 18 bytes) with the 16-bit code 0, then SASL Mechanisms, empty.
    assert answer[4:8] == bytes.fromhex("00000006") and answer[16:18] == b"\x00\x00"
    assert answer[18 + 4 : 18 + 12] == bytes.fromhex("00000003 00000010")
    assert len(answer) == 18 + 16
    assert plain_pair.to_client(answer) == [
        SaslResult(SaslResultCode.SUCCESS),
        AuthenticationDone(),
    ]
    assert plain_pair.to_server(plain_pair.client.send_batch(CDATA)) == [PbTncBatchReceived(CDATA)]


def test_rejected_plain_gives_the_client_a_failure_and_an_error(plain_pair: Pair) -> None:
    selection = plain_pair.client.select_plain("alice", "wrong")
    plain_pair.to_server(selection)
    events = plain_pair.to_client(plain_pair.server.reject_credentials())
    assert events == [
        SaslResult(SaslResultCode.FAILURE),
        PtTlsErrorReceived(0, PtTlsErrorCode.SASL_MECHANISM_ERROR, selection[:16]),
    ]
    assert plain_pair.server.state is PtTlsState.CLOSED
    assert plain_pair.client.state is PtTlsState.CLOSED


def test_plain_without_an_initial_response_gets_an_empty_challenge(plain_pair: Pair) -> None:
    selection = plain_pair.client.select_mechanism("PLAIN")
    assert plain_pair.to_server(selection) == [SaslMechanismSelected("PLAIN", None)]
    challenge = plain_pair.server.send_sasl_authentication_data(b"")
    assert plain_pair.to_client(challenge) == [SaslAuthenticationData(b"")]
    response = plain_pair.client.send_sasl_authentication_data(PLAIN_ALICE)
    assert plain_pair.to_server(response) == [SaslPlainCredentials("", "alice", "s3cret")]


def test_a_server_may_offer_again_after_a_failure(plain_pair: Pair) -> None:
    plain_pair.to_server(plain_pair.client.select_plain("alice", "wrong"))
    retry = plain_pair.server.send_sasl_result(SaslResultCode.FAILURE)
    retry += plain_pair.server.send_sasl_mechanisms()
    assert plain_pair.to_client(retry) == [
        SaslResult(SaslResultCode.FAILURE),
        SaslMechanismsOffered(("PLAIN",)),
    ]
    plain_pair.to_server(plain_pair.client.select_plain("alice", "s3cret"))
    assert plain_pair.to_client(plain_pair.server.accept_credentials())[-1] == AuthenticationDone()


def test_a_version_range_without_1_is_version_not_supported() -> None:
    pair = Pair()
    request = pair.client.send_version_request(2, 2, 2)
    with pytest.raises(PtTlsError) as caught:
        pair.to_server(request)
    assert caught.value.code is PtTlsErrorCode.VERSION_NOT_SUPPORTED
    assert pair.server.state is PtTlsState.CLOSED
    assert pair.to_client(pair.server.send_error(caught.value)) == [
        PtTlsErrorReceived(0, PtTlsErrorCode.VERSION_NOT_SUPPORTED, request)
    ]


def test_a_client_refuses_a_version_it_did_not_ask_for() -> None:
    client = PtTlsConnection(PtTlsRole.CLIENT)
    client.send_version_request()
    with pytest.raises(PtTlsError) as caught:
        drain(client, raw(2, bytes.fromhex("00000002")))
    assert caught.value.code is PtTlsErrorCode.VERSION_NOT_SUPPORTED


def test_a_batch_before_authentication_ends_is_an_invalid_message(plain_pair: Pair) -> None:
    with pytest.raises(PtTlsError) as caught:
        plain_pair.to_server(raw(7, CDATA))
    assert caught.value.code is PtTlsErrorCode.INVALID_MESSAGE
    assert plain_pair.server.state is PtTlsState.CLOSED


def test_a_second_version_request_is_an_invalid_message(open_pair: Pair) -> None:
    with pytest.raises(PtTlsError) as caught:
        open_pair.to_server(raw(1, bytes.fromhex("00010101")))
    assert caught.value.code is PtTlsErrorCode.INVALID_MESSAGE


def test_an_unknown_type_is_type_not_supported_and_the_session_goes_on(open_pair: Pair) -> None:
    with pytest.raises(PtTlsError) as caught:
        open_pair.to_server(raw(9, b"future"))
    assert caught.value.code is PtTlsErrorCode.TYPE_NOT_SUPPORTED
    assert open_pair.server.state is PtTlsState.DATA_TRANSPORT
    [error] = open_pair.to_client(open_pair.server.send_error(caught.value))
    assert isinstance(error, PtTlsErrorReceived) and not error.fatal
    assert open_pair.client.state is PtTlsState.DATA_TRANSPORT
    assert open_pair.to_server(open_pair.client.send_batch(CDATA)) == [PbTncBatchReceived(CDATA)]


def test_a_vendor_specific_type_is_type_not_supported(open_pair: Pair) -> None:
    with pytest.raises(PtTlsError) as caught:
        open_pair.to_server(raw(7, CDATA, vendor=0x005597))
    assert caught.value.code is PtTlsErrorCode.TYPE_NOT_SUPPORTED


def test_an_oversized_length_is_refused_on_the_header_alone() -> None:
    server = PtTlsConnection(PtTlsRole.SERVER, max_message_size=1024)
    header = bytes.fromhex("00 000000 00000001 00000401 00000000")  # length 1025
    server.receive_data(header)
    with pytest.raises(PtTlsError) as caught:
        server.next_event()
    assert caught.value.code is PtTlsErrorCode.INVALID_PARAMETER
    assert server.send_error(caught.value)[24:] == header


def test_a_length_under_the_header_size_is_malformed() -> None:
    server = PtTlsConnection(PtTlsRole.SERVER)
    with pytest.raises(PtTlsError) as caught:
        drain(server, bytes.fromhex("00 000000 00000001 0000000f 00000000"))
    assert caught.value.code is PtTlsErrorCode.MALFORMED_MESSAGE


def test_a_stream_ending_inside_a_message_is_malformed() -> None:
    server = PtTlsConnection(PtTlsRole.SERVER)
    server.receive_data(PtTlsConnection(PtTlsRole.CLIENT).send_version_request()[:-1])
    assert server.next_event() is NEED_DATA
    server.receive_data(b"")
    with pytest.raises(PtTlsError) as caught:
        server.next_event()
    assert caught.value.code is PtTlsErrorCode.MALFORMED_MESSAGE


def test_a_stream_ending_between_messages_is_closed(open_pair: Pair) -> None:
    open_pair.server.receive_data(b"")
    assert open_pair.server.next_event() is CLOSED


def test_selecting_a_mechanism_not_offered_is_a_sasl_mechanism_error(plain_pair: Pair) -> None:
    with pytest.raises(PtTlsError) as caught:
        plain_pair.to_server(raw(4, b"\x08CRAM-MD5"))
    assert caught.value.code is PtTlsErrorCode.SASL_MECHANISM_ERROR


def test_a_plain_message_without_two_nuls_is_a_sasl_mechanism_error(plain_pair: Pair) -> None:
    with pytest.raises(PtTlsError) as caught:
        plain_pair.to_server(raw(4, b"\x05PLAINalice"))
    assert caught.value.code is PtTlsErrorCode.SASL_MECHANISM_ERROR


def test_a_bad_mechanism_name_is_an_invalid_parameter() -> None:
    pair = Pair(mechanisms=("PLAIN",))
    pair.negotiate_version()
    with pytest.raises(PtTlsError) as caught:
        pair.to_client(raw(3, b"\x05plain"))
    assert caught.value.code is PtTlsErrorCode.INVALID_PARAMETER


def test_a_one_byte_sasl_result_from_strongswan_is_read_as_the_code(plain_pair: Pair) -> None:
    plain_pair.client.select_plain("alice", "s3cret")
    assert plain_pair.to_client(raw(6, b"\x00")) == [SaslResult(SaslResultCode.SUCCESS)]


def test_a_peer_error_ends_the_session(open_pair: Pair) -> None:
    error = PtTlsError(PtTlsErrorCode.INVALID_MESSAGE, "test")
    assert isinstance(
        open_pair.to_server(open_pair.client.send_error(error))[0], PtTlsErrorReceived
    )
    assert open_pair.server.state is PtTlsState.CLOSED
    assert open_pair.server.next_event() is CLOSED


def test_data_one_byte_at_a_time_gives_the_same_events() -> None:
    stream = (
        PtTlsConnection(PtTlsRole.CLIENT).send_version_request()
        + raw(4, b"\x05PLAIN" + PLAIN_ALICE, message_id=1)
        + raw(7, CDATA, message_id=2)
        + raw(7, CDATA * 3, message_id=3)
    )
    bytewise = [stream[i : i + 1] for i in range(len(stream))]
    events = play(PtTlsConnection(PtTlsRole.SERVER), [stream])
    assert play(PtTlsConnection(PtTlsRole.SERVER), bytewise) == events
    assert events == [
        VersionRequested(1, 1, 1),
        SaslPlainCredentials("", "alice", "s3cret"),
        PbTncBatchReceived(CDATA),
        PbTncBatchReceived(CDATA * 3),
    ]


def test_each_side_numbers_its_messages_from_0(open_pair: Pair) -> None:
    assert open_pair.client.send_batch(CDATA)[12:16] == bytes.fromhex("00000001")
    assert open_pair.server.send_batch(SDATA)[12:16] == bytes.fromhex("00000002")


def test_an_error_quotes_at_most_1024_bytes(open_pair: Pair) -> None:
    with pytest.raises(PtTlsError) as caught:
        open_pair.to_server(raw(9, bytes(4000)))
    assert len(open_pair.server.send_error(caught.value)) == 16 + 8 + 1024


def test_sending_out_of_turn_is_a_local_error(plain_pair: Pair) -> None:
    with pytest.raises(LocalProtocolError):
        plain_pair.client.send_batch(CDATA)
    with pytest.raises(LocalProtocolError):
        plain_pair.server.accept_credentials()
    with pytest.raises(LocalProtocolError):
        plain_pair.client.select_mechanism("SCRAM-SHA-256")


def test_accepting_plain_before_its_credentials_arrive_is_a_local_error(plain_pair: Pair) -> None:
    plain_pair.to_server(plain_pair.client.select_mechanism("PLAIN"))
    with pytest.raises(LocalProtocolError):
        plain_pair.server.accept_credentials()


def test_receiving_after_the_end_of_stream_is_a_local_error() -> None:
    server = PtTlsConnection(PtTlsRole.SERVER)
    server.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        server.receive_data(b"\x00")


def test_a_refusal_does_not_echo_the_password(plain_pair: Pair) -> None:
    plain_pair.to_server(plain_pair.client.select_plain("alice", "wrong"))
    assert b"wrong" not in plain_pair.server.reject_credentials()


def test_a_password_stays_out_of_reprs() -> None:
    assert "s3cret" not in repr(SaslPlainCredentials("", "alice", "s3cret"))


# --- golden vectors, by hand from RFC 6876 §3.5-§3.9 --------------------------------------

VERSION_REQUEST = bytes.fromhex(
    "00"  # reserved
    "000000"  # message type vendor id: IETF
    "00000001"  # message type: Version Request
    "00000014"  # message length: 20, header included
    "00000000"  # message identifier: the client's first
    "00"  # reserved
    "01"  # min version
    "01"  # max version
    "01"  # preferred version
)
VERSION_RESPONSE = bytes.fromhex(
    "00"  # reserved
    "000000"  # vendor: IETF
    "00000002"  # Version Response
    "00000014"  # 20 bytes
    "00000000"  # the server's first
    "000000"  # reserved
    "01"  # version 1
)
MECHANISMS_EMPTY = bytes.fromhex(
    "00"  # reserved
    "000000"  # vendor: IETF
    "00000003"  # SASL Mechanisms
    "00000010"  # 16 bytes: no entries, authentication over
    "00000001"  # the server's second
)
MECHANISMS_PLAIN = bytes.fromhex(
    "00"  # reserved
    "000000"  # vendor: IETF
    "00000003"  # SASL Mechanisms
    "00000016"  # 22 bytes
    "00000001"  # the server's second
    "05"  # reserved (3 bits) 000, name length (5 bits) 5
    "504c41494e"  # "PLAIN"
)
SELECTION_PLAIN = bytes.fromhex(
    "00"  # reserved
    "000000"  # vendor: IETF
    "00000004"  # SASL Mechanism Selection
    "00000023"  # 35 bytes
    "00000001"  # the client's second
    "05"  # reserved 000, name length 5
    "504c41494e"  # "PLAIN"
    "00"  # initial response, RFC 4616: no authzid, NUL
    "616c696365"  # authcid "alice"
    "00"  # NUL
    "733363726574"  # passwd "s3cret"
)
RESULT_SUCCESS = bytes.fromhex(
    "00"  # reserved
    "000000"  # vendor: IETF
    "00000006"  # SASL Result
    "00000012"  # 18 bytes
    "00000002"  # the server's third
    "0000"  # result code 0, success, in 16 bits (strongSwan reads the first byte)
)
MECHANISMS_EMPTY_AFTER_RESULT = bytes.fromhex(
    "00"  # reserved
    "000000"  # vendor: IETF
    "00000003"  # SASL Mechanisms
    "00000010"  # 16 bytes: empty, authentication over
    "00000003"  # the server's fourth
)
BATCH = bytes.fromhex(
    "00"  # reserved
    "000000"  # vendor: IETF
    "00000007"  # PB-TNC Batch
    "00000018"  # 24 bytes
    "00000002"  # the client's third
    "02"  # the batch, opaque here: PB-TNC version 2
    "000001"  # D=0, reserved, batch type 1 (CDATA)
    "00000008"  # batch length 8
)
UNKNOWN_TYPE = bytes.fromhex(
    "00"  # reserved
    "000000"  # vendor: IETF
    "00000009"  # message type 9: unassigned
    "00000010"  # 16 bytes
    "00000003"  # the client's fourth
)
ERROR_TYPE_NOT_SUPPORTED = bytes.fromhex(
    "00"  # reserved
    "000000"  # vendor: IETF
    "00000008"  # PT-TLS Error
    "00000028"  # 40 bytes
    "00000004"  # the server's fifth
    "00"  # reserved
    "000000"  # error code vendor id: IETF
    "00000003"  # error code: Type Not Supported
    "0000000000000009"  # copy of the offending message: reserved, vendor, type 9,
    "0000001000000003"  # ... length 16, identifier 3
)


def test_golden_version_exchange() -> None:
    client = PtTlsConnection(PtTlsRole.CLIENT)
    server = PtTlsConnection(PtTlsRole.SERVER, sasl_mechanisms=())
    assert client.send_version_request() == VERSION_REQUEST
    assert drain(server, VERSION_REQUEST) == [VersionRequested(1, 1, 1)]
    assert server.send_version_response() == VERSION_RESPONSE
    assert drain(client, VERSION_RESPONSE) == [VersionAgreed(1)]


def test_golden_empty_mechanism_list() -> None:
    server = PtTlsConnection(PtTlsRole.SERVER, sasl_mechanisms=())
    drain(server, VERSION_REQUEST)
    server.send_version_response()
    assert server.send_sasl_mechanisms() == MECHANISMS_EMPTY


def test_golden_plain_exchange_and_batch() -> None:
    client = PtTlsConnection(PtTlsRole.CLIENT)
    server = PtTlsConnection(PtTlsRole.SERVER, sasl_mechanisms=("PLAIN",))
    drain(server, client.send_version_request())
    drain(client, server.send_version_response())
    assert server.send_sasl_mechanisms() == MECHANISMS_PLAIN
    assert drain(client, MECHANISMS_PLAIN) == [SaslMechanismsOffered(("PLAIN",))]
    assert client.select_plain("alice", "s3cret") == SELECTION_PLAIN
    assert drain(server, SELECTION_PLAIN) == [SaslPlainCredentials("", "alice", "s3cret")]
    assert server.accept_credentials() == RESULT_SUCCESS + MECHANISMS_EMPTY_AFTER_RESULT
    drain(client, RESULT_SUCCESS + MECHANISMS_EMPTY_AFTER_RESULT)
    assert client.send_batch(CDATA) == BATCH
    assert drain(server, BATCH) == [PbTncBatchReceived(CDATA)]


def test_golden_pt_tls_error() -> None:
    pair = Pair(mechanisms=("PLAIN",))
    pair.negotiate_version()
    pair.to_client(pair.server.send_sasl_mechanisms())
    pair.to_server(pair.client.select_plain("alice", "s3cret"))
    pair.to_client(pair.server.accept_credentials())
    with pytest.raises(PtTlsError) as caught:
        pair.to_server(UNKNOWN_TYPE)
    assert pair.server.send_error(caught.value) == ERROR_TYPE_NOT_SUPPORTED
    assert pair.to_client(ERROR_TYPE_NOT_SUPPORTED) == [
        PtTlsErrorReceived(0, PtTlsErrorCode.TYPE_NOT_SUPPORTED, UNKNOWN_TYPE)
    ]


# --- garbage in ---------------------------------------------------------------------------

FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def play(conn: PtTlsConnection, chunks: list[bytes]) -> list[object]:
    """Feed `chunks`, then the end of the stream, answering like a willing caller. Returns
    events and error codes; any exception but PtTlsError fails the test."""
    seen: list[object] = []
    last: object = None
    for chunk in [*filter(None, chunks), b""]:  # b"" is the end of the stream
        conn.receive_data(chunk)
        for _ in range(100_000):  # each round consumes a message or ends: never a hang
            try:
                event = conn.next_event()
            except ProtocolError as exc:
                assert type(exc) is PtTlsError, repr(exc)
                seen.append(exc.code)
                conn.send_error(exc)
                continue
            if event is NEED_DATA or event is CLOSED:
                break
            seen.append(event)
            last = event
            answer(conn, last)
        else:
            raise AssertionError("next_event() made no progress")
    return seen


def answer(conn: PtTlsConnection, event: object) -> None:
    """What a willing caller sends: an echo for a batch, and whatever its turn asks."""
    if conn.state is PtTlsState.DATA_TRANSPORT and isinstance(event, PbTncBatchReceived):
        conn.send_batch(SDATA if conn.role is PtTlsRole.SERVER else CDATA)
    while conn.state.name.startswith("SEND_"):
        take_turn(conn, event)


def take_turn(conn: PtTlsConnection, event: object) -> None:
    match conn.state:
        case PtTlsState.SEND_VERSION_RESPONSE:
            conn.send_version_response()
        case PtTlsState.SEND_SASL_MECHANISMS:
            conn.send_sasl_mechanisms()
        case PtTlsState.SEND_SASL_OUTCOME if isinstance(event, SaslPlainCredentials):
            conn.accept_credentials()
        case PtTlsState.SEND_SASL_OUTCOME:
            conn.send_sasl_authentication_data(b"")
        case PtTlsState.SEND_SASL_SELECTION:
            assert isinstance(event, SaslMechanismsOffered)
            if "PLAIN" in event.mechanisms:
                conn.select_plain("alice", "s3cret")
            else:
                conn.send_error(PtTlsError(PtTlsErrorCode.SASL_MECHANISM_ERROR, "no PLAIN"))
        case PtTlsState.SEND_SASL_RESPONSE:
            conn.send_sasl_authentication_data(PLAIN_ALICE)
        case other:
            raise AssertionError(f"no turn to take in {other}")


CLIENT_STREAM = VERSION_REQUEST + SELECTION_PLAIN + BATCH + raw(7, CDATA * 4, message_id=3)
SERVER_STREAM = (
    VERSION_RESPONSE
    + MECHANISMS_PLAIN
    + raw(5, b"", message_id=2)
    + RESULT_SUCCESS
    + MECHANISMS_EMPTY_AFTER_RESULT
    + raw(7, SDATA, message_id=4)
)


@st.composite
def mutated(draw: st.DrawFn, stream: bytes) -> list[bytes]:
    """`stream` with a few bytes changed, dropped or inserted, cut into random chunks."""
    data = bytearray(stream)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["set", "delete", "insert"]))
        if action == "set" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif action == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=8)))
    return [bytes(data[a:b]) for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def fresh_client() -> PtTlsConnection:
    client = PtTlsConnection(PtTlsRole.CLIENT)
    client.send_version_request()
    return client


@FUZZ
@given(data=st.binary(max_size=512), plain=st.booleans())
def test_a_server_fed_random_bytes_raises_only_pt_tls_errors(data: bytes, plain: bool) -> None:
    play(PtTlsConnection(PtTlsRole.SERVER, sasl_mechanisms=("PLAIN",) if plain else ()), [data])


@FUZZ
@given(data=st.binary(max_size=512))
def test_a_client_fed_random_bytes_raises_only_pt_tls_errors(data: bytes) -> None:
    play(fresh_client(), [data])


@FUZZ
@given(chunks=mutated(CLIENT_STREAM))
def test_a_server_fed_a_mutated_session_raises_only_pt_tls_errors(chunks: list[bytes]) -> None:
    play(PtTlsConnection(PtTlsRole.SERVER, max_message_size=256), chunks)


@FUZZ
@given(chunks=mutated(SERVER_STREAM))
def test_a_client_fed_a_mutated_session_raises_only_pt_tls_errors(chunks: list[bytes]) -> None:
    play(fresh_client(), chunks)


def test_the_unmutated_sessions_run_to_data_transport() -> None:
    server = PtTlsConnection(PtTlsRole.SERVER)
    assert play(server, [CLIENT_STREAM])[-1] == PbTncBatchReceived(CDATA * 4)
    client = fresh_client()
    assert play(client, [SERVER_STREAM])[-1] == PbTncBatchReceived(SDATA)
