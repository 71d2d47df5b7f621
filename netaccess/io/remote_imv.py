"""Remote IMVs: an Imv whose sessions relay PA-TNC messages to a remote IMV server over
mutually authenticated TLS (the protocol is netaccess.proto.tnc.remote_imv) and bring its
replies and evaluation back. A server that fails in any way gives the session the
configured on_failure evaluation, never an exception.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import ssl
from collections.abc import Sequence

import trio

from netaccess.config.model import RemoteImvConfig, RemoteImvFailure
from netaccess.io.tls import TlsSetupError
from netaccess.policy.imv import ImvEvaluation, PaDelivery, PaReply, PostureEndpoint
from netaccess.policy.posture import Recommendation, RemediationItem, Verdict
from netaccess.proto.errors import ProtocolError
from netaccess.proto.tnc.errors import PaTncError
from netaccess.proto.tnc.pa import (
    PaMessage,
    RawAttribute,
    SkippedAttribute,
    UnsupportedAttributeError,
    pull_pa_message,
    push_pa_message,
)
from netaccess.proto.tnc.remote_imv import (
    Begin,
    Deliver,
    End,
    Endpoint,
    Evaluate,
    Evaluated,
    Evaluation,
    FrameDecoder,
    Ok,
    Refused,
    Replies,
    Request,
    Response,
    Wait,
    decode_response,
    encode_request,
    pull_raw_attributes,
)

log = logging.getLogger("netaccess.posture.remote_imv")

RECEIVE_SIZE = 64 * 1024
# The posture server gives all IMVs one second to close; saying goodbye must fit in it.
CLOSE_TIMEOUT = 0.5


def remote_imv_context(settings: RemoteImvConfig) -> ssl.SSLContext:
    """A client context for TLS 1.2 or later that trusts only `settings.ca`, checks the
    server's name and shows our client certificate."""
    where = f"remote IMV {settings.name}"
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.ca)
    except (OSError, ssl.SSLError) as exc:
        raise TlsSetupError(f"{where}: CA certificates {settings.ca}: {exc}") from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.certificate, settings.key)
    except (OSError, ssl.SSLError) as exc:
        raise TlsSetupError(
            f"{where}: client certificate {settings.certificate} with key {settings.key}: {exc}"
        ) from exc
    return context


class RemoteImv:
    """The IMVs of one remote IMV server, as one Imv. `failures` counts sessions that got
    the on_failure evaluation."""

    def __init__(self, settings: RemoteImvConfig, context: ssl.SSLContext) -> None:
        self.settings = settings
        self.name = settings.name
        self.subscriptions = frozenset(settings.subscriptions)
        self.context = context
        self.failures = 0

    def open(self, endpoint: PostureEndpoint | None = None) -> RemoteImvSession:
        known = endpoint or PostureEndpoint()
        return RemoteImvSession(self, Endpoint(known.ip, known.mac, known.user))

    def failure_evaluation(self, why: str) -> ImvEvaluation:
        reasons = (f"remote IMV {self.name} unavailable: {why}",)
        if self.settings.on_failure is RemoteImvFailure.NO_ACCESS:
            return ImvEvaluation(Verdict.ERROR, Recommendation.NO_ACCESS, reasons)
        return ImvEvaluation(Verdict.DONT_KNOW, Recommendation.QUARANTINED, reasons)


class _Failed(Exception):
    """The remote server answered, but not as it should; the message says how."""


class RemoteImvSession:
    """One posture session on the remote server: connected at the first delivery, one
    connection per session. After a failure it asks nothing more and evaluates to the
    on_failure result."""

    def __init__(self, imv: RemoteImv, endpoint: Endpoint) -> None:
        self._imv = imv
        self._endpoint = endpoint
        self.id = secrets.token_hex(8)
        self._stream: trio.SSLStream[trio.SocketStream] | None = None
        self._decoder = FrameDecoder()
        self._delivered = False
        self._evaluated = False
        self._evaluation: ImvEvaluation | None = None
        self._interrupted = False  # a request was cancelled half-way: the stream is out of step
        self.failure: str | None = None

    async def receive(self, delivery: PaDelivery) -> Sequence[PaReply]:
        self._delivered = True
        if self.failure is not None:
            return []
        try:
            if self._stream is None:
                await self._connect()
            request = Deliver(
                self.id,
                delivery.vendor,
                delivery.subtype,
                delivery.collector_id,
                delivery.raw or _relayable(delivery.message),
            )
            answer = await self._request(request)
            if not isinstance(answer, Replies):
                raise _Failed(f"deliver answered with {type(answer).__name__}")
            replies = []
            for message in answer.messages:
                attributes = _relayed(message)
                if attributes:
                    replies.append(PaReply(delivery, attributes))
            return replies
        except Exception as exc:  # trio.Cancelled is a BaseException: it goes on
            await self._fail(exc)
            return []

    async def evaluate(self) -> ImvEvaluation | None:
        if not self._delivered:
            return None
        if self._evaluated:
            return self._evaluation
        self._evaluated = True
        if self.failure is None:
            try:
                answer = await self._request(Evaluate(self.id))
                if not isinstance(answer, Evaluated):
                    raise _Failed(f"evaluate answered with {type(answer).__name__}")
                self._evaluation = _evaluation(answer.evaluation)
            except Exception as exc:
                await self._fail(exc)
        if self.failure is not None:
            self._evaluation = self._imv.failure_evaluation(self.failure)
        return self._evaluation

    async def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        try:
            if self.failure is None and not self._interrupted:
                with trio.move_on_after(min(CLOSE_TIMEOUT, self._imv.settings.timeout)):
                    await self._exchange(stream, End(self.id))
                    await stream.aclose()
        except Exception as exc:  # the session is over: nothing depends on the goodbye
            log.debug(
                "remote IMV session not ended cleanly",
                extra={"imv": self._imv.name, "session": self.id, "why": _why(exc, 0)},
            )
        finally:
            await trio.aclose_forcefully(stream)

    async def _connect(self) -> None:
        settings = self._imv.settings
        with trio.fail_after(settings.timeout):
            tcp = await trio.open_tcp_stream(settings.address, settings.port)
            try:
                stream = trio.SSLStream(
                    tcp, self._imv.context, server_hostname=settings.server_name
                )
            except BaseException:
                await trio.aclose_forcefully(tcp)
                raise
            self._stream = stream
            await stream.do_handshake()
            try:
                answer = await self._exchange(stream, Begin(self.id, self._endpoint))
            except trio.BrokenResourceError as exc:
                # With TLS 1.3 the server checks our certificate after our handshake is done:
                # a refusal shows as the connection's end at our first request.
                raise _Failed(
                    f"the server ended the connection at begin ({_why(exc, 0)}): does it "
                    "trust our client certificate?"
                ) from exc
        if not isinstance(answer, Ok):
            raise _Failed(f"begin answered with {type(answer).__name__}")

    async def _request(self, request: Request) -> Response:
        assert self._stream is not None
        with trio.fail_after(self._imv.settings.timeout):
            return await self._exchange(self._stream, request)

    async def _exchange(
        self, stream: trio.SSLStream[trio.SocketStream], request: Request
    ) -> Response:
        self._interrupted = True
        await stream.send_all(encode_request(request))
        while isinstance(frame := self._decoder.next_frame(), Wait):
            data = await stream.receive_some(RECEIVE_SIZE)
            if not data:
                raise _Failed("the server closed the connection")
            self._decoder.receive_data(bytes(data))
        self._interrupted = False
        answer = decode_response(frame, request)
        if isinstance(answer, Refused):
            raise _Failed(f"the server refused {type(request).__name__.lower()}: {answer.error}")
        return answer

    async def _fail(self, exc: Exception) -> None:
        self.failure = _why(exc, self._imv.settings.timeout)
        self._imv.failures += 1
        log.warning(
            "remote IMV failed; the session gets its on_failure result",
            extra={
                "imv": self._imv.name,
                "session": self.id,
                "server": f"{self._imv.settings.address}:{self._imv.settings.port}",
                "why": self.failure,
                "on_failure": self._imv.settings.on_failure.value,
            },
        )
        stream, self._stream = self._stream, None
        if stream is not None:
            await trio.aclose_forcefully(stream)


def _relayable(message: PaMessage) -> bytes:
    """The delivered message as bytes again. Attributes the appliance skipped (no codec,
    no NOSKIP) were not kept, so they cannot go on."""
    kept = tuple(a for a in message.attributes if not isinstance(a, SkippedAttribute))
    return push_pa_message(PaMessage(message.message_id, kept))


def _relayed(message: bytes) -> tuple[RawAttribute, ...]:
    """A reply's attributes exactly as the server wrote them (so the IMC gets what its
    IMV sent, codec or not), once the ones we know decode cleanly."""
    # A NOSKIP attribute we have no codec for is for the IMC, not for us: it goes on.
    with contextlib.suppress(UnsupportedAttributeError):
        pull_pa_message(message)
    return pull_raw_attributes(message)


def _evaluation(remote: Evaluation | None) -> ImvEvaluation | None:
    if remote is None:
        return None
    try:
        verdict = Verdict(remote.verdict)
        recommendation = Recommendation(remote.recommendation)
    except ValueError as exc:
        raise _Failed(f"evaluation: {exc}") from None
    return ImvEvaluation(
        verdict,
        recommendation,
        remote.reasons,
        tuple(RemediationItem(item.text, item.link) for item in remote.remediation),
    )


def _why(exc: BaseException, timeout: float) -> str:
    """One line on what went wrong, for logs and the session's reasons."""
    if isinstance(exc, trio.TooSlowError):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, _Failed):
        return str(exc)
    if isinstance(exc, PaTncError):
        return f"a reply is not a valid PA-TNC message: {exc}"
    if isinstance(exc, ProtocolError):
        return f"protocol error: {exc}"
    if isinstance(exc, trio.BrokenResourceError) and isinstance(exc.__cause__, ssl.SSLError):
        exc = exc.__cause__
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: {exc.verify_message or exc}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    if isinstance(exc, OSError):
        # trio tries every address and puts each attempt's error in an exception group.
        if isinstance(exc.__cause__, BaseExceptionGroup):
            attempts = [e for e in exc.__cause__.exceptions if isinstance(e, OSError)]
            exc = attempts[0] if attempts else exc
        return f"cannot connect: {exc.strerror or exc}"
    if isinstance(exc, trio.BrokenResourceError | trio.ClosedResourceError):
        return f"connection lost: {exc.__cause__ or exc or type(exc).__name__}"
    return f"{type(exc).__name__}: {exc}"
