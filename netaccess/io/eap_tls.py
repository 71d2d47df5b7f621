"""TLS for the EAP methods, over ssl.MemoryBIO: OpenSSL (through the standard library's ssl)
does the whole handshake; the EAP conversation (proto.radius.eap_server) only moves the
records. What the standard library lacks is the keying-material exporter the MPPE keys come
from (RFC 5705; SSLObject has no export_keying_material), so KeyExporter calls OpenSSL's own
SSL_export_keying_material through ctypes, on the SSL the SSLObject wraps: no key is derived
here, and no secret leaves OpenSSL but the exported key.

Reaching that SSL pointer means reading CPython's _ssl object (PySSLSocket: the object
header, the socket weakref, then the SSL*, then the context). KeyExporter checks that layout
before it trusts it: for a memory-BIO object the socket slot must be NULL and the context
slot must be the SSLContext object itself, and OpenSSL must agree that the SSL belongs to
that context's SSL_CTX. If any check fails, EAP is refused at startup with the reason, never
guessed at.
"""

from __future__ import annotations

import ctypes
import datetime
import logging
import ssl
from pathlib import Path
from typing import cast

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from netaccess.proto.radius.eap import EapType
from netaccess.proto.radius.eap_server import TlsFailed

log = logging.getLogger("netaccess.radius")
_POINTER = ctypes.sizeof(ctypes.c_void_p)
_HEAD = object.__basicsize__  # PyObject_HEAD: 16 bytes on a 64-bit default build
_READ_CHUNK = 16384


class EapTlsUnavailable(Exception):
    """EAP's TLS cannot run here; the message says why (and what to fix)."""


def _slot(obj: object, offset: int) -> int | None:
    return ctypes.c_void_p.from_address(id(obj) + offset).value


_SSL_CTRL_SET_SESS_CACHE_MODE = 44  # SSL_CTX_set_session_cache_mode is this SSL_CTX_ctrl
_SSL_CTRL_GET_SESS_CACHE_MODE = 45
_SSL_SESS_CACHE_OFF = 0


class KeyExporter:
    """OpenSSL's SSL_export_keying_material for SSLObjects, after checking the layout; and
    the one other OpenSSL call the ssl module lacks here, turning a context's session cache
    off (no_session_cache)."""

    def __init__(self) -> None:
        import _ssl

        path = getattr(_ssl, "__file__", None)  # None: _ssl is built into the interpreter
        try:
            library = ctypes.CDLL(path)
            export = library.SSL_export_keying_material
            owner = library.SSL_get_SSL_CTX
            control = library.SSL_CTX_ctrl
            version = library.OpenSSL_version_num
        except (OSError, AttributeError) as exc:
            raise EapTlsUnavailable(f"OpenSSL's exporter cannot be found: {exc}") from None
        version.restype = ctypes.c_ulong
        version.argtypes = []
        if version() != ssl.OPENSSL_VERSION_NUMBER:
            raise EapTlsUnavailable(
                f"the OpenSSL found ({version():#x}) is not the one ssl uses "
                f"({ssl.OPENSSL_VERSION_NUMBER:#x})"
            )
        export.restype = ctypes.c_int
        export.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_int,
        ]
        owner.restype = ctypes.c_void_p
        owner.argtypes = [ctypes.c_void_p]
        control.restype = ctypes.c_long
        control.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
        self._export = export
        self._owner = owner
        self._control = control
        probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ssl_pointer(probe.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_side=True))

    def _ssl_pointer(self, tls: ssl.SSLObject) -> int:
        inner = getattr(tls, "_sslobj", None)
        context = tls.context
        if inner is None or type(inner).__basicsize__ < _HEAD + 3 * _POINTER:
            raise EapTlsUnavailable("this Python's ssl objects are not laid out as expected")
        if _slot(inner, _HEAD) is not None or _slot(inner, _HEAD + 2 * _POINTER) != id(context):
            raise EapTlsUnavailable("this Python's ssl objects are not laid out as expected")
        pointer = _slot(inner, _HEAD + _POINTER)
        ctx_pointer = _slot(context, _HEAD)
        if pointer is None or ctx_pointer is None or self._owner(pointer) != ctx_pointer:
            raise EapTlsUnavailable("OpenSSL does not own the SSL object where expected")
        return pointer

    def no_session_cache(self, context: ssl.SSLContext) -> None:
        """No server-side session cache for `context` (SSL_SESS_CACHE_OFF): the EAP methods
        here do no resumption, so no session is kept (the ssl module keeps every one, up to
        OpenSSL's 20,480) or offered for resuming, and the ServerHello carries no session
        ID. The SSL_CTX pointer is checked first, through a probe SSL of that context."""
        self._ssl_pointer(context.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_side=True))
        pointer = _slot(context, _HEAD)
        self._control(pointer, _SSL_CTRL_SET_SESS_CACHE_MODE, _SSL_SESS_CACHE_OFF, None)
        if self._control(pointer, _SSL_CTRL_GET_SESS_CACHE_MODE, 0, None) != _SSL_SESS_CACHE_OFF:
            raise EapTlsUnavailable("OpenSSL did not turn the EAP session cache off")

    def export(self, tls: ssl.SSLObject, label: bytes, length: int) -> bytes:
        pointer = self._ssl_pointer(tls)
        out = ctypes.create_string_buffer(length)
        if self._export(pointer, out, length, label, len(label), None, 0, 0) != 1:
            raise TlsFailed("OpenSSL could not export the keying material")
        return out.raw


class SslEngine:
    """One server-side TLS session over memory BIOs (proto.radius.eap_server.TlsEngine)."""

    def __init__(self, context: ssl.SSLContext, exporter: KeyExporter) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._exporter = exporter
        self._complete = False

    def receive(self, records: bytes) -> None:
        self._incoming.write(records)

    def advance(self) -> bool:
        if not self._complete:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                return False
            except ssl.SSLCertVerificationError as exc:  # the client's certificate: say why
                why = f"{exc.reason or exc} ({exc.verify_message})"
                raise TlsFailed(f"TLS handshake failed: {why}") from None
            except ssl.SSLError as exc:
                raise TlsFailed(f"TLS handshake failed: {exc.reason or exc}") from None
            self._complete = True
        return True

    def outgoing(self) -> bytes:
        return self._outgoing.read()

    def read_application(self) -> bytes:
        chunks = []
        # Only while records are waiting (in the BIO, or decrypted in OpenSSL): reading past
        # them raises SSLWantReadError, an exception per call on the common path.
        while self._incoming.pending or self._tls.pending():
            try:
                data = self._tls.read(_READ_CHUNK)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                break
            except ssl.SSLError as exc:
                raise TlsFailed(f"TLS record failed: {exc.reason or exc}") from None
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)

    def write_application(self, data: bytes) -> None:
        try:
            self._tls.write(data)
        except ssl.SSLError as exc:
            raise TlsFailed(f"TLS record failed: {exc.reason or exc}") from None

    def export_key(self, label: bytes, length: int) -> bytes:
        return self._exporter.export(self._tls, label, length)

    def peer_name(self) -> str | None:
        certificate = self._tls.getpeercert()
        if not certificate:
            return None
        # typeshed types these values loosely; they are tuples of (name, value) pairs
        names = cast("tuple[tuple[str, str], ...]", certificate.get("subjectAltName", ()))
        for kind, value in names:
            if kind in ("email", "DNS"):
                return value
        subject = cast("tuple[tuple[tuple[str, str], ...], ...]", certificate.get("subject", ()))
        for rdn in subject:
            for key, value in rdn:
                if key == "commonName":
                    return value
        return None


CRL_CHECK_EVERY = 10.0  # s: how often the server looks for a changed CRL file (reload_crl)
_CRL_BEGIN = b"-----BEGIN X509 CRL-----"


def check_crl(crl: Path, client_ca: Path) -> datetime.datetime | None:
    """The CRL file's fitness for EAP-TLS: one or more PEM CRLs, each signed by a CA in
    `client_ca` and not past its nextUpdate (OpenSSL would then refuse every certificate).
    The earliest nextUpdate (None: none says one); EapTlsUnavailable saying what is wrong."""
    try:
        data, authorities = crl.read_bytes(), client_ca.read_bytes()
    except OSError as exc:
        raise EapTlsUnavailable(f"EAP-TLS CRL {crl}: {exc.strerror}") from None
    now = datetime.datetime.now(datetime.UTC)
    try:
        cas = x509.load_pem_x509_certificates(authorities)
        lists = [x509.load_pem_x509_crl(_CRL_BEGIN + block) for block in data.split(_CRL_BEGIN)[1:]]
    except ValueError as exc:
        raise EapTlsUnavailable(f"EAP-TLS CRL {crl}: not PEM CRLs ({exc})") from None
    if not lists:
        raise EapTlsUnavailable(f"EAP-TLS CRL {crl}: no CRL in it (PEM, BEGIN X509 CRL)")
    earliest: datetime.datetime | None = None
    for each in lists:
        issuers = [ca for ca in cas if ca.subject == each.issuer]
        if not any(_signed_by(each, ca) for ca in issuers):
            raise EapTlsUnavailable(
                f"EAP-TLS CRL {crl}: {each.issuer.rfc4514_string()}'s CRL is not signed by a "
                "CA in radius.eap_tls_ca"
            )
        due = each.next_update_utc
        if due is not None and due < now:
            raise EapTlsUnavailable(
                f"EAP-TLS CRL {crl}: expired at {due.isoformat()} (its nextUpdate); "
                "OpenSSL would refuse every client certificate: fetch a fresh one"
            )
        if due is not None and (earliest is None or due < earliest):
            earliest = due
    return earliest


def _signed_by(crl: x509.CertificateRevocationList, ca: x509.Certificate) -> bool:
    public = ca.public_key()
    signing = (
        ec.EllipticCurvePublicKey,
        rsa.RSAPublicKey,
        ed25519.Ed25519PublicKey,
        ed448.Ed448PublicKey,
    )
    return isinstance(public, signing) and crl.is_signature_valid(public)


def _context(
    method: EapType, certificate: Path, key: Path, client_ca: Path | None, client_crl: Path | None
) -> tuple[ssl.SSLContext, datetime.datetime | None]:
    """One method's context, and its CRL's earliest nextUpdate (None: no CRL, or none due)."""
    due = None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    # No session tickets: they only lengthen every final flight (one more fragment round
    # trip), and this server does no resumption (KeyExporter.no_session_cache).
    context.options |= ssl.OP_NO_TICKET
    try:
        context.load_cert_chain(certificate, key)
        if method is EapType.TLS and client_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cafile=client_ca)
    except (OSError, ssl.SSLError) as exc:
        raise EapTlsUnavailable(f"EAP TLS certificate {certificate}: {exc}") from None
    if method is EapType.TLS and client_ca is not None and client_crl is not None:
        due = check_crl(client_crl, client_ca)
        try:
            context.load_verify_locations(cafile=client_crl)
        except (OSError, ssl.SSLError) as exc:
            raise EapTlsUnavailable(f"EAP-TLS CRL {client_crl}: {exc}") from None
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return context, due


def eap_contexts(
    certificate: Path, key: Path, client_ca: Path | None, client_crl: Path | None = None
) -> dict[EapType, ssl.SSLContext]:
    """A server context per method, TLS 1.2 only (the key derivation the methods define for
    it; see eap_server): EAP-TTLS (and PEAP, which shares its context) asks no client
    certificate, EAP-TLS (only when a client CA is configured) requires one signed by
    `client_ca`, and not revoked by `client_crl` when one is given (check_crl)."""
    return _contexts(certificate, key, client_ca, client_crl)[0]


def _contexts(
    certificate: Path, key: Path, client_ca: Path | None, client_crl: Path | None
) -> tuple[dict[EapType, ssl.SSLContext], datetime.datetime | None]:
    contexts: dict[EapType, ssl.SSLContext] = {}
    due = None
    methods = [EapType.TTLS] + ([EapType.TLS] if client_ca is not None else [])
    for method in methods:
        contexts[method], crl_due = _context(method, certificate, key, client_ca, client_crl)
        due = due or crl_due
    contexts[EapType.PEAP] = contexts[EapType.TTLS]
    return contexts, due


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        found = path.stat()
    except OSError:
        return None
    return (found.st_ino, found.st_size, found.st_mtime_ns)


class EapTls:
    """The TLS the server's EAP methods run: a context per method (eap_contexts), the
    exporter, and a fresh engine per conversation. EapTlsUnavailable when it cannot run.
    PEAP is offered only when `peap` (some realm keeps MSCHAPv2 credentials). With a
    `client_crl`, reload_crl() loads the file again when it has changed."""

    def __init__(
        self,
        certificate: Path,
        key: Path,
        client_ca: Path | None,
        *,
        peap: bool = False,
        client_crl: Path | None = None,
    ) -> None:
        self.exporter = KeyExporter()
        self._files = (certificate, key, client_ca, client_crl)
        self._crl_stamp = None if client_crl is None else _stamp(client_crl)
        self.contexts, self._crl_due = _contexts(certificate, key, client_ca, client_crl)
        self._crl_expiry_told = False
        for context in self.contexts.values():
            self.exporter.no_session_cache(context)
        if client_crl is not None and EapType.TLS in self.contexts:
            log.info("EAP-TLS CRL loaded", extra=_crl_view(client_crl, self.contexts))
        offered = (EapType.TTLS, EapType.TLS) + ((EapType.PEAP,) if peap else ())
        self.methods = tuple(m for m in offered if m in self.contexts)

    @property
    def watches_crl(self) -> bool:
        return self._files[3] is not None and EapType.TLS in self.contexts

    def engine(self, method: EapType) -> SslEngine:
        return SslEngine(self.contexts[method], self.exporter)

    def reload_crl(self, now: datetime.datetime | None = None) -> bool:
        """Load the CRL file again if it changed since it was last read: whether the new one
        is in force. One that does not pass check_crl is logged and the previous one stays
        (the file is not read again until it changes again). Off the receive thread: a long
        CRL takes a while to parse. New conversations take the new context; those under
        way keep theirs. A CRL in force that has passed its nextUpdate is logged as an
        error once (OpenSSL refuses every EAP-TLS certificate until a fresh one comes)."""
        certificate, key, client_ca, client_crl = self._files
        if client_crl is None or client_ca is None:
            return False
        stamp = _stamp(client_crl)
        if stamp == self._crl_stamp:
            self._tell_expiry(client_crl, now or datetime.datetime.now(datetime.UTC))
            return False
        self._crl_stamp = stamp
        try:
            context, due = _context(EapType.TLS, certificate, key, client_ca, client_crl)
            self.exporter.no_session_cache(context)
        except EapTlsUnavailable as exc:
            log.error("EAP-TLS CRL not reloaded: the previous one stays", extra={"error": str(exc)})
            return False
        self.contexts[EapType.TLS] = context
        self._crl_due, self._crl_expiry_told = due, False
        log.info("EAP-TLS CRL reloaded", extra=_crl_view(client_crl, self.contexts))
        return True

    def _tell_expiry(self, crl: Path, now: datetime.datetime) -> None:
        if self._crl_due is None or self._crl_due > now or self._crl_expiry_told:
            return
        self._crl_expiry_told = True
        log.error(
            "EAP-TLS CRL expired: every EAP-TLS certificate is refused until a fresh one is "
            "written",
            extra={"path": str(crl), "next_update": self._crl_due.isoformat()},
        )


def _crl_view(path: Path, contexts: dict[EapType, ssl.SSLContext]) -> dict[str, object]:
    return {"path": str(path), "crls": contexts[EapType.TLS].cert_store_stats()["crl"]}
