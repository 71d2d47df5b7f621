"""The remote IMV protocol (ours): how the appliance relays PA-TNC messages to third-party
IMVs on a remote IMV server, over mutually authenticated TLS, and gets their replies and
evaluations back. Sans-IO: frames and messages in, bytes out (netaccess.io.remote_imv and
tools/remote-imv-server do the I/O).

Framing: each frame is a 4-byte big-endian length, then that many bytes of one JSON object
in UTF-8 (RFC 8259; NaN and Infinity are refused). A frame longer than MAX_FRAME_SIZE is
refused as soon as its length is read, before its body is buffered.

The client (the appliance) sends one request and waits for its answer, never more than one
at a time. It opens one connection per posture session (a server may accept several
sessions on one connection). Requests and their answers:

    {"op": "begin", "session": S, "endpoint": {"ip": I, "mac": M, "user": U}}
        -> {"ok": true}                        (ip, mac, user: strings or null)
    {"op": "deliver", "session": S, "vendor": V, "subtype": T, "collector": C,
     "message": "<base64 of a PA-TNC message (RFC 5792 §4.1)>"}
        -> {"replies": ["<base64 of a PA-TNC message for collector C>", ...]}
    {"op": "evaluate", "session": S}
        -> {"evaluation": null}                (the remote IMVs had nothing to judge)
        -> {"evaluation": {"verdict": VERDICT, "recommendation": RECOMMENDATION,
                           "reasons": ["...", ...],
                           "remediation": [{"text": "...", "link": "..."}, ...]}}
    {"op": "end", "session": S}
        -> {"ok": true}
    any request -> {"error": "what was wrong"}

V is an SMI Private Enterprise Number (24 bits), T a PA subtype (32 bits) and C a Posture
Collector Identifier (16 bits), as in PB-PA (RFC 5793 §4.5). VERDICT is one of VERDICTS
(RFC 5792 §4.2.9's results), RECOMMENDATION one of RECOMMENDATIONS (RFC 5793 §4.7); the
policy layer's Verdict and Recommendation use the same strings. Strings are at most
MAX_TEXT characters of valid Unicode, lists at most MAX_ITEMS long. Keys not listed here
are ignored, so either side may add some later. Bad input raises RemoteImvProtocolError
only; encoding a value that does not fit raises LocalProtocolError. pull_raw_attributes()
splits a reply's PA-TNC message into attributes a relay passes on as they came.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from netaccess.proto.errors import LocalProtocolError, RemoteProtocolError
from netaccess.proto.tnc.buffer import Buffer, BufferUnderrun
from netaccess.proto.tnc.pa import (
    ATTRIBUTE_HEADER_SIZE,
    MESSAGE_HEADER_SIZE,
    NOSKIP,
    PA_TNC_VERSION,
    RawAttribute,
)

LENGTH_SIZE = 4
MAX_FRAME_SIZE = 8 * 1024 * 1024
MAX_SESSION_ID = 128  # characters
MAX_VENDOR = 0xFFFFFF
MAX_SUBTYPE = 0xFFFFFFFF
MAX_COLLECTOR = 0xFFFF
# Reasons and remediation go on to the endpoint in PB-TNC: keep them to what a person reads.
MAX_TEXT = 4096  # characters in one string
MAX_ITEMS = 256  # replies, reasons or remediation items in one answer
ENDPOINT_KEYS = ("ip", "mac", "user")

VERDICTS = frozenset(
    {"compliant", "minor non-compliance", "major non-compliance", "error", "don't know"}
)
RECOMMENDATIONS = frozenset({"allowed", "quarantined", "no access"})


class RemoteImvProtocolError(RemoteProtocolError):
    """The peer sent bytes or a message that does not follow the remote IMV protocol."""


class Wait(enum.Enum):
    NEED_DATA = "need data"


NEED_DATA = Wait.NEED_DATA


# --- frames -----------------------------------------------------------------------------------


def encode_frame(obj: Mapping[str, Any], *, max_frame_size: int = MAX_FRAME_SIZE) -> bytes:
    """One frame holding `obj` as JSON; LocalProtocolError if it is not JSON or too big."""
    try:
        body = json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        data = body.encode("utf-8")
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError: a lone surrogate
        raise LocalProtocolError(f"not a JSON object in UTF-8: {exc}") from exc
    if len(data) > max_frame_size:
        raise LocalProtocolError(f"a frame of {len(data)} bytes, at most {max_frame_size} fit")
    return len(data).to_bytes(LENGTH_SIZE, "big") + data


class FrameDecoder:
    """Bytes in (receive_data), JSON objects out (next_frame), in the order sent. Read
    while next_frame() gives NEED_DATA: then at most one frame and one read are buffered."""

    def __init__(self, *, max_frame_size: int = MAX_FRAME_SIZE) -> None:
        self.max_frame_size = max_frame_size
        self._buffer = bytearray()

    def receive_data(self, data: bytes) -> None:
        self._buffer += data
        self._frame_size()  # an oversized frame is refused before its body comes

    def next_frame(self) -> dict[str, Any] | Wait:
        size = self._frame_size()
        if size is None or len(self._buffer) < LENGTH_SIZE + size:
            return NEED_DATA
        body = bytes(self._buffer[LENGTH_SIZE : LENGTH_SIZE + size])
        del self._buffer[: LENGTH_SIZE + size]
        return _parse_object(body)

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned as a frame (0 at a frame boundary)."""
        return len(self._buffer)

    def _frame_size(self) -> int | None:
        if len(self._buffer) < LENGTH_SIZE:
            return None
        size = int.from_bytes(self._buffer[:LENGTH_SIZE], "big")
        if size > self.max_frame_size:
            raise RemoteImvProtocolError(
                f"a frame of {size} bytes announced, at most {self.max_frame_size} accepted"
            )
        return size


def _refuse_constant(name: str) -> Any:
    raise RemoteImvProtocolError(f"{name} is not a JSON number")


def _parse_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError as exc:
        raise RemoteImvProtocolError(f"a frame is not UTF-8: {exc.reason}") from None
    except ValueError as exc:  # JSONDecodeError, and integers too long to convert
        raise RemoteImvProtocolError(f"a frame is not JSON: {exc}") from None
    except RecursionError:
        raise RemoteImvProtocolError("a frame nests JSON values too deeply") from None
    if not isinstance(value, dict):
        raise RemoteImvProtocolError(f"a frame holds a JSON {type(value).__name__}, not an object")
    return value


# --- messages ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Who is being assessed, as far as the appliance knows."""

    ip: str | None = None
    mac: str | None = None
    user: str | None = None


@dataclass(frozen=True, slots=True)
class Begin:
    session: str
    endpoint: Endpoint = Endpoint()


@dataclass(frozen=True, slots=True)
class Deliver:
    """A PA-TNC message from collector `collector` about component (vendor, subtype)."""

    session: str
    vendor: int
    subtype: int
    collector: int
    message: bytes


@dataclass(frozen=True, slots=True)
class Evaluate:
    session: str


@dataclass(frozen=True, slots=True)
class End:
    session: str


Request = Begin | Deliver | Evaluate | End


@dataclass(frozen=True, slots=True)
class Ok:
    """The answer to begin and end."""


@dataclass(frozen=True, slots=True)
class Replies:
    """The answer to deliver: PA-TNC messages for the collector that wrote it."""

    messages: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class Remediation:
    text: str = ""
    link: str = ""


@dataclass(frozen=True, slots=True)
class Evaluation:
    """`verdict` is one of VERDICTS, `recommendation` one of RECOMMENDATIONS."""

    verdict: str
    recommendation: str
    reasons: tuple[str, ...] = ()
    remediation: tuple[Remediation, ...] = ()


@dataclass(frozen=True, slots=True)
class Evaluated:
    """The answer to evaluate; None: the remote IMVs had nothing to judge."""

    evaluation: Evaluation | None


@dataclass(frozen=True, slots=True)
class Refused:
    """The answer to a request the server could not handle."""

    error: str


Response = Ok | Replies | Evaluated | Refused


def encode_request(request: Request) -> bytes:
    obj: dict[str, Any]
    if isinstance(request, Begin):
        endpoint = request.endpoint
        obj = {
            "op": "begin",
            "session": request.session,
            "endpoint": {"ip": endpoint.ip, "mac": endpoint.mac, "user": endpoint.user},
        }
    elif isinstance(request, Deliver):
        _check_range(request.vendor, MAX_VENDOR, "vendor")
        _check_range(request.subtype, MAX_SUBTYPE, "subtype")
        _check_range(request.collector, MAX_COLLECTOR, "collector")
        obj = {
            "op": "deliver",
            "session": request.session,
            "vendor": request.vendor,
            "subtype": request.subtype,
            "collector": request.collector,
            "message": _b64(request.message),
        }
    elif isinstance(request, Evaluate):
        obj = {"op": "evaluate", "session": request.session}
    else:
        obj = {"op": "end", "session": request.session}
    return encode_frame(obj)


def encode_response(response: Response) -> bytes:
    obj: dict[str, Any]
    if isinstance(response, Ok):
        obj = {"ok": True}
    elif isinstance(response, Replies):
        obj = {"replies": [_b64(message) for message in response.messages]}
    elif isinstance(response, Evaluated):
        evaluation = response.evaluation
        if evaluation is None:
            obj = {"evaluation": None}
        else:
            if evaluation.verdict not in VERDICTS:
                raise LocalProtocolError(f"verdict {evaluation.verdict!r} is not one of VERDICTS")
            if evaluation.recommendation not in RECOMMENDATIONS:
                raise LocalProtocolError(
                    f"recommendation {evaluation.recommendation!r} is not one of RECOMMENDATIONS"
                )
            obj = {
                "evaluation": {
                    "verdict": evaluation.verdict,
                    "recommendation": evaluation.recommendation,
                    "reasons": list(evaluation.reasons),
                    "remediation": [
                        {"text": item.text, "link": item.link} for item in evaluation.remediation
                    ],
                }
            }
    else:
        obj = {"error": response.error}
    return encode_frame(obj)


def decode_request(obj: Mapping[str, Any]) -> Request:
    """The request in a frame the server received."""
    op = obj.get("op")
    session = _session(obj)
    if op == "begin":
        raw = obj.get("endpoint", {})
        if not isinstance(raw, dict):
            raise RemoteImvProtocolError("begin: endpoint is not an object")
        ip, mac, user = (_optional_text(raw, key, "begin: endpoint") for key in ENDPOINT_KEYS)
        return Begin(session, Endpoint(ip, mac, user))
    if op == "deliver":
        return Deliver(
            session,
            _integer(obj, "vendor", MAX_VENDOR),
            _integer(obj, "subtype", MAX_SUBTYPE),
            _integer(obj, "collector", MAX_COLLECTOR),
            _unb64(obj.get("message"), "deliver: message"),
        )
    if op == "evaluate":
        return Evaluate(session)
    if op == "end":
        return End(session)
    raise RemoteImvProtocolError(f"unknown op {_shown(op)}")


def decode_response(obj: Mapping[str, Any], request: Request) -> Response:
    """The answer (in a frame the client received) to `request`."""
    if "error" in obj:
        return Refused(_text(obj["error"], "error"))
    if isinstance(request, Begin | End):
        if obj.get("ok") is not True:
            raise RemoteImvProtocolError(f'{_op(request)}: expected {{"ok": true}}')
        return Ok()
    if isinstance(request, Deliver):
        replies = _list(obj.get("replies"), "deliver: replies")
        return Replies(tuple(_unb64(item, "deliver: a reply") for item in replies))
    if "evaluation" not in obj:
        raise RemoteImvProtocolError("evaluate: no evaluation in the answer")
    raw = obj["evaluation"]
    if raw is None:
        return Evaluated(None)
    if not isinstance(raw, dict):
        raise RemoteImvProtocolError("evaluate: evaluation is neither null nor an object")
    return Evaluated(_evaluation(raw))


def _evaluation(raw: Mapping[str, Any]) -> Evaluation:
    verdict = raw.get("verdict")
    if verdict not in VERDICTS:
        raise RemoteImvProtocolError(f"evaluate: verdict {_shown(verdict)} is not one of VERDICTS")
    recommendation = raw.get("recommendation")
    if recommendation not in RECOMMENDATIONS:
        raise RemoteImvProtocolError(
            f"evaluate: recommendation {_shown(recommendation)} is not one of RECOMMENDATIONS"
        )
    reasons = tuple(
        _text(reason, "evaluate: a reason")
        for reason in _list(raw.get("reasons", []), "evaluate: reasons")
    )
    remediation = []
    for item in _list(raw.get("remediation", []), "evaluate: remediation"):
        if not isinstance(item, dict):
            raise RemoteImvProtocolError("evaluate: a remediation item is not an object")
        text = _text(item.get("text", ""), "evaluate: a remediation text")
        link = _text(item.get("link", ""), "evaluate: a remediation link")
        remediation.append(Remediation(text, link))
    return Evaluation(str(verdict), str(recommendation), reasons, tuple(remediation))


# --- relaying PA-TNC messages -----------------------------------------------------------------


def pull_raw_attributes(data: bytes) -> tuple[RawAttribute, ...]:
    """The attributes of a PA-TNC message (RFC 5792 §4.1, §4.2) as they were sent, NOSKIP
    flag and value bytes kept, for a relay to pass on without re-encoding (so attributes
    it has no codec for survive). Checks the version and every length."""
    buf = Buffer(data)
    try:
        version = buf.pull_uint8("version")
        if version != PA_TNC_VERSION:
            raise RemoteImvProtocolError(f"PA-TNC version {version}, not {PA_TNC_VERSION}")
        buf.pull_bytes(MESSAGE_HEADER_SIZE - 1, "message header")
        attributes = []
        while not buf.at_end():
            flags = buf.pull_uint8("attribute flags")
            vendor = buf.pull_uint24("attribute vendor id")
            kind = buf.pull_uint32("attribute type")
            length = buf.pull_uint32("attribute length")
            if length < ATTRIBUTE_HEADER_SIZE:
                raise RemoteImvProtocolError(f"attribute length {length} is below its header")
            value = buf.pull_bytes(length - ATTRIBUTE_HEADER_SIZE, "attribute value")
            attributes.append(RawAttribute(vendor, kind, value, noskip=bool(flags & NOSKIP)))
    except BufferUnderrun as exc:
        raise RemoteImvProtocolError(f"PA-TNC message: {exc}") from None
    return tuple(attributes)


# --- field helpers ----------------------------------------------------------------------------


def _op(request: Request) -> str:
    return type(request).__name__.lower()


def _session(obj: Mapping[str, Any]) -> str:
    session = obj.get("session")
    if not isinstance(session, str) or not 1 <= len(session) <= MAX_SESSION_ID:
        raise RemoteImvProtocolError(f"session is not a string of 1 to {MAX_SESSION_ID} characters")
    return _text(session, "session")


def _integer(obj: Mapping[str, Any], key: str, maximum: int) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise RemoteImvProtocolError(f"deliver: {key} is not an integer from 0 to {maximum}")
    return value


def _list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise RemoteImvProtocolError(f"{what} is not a list")
    if len(value) > MAX_ITEMS:
        raise RemoteImvProtocolError(f"{what} has {len(value)} items, at most {MAX_ITEMS}")
    return value


def _text(value: object, what: str) -> str:
    """A string that will go on in other protocols: bounded, and valid UTF-8 (JSON's \\u
    escapes can spell lone surrogates)."""
    if not isinstance(value, str):
        raise RemoteImvProtocolError(f"{what} is not a string")
    if len(value) > MAX_TEXT:
        raise RemoteImvProtocolError(f"{what} is {len(value)} characters, at most {MAX_TEXT}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise RemoteImvProtocolError(f"{what} holds a lone surrogate") from None
    return value


def _optional_text(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    return None if value is None else _text(value, f"{where} {key}")


def _check_range(value: int, maximum: int, what: str) -> None:
    if not 0 <= value <= maximum:
        raise LocalProtocolError(f"{what} {value} is not from 0 to {maximum}")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise RemoteImvProtocolError(f"{what} is not a base64 string")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise RemoteImvProtocolError(f"{what} is not valid base64") from None


def _shown(value: object) -> str:
    if not isinstance(value, str | int | float | bool | None):
        return "of another type"
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."
