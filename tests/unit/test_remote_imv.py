"""Remote IMVs: the relay (netaccess.io.remote_imv) inside real posture sessions, against
tools/remote-imv-server over real TLS on 127.0.0.1 with throwaway certificates; and what a
session gets when that server distrusts us, is not there, never answers or talks nonsense.
Everything is bounded by timeouts on the real clock."""

from __future__ import annotations

import base64
import datetime
import importlib.machinery
import importlib.util
import ipaddress
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import trio
import trio.testing
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from netaccess.agent.tnc_client import OS, PostureOutcome, report_posture
from netaccess.config.model import PostureConfig, RemoteImvConfig, RemoteImvFailure
from netaccess.io.posture import PostureServer
from netaccess.io.remote_imv import RemoteImv, remote_imv_context
from netaccess.io.tls import TlsSetupError
from netaccess.policy.imv import PaDelivery, PaReply
from netaccess.policy.imv_os import OsImv
from netaccess.policy.posture import Recommendation, Verdict
from netaccess.proto.tnc.errors import IETF_PEN
from netaccess.proto.tnc.pa import (
    AttributeKey,
    ForwardingEnabled,
    ForwardingState,
    PaAttribute,
    PaMessage,
    ProductInformation,
    RawAttribute,
    StringVersion,
    attribute_key,
    push_pa_message,
)
from netaccess.proto.tnc.pb import AccessRecommendation, AssessmentResult
from netaccess.proto.tnc.remote_imv import NEED_DATA, FrameDecoder, encode_frame
from netaccess.proto.tnc.vendor import Antivirus
from netaccess.store import Store

ROOT = Path(__file__).resolve().parents[2]
SERVER_SCRIPT = ROOT / "tools" / "remote-imv-server"
AV = (IETF_PEN, 2)  # RFC 5792 §3.5: the Anti-Virus component
IP = "198.18.0.10"
DEBIAN = (ProductInformation(0, 0, "Debian"), StringVersion("12", "", "x86_64"))
DAY = 86400
CLAMAV = Antivirus("ClamAV", "Cisco", "1.0.7", True, True, "27480", 2 * DAY)
CLAMAV_OFF = Antivirus("ClamAV", "Cisco", "1.0.7", True, False, "27480", 2 * DAY)
SESSION_LIMIT = 10  # seconds any one test's sessions may take


def load_server_module() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("remote_imv_server", str(SERVER_SCRIPT))
    spec = importlib.util.spec_from_loader("remote_imv_server", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["remote_imv_server"] = module  # dataclasses look their module up by name
    loader.exec_module(module)
    return module


reference = load_server_module()


# -- throwaway PKI -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_certificate: Path
    server_key: Path
    client_certificate: Path
    client_key: Path
    rogue_certificate: Path  # a client certificate from a CA nobody trusts
    rogue_key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    names: Sequence[x509.GeneralName] = (),
    usage: x509.ObjectIdentifier | None = None,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, signing_key = issuer if issuer else (name, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    else:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()), False
        )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def _write(directory: Path, stem: str, cert: x509.Certificate, key: Any) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca_key, rogue_ca_key = _key(), _key()
    ca = _certificate("netaccess test CA", ca_key, None, ca=True)
    rogue_ca = _certificate("rogue CA", rogue_ca_key, None, ca=True)
    server_key, client_key, rogue_key = _key(), _key(), _key()
    server_names = [x509.DNSName("imv.test"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server = _certificate(
        "imv.test",
        server_key,
        (ca.subject, ca_key),
        names=server_names,
        usage=x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,
    )
    client_usage = x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH
    client = _certificate("appliance", client_key, (ca.subject, ca_key), usage=client_usage)
    rogue = _certificate(
        "appliance", rogue_key, (rogue_ca.subject, rogue_ca_key), usage=client_usage
    )
    ca_path = directory / "ca.crt"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return Pki(
        ca_path,
        *_write(directory, "server", server, server_key),
        *_write(directory, "client", client, client_key),
        *_write(directory, "rogue", rogue, rogue_key),
    )


def remote_settings(pki: Pki, port: int, **changes: Any) -> RemoteImvConfig:
    values: dict[str, Any] = {
        "name": "antivirus",
        "address": "127.0.0.1",
        "port": port,
        "subscriptions": (AV,),
        "certificate": pki.client_certificate,
        "key": pki.client_key,
        "ca": pki.ca,
        "server_name": "imv.test",
        "timeout": 2.0,
    }
    values.update(changes)
    return RemoteImvConfig(**values)


def remote_imv(pki: Pki, port: int, **changes: Any) -> RemoteImv:
    settings = remote_settings(pki, port, **changes)
    return RemoteImv(settings, remote_imv_context(settings))


# -- servers -----------------------------------------------------------------------------------


@asynccontextmanager
async def reference_server(pki: Pki, *args: Any) -> AsyncIterator[tuple[int, Any]]:
    """tools/remote-imv-server's server, in this process; yields (port, server)."""
    server = reference.RemoteImvServer([reference.AntivirusImv(*args)])
    context = reference.server_context(pki.server_certificate, pki.server_key, pki.ca)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve, context, "127.0.0.1", 0)
        yield port, server
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def tls_server(
    pki: Pki, handler: Callable[[trio.SSLStream[trio.SocketStream]], Any]
) -> AsyncIterator[int]:
    """A TLS server that trusts our client certificates and runs `handler` per connection."""
    context = reference.server_context(pki.server_certificate, pki.server_key, pki.ca)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            partial(trio.serve_ssl_over_tcp, host="127.0.0.1"), handler, 0, context
        )
        yield listeners[0].transport_listener.socket.getsockname()[1]
        nursery.cancel_scope.cancel()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections: bound, never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


# -- posture sessions --------------------------------------------------------------------------


@pytest.fixture
def store() -> Iterator[Store]:
    with Store.open_memory() as s:
        yield s


def posture_server(store: Store, *remote: RemoteImv) -> PostureServer:
    return PostureServer(
        PostureConfig(request_packages=False),
        store,
        lambda: [OsImv(request_packages=False), *remote],
        lambda ip: None,
    )


async def session(
    srv: PostureServer,
    components: Mapping[tuple[int, int], Sequence[PaAttribute]],
    answer: Callable[[tuple[int, int], tuple[AttributeKey, ...]], Sequence[PaAttribute]]
    | None = None,
) -> PostureOutcome:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    outcome: PostureOutcome | None = None
    with trio.fail_after(SESSION_LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(srv.serve_session, server_stream, IP)
            try:
                outcome = await report_posture(client_stream, components, answer=answer)
            finally:
                await client_stream.aclose()
    assert outcome is not None
    return outcome


def antivirus_answer(
    attribute: Antivirus, asked: list[tuple[AttributeKey, ...]]
) -> Callable[[tuple[int, int], tuple[AttributeKey, ...]], Sequence[PaAttribute]]:
    def answer(
        component: tuple[int, int], wanted: tuple[AttributeKey, ...]
    ) -> Sequence[PaAttribute]:
        asked.append(wanted)
        return [attribute] if component == AV and attribute_key(Antivirus) in wanted else []

    return answer


# -- through the reference server --------------------------------------------------------------


async def test_the_remote_imv_asks_for_the_antivirus_attribute_and_its_verdict_joins_the_os_imvs(
    pki: Pki, store: Store
) -> None:
    asked: list[tuple[AttributeKey, ...]] = []
    async with reference_server(pki) as (port, server):
        remote = remote_imv(pki, port)
        components = {
            OS: (*DEBIAN, ForwardingEnabled(ForwardingState.ENABLED)),
            AV: (ProductInformation(0, 0, "ClamAV"),),
        }
        outcome = await session(
            posture_server(store, remote), components, antivirus_answer(CLAMAV_OFF, asked)
        )
    assert asked == [(attribute_key(Antivirus),)]
    assert outcome.rounds == 2
    assert outcome.result is AssessmentResult.MAJOR_NON_COMPLIANCE
    assert outcome.recommendation is AccessRecommendation.QUARANTINED
    assert outcome.reasons == ("IP forwarding is enabled; ClamAV real-time protection is off",)
    assert "Turn on ClamAV" in outcome.remediation
    assert any("ip_forward=0" in item for item in outcome.remediation)
    assert (remote.failures, server.sessions_ended) == (0, 1)


async def test_an_antivirus_attribute_sent_at_once_is_judged_without_a_question(
    pki: Pki, store: Store
) -> None:
    asked: list[tuple[AttributeKey, ...]] = []
    async with reference_server(pki) as (port, _):
        remote = remote_imv(pki, port)
        outcome = await session(
            posture_server(store, remote),
            {OS: DEBIAN, AV: (CLAMAV,)},
            antivirus_answer(CLAMAV, asked),
        )
    assert (asked, outcome.rounds) == ([], 1)
    assert outcome.result is AssessmentResult.COMPLIANT
    assert outcome.recommendation is AccessRecommendation.ALLOWED


async def test_the_relay_brings_back_the_servers_evaluation_with_remediation(pki: Pki) -> None:
    stale = Antivirus("ClamAV", "Cisco", "1.0.7", True, True, "27000", 9 * DAY)
    async with reference_server(pki, frozenset({AV}), 7) as (port, _):
        imv_session = remote_imv(pki, port).open()
        replies = await imv_session.receive(PaDelivery(*AV, 1, PaMessage(1, (stale,))))
        evaluation = await imv_session.evaluate()
        await imv_session.close()
    assert replies == []
    assert evaluation is not None
    assert (evaluation.verdict, evaluation.recommendation) == (
        Verdict.MINOR_NONCOMPLIANCE,
        Recommendation.QUARANTINED,
    )
    assert evaluation.reasons == ("ClamAV signatures are 9 days old (at most 7 days)",)
    assert [item.text for item in evaluation.remediation] == ["Update ClamAV signatures"]


async def test_a_session_without_the_subscribed_components_never_calls_the_server(
    pki: Pki, store: Store, closed_port: int
) -> None:
    remote = remote_imv(pki, closed_port)
    outcome = await session(posture_server(store, remote), {OS: DEBIAN})
    assert outcome.result is AssessmentResult.COMPLIANT
    assert remote.failures == 0


# -- failures ----------------------------------------------------------------------------------


async def test_a_server_that_distrusts_our_certificate_gives_the_on_failure_result(
    pki: Pki, store: Store
) -> None:
    async with reference_server(pki) as (port, _):
        remote = remote_imv(pki, port, certificate=pki.rogue_certificate, key=pki.rogue_key)
        outcome = await session(posture_server(store, remote), {OS: DEBIAN, AV: (CLAMAV,)})
    assert outcome.result is AssessmentResult.DONT_KNOW
    assert outcome.recommendation is AccessRecommendation.QUARANTINED
    (reason,) = outcome.reasons
    assert reason.startswith("remote IMV antivirus unavailable: the server ended the connection")
    assert reason.endswith("does it trust our client certificate?")
    assert remote.failures == 1


async def test_a_server_certificate_for_another_name_is_refused(pki: Pki, store: Store) -> None:
    async with reference_server(pki) as (port, _):
        remote = remote_imv(pki, port, server_name="other.test")
        outcome = await session(posture_server(store, remote), {AV: (CLAMAV,)})
    assert outcome.result is AssessmentResult.DONT_KNOW
    assert "TLS: Hostname mismatch" in outcome.reasons[0]


async def test_a_server_that_is_not_listening_gives_no_access_at_once(
    pki: Pki, store: Store, closed_port: int
) -> None:
    remote = remote_imv(pki, closed_port, on_failure=RemoteImvFailure.NO_ACCESS)
    started = trio.current_time()
    outcome = await session(posture_server(store, remote), {OS: DEBIAN, AV: (CLAMAV,)})
    assert trio.current_time() - started < 1
    assert outcome.result is AssessmentResult.ERROR
    assert outcome.recommendation is AccessRecommendation.NO_ACCESS
    (reason,) = outcome.reasons
    assert reason.startswith("remote IMV antivirus unavailable: cannot connect: ")
    assert reason.endswith("Connection refused")


async def _silent(stream: trio.SSLStream[trio.SocketStream]) -> None:
    try:
        while await stream.receive_some(65536):
            pass
    except trio.BrokenResourceError:
        pass


async def test_a_server_that_never_answers_gives_the_on_failure_result_after_the_timeout(
    pki: Pki, store: Store
) -> None:
    async with tls_server(pki, _silent) as port:
        remote = remote_imv(pki, port, timeout=0.5)
        started = trio.current_time()
        outcome = await session(posture_server(store, remote), {AV: (CLAMAV,)})
        elapsed = trio.current_time() - started
    assert 0.5 <= elapsed < 1.5
    assert outcome.result is AssessmentResult.DONT_KNOW
    assert outcome.reasons == ("remote IMV antivirus unavailable: no answer within 0.5 s",)
    assert remote.failures == 1


async def _nonsense(stream: trio.SSLStream[trio.SocketStream]) -> None:
    try:
        await stream.receive_some(65536)
        await stream.send_all(b"\x00\x00\x00\x05[1,2]")
        await stream.receive_some(65536)
    except trio.BrokenResourceError:
        pass


async def test_a_server_that_talks_nonsense_gives_the_on_failure_result(
    pki: Pki, store: Store
) -> None:
    async with tls_server(pki, _nonsense) as port:
        remote = remote_imv(pki, port)
        outcome = await session(posture_server(store, remote), {AV: (CLAMAV,)})
    assert outcome.result is AssessmentResult.DONT_KNOW
    assert "protocol error: a frame holds a JSON list" in outcome.reasons[0]


THIRD_PARTY = RawAttribute(9999, 3, b"for the vendor's own IMC", noskip=True)


async def _scripted(stream: trio.SSLStream[trio.SocketStream]) -> None:
    """Begin: ok. Deliver: a third-party NOSKIP attribute. Evaluate: a verdict not in the
    protocol."""
    answers: list[dict[str, Any]] = [
        {"ok": True},
        {"replies": [base64.b64encode(push_pa_message(PaMessage(5, (THIRD_PARTY,)))).decode()]},
        {"evaluation": {"verdict": "great", "recommendation": "allowed"}},
    ]
    decoder = FrameDecoder()
    try:
        for answer in answers:
            while decoder.next_frame() is NEED_DATA:
                decoder.receive_data(bytes(await stream.receive_some(65536)))
            await stream.send_all(encode_frame(answer))
        await stream.receive_some(65536)
    except trio.BrokenResourceError:
        pass


async def test_replies_are_relayed_as_sent_and_a_bad_verdict_is_a_failure(pki: Pki) -> None:
    async with tls_server(pki, _scripted) as port:
        remote = remote_imv(pki, port)
        imv_session = remote.open()
        delivery = PaDelivery(*AV, 1, PaMessage(1, (CLAMAV,)))
        with trio.fail_after(SESSION_LIMIT):
            replies = await imv_session.receive(delivery)
            evaluation = await imv_session.evaluate()
            await imv_session.close()
    assert replies == [PaReply(delivery, (THIRD_PARTY,))]
    assert evaluation is not None
    assert (evaluation.verdict, evaluation.recommendation) == (
        Verdict.DONT_KNOW,
        Recommendation.QUARANTINED,
    )
    assert 'verdict "great"' in evaluation.reasons[0]
    assert remote.failures == 1


def test_a_missing_client_key_is_a_setup_error_naming_it(pki: Pki, tmp_path: Path) -> None:
    settings = remote_settings(pki, 1, key=tmp_path / "missing.key")
    with pytest.raises(TlsSetupError, match=r"remote IMV antivirus: client certificate .* key"):
        remote_imv_context(settings)


def test_a_missing_ca_is_a_setup_error_naming_it(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(TlsSetupError, match="remote IMV antivirus: CA certificates"):
        remote_imv_context(remote_settings(pki, 1, ca=tmp_path / "missing.crt"))


# -- the antivirus IMV's judgement -------------------------------------------------------------


def judged(*attributes: PaAttribute) -> Any:
    imv_session = reference.AntivirusImv().open()
    imv_session.deliver(PaMessage(1, attributes))
    return imv_session.evaluate()


def test_antivirus_not_running_is_major_non_compliance() -> None:
    evaluation = judged(Antivirus("ClamAV", "Cisco", "1", False, False, "1", 0))
    assert (evaluation.verdict, evaluation.recommendation) == (
        "major non-compliance",
        "quarantined",
    )
    assert evaluation.reasons == ("ClamAV is not running", "ClamAV real-time protection is off")
    assert [item.text for item in evaluation.remediation] == ["Turn on ClamAV"]


def test_signatures_of_unknown_age_are_minor_non_compliance() -> None:
    evaluation = judged(Antivirus("ClamAV", "Cisco", "1", True, True, "1", None))
    assert evaluation.verdict == "minor non-compliance"
    assert evaluation.reasons == ("ClamAV signatures are of unknown age (at most 7 days)",)


def test_no_antivirus_reported_after_asking_is_major_non_compliance() -> None:
    imv_session = reference.AntivirusImv().open()
    assert len(imv_session.deliver(PaMessage(1))) == 1  # the Attribute Request
    assert imv_session.deliver(PaMessage(2)) == []  # asked once only
    assert imv_session.evaluate().reasons == ("no anti-virus product reported",)


def test_fresh_signatures_running_with_real_time_protection_are_compliant() -> None:
    assert judged(CLAMAV).verdict == "compliant"


# -- the command -------------------------------------------------------------------------------


async def test_the_command_serves_the_protocol_and_logs_a_line_per_session(pki: Pki) -> None:
    command = [
        str(SERVER_SCRIPT),
        "--certificate", str(pki.server_certificate),
        "--key", str(pki.server_key),
        "--client-ca", str(pki.ca),
        "--address", "127.0.0.1",
        "--port", "0",
        "--subscribe", "0:2",
        "--max-signature-days", "1",
    ]  # fmt: skip
    process = await trio.lowlevel.open_process(command, stderr=subprocess.PIPE)
    assert process.stderr is not None
    log = b""
    try:
        with trio.fail_after(SESSION_LIMIT):
            while b"listening on 127.0.0.1:" not in log or not log.endswith(b"\n"):
                chunk = await process.stderr.receive_some(4096)
                assert chunk, log.decode()
                log += chunk
            port = int(log.split(b"listening on 127.0.0.1:")[1].split()[0])
            imv_session = remote_imv(pki, port).open()
            await imv_session.receive(PaDelivery(*AV, 1, PaMessage(1, (CLAMAV,))))
            evaluation = await imv_session.evaluate()
            await imv_session.close()
            while b"session" not in log.split(b"listening on")[1] or not log.endswith(b"\n"):
                chunk = await process.stderr.receive_some(4096)
                assert chunk, log.decode()
                log += chunk
    finally:
        process.kill()
        with trio.move_on_after(5):
            await process.wait()
    assert evaluation is not None
    assert evaluation.verdict is Verdict.MINOR_NONCOMPLIANCE  # 2 days old, 1 allowed
    assert b" ended: minor non-compliance, quarantined (ClamAV signatures" in log
