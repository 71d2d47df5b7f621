"""The live endpoint inventory: folds Observations in memory and persists them in batches."""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import trio

from netaccess.enforce.intents import Membership, MembershipChange
from netaccess.policy.endpoint import (
    Endpoint,
    EndpointEvent,
    EventKind,
    assign_role,
    learn,
    proves_presence,
    without_ip,
)
from netaccess.proto.detect import Observation
from netaccess.store import Store, StoreError

log = logging.getLogger("netaccess.inventory")

WRITE_GATHER = 0.02  # s
STORE_RETRY_DELAY = 1.0


class Inventory:
    """In-memory truth for the daemon; the store is written behind it, one batch at a time.

    Observations are applied synchronously (cheap, pure); writes are coalesced per MAC while a
    previous batch is in flight, so a flood of frames costs one transaction, not one per frame.
    """

    def __init__(
        self,
        store: Store,
        known: Iterable[Endpoint],
        own_macs: Iterable[str] = (),
        *,
        max_endpoints: int = 100_000,
        refusal_log_interval: float = 10.0,
        on_membership: Callable[[MembershipChange], None] | None = None,
    ) -> None:
        self._store = store
        self._on_membership = on_membership
        self._max_endpoints = max_endpoints
        self._refusal_log_interval = refusal_log_interval
        self._next_refusal_log = 0.0
        self.refused = 0
        self._endpoints: dict[str, Endpoint] = {ep.mac: ep for ep in known}
        self._ip_owner = {ip: ep.mac for ep in self._endpoints.values() for ip in ep.ips}
        # Rows loaded from the store were persisted with their last_seen.
        self._persisted_at = {mac: ep.last_seen for mac, ep in self._endpoints.items()}
        self._own_macs = set(own_macs)
        self._pending: dict[str, tuple[Endpoint, list[EndpointEvent]]] = {}
        self._wakeup = trio.Event()
        self._writer = trio.CapacityLimiter(1)
        self._role_listeners: list[Callable[[str, str, str], None]] = []

    def __len__(self) -> int:
        return len(self._endpoints)

    def add_own_macs(self, macs: Iterable[str]) -> None:
        self._own_macs.update(macs)

    def endpoints(self) -> list[Endpoint]:
        return sorted(self._endpoints.values(), key=lambda ep: ep.first_seen)

    def get(self, mac: str) -> Endpoint | None:
        return self._endpoints.get(mac)

    def by_ip(self, ip: str) -> Endpoint | None:
        """The endpoint that holds `ip` (as the store spells it), if any."""
        mac = self._ip_owner.get(ip)
        return None if mac is None else self._endpoints.get(mac)

    def mac_at(self, ip: str) -> str | None:
        """The MAC of the endpoint that holds `ip`, if any."""
        return self._ip_owner.get(ip)

    @property
    def pending_writes(self) -> int:
        return len(self._pending)

    def observe(self, observations: Sequence[Observation]) -> None:
        for obs in observations:
            if obs.mac in self._own_macs:
                continue
            self._observe_one(obs)

    def _observe_one(self, obs: Observation) -> None:
        current = self._endpoints.get(obs.mac)
        if current is None:
            if not proves_presence(obs):
                return
            if len(self._endpoints) >= self._max_endpoints:
                self._refuse(obs)
                return
        learned = learn(current, obs, self._persisted_at.get(obs.mac))
        ep = learned.endpoint
        events = list(learned.events)
        if obs.ip is not None and not obs.is_release:
            previous_owner = self._ip_owner.get(obs.ip)
            if previous_owner is not None and previous_owner != obs.mac:
                moved, event = without_ip(self._endpoints[previous_owner], obs.ip, obs.at)
                self._replace(moved, [event], persist=True)
            self._ip_owner[obs.ip] = obs.mac
        if obs.is_release and obs.ip is not None and self._ip_owner.get(obs.ip) == obs.mac:
            del self._ip_owner[obs.ip]
        self._replace(ep, events, persist=learned.persist)

    def _refuse(self, obs: Observation) -> None:
        self.refused += 1
        now = time.monotonic()
        if now >= self._next_refusal_log:
            self._next_refusal_log = now + self._refusal_log_interval
            log.warning(
                "inventory full: new endpoint not learned",
                extra={
                    "mac": obs.mac,
                    "max_endpoints": self._max_endpoints,
                    "refused_total": self.refused,
                },
            )

    def set_role(self, mac: str, role: str, *, at: float, reason: str, by: str) -> Endpoint | None:
        """Assign `role` (which the caller checked exists) to a known endpoint; None if unknown."""
        current = self._endpoints.get(mac)
        if current is None:
            return None
        learned = assign_role(current, role, at=at, reason=reason, by=by)
        self._replace(learned.endpoint, list(learned.events), persist=learned.persist)
        return learned.endpoint

    def set_membership_listener(self, listener: Callable[[MembershipChange], None]) -> None:
        self._on_membership = listener

    def add_role_listener(self, listener: Callable[[str, str, str], None]) -> None:
        """`listener(mac, old_role, new_role)` after each role change of a known endpoint
        (RADIUS pushes it to the switch that holds the endpoint's session)."""
        self._role_listeners.append(listener)

    def desired_memberships(self) -> list[Membership]:
        return [membership_of(ep) for ep in self._endpoints.values()]

    def record_repairs(self, repairs: dict[str, Any], at: float) -> int:
        """Log what reconciliation put right, as events on the endpoints it concerned."""
        by_element = {ep.mac: ep for ep in self._endpoints.values()}
        by_element.update({ip: ep for ep in self._endpoints.values() for ip in ep.ips})
        count = 0
        for action in ("restored", "removed"):
            for role, elements in repairs.get(action, {}).items():
                for element in elements:
                    count += 1
                    owner = by_element.get(element)
                    detail = {"action": action, "role": role, "element": element}
                    log.warning(
                        "enforcement repaired", extra={"mac": owner.mac if owner else "", **detail}
                    )
                    if owner is not None:
                        event = EndpointEvent(at, owner.mac, EventKind.ENFORCEMENT_REPAIRED, detail)
                        self._queue_write(owner, [event])
        return count

    def record(self, event: EndpointEvent) -> bool:
        """Keep `event` in a known endpoint's history without changing the endpoint (what a
        NAS answered to a CoA, say); False, and nothing kept, when the MAC is unknown."""
        endpoint = self._endpoints.get(event.mac)
        if endpoint is None:
            return False
        self._queue_write(endpoint, [event])
        return True

    def _replace(self, ep: Endpoint, events: list[EndpointEvent], *, persist: bool) -> None:
        previous = self._endpoints.get(ep.mac)
        if self._on_membership is not None and (
            previous is None or (previous.role, previous.ips) != (ep.role, ep.ips)
        ):
            self._on_membership(
                MembershipChange(
                    None if previous is None else membership_of(previous), membership_of(ep)
                )
            )
        self._endpoints[ep.mac] = ep
        if previous is not None and previous.role != ep.role:
            for listener in self._role_listeners:
                listener(ep.mac, previous.role, ep.role)
        for event in events:
            log.info(
                "endpoint " + event.kind.value,
                extra={"mac": ep.mac, "event": event.kind.value, **event.detail},
            )
        if persist:
            self._queue_write(ep, events)

    def _queue_write(self, ep: Endpoint, events: list[EndpointEvent]) -> None:
        previous = self._pending.get(ep.mac)
        self._pending[ep.mac] = (ep, (previous[1] if previous else []) + events)
        self._persisted_at[ep.mac] = ep.last_seen
        self._wakeup.set()

    async def run_writer(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        while True:
            await self._wakeup.wait()
            # Let a burst (a DHCP or MAB storm) gather into one transaction, not one each.
            await trio.sleep(WRITE_GATHER)
            self._wakeup = trio.Event()
            if not await self.flush():
                await trio.sleep(STORE_RETRY_DELAY)

    async def flush(self) -> bool:
        """Write everything pending; on failure keep it for the next try and return False."""
        async with self._writer:
            if not self._pending:
                return True
            batch, self._pending = self._pending, {}
            try:
                await trio.to_thread.run_sync(self._store.save, list(batch.values()))
            except StoreError as exc:
                log.error("store write failed; will retry", extra={"error": str(exc)})
                for mac, (ep, events) in batch.items():
                    newer = self._pending.get(mac)
                    self._pending[mac] = (newer[0], events + newer[1]) if newer else (ep, events)
                self._wakeup.set()
                return False
            return True


def membership_of(ep: Endpoint) -> Membership:
    ipv4 = tuple(ip for ip in ep.ips if ipaddress.ip_address(ip).version == 4)
    ipv6 = tuple(ip for ip in ep.ips if ipaddress.ip_address(ip).version == 6)
    return Membership(ep.role, ep.mac, ipv4, ipv6)
