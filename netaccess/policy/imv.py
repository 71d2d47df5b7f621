"""The verifier side of a posture session: IMVs (Integrity Measurement Verifiers) and the
assessment that routes PA-TNC messages to them and turns their evaluations into the
server's next PB-TNC batch (SDATA while an IMV asks for more, RESULT when all are done).

An IMV registers for (vendor, subtype) pairs (RFC 5792 §4.1's component types) and gets
every PA-TNC message for them; it may answer with attributes for the collector (an
Attribute Request, say) and is asked for its evaluation at the end. Pure: no clock and no
I/O; the PT-TLS server (netaccess.io.posture) drives it, and remote IMVs are wrapped there.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from netaccess.policy.posture import (
    Recommendation,
    RemediationItem,
    ReportedAttribute,
    Verdict,
)
from netaccess.proto.tnc.errors import IETF_PEN, PaTncError
from netaccess.proto.tnc.pa import (
    InstalledPackages,
    PaAttribute,
    PaMessage,
    RawAttribute,
    SkippedAttribute,
    attribute_key,
    error_attribute_for,
    pull_pa_message,
    push_pa_message,
)
from netaccess.proto.tnc.pb import (
    ANY_VALIDATOR,
    AccessRecommendation,
    AssessmentResult,
    BatchType,
    PbAccessRecommendation,
    PbAssessmentResult,
    PbBatch,
    PbMessage,
    PbPa,
    PbReasonString,
    PbRemediationString,
    PbRemediationUri,
)


@dataclass(frozen=True, slots=True)
class PaDelivery:
    """A PA-TNC message from the IMC `collector_id` about component (vendor, subtype).
    `raw`: its bytes as received, with the attributes we have no codec for (a remote IMV
    may know them)."""

    vendor: int
    subtype: int
    collector_id: int
    message: PaMessage
    raw: bytes = b""


@dataclass(frozen=True, slots=True)
class PostureEndpoint:
    """Who is being assessed, as far as the appliance knows when the first batch comes."""

    ip: str | None = None
    mac: str | None = None
    user: str | None = None  # "name@realm" after SASL PLAIN


@dataclass(frozen=True, slots=True)
class PaReply:
    """Attributes an IMV sends back to the IMC that wrote `to`."""

    to: PaDelivery
    attributes: tuple[PaAttribute, ...]


@dataclass(frozen=True, slots=True)
class ImvEvaluation:
    """`to_agent`: attributes for our agent (the fixes with their actions, a newer build),
    sent in the RESULT batch to the NEA client component (RFC 5792 §4.1 subtype 8)."""

    verdict: Verdict
    recommendation: Recommendation
    reasons: tuple[str, ...] = ()
    remediation: tuple[RemediationItem, ...] = ()
    to_agent: tuple[PaAttribute, ...] = ()


COMPLIANT = ImvEvaluation(Verdict.COMPLIANT, Recommendation.ALLOWED)


class ImvSession(Protocol):
    """One IMV's state within one posture session. Async so that an IMV elsewhere (a
    remote IMV server, netaccess.io.remote_imv) fits the same shape; local ones just
    return."""

    async def receive(self, delivery: PaDelivery) -> Sequence[PaReply]:
        """Take a message; return what to send back (nothing: this IMV is satisfied)."""
        ...

    async def evaluate(self) -> ImvEvaluation | None:
        """The IMV's judgement once nobody asks for more; None if it had nothing to judge
        (no IMC of its component reported), so it does not weigh in."""
        ...

    async def close(self) -> None:
        """The session is over (also when it failed half-way)."""
        ...


class Imv(Protocol):
    name: str
    subscriptions: frozenset[tuple[int, int]]  # (vendor, subtype)

    def open(self, endpoint: PostureEndpoint) -> ImvSession: ...


_VERDICTS = {
    Verdict.COMPLIANT: AssessmentResult.COMPLIANT,
    Verdict.MINOR_NONCOMPLIANCE: AssessmentResult.MINOR_NON_COMPLIANCE,
    Verdict.MAJOR_NONCOMPLIANCE: AssessmentResult.MAJOR_NON_COMPLIANCE,
    Verdict.ERROR: AssessmentResult.ERROR,
    Verdict.DONT_KNOW: AssessmentResult.DONT_KNOW,
}
_RECOMMENDATIONS = {
    Recommendation.ALLOWED: AccessRecommendation.ALLOWED,
    Recommendation.QUARANTINED: AccessRecommendation.QUARANTINED,
    Recommendation.NO_ACCESS: AccessRecommendation.NO_ACCESS,
}
_VERDICT_ORDER = list(Verdict)  # worst first
_RECOMMENDATION_ORDER = list(Recommendation)  # most restrictive first
NEA_CLIENT = (IETF_PEN, 8)  # RFC 5792 §4.1: the NEA client (our agent) as a component
# A session that keeps asking (an IMV that never settles) ends after this many rounds.
MAX_ROUNDS = 8


def combine(evaluations: Sequence[ImvEvaluation]) -> ImvEvaluation:
    """The session's evaluation: the worst verdict and the most restrictive recommendation
    any IMV gave, with every reason and remediation item; compliant if none weighed in."""
    if not evaluations:
        return COMPLIANT
    verdict = min((e.verdict for e in evaluations), key=_VERDICT_ORDER.index)
    recommendation = min((e.recommendation for e in evaluations), key=_RECOMMENDATION_ORDER.index)
    return ImvEvaluation(
        verdict,
        recommendation,
        tuple(reason for e in evaluations for reason in e.reasons),
        tuple(item for e in evaluations for item in e.remediation),
        tuple(attribute for e in evaluations for attribute in e.to_agent),
    )


class PostureAssessment:
    """Routes one session's PA-TNC messages to the IMVs and writes the server's answers.

    `imvs` get validator ids 0, 1, ... in order (PB-PA's Posture Validator Identifier,
    RFC 5793 §4.5). Every attribute received is kept in `attributes` for the report.
    """

    def __init__(self, imvs: Sequence[Imv], endpoint: PostureEndpoint | None = None) -> None:
        endpoint = endpoint or PostureEndpoint()
        self._imvs = [
            (validator_id, imv, imv.open(endpoint)) for validator_id, imv in enumerate(imvs)
        ]
        self.attributes: list[ReportedAttribute] = []
        self.evaluation: ImvEvaluation | None = None
        self.rounds = 0
        self._next_message_id = 0
        self._agent_collector: int | None = None  # the IMC that sent the NEA client's message

    async def answer(self, batch: PbBatch) -> PbBatch:
        """The server's batch after the client's `batch` (CDATA or CRETRY): SDATA with the
        IMVs' questions, or RESULT when none has any (or after MAX_ROUNDS)."""
        self.rounds += 1
        replies: list[tuple[int, PaReply]] = []
        for message in batch.messages:
            if isinstance(message, PbPa):
                replies.extend(await self._deliver(message))
        if replies and self.rounds < MAX_ROUNDS:
            return PbBatch(BatchType.SDATA, tuple(self._pb_pa(i, r) for i, r in replies))
        return await self._result()

    async def close(self) -> None:
        for _, _, session in self._imvs:
            await session.close()

    async def _deliver(self, message: PbPa) -> list[tuple[int, PaReply]]:
        try:
            pa = pull_pa_message(message.body)
        except PaTncError as exc:  # RFC 5792 §4.2.8: tell the collector what was wrong
            refused = PaDelivery(
                message.vendor, message.subtype, message.collector_id, PaMessage(0)
            )
            return [(ANY_VALIDATOR, PaReply(refused, (error_attribute_for(exc),)))]
        delivery = PaDelivery(
            message.vendor, message.subtype, message.collector_id, pa, message.body
        )
        if (message.vendor, message.subtype) == NEA_CLIENT and self._agent_collector is None:
            self._agent_collector = message.collector_id
        for attribute in pa.attributes:
            self.attributes.append(reported(message.vendor, message.subtype, attribute))
        replies: list[tuple[int, PaReply]] = []
        for validator_id, imv, session in self._imvs:
            if (message.vendor, message.subtype) not in imv.subscriptions:
                continue
            if message.exclusive and message.validator_id not in (validator_id, ANY_VALIDATOR):
                continue
            replies.extend((validator_id, reply) for reply in await session.receive(delivery))
        return replies

    def _pb_pa(self, validator_id: int, reply: PaReply) -> PbPa:
        self._next_message_id += 1
        body = push_pa_message(PaMessage(self._next_message_id, reply.attributes))
        return PbPa(
            reply.to.vendor,
            reply.to.subtype,
            body,
            collector_id=reply.to.collector_id,
            validator_id=validator_id,
            exclusive=True,
        )

    async def _result(self) -> PbBatch:
        evaluations = []
        for _, _, session in self._imvs:
            evaluation = await session.evaluate()
            if evaluation is not None:
                evaluations.append(evaluation)
        evaluation = combine(evaluations)
        self.evaluation = evaluation
        messages: list[PbMessage] = [
            PbAssessmentResult(_VERDICTS[evaluation.verdict]),
            PbAccessRecommendation(_RECOMMENDATIONS[evaluation.recommendation]),
        ]
        if evaluation.reasons:
            messages.append(PbReasonString("; ".join(evaluation.reasons), "en"))
        for item in evaluation.remediation:
            if item.link:
                messages.append(PbRemediationUri(item.link))
            if item.text:
                messages.append(PbRemediationString(item.text, "en"))
        if evaluation.to_agent:
            self._next_message_id += 1
            messages.append(
                PbPa(
                    *NEA_CLIENT,
                    push_pa_message(PaMessage(self._next_message_id, evaluation.to_agent)),
                    # not exclusive: every collector of the component gets it (RFC 5793
                    # §4.5); the id names the one that reported, where one did
                    collector_id=self._agent_collector or 0,
                    validator_id=ANY_VALIDATOR,
                )
            )
        return PbBatch(BatchType.RESULT, tuple(messages))


def reported(vendor: int, subtype: int, attribute: PaAttribute) -> ReportedAttribute:
    """An attribute as the report keeps it: its class name and its fields as JSON data.
    Installed packages are [name, version] pairs (hundreds of them: the generic walk cost
    more than decoding them)."""
    if isinstance(attribute, InstalledPackages):
        fields: Any = {"packages": attribute.packages}  # (name, version) tuples: JSON pairs
    else:
        fields = _json_value(attribute)
        assert isinstance(fields, dict)
        fields.pop("noskip", None)
    key_vendor, key_type = _key_of(attribute)
    return ReportedAttribute(
        vendor, subtype, key_vendor, key_type, type(attribute).__name__, fields
    )


def _key_of(attribute: PaAttribute) -> tuple[int, int]:
    if isinstance(attribute, SkippedAttribute | RawAttribute):
        return attribute.vendor, attribute.type
    key = attribute_key(type(attribute))
    return key.vendor, key.type


def _json_value(value: object) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _json_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.name.lower()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_json_value(item) for item in value]
    return value
