"""The EAP conversation table (bounded, expiring, time as a parameter) and whom an identity
names (proto.radius.eap_sessions)."""

from __future__ import annotations

import pytest

from netaccess.proto.radius.eap_sessions import ConversationTable, split_identity


def test_a_conversation_lives_its_timeout_after_each_round_trip() -> None:
    table: ConversationTable[str] = ConversationTable(capacity=4, timeout=10)
    assert table.add(b"s1", "one", now=0)
    assert table.get(b"s1", now=9) == "one"
    assert table.get(b"s1", now=18) == "one"  # each use restarts the clock
    assert table.get(b"s1", now=28.5) is None
    assert len(table) == 0


def test_a_full_table_refuses_new_ones_until_some_expire() -> None:
    table: ConversationTable[int] = ConversationTable(capacity=2, timeout=10)
    assert table.add(b"a", 1, now=0) and table.add(b"b", 2, now=5)
    assert not table.add(b"c", 3, now=6)
    assert table.get(b"a", now=6) == 1 and table.get(b"b", now=6) == 2
    assert table.add(b"c", 3, now=16.5)  # a and b, last used at 6, are gone
    assert table.get(b"a", now=16.5) is None


def test_removed_and_expired_ones_are_gone() -> None:
    table: ConversationTable[int] = ConversationTable(capacity=8, timeout=10)
    for i in range(5):
        table.add(bytes([i]), i, now=i)
    table.remove(b"\x00")
    assert table.expire(now=12.5) == 2  # those added at 1 and 2
    assert len(table) == 2


def test_a_state_cannot_be_reused_and_the_bounds_must_be_positive() -> None:
    table: ConversationTable[int] = ConversationTable(capacity=8, timeout=10)
    table.add(b"x", 1, now=0)
    with pytest.raises(KeyError):
        table.add(b"x", 2, now=1)
    with pytest.raises(ValueError):
        ConversationTable(capacity=0, timeout=1)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("alice", ("staff", "alice")),
        ("alice@guests", ("guests", "alice")),
        ("guests\\alice", ("guests", "alice")),
        ("alice@example.com", ("staff", "alice@example.com")),  # not a realm: a whole name
        ("nowhere\\alice", ("staff", "nowhere\\alice")),
        ("@guests", ("staff", "@guests")),
        ("guests\\", ("staff", "guests\\")),
        ("a@b@guests", ("guests", "a@b")),
    ],
)
def test_an_identity_names_its_realm_only_when_it_is_one(
    name: str, expected: tuple[str, str]
) -> None:
    assert split_identity(name, {"staff", "guests"}, "staff") == expected
