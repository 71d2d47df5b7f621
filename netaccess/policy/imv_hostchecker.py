"""The Host Checker IMV: turns a session's PA-TNC attributes into posture facts and judges
them by the configured policies of the endpoint's platform (netaccess.policy.hostchecker),
so every posture session ends in a verdict with its trace. The RESULT carries the failed
rules (what was seen, what is required) as reasons and their remediation.

Which of those policies decide the endpoint's role (realm and role level, admission.py) is
the sign-in's business; here every policy for the platform weighs in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from netaccess.policy.expression import Truth
from netaccess.policy.hostchecker import (
    Compliance,
    HostCheckerVerdict,
    PatchCatalog,
    Policy,
    evaluate,
    facts_from_report,
)
from netaccess.policy.imv import ImvEvaluation, PaDelivery, PaReply, PostureEndpoint, reported
from netaccess.policy.posture import (
    Recommendation,
    RemediationItem,
    ReportedAttribute,
    Verdict,
)
from netaccess.proto.tnc.errors import IETF_PEN
from netaccess.proto.tnc.vendor import Remediation as AgentRemediation
from netaccess.proto.tnc.vendor import RemediationStep

# The IETF component types (RFC 5792 §4.1): OS, anti-virus, anti-spyware, anti-malware,
# firewall, IDPS, VPN, NEA client. Our vendor attributes travel under them too, and our
# agent's patch management under subtype 0 (no PA subtype exists for it; strongSwan's
# choice), which the verdict needs as much as the others.
COMPONENTS = frozenset((IETF_PEN, subtype) for subtype in range(0, 9))


class HostCheckerImv:
    name = "host-checker"
    subscriptions = COMPONENTS

    def __init__(
        self,
        policies: Sequence[Policy],
        feed: Callable[[], PatchCatalog | None],
        now: Callable[[], datetime],
    ) -> None:
        self.policies = tuple(policies)
        self._feed = feed
        self._now = now

    def open(self, endpoint: PostureEndpoint) -> HostCheckerSession:
        return HostCheckerSession(self)


class HostCheckerSession:
    def __init__(self, imv: HostCheckerImv) -> None:
        self._imv = imv
        self.attributes: list[ReportedAttribute] = []
        self.verdicts: tuple[HostCheckerVerdict, ...] = ()

    async def receive(self, delivery: PaDelivery) -> Sequence[PaReply]:
        for attribute in delivery.message.attributes:
            self.attributes.append(reported(delivery.vendor, delivery.subtype, attribute))
        return []

    async def evaluate(self) -> ImvEvaluation | None:
        if not self.attributes or not self._imv.policies:
            return None
        facts = facts_from_report(self.attributes)
        mine = [p for p in self._imv.policies if p.platform is facts.platform]
        if not mine:
            return None  # no policy for this platform (or it is unknown): nothing to judge
        feed, now = self._imv._feed(), self._imv._now()
        self.verdicts = tuple(evaluate(policy, facts, feed, now) for policy in mine)
        # Our agent (it sends AgentInfo) also gets each fix with the action it may run;
        # other IMCs have the PB-TNC remediation strings and URIs.
        agent = any(a.name == "AgentInfo" for a in self.attributes)
        return summarize(self.verdicts, to_agent=agent)

    async def close(self) -> None:
        pass


def summarize(verdicts: Sequence[HostCheckerVerdict], *, to_agent: bool = False) -> ImvEvaluation:
    """Compliant when every policy is; non-compliant (major) when one fails; don't know
    when facts are missing. Reasons: each failed or unknown rule, seen against required.
    `to_agent`: the fixes also go as our Remediation attribute, each with its action."""
    reasons: list[str] = []
    remediation: list[RemediationItem] = []
    steps: list[RemediationStep] = []
    for judged in verdicts:
        if judged.compliance is Compliance.COMPLIANT:
            continue
        for result in judged.trace:
            if result.outcome is not Truth.TRUE:
                state = "unknown" if result.outcome is Truth.UNKNOWN else "failed"
                reasons.append(
                    f"{judged.policy}/{result.rule} {state}: {result.seen}"
                    f" (required: {result.required})"
                )
        for rule, fix in judged.remediation:
            remediation.append(RemediationItem(fix.instructions, fix.link))
            action = fix.action.value if fix.action is not None else ""
            steps.append(RemediationStep(action, judged.policy, rule, fix.instructions, fix.link))
    compliances = {v.compliance for v in verdicts}
    if Compliance.NON_COMPLIANT in compliances:
        overall, recommendation = Verdict.MAJOR_NONCOMPLIANCE, Recommendation.QUARANTINED
    elif Compliance.UNKNOWN in compliances:
        overall, recommendation = Verdict.DONT_KNOW, Recommendation.QUARANTINED
    else:
        overall, recommendation = Verdict.COMPLIANT, Recommendation.ALLOWED
    return ImvEvaluation(
        overall,
        recommendation,
        tuple(reasons),
        tuple(remediation),
        (AgentRemediation(tuple(steps)),) if to_agent and steps else (),
    )
