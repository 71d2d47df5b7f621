"""The error base of the protocol layer; every codec raises only subclasses of ProtocolError."""

from __future__ import annotations


class ProtocolError(Exception):
    """Base of every error raised by netaccess.proto."""


class RemoteProtocolError(ProtocolError):
    """The peer (or the wire) sent bytes that do not follow the protocol."""


class LocalProtocolError(ProtocolError):
    """Our own side misused a codec or state machine."""
