"""The posture server's TLS (RFC 6876 §3.4): TLS 1.2 and 1.3 with the appliance's
certificate, and client certificates when required, over in-memory streams with real
OpenSSL on both ends (certificates made here with `cryptography`)."""

from __future__ import annotations

import datetime
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio.testing
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from netaccess.agent.tnc_client import PostureClientError, report_posture
from netaccess.config.model import PostureConfig
from netaccess.io.posture import PostureServer
from netaccess.io.tls import posture_context
from netaccess.policy.imv_os import OsImv
from netaccess.proto.tnc.pb import AssessmentResult
from netaccess.store import Store

SERVER_NAME = "portal.netaccess.test"


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, ec.EllipticCurvePrivateKey]
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer[0])]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if subject == issuer[0]:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), False)
    return builder.sign(issuer[1], hashes.SHA256())


def _write(
    directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
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
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA; the server's certificate and an endpoint's, both from it; a stranger's."""
    directory = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("netaccess test CA", ca_key, ("netaccess test CA", ca_key))
    paths = {"ca": _write(directory, "ca", ca, ca_key)[0]}
    for name, issuer in (
        ("server", ("netaccess test CA", ca_key)),
        ("endpoint", ("netaccess test CA", ca_key)),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        subject = SERVER_NAME if name == "server" else "laptop-17.corp.test"
        paths[name], paths[f"{name}_key"] = _write(
            directory, name, _certificate(subject, key, issuer), key
        )
    stranger_key = ec.generate_private_key(ec.SECP256R1())
    stranger = _certificate("stranger", stranger_key, ("stranger", stranger_key))
    paths["stranger"], paths["stranger_key"] = _write(directory, "stranger", stranger, stranger_key)
    return paths


@pytest.fixture
def store() -> Iterator[Store]:
    with Store.open_memory() as s:
        yield s


def client_context(
    pki: dict[str, Path], who: str | None, version: ssl.TLSVersion
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki["ca"])
    context.minimum_version = context.maximum_version = version
    if who is not None:
        context.load_cert_chain(pki[who], pki[f"{who}_key"])
    return context


async def tls_session(
    store: Store, server_context: ssl.SSLContext, context: ssl.SSLContext
) -> AssessmentResult:
    server = PostureServer(PostureConfig(), store, lambda: [OsImv()], lambda ip: None)
    client_raw, server_raw = trio.testing.memory_stream_pair()
    server_tls = trio.SSLStream(server_raw, server_context, server_side=True)
    client_tls = trio.SSLStream(client_raw, context, server_hostname=SERVER_NAME)
    result: AssessmentResult | None = None
    failure: Exception | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.serve_session, server_tls, "198.18.0.10")
        try:
            result = (await report_posture(client_tls, {})).result
        except Exception as exc:  # raised below, outside the nursery's exception group
            failure = exc
        finally:
            await trio.aclose_forcefully(client_tls)
    if failure is not None:
        raise failure
    assert result is not None
    return result


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_a_session_runs_over_tls_1_2_and_1_3(
    pki: dict[str, Path], store: Store, version: ssl.TLSVersion
) -> None:
    server_context = posture_context(pki["server"], pki["server_key"])
    result = await tls_session(store, server_context, client_context(pki, None, version))
    assert result is AssessmentResult.COMPLIANT


def test_the_server_context_allows_nothing_older_than_tls_1_2(pki: dict[str, Path]) -> None:
    # (OpenSSL on Debian refuses older versions anyway; our context must not rely on that.)
    context = posture_context(pki["server"], pki["server_key"])
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_a_required_client_certificate_from_the_ca_passes(
    pki: dict[str, Path], store: Store, version: ssl.TLSVersion
) -> None:
    server_context = posture_context(
        pki["server"], pki["server_key"], client_certificates="required", client_ca=pki["ca"]
    )
    result = await tls_session(store, server_context, client_context(pki, "endpoint", version))
    assert result is AssessmentResult.COMPLIANT


@pytest.mark.parametrize("who", [None, "stranger"])
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_without_a_trusted_client_certificate_there_is_no_session(
    pki: dict[str, Path], store: Store, who: str | None, version: ssl.TLSVersion
) -> None:
    server_context = posture_context(
        pki["server"], pki["server_key"], client_certificates="required", client_ca=pki["ca"]
    )
    with pytest.raises((trio.BrokenResourceError, PostureClientError)):
        await tls_session(store, server_context, client_context(pki, who, version))
    assert store.posture_reports() == []


async def test_an_optional_client_certificate_may_be_left_out(
    pki: dict[str, Path], store: Store
) -> None:
    server_context = posture_context(
        pki["server"], pki["server_key"], client_certificates="optional", client_ca=pki["ca"]
    )
    context = client_context(pki, None, ssl.TLSVersion.TLSv1_3)
    assert await tls_session(store, server_context, context) is AssessmentResult.COMPLIANT
