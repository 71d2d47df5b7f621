"""The server's EAP conversation (proto.radius.eap_server) with the real TLS engine
(io.eap_tls.SslEngine), against a peer written here over a client ssl.SSLObject: EAP-TTLS
with PAP inside, EAP-TLS with client certificates made by `cryptography`, Naks, a wrong
password, fragmentation both ways, and garbage in the middle of a handshake. The MSK the
server exports is the one the peer derives with the method's label."""

from __future__ import annotations

import datetime
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from netaccess.io.eap_tls import EapTls, KeyExporter, SslEngine, eap_contexts
from netaccess.proto.radius.eap import (
    AVP_USER_NAME,
    AVP_USER_PASSWORD,
    FLAG_START,
    Avp,
    EapCode,
    EapType,
    Reassembly,
    decode_eap,
    decode_tls_frame,
    encode_avps,
    encode_eap,
    encode_tls_frame,
    fragments,
)
from netaccess.proto.radius.eap_server import (
    KEY_LABELS,
    Challenge,
    CheckPassword,
    Discard,
    EapConversation,
    Failure,
    Step,
    Success,
    mppe_keys,
)

SERVER_NAME = "radius.netaccess.test"
EXPORTER = KeyExporter()


# --- a PKI made for the tests ------------------------------------------------------------------


@dataclass(frozen=True)
class Issued:
    certificate: Path
    key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write(
    directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> Issued:
    certificate, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    certificate.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Issued(certificate, key_path)


class Authority:
    """A CA that signs server and client certificates into `directory`."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.name = name
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = self._build(_name(name), self.key.public_key(), ca=True).sign(
            self.key, hashes.SHA256()
        )
        self.path = directory / f"{name.replace(' ', '-')}.crt"
        self.path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def _build(
        self, subject: x509.Name, public: ec.EllipticCurvePublicKey, *, ca: bool
    ) -> x509.CertificateBuilder:
        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(_name(self.name))
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )

    def issue(self, common: str, *, server: bool = False, email: str | None = None) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = self._build(_name(common), key.public_key(), ca=False)
        names: list[x509.GeneralName] = [x509.DNSName(common)] if server else []
        if email is not None:
            names.append(x509.RFC822Name(email))
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        usage = x509.oid.ExtendedKeyUsageOID.SERVER_AUTH if server else None
        if usage is None:
            usage = x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return _write(self.directory, common.replace(" ", "-"), cert, key)

    def crl(
        self, path: Path, revoked: tuple[Issued, ...] = (), *, fresh_for: float = 86_400.0
    ) -> Path:
        """A PEM CRL of this CA revoking `revoked`, next update `fresh_for` s from now (a
        negative figure: already past it)."""
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(_name(self.name))
            .last_update(now - datetime.timedelta(minutes=5))
            .next_update(now + datetime.timedelta(seconds=fresh_for))
        )
        for issued in revoked:
            serial = x509.load_pem_x509_certificate(issued.certificate.read_bytes()).serial_number
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(now - datetime.timedelta(minutes=1))
                .build()
            )
        crl = builder.sign(self.key, hashes.SHA256())
        path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        return path


@dataclass(frozen=True)
class Pki:
    ca: Authority
    stranger: Authority
    server: Issued
    client: Issued
    foreign_client: Issued


def make_pki(directory: Path) -> Pki:
    """A CA with the server's certificate and a client's; another CA with a client's."""
    ca = Authority(directory, "netaccess EAP test CA")
    stranger = Authority(directory, "some other CA")
    return Pki(
        ca,
        stranger,
        ca.issue(SERVER_NAME, server=True),
        ca.issue("laptop-7", email="alice@staff.test"),
        stranger.issue("laptop-8"),
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("eap-pki"))


# --- the peer ---------------------------------------------------------------------------------


class EapPeer:
    """The supplicant's side: enough of an EAP-TTLS/PAP and EAP-TLS peer (as wpa_supplicant
    runs them) to drive the server, over a client SSLObject on memory BIOs."""

    def __init__(
        self,
        pki: Pki,
        method: EapType,
        *,
        identity: str = "alice@staff",
        user: str = "alice",
        password: bytes = b"correct horse",
        client: Issued | None = None,
        fragment_size: int = 1000,
        nak_with: tuple[int, ...] | None = None,
    ) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.load_verify_locations(cafile=pki.ca.path)
        if client is not None:
            context.load_cert_chain(client.certificate, client.key)
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self._incoming, self._outgoing, server_hostname=SERVER_NAME)
        self.method = method
        self.identity = identity
        self.user = user
        self.password = password
        self.fragment_size = fragment_size
        self.nak_with = nak_with
        self.complete = False
        self.tls_error: str | None = None  # what the server's alert made OpenSSL say
        self._inner_sent = False
        self._reassembly = Reassembly()
        self._out: list[bytes] = []
        self.fragments_sent = 0
        self.acks_sent = 0

    def msk(self) -> bytes:
        return EXPORTER.export(self.tls, KEY_LABELS[self.method], 64)

    def answer(self, request: bytes) -> bytes:
        packet = decode_eap(request)
        assert packet.code is EapCode.REQUEST, packet
        if packet.type == EapType.IDENTITY:
            return self._response(packet.identifier, EapType.IDENTITY, self.identity.encode())
        if packet.type != self.method:
            wanted = self.nak_with if self.nak_with is not None else (self.method,)
            return self._response(packet.identifier, EapType.NAK, bytes(wanted))
        frame = decode_tls_frame(packet.data)
        if frame.flags & FLAG_START:
            self._handshake()
            return self._flight(packet.identifier)
        if self._out:
            assert frame.is_ack, "the server did not acknowledge our fragment"
            self.fragments_sent += 1
            return self._response(packet.identifier, self.method, self._out.pop(0))
        message = self._reassembly.add(frame)
        if message is None:
            self.acks_sent += 1
            return self._response(packet.identifier, self.method, encode_tls_frame(b""))
        self._incoming.write(message)
        self._handshake()
        if self.complete and self.method is EapType.TTLS and not self._inner_sent:
            self._inner_sent = True
            self.tls.write(encode_avps(self.inner_avps()))
        return self._flight(packet.identifier)

    def inner_avps(self) -> list[Avp]:
        """EAP-TTLS phase 2: PAP."""
        return [Avp(AVP_USER_NAME, self.user.encode()), Avp(AVP_USER_PASSWORD, self.password)]

    def _handshake(self) -> None:
        if self.complete or self.tls_error is not None:
            return
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            return
        except ssl.SSLError as exc:  # the server's alert: acknowledged, as wpa_supplicant does
            self.tls_error = str(exc.reason)
            return
        self.complete = True

    def _flight(self, identifier: int) -> bytes:
        records = self._outgoing.read()
        if not records:
            return self._response(identifier, self.method, encode_tls_frame(b""))
        frames = fragments(records, self.fragment_size)
        self._out = frames[1:]
        self.fragments_sent += 1
        return self._response(identifier, self.method, frames[0])

    def _response(self, identifier: int, kind: int, data: bytes) -> bytes:
        return encode_eap(EapCode.RESPONSE, identifier, kind, data)


# --- driving both ---------------------------------------------------------------------------


def conversation(pki: Pki, methods: tuple[EapType, ...], **kwargs: int) -> EapConversation:
    contexts = eap_contexts(pki.server.certificate, pki.server.key, pki.ca.path)
    for context in contexts.values():
        EXPORTER.no_session_cache(context)  # as EapTls does
    return EapConversation(methods, lambda method: SslEngine(contexts[method], EXPORTER), **kwargs)


PasswordCheck = Callable[[CheckPassword], bool]


def run(
    server: EapConversation,
    peer: EapPeer,
    check: PasswordCheck = lambda asked: asked.password == b"correct horse",
    *,
    limit: int = 60,
) -> tuple[Step, int]:
    """The whole conversation from EAP-Start; the last step and how many round trips."""
    step: Step = server.receive(b"")
    for trips in range(1, limit):
        if isinstance(step, CheckPassword):
            step = server.password_checked(check(step))
            continue
        if not isinstance(step, Challenge):
            return step, trips
        step = server.receive(peer.answer(step.eap))
    raise AssertionError(f"no end after {limit} round trips")


def test_ttls_pap_succeeds_and_both_sides_hold_the_same_msk(pki: Pki) -> None:
    server = conversation(pki, (EapType.TTLS,))
    peer = EapPeer(pki, EapType.TTLS)
    asked: list[CheckPassword] = []

    def check(request: CheckPassword) -> bool:
        asked.append(request)
        return request.password == b"correct horse"

    step, _ = run(server, peer, check)
    assert isinstance(step, Success), step
    assert (step.user, step.method) == ("alice", EapType.TTLS)
    assert asked == [CheckPassword("alice", b"correct horse")]
    assert len(step.msk) == 64 and step.msk == peer.msk()
    assert decode_eap(step.eap).code is EapCode.SUCCESS
    assert server.identity == "alice@staff" and server.finished


@pytest.mark.parametrize("method", [EapType.TTLS, EapType.TLS])
def test_no_session_is_kept_or_resumed(pki: Pki, method: EapType) -> None:
    """This server does no EAP resumption: its contexts (as EapTls makes them) keep no
    session, the ServerHello names none, and a peer offering an earlier one gets a full
    handshake (and, for EAP-TTLS, its inner authentication asked again)."""
    tls = EapTls(pki.server.certificate, pki.server.key, pki.ca.path)
    client = pki.client if method is EapType.TLS else None
    first = EapPeer(pki, method, client=client)
    step, _ = run(EapConversation((method,), tls.engine), first)
    assert isinstance(step, Success), step
    assert first.tls.session is not None and first.tls.session.id == b""
    assert tls.contexts[method].session_stats()["number"] == 0
    again = EapPeer(pki, method, client=client)
    again.tls = first.tls.context.wrap_bio(
        again._incoming, again._outgoing, server_hostname=SERVER_NAME, session=first.tls.session
    )
    asked: list[CheckPassword] = []

    def check(request: CheckPassword) -> bool:
        asked.append(request)
        return True

    step, _ = run(EapConversation((method,), tls.engine), again, check)
    assert isinstance(step, Success) and not again.tls.session_reused
    assert len(asked) == (1 if method is EapType.TTLS else 0)


def test_the_mppe_keys_are_the_two_halves_of_the_msk() -> None:
    msk = bytes(range(64))
    assert mppe_keys(msk) == (msk[:32], msk[32:])
    with pytest.raises(ValueError):
        mppe_keys(msk[:63])


def test_a_wrong_inner_password_fails(pki: Pki) -> None:
    step, _ = run(conversation(pki, (EapType.TTLS,)), EapPeer(pki, EapType.TTLS, password=b"no"))
    assert isinstance(step, Failure) and "wrong password" in step.why
    assert decode_eap(step.eap).code is EapCode.FAILURE


def test_the_inner_password_loses_its_nul_padding(pki: Pki) -> None:
    peer = EapPeer(pki, EapType.TTLS, password=b"correct horse\0\0\0")
    step, _ = run(conversation(pki, (EapType.TTLS,)), peer)
    assert isinstance(step, Success)


def test_eap_tls_with_a_client_certificate_from_the_ca(pki: Pki) -> None:
    peer = EapPeer(pki, EapType.TLS, client=pki.client)
    step, _ = run(conversation(pki, (EapType.TLS,)), peer)
    assert isinstance(step, Success), step
    assert step.method is EapType.TLS
    assert step.user == "alice@staff.test"  # the certificate's e-mail name
    assert step.msk == peer.msk()


def test_eap_tls_refuses_a_certificate_from_another_ca_with_an_alert_first(pki: Pki) -> None:
    peer = EapPeer(pki, EapType.TLS, client=pki.foreign_client)
    step, _ = run(conversation(pki, (EapType.TLS,)), peer)
    assert isinstance(step, Failure), step
    assert "CERTIFICATE_VERIFY_FAILED" in step.why
    assert peer.tls_error is not None and "UNKNOWN_CA" in peer.tls_error


def test_eap_tls_refuses_a_peer_without_a_certificate(pki: Pki) -> None:
    peer = EapPeer(pki, EapType.TLS)
    step, _ = run(conversation(pki, (EapType.TLS,)), peer)
    assert isinstance(step, Failure), step
    assert peer.tls_error is not None


def test_a_nak_moves_to_the_method_the_peer_names(pki: Pki) -> None:
    server = conversation(pki, (EapType.TTLS, EapType.TLS))
    peer = EapPeer(pki, EapType.TLS, client=pki.client)  # it Naks TTLS, naming TLS
    step, _ = run(server, peer)
    assert isinstance(step, Success) and step.method is EapType.TLS
    assert server.method is EapType.TLS


def test_a_peer_asking_for_peap_is_refused_cleanly(pki: Pki) -> None:
    server = conversation(pki, (EapType.TTLS, EapType.TLS))
    step, trips = run(server, EapPeer(pki, EapType.PEAP))
    assert isinstance(step, Failure) and "refused every method" in step.why
    assert trips == 3  # Identity, the TTLS start, the Nak


def test_a_nak_for_a_method_already_refused_fails(pki: Pki) -> None:
    server = conversation(pki, (EapType.TTLS,))
    peer = EapPeer(pki, EapType.PEAP, nak_with=(EapType.TTLS,))
    step, _ = run(server, peer)  # it Naks TTLS while naming TTLS: nothing left
    assert isinstance(step, Failure)


def test_small_fragments_both_ways(pki: Pki) -> None:
    server = conversation(pki, (EapType.TLS,), fragment_size=100)
    peer = EapPeer(pki, EapType.TLS, client=pki.client, fragment_size=90)
    step, trips = run(server, peer, limit=200)
    assert isinstance(step, Success), step
    assert step.msk == peer.msk()
    assert peer.acks_sent > 3 and peer.fragments_sent > 3  # both flights were cut up
    assert trips > 10


def test_fragmented_ttls_also_succeeds(pki: Pki) -> None:
    server = conversation(pki, (EapType.TTLS,), fragment_size=64)
    peer = EapPeer(pki, EapType.TTLS, fragment_size=64)
    step, _ = run(server, peer, limit=200)
    assert isinstance(step, Success) and step.msk == peer.msk()


def test_the_nas_may_ask_for_the_identity_itself(pki: Pki) -> None:
    server = conversation(pki, (EapType.TTLS,))
    peer = EapPeer(pki, EapType.TTLS)
    first = server.receive(encode_eap(EapCode.RESPONSE, 42, EapType.IDENTITY, b"alice@staff"))
    assert isinstance(first, Challenge)
    assert decode_eap(first.eap).identifier == 43
    step: Step = server.receive(peer.answer(first.eap))
    for _ in range(20):
        if isinstance(step, CheckPassword):
            step = server.password_checked(True)
        if not isinstance(step, Challenge):
            break
        step = server.receive(peer.answer(step.eap))
    assert isinstance(step, Success)


def test_a_stale_identifier_is_discarded_and_the_conversation_goes_on(pki: Pki) -> None:
    server = conversation(pki, (EapType.TTLS,))
    peer = EapPeer(pki, EapType.TTLS)
    first = server.receive(b"")
    assert isinstance(first, Challenge)
    answer = peer.answer(first.eap)
    second = server.receive(answer)
    assert isinstance(second, Challenge)
    assert isinstance(server.receive(answer), Discard)  # the same Identity again
    assert isinstance(server.receive(b""), Discard)  # an EAP-Start mid-way
    third = server.receive(peer.answer(second.eap))
    assert isinstance(third, Challenge)


def test_requests_success_and_failure_from_the_peer_are_discarded(pki: Pki) -> None:
    server = conversation(pki, (EapType.TTLS,))
    server.receive(b"")
    for code in (EapCode.SUCCESS, EapCode.FAILURE):
        assert isinstance(server.receive(encode_eap(code, 0)), Discard)
    assert isinstance(
        server.receive(encode_eap(EapCode.REQUEST, 0, EapType.IDENTITY, b"x")), Discard
    )


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x02",  # shorter than a header
        b"\x02\x01\x00\x09\x15\x80\x00",  # the L flag without its length
        b"\x02\x01\x00\x0b\x15\x00\x16\x03\x03\x00\x01",  # a TLS record cut short
        b"\x02\x01\x00\x0a\x15\x00garbage"[:10],  # not TLS, and short of a record header
        b"\x02\x01\x00\x10\x15\x00GET / HTTP",  # not TLS at all
        b"\x02\x01\x00\x0a\x15\x80\xff\xff\xff\xff",  # a 4 GiB message announced
        b"\x02\x01\x00\x06\x04\x00",  # an MD5-Challenge response to a TTLS request
    ],
)
def test_garbage_mid_handshake_fails_or_is_discarded(pki: Pki, garbage: bytes) -> None:
    server = conversation(pki, (EapType.TTLS,))
    peer = EapPeer(pki, EapType.TTLS)
    step = server.receive(b"")
    assert isinstance(step, Challenge)
    step = server.receive(peer.answer(step.eap))  # the TTLS Start
    assert isinstance(step, Challenge)
    start = decode_eap(step.eap)
    peer.answer(step.eap)  # the peer's ClientHello is not sent: garbage is, instead
    data = bytearray(garbage)
    if len(data) >= 2:
        data[1] = start.identifier
    result = server.receive(bytes(data))
    if isinstance(result, Challenge):  # OpenSSL's alert first, then the Failure
        alert = decode_eap(result.eap)
        assert decode_tls_frame(alert.data).data[:1] == b"\x15"
        ack = encode_tls_frame(b"")
        result = server.receive(encode_eap(EapCode.RESPONSE, alert.identifier, EapType.TTLS, ack))
    assert isinstance(result, Failure | Discard), result
    if isinstance(result, Failure):
        assert server.finished
        assert isinstance(server.receive(bytes(data)), Discard)


def test_garbage_after_the_handshake_fails(pki: Pki) -> None:
    server = conversation(pki, (EapType.TTLS,))
    peer = EapPeer(pki, EapType.TTLS)
    step = server.receive(b"")
    answers = 0
    while isinstance(step, Challenge) and not peer.complete:
        reply = peer.answer(step.eap)
        answers += 1
        if peer.complete:  # the peer's inner AVPs would go now: send junk records instead
            identifier = decode_eap(reply).identifier
            junk = encode_tls_frame(b"\x17\x03\x03\x00\x05hello")
            step = server.receive(encode_eap(EapCode.RESPONSE, identifier, EapType.TTLS, junk))
            break
        step = server.receive(reply)
    assert answers < 20
    assert isinstance(step, Challenge), step  # the alert (bad record MAC) goes first
    alert = decode_eap(step.eap)
    assert decode_tls_frame(alert.data).data[:1] == b"\x15"  # a TLS alert record
    ack = encode_eap(EapCode.RESPONSE, alert.identifier, EapType.TTLS, encode_tls_frame(b""))
    step = server.receive(ack)
    assert isinstance(step, Failure) and "TLS record failed" in step.why


def test_a_password_answer_without_a_question_is_a_bug() -> None:
    server = EapConversation((EapType.TTLS,), lambda method: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(RuntimeError):
        server.password_checked(True)


def test_only_tls_methods_can_be_offered() -> None:
    with pytest.raises(ValueError):
        EapConversation((EapType.MD5_CHALLENGE,), lambda method: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(ValueError):
        EapConversation((), lambda method: None)  # type: ignore[arg-type,return-value]
