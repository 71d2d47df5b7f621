"""netaccessd's side of the enforcer socket: requests with fds, and a queue that outlives outages.

If the enforcer is unreachable the network fails closed (the kernel keeps the last state, new
endpoints stay quarantined by the ruleset's default) and membership changes wait here; on
reconnect a full reconcile from the inventory makes the kernel right again.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import trio

from netaccess.enforce.intents import (
    MAX_LINE,
    Answer,
    Intent,
    IntentError,
    Membership,
    MembershipChange,
    Reconcile,
    SetMemberships,
    decode_answer,
    encode_intent,
)
from netaccess.io.fdpass import LineChannel

log = logging.getLogger("netaccess.enforcer-link")

REQUEST_TIMEOUT = 30.0
RECONNECT_DELAY = 0.5
BATCH_MAX = 10_000


class EnforcerUnavailable(Exception):
    pass


class EnforcerRefused(Exception):
    """The enforcer understood the intent and said no; the message says why."""


class EnforcerLink:
    def __init__(
        self,
        path: Path,
        desired_state: Callable[[], Sequence[Membership]],
        on_repairs: Callable[[dict[str, Any]], object],
        queue_limit: int,
    ) -> None:
        self.path = path
        self._desired_state = desired_state
        self._on_repairs = on_repairs
        self._queue_limit = queue_limit
        self._channel: LineChannel | None = None
        self._lock = trio.Lock()
        self._pending: list[MembershipChange] = []
        self._wakeup = trio.Event()
        self._needs_reconcile = True
        self.overflowed = 0
        self.sent_changes = 0

    @property
    def connected(self) -> bool:
        return self._channel is not None

    @property
    def queued(self) -> int:
        return len(self._pending)

    async def connect(self, *, patience: float | None = None) -> None:
        """Connect, retrying; with `patience`, give up after that many seconds."""
        with trio.move_on_after(patience if patience is not None else float("inf")) as scope:
            attempt = 0
            while True:
                try:
                    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    await sock.connect(str(self.path))
                except OSError as exc:
                    sock.close()
                    if attempt % 20 == 0:
                        log.warning(
                            "enforcer unreachable; retrying",
                            extra={"socket": str(self.path), "error": str(exc)},
                        )
                    attempt += 1
                    await trio.sleep(RECONNECT_DELAY)
                    continue
                self._channel = LineChannel(sock, MAX_LINE)
                log.info("connected to the enforcer", extra={"socket": str(self.path)})
                return
        if scope.cancelled_caught:
            raise EnforcerUnavailable(f"enforcer at {self.path} unreachable for {patience:g} s")

    async def request(self, intent: Intent) -> tuple[Answer, list[int]]:
        async with self._lock:
            channel = self._channel
            if channel is None:
                raise EnforcerUnavailable(f"not connected to the enforcer at {self.path}")
            try:
                with trio.fail_after(REQUEST_TIMEOUT):
                    await channel.send(encode_intent(intent))
                    received = await channel.receive_line()
                if received is None:
                    raise EnforcerUnavailable("the enforcer closed the connection")
                line, fds = received
                answer = decode_answer(line)
            except (
                OSError,
                trio.TooSlowError,
                IntentError,
                ValueError,
                EnforcerUnavailable,
            ) as exc:
                self._disconnect()
                raise EnforcerUnavailable(f"enforcer request failed: {exc}") from None
        if not answer.ok:
            for fd in fds:
                socket.close(fd)
            raise EnforcerRefused(answer.error)
        return answer, fds

    async def request_one_fd(self, intent: Intent) -> socket.socket:
        _answer, fds = await self.request(intent)
        if len(fds) != 1:
            for fd in fds:
                socket.close(fd)
            raise EnforcerRefused(
                f"expected one descriptor for {type(intent).__name__}, got {len(fds)}"
            )
        return socket.socket(fileno=fds[0])

    def submit(self, change: MembershipChange) -> None:
        if len(self._pending) >= self._queue_limit:
            # Dropping is safe: the reconcile that follows rebuilds the whole state.
            self._pending.clear()
            self.overflowed += 1
            self._needs_reconcile = True
            log.error("enforcer intent queue overflowed; a full reconcile will follow")
        self._pending.append(change)
        self._wakeup.set()

    def request_reconcile(self) -> None:
        self._needs_reconcile = True
        self._wakeup.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Send queued changes in batches, reconnecting and reconciling after any outage."""
        task_status.started()
        while True:
            if not self._pending and not self._needs_reconcile:
                await self._wakeup.wait()
            self._wakeup = trio.Event()
            if self._channel is None:
                await self.connect()
                self._needs_reconcile = True
            try:
                if self._needs_reconcile:
                    # The desired state already holds every queued change.
                    self._pending.clear()
                    await self.reconcile()
                    self._needs_reconcile = False
                while self._pending:
                    batch = self._pending[:BATCH_MAX]
                    await self.request(SetMemberships(tuple(batch)))
                    del self._pending[: len(batch)]
                    self.sent_changes += len(batch)
            except EnforcerUnavailable as exc:
                log.warning(
                    "enforcer link lost; will reconnect",
                    extra={"error": str(exc), "queued": len(self._pending)},
                )
                self._needs_reconcile = True
                await trio.sleep(RECONNECT_DELAY)
            except EnforcerRefused as exc:
                log.error(
                    "enforcer refused a batch; reconciling instead", extra={"error": str(exc)}
                )
                self._pending.clear()
                self._needs_reconcile = True
                await trio.sleep(RECONNECT_DELAY)

    async def reconcile(self) -> dict[str, Any]:
        answer, _fds = await self.request(Reconcile(tuple(self._desired_state())))
        self._on_repairs(answer.result)
        return answer.result

    def _disconnect(self) -> None:
        if self._channel is not None:
            self._channel.close_fds()
            self._channel.sock.close()
            self._channel = None
