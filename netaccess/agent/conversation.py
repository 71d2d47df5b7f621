"""The client side of one posture session (RFC 6876 PT-TLS carrying RFC 5793 PB-TNC), sans-IO:
it sends each component's PA-TNC attributes in PB-TNC CDATA and answers Attribute Requests
until the server's RESULT. The same machines as the server, in the client role. Drivers: the
agent's blocking one (netaccess.agent.client) and a trio one (netaccess.agent.tnc_client,
for tools/tnc-probe and the posture benchmark)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from netaccess.proto.tnc.errors import IETF_PEN
from netaccess.proto.tnc.pa import (
    AttributeKey,
    AttributeRequest,
    PaAttribute,
    PaMessage,
    pull_pa_message,
    push_pa_message,
)
from netaccess.proto.tnc.pb import (
    AccessRecommendation,
    AssessmentResult,
    BatchType,
    PbAccessRecommendation,
    PbAssessmentResult,
    PbBatch,
    PbLanguagePreference,
    PbMessage,
    PbPa,
    PbReasonString,
    PbRemediationString,
    PbRemediationUri,
    PbRole,
    PbTncSession,
)
from netaccess.proto.tnc.pt_tls import (
    AuthenticationDone,
    PbTncBatchReceived,
    PtTlsConnection,
    PtTlsErrorReceived,
    PtTlsRole,
    SaslMechanismsOffered,
    SaslResult,
    Wait,
)

Component = tuple[int, int]  # (vendor, subtype) of RFC 5792 §4.1
# What the agent answers an Attribute Request with: the attributes asked for, of one
# component, that it has.
Answer = Callable[[Component, tuple[AttributeKey, ...]], Sequence[PaAttribute]]


class PostureClientError(Exception):
    """The session failed before a result; the message says where."""


@dataclass(frozen=True, slots=True)
class PostureOutcome:
    result: AssessmentResult
    recommendation: AccessRecommendation | None
    reasons: tuple[str, ...]
    remediation: tuple[str, ...]  # URIs and instruction texts, in the order sent
    rounds: int  # CDATA batches we sent


@dataclass(frozen=True, slots=True)
class Credentials:
    user: str  # "name" or "name@realm"
    password: str


class PostureConversation:
    """The client side of one posture session, sans-IO: feed it what the server sent, send
    what it returns. `outcome` is set once the server's RESULT came (the CLOSE that answers
    it is in the bytes returned with it); errors raise PostureClientError."""

    def __init__(
        self,
        components: Mapping[Component, Sequence[PaAttribute]],
        *,
        answer: Answer | None = None,
        credentials: Credentials | None = None,
        language: str = "Accept-Language: en",
    ) -> None:
        self._components = components
        self._answer = answer
        self._credentials = credentials
        self._language = language
        self._pt = PtTlsConnection(PtTlsRole.CLIENT)
        self._pb = PbTncSession(PbRole.CLIENT)
        self._collectors = {c: number for number, c in enumerate(components, start=1)}
        self._message_ids = iter(range(1, 1 << 31))
        self._rounds = 0
        self.outcome: PostureOutcome | None = None
        self.result_messages: tuple[PbMessage, ...] = ()  # the RESULT batch, all of it

    def start(self) -> bytes:
        return self._pt.send_version_request()

    def receive(self, data: bytes) -> bytes:
        """Take bytes from the server; return the bytes to send back (maybe none)."""
        self._pt.receive_data(data)
        out = bytearray()
        while self.outcome is None:
            event = self._pt.next_event()
            if event is Wait.NEED_DATA:
                break
            out += self._handle(event)
        return bytes(out)

    def _pb_pa(self, component: Component, attributes: Sequence[PaAttribute]) -> PbPa:
        body = push_pa_message(PaMessage(next(self._message_ids), tuple(attributes)))
        return PbPa(component[0], component[1], body, collector_id=self._collectors[component])

    def _handle(self, event: object) -> bytes:
        pt, pb = self._pt, self._pb
        if event is Wait.CLOSED:
            raise PostureClientError("the server closed the session before a result")
        if isinstance(event, SaslMechanismsOffered):
            credentials = self._credentials
            if credentials is None or "PLAIN" not in event.mechanisms:
                raise PostureClientError(f"the server wants SASL {event.mechanisms}")
            return pt.select_plain(credentials.user, credentials.password)
        if isinstance(event, SaslResult):
            if not event.succeeded:
                raise PostureClientError(f"sign-in refused (SASL result {event.code})")
            return b""
        if isinstance(event, PtTlsErrorReceived):
            raise PostureClientError(f"the server sent PT-TLS error {event.code}")
        if isinstance(event, AuthenticationDone):
            first: list[PbMessage] = [PbLanguagePreference(self._language)]
            first.extend(self._pb_pa(c, a) for c, a in self._components.items())
            self._rounds += 1
            return pt.send_batch(pb.send(PbBatch(BatchType.CDATA, tuple(first))))
        if isinstance(event, PbTncBatchReceived):
            batch = pb.receive(event.batch)
            if batch.type is BatchType.RESULT:
                self.outcome = _outcome(batch, self._rounds)
                self.result_messages = batch.messages
                return pt.send_batch(pb.send(PbBatch(BatchType.CLOSE)))
            if batch.type is BatchType.CLOSE:
                raise PostureClientError("the server closed the session before a result")
            if batch.type is BatchType.SDATA:
                replies = _answers(batch, self._answer, self._collectors)
                self._rounds += 1
                messages = tuple(self._pb_pa(c, attributes) for c, attributes in replies)
                return pt.send_batch(pb.send(PbBatch(BatchType.CDATA, messages)))
        return b""


def _answers(
    batch: PbBatch, answer: Answer | None, collectors: Mapping[Component, int]
) -> list[tuple[Component, Sequence[PaAttribute]]]:
    replies = []
    for message in batch.messages:
        if not isinstance(message, PbPa):
            continue
        component = (message.vendor, message.subtype)
        if component not in collectors:
            continue
        wanted: list[AttributeKey] = []
        for attribute in pull_pa_message(message.body).attributes:
            if isinstance(attribute, AttributeRequest):
                wanted.extend(attribute.requested)
        attributes = answer(component, tuple(wanted)) if answer and wanted else ()
        replies.append((component, attributes))
    return replies


def _outcome(batch: PbBatch, rounds: int) -> PostureOutcome:
    result = AssessmentResult.DONT_KNOW
    recommendation = None
    reasons: list[str] = []
    remediation: list[str] = []
    for message in batch.messages:
        if isinstance(message, PbAssessmentResult):
            result = message.result
        elif isinstance(message, PbAccessRecommendation):
            recommendation = message.recommendation
        elif isinstance(message, PbReasonString):
            reasons.append(message.reason)
        elif isinstance(message, PbRemediationUri):
            remediation.append(message.uri)
        elif isinstance(message, PbRemediationString):
            remediation.append(message.text)
    return PostureOutcome(result, recommendation, tuple(reasons), tuple(remediation), rounds)


OS = (IETF_PEN, 1)
