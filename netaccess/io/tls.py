"""The portal's TLS: the configured certificate, or one made for the portal's hostname at
first start and kept in the state directory (created with `cryptography`, never hand-made)."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import logging
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

log = logging.getLogger("netaccess.tls")

SELF_SIGNED_DAYS = 825  # the longest validity browsers accept for a TLS server certificate


class TlsSetupError(Exception):
    """The certificate or key cannot be read, made or used; the message says which file."""


def server_context(certificate: Path, key: Path) -> ssl.SSLContext:
    """A server context for TLS 1.2 and 1.3 with Python's secure defaults."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(certificate, key)
    except (OSError, ssl.SSLError) as exc:
        raise TlsSetupError(f"TLS certificate {certificate} with key {key}: {exc}") from exc
    return context


def posture_context(
    certificate: Path,
    key: Path,
    *,
    client_certificates: str = "none",
    client_ca: Path | None = None,
) -> ssl.SSLContext:
    """A server context for PT-TLS (RFC 6876 §3.4: TLS 1.2 or later), with the portal's
    certificate; client_certificates "optional" or "required" checks them against
    client_ca."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certificate, key)
    except (OSError, ssl.SSLError) as exc:
        raise TlsSetupError(f"TLS certificate {certificate} with key {key}: {exc}") from exc
    if client_certificates != "none":
        if client_ca is None:
            raise TlsSetupError("client certificates need client_ca")
        try:
            context.load_verify_locations(cafile=client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise TlsSetupError(f"client CA {client_ca}: {exc}") from exc
        context.verify_mode = (
            ssl.CERT_REQUIRED if client_certificates == "required" else ssl.CERT_OPTIONAL
        )
    return context


def self_signed(directory: Path, hostname: str) -> tuple[Path, Path]:
    """(certificate, key) for `hostname` in `directory`, made on first use and kept; made
    again if the kept one names another host or is about to expire."""
    certificate, key = directory / "portal.crt", directory / "portal.key"
    if _usable(certificate, hostname):
        return certificate, key
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    alternative: list[x509.GeneralName] = [x509.DNSName(hostname)]
    with contextlib.suppress(ValueError):
        alternative = [x509.IPAddress(ipaddress.ip_address(hostname))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(alternative), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(private, hashes.SHA256())
    )
    key_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_private(key, key_pem)
    _write_private(certificate, cert.public_bytes(serialization.Encoding.PEM))
    log.info(
        "made a self-signed portal certificate", extra={"host": hostname, "path": str(certificate)}
    )
    return certificate, key


def _usable(certificate: Path, hostname: str) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    except (OSError, ValueError):
        return False
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    remaining = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    return bool(names) and names[0].value == hostname and remaining > datetime.timedelta(days=30)


def _write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` readable by its owner only, replacing it atomically."""
    partial = path.with_name(path.name + ".new")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(partial, path)
