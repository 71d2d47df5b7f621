"""An endpoint's standing after sign-in, and how Host Checker judges it again (DESIGN.md §4).

Sign-in records whose endpoint it is (realm, user, groups), so the role can be decided again
without the user: every `recheck_interval` of its role, whenever it reports posture, and
whenever a new patch feed arrives. Each judging evaluates the policies of the endpoint's
platform over its latest usable posture report and lets admission.decide() pick the role.

A realm's `reuse_result_for` lease bounds how long a collected report may stand for the
endpoint: within the lease a periodic re-check keeps the last result without judging again
(unless a newer report, a change event, has arrived); past it the report no longer counts,
so the endpoint's policies are unknown until the agent reports again. Without a lease the
latest report always counts and every re-check judges it again (time-dependent rules such
as signature age and patch grace periods move on their own).

Pure: time, reports and the feed come in; the io layer stores and applies the result.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from netaccess.policy.admission import Decision, Outcome, RoleAdmission, decide
from netaccess.policy.expression import Truth
from netaccess.policy.hostchecker import (
    AgentAction,
    Compliance,
    PatchCatalog,
    Platform,
    Policy,
    PostureFacts,
    Remediation,
    evaluate,
)
from netaccess.policy.roles import QUARANTINE, Realm, Role


class Trigger(enum.Enum):
    """Why an endpoint was judged."""

    SIGN_IN = "sign-in"
    REPORT = "posture report"
    FEED = "patch feed"
    RECHECK = "re-check"


@dataclass(frozen=True, slots=True)
class FailedRule:
    policy: str
    rule: str
    outcome: str  # "fail" or "unknown"


@dataclass(frozen=True, slots=True)
class Standing:
    """Who signed an endpoint in, and what Host Checker last decided for it."""

    mac: str
    realm: str
    user: str
    groups: frozenset[str]
    platform_hint: Platform | None  # from the browser at sign-in; a report's platform wins
    signed_in_at: float
    judged_at: float
    collected_at: float | None  # when the report judged was collected; None: no report
    trigger: Trigger
    outcome: Outcome
    role: str | None  # what the decision gave (None: denied)
    message: str = ""
    remediation: tuple[tuple[str, str, Remediation], ...] = ()  # (policy, rule, fix)
    failed: tuple[FailedRule, ...] = ()

    @property
    def enforced_role(self) -> str:
        """The role the endpoint holds because of this standing: a denial quarantines."""
        return self.role if self.role is not None else QUARANTINE


STALE_RULE = ("posture", "report")
STALE_FIX = Remediation(
    "Run the netaccess agent so that it reports this device's posture again.",
    "/agent",
    None,
)


def judge(
    realm: Realm,
    roles: Sequence[Role],
    policies: Sequence[Policy],
    facts: PostureFacts | None,
    feed: PatchCatalog | None,
    now: datetime,
    *,
    user: str,
    groups: frozenset[str] = frozenset(),
    platform_hint: Platform | None = None,
) -> Decision:
    """The role decision for an endpoint whose usable posture is `facts` (None: none). The
    platform is the report's, else the hint (the browser's at sign-in)."""
    platform = facts.platform if facts is not None and facts.platform is not None else None
    platform = platform or platform_hint
    verdicts = (
        {
            policy.name: evaluate(policy, facts, feed, now)
            for policy in policies
            if policy.platform is platform
        }
        if facts is not None
        else {}
    )
    return decide(
        realm.admission(),
        {role.name: RoleAdmission(role.name, role.policies) for role in roles},
        {policy.name: policy for policy in policies},
        verdicts,
        user=user,
        groups=groups,
        platform=platform,
    )


def report_usable(collected_at: float | None, now: float, lease: float | None) -> bool:
    """Whether a report collected at `collected_at` may still stand for the endpoint."""
    return collected_at is not None and (lease is None or now - collected_at <= lease)


def keeps_result(
    standing: Standing, latest_collected_at: float | None, now: float, lease: float | None
) -> bool:
    """Whether a periodic re-check may keep `standing` as it is: a lease is set, no newer
    report (a change event) has come since the one judged, and that one is within the lease."""
    return (
        lease is not None
        and standing.collected_at is not None
        and latest_collected_at == standing.collected_at
        and now - standing.collected_at <= lease
    )


def standing_after(
    previous: Standing | None,
    decision: Decision,
    *,
    mac: str,
    realm: Realm,
    user: str,
    groups: frozenset[str],
    platform_hint: Platform | None,
    now: float,
    collected_at: float | None,
    stale_since: float | None,
    trigger: Trigger,
) -> Standing:
    """The standing a judging leaves. `stale_since`: the collection time of a report that
    was past the lease and not used (it adds the "report again" fix)."""
    remediation = decision.remediation
    message = decision.message
    if stale_since is not None:
        remediation = ((*STALE_RULE, STALE_FIX), *remediation)
        note = "the last posture report is older than the realm's reuse_result_for"
        message = f"{note}; {message}" if message else note
    failed = tuple(
        FailedRule(verdict.policy, result.rule, result.outcome.value)
        for verdict in decision.verdicts
        if verdict.compliance is not Compliance.COMPLIANT
        for result in verdict.trace
        if result.outcome is not Truth.TRUE
    )
    return Standing(
        mac=mac,
        realm=realm.name,
        user=user,
        groups=groups,
        platform_hint=platform_hint,
        signed_in_at=previous.signed_in_at if previous is not None else now,
        judged_at=now,
        collected_at=collected_at,
        trigger=trigger,
        outcome=decision.outcome,
        role=decision.role,
        message=message,
        remediation=remediation,
        failed=failed,
    )


def change_reason(trigger: Trigger, standing: Standing) -> str:
    """The reason recorded with a role change, naming the rules that failed."""
    reason = f"Host Checker {trigger.value}: {standing.outcome.value}"
    if standing.failed:
        shown = ", ".join(f"{f.policy}/{f.rule} ({f.outcome})" for f in standing.failed[:8])
        more = len(standing.failed) - 8
        reason += f"; failed {shown}" + (f" and {more} more" if more > 0 else "")
    elif standing.message:
        reason += f" ({standing.message})"
    return reason


def next_check(standing: Standing, roles: Sequence[Role]) -> float | None:
    """When the endpoint's role wants it judged again (None: its role has no interval)."""
    role = next((r for r in roles if r.name == standing.enforced_role), None)
    if role is None or role.recheck_interval is None:
        return None
    return standing.judged_at + role.recheck_interval


def remediation_from_json(items: object) -> tuple[tuple[str, str, Remediation], ...]:
    """Read back what remediation_to_json wrote (the store keeps it as JSON)."""
    out = []
    if isinstance(items, list):
        for item in items:
            if (
                isinstance(item, list)
                and len(item) == 5
                and all(isinstance(v, str) or v is None for v in item)
            ):
                policy, rule, instructions, link, action = item
                known = {a.value: a for a in AgentAction}
                out.append(
                    (
                        str(policy),
                        str(rule),
                        Remediation(
                            str(instructions or ""), str(link or ""), known.get(action or "")
                        ),
                    )
                )
    return tuple(out)


def remediation_to_json(items: tuple[tuple[str, str, Remediation], ...]) -> list[list[str | None]]:
    return [
        [policy, rule, fix.instructions, fix.link, fix.action.value if fix.action else None]
        for policy, rule, fix in items
    ]
