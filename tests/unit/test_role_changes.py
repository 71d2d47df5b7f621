"""What the role sets hold for an endpoint: its MAC when it has one, its addresses otherwise."""

from __future__ import annotations

from netaccess.enforce.intents import Membership, MembershipChange
from netaccess.enforce.kernel_state import role_changes
from netaccess.enforce.sets import RoleChange

MAC = "02:00:5e:00:00:0a"
L2 = Membership("quarantine", MAC, ("198.18.0.10",), ("2001:db8::10",))
ROUTED = Membership("quarantine", None, ("10.20.0.5",), ("2001:db8:20::5",))


def test_an_l2_endpoint_is_in_the_sets_by_its_mac_alone() -> None:
    assert L2.set_elements() == (MAC, (), ())


def test_a_routed_endpoint_is_in_the_sets_by_its_addresses() -> None:
    assert ROUTED.set_elements() == (None, ("10.20.0.5",), ("2001:db8:20::5",))


def test_promoting_an_l2_endpoint_moves_only_its_mac_but_flushes_its_addresses() -> None:
    change = MembershipChange(L2, Membership("full", MAC, L2.ipv4, L2.ipv6))
    assert role_changes(change) == [RoleChange(MAC, (), (), "quarantine", "full")]
    assert change.addresses() == ("198.18.0.10", "2001:db8::10")


def test_renumbering_an_l2_endpoint_changes_no_set() -> None:
    renumbered = MembershipChange(L2, Membership("quarantine", MAC, ("198.18.0.99",)))
    assert role_changes(renumbered) == []


def test_a_routed_endpoint_that_loses_an_address_takes_it_out_of_its_old_role() -> None:
    change = MembershipChange(ROUTED, Membership("full", None, ("10.20.0.6",)))
    assert role_changes(change) == [
        RoleChange(None, ("10.20.0.6",), (), "quarantine", "full"),
        RoleChange(None, ("10.20.0.5",), ("2001:db8:20::5",), "quarantine", None),
    ]


def test_a_first_sighting_has_no_old_role() -> None:
    assert role_changes(MembershipChange(None, L2)) == [RoleChange(MAC, (), (), None, "quarantine")]


def test_a_routed_endpoint_that_gains_an_address_in_its_role_adds_only_that_address() -> None:
    change = MembershipChange(ROUTED, Membership("quarantine", None, ("10.20.0.5", "10.20.0.6")))
    assert role_changes(change) == [
        RoleChange(None, ("10.20.0.6",), (), None, "quarantine"),
        RoleChange(None, (), ("2001:db8:20::5",), "quarantine", None),
    ]
