"""HTTP/1.1 for the portal, sans I/O: h11 parses, these modules add the limits and rules the
appliance needs (RFC 9110, RFC 9112) and the captive-portal answers (RFC 8908, RFC 8910)."""

from netaccess.proto.http.captive import (
    PROBES,
    Probe,
    admitted_answer,
    captive_redirect,
    https_redirect,
)
from netaccess.proto.http.server import (
    HttpError,
    HttpLimits,
    HttpServerConnection,
    Request,
    Response,
    Wait,
)

__all__ = [
    "PROBES",
    "HttpError",
    "HttpLimits",
    "HttpServerConnection",
    "Probe",
    "Request",
    "Response",
    "Wait",
    "admitted_answer",
    "captive_redirect",
    "https_redirect",
]
