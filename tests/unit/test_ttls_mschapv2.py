"""MS-CHAP-V2 inside EAP-TTLS (RFC 5281 §11.2.4): the conversation against a peer written
here as wpa_supplicant's phase2="auth=MSCHAPV2" runs, over the real MemoryBIO TLS engine.
The challenge is the tunnel's ("ttls challenge" keying material), the answer is checked
through CheckNtResponse, and the server proves itself with MS-CHAP2-Success, or says why in
MS-CHAP-Error; the peer's acknowledgement ends it either way."""

from __future__ import annotations

import re
import secrets
import ssl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netaccess.proto.radius import mschapv2
from netaccess.proto.radius.eap import (
    AVP_USER_NAME,
    Avp,
    EapCode,
    EapType,
    MalformedEap,
    decode_avps,
    decode_eap,
    encode_eap,
    encode_tls_frame,
)
from netaccess.proto.radius.eap_server import (
    Challenge,
    CheckPassword,
    Failure,
    Step,
    Success,
)
from netaccess.proto.radius.mschapv2 import (
    MS_CHAP2_RESPONSE,
    MS_CHAP2_SUCCESS,
    MS_CHAP_CHALLENGE,
    MS_CHAP_ERROR,
    VENDOR_MICROSOFT,
)
from tests.unit.test_eap_conversation import EXPORTER, EapPeer, Pki, conversation, make_pki
from tests.unit.test_peap import run_mschapv2, until_checked

GOOD = mschapv2.nt_password_hash("correct horse")
FAILURE_TEXT = re.compile(rb"E=(\d+) R=0 C=[0-9A-F]{32} V=3 M=(.*)")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("ttls-mschapv2-pki"))


class MschapPeer(EapPeer):
    """EAP-TTLS with MS-CHAP-V2 inside: the challenge from the tunnel's keys, the answer
    for `password`; what the server sent back in the tunnel is kept."""

    def __init__(
        self,
        pki: Pki,
        *,
        password: str = "correct horse",
        challenge: bytes | None = None,
        ident_offset: int = 0,
        **kwargs: object,
    ) -> None:
        super().__init__(pki, EapType.TTLS, **kwargs)  # type: ignore[arg-type]
        self.nt_hash = mschapv2.nt_password_hash(password)
        self.forced_challenge = challenge
        self.ident_offset = ident_offset
        self.expected_proof = b""
        self.answers: list[Avp] = []  # the server's AVPs after our response

    def inner_avps(self) -> list[Avp]:
        derived = EXPORTER.export(
            self.tls, mschapv2.TTLS_CHALLENGE_LABEL, mschapv2.TTLS_CHALLENGE_BYTES
        )
        challenge, ident = derived[:16], (derived[16] + self.ident_offset) & 0xFF
        user = mschapv2.hash_user(self.user.encode())
        peer_challenge = secrets.token_bytes(16)
        response = mschapv2.nt_response(challenge, peer_challenge, user, self.nt_hash)
        self.expected_proof = mschapv2.authenticator_response(
            self.nt_hash, response, peer_challenge, challenge, user
        )
        value = bytes((ident, 0)) + peer_challenge + bytes(8) + response
        sent = self.forced_challenge if self.forced_challenge is not None else challenge
        return [
            Avp(AVP_USER_NAME, self.user.encode()),
            Avp(MS_CHAP_CHALLENGE, sent, True, VENDOR_MICROSOFT),
            Avp(MS_CHAP2_RESPONSE, value, True, VENDOR_MICROSOFT),
        ]

    def answer(self, request: bytes) -> bytes:
        reply = super().answer(request)
        if self.complete and self._inner_sent:
            try:
                data = self.tls.read(65536)
            except ssl.SSLWantReadError:
                data = b""
            self.answers += decode_avps(data)
        return reply

    def proved(self) -> bool:
        """The server's MS-CHAP2-Success carried the Authenticator Response we computed."""
        found = [a.value for a in self.answers if a.code == MS_CHAP2_SUCCESS]
        return len(found) == 1 and found[0][1:] == self.expected_proof


def test_ms_chap_v2_inside_ttls_succeeds_and_the_server_proves_itself(pki: Pki) -> None:
    peer = MschapPeer(pki, user="staff\\alice")
    step, asked = run_mschapv2(conversation(pki, (EapType.TTLS,)), peer, GOOD)
    assert isinstance(step, Success), step
    assert (step.user, step.method) == ("staff\\alice", EapType.TTLS)
    assert len(asked) == 1 and asked[0].user == "staff\\alice"
    assert peer.proved()
    assert step.msk == peer.msk()  # the TTLS key, as with PAP inside


def test_a_wrong_password_gets_ms_chap_error_then_failure(pki: Pki) -> None:
    peer = MschapPeer(pki, password="not it")
    step, asked = run_mschapv2(conversation(pki, (EapType.TTLS,)), peer, GOOD)
    assert len(asked) == 1
    assert isinstance(step, Failure) and "wrong password" in step.why
    (error,) = [a for a in peer.answers if a.code == MS_CHAP_ERROR]
    assert error.vendor == VENDOR_MICROSOFT and error.mandatory
    told = FAILURE_TEXT.fullmatch(error.value[1:])
    assert told is not None and told.groups() == (b"691", b"wrong user name or password")
    assert not peer.proved()


def test_a_challenge_the_tunnel_did_not_derive_is_refused_unchecked(pki: Pki) -> None:
    step, asked = run_mschapv2(
        conversation(pki, (EapType.TTLS,)), MschapPeer(pki, challenge=bytes(16)), GOOD
    )
    assert asked == [] and isinstance(step, Failure)
    assert "MS-CHAP-Challenge is not the one" in step.why
    step, asked = run_mschapv2(
        conversation(pki, (EapType.TTLS,)), MschapPeer(pki, ident_offset=1), GOOD
    )
    assert asked == [] and isinstance(step, Failure) and "Ident" in step.why


def test_data_instead_of_the_acknowledgement_fails(pki: Pki) -> None:
    server = conversation(pki, (EapType.TTLS,))
    peer = MschapPeer(pki)
    step: Step = until_checked(server, peer)
    with pytest.raises(RuntimeError):  # a password check is not what is outstanding
        server.password_checked(True)
    step = server.nt_response_checked(mschapv2.check_response(GOOD, step.challenge, step.response))
    assert isinstance(step, Challenge)
    identifier = decode_eap(step.eap).identifier
    peer.tls.write(b"more")  # application data where the empty acknowledgement is due
    frame = encode_tls_frame(peer._outgoing.read())
    step = server.receive(encode_eap(EapCode.RESPONSE, identifier, EapType.TTLS, frame))
    assert isinstance(step, Failure) and "acknowledgement" in step.why


def test_pap_still_goes_to_the_password_check(pki: Pki) -> None:
    server = conversation(pki, (EapType.TTLS,))
    peer = EapPeer(pki, EapType.TTLS)
    step: Step = server.receive(b"")
    while isinstance(step, Challenge):
        step = server.receive(peer.answer(step.eap))
    assert isinstance(step, CheckPassword)
    with pytest.raises(RuntimeError):
        server.nt_response_checked(None)


class ScriptedPeer(EapPeer):
    """A TTLS peer whose inner AVPs are given."""

    def __init__(self, pki: Pki, avps: list[Avp]) -> None:
        super().__init__(pki, EapType.TTLS)
        self.avps = avps

    def inner_avps(self) -> list[Avp]:
        return self.avps


INNER_AVPS = st.lists(
    st.builds(
        Avp,
        st.sampled_from([AVP_USER_NAME, 2, MS_CHAP_CHALLENGE, MS_CHAP2_RESPONSE, 26, 79, 4242]),
        st.one_of(st.binary(max_size=60), st.binary(min_size=50, max_size=50)),
        st.booleans(),
        st.sampled_from([None, VENDOR_MICROSOFT, 9]),
    ),
    max_size=5,
)


@settings(max_examples=60, deadline=None)
@given(avps=INNER_AVPS)
def test_any_inner_avps_give_a_step_and_never_a_success(pki: Pki, avps: list[Avp]) -> None:
    step, asked = run_mschapv2(conversation(pki, (EapType.TTLS,)), ScriptedPeer(pki, avps), GOOD)
    assert isinstance(step, Failure | CheckPassword), step
    assert asked == []  # no answer made for another challenge reaches the NT hash check


@given(value=st.binary(max_size=80), name=st.binary(max_size=20))
def test_garbage_ms_chap2_responses_raise_only_malformed_eap(value: bytes, name: bytes) -> None:
    try:
        response = mschapv2.decode_ms_chap2_response(value, name)
    except MalformedEap:
        return
    assert len(value) == 50 and value[1] == 0
    assert (response.identifier, response.nt_response) == (value[0], value[26:])
