"""The errors of the TNC layers. Each carries what to answer the peer with: a PT-TLS Error
code (RFC 6876 §3.9), a PB-TNC error code (RFC 5793 §4.9) or a PA-TNC error code (RFC 5792
§4.2.8), and where in the message the fault is."""

from __future__ import annotations

import enum

from netaccess.proto.errors import RemoteProtocolError

IETF_PEN = 0  # the IETF's SMI Private Enterprise Number: standard codes and types
TCG_PEN = 0x005597  # the Trusted Computing Group's


class PtTlsErrorCode(enum.IntEnum):
    """RFC 6876 §3.9.1 (IETF vendor id)."""

    MALFORMED_MESSAGE = 1
    VERSION_NOT_SUPPORTED = 2
    TYPE_NOT_SUPPORTED = 3
    INVALID_MESSAGE = 4
    SASL_MECHANISM_ERROR = 5
    INVALID_PARAMETER = 6


class PbErrorCode(enum.IntEnum):
    """RFC 5793 §4.9.1 (IETF vendor id)."""

    UNEXPECTED_BATCH_TYPE = 0
    INVALID_PARAMETER = 1
    LOCAL_ERROR = 2
    UNSUPPORTED_MANDATORY_MESSAGE = 3
    VERSION_NOT_SUPPORTED = 4


class PaErrorCode(enum.IntEnum):
    """RFC 5792 §4.2.8 (IETF vendor id)."""

    INVALID_PARAMETER = 1
    VERSION_NOT_SUPPORTED = 2
    ATTRIBUTE_TYPE_NOT_SUPPORTED = 3


class TncError(RemoteProtocolError):
    """Base of the errors a TNC peer's bytes cause."""


class PtTlsError(TncError):
    """Answer with a PT-TLS Error message of `code` and end the session."""

    def __init__(self, code: PtTlsErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class PbTncError(TncError):
    """Answer with a PB-Error of `code`; `fatal` errors go in a CLOSE batch (RFC 5793
    §4.9). `offset`: of the offending field within the batch, where known."""

    def __init__(
        self, code: PbErrorCode, message: str, *, offset: int = 0, fatal: bool = True
    ) -> None:
        super().__init__(message)
        self.code = code
        self.offset = offset
        self.fatal = fatal


class PaTncError(TncError):
    """Answer the PA-TNC message with a PA-TNC Error attribute of `code`. `offset`: of the
    offending field within the message; `header`: the first bytes of the message, which
    the error attribute quotes (RFC 5792 §4.2.8)."""

    def __init__(
        self, code: PaErrorCode, message: str, *, offset: int = 0, header: bytes = b""
    ) -> None:
        super().__init__(message)
        self.code = code
        self.offset = offset
        self.header = header
