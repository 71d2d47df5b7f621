"""PEAPv0's phase 2 (draft-kamath-pppext-peapv0, as Windows and wpa_supplicant run it),
sans-IO: the inner EAP conversation carried in the TLS tunnel, once the outer handshake is
done. The outer side (fragments, TLS, the MSK) is eap_server's; this is what goes in the
tunnel and what comes out of it.

Inside, the server asks for the identity, then runs EAP-MSCHAPv2 (mschapv2), then sends the
Result TLV (type 33, the Extensions method) and takes the peer's answer; only then does the
outer EAP-Success go out. A refused response goes the same way, as Windows and
wpa_supplicant expect it: the MS-CHAPv2 Failure (E=691 and a message the peer may show its
user), the peer's acknowledgement, a failure Result TLV and the peer's answer, and then the
outer EAP-Failure. PEAPv0 strips the EAP header (Code, Identifier, Length) from every
inner packet but the Extensions ones, so an inner Request here is its Type and data alone.

The MSK is the TLS exporter's with the EAP-TLS label ("client EAP encryption"): without the
Crypto-Binding TLV, which this server does not send, that is PEAPv0's key.
"""

from __future__ import annotations

import enum
import secrets
import struct
from dataclasses import dataclass

from netaccess.proto.radius import mschapv2
from netaccess.proto.radius.eap import EapCode, EapType, MalformedEap, decode_eap, encode_eap
from netaccess.proto.radius.mschapv2 import MschapResponse, OpCode

EXTENSIONS = 33  # the EAP Type PEAP's TLVs ride in
TLV_RESULT = 3
TLV_MANDATORY = 0x8000
RESULT_SUCCESS = 1
RESULT_FAILURE = 2
_TLV = struct.Struct("!HH")


@dataclass(frozen=True, slots=True)
class Send:
    """Encrypt `data` into the tunnel and send it."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Verify:
    """Check the peer's MS-CHAPv2 Response for `user` (the Name it sent, "staff\\alice"
    as well as "alice"), then call checked() with the Authenticator Response or None."""

    user: str
    challenge: bytes
    response: MschapResponse


@dataclass(frozen=True, slots=True)
class Passed:
    """Phase 2 is done and the peer acknowledged it: the outer EAP-Success is due."""

    user: str


@dataclass(frozen=True, slots=True)
class Refused:
    why: str


InnerStep = Send | Verify | Passed | Refused


class _Phase(enum.Enum):
    IDENTITY = "identity"  # our inner Identity request is out
    CHALLENGE = "challenge"  # our MS-CHAPv2 Challenge is out
    CHECKING = "checking"  # the Response is with the caller
    SUCCESS = "success"  # our MS-CHAPv2 Success is out; its acknowledgement is due
    RESULT = "result"  # our Result TLV is out; the peer's is due
    FAILURE = "failure"  # our MS-CHAPv2 Failure is out; its acknowledgement is due
    FAILED = "failed"  # our failure Result TLV is out; the peer's answer is due
    DONE = "done"


def result_tlv(identifier: int, status: int) -> bytes:
    """The Extensions Request with one (mandatory) Result TLV: a whole EAP packet."""
    tlv = _TLV.pack(TLV_MANDATORY | TLV_RESULT, 2) + status.to_bytes(2, "big")
    return encode_eap(EapCode.REQUEST, identifier, EXTENSIONS, tlv)


def result_of(data: bytes) -> int:
    """The status of the Result TLV in an Extensions packet's data. MalformedEap when the
    TLVs do not parse, name no Result, or carry a mandatory TLV this server does not know."""
    found: int | None = None
    at = 0
    while at < len(data):
        if len(data) - at < _TLV.size:
            raise MalformedEap("truncated TLV in the PEAP Extensions")
        kind, length = _TLV.unpack_from(data, at)
        value = data[at + _TLV.size : at + _TLV.size + length]
        if len(value) != length:
            raise MalformedEap(f"PEAP TLV of length {length} runs past the packet")
        code = kind & 0x3FFF
        if code == TLV_RESULT:
            if length != 2:
                raise MalformedEap(f"PEAP Result TLV of length {length}, not 2")
            found = int.from_bytes(value, "big")
        elif kind & TLV_MANDATORY:
            raise MalformedEap(f"mandatory PEAP TLV {code} is not understood")
        at += _TLV.size + length
    if found is None:
        raise MalformedEap("PEAP Extensions without a Result TLV")
    return found


class PeapInner:
    """One PEAPv0 phase 2, from the inner Identity request to the peer's Result TLV.
    `server_name` goes in the MS-CHAPv2 Challenge's Name."""

    def __init__(self, server_name: bytes = b"netaccess") -> None:
        self.server_name = server_name
        self.identity: str | None = None
        self.user: str | None = None
        self._phase = _Phase.IDENTITY
        self._challenge = b""
        self._refusal = ""  # why the response was refused, once it was
        self._mschap_id = secrets.randbelow(256)
        self._extensions_id = secrets.randbelow(256)

    @property
    def phase(self) -> str:
        return self._phase.value

    def start(self) -> bytes:
        """The first inner request: Identity, header stripped."""
        return bytes((EapType.IDENTITY,))

    def receive(self, data: bytes) -> InnerStep:
        """One decrypted inner packet from the peer."""
        if self._phase in (_Phase.CHECKING, _Phase.DONE):
            return Refused(f"inner packet in the {self._phase.value} phase")
        if self._phase in (_Phase.FAILURE, _Phase.FAILED):
            return self._failing(data)
        try:
            if self._phase is _Phase.RESULT:
                return self._result(data)
            if not data:
                return Refused(f"empty inner packet in the {self._phase.value} phase")
            kind, body = data[0], data[1:]
            if self._phase is _Phase.IDENTITY:
                if kind == EapType.NAK:
                    return Refused("the peer refused the inner identity request")
                if kind != EapType.IDENTITY:
                    return Refused(f"inner EAP type {kind} in reply to the identity request")
                self.identity = body.decode("utf-8", "replace")
                return self._offer_mschapv2()
            if kind == EapType.NAK:
                return Refused("the peer refused EAP-MSCHAPv2, the only inner method served")
            if kind != EapType.MSCHAPV2:
                return Refused(f"inner EAP type {kind}, expected EAP-MSCHAPv2")
            if self._phase is _Phase.CHALLENGE:
                return self._response(body)
            # _Phase.SUCCESS: the peer acknowledges our Success with the OpCode alone
            if mschapv2.opcode_of(body) != OpCode.SUCCESS:
                return Refused("the peer did not accept our MS-CHAPv2 Success")
            self._phase = _Phase.RESULT
            return Send(result_tlv(self._extensions_id, RESULT_SUCCESS))
        except MalformedEap as exc:
            self._phase = _Phase.DONE
            return Refused(str(exc))

    def checked(
        self,
        authenticator_response: bytes | None,
        *,
        error: int = mschapv2.ERROR_AUTHENTICATION_FAILURE,
        message: str = "wrong user name or password",
    ) -> InnerStep:
        """The caller's answer to Verify: the Authenticator Response, or None (refused).
        A refusal sends the MS-CHAPv2 Failure with `error` and `message` (what the peer
        may show its user); the Refused step comes once the peer has answered it."""
        if self._phase is not _Phase.CHECKING:
            raise RuntimeError("no MS-CHAPv2 check is outstanding")
        if authenticator_response is None:
            self._phase = _Phase.FAILURE
            self._refusal = f"wrong password for {self.user!r} (MS-CHAPv2)"
            failure = mschapv2.encode_failure(
                self._mschap_id, secrets.token_bytes(mschapv2.CHALLENGE_BYTES), message, error
            )
            return Send(bytes((EapType.MSCHAPV2,)) + failure)
        self._phase = _Phase.SUCCESS
        return Send(
            bytes((EapType.MSCHAPV2,))
            + mschapv2.encode_success(self._mschap_id, authenticator_response, "welcome")
        )

    def _offer_mschapv2(self) -> Send:
        self._challenge = secrets.token_bytes(mschapv2.CHALLENGE_BYTES)
        self._phase = _Phase.CHALLENGE
        return Send(
            bytes((EapType.MSCHAPV2,))
            + mschapv2.encode_challenge(self._mschap_id, self._challenge, self.server_name)
        )

    def _response(self, body: bytes) -> InnerStep:
        response = mschapv2.decode_response(body)
        if response.identifier != self._mschap_id:
            self._phase = _Phase.DONE
            return Refused(
                f"MS-CHAPv2 identifier {response.identifier}, expected {self._mschap_id}"
            )
        user = response.name.decode("utf-8", "replace")
        if not mschapv2.hash_user(response.name):
            self._phase = _Phase.DONE
            return Refused("MS-CHAPv2 Response without a user name")
        self.user = user
        self._phase = _Phase.CHECKING
        return Verify(user, self._challenge, response)

    def _failing(self, data: bytes) -> InnerStep:
        """After our Failure: its acknowledgement gets the failure Result TLV, and the
        answer to that (whatever it says) ends phase 2. Anything else ends it at once;
        either way the refusal is why."""
        if self._phase is _Phase.FAILURE and data[:2] == bytes((EapType.MSCHAPV2, OpCode.FAILURE)):
            self._phase = _Phase.FAILED
            return Send(result_tlv(self._extensions_id, RESULT_FAILURE))
        self._phase = _Phase.DONE
        return Refused(self._refusal)

    def _result(self, data: bytes) -> InnerStep:
        packet = decode_eap(data)  # the Extensions packets keep their whole header
        self._phase = _Phase.DONE
        if packet.code is not EapCode.RESPONSE or packet.type != EXTENSIONS:
            return Refused("expected the peer's Result TLV")
        if packet.identifier != self._extensions_id:
            return Refused(f"Result TLV identifier {packet.identifier}, expected ours")
        status = result_of(packet.data)
        if status != RESULT_SUCCESS:
            return Refused(f"the peer's Result TLV says {status}, not success")
        assert self.user is not None
        return Passed(self.user)
