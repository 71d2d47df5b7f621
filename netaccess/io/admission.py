"""Admission in the daemon: sign-in decides an endpoint's role, and Host Checker keeps
deciding it afterwards (netaccess.policy.standing).

The keeper holds each signed-in endpoint's standing in memory, writes it behind to the
store, and judges it again:
- at once when the endpoint reports posture (a change event from its agent);
- when a new patch feed is in force (every signed-in endpoint, in slices, off the loop);
- every `recheck_interval` of its current role.
A judging that changes the role goes to the inventory (and from there to the enforcer) as a
role change whose reason names the trigger and the failed rules. An administrator's
`endpoints set-role` ends the standing: the endpoint is no longer Host Checker's to move.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

import trio

from netaccess.config import ApplianceConfig
from netaccess.io.inventory import Inventory
from netaccess.policy.admission import REMEDIATION_ROLE, Decision, Outcome
from netaccess.policy.endpoint import LAYER2_ONLY_INSTRUCTIONS
from netaccess.policy.feed import PatchFeed
from netaccess.policy.hostchecker import PatchCatalog, Platform, facts_from_report
from netaccess.policy.posture import PostureReport
from netaccess.policy.roles import Realm
from netaccess.policy.standing import (
    Standing,
    Trigger,
    change_reason,
    judge,
    keeps_result,
    next_check,
    report_usable,
    standing_after,
)
from netaccess.store import Store, StoreError

log = logging.getLogger("netaccess.admission")

SLICE = 64  # endpoints judged per trip to a worker thread
# What an endpoint signed in over 802.1X without a posture report is told: the words of
# the Layer-2-only case detection holds endpoints in.
LAYER2_INSTRUCTIONS = LAYER2_ONLY_INSTRUCTIONS


class AdmissionKeeper:
    def __init__(
        self,
        config: ApplianceConfig,
        store: Store,
        inventory: Inventory,
        feed: Callable[[], PatchCatalog | None],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._store = store
        self._inventory = inventory
        self._feed = feed
        self._clock = clock
        self._standings: dict[str, Standing] = {}
        self._due: list[tuple[float, str]] = []  # (when, mac); stale entries are skipped
        self._feed_changed = False
        self._wake = trio.Event()
        self.judged = 0
        self.role_changes = 0

    # -- reading

    def standing(self, mac: str) -> Standing | None:
        return self._standings.get(mac)

    def __len__(self) -> int:
        return len(self._standings)

    def load(self) -> None:
        """The standings kept by the last run; those whose realm is gone are dropped."""
        realms = {realm.name for realm in self._config.realms}
        for standing in self._store.load_standings():
            if standing.realm in realms:
                self._standings[standing.mac] = standing
                self._schedule(standing)

    # -- triggers

    def sign_in(
        self, mac: str, realm: Realm, user: str, platform_hint: Platform | None
    ) -> Decision:
        """Decide at portal sign-in, over the endpoint's latest usable report. A denial leaves
        the endpoint (and any standing it had) as it was; anything else becomes its standing
        and its role."""
        groups = self._store.user_groups(realm.name, user)
        now = self._clock()
        report = self._store.latest_posture_report(mac)
        return self._signed_in(
            mac, realm, user, groups, platform_hint, report, now, "portal sign-in", "portal"
        )

    def _signed_in(
        self,
        mac: str,
        realm: Realm,
        user: str,
        groups: frozenset[str],
        platform_hint: Platform | None,
        report: PostureReport | None,
        now: float,
        how: str,
        by: str,
    ) -> Decision:
        """A sign-in decided: unless denied, it becomes the endpoint's standing and role."""
        decision, standing = self._judged(
            None, mac, realm, user, groups, platform_hint, report, now, Trigger.SIGN_IN
        )
        if decision.outcome is Outcome.DENIED or decision.role is None:
            return decision
        self._standings[mac] = standing
        self._save([standing])
        self._schedule(standing)
        who = f"{realm.name}/{user}"
        self._inventory.set_role(
            mac,
            decision.role,
            at=now,
            reason=f"{how} by {who}; " + change_reason(Trigger.SIGN_IN, standing),
            by=f"{by}:{who}",
        )
        return decision

    def sign_in_layer2(
        self,
        mac: str,
        realm: Realm,
        user: str,
        *,
        on_loop: Callable[[Callable[[], Any]], Any] | None = None,
        post: Callable[[Callable[[], Any]], Any] | None = None,
    ) -> Decision:
        """Decide at an 802.1X sign-in. The endpoint reaches us over Layer 2 only, so it
        cannot fetch the agent (DESIGN.md §4): with a usable posture report for it (its agent
        reported earlier, over Layer 3) this is sign_in; without one it gets the remediation
        role with LAYER2_INSTRUCTIONS, and no standing (there is no report to judge again).

        Called on the event loop; or from another thread (the RADIUS server's) with
        `on_loop`, which runs a callable on the loop and returns its result: the store is read
        on the calling thread and only what changes state goes to the loop, so the common
        re-authentication of an endpoint already in remediation never waits for it. `post`
        runs a callable on the loop without waiting (default: `on_loop`): the move to
        remediation, whose outcome the decision does not need, goes that way, so a first
        sign-in does not wait either."""
        run: Callable[[Callable[[], Any]], Any] = on_loop or (lambda work: work())
        soon = post or run
        now = self._clock()
        report = self._store.latest_posture_report(mac)
        who = f"{realm.name}/{user}"
        if report is None or not report_usable(report.finished_at, now, realm.reuse_result_for):
            endpoint = self._inventory.get(mac)
            if endpoint is None or endpoint.role != REMEDIATION_ROLE:
                soon(
                    partial(
                        self._inventory.set_role,
                        mac,
                        REMEDIATION_ROLE,
                        at=now,
                        reason=f"802.1X sign-in by {who} over Layer 2 only: no posture report "
                        "to judge",
                        by=f"802.1x:{who}",
                    )
                )
            return Decision(
                Outcome.REMEDIATION,
                REMEDIATION_ROLE,
                (REMEDIATION_ROLE,),
                message=LAYER2_INSTRUCTIONS,
            )
        groups = self._store.user_groups(realm.name, user)
        # standings and roles are the loop's
        decision: Decision = run(
            partial(
                self._signed_in,
                mac,
                realm,
                user,
                groups,
                None,
                report,
                now,
                "802.1X sign-in",
                "802.1x",
            )
        )
        return decision

    def on_report(self, report: PostureReport) -> None:
        """A posture session finished: judge its endpoint at once, if it is signed in."""
        if report.mac is None or report.mac not in self._standings:
            return
        previous = self._standings[report.mac]
        realm = self._config.realm(previous.realm)
        if realm is None:
            return
        _, standing = self._judged(
            previous,
            report.mac,
            realm,
            previous.user,
            previous.groups,
            previous.platform_hint,
            report,
            self._clock(),
            Trigger.REPORT,
        )
        self._apply([(previous, standing)], Trigger.REPORT)

    def on_new_feed(self, _feed: PatchFeed) -> None:
        """A new patch feed is in force: every signed-in endpoint is judged again."""
        self._feed_changed = True
        self._wake.set()

    def forget(self, mac: str) -> bool:
        """The endpoint leaves Host Checker's hands (an administrator set its role)."""
        if self._standings.pop(mac, None) is None:
            return False
        try:
            self._store.delete_standing(mac)
        except StoreError:
            log.exception("admission not forgotten in the store", extra={"mac": mac})
        return True

    # -- the re-check task

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            if self._feed_changed:
                self._feed_changed = False
                await self._rejudge(list(self._standings), Trigger.FEED)
            now = self._clock()
            due = []
            while self._due and self._due[0][0] <= now:
                when, mac = heapq.heappop(self._due)
                standing = self._standings.get(mac)
                if standing is not None and next_check(standing, self._config.roles) == when:
                    due.append(mac)
            if due:
                await self._rejudge(due, Trigger.RECHECK)
                continue
            self._wake = trio.Event()
            wait = self._due[0][0] - self._clock() if self._due else float("inf")
            with trio.move_on_after(max(wait, 0.0)):
                await self._wake.wait()

    async def _rejudge(self, macs: list[str], trigger: Trigger) -> None:
        """Judge these endpoints again over their latest reports, a slice at a time in a
        worker thread (reading a report and judging it is CPU work), and apply the changes."""
        for start in range(0, len(macs), SLICE):
            picked = [
                (mac, standing)
                for mac in macs[start : start + SLICE]
                if (standing := self._standings.get(mac)) is not None
            ]
            results = await trio.to_thread.run_sync(self._judge_slice, picked, trigger)
            # A standing that moved meanwhile (a report, a sign-in) is newer than our result.
            self._apply(
                [(prev, new) for prev, new in results if self._standings.get(prev.mac) is prev],
                trigger,
            )

    def _judge_slice(
        self, picked: list[tuple[str, Standing]], trigger: Trigger
    ) -> list[tuple[Standing, Standing]]:
        out = []
        for mac, previous in picked:
            realm = self._config.realm(previous.realm)
            if realm is None:
                continue
            now = self._clock()
            report = self._store.latest_posture_report(mac)
            latest = report.finished_at if report is not None else None
            if latest is not None and latest < (previous.collected_at or 0.0):
                # The standing was judged on a report the store has not written yet
                # (reports are written in batches): judging an older one would undo it.
                out.append((previous, _rescheduled(previous, now)))
                continue
            if trigger is Trigger.RECHECK and keeps_result(
                previous, latest, now, realm.reuse_result_for
            ):
                # Within the lease and nothing new: the result stands; next re-check later.
                out.append((previous, _rescheduled(previous, now)))
                continue
            _, standing = self._judged(
                previous,
                mac,
                realm,
                previous.user,
                previous.groups,
                previous.platform_hint,
                report,
                now,
                trigger,
            )
            out.append((previous, standing))
        return out

    # -- judging and applying

    def _judged(
        self,
        previous: Standing | None,
        mac: str,
        realm: Realm,
        user: str,
        groups: frozenset[str],
        platform_hint: Platform | None,
        report: PostureReport | None,
        now: float,
        trigger: Trigger,
    ) -> tuple[Decision, Standing]:
        collected = report.finished_at if report is not None else None
        usable = report is not None and report_usable(collected, now, realm.reuse_result_for)
        facts = facts_from_report(report.attributes) if usable and report is not None else None
        config = self._config
        decision = judge(
            realm,
            config.roles,
            config.policies,
            facts,
            self._feed(),
            datetime.fromtimestamp(now, UTC),
            user=user,
            groups=groups,
            platform_hint=platform_hint,
        )
        self.judged += 1
        standing = standing_after(
            previous,
            decision,
            mac=mac,
            realm=realm,
            user=user,
            groups=groups,
            platform_hint=platform_hint,
            now=now,
            collected_at=collected if usable else None,
            stale_since=collected if report is not None and not usable else None,
            trigger=trigger,
        )
        return decision, standing

    def _apply(self, changes: Iterable[tuple[Standing, Standing]], trigger: Trigger) -> None:
        saved = []
        for previous, standing in changes:
            self._standings[standing.mac] = standing
            saved.append(standing)
            self._schedule(standing)
            if standing.enforced_role != previous.enforced_role:
                self.role_changes += 1
                self._inventory.set_role(
                    standing.mac,
                    standing.enforced_role,
                    at=standing.judged_at,
                    reason=change_reason(trigger, standing),
                    by="host-checker",
                )
                log.info(
                    "role changed by Host Checker",
                    extra={
                        "mac": standing.mac,
                        "trigger": trigger.value,
                        "from": previous.enforced_role,
                        "to": standing.enforced_role,
                        "outcome": standing.outcome.value,
                        "failed": [f"{f.policy}/{f.rule}" for f in standing.failed],
                    },
                )
        self._save(saved)

    def _schedule(self, standing: Standing) -> None:
        when = next_check(standing, self._config.roles)
        if len(self._due) > 4 * len(self._standings) + 64:
            # Entries left behind by earlier judgings: keep only each standing's next one.
            roles = self._config.roles
            self._due = [
                (at, mac)
                for mac, kept in self._standings.items()
                if (at := next_check(kept, roles)) is not None and mac != standing.mac
            ]
            heapq.heapify(self._due)
        if when is not None:
            heapq.heappush(self._due, (when, standing.mac))
            if self._due[0] == (when, standing.mac):
                self._wake.set()

    def _save(self, standings: list[Standing]) -> None:
        try:
            self._store.save_standings(standings)
        except StoreError:
            log.exception("admissions not stored", extra={"count": len(standings)})


def _rescheduled(standing: Standing, now: float) -> Standing:
    """The same result, counted as judged now (so the next re-check is an interval away)."""
    return replace(standing, judged_at=now)
