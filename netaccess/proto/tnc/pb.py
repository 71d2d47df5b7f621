"""PB-TNC (RFC 5793), sans-IO: batches and their messages, and the batch state machine both
brokers run. PT-TLS carries one batch per message, so this works on whole batches.

A batch (§4.1) is `Version(8)=2 | D(1) Reserved(19) Type(4) | Length(32)` (D=1 when the
server sends it; Length counts the 8-byte header) followed by messages (§4.2), each
`Flags(8; NOSKIP=0x80) Vendor(24) Type(32) Length(32)` and a value.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from netaccess.proto.errors import LocalProtocolError
from netaccess.proto.tnc.buffer import Buffer, BufferUnderrun, Writer
from netaccess.proto.tnc.errors import IETF_PEN, PbErrorCode, PbTncError
from netaccess.proto.tnc.pa import AssessmentResultCode

PB_VERSION = 2
BATCH_HEADER = 8
MESSAGE_HEADER = 12
NOSKIP = 0x80
EXCLUSIVE = 0x80  # PB-PA flag: deliver only to the posture collector/validator named
FATAL = 0x80  # PB-Error flag
ANY_VALIDATOR = 0xFFFF  # PB-PA Posture Validator Identifier: whichever IMV wants it
DEFAULT_MAX_BATCH = 4 * 1024 * 1024


class BatchType(enum.IntEnum):
    """§4.1. CDATA and CRETRY come from the client; SDATA, RESULT and SRETRY from the
    server; CLOSE from either."""

    CDATA = 1
    SDATA = 2
    RESULT = 3
    CRETRY = 4
    SRETRY = 5
    CLOSE = 6


class MessageType(enum.IntEnum):
    """§4.3, IETF vendor id."""

    EXPERIMENTAL = 0
    PA = 1
    ASSESSMENT_RESULT = 2
    ACCESS_RECOMMENDATION = 3
    REMEDIATION_PARAMETERS = 4
    ERROR = 5
    LANGUAGE_PREFERENCE = 6
    REASON_STRING = 7


# §4.6's codes are PA-TNC's Assessment Result codes (RFC 5792 §4.2.9): one enum for both.
AssessmentResult = AssessmentResultCode


class AccessRecommendation(enum.IntEnum):
    """§4.7."""

    ALLOWED = 1
    NO_ACCESS = 2
    QUARANTINED = 3


class RemediationType(enum.IntEnum):
    """§4.8, IETF vendor id."""

    URI = 1
    STRING = 2


class PbState(enum.Enum):
    """§3.2: whose turn it is, and whether a decision has been sent."""

    INIT = "init"
    SERVER_WORKING = "server working"
    CLIENT_WORKING = "client working"
    DECIDED = "decided"
    END = "end"


class PbRole(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


_FROM_CLIENT = frozenset({BatchType.CDATA, BatchType.CRETRY, BatchType.CLOSE})
_FROM_SERVER = frozenset({BatchType.SDATA, BatchType.RESULT, BatchType.SRETRY, BatchType.CLOSE})

# (state, batch type) -> next state; CLOSE goes to END from any state, and any pair missing
# here is a fatal Unexpected Batch Type (§3.2, §4.9.1). The table names who may send each
# type; direction is checked separately.
_TRANSITIONS: dict[tuple[PbState, BatchType], PbState] = {
    (PbState.INIT, BatchType.CDATA): PbState.SERVER_WORKING,
    (PbState.SERVER_WORKING, BatchType.SDATA): PbState.CLIENT_WORKING,
    (PbState.SERVER_WORKING, BatchType.SRETRY): PbState.CLIENT_WORKING,
    (PbState.SERVER_WORKING, BatchType.RESULT): PbState.DECIDED,
    (PbState.CLIENT_WORKING, BatchType.CDATA): PbState.SERVER_WORKING,
    (PbState.CLIENT_WORKING, BatchType.CRETRY): PbState.SERVER_WORKING,
    (PbState.DECIDED, BatchType.CRETRY): PbState.SERVER_WORKING,
    (PbState.DECIDED, BatchType.SRETRY): PbState.SERVER_WORKING,
}


# --- messages -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PbPa:
    """§4.5: a PA-TNC message for the IMCs/IMVs of (vendor, subtype)."""

    vendor: int
    subtype: int
    body: bytes
    collector_id: int = 0
    validator_id: int = ANY_VALIDATOR
    exclusive: bool = False


@dataclass(frozen=True, slots=True)
class PbAssessmentResult:
    """§4.6: RESULT only, exactly one, always NOSKIP."""

    result: AssessmentResult


@dataclass(frozen=True, slots=True)
class PbAccessRecommendation:
    """§4.7: RESULT only. Sent without NOSKIP (a client may ignore it; strongSwan does not
    set it either)."""

    recommendation: AccessRecommendation


@dataclass(frozen=True, slots=True)
class PbRemediationUri:
    """§4.8, IETF type 1: where the user can fix what failed."""

    uri: str


@dataclass(frozen=True, slots=True)
class PbRemediationString:
    """§4.8, IETF type 2: instructions as text, with their language (RFC 5646 tag)."""

    text: str
    language: str = ""


@dataclass(frozen=True, slots=True)
class PbRemediationOther:
    """§4.8 with a vendor-specific parameters type: kept as bytes."""

    vendor: int
    type: int
    value: bytes


@dataclass(frozen=True, slots=True)
class PbError:
    """§4.9. `offset`: for Invalid Parameter and Unsupported Mandatory Message, where in
    the batch. `versions`: for Version Not Supported, (bad, max, min). `parameters`: the
    raw parameters of another vendor's error."""

    code: int
    fatal: bool = True
    vendor: int = IETF_PEN
    offset: int | None = None
    versions: tuple[int, int, int] | None = None
    parameters: bytes = b""


@dataclass(frozen=True, slots=True)
class PbLanguagePreference:
    """§4.10: the client's languages, an Accept-Language value (RFC 3282), ASCII."""

    value: str


@dataclass(frozen=True, slots=True)
class PbReasonString:
    """§4.11: why the decision was taken, for the user, with its language. Sent without
    NOSKIP."""

    reason: str
    language: str = ""


@dataclass(frozen=True, slots=True)
class PbSkipped:
    """A message we do not know, without NOSKIP: skipped (§4.2), kept for the log."""

    vendor: int
    type: int
    length: int


PbMessage = (
    PbPa
    | PbAssessmentResult
    | PbAccessRecommendation
    | PbRemediationUri
    | PbRemediationString
    | PbRemediationOther
    | PbError
    | PbLanguagePreference
    | PbReasonString
    | PbSkipped
)


@dataclass(frozen=True, slots=True)
class PbBatch:
    type: BatchType
    messages: tuple[PbMessage, ...] = ()
    from_server: bool = False  # the D bit


# --- decoding -------------------------------------------------------------------------


def pull_pb_batch(data: bytes, *, max_size: int = DEFAULT_MAX_BATCH) -> PbBatch:
    """One whole batch. Raises PbTncError only (fatal ones are answered in a CLOSE)."""
    if len(data) > max_size:
        raise PbTncError(
            PbErrorCode.INVALID_PARAMETER, f"batch of {len(data)} bytes over {max_size}", offset=4
        )
    buf = Buffer(data)
    try:
        version = buf.pull_uint8("batch version")
        if version != PB_VERSION:
            raise PbTncError(
                PbErrorCode.VERSION_NOT_SUPPORTED, f"PB-TNC version {version}, not 2", offset=0
            )
        flags = buf.pull_uint24("batch flags and type")
        length = buf.pull_uint32("batch length")
    except BufferUnderrun as exc:
        raise PbTncError(PbErrorCode.INVALID_PARAMETER, str(exc), offset=exc.offset) from None
    if length != len(data):
        raise PbTncError(
            PbErrorCode.INVALID_PARAMETER,
            f"batch length field says {length}, the batch has {len(data)} bytes",
            offset=4,
        )
    try:
        batch_type = BatchType(flags & 0x0F)
    except ValueError:
        raise PbTncError(
            PbErrorCode.UNEXPECTED_BATCH_TYPE, f"batch type {flags & 0x0F}", offset=3
        ) from None
    messages: list[PbMessage] = []
    while not buf.at_end():
        messages.append(_pull_message(buf, batch_type))
    return PbBatch(batch_type, tuple(messages), from_server=bool(flags & 0x800000))


def _pull_message(buf: Buffer, batch_type: BatchType) -> PbMessage:
    start = buf.offset
    try:
        flags = buf.pull_uint8("message flags")
        vendor = buf.pull_uint24("message vendor")
        msg_type = buf.pull_uint32("message type")
        length = buf.pull_uint32("message length")
    except BufferUnderrun as exc:  # the batch ends inside a message header
        raise PbTncError(PbErrorCode.INVALID_PARAMETER, str(exc), offset=start) from None
    if length < MESSAGE_HEADER:
        raise PbTncError(
            PbErrorCode.INVALID_PARAMETER, f"message length {length} < 12", offset=start + 8
        )
    try:
        value = buf.pull_bytes(length - MESSAGE_HEADER, "message value")
    except BufferUnderrun as exc:
        raise PbTncError(PbErrorCode.INVALID_PARAMETER, str(exc), offset=start + 8) from None
    pull = _PULLERS.get((vendor, msg_type)) if vendor == IETF_PEN else None
    if pull is None:
        if flags & NOSKIP:
            raise PbTncError(
                PbErrorCode.UNSUPPORTED_MANDATORY_MESSAGE,
                f"message type {msg_type} of vendor {vendor} is marked NOSKIP",
                offset=start,
            )
        return PbSkipped(vendor, msg_type, length)
    allowed = _PLACES.get(MessageType(msg_type))
    if allowed is not None and batch_type not in allowed:
        raise PbTncError(
            PbErrorCode.INVALID_PARAMETER,
            f"{MessageType(msg_type).name} is not allowed in a {batch_type.name} batch",
            offset=start,
        )
    value_start = start + MESSAGE_HEADER
    try:
        return pull(Buffer(value), flags, value_start)
    except BufferUnderrun as exc:
        raise PbTncError(
            PbErrorCode.INVALID_PARAMETER, str(exc), offset=value_start + exc.offset
        ) from None


def _pull_pa(buf: Buffer, flags: int, at: int) -> PbMessage:
    pa_flags = buf.pull_uint8("PB-PA flags")
    vendor = buf.pull_uint24("PA message vendor")
    subtype = buf.pull_uint32("PA subtype")
    collector = buf.pull_uint16("posture collector id")
    validator = buf.pull_uint16("posture validator id")
    return PbPa(vendor, subtype, buf.pull_rest(), collector, validator, bool(pa_flags & EXCLUSIVE))


def _pull_assessment_result(buf: Buffer, flags: int, at: int) -> PbMessage:
    code = buf.pull_uint32("assessment result")
    _expect_end(buf, at, "PB-Assessment-Result")
    try:
        return PbAssessmentResult(AssessmentResult(code))
    except ValueError:
        raise PbTncError(
            PbErrorCode.INVALID_PARAMETER, f"assessment result {code}", offset=at
        ) from None


def _pull_access_recommendation(buf: Buffer, flags: int, at: int) -> PbMessage:
    buf.pull_uint16("reserved")
    code = buf.pull_uint16("access recommendation")
    _expect_end(buf, at, "PB-Access-Recommendation")
    try:
        return PbAccessRecommendation(AccessRecommendation(code))
    except ValueError:
        raise PbTncError(
            PbErrorCode.INVALID_PARAMETER, f"access recommendation {code}", offset=at + 2
        ) from None


def _pull_remediation(buf: Buffer, flags: int, at: int) -> PbMessage:
    buf.pull_uint8("reserved")
    vendor = buf.pull_uint24("remediation vendor")
    rp_type = buf.pull_uint32("remediation type")
    if vendor == IETF_PEN and rp_type == RemediationType.URI:
        return PbRemediationUri(buf.pull_rest().decode("utf-8", "replace"))
    if vendor == IETF_PEN and rp_type == RemediationType.STRING:
        text, language = _pull_text_with_language(buf, "remediation string")
        _expect_end(buf, at, "PB-Remediation-Parameters")
        return PbRemediationString(text, language)
    return PbRemediationOther(vendor, rp_type, buf.pull_rest())


def _pull_error(buf: Buffer, flags: int, at: int) -> PbMessage:
    error_flags = buf.pull_uint8("error flags")
    vendor = buf.pull_uint24("error vendor")
    code = buf.pull_uint16("error code")
    buf.pull_uint16("reserved")
    fatal = bool(error_flags & FATAL)
    if vendor != IETF_PEN:
        return PbError(code, fatal, vendor, parameters=buf.pull_rest())
    if code in (PbErrorCode.INVALID_PARAMETER, PbErrorCode.UNSUPPORTED_MANDATORY_MESSAGE):
        offset = buf.pull_uint32("error offset")
        _expect_end(buf, at, "PB-Error")
        return PbError(code, fatal, vendor, offset=offset)
    if code == PbErrorCode.VERSION_NOT_SUPPORTED:
        bad = buf.pull_uint8("bad version")
        highest = buf.pull_uint8("max version")
        lowest = buf.pull_uint8("min version")
        buf.pull_uint8("reserved")
        _expect_end(buf, at, "PB-Error")
        return PbError(code, fatal, vendor, versions=(bad, highest, lowest))
    return PbError(code, fatal, vendor, parameters=buf.pull_rest())


def _pull_language_preference(buf: Buffer, flags: int, at: int) -> PbMessage:
    return PbLanguagePreference(buf.pull_rest().decode("ascii", "replace"))


def _pull_reason_string(buf: Buffer, flags: int, at: int) -> PbMessage:
    reason, language = _pull_text_with_language(buf, "reason string")
    _expect_end(buf, at, "PB-Reason-String")
    return PbReasonString(reason, language)


def _pull_text_with_language(buf: Buffer, what: str) -> tuple[str, str]:
    """`Length(32) UTF-8 text | Length(8) language tag` (§4.8, §4.11)."""
    size = buf.pull_uint32(f"{what} length")
    text = buf.pull_bytes(size, what).decode("utf-8", "replace")
    language_size = buf.pull_uint8("language code length")
    language = buf.pull_bytes(language_size, "language code").decode("ascii", "replace")
    return text, language


def _expect_end(buf: Buffer, at: int, what: str) -> None:
    if not buf.at_end():
        raise PbTncError(
            PbErrorCode.INVALID_PARAMETER,
            f"{what}: {buf.remaining} bytes after its value",
            offset=at + buf.offset,
        )


_Puller = Callable[[Buffer, int, int], PbMessage]
_PULLERS: dict[tuple[int, int], _Puller] = {
    (IETF_PEN, MessageType.PA): _pull_pa,
    (IETF_PEN, MessageType.ASSESSMENT_RESULT): _pull_assessment_result,
    (IETF_PEN, MessageType.ACCESS_RECOMMENDATION): _pull_access_recommendation,
    (IETF_PEN, MessageType.REMEDIATION_PARAMETERS): _pull_remediation,
    (IETF_PEN, MessageType.ERROR): _pull_error,
    (IETF_PEN, MessageType.LANGUAGE_PREFERENCE): _pull_language_preference,
    (IETF_PEN, MessageType.REASON_STRING): _pull_reason_string,
}

_DATA = frozenset(
    {BatchType.CDATA, BatchType.SDATA, BatchType.RESULT, BatchType.CRETRY, BatchType.SRETRY}
)
# Where each message may appear (§4.5-§4.11); a type not listed may appear anywhere.
_PLACES: dict[MessageType, frozenset[BatchType]] = {
    MessageType.PA: _DATA,
    MessageType.ASSESSMENT_RESULT: frozenset({BatchType.RESULT}),
    MessageType.ACCESS_RECOMMENDATION: frozenset({BatchType.RESULT}),
    MessageType.REMEDIATION_PARAMETERS: frozenset({BatchType.RESULT}),
    MessageType.LANGUAGE_PREFERENCE: frozenset({BatchType.CDATA, BatchType.SDATA}),
    MessageType.REASON_STRING: frozenset({BatchType.RESULT, BatchType.CLOSE}),
}

# --- encoding -------------------------------------------------------------------------


def push_pb_batch(batch: PbBatch) -> bytes:
    body = b"".join(push_pb_message(message) for message in batch.messages)
    out = Writer()
    out.push_uint8(PB_VERSION)
    out.push_uint24((0x800000 if batch.from_server else 0) | int(batch.type))
    out.push_uint32(BATCH_HEADER + len(body), "batch length")
    out.push_bytes(body)
    return out.data()


def push_pb_message(message: PbMessage) -> bytes:
    msg_type, noskip, value = _encode_value(message)
    out = Writer()
    out.push_uint8(NOSKIP if noskip else 0)
    out.push_uint24(IETF_PEN)
    out.push_uint32(msg_type)
    out.push_uint32(MESSAGE_HEADER + len(value), "message length")
    out.push_bytes(value)
    return out.data()


def _encode_value(message: PbMessage) -> tuple[MessageType, bool, bytes]:
    """(type, NOSKIP, value). NOSKIP is set only where the receiver must understand the
    message: PB-PA, Assessment-Result and PB-Error. Access-Recommendation, Remediation-
    Parameters, Reason-String and Language-Preference go without it: strongSwan refuses
    them with it ("must not have NOSKIP flag set"), and a broker that cannot use them
    loses nothing of the decision."""
    out = Writer()
    if isinstance(message, PbPa):
        out.push_uint8(EXCLUSIVE if message.exclusive else 0)
        out.push_uint24(message.vendor, "PA vendor")
        out.push_uint32(message.subtype, "PA subtype")
        out.push_uint16(message.collector_id, "posture collector id")
        out.push_uint16(message.validator_id, "posture validator id")
        out.push_bytes(message.body)
        return MessageType.PA, True, out.data()
    if isinstance(message, PbAssessmentResult):
        out.push_uint32(int(message.result))
        return MessageType.ASSESSMENT_RESULT, True, out.data()
    if isinstance(message, PbAccessRecommendation):
        out.push_uint16(0)
        out.push_uint16(int(message.recommendation))
        return MessageType.ACCESS_RECOMMENDATION, False, out.data()
    if isinstance(message, PbRemediationUri | PbRemediationString | PbRemediationOther):
        if isinstance(message, PbRemediationUri):
            vendor, rp_type, value = IETF_PEN, int(RemediationType.URI), message.uri.encode()
        elif isinstance(message, PbRemediationString):
            vendor, rp_type = IETF_PEN, int(RemediationType.STRING)
            value = _text_with_language(message.text, message.language)
        else:
            vendor, rp_type, value = message.vendor, message.type, message.value
        out.push_uint8(0)
        out.push_uint24(vendor, "remediation vendor")
        out.push_uint32(rp_type, "remediation type")
        out.push_bytes(value)
        return MessageType.REMEDIATION_PARAMETERS, False, out.data()
    if isinstance(message, PbError):
        out.push_uint8(FATAL if message.fatal else 0)
        out.push_uint24(message.vendor, "error vendor")
        out.push_uint16(message.code, "error code")
        out.push_uint16(0)
        if message.offset is not None:
            out.push_uint32(message.offset, "error offset")
        elif message.versions is not None:
            for version in message.versions:
                out.push_uint8(version, "version")
            out.push_uint8(0)
        out.push_bytes(message.parameters)
        return MessageType.ERROR, True, out.data()
    if isinstance(message, PbLanguagePreference):
        try:
            return MessageType.LANGUAGE_PREFERENCE, False, message.value.encode("ascii")
        except UnicodeEncodeError:
            raise LocalProtocolError("a language preference must be ASCII") from None
    if isinstance(message, PbReasonString):
        return (
            MessageType.REASON_STRING,
            False,
            _text_with_language(message.reason, message.language),
        )
    raise LocalProtocolError(f"cannot send {type(message).__name__}")


def _text_with_language(text: str, language: str) -> bytes:
    out = Writer()
    encoded = text.encode()
    out.push_uint32(len(encoded), "text length")
    out.push_bytes(encoded)
    try:
        tag = language.encode("ascii")
    except UnicodeEncodeError:
        raise LocalProtocolError(f"language tag {language!r} is not ASCII") from None
    out.push_uint8(len(tag), "language tag length")
    out.push_bytes(tag)
    return out.data()


# --- the state machine ----------------------------------------------------------------


class PbTncSession:
    """One broker's side of a PB-TNC session (§3.2): checks every batch received and sent
    against the state and the sender's role, and the RESULT rules (§4.6: exactly one
    Assessment-Result). A PbTncError from receive() is to be answered with
    close_with_error() when fatal."""

    def __init__(self, role: PbRole, *, max_batch_size: int = DEFAULT_MAX_BATCH) -> None:
        self.role = role
        self.max_batch_size = max_batch_size
        self.state = PbState.INIT
        self.batches_received = 0

    def receive(self, data: bytes) -> PbBatch:
        if self.state is PbState.END:
            raise PbTncError(PbErrorCode.UNEXPECTED_BATCH_TYPE, "a batch after CLOSE")
        batch = pull_pb_batch(data, max_size=self.max_batch_size)
        peer_is_server = self.role is PbRole.CLIENT
        if batch.from_server != peer_is_server:
            raise PbTncError(
                PbErrorCode.INVALID_PARAMETER,
                f"the D bit says {'server' if batch.from_server else 'client'}",
                offset=1,
            )
        self._advance(batch, from_server=peer_is_server, error=True)
        self.batches_received += 1
        return batch

    def send(self, batch: PbBatch) -> bytes:
        """The bytes of `batch` from our side (its D bit is set for us)."""
        ours = PbBatch(batch.type, batch.messages, from_server=self.role is PbRole.SERVER)
        if self.state is PbState.END:
            raise LocalProtocolError("the session is closed")
        self._advance(ours, from_server=ours.from_server, error=False)
        return push_pb_batch(ours)

    def close_with_error(self, error: PbTncError) -> bytes:
        """A CLOSE batch carrying the PB-Error for `error` (§4.9); the session ends."""
        offset = (
            error.offset
            if error.code
            in (PbErrorCode.INVALID_PARAMETER, PbErrorCode.UNSUPPORTED_MANDATORY_MESSAGE)
            else None
        )
        versions = (
            (0, PB_VERSION, PB_VERSION) if error.code == PbErrorCode.VERSION_NOT_SUPPORTED else None
        )
        message = PbError(int(error.code), fatal=True, offset=offset, versions=versions)
        self.state = PbState.END
        return push_pb_batch(
            PbBatch(BatchType.CLOSE, (message,), from_server=self.role is PbRole.SERVER)
        )

    def _advance(self, batch: PbBatch, *, from_server: bool, error: bool) -> None:
        allowed = _FROM_SERVER if from_server else _FROM_CLIENT
        if batch.type not in allowed:
            self._refuse(
                error,
                PbErrorCode.UNEXPECTED_BATCH_TYPE,
                f"{batch.type.name} from the {'server' if from_server else 'client'}",
            )
        if batch.type is BatchType.RESULT:
            results = sum(isinstance(m, PbAssessmentResult) for m in batch.messages)
            if results != 1:
                self._refuse(
                    error,
                    PbErrorCode.INVALID_PARAMETER,
                    f"a RESULT batch with {results} Assessment-Result messages, not 1",
                )
        if batch.type is BatchType.CLOSE:
            self.state = PbState.END
            return
        following = _TRANSITIONS.get((self.state, batch.type))
        if following is None:
            self._refuse(
                error,
                PbErrorCode.UNEXPECTED_BATCH_TYPE,
                f"{batch.type.name} in state {self.state.value}",
            )
        self.state = following

    @staticmethod
    def _refuse(remote: bool, code: PbErrorCode, message: str) -> NoReturn:
        if remote:
            raise PbTncError(code, message)
        raise LocalProtocolError(message)
