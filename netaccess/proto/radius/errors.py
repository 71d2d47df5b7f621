"""The errors of the RADIUS codec. RADIUS has no error reply to a malformed packet: every
one of these means "drop the packet silently" (RFC 2865 §3), and count why."""

from __future__ import annotations

from netaccess.proto.errors import LocalProtocolError, RemoteProtocolError


class RadiusError(RemoteProtocolError):
    """A packet (or a part of one) from the wire that does not follow RADIUS: drop it."""


class MalformedPacket(RadiusError):
    """The packet's header or attribute framing is broken (RFC 2865 §3, §5)."""


class BadAuthenticator(RadiusError):
    """The Request/Response Authenticator or the Message-Authenticator does not verify."""


class BadAttribute(RadiusError):
    """An attribute's value does not fit its type in the dictionary."""


class DictionaryError(LocalProtocolError):
    """A dictionary file is wrong: `source` and `line` say where."""

    def __init__(self, source: str, line: int, message: str) -> None:
        super().__init__(f"{source}:{line}: {message}")
        self.source = source
        self.line = line


class EncodeError(LocalProtocolError):
    """We asked the codec for a packet RADIUS cannot carry (too long, unknown attribute)."""
