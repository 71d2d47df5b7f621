"""What the role sets hold for an endpoint: its MAC when it has one, its addresses otherwise,
and nothing while it is quarantined (the ruleset's default for an endpoint in no set)."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from netaccess.enforce.intents import Membership, MembershipChange
from netaccess.enforce.kernel_state import _same_mac_moves, role_changes
from netaccess.enforce.ruleset import MAC as MAC_PATTERN
from netaccess.enforce.sets import RoleChange, normal_macs

MAC = "02:00:5e:00:00:0a"
L2 = Membership("full", MAC, ("198.18.0.10",), ("2001:db8::10",))
ROUTED = Membership("full", None, ("10.20.0.5",), ("2001:db8:20::5",))


def test_an_l2_endpoint_is_in_the_sets_by_its_mac_alone() -> None:
    assert L2.set_elements() == (MAC, (), ())


def test_a_routed_endpoint_is_in_the_sets_by_its_addresses() -> None:
    assert ROUTED.set_elements() == (None, ("10.20.0.5",), ("2001:db8:20::5",))


def test_a_quarantined_endpoint_is_in_no_set() -> None:
    assert Membership("quarantine", MAC, ("198.18.0.10",)).set_elements() == (None, (), ())
    assert Membership("quarantine", None, ("10.20.0.5",)).set_elements() == (None, (), ())


def test_admitting_an_l2_endpoint_adds_its_mac_and_flushes_its_addresses() -> None:
    change = MembershipChange(Membership("quarantine", MAC, L2.ipv4, L2.ipv6), L2)
    assert role_changes(change) == [RoleChange(MAC, (), (), None, "full")]
    assert change.addresses() == ("198.18.0.10", "2001:db8::10")


def test_sending_an_l2_endpoint_back_to_quarantine_takes_its_mac_out() -> None:
    change = MembershipChange(L2, Membership("quarantine", MAC, L2.ipv4))
    assert role_changes(change) == [RoleChange(MAC, (), (), "full", None)]


def test_moving_between_two_roles_is_one_move() -> None:
    change = MembershipChange(L2, Membership("remediation", MAC, L2.ipv4))
    assert role_changes(change) == [RoleChange(MAC, (), (), "full", "remediation")]


def test_renumbering_an_l2_endpoint_changes_no_set() -> None:
    assert role_changes(MembershipChange(L2, Membership("full", MAC, ("198.18.0.99",)))) == []


def test_a_new_quarantined_endpoint_changes_no_set() -> None:
    assert role_changes(MembershipChange(None, Membership("quarantine", MAC))) == []


def test_a_routed_endpoint_that_moves_and_loses_an_address() -> None:
    change = MembershipChange(ROUTED, Membership("remediation", None, ("10.20.0.6",)))
    assert role_changes(change) == [
        RoleChange(None, ("10.20.0.6",), (), None, "remediation"),
        RoleChange(None, ("10.20.0.5",), ("2001:db8:20::5",), "full", None),
    ]


def test_a_routed_endpoint_that_gains_an_address_in_its_role_adds_only_that_address() -> None:
    change = MembershipChange(ROUTED, Membership("full", None, ("10.20.0.5", "10.20.0.6")))
    assert role_changes(change) == [
        RoleChange(None, ("10.20.0.6",), (), None, "full"),
        RoleChange(None, (), ("2001:db8:20::5",), "full", None),
    ]


ROLES = st.sampled_from(["quarantine", "remediation", "full"])
MACS = st.one_of(st.none(), st.sampled_from([MAC, "02:00:5e:00:00:0b"]))
V4 = st.lists(st.sampled_from(["10.0.0.1", "10.0.0.2", "10.0.0.3"]), unique=True).map(tuple)
V6 = st.lists(st.sampled_from(["2001:db8::1", "2001:db8::2"]), unique=True).map(tuple)
MEMBERSHIPS = st.builds(Membership, ROLES, MACS, V4, V6)


def placement(membership: Membership | None) -> dict[str, str]:
    """element -> role, as the sets hold it for `membership`."""
    if membership is None:
        return {}
    mac, v4, v6 = membership.set_elements()
    return {e: membership.role for e in (*([mac] if mac else []), *v4, *v6)}


@given(st.one_of(st.none(), MEMBERSHIPS), MEMBERSHIPS)
def test_the_moves_take_the_sets_from_the_old_placement_to_the_new(
    old: Membership | None, new: Membership
) -> None:
    sets = placement(old)
    for move in role_changes(MembershipChange(old, new)):
        for element in (*([move.mac] if move.mac else []), *move.ipv4, *move.ipv6):
            assert sets.get(element) == move.old_role
            if move.new_role is None:
                del sets[element]
            else:
                sets[element] = move.new_role
    assert sets == placement(new)


# -- the burst fast paths: same answers as the general ones -----------------------------------

L2_MEMBERSHIPS = st.builds(Membership, ROLES, st.sampled_from([MAC, "02:00:5e:00:00:0b"]), V4, V6)


@given(st.lists(st.tuples(st.one_of(st.none(), MEMBERSHIPS), MEMBERSHIPS), max_size=6))
def test_the_burst_grouping_agrees_with_role_changes_one_by_one(
    pairs: list[tuple[Membership | None, Membership]],
) -> None:
    changes = [MembershipChange(old, new) for old, new in pairs]
    burst = _same_mac_moves(changes)
    same_mac = all(
        c.old is not None and c.new.mac is not None and c.old.mac == c.new.mac for c in changes
    )
    assert (burst is not None) == same_mac
    if burst is None:
        return
    by_pair, flushed = burst
    grouped = Counter((mac, old, new) for (old, new), macs in by_pair.items() for mac in macs)
    one_by_one = Counter(
        (move.mac, move.old_role, move.new_role) for c in changes for move in role_changes(c)
    )
    assert grouped == one_by_one
    assert set(flushed) == {address for c in changes for address in c.addresses()}


@given(st.lists(st.tuples(L2_MEMBERSHIPS, ROLES), min_size=1, max_size=6))
def test_a_burst_of_l2_endpoints_always_takes_the_fast_path(
    pairs: list[tuple[Membership, str]],
) -> None:
    changes = [MembershipChange(old, Membership(role, old.mac, old.ipv4)) for old, role in pairs]
    assert _same_mac_moves(changes) is not None


HEX = "0123456789abcdefABCDEF"
MAC_LIKE = st.one_of(
    st.lists(st.text(HEX, min_size=2, max_size=2), min_size=6, max_size=6).map(":".join),
    st.text(HEX + ": -\n\t\u00b2", max_size=19),
    st.text(max_size=18),
)


@given(st.lists(MAC_LIKE, max_size=5))
def test_normal_macs_agrees_with_the_mac_pattern(macs: list[str]) -> None:
    assert normal_macs(macs) == all(MAC_PATTERN.match(mac) for mac in macs)
