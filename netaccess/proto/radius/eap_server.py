"""One EAP conversation on the server side, sans-IO: the peer's EAP Responses in, our next
Request (or Success or Failure) out.

Identity first, then a TLS-based method: EAP-TTLS (RFC 5281) with PAP or MS-CHAP-V2 inside,
EAP-TLS (RFC 5216), or PEAPv0 with EAP-MSCHAPv2 inside (its phase 2 is proto.radius.peap). The peer
may Nak the method we start with and name another we offer. TLS itself is an injected
engine (TlsEngine: records in, records out, the keying-material exporter), so this module
holds only the EAP side: identifiers, the Start, fragmentation both ways, acknowledgements,
the inner PAP AVPs, and the MSK from the TLS exporter. Checking a
password is the caller's (it is slow and needs the user store): a CheckPassword step asks,
and password_checked(ok) answers; for MSCHAPv2 (PEAP's, or EAP-TTLS's MS-CHAP-V2 AVPs) a
CheckNtResponse step asks, and nt_response_checked() answers with the Authenticator Response
(mschapv2.check_response).

Only TLS 1.2 key derivation is used (RFC 5216 §2.3, RFC 5281 §8: the PRF over the master
secret with the method's label, which is what the TLS 1.2 exporter without context computes);
the engine is expected to cap TLS at 1.2, as wpa_supplicant and FreeRADIUS 3.2 do by default.
"""

from __future__ import annotations

import enum
import hmac
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from netaccess.proto.radius import mschapv2
from netaccess.proto.radius.eap import (
    AVP_EAP_MESSAGE,
    AVP_USER_NAME,
    AVP_USER_PASSWORD,
    Avp,
    EapCode,
    EapType,
    MalformedEap,
    Reassembly,
    TlsFrame,
    decode_avps,
    decode_eap,
    decode_tls_frame,
    encode_avps,
    encode_eap,
    encode_tls_frame,
    fragments,
)
from netaccess.proto.radius.errors import RadiusError
from netaccess.proto.radius.mschapv2 import (
    ERROR_AUTHENTICATION_FAILURE,
    MS_CHAP2_RESPONSE,
    MS_CHAP_CHALLENGE,
    VENDOR_MICROSOFT,
    MschapResponse,
)
from netaccess.proto.radius.peap import Passed, PeapInner, Refused, Send, Verify

MSK_BYTES = 64
KEY_LABELS = {
    EapType.TLS: b"client EAP encryption",  # RFC 5216 §2.3
    EapType.TTLS: b"ttls keying material",  # RFC 5281 §8
    EapType.PEAP: b"client EAP encryption",  # PEAPv0 without crypto-binding: EAP-TLS's
}
TLS_METHODS = frozenset(KEY_LABELS)
DEFAULT_FRAGMENT = 1000  # TLS bytes per EAP packet: fits a 1500-byte link with RADIUS around it
MAX_IDENTITY = 253


class TlsFailed(RadiusError):
    """The TLS handshake or a record failed (an alert, a bad certificate); the message says
    what OpenSSL said."""


class TlsEngine(Protocol):
    def receive(self, records: bytes) -> None:
        """TLS records from the peer."""

    def advance(self) -> bool:
        """Progress the handshake; True once it is complete. Raises TlsFailed."""

    def outgoing(self) -> bytes:
        """TLS records for the peer, produced since the last call."""

    def read_application(self) -> bytes:
        """Application data the peer sent, decrypted. Raises TlsFailed."""

    def write_application(self, data: bytes) -> None:
        """Encrypt `data` for the peer; the records come out of outgoing()."""

    def export_key(self, label: bytes, length: int) -> bytes:
        """The TLS keying-material exporter without context (RFC 5705)."""

    def peer_name(self) -> str | None:
        """The verified client certificate's name, if one was presented."""


@dataclass(frozen=True, slots=True)
class Challenge:
    """Send `eap` in an Access-Challenge; the conversation goes on."""

    eap: bytes


@dataclass(frozen=True, slots=True)
class CheckPassword:
    """The peer gave `user` and `password` inside the tunnel: call password_checked()."""

    user: str
    password: bytes


@dataclass(frozen=True, slots=True)
class CheckNtResponse:
    """MSCHAPv2 (PEAP, or inside EAP-TTLS): the peer answered our `challenge` as `user`:
    check `response` against the user's NT hash (mschapv2.check_response) and call
    nt_response_checked()."""

    user: str
    challenge: bytes
    response: MschapResponse


@dataclass(frozen=True, slots=True)
class Success:
    """Send `eap` (EAP-Success) in an Access-Accept with the MPPE keys from `msk`."""

    eap: bytes
    user: str
    method: EapType
    msk: bytes


@dataclass(frozen=True, slots=True)
class Failure:
    """Send `eap` (EAP-Failure) in an Access-Reject; `why` is for the log."""

    eap: bytes
    why: str


@dataclass(frozen=True, slots=True)
class Discard:
    """Not an answer to our last request (a stale identifier, say): drop it silently."""

    why: str


Step = Challenge | CheckPassword | CheckNtResponse | Success | Failure | Discard


class _Phase(enum.Enum):
    IDENTITY = "identity"
    HANDSHAKE = "handshake"  # TLS records both ways
    INNER = "inner"  # TTLS: our Finished is out, the peer's AVPs are due; PEAP: phase 2
    # EAP-TLS: our Finished is out; EAP-TTLS: our MS-CHAP2-Success is. The peer's empty
    # acknowledgement is due.
    FINAL_ACK = "final-ack"
    REFUSED_ACK = "refused-ack"  # EAP-TTLS: our MS-CHAP-Error is out; its acknowledgement
    ALERT = "alert"  # our TLS alert is out; whatever the peer answers, EAP-Failure follows
    CHECKING = "checking"  # a password check is with the caller
    DONE = "done"


class EapConversation:
    """`methods`: what we offer, the first started unless the peer Naks it for another.
    `engine_for(method)` makes a fresh TLS engine."""

    def __init__(
        self,
        methods: Sequence[EapType],
        engine_for: Callable[[EapType], TlsEngine],
        *,
        fragment_size: int = DEFAULT_FRAGMENT,
    ) -> None:
        unknown = [m for m in methods if m not in TLS_METHODS]
        if not methods or unknown:
            raise ValueError(f"methods must be TLS-based ones this server runs, not {unknown}")
        self.methods = tuple(methods)
        self._engine_for = engine_for
        self.fragment_size = fragment_size
        self.identity: str | None = None
        self.method: EapType | None = None
        self._tried: set[EapType] = set()
        self._phase = _Phase.IDENTITY
        self._identifier: int | None = None  # of our last Request
        self._engine: TlsEngine | None = None
        self._reassembly = Reassembly()
        self._out: list[bytes] = []  # frames of our flight not yet sent
        self._user: str | None = None
        self._mschap_ident: int | None = None  # EAP-TTLS's MS-CHAP-V2, once the peer answered
        self._failure_why = ""  # why the pending Failure (after our alert or MS-CHAP-Error)
        self._peap: PeapInner | None = None  # PEAP's phase 2, once the tunnel is up

    @property
    def finished(self) -> bool:
        return self._phase is _Phase.DONE

    # --- the peer's packets ------------------------------------------------------------------

    def receive(self, eap: bytes) -> Step:
        """The EAP-Message of one Access-Request of this conversation (b"": EAP-Start)."""
        if self._phase in (_Phase.DONE, _Phase.CHECKING):
            return Discard(f"conversation is {self._phase.value}")
        if not eap:
            if self._phase is _Phase.IDENTITY and self._identifier is None:
                return self._request(EapType.IDENTITY, b"")
            return Discard("EAP-Start in the middle of a conversation")
        try:
            packet = decode_eap(eap)
        except MalformedEap as exc:
            return self._fail(f"malformed EAP: {exc}")
        if packet.code is not EapCode.RESPONSE:
            return Discard(f"EAP {packet.code.name.title()} from the peer")
        if self._identifier is not None and packet.identifier != self._identifier:
            return Discard(f"EAP identifier {packet.identifier}, expected {self._identifier}")
        if self._identifier is None:
            self._identifier = packet.identifier  # the NAS asked for the identity itself
        if self._phase is _Phase.IDENTITY:
            if packet.type != EapType.IDENTITY:
                return self._fail(f"expected an EAP Identity, got type {packet.type}")
            if len(packet.data) > MAX_IDENTITY:
                return self._fail("EAP identity longer than 253 bytes")
            self.identity = packet.data.decode("utf-8", "replace")
            return self._start(self.methods[0])
        if self._phase is _Phase.ALERT:
            return self._fail(self._failure_why)
        if packet.type == EapType.NAK:
            wanted = [m for m in self.methods if m in packet.data and m not in self._tried]
            if not wanted:
                offered = ", ".join(m.name for m in self.methods)
                return self._fail(f"the peer refused every method offered ({offered})")
            return self._start(wanted[0])
        if packet.type != self.method:
            return self._fail(f"EAP type {packet.type} in reply to {self.method!r}")
        try:
            return self._tls_response(decode_tls_frame(packet.data))
        except MalformedEap as exc:
            return self._fail(str(exc))
        except TlsFailed as exc:
            return self._alert(str(exc))

    def password_checked(self, ok: bool) -> Step:
        """The answer to CheckPassword."""
        if (
            self._phase is not _Phase.CHECKING
            or self._user is None
            or self._mschap_ident is not None
        ):
            raise RuntimeError("no password check is outstanding")
        if not ok:
            return self._fail(f"wrong password for {self._user!r}")
        return self._succeed(self._user)

    def nt_response_checked(
        self,
        authenticator_response: bytes | None,
        *,
        error: int = ERROR_AUTHENTICATION_FAILURE,
        message: str = "wrong user name or password",
    ) -> Step:
        """The answer to CheckNtResponse: the Authenticator Response when the NT-Response
        was right, None when it was not (or the user has no NT hash). A refusal goes to the
        peer as the MS-CHAPv2 Failure with `error` and `message` first (PeapInner.checked);
        the Failure step follows the peer's answers to it."""
        if self._phase is not _Phase.CHECKING or (
            self._peap is None and self._mschap_ident is None
        ):
            raise RuntimeError("no MS-CHAPv2 check is outstanding")
        if self._peap is None:
            return self._ttls_checked(authenticator_response, error, message)
        self._phase = _Phase.INNER
        return self._phase2(
            self._peap.checked(authenticator_response, error=error, message=message)
        )

    # --- the method ----------------------------------------------------------------------

    def _start(self, method: EapType) -> Step:
        self.method = method
        self._tried.add(method)
        self._engine = self._engine_for(method)
        self._reassembly = Reassembly()
        self._out = []
        self._peap = None
        self._phase = _Phase.HANDSHAKE
        return self._request(method, encode_tls_frame(b"", start=True))

    def _tls_response(self, frame: TlsFrame) -> Step:
        assert self._engine is not None and self.method is not None
        if self._out:  # the rest of our flight, one fragment per acknowledgement
            if not frame.is_ack:
                return self._fail("expected an acknowledgement of our fragment")
            return self._request(self.method, self._out.pop(0))
        message = self._reassembly.add(frame)
        if message is None:  # more of the peer's fragments are due: acknowledge this one
            return self._request(self.method, encode_tls_frame(b""))
        if self._phase in (_Phase.FINAL_ACK, _Phase.REFUSED_ACK) and message:
            return self._fail(f"expected an acknowledgement in the {self._phase.value} phase")
        if not message:
            if self._phase is _Phase.FINAL_ACK:
                if self._user is not None:  # EAP-TTLS's MS-CHAP-V2
                    return self._succeed(self._user)
                return self._succeed(self._engine.peer_name() or self.identity or "")
            if self._phase is _Phase.REFUSED_ACK:
                return self._fail(self._failure_why)
            if self._phase is _Phase.INNER and self.method is EapType.PEAP and self._peap is None:
                # The peer acknowledged our Finished: phase 2 starts with our inner request.
                self._peap = PeapInner()
                return self._phase2(Send(self._peap.start()))
            return self._fail(f"empty TLS message in the {self._phase.value} phase")
        engine = self._engine
        engine.receive(message)
        complete = engine.advance()
        out = engine.outgoing()
        if not complete:
            if not out:
                return self._fail("TLS handshake stalled: nothing to send and not complete")
            return self._send(out)
        if self.method is EapType.TLS:
            if not out:
                return self._succeed(engine.peer_name() or self.identity or "")
            self._phase = _Phase.FINAL_ACK
            return self._send(out)
        inner = engine.read_application()
        if self.method is EapType.PEAP:
            if self._peap is None:
                if inner:
                    return self._fail("the peer sent tunnelled data before PEAP phase 2")
                if not out:
                    return self._fail("TLS complete but nothing to send the PEAP peer")
                self._phase = _Phase.INNER
                return self._send(out)
            if out:
                return self._fail("TLS handshake records in PEAP phase 2")
            return self._phase2(self._peap.receive(inner))
        if inner and out:
            # Inner data before the peer saw our Finished (TLS False Start): not served.
            return self._fail("the peer sent its inner authentication before our Finished")
        if inner:
            return self._inner(inner)
        if out:
            self._phase = _Phase.INNER
            return self._send(out)
        return self._fail("TLS complete but the peer sent no inner authentication")

    def _inner(self, data: bytes) -> Step:
        """EAP-TTLS phase 2: PAP's User-Name and User-Password AVPs (RFC 5281 §11.2.5), or
        MS-CHAP-V2's User-Name, MS-CHAP-Challenge and MS-CHAP2-Response (§11.2.4)."""
        avps = decode_avps(data)
        by_code = {avp.code: avp for avp in avps if avp.vendor is None}
        microsoft = {avp.code: avp for avp in avps if avp.vendor == VENDOR_MICROSOFT}
        if AVP_EAP_MESSAGE in by_code:
            return self._fail("inner EAP is not served inside EAP-TTLS; use PAP or MS-CHAP-V2")
        unknown = [
            (avp.vendor, avp.code)
            for avp in avps
            if avp.mandatory and (avp.vendor, avp.code) not in _INNER_AVPS
        ]
        if unknown:
            return self._fail(f"mandatory inner AVPs not understood (vendor, code): {unknown}")
        name = by_code.get(AVP_USER_NAME)
        if name is not None and MS_CHAP2_RESPONSE in microsoft:
            return self._ttls_mschapv2(name.value, microsoft)
        password = by_code.get(AVP_USER_PASSWORD)
        if name is None or password is None:
            return self._fail(
                "the inner authentication is neither PAP (User-Name, User-Password) nor "
                "MS-CHAP-V2 (User-Name, MS-CHAP-Challenge, MS-CHAP2-Response)"
            )
        self._user = name.value.decode("utf-8", "replace")
        self._phase = _Phase.CHECKING
        return CheckPassword(self._user, password.value.rstrip(b"\0"))

    def _ttls_mschapv2(self, name: bytes, microsoft: dict[int, Avp]) -> Step:
        """The peer's MS-CHAP-V2 answer to the challenge both sides derive from the tunnel's
        keys (RFC 5281 §11.1: "ttls challenge", the 16-octet challenge and the Ident): a
        challenge that is not that one is refused (it was not made for this tunnel)."""
        assert self._engine is not None
        sent = microsoft.get(MS_CHAP_CHALLENGE)
        derived = self._engine.export_key(
            mschapv2.TTLS_CHALLENGE_LABEL, mschapv2.TTLS_CHALLENGE_BYTES
        )
        challenge, ident = derived[: mschapv2.CHALLENGE_BYTES], derived[-1]
        response = mschapv2.decode_ms_chap2_response(microsoft[MS_CHAP2_RESPONSE].value, name)
        if sent is None or not hmac.compare_digest(sent.value, challenge):
            return self._fail("MS-CHAP-Challenge is not the one this tunnel derives")
        if response.identifier != ident:
            return self._fail(f"MS-CHAP2-Response Ident {response.identifier}, expected {ident}")
        if not mschapv2.hash_user(name):
            return self._fail("MS-CHAP-V2 without a user name")
        self._user = name.decode("utf-8", "replace")
        self._mschap_ident = ident
        self._phase = _Phase.CHECKING
        return CheckNtResponse(self._user, challenge, response)

    def _ttls_checked(self, proof: bytes | None, error: int, message: str) -> Step:
        """EAP-TTLS's MS-CHAP-V2 answered: MS-CHAP2-Success with our Authenticator Response,
        or MS-CHAP-Error with `error` and `message`; the peer's acknowledgement ends it."""
        assert self._engine is not None and self._mschap_ident is not None
        if proof is None:
            self._failure_why = f"wrong password for {self._user!r} (MS-CHAP-V2)"
            self._phase = _Phase.REFUSED_ACK
            fresh = secrets.token_bytes(mschapv2.CHALLENGE_BYTES)
            text = mschapv2.failure_text(fresh, message, error)
            code, value = mschapv2.MS_CHAP_ERROR, mschapv2.ms_chap_error(self._mschap_ident, text)
        else:
            self._phase = _Phase.FINAL_ACK
            code, value = (
                mschapv2.MS_CHAP2_SUCCESS,
                mschapv2.ms_chap2_success(self._mschap_ident, proof),
            )
        self._engine.write_application(encode_avps([Avp(code, value, True, VENDOR_MICROSOFT)]))
        return self._send(self._engine.outgoing())

    def _phase2(self, step: Send | Verify | Passed | Refused) -> Step:
        """PEAP: what the inner conversation said, as the outer step."""
        assert self._engine is not None
        if isinstance(step, Send):
            self._engine.write_application(step.data)
            return self._send(self._engine.outgoing())
        if isinstance(step, Verify):
            self._phase = _Phase.CHECKING
            return CheckNtResponse(step.user, step.challenge, step.response)
        if isinstance(step, Passed):
            return self._succeed(step.user)
        return self._fail(step.why)

    # --- what we send ----------------------------------------------------------------------

    def _send(self, records: bytes) -> Step:
        assert self.method is not None
        frames = fragments(records, self.fragment_size)
        self._out = frames[1:]
        return self._request(self.method, frames[0])

    def _request(self, kind: EapType, data: bytes) -> Challenge:
        self._identifier = 0 if self._identifier is None else (self._identifier + 1) & 0xFF
        return Challenge(encode_eap(EapCode.REQUEST, self._identifier, kind, data))

    def _succeed(self, user: str) -> Step:
        assert self._engine is not None and self.method is not None
        msk = self._engine.export_key(KEY_LABELS[self.method], MSK_BYTES)
        self._phase = _Phase.DONE
        return Success(encode_eap(EapCode.SUCCESS, self._identifier or 0), user, self.method, msk)

    def _alert(self, why: str) -> Step:
        """The handshake failed: the TLS alert OpenSSL wrote goes to the peer first, so it
        can tell its user why (RFC 5216 §2.1.3); EAP-Failure answers its acknowledgement."""
        assert self._engine is not None and self.method is not None
        alert = self._engine.outgoing()
        if not alert or len(alert) > self.fragment_size:
            return self._fail(why)
        self._phase = _Phase.ALERT
        self._failure_why = why
        return self._request(self.method, encode_tls_frame(alert))

    def _fail(self, why: str) -> Failure:
        self._phase = _Phase.DONE
        return Failure(encode_eap(EapCode.FAILURE, self._identifier or 0), why)


_INNER_AVPS = frozenset(
    {
        (None, AVP_USER_NAME),
        (None, AVP_USER_PASSWORD),
        (VENDOR_MICROSOFT, MS_CHAP_CHALLENGE),
        (VENDOR_MICROSOFT, MS_CHAP2_RESPONSE),
    }
)


def mppe_keys(msk: bytes) -> tuple[bytes, bytes]:
    """(MS-MPPE-Recv-Key, MS-MPPE-Send-Key) from the MSK: its first and second 32 octets
    (RFC 5216 §2.3, as RFC 2548 keys for the authenticator)."""
    if len(msk) < 64:
        raise ValueError("an MSK has 64 octets")
    return msk[:32], msk[32:64]
