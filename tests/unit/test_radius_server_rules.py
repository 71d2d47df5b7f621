"""Which NAS datagrams are answered (proto/radius/server.py: the BlastRADIUS rules) and what
MAB decides (policy/radius_mab.py: the MAC in any format, the role's VLAN attributes)."""

from __future__ import annotations

import pytest

from netaccess.config.radius_dictionary import standard_dictionary
from netaccess.policy.radius_mab import mab_request, vlan_attributes
from netaccess.policy.roles import Role
from netaccess.proto.radius import auth
from netaccess.proto.radius.packet import (
    EAP_MESSAGE,
    PROXY_STATE,
    USER_NAME,
    Code,
    Packet,
    decode_packet,
)
from netaccess.proto.radius.server import (
    ACCOUNTING_CODES,
    AUTH_CODES,
    Drop,
    NasPolicy,
    accept_request,
)

SECRET = b"nas-secret"
STRICT = NasPolicy(SECRET)
LAX = NasPolicy(SECRET, require_message_authenticator=False)
DICTIONARY = standard_dictionary()


def access_request(attributes: list[tuple[int, bytes]], ma: bool, secret: bytes = SECRET) -> bytes:
    return auth.encode_request(Code.ACCESS_REQUEST, 1, attributes, secret, message_authenticator=ma)


def test_a_request_with_a_good_message_authenticator_is_accepted() -> None:
    result = accept_request(access_request([(USER_NAME, b"x")], ma=True), STRICT, AUTH_CODES)
    assert isinstance(result, Packet) and result.message_authenticator_at is not None


def test_a_request_without_message_authenticator_is_dropped_by_default() -> None:
    data = access_request([(USER_NAME, b"x")], ma=False)
    assert accept_request(data, STRICT, AUTH_CODES) is Drop.MISSING_MESSAGE_AUTHENTICATOR


def test_with_the_requirement_off_an_ma_less_request_is_accepted() -> None:
    result = accept_request(access_request([(USER_NAME, b"x")], ma=False), LAX, AUTH_CODES)
    assert isinstance(result, Packet) and result.message_authenticator_at is None


def test_with_the_requirement_off_an_ma_less_request_with_proxy_state_is_dropped() -> None:
    data = access_request([(USER_NAME, b"x"), (PROXY_STATE, b"p")], ma=False)
    assert accept_request(data, LAX, AUTH_CODES) is Drop.PROXY_STATE_WITHOUT_MA


def test_an_eap_message_without_message_authenticator_is_always_dropped() -> None:
    data = access_request([(USER_NAME, b"x"), (EAP_MESSAGE, b"\x02\x01\x00\x05\x01")], ma=False)
    assert accept_request(data, LAX, AUTH_CODES) is Drop.EAP_WITHOUT_MA


def test_a_wrong_secret_is_dropped() -> None:
    data = access_request([(USER_NAME, b"x")], ma=True, secret=b"other")
    assert accept_request(data, STRICT, AUTH_CODES) is Drop.BAD_MESSAGE_AUTHENTICATOR


def test_accounting_requests_need_their_authenticator_to_verify() -> None:
    good = auth.encode_request(Code.ACCOUNTING_REQUEST, 2, [(44, b"s")], SECRET)
    assert isinstance(accept_request(good, STRICT, ACCOUNTING_CODES), Packet)
    bad = auth.encode_request(Code.ACCOUNTING_REQUEST, 2, [(44, b"s")], b"other")
    assert accept_request(bad, STRICT, ACCOUNTING_CODES) is Drop.BAD_AUTHENTICATOR


def test_codes_the_port_does_not_serve_and_garbage_are_dropped() -> None:
    data = access_request([(USER_NAME, b"x")], ma=True)
    assert accept_request(data, STRICT, ACCOUNTING_CODES) is Drop.UNKNOWN_CODE
    assert accept_request(b"\x01\x01\x00", STRICT, AUTH_CODES) is Drop.MALFORMED


# --- MAB ------------------------------------------------------------------------------------


def decoded_request(user: str, password: str, calling: str | None = None):  # type: ignore[no-untyped-def]
    authenticator = bytes(range(16))
    attributes = [
        *DICTIONARY.encode("User-Name", user),
        *DICTIONARY.encode("User-Password", password, secret=SECRET, authenticator=authenticator),
        *DICTIONARY.encode("Service-Type", "Call-Check"),
    ]
    if calling is not None:
        attributes += DICTIONARY.encode("Calling-Station-Id", calling)
    data = auth.encode_request(
        Code.ACCESS_REQUEST, 1, attributes, SECRET, authenticator=authenticator
    )
    packet = decode_packet(data)
    return DICTIONARY.decode(packet, secret=SECRET, authenticator=packet.authenticator)


@pytest.mark.parametrize(
    ("user", "password"),
    [
        ("aabbccddeeff", "aabbccddeeff"),
        ("AA-BB-CC-DD-EE-FF", "AA-BB-CC-DD-EE-FF"),
        ("aa:bb:cc:dd:ee:ff", "aabbccddeeff"),
        ("aabb.ccdd.eeff", "AABBCCDDEEFF"),
    ],
)
def test_mab_names_the_mac_in_any_common_format(user: str, password: str) -> None:
    request = mab_request(decoded_request(user, password, "AA-BB-CC-DD-EE-FF"))
    assert request is not None
    assert (request.mac, request.calling_station) == ("aa:bb:cc:dd:ee:ff", "aa:bb:cc:dd:ee:ff")


@pytest.mark.parametrize(
    ("user", "password"),
    [("aabbccddeeff", "aabbccddee00"), ("alice", "alice"), ("aabbccddeeff", "secret")],
)
def test_a_request_that_is_not_mab_is_not_taken_for_one(user: str, password: str) -> None:
    assert mab_request(decoded_request(user, password)) is None


def test_a_role_gives_its_vlan_and_a_reauthentication_timer() -> None:
    role = Role("full", vlan=20, captive=False, recheck_interval=900.0)
    assert vlan_attributes(role) == [
        ("Tunnel-Type", "VLAN"),
        ("Tunnel-Medium-Type", "IEEE-802"),
        ("Tunnel-Private-Group-Id", "20"),
        ("Session-Timeout", 900),
        ("Termination-Action", "RADIUS-Request"),
    ]
    assert len(vlan_attributes(Role("q", vlan=999, captive=True))) == 3
