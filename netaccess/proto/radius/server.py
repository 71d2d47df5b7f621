"""The server side's first step, sans-IO: is a datagram from a NAS a request to answer, or
one to drop silently, and why? Framing, the authenticators, and the BlastRADIUS hardening
(CVE-2024-3596; shared/STANDARDS.md): a Message-Authenticator is required per NAS (on by
default); when it is not, an MA-less request carrying Proxy-State is still dropped; an
EAP-Message without an MA always is. The reasons are counted by the caller."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from netaccess.proto.radius import auth
from netaccess.proto.radius.errors import BadAuthenticator, MalformedPacket
from netaccess.proto.radius.packet import EAP_MESSAGE, PROXY_STATE, Code, Packet, decode_packet


class Drop(enum.Enum):
    """Why a datagram gets no answer (RFC 2865 §3: silently discarded)."""

    MALFORMED = "malformed"
    UNKNOWN_CODE = "unknown-code"  # not a request this port serves
    BAD_AUTHENTICATOR = "bad-authenticator"  # wrong secret, or forged
    BAD_MESSAGE_AUTHENTICATOR = "bad-message-authenticator"
    MISSING_MESSAGE_AUTHENTICATOR = "missing-message-authenticator"  # required for this NAS
    PROXY_STATE_WITHOUT_MA = "proxy-state-without-message-authenticator"  # BlastRADIUS
    EAP_WITHOUT_MA = "eap-without-message-authenticator"  # RFC 3579 §3.2


@dataclass(frozen=True, slots=True)
class NasPolicy:
    """What one NAS client must do; `secret` is its shared secret."""

    secret: bytes
    require_message_authenticator: bool = True


AUTH_CODES = frozenset({Code.ACCESS_REQUEST, Code.STATUS_SERVER})
ACCOUNTING_CODES = frozenset({Code.ACCOUNTING_REQUEST})


_ACCOUNTING_REQUEST, _STATUS_SERVER = Code.ACCOUNTING_REQUEST, Code.STATUS_SERVER


def accept_request(data: bytes, nas: NasPolicy, codes: frozenset[Code]) -> Packet | Drop:
    """`data` from the NAS `nas`, on a port serving `codes`: the request, or why to drop it.
    An accepted request's `message_authenticator_at` is set when it carried one (which then
    verified)."""
    try:
        packet = decode_packet(data)
    except MalformedPacket:
        return Drop.MALFORMED
    code = packet.code
    if code not in codes:
        return Drop.UNKNOWN_CODE
    if code == _ACCOUNTING_REQUEST:
        try:
            auth.verify_request_authenticator(data, nas.secret)
        except BadAuthenticator:
            return Drop.BAD_AUTHENTICATOR
    try:
        has_ma = auth.verify_message_authenticator(data, packet, nas.secret)
    except BadAuthenticator:
        return Drop.BAD_MESSAGE_AUTHENTICATOR
    if not has_ma and code in AUTH_CODES:
        if packet.has(EAP_MESSAGE):
            return Drop.EAP_WITHOUT_MA
        # RFC 5997 §3: Status-Server always carries one.
        if nas.require_message_authenticator or code == _STATUS_SERVER:
            return Drop.MISSING_MESSAGE_AUTHENTICATOR
        if packet.has(PROXY_STATE):
            return Drop.PROXY_STATE_WITHOUT_MA
    return packet
