"""MS-CHAPv2 (RFC 2759) and its EAP method (EAP-MSCHAPv2, draft-kamath-pppext-eap-mschapv2),
sans-IO: the server's proof of the peer's NT-Response, the Authenticator Response it sends
back, the method's packets, and the RFC 2548 attributes EAP-TTLS carries it in as AVPs
(RFC 5281 §11.2.4).

The primitives are MD4 and DES, which neither the standard library (OpenSSL 3 keeps MD4 in
its legacy provider) nor `cryptography` offers for this: they come from pycryptodomex. Only
the construction RFC 2759 §8 defines is here (the challenge hash, the 21-octet key split
into three DES keys, the two SHA-1 rounds of the Authenticator Response).

The server never needs the password, only its NT hash (MD4 of the UTF-16LE password), which
is a password equivalent: whoever holds it can answer any challenge. The caller keeps it
sealed at rest and hands it here only to check one response.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

from Cryptodome.Cipher import DES
from Cryptodome.Hash import MD4

from netaccess.proto.radius.eap import MalformedEap

CHALLENGE_BYTES = 16
NT_RESPONSE_BYTES = 24
NT_HASH_BYTES = 16
MAX_PASSWORD = 256  # characters (RFC 2759 §8.1's limit)

_MAGIC_1 = b"Magic server to client signing constant"  # RFC 2759 §8.7
_MAGIC_2 = b"Pad to make it do more than one iteration"


class OpCode:
    """EAP-MSCHAPv2 OpCodes: the MS-CHAPv2 packet codes (RFC 2759 §4)."""

    CHALLENGE = 1
    RESPONSE = 2
    SUCCESS = 3
    FAILURE = 4
    CHANGE_PASSWORD = 7


def nt_password_hash(password: str) -> bytes:
    """NtPasswordHash (RFC 2759 §8.3): MD4 of the password in UTF-16LE."""
    if len(password) > MAX_PASSWORD:
        raise ValueError(f"an MS-CHAPv2 password has at most {MAX_PASSWORD} characters")
    return MD4.new(password.encode("utf-16-le")).digest()


def challenge_hash(peer_challenge: bytes, authenticator_challenge: bytes, user: bytes) -> bytes:
    """ChallengeHash (RFC 2759 §8.2); `user` without any "DOMAIN\\" prefix."""
    return hashlib.sha1(peer_challenge + authenticator_challenge + user).digest()[:8]


def _des_key(seven: bytes) -> bytes:
    """Seven key octets spread over eight, seven bits each (the low bit, parity, unused)."""
    bits = int.from_bytes(seven, "big")
    return bytes(((bits >> (49 - 7 * i)) & 0x7F) << 1 for i in range(8))


def challenge_response(challenge: bytes, nt_hash: bytes) -> bytes:
    """ChallengeResponse (RFC 2759 §8.5): the 8-octet challenge under three DES keys cut
    from the NT hash padded to 21 octets."""
    padded = nt_hash + bytes(21 - len(nt_hash))
    return b"".join(
        DES.new(_des_key(padded[i : i + 7]), DES.MODE_ECB).encrypt(challenge) for i in (0, 7, 14)
    )


def nt_response(
    authenticator_challenge: bytes, peer_challenge: bytes, user: bytes, nt_hash: bytes
) -> bytes:
    """GenerateNTResponse (RFC 2759 §8.1), from the NT hash."""
    return challenge_response(
        challenge_hash(peer_challenge, authenticator_challenge, user), nt_hash
    )


def authenticator_response(
    nt_hash: bytes,
    response: bytes,
    peer_challenge: bytes,
    authenticator_challenge: bytes,
    user: bytes,
) -> bytes:
    """GenerateAuthenticatorResponse (RFC 2759 §8.7): b"S=" and 40 upper-case hex digits."""
    hash_hash = MD4.new(nt_hash).digest()
    digest = hashlib.sha1(hash_hash + response + _MAGIC_1).digest()
    challenge = challenge_hash(peer_challenge, authenticator_challenge, user)
    digest = hashlib.sha1(digest + challenge + _MAGIC_2).digest()
    return b"S=" + digest.hex().upper().encode()


def hash_user(name: bytes) -> bytes:
    """The user name the challenge hash takes: the Name sent, without "DOMAIN\\"."""
    return name.rsplit(b"\\", 1)[-1]


# --- the EAP method's packets ------------------------------------------------------------------

_HEAD = struct.Struct("!BBH")  # OpCode, MS-CHAPv2-ID, MS-Length
_RESPONSE_VALUE = 49  # Peer-Challenge 16, Reserved 8, NT-Response 24, Flags 1


@dataclass(frozen=True, slots=True)
class MschapResponse:
    """The peer's Response (RFC 2759 §4, carried as draft-kamath §2.2 puts it)."""

    identifier: int
    peer_challenge: bytes
    nt_response: bytes
    name: bytes


def _packet(opcode: int, identifier: int, body: bytes) -> bytes:
    """The method data after the EAP Type octet. MS-Length counts from the OpCode."""
    return _HEAD.pack(opcode, identifier, _HEAD.size + len(body)) + body


def encode_challenge(identifier: int, challenge: bytes, server_name: bytes) -> bytes:
    if len(challenge) != CHALLENGE_BYTES:
        raise ValueError("an MS-CHAPv2 challenge has 16 octets")
    return _packet(
        OpCode.CHALLENGE, identifier, bytes((CHALLENGE_BYTES,)) + challenge + server_name
    )


def encode_success(identifier: int, authenticator_response: bytes, message: str) -> bytes:
    """The Success Request: "S=<hex> M=<message>" (RFC 2759 §5)."""
    return _packet(
        OpCode.SUCCESS, identifier, authenticator_response + b" M=" + message.encode()[:200]
    )


ERROR_AUTHENTICATION_FAILURE = 691  # RFC 2759 §6's error codes that this server sends
ERROR_NO_DIALIN_PERMISSION = 649


def failure_text(
    challenge: bytes, message: str, error: int = ERROR_AUTHENTICATION_FAILURE
) -> bytes:
    """RFC 2759 §6's failure string: "E=<error> R=0 C=<challenge> V=3 M=<message>", no retry
    (R=0) and no password change. `challenge` is a fresh 16 octets: the field is required
    even when no retry is offered."""
    if len(challenge) != CHALLENGE_BYTES:
        raise ValueError("an MS-CHAPv2 challenge has 16 octets")
    return f"E={error} R=0 C={challenge.hex().upper()} V=3 M={message}".encode()[:240]


def encode_failure(
    identifier: int, challenge: bytes, message: str, error: int = ERROR_AUTHENTICATION_FAILURE
) -> bytes:
    """The Failure Request (RFC 2759 §6) carrying failure_text()."""
    return _packet(OpCode.FAILURE, identifier, failure_text(challenge, message, error))


def opcode_of(data: bytes) -> int:
    """The OpCode of a peer's packet; the Success and Failure acknowledgements are that
    octet alone."""
    if not data:
        raise MalformedEap("EAP-MSCHAPv2 packet without its OpCode")
    return data[0]


def decode_response(data: bytes) -> MschapResponse:
    """The peer's Response packet (the method data after the EAP Type octet)."""
    if len(data) < _HEAD.size + 1 + _RESPONSE_VALUE:
        raise MalformedEap(f"EAP-MSCHAPv2 Response of {len(data)} octets is too short")
    opcode, identifier, length = _HEAD.unpack_from(data)
    if opcode != OpCode.RESPONSE:
        raise MalformedEap(f"EAP-MSCHAPv2 OpCode {opcode}, not a Response")
    if length != len(data):
        raise MalformedEap(f"EAP-MSCHAPv2 MS-Length {length} with {len(data)} octets present")
    if data[_HEAD.size] != _RESPONSE_VALUE:
        raise MalformedEap(f"EAP-MSCHAPv2 Value-Size {data[_HEAD.size]}, not 49")
    value = data[_HEAD.size + 1 : _HEAD.size + 1 + _RESPONSE_VALUE]
    if value[48]:
        raise MalformedEap("EAP-MSCHAPv2 Response Flags must be 0")
    return MschapResponse(
        identifier, value[:16], value[24:48], data[_HEAD.size + 1 + _RESPONSE_VALUE :]
    )


def check_response(
    nt_hash: bytes, authenticator_challenge: bytes, response: MschapResponse
) -> bytes | None:
    """The Authenticator Response to send when the peer's NT-Response is right for
    `nt_hash` (compared in constant time); None when it is not."""
    user = hash_user(response.name)
    expected = nt_response(authenticator_challenge, response.peer_challenge, user, nt_hash)
    if not hmac.compare_digest(expected, response.nt_response):
        return None
    return authenticator_response(
        nt_hash, response.nt_response, response.peer_challenge, authenticator_challenge, user
    )


# --- MS-CHAPv2 inside EAP-TTLS (RFC 5281 §11.2.4, the attributes of RFC 2548) ----------------

VENDOR_MICROSOFT = 311
MS_CHAP_ERROR = 2
MS_CHAP_CHALLENGE = 11
MS_CHAP2_RESPONSE = 25
MS_CHAP2_SUCCESS = 26
TTLS_CHALLENGE_LABEL = b"ttls challenge"  # keying material: the 16-octet challenge, the Ident
TTLS_CHALLENGE_BYTES = CHALLENGE_BYTES + 1
_MS_CHAP2_RESPONSE_BYTES = 50  # Ident, Flags, Peer-Challenge 16, Reserved 8, Response 24


def decode_ms_chap2_response(value: bytes, name: bytes) -> MschapResponse:
    """The MS-CHAP2-Response attribute's value (RFC 2548 §2.3.2), for the user `name` the
    User-Name beside it gives."""
    if len(value) != _MS_CHAP2_RESPONSE_BYTES:
        raise MalformedEap(f"MS-CHAP2-Response of {len(value)} octets, not 50")
    if value[1]:
        raise MalformedEap("MS-CHAP2-Response Flags must be 0")
    return MschapResponse(value[0], value[2:18], value[26:50], name)


def ms_chap2_success(identifier: int, authenticator_response: bytes) -> bytes:
    """The MS-CHAP2-Success attribute's value: the Ident and "S=<40 hex digits>"."""
    return bytes((identifier,)) + authenticator_response


def ms_chap_error(identifier: int, text: bytes) -> bytes:
    """The MS-CHAP-Error attribute's value: the Ident and failure_text()."""
    return bytes((identifier,)) + text
