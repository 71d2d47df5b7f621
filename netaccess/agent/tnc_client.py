"""The agent's posture client: one PT-TLS session (RFC 6876) over a stream the caller
opened (TLS in production, in memory in tests), sending each component's PA-TNC attributes
in PB-TNC CDATA and answering Attribute Requests until the server's RESULT. The same
sans-IO machines as the server, in the client role; tools/tnc-probe and the posture
benchmark use it too."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import trio

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


async def report_posture(
    stream: trio.abc.Stream,
    components: Mapping[Component, Sequence[PaAttribute]],
    *,
    answer: Answer | None = None,
    credentials: Credentials | None = None,
    language: str = "Accept-Language: en",
) -> PostureOutcome:
    """Run one session on `stream` to its RESULT, then CLOSE it (the stream stays open
    for the caller to close)."""
    pt = PtTlsConnection(PtTlsRole.CLIENT)
    pb = PbTncSession(PbRole.CLIENT)
    collectors = {component: number for number, component in enumerate(components, start=1)}
    message_ids = iter(range(1, 1 << 31))
    rounds = 0

    def pb_pa(component: Component, attributes: Sequence[PaAttribute]) -> PbPa:
        body = push_pa_message(PaMessage(next(message_ids), tuple(attributes)))
        return PbPa(component[0], component[1], body, collector_id=collectors[component])

    await stream.send_all(pt.send_version_request())
    while True:
        event = pt.next_event()
        if event is Wait.NEED_DATA:
            data = await stream.receive_some(64 * 1024)
            pt.receive_data(bytes(data))
            continue
        if event is Wait.CLOSED:
            raise PostureClientError("the server closed the session before a result")
        if isinstance(event, SaslMechanismsOffered):
            if credentials is None or "PLAIN" not in event.mechanisms:
                raise PostureClientError(f"the server wants SASL {event.mechanisms}")
            await stream.send_all(pt.select_plain(credentials.user, credentials.password))
        elif isinstance(event, SaslResult):
            if not event.succeeded:
                raise PostureClientError(f"sign-in refused (SASL result {event.code})")
        elif isinstance(event, PtTlsErrorReceived):
            raise PostureClientError(f"the server sent PT-TLS error {event.code}")
        elif isinstance(event, AuthenticationDone):
            first: list[PbMessage] = [PbLanguagePreference(language)]
            first.extend(pb_pa(c, attributes) for c, attributes in components.items())
            rounds += 1
            await stream.send_all(pt.send_batch(pb.send(PbBatch(BatchType.CDATA, tuple(first)))))
        elif isinstance(event, PbTncBatchReceived):
            batch = pb.receive(event.batch)
            if batch.type is BatchType.RESULT:
                await stream.send_all(pt.send_batch(pb.send(PbBatch(BatchType.CLOSE))))
                return _outcome(batch, rounds)
            if batch.type is BatchType.CLOSE:
                raise PostureClientError("the server closed the session before a result")
            if batch.type is BatchType.SDATA:
                replies = _answers(batch, answer, collectors)
                rounds += 1
                messages = tuple(pb_pa(c, attributes) for c, attributes in replies)
                await stream.send_all(pt.send_batch(pb.send(PbBatch(BatchType.CDATA, messages))))


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
