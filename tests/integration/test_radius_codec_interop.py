"""The RADIUS codec against FreeRADIUS's radclient (freeradius-utils), on loopback: we read
the requests radclient builds (its User-Password hiding, its Message-Authenticator), and
radclient accepts the replies we build (Response Authenticator, Message-Authenticator first,
VLAN attributes) and refuses one signed with another secret."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from netaccess.config.radius_dictionary import standard_dictionary
from netaccess.proto.radius import auth
from netaccess.proto.radius.dictionary import named
from netaccess.proto.radius.packet import Code, decode_packet

pytestmark = pytest.mark.integration

SECRET = "interop-secret"
MAC = "aabbccddeeff"
RADCLIENT_SECONDS = 20


@dataclass
class Responder:
    """A UDP socket on loopback answering each Access-Request with an Access-Accept built by
    our codec, signed with `reply_secret`; it notes what it read from each request."""

    reply_secret: bytes
    sock: socket.socket = field(init=False)
    seen: list[dict[str, object]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def serve(self) -> None:
        dictionary = standard_dictionary()
        while not self.stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            try:
                packet = decode_packet(data)
                has_ma = auth.verify_message_authenticator(data, packet, SECRET.encode())
                values = named(
                    dictionary.decode(
                        packet, secret=SECRET.encode(), authenticator=packet.authenticator
                    )
                )
                self.seen.append({"message_authenticator": has_ma, **values})
                attributes = [
                    *dictionary.encode("Tunnel-Type", "VLAN"),
                    *dictionary.encode("Tunnel-Medium-Type", "IEEE-802"),
                    *dictionary.encode("Tunnel-Private-Group-Id", "30"),
                    *dictionary.encode("Session-Timeout", 900),
                    *dictionary.encode("Termination-Action", "RADIUS-Request"),
                ]
                reply = auth.encode_reply(
                    Code.ACCESS_ACCEPT,
                    packet.identifier,
                    packet.authenticator,
                    attributes,
                    self.reply_secret,
                )
                self.sock.sendto(reply, peer)
            except Exception as exc:  # reported by the test, not lost in the thread
                self.problems.append(repr(exc))


@pytest.fixture
def responder(request: pytest.FixtureRequest) -> Iterator[Responder]:
    running = Responder(getattr(request, "param", SECRET).encode())
    running.thread.start()
    try:
        yield running
    finally:
        running.stop.set()
        running.thread.join(timeout=5)
        running.sock.close()


def radclient(port: int, request: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("radclient") is None:
        pytest.fail("radclient is missing: tools/bootstrap installs freeradius-utils")
    return subprocess.run(
        ["radclient", "-x", "-r", "1", "-t", "3", f"127.0.0.1:{port}", "auth", SECRET],
        input=request,
        capture_output=True,
        text=True,
        timeout=RADCLIENT_SECONDS,
        check=False,
    )


MAB = (
    f'User-Name = "{MAC}", User-Password = "{MAC}", Service-Type = Call-Check, '
    f'Calling-Station-Id = "AA-BB-CC-DD-EE-FF", Message-Authenticator = 0x00\n'
)


def test_radclient_accepts_our_accept_and_we_read_its_request(responder: Responder) -> None:
    done = radclient(responder.port, MAB)
    assert done.returncode == 0, done.stdout + done.stderr
    received = done.stdout.split("Received Access-Accept", 1)[1].splitlines()[1:]
    assert received[0].strip().startswith("Message-Authenticator = 0x")  # first, as sent
    assert [line.strip() for line in received[1:6]] == [
        "Tunnel-Type:0 = VLAN",
        "Tunnel-Medium-Type:0 = IEEE-802",
        'Tunnel-Private-Group-Id:0 = "30"',
        "Session-Timeout = 900",
        "Termination-Action = RADIUS-Request",
    ]
    assert responder.problems == []
    (seen,) = responder.seen
    assert seen["message_authenticator"] is True
    assert seen["User-Password"] == [MAC]  # radclient's hiding, revealed by ours
    assert seen["Service-Type"] == [10]
    assert seen["Calling-Station-Id"] == ["AA-BB-CC-DD-EE-FF"]


@pytest.mark.parametrize("responder", ["another-secret"], indirect=True)
def test_radclient_refuses_a_reply_signed_with_another_secret(responder: Responder) -> None:
    done = radclient(responder.port, MAB)
    assert "Received Access-Accept" not in done.stdout
    assert done.returncode != 0
    assert "invalid Message-Authenticator" in done.stderr
    assert len(responder.seen) >= 1  # it did get our reply, and threw it away
