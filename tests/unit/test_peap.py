"""MS-CHAPv2 against RFC 2759's own vectors, EAP-MSCHAPv2 and PEAPv0's phase 2 with garbage
fed in, and whole PEAP conversations: the server's EapConversation with the real TLS engine
against a PEAPv0 peer written here (over a client SSLObject, as wpa_supplicant runs it: inner
headers stripped but for the Result TLV)."""

from __future__ import annotations

import contextlib
import re
import secrets

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netaccess.proto.radius import mschapv2
from netaccess.proto.radius.eap import (
    EapCode,
    EapType,
    MalformedEap,
    decode_eap,
    decode_tls_frame,
    encode_eap,
    encode_tls_frame,
)
from netaccess.proto.radius.eap_server import (
    Challenge,
    CheckNtResponse,
    EapConversation,
    Failure,
    Step,
    Success,
)
from netaccess.proto.radius.mschapv2 import MschapResponse, OpCode
from netaccess.proto.radius.peap import (
    EXTENSIONS,
    RESULT_FAILURE,
    RESULT_SUCCESS,
    Passed,
    PeapInner,
    Refused,
    Send,
    Verify,
    result_of,
)
from tests.unit.test_eap_conversation import EapPeer, Pki, conversation, make_pki

# RFC 2759 §9.2
USER = b"User"
PASSWORD = "clientPass"
AUTHENTICATOR_CHALLENGE = bytes.fromhex("5B5D7C7D7B3F2F3E3C2C602132262628")
PEER_CHALLENGE = bytes.fromhex("21402324255E262A28295F2B3A337C7E")
NT_HASH = bytes.fromhex("44EBBA8D5312B8D611474411F56989AE")
NT_RESPONSE = bytes.fromhex("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF")
AUTHENTICATOR_RESPONSE = b"S=407A5589115FD0D6209F510FE9C04566932CDA56"


def test_rfc2759_vectors() -> None:
    assert mschapv2.nt_password_hash(PASSWORD) == NT_HASH
    challenge = mschapv2.challenge_hash(PEER_CHALLENGE, AUTHENTICATOR_CHALLENGE, USER)
    assert challenge == bytes.fromhex("D02E4386BCE91226")
    assert mschapv2.nt_response(AUTHENTICATOR_CHALLENGE, PEER_CHALLENGE, USER, NT_HASH) == (
        NT_RESPONSE
    )
    assert (
        mschapv2.authenticator_response(
            NT_HASH, NT_RESPONSE, PEER_CHALLENGE, AUTHENTICATOR_CHALLENGE, USER
        )
        == AUTHENTICATOR_RESPONSE
    )


def test_check_response_proves_a_right_answer_and_refuses_a_wrong_one() -> None:
    right = MschapResponse(7, PEER_CHALLENGE, NT_RESPONSE, b"User")
    assert mschapv2.check_response(NT_HASH, AUTHENTICATOR_CHALLENGE, right) == (
        AUTHENTICATOR_RESPONSE
    )
    # The domain is not part of the challenge hash (RFC 2759 §8.2).
    assert mschapv2.check_response(
        NT_HASH, AUTHENTICATOR_CHALLENGE, MschapResponse(7, PEER_CHALLENGE, NT_RESPONSE, b"C\\User")
    ) == (AUTHENTICATOR_RESPONSE)
    wrong = MschapResponse(7, PEER_CHALLENGE, bytes(24), b"User")
    assert mschapv2.check_response(NT_HASH, AUTHENTICATOR_CHALLENGE, wrong) is None
    other_user = MschapResponse(7, PEER_CHALLENGE, NT_RESPONSE, b"Other")
    assert mschapv2.check_response(NT_HASH, AUTHENTICATOR_CHALLENGE, other_user) is None
    other_password = mschapv2.nt_password_hash("clientpass")
    assert mschapv2.check_response(other_password, AUTHENTICATOR_CHALLENGE, right) is None


def test_a_password_past_256_characters_has_no_nt_hash() -> None:
    assert len(mschapv2.nt_password_hash("x" * 256)) == 16
    with pytest.raises(ValueError):
        mschapv2.nt_password_hash("x" * 257)


def response_packet(identifier: int, response: bytes, name: bytes, flags: int = 0) -> bytes:
    body = bytes((49,)) + PEER_CHALLENGE + bytes(8) + response + bytes((flags,)) + name
    return bytes((OpCode.RESPONSE, identifier)) + (4 + len(body)).to_bytes(2, "big") + body


def test_the_response_packet_round_trips_and_bad_ones_are_refused() -> None:
    found = mschapv2.decode_response(response_packet(9, NT_RESPONSE, b"alice"))
    assert found == MschapResponse(9, PEER_CHALLENGE, NT_RESPONSE, b"alice")
    good = response_packet(9, NT_RESPONSE, b"alice")
    for bad in (
        good[:20],  # short
        good + b"x",  # MS-Length disagrees
        bytes((OpCode.CHALLENGE,)) + good[1:],  # not a Response
        good[:4] + b"\x10" + good[5:],  # Value-Size 16
        response_packet(9, NT_RESPONSE, b"alice", flags=1),
    ):
        with pytest.raises(MalformedEap):
            mschapv2.decode_response(bad)


def test_the_challenge_and_success_packets_carry_ms_length_from_the_opcode() -> None:
    challenge = mschapv2.encode_challenge(3, AUTHENTICATOR_CHALLENGE, b"netaccess")
    assert challenge[:2] == bytes((OpCode.CHALLENGE, 3))
    assert int.from_bytes(challenge[2:4], "big") == len(challenge)
    assert challenge[4] == 16 and challenge[5:21] == AUTHENTICATOR_CHALLENGE
    assert challenge[21:] == b"netaccess"
    success = mschapv2.encode_success(3, AUTHENTICATOR_RESPONSE, "welcome")
    assert success[4:] == AUTHENTICATOR_RESPONSE + b" M=welcome"
    assert int.from_bytes(success[2:4], "big") == len(success)
    with pytest.raises(ValueError):
        mschapv2.encode_challenge(3, b"short", b"")


@given(st.binary(max_size=200))
def test_garbage_responses_raise_only_malformed_eap(data: bytes) -> None:
    with contextlib.suppress(MalformedEap):
        mschapv2.decode_response(data)


@given(st.binary(max_size=64))
def test_garbage_tlvs_raise_only_malformed_eap(data: bytes) -> None:
    with contextlib.suppress(MalformedEap):
        assert result_of(data) in range(65536)


def test_result_tlvs() -> None:
    assert result_of(b"\x80\x03\x00\x02\x00\x01") == RESULT_SUCCESS
    assert result_of(b"\x00\x07\x00\x01z\x80\x03\x00\x02\x00\x02") == RESULT_FAILURE  # optional
    for bad in (b"", b"\x80\x03\x00\x02\x00", b"\x80\x07\x00\x00\x80\x03\x00\x02\x00\x01"):
        with pytest.raises(MalformedEap):
            result_of(bad)


def _inner_at(phase: str) -> PeapInner:
    """A phase 2 advanced to `phase` by a well-behaved peer."""
    inner = PeapInner()
    inner.start()
    if phase == "identity":
        return inner
    step = inner.receive(b"\x01alice")
    assert isinstance(step, Send)
    if phase == "challenge":
        return inner
    identifier = step.data[2]
    verify = inner.receive(b"\x1a" + response_packet(identifier, NT_RESPONSE, b"alice"))
    assert isinstance(verify, Verify)
    if phase == "checking":
        return inner
    if phase in ("failure", "failed"):
        assert isinstance(inner.checked(None), Send)
        if phase == "failed":
            assert isinstance(inner.receive(b"\x1a\x04"), Send)
        return inner
    assert isinstance(inner.checked(AUTHENTICATOR_RESPONSE), Send)
    if phase == "success":
        return inner
    assert isinstance(inner.receive(b"\x1a\x03"), Send)
    return inner


PHASES = ["identity", "challenge", "checking", "success", "result", "failure", "failed"]


@pytest.mark.parametrize("phase", PHASES)
@given(data=st.binary(max_size=120))
def test_any_inner_packet_in_any_phase_gives_a_step(phase: str, data: bytes) -> None:
    step = _inner_at(phase).receive(data)
    assert isinstance(step, Send | Verify | Passed | Refused)
    if phase in ("checking", "result", "failure", "failed") and isinstance(step, Passed):
        raise AssertionError("garbage passed phase 2")
    if phase == "failed":
        assert isinstance(step, Refused) and "wrong password" in step.why


def test_the_inner_conversation_in_order() -> None:
    inner = PeapInner(server_name=b"nac")
    assert inner.start() == b"\x01"  # Identity, header stripped
    step = inner.receive(b"\x01alice@staff")
    assert inner.identity == "alice@staff"
    assert isinstance(step, Send) and step.data[:2] == bytes((EapType.MSCHAPV2, OpCode.CHALLENGE))
    challenge = step.data[6:22]
    identifier = step.data[2]
    name = b"staff\\alice"
    response = mschapv2.nt_response(challenge, PEER_CHALLENGE, b"alice", NT_HASH)
    verify = inner.receive(b"\x1a" + response_packet(identifier, response, name))
    assert isinstance(verify, Verify)
    assert verify.user == "staff\\alice" and verify.challenge == challenge
    proof = mschapv2.check_response(NT_HASH, verify.challenge, verify.response)
    assert proof is not None
    success = inner.checked(proof)
    assert isinstance(success, Send) and proof in success.data
    result = inner.receive(b"\x1a\x03")
    assert isinstance(result, Send)
    tlv = decode_eap(result.data)  # the Extensions packet keeps its header
    assert (tlv.code, tlv.type) == (EapCode.REQUEST, EXTENSIONS)
    assert result_of(tlv.data) == RESULT_SUCCESS
    answer = encode_eap(EapCode.RESPONSE, tlv.identifier, EXTENSIONS, tlv.data)
    assert inner.receive(answer) == Passed("staff\\alice")


def test_inner_refusals() -> None:
    assert isinstance(_inner_at("identity").receive(b"\x03\x1a"), Refused)  # a Nak
    assert isinstance(_inner_at("challenge").receive(b"\x03\x06"), Refused)  # Nak for GTC
    wrong_id = _inner_at("challenge")
    other = (wrong_id._mschap_id + 1) & 0xFF
    step = wrong_id.receive(b"\x1a" + response_packet(other, NT_RESPONSE, b"alice"))
    assert isinstance(step, Refused) and "identifier" in step.why
    checking = _inner_at("checking")
    assert isinstance(checking.checked(None), Send)
    with pytest.raises(RuntimeError):
        checking.checked(None)
    # Something other than the acknowledgement of our Failure ends phase 2 at once.
    unacknowledged = _inner_at("failure").receive(b"\x1a\x03")
    assert unacknowledged == Refused("wrong password for 'alice' (MS-CHAPv2)")
    result = _inner_at("result")
    failure = encode_eap(
        EapCode.RESPONSE, result._extensions_id, EXTENSIONS, b"\x80\x03\x00\x02\x00\x02"
    )
    assert isinstance(result.receive(failure), Refused)


# --- whole conversations ------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("peap-pki"))


class PeapPeer(EapPeer):
    """A PEAPv0 peer with EAP-MSCHAPv2 inside, as wpa_supplicant runs it."""

    def __init__(
        self,
        pki: Pki,
        *,
        name: str = "alice",
        password: str = "correct horse",
        result: int = RESULT_SUCCESS,
        **kwargs: object,
    ) -> None:
        super().__init__(pki, EapType.PEAP, **kwargs)  # type: ignore[arg-type]
        self.name = name.encode()
        self.nt_hash = mschapv2.nt_password_hash(password)
        self.result = result
        self.peer_challenge = secrets.token_bytes(16)
        self.expected_proof = b""
        self.server_proved = False
        self.inner_seen: list[int] = []
        self.failure_text = ""  # the message of the server's MS-CHAPv2 Failure
        self.results_seen: list[int] = []

    def answer(self, request: bytes) -> bytes:
        packet = decode_eap(request)
        if not self.complete or packet.type != EapType.PEAP:
            return super().answer(request)
        frame = decode_tls_frame(packet.data)
        assert not frame.more and frame.data, "phase 2 requests fit one fragment here"
        self._incoming.write(frame.data)
        inner = self.tls.read(65536)
        reply = self._inner(inner)
        self.tls.write(reply)
        return self._flight(packet.identifier)

    def _inner(self, data: bytes) -> bytes:
        if len(data) >= 5 and data[0] == EapCode.REQUEST and data[4] == EXTENSIONS:
            tlv = decode_eap(data)
            self.inner_seen.append(EXTENSIONS)
            asked = result_of(tlv.data)
            self.results_seen.append(asked)
            # A failure Result is answered in kind, as wpa_supplicant does.
            status = (RESULT_FAILURE if asked == RESULT_FAILURE else self.result).to_bytes(2, "big")
            return encode_eap(
                EapCode.RESPONSE, tlv.identifier, EXTENSIONS, b"\x80\x03\x00\x02" + status
            )
        kind = data[0]
        self.inner_seen.append(kind)
        if kind == EapType.IDENTITY:
            return b"\x01" + self.name
        assert kind == EapType.MSCHAPV2, data
        body = data[1:]
        if body[0] == OpCode.CHALLENGE:
            challenge = body[5:21]
            user = mschapv2.hash_user(self.name)
            response = mschapv2.nt_response(challenge, self.peer_challenge, user, self.nt_hash)
            self.expected_proof = mschapv2.authenticator_response(
                self.nt_hash, response, self.peer_challenge, challenge, user
            )
            return b"\x1a" + response_packet(body[1], response, self.name).replace(
                PEER_CHALLENGE, self.peer_challenge, 1
            )
        if body[0] == OpCode.FAILURE:
            assert int.from_bytes(body[2:4], "big") == len(body)  # MS-Length
            self.failure_text = body[4:].decode()
            return b"\x1a\x04"  # the acknowledgement: the OpCode alone
        assert body[0] == OpCode.SUCCESS, body
        self.server_proved = body[4:46] == self.expected_proof
        return b"\x1a\x03"


def run_mschapv2(
    server: EapConversation, peer: EapPeer, nt_hash: bytes | None, *, limit: int = 60
) -> tuple[Step, list[CheckNtResponse]]:
    """EAP-Start to the end, each MSCHAPv2 check answered from `nt_hash` (None: refused):
    the last step, and the checks asked for."""
    asked: list[CheckNtResponse] = []
    step: Step = server.receive(b"")
    for _ in range(limit):
        if isinstance(step, CheckNtResponse):
            asked.append(step)
            proof = None
            if nt_hash is not None:
                proof = mschapv2.check_response(nt_hash, step.challenge, step.response)
            step = server.nt_response_checked(proof)
            continue
        if not isinstance(step, Challenge):
            return step, asked
        step = server.receive(peer.answer(step.eap))
    raise AssertionError(f"no end after {limit} round trips")


GOOD = mschapv2.nt_password_hash("correct horse")


def test_peap_mschapv2_succeeds_and_both_sides_hold_the_same_msk(pki: Pki) -> None:
    server = conversation(pki, (EapType.PEAP,))
    peer = PeapPeer(pki)
    step, asked = run_mschapv2(server, peer, GOOD)
    assert isinstance(step, Success), step
    assert (step.user, step.method) == ("alice", EapType.PEAP)
    assert [a.user for a in asked] == ["alice"]
    assert peer.server_proved  # our Authenticator Response was the one it computed
    assert peer.inner_seen == [EapType.IDENTITY, EapType.MSCHAPV2, EapType.MSCHAPV2, EXTENSIONS]
    assert len(step.msk) == 64 and step.msk == peer.msk()
    assert decode_eap(step.eap).code is EapCode.SUCCESS


FAILURE_TEXT = re.compile(r"E=(\d+) R=0 C=[0-9A-F]{32} V=3 M=(.*)")


def test_peap_with_a_wrong_password_is_told_so_then_fails(pki: Pki) -> None:
    peer = PeapPeer(pki, password="nope")
    step, asked = run_mschapv2(conversation(pki, (EapType.PEAP,)), peer, GOOD)
    assert len(asked) == 1
    assert isinstance(step, Failure) and "wrong password" in step.why
    assert decode_eap(step.eap).code is EapCode.FAILURE
    # The MS-CHAPv2 Failure, its acknowledgement, then the failure Result TLV answered.
    told = FAILURE_TEXT.fullmatch(peer.failure_text)
    assert told is not None, peer.failure_text
    assert told.groups() == ("691", "wrong user name or password")
    assert peer.inner_seen == [EapType.IDENTITY, EapType.MSCHAPV2, EapType.MSCHAPV2, EXTENSIONS]
    assert peer.results_seen == [RESULT_FAILURE]
    assert not peer.server_proved


def until_checked(server: EapConversation, peer: EapPeer) -> CheckNtResponse:
    """EAP-Start until the server asks for its MSCHAPv2 check."""
    step: Step = server.receive(b"")
    while not isinstance(step, CheckNtResponse):
        assert isinstance(step, Challenge), step
        step = server.receive(peer.answer(step.eap))
    return step


def test_the_failure_carries_the_error_and_message_asked_for(pki: Pki) -> None:
    server = conversation(pki, (EapType.PEAP,))
    peer = PeapPeer(pki)
    until_checked(server, peer)
    step: Step = server.nt_response_checked(None, error=649, message="not in this realm")
    while isinstance(step, Challenge):
        step = server.receive(peer.answer(step.eap))
    assert isinstance(step, Failure)
    told = FAILURE_TEXT.fullmatch(peer.failure_text)
    assert told is not None and told.groups() == ("649", "not in this realm")


def test_peap_without_an_nt_hash_fails(pki: Pki) -> None:
    peer = PeapPeer(pki)
    step, _ = run_mschapv2(conversation(pki, (EapType.PEAP,)), peer, None)
    assert isinstance(step, Failure)
    assert peer.failure_text.startswith("E=691 ") and peer.results_seen == [RESULT_FAILURE]


def test_peap_fails_when_the_peer_refuses_the_result(pki: Pki) -> None:
    peer = PeapPeer(pki, result=RESULT_FAILURE)
    step, _ = run_mschapv2(conversation(pki, (EapType.PEAP,)), peer, GOOD)
    assert isinstance(step, Failure) and "Result TLV" in step.why


def test_a_peap_peer_naks_ttls_and_gets_peap(pki: Pki) -> None:
    server = conversation(pki, (EapType.TTLS, EapType.TLS, EapType.PEAP))
    step, _ = run_mschapv2(server, PeapPeer(pki, name="staff\\alice"), GOOD)
    assert isinstance(step, Success) and step.method is EapType.PEAP
    assert step.user == "staff\\alice"


def test_peap_with_small_outer_fragments(pki: Pki) -> None:
    server = conversation(pki, (EapType.PEAP,), fragment_size=100)
    peer = PeapPeer(pki, fragment_size=90)
    step, _ = run_mschapv2(server, peer, GOOD, limit=200)
    assert isinstance(step, Success) and step.msk == peer.msk()


def test_tunnelled_data_before_phase_2_fails(pki: Pki) -> None:
    server = conversation(pki, (EapType.PEAP,))
    peer = PeapPeer(pki)
    step = server.receive(b"")
    for _ in range(20):
        assert isinstance(step, Challenge)
        reply = peer.answer(step.eap)
        if peer.complete:
            # Our Finished is in: instead of its acknowledgement, the peer sends inner data
            # before we asked for any.
            identifier = decode_eap(reply).identifier
            peer.tls.write(b"\x01early")
            frame = encode_tls_frame(peer._outgoing.read())
            step = server.receive(encode_eap(EapCode.RESPONSE, identifier, EapType.PEAP, frame))
            break
        step = server.receive(reply)
    assert isinstance(step, Failure), step
