"""The RADIUS race reads from eapol_test's log which TLS each server chose: it refuses to
compare two servers whose handshakes differ (a costlier group for one side, say)."""

from __future__ import annotations

from tools.bench.radius import machine_ticks, negotiated

_LOG = """OpenSSL: Server selected cipher suite 0x{suite}
SSL: SSL_connect:SSLv3/TLS read server certificate
OpenSSL: RX ver=0x303 content_type=22 (handshake/server key exchange)
OpenSSL: Message - hexdump(len=115): 0c 00 00 6f 03 {group} 20 f9 af 99
"""


def test_the_suite_and_group_are_read() -> None:
    assert negotiated(_LOG.format(suite="c02c", group="00 1d")) == {
        "cipher_suite": "0xc02c",
        "key_exchange": "x25519",
    }
    assert negotiated(_LOG.format(suite="c02b", group="00 17"))["key_exchange"] == "secp256r1"


def test_an_unnamed_group_is_shown_by_number() -> None:
    assert negotiated(_LOG.format(suite="c02c", group="01 00"))["key_exchange"] == "0x0100"


def test_a_log_without_them_gives_none() -> None:
    assert negotiated("EAP: Status notification: completion (param=success)\n") == {
        "cipher_suite": None,
        "key_exchange": None,
    }


def test_machine_ticks_split_busy_from_idle() -> None:
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat = "cpu  100 5 40 800 20 3 7 9 0 0\ncpu0 50 2 20 400 10 1 3 4 0 0\n"
    assert machine_ticks(stat) == (100 + 5 + 40 + 3 + 7, 800 + 20)


def test_machine_ticks_read_this_machine() -> None:
    busy, idle = machine_ticks()
    assert busy > 0 and idle >= 0
