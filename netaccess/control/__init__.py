"""The admin CLI <-> daemon protocol: JSON lines over a Unix socket, sans-IO."""

from netaccess.control.protocol import (
    MAX_LINE,
    ControlError,
    ErrorCode,
    LineDecoder,
    Request,
    Response,
    decode_request,
    decode_response,
    encode,
)

__all__ = [
    "MAX_LINE",
    "ControlError",
    "ErrorCode",
    "LineDecoder",
    "Request",
    "Response",
    "decode_request",
    "decode_response",
    "encode",
]
