"""The PT-TLS posture server (RFC 6876) on trio: TLS, then PT-TLS (version, SASL), then
PB-TNC batches whose PA-TNC messages go to the IMVs; every finished session is kept as a
posture report. Limits: a deadline per session and per message wait, caps on messages and
bytes per session, and on sessions at once (over it, connections wait in the backlog).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import trio

from netaccess.config.model import PostureAuthentication, PostureConfig
from netaccess.io.http_server import TlsListener
from netaccess.policy.credentials import CredentialError, hash_password, verify_password
from netaccess.policy.imv import Imv, PostureAssessment, PostureEndpoint
from netaccess.policy.posture import PostureReport
from netaccess.proto.tnc.errors import PbTncError, PtTlsError
from netaccess.proto.tnc.pb import BatchType, PbRole, PbTncSession
from netaccess.proto.tnc.pt_tls import (
    AuthenticationDone,
    PbTncBatchReceived,
    PtTlsConnection,
    PtTlsErrorReceived,
    PtTlsRole,
    SaslMechanismSelected,
    SaslPlainCredentials,
    VersionRequested,
    Wait,
)
from netaccess.store import Store

log = logging.getLogger("netaccess.posture")

RECEIVE_SIZE = 64 * 1024
REPORT_BATCH = 256  # reports written per transaction at most
REPORT_DELAY = 0.1  # seconds a finished report may wait for others to share its write


class SessionRefused(Exception):
    """The session ends here; the message says why (logged)."""


@dataclass(slots=True)
class _Session:
    """One session's state beside its protocol machines. The IMVs are opened at the first
    batch, when the signed-in user (if any) is known."""

    ip: str
    user: str | None = None
    assessment: PostureAssessment | None = None
    messages: int = 0
    received: int = 0


class PostureServer:
    """Serves posture sessions on TLS listeners. `imvs()` gives the verifiers for each new
    session; `endpoint_mac(ip)` names the endpoint at an address, if known; `on_report`
    hears of every finished report at once (admission judges it), before it is stored."""

    def __init__(
        self,
        settings: PostureConfig,
        store: Store,
        imvs: Callable[[], Sequence[Imv]],
        endpoint_mac: Callable[[str], str | None],
        on_report: Callable[[PostureReport], None] = lambda report: None,
    ) -> None:
        self.settings = settings
        self._store = store
        self._imvs = imvs
        self._endpoint_mac = endpoint_mac
        self._on_report = on_report
        self._slots = trio.CapacityLimiter(settings.max_sessions)
        self._reports_in, self._reports_out = trio.open_memory_channel[PostureReport](
            settings.max_sessions * 4
        )
        self._decoy = hash_password(secrets.token_urlsafe(16))
        self.sessions = 0
        self.refused = 0
        self.reports_written = 0

    async def serve(
        self,
        listeners: Sequence[TlsListener],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._write_reports)
            for listener in listeners:
                nursery.start_soon(self._accept_loop, listener, nursery)
            task_status.started()

    async def _accept_loop(self, listener: TlsListener, nursery: trio.Nursery) -> None:
        while True:
            token = object()
            await self._slots.acquire_on_behalf_of(token)
            try:
                stream = await listener.accept()
            except BaseException:
                self._slots.release_on_behalf_of(token)
                raise
            nursery.start_soon(self._run_session, stream, token)

    async def _run_session(self, stream: trio.SSLStream[trio.SocketStream], token: object) -> None:
        try:
            ip = _peer_ip(stream)
            await self.serve_session(stream, ip)
        finally:
            self._slots.release_on_behalf_of(token)

    async def serve_session(self, stream: trio.abc.Stream, ip: str) -> None:
        """One PT-TLS session, start to end; closes `stream` in every case."""
        started = time.time()
        pt = PtTlsConnection(
            PtTlsRole.SERVER,
            max_message_size=self.settings.max_message_bytes,
            sasl_mechanisms=(
                ("PLAIN",) if self.settings.authentication is PostureAuthentication.PLAIN else ()
            ),
        )
        pb = PbTncSession(PbRole.SERVER, max_batch_size=self.settings.max_message_bytes)
        session = _Session(ip)
        why = "finished"
        self.sessions += 1
        try:
            with trio.move_on_after(self.settings.session_timeout) as whole:
                await self._converse(stream, pt, pb, session)
            if whole.cancelled_caught:
                why = f"no result within {self.settings.session_timeout:g} s"
        except SessionRefused as exc:
            why = str(exc)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            why = f"connection lost: {exc or type(exc).__name__}"
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                if session.assessment is not None:
                    await session.assessment.close()
                await trio.aclose_forcefully(stream)
        assessment, user = session.assessment, session.user
        evaluation = None if assessment is None else assessment.evaluation
        if assessment is None or evaluation is None:
            self.refused += 1
            log.info("posture session ended without a result", extra={"peer": ip, "why": why})
            return
        report = PostureReport(
            ip=ip,
            mac=self._endpoint_mac(ip),
            user=user,
            started_at=started,
            finished_at=time.time(),
            verdict=evaluation.verdict,
            recommendation=evaluation.recommendation,
            attributes=tuple(assessment.attributes),
            reasons=evaluation.reasons,
            remediation=evaluation.remediation,
        )
        log.info(
            "posture assessed",
            extra={
                "peer": ip,
                "mac": report.mac,
                "user": user,
                "verdict": report.verdict.value,
                "recommendation": report.recommendation.value,
                "reasons": list(report.reasons),
                "attributes": len(report.attributes),
            },
        )
        try:
            self._reports_in.send_nowait(report)
        except trio.WouldBlock:
            log.error("posture report dropped: the store is behind", extra={"peer": ip})
        try:
            self._on_report(report)
        except Exception:
            log.exception("posture report not judged", extra={"peer": ip, "mac": report.mac})

    async def _converse(
        self,
        stream: trio.abc.Stream,
        pt: PtTlsConnection,
        pb: PbTncSession,
        session: _Session,
    ) -> None:
        """Run the session until the client closes it (or we must)."""
        while True:
            try:
                event = pt.next_event()
            except PtTlsError as exc:
                await _send(stream, pt.send_error(exc))
                raise SessionRefused(f"PT-TLS error from the client: {exc}") from None
            if event is Wait.NEED_DATA:
                await self._receive(stream, pt, session)
                continue
            if event is Wait.CLOSED:
                return
            session.messages += 1
            if session.messages > self.settings.max_messages:
                raise SessionRefused(f"more than {self.settings.max_messages} messages")
            if isinstance(event, VersionRequested):
                await _send(stream, pt.send_version_response() + pt.send_sasl_mechanisms())
            elif isinstance(event, SaslPlainCredentials):
                session.user = await self._sign_in(stream, pt, event)
            elif isinstance(event, SaslMechanismSelected):  # PLAIN without its credentials
                raise SessionRefused(f"SASL {event.mechanism} without credentials")
            elif isinstance(event, PbTncBatchReceived):
                if await self._batch(stream, pt, pb, session, event.batch):
                    return
            elif isinstance(event, PtTlsErrorReceived):
                if event.fatal:
                    raise SessionRefused(f"the client sent PT-TLS error {event.code}")
            elif isinstance(event, AuthenticationDone):
                pass

    async def _receive(
        self, stream: trio.abc.Stream, pt: PtTlsConnection, session: _Session
    ) -> None:
        with trio.move_on_after(self.settings.message_timeout) as waiting:
            data = await stream.receive_some(RECEIVE_SIZE)
        if waiting.cancelled_caught:
            raise SessionRefused(f"the client was silent for {self.settings.message_timeout:g} s")
        session.received += len(data)
        if session.received > self.settings.max_session_bytes:
            raise SessionRefused(f"more than {self.settings.max_session_bytes} bytes")
        pt.receive_data(bytes(data))

    async def _sign_in(
        self, stream: trio.abc.Stream, pt: PtTlsConnection, credentials: SaslPlainCredentials
    ) -> str:
        name, _, realm = credentials.authcid.partition("@")
        realm = realm or self.settings.realm
        stored = self._store.password_hash(realm, name)
        try:
            ok = await trio.to_thread.run_sync(
                verify_password, credentials.password, stored or self._decoy
            )
        except CredentialError:
            ok = False
        if not ok or stored is None:
            await _send(stream, pt.reject_credentials())
            raise SessionRefused(f"SASL PLAIN refused for {name}@{realm}")
        await _send(stream, pt.accept_credentials())
        return f"{name}@{realm}"

    async def _batch(
        self,
        stream: trio.abc.Stream,
        pt: PtTlsConnection,
        pb: PbTncSession,
        session: _Session,
        data: bytes,
    ) -> bool:
        """Handle one PB-TNC batch; True once the session is over (CLOSE)."""
        try:
            batch = pb.receive(data)
        except PbTncError as exc:
            if exc.fatal:
                await _send(stream, pt.send_batch(pb.close_with_error(exc)))
                raise SessionRefused(f"PB-TNC error: {exc}") from None
            return False
        if batch.type is BatchType.CLOSE:
            return True
        if batch.type in (BatchType.CDATA, BatchType.CRETRY):
            if session.assessment is None:
                endpoint = PostureEndpoint(session.ip, self._endpoint_mac(session.ip), session.user)
                session.assessment = PostureAssessment(self._imvs(), endpoint)
            answer = await session.assessment.answer(batch)
            await _send(stream, pt.send_batch(pb.send(answer)))
        return False

    async def _write_reports(self) -> None:
        """Keep finished reports, a batch per transaction (at most REPORT_DELAY late)."""
        batch: list[PostureReport] = []
        try:
            async for report in self._reports_out:
                batch = [report]
                with trio.move_on_after(REPORT_DELAY):
                    while len(batch) < REPORT_BATCH:
                        batch.append(await self._reports_out.receive())
                kept, batch = batch, []
                self._keep(kept)
        finally:  # shutting down: the batch being gathered and what is queued are written
            queued = batch
            while True:
                try:
                    queued.append(self._reports_out.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                    break
            self._keep(queued)

    def _keep(self, batch: list[PostureReport]) -> None:
        if not batch:
            return
        try:
            self._store.add_posture_reports(batch)
            self.reports_written += len(batch)
        except Exception:
            log.exception("posture reports not stored", extra={"reports": len(batch)})


async def _send(stream: trio.abc.Stream, data: bytes) -> None:
    await stream.send_all(data)


def _peer_ip(stream: trio.SSLStream[trio.SocketStream]) -> str:
    try:
        address = stream.transport_stream.socket.getpeername()
    except OSError:
        return ""
    ip = str(address[0])
    return ip.removeprefix("::ffff:")  # an IPv4 client on a dual-stack listener
