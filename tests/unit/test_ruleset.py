"""The generated nftables ruleset (pure): layout, default deny, captive redirect, elements; and
how RoleSets folds a batch of role changes into one transaction."""

from __future__ import annotations

import ipaddress
import re
import secrets
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netaccess.enforce import (
    ElementUpdate,
    RoleChange,
    RoleMembers,
    RoleSets,
    RulesetSpec,
    dispatch_order,
    render_ruleset,
    set_names,
)
from netaccess.enforce.ruleset import _allow_rule
from netaccess.policy.roles import (
    QUARANTINE,
    REMEDIATION,
    Destination,
    Protocol,
    Role,
    builtin_role,
)

REMEDIATION_SERVERS = Destination(ipaddress.ip_network("198.19.0.10/32"), Protocol.TCP, (80, 443))
FULL = Role(
    "full",
    vlan=10,
    captive=False,
    allow=(
        Destination(ipaddress.ip_network("0.0.0.0/0")),
        Destination(ipaddress.ip_network("::/0")),
    ),
)
GUEST = Role("guest", vlan=20, captive=True, allow=(Destination(ipaddress.ip_network("::/0")),))


def spec(**overrides: Any) -> RulesetSpec:
    values: dict[str, Any] = {
        "roles": (
            builtin_role(QUARANTINE),
            Role(REMEDIATION, vlan=998, captive=True, allow=(REMEDIATION_SERVERS,)),
            FULL,
            GUEST,
        ),
        "access_interfaces": ("acc0", "acc1"),
        "upstream_interfaces": ("up0",),
    }
    values.update(overrides)
    return RulesetSpec(**values)


def chains(text: str) -> dict[str, list[str]]:
    """Chain name -> its rules (declaration lines such as `type ... hook` left out)."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        opened = re.fullmatch(r"\tchain (\w+) \{", line)
        if opened:
            current = found.setdefault(opened.group(1), [])
        elif line == "\t}":
            current = None
        elif current is not None and not line.strip().startswith("type "):
            current.append(line.strip())
    return found


def sets(text: str) -> dict[str, list[str]]:
    """Set name -> its lines (type, flags, elements)."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        opened = re.fullmatch(r"\tset (\w+) \{", line)
        if opened:
            current = found.setdefault(opened.group(1), [])
        elif line == "\t}":
            current = None
        elif current is not None:
            current.append(line.strip())
    return found


def base_chain_header(text: str, chain: str) -> str:
    lines = text.splitlines()
    return lines[lines.index(f"\tchain {chain} {{") + 1].strip()


# -- the table as a whole -----------------------------------------------------------------------


def test_same_spec_renders_identical_text() -> None:
    assert render_ruleset(spec()) == render_ruleset(spec())


def test_file_replaces_the_table_in_one_transaction() -> None:
    lines = [line for line in render_ruleset(spec()).splitlines() if not line.startswith("#")]
    assert lines[:2] == ["table inet netaccess {}", "delete table inet netaccess"]
    assert lines.count("table inet netaccess {") == 1


def test_every_role_has_its_three_sets_and_its_chain() -> None:
    text = render_ruleset(spec())
    for role in spec().roles:
        names = set_names(role.name)
        assert sets(text)[names.mac][0] == "type ether_addr"
        assert sets(text)[names.ipv4][0] == "type ipv4_addr"
        assert sets(text)[names.ipv6][0] == "type ipv6_addr"
        assert names.chain in chains(text)


def test_role_sets_are_dynamic_hash_sets_without_intervals() -> None:
    for lines in sets(render_ruleset(spec())).values():
        assert "flags dynamic" in lines
        assert not any("interval" in line for line in lines)


def test_set_names_derive_from_the_role_name() -> None:
    names = set_names("staff_2")
    assert (names.mac, names.ipv4, names.ipv6, names.chain) == (
        "role_staff_2_mac",
        "role_staff_2_v4",
        "role_staff_2_v6",
        "role_staff_2",
    )


@pytest.mark.parametrize("name", ["", "Staff", "2fa", "a-b", "x" * 25, "a b"])
def test_set_names_refuse_a_role_name_nft_could_misread(name: str) -> None:
    with pytest.raises(ValueError, match="role name"):
        set_names(name)


# -- default deny -------------------------------------------------------------------------------


def test_last_rule_of_from_access_goes_to_quarantine() -> None:
    assert chains(render_ruleset(spec()))["from_access"][-1] == "goto role_quarantine"


def test_from_access_only_dispatches_on_membership_to_role_chains() -> None:
    rules = chains(render_ruleset(spec()))["from_access"]
    role_chains = {set_names(role.name).chain for role in spec().roles}
    for rule in rules[:-1]:
        match = re.fullmatch(r"(ether|ip|ip6) saddr @(role_\w+) goto (role_\w+)", rule)
        assert match is not None, rule
        assert match.group(3) in role_chains
        assert match.group(2).startswith(match.group(3) + "_")
    assert not any("accept" in rule for rule in rules)


def test_forward_sends_access_traffic_to_the_dispatch_before_any_accept() -> None:
    text = render_ruleset(spec())
    rules = chains(text)["forward"]
    assert rules[0] == ('iifname vmap { "acc0" : goto from_access, "acc1" : goto from_access }')
    for rule in rules[1:]:
        # Whatever follows only ever sees packets from other interfaces, and accepts none
        # that arrive on an access interface.
        assert rule.startswith('iifname { "up0" }'), rule


def test_forward_drops_what_no_rule_accepts() -> None:
    assert base_chain_header(render_ruleset(spec()), "forward") == (
        "type filter hook forward priority filter; policy drop;"
    )


def test_established_traffic_is_accepted_only_towards_access() -> None:
    accepts = [r for r in chains(render_ruleset(spec()))["forward"] if r.endswith("accept")]
    assert accepts == [
        'iifname { "up0" } oifname { "acc0", "acc1" } ct state established,related accept'
    ]


def test_established_return_needs_no_upstream_list() -> None:
    rules = chains(render_ruleset(spec(upstream_interfaces=())))["forward"]
    assert rules[1] == 'oifname { "acc0", "acc1" } ct state established,related accept'


def test_every_role_chain_ends_in_a_reject() -> None:
    text = render_ruleset(spec())
    for role in spec().roles:
        rules = chains(text)[set_names(role.name).chain]
        assert rules[-1] == "reject with icmpx type admin-prohibited"


def test_dispatch_tries_builtin_roles_first() -> None:
    roles = (FULL, builtin_role(REMEDIATION), GUEST, builtin_role(QUARANTINE))
    assert [r.name for r in dispatch_order(roles)] == [QUARANTINE, REMEDIATION, "full", "guest"]


# -- role chains --------------------------------------------------------------------------------


def test_captive_role_allows_dns_and_dhcp_and_resets_https() -> None:
    rules = chains(render_ruleset(spec()))["role_quarantine"]
    assert rules == [
        "counter",
        "meta l4proto { tcp, udp } th dport 53 accept",
        "udp dport { 67, 547 } accept",
        "tcp dport 443 reject with tcp reset",
        "reject with icmpx type admin-prohibited",
    ]


def test_captive_role_allow_comes_before_the_https_reset() -> None:
    rules = chains(render_ruleset(spec()))["role_remediation"]
    allow = rules.index("ip daddr 198.19.0.10/32 tcp dport { 80, 443 } accept")
    assert allow < rules.index("tcp dport 443 reject with tcp reset")


def test_full_access_role_accepts_both_families_and_nothing_captive() -> None:
    assert chains(render_ruleset(spec()))["role_full"] == [
        "counter",
        "meta nfproto ipv4 accept",
        "meta nfproto ipv6 accept",
        "reject with icmpx type admin-prohibited",
    ]


@pytest.mark.parametrize(
    ("destination", "rule"),
    [
        (Destination(ipaddress.ip_network("10.1.0.0/16")), "ip daddr 10.1.0.0/16 accept"),
        (
            Destination(ipaddress.ip_network("10.1.2.3/32"), Protocol.TCP, (443,)),
            "ip daddr 10.1.2.3/32 tcp dport 443 accept",
        ),
        (
            Destination(ipaddress.ip_network("10.1.2.0/24"), Protocol.UDP, (123, 514)),
            "ip daddr 10.1.2.0/24 udp dport { 123, 514 } accept",
        ),
        (
            Destination(ipaddress.ip_network("10.1.2.0/24"), Protocol.UDP),
            "ip daddr 10.1.2.0/24 meta l4proto udp accept",
        ),
        (
            Destination(ipaddress.ip_network("2001:db8::/32"), Protocol.ICMP),
            "ip6 daddr 2001:db8::/32 meta l4proto ipv6-icmp accept",
        ),
        (
            Destination(ipaddress.ip_network("192.0.2.0/24"), Protocol.ICMP),
            "ip daddr 192.0.2.0/24 meta l4proto icmp accept",
        ),
    ],
)
def test_allow_entries_render_with_protocol_and_ports(destination: Destination, rule: str) -> None:
    role = Role("printers", vlan=30, captive=False, allow=(destination,))
    rules = chains(render_ruleset(spec(roles=(*spec().roles, role))))["role_printers"]
    assert rules == ["counter", rule, "reject with icmpx type admin-prohibited"]


def test_every_role_chain_counts_what_it_judges_before_any_verdict() -> None:
    found = chains(render_ruleset(spec()))
    for role in spec().roles:
        assert found[f"role_{role.name}"][0] == "counter"


# -- input and the captive redirect -------------------------------------------------------------


def test_input_from_access_accepts_icmp_and_nd_before_anything_else() -> None:
    text = render_ruleset(spec())
    assert chains(text)["input"] == [
        'iifname vmap { "acc0" : goto input_from_access, "acc1" : goto input_from_access }'
    ]
    rules = chains(text)["input_from_access"]
    assert rules[0] == "meta l4proto { icmp, ipv6-icmp } accept"
    assert rules[-1] == "drop"


def test_input_leaves_other_interfaces_alone() -> None:
    assert base_chain_header(render_ruleset(spec()), "input").endswith("policy accept;")


def test_input_accepts_the_portal_and_pt_tls_ports() -> None:
    text = render_ruleset(spec(portal_http_port=8080, portal_https_port=8443, pt_tls_port=271))
    assert "tcp dport { 8080, 8443, 271 } accept" in chains(text)["input_from_access"]


def test_captive_roles_are_redirected_and_non_captive_roles_return() -> None:
    rules = chains(render_ruleset(spec()))["nat_from_access"]
    for role in dispatch_order(spec().roles):
        names = set_names(role.name)
        if not role.captive:
            verdict = "return"
        elif role.allow:
            verdict = f"goto nat_{names.chain}"
        else:
            verdict = "goto captive_http"
        for match in (f"ether saddr @{names.mac}", f"ip saddr @{names.ipv4}"):
            assert f"{match} {verdict}" in rules
    assert rules[-1] == "goto captive_http"


def test_a_captive_roles_allowed_destinations_are_not_redirected() -> None:
    # The remediation role may reach its remediation servers on port 80: those flows skip
    # the portal redirect; every other HTTP flow of the role is still redirected.
    rules = chains(render_ruleset(spec()))[f"nat_{set_names(REMEDIATION).chain}"]
    allowed = _allow_rule(REMEDIATION_SERVERS).removesuffix(" accept")
    assert rules == [f"{allowed} return", "goto captive_http"]
    assert "nat_role_quarantine" not in chains(render_ruleset(spec()))


def test_redirect_lands_on_the_portal_listener() -> None:
    rules = chains(render_ruleset(spec(portal_http_port=8080)))["captive_http"]
    assert rules == ["tcp dport 80 fib daddr type != local redirect to :8080"]


def test_prerouting_is_a_dstnat_chain_for_access_interfaces_only() -> None:
    text = render_ruleset(spec())
    assert base_chain_header(text, "prerouting") == (
        "type nat hook prerouting priority dstnat; policy accept;"
    )
    assert chains(text)["prerouting"] == [
        'iifname vmap { "acc0" : goto nat_from_access, "acc1" : goto nat_from_access }'
    ]


# -- members and preconditions ------------------------------------------------------------------


def test_members_render_as_normalised_sorted_elements() -> None:
    members = {
        "full": RoleMembers(
            macs=("02:00:5E:00:00:02", "02:00:5e:00:00:01"),
            ipv4=("198.18.0.20", "198.18.0.3"),
            ipv6=("2001:DB8:0:0::1",),
        )
    }
    found = sets(render_ruleset(spec(members=members)))
    assert found["role_full_mac"][2:] == [
        "elements = {",
        "02:00:5e:00:00:01,",
        "02:00:5e:00:00:02,",
        "}",
    ]
    assert found["role_full_v4"][3:5] == ["198.18.0.20,", "198.18.0.3,"]
    assert found["role_full_v6"][3] == "2001:db8::1,"
    assert not any("elements" in line for line in found["role_quarantine_mac"])


@pytest.mark.parametrize(
    "members",
    [
        RoleMembers(macs=("02:00:5e:00:00",)),
        RoleMembers(ipv4=("198.18.0.256",)),
        RoleMembers(ipv4=("2001:db8::1",)),
        RoleMembers(ipv6=("198.18.0.1",)),
        RoleMembers(macs=("02:00:5e:00:00:01 } accept",)),
    ],
)
def test_malformed_members_are_refused(members: RoleMembers) -> None:
    with pytest.raises(ValueError, match="expected"):
        render_ruleset(spec(members={"full": members}))


def test_members_of_an_unknown_role_are_refused() -> None:
    with pytest.raises(ValueError, match=r"not in RulesetSpec\.roles"):
        render_ruleset(spec(members={"nosuch": RoleMembers(macs=("02:00:5e:00:00:01",))}))


def test_missing_builtin_role_is_refused() -> None:
    with pytest.raises(ValueError, match="remediation"):
        render_ruleset(spec(roles=(builtin_role(QUARANTINE), FULL)))


@pytest.mark.parametrize("ifname", ['acc0" accept', "acc 0", "a" * 16, ""])
def test_interface_name_that_could_inject_syntax_is_refused(ifname: str) -> None:
    with pytest.raises(ValueError, match="interface"):
        render_ruleset(spec(access_interfaces=(ifname,)))


def test_at_least_one_access_interface_is_required() -> None:
    with pytest.raises(ValueError, match="at least one"):
        render_ruleset(spec(access_interfaces=()))


# -- any valid role list ------------------------------------------------------------------------

role_names = st.from_regex(r"[a-z][a-z0-9_]{0,23}", fullmatch=True).filter(
    lambda name: name not in (QUARANTINE, REMEDIATION)
)
extra_roles = st.lists(
    st.builds(Role, name=role_names, vlan=st.integers(1, 4094), captive=st.booleans()),
    max_size=6,
    unique_by=lambda role: role.name,
)


@settings(max_examples=60, deadline=None)
@given(extra_roles)
def test_any_valid_role_list_renders_deterministically_with_sets_chain_and_default_deny(
    extra: list[Role],
) -> None:
    roles = (builtin_role(REMEDIATION), *extra, builtin_role(QUARANTINE))
    text = render_ruleset(spec(roles=roles))
    assert text == render_ruleset(spec(roles=roles))
    found_sets, found_chains = sets(text), chains(text)
    for role in roles:
        names = set_names(role.name)
        assert {names.mac, names.ipv4, names.ipv6} <= set(found_sets)
        assert found_chains[names.chain][-1] == "reject with icmpx type admin-prohibited"
    assert found_chains["from_access"][-1] == "goto role_quarantine"
    assert len(found_chains["from_access"]) == 3 * len(roles) + 1


# -- nft itself accepts the text ----------------------------------------------------------------


@pytest.mark.integration
def test_rendered_ruleset_is_valid_nft_syntax_for_the_kernel() -> None:
    namespace = f"na-{secrets.token_hex(3)}"
    members = {"full": RoleMembers(("02:00:5e:00:00:01",), ("198.18.0.10",), ("2001:db8::a",))}
    subprocess.run(["ip", "netns", "add", namespace], check=True, capture_output=True)
    try:
        checked = subprocess.run(
            ["ip", "netns", "exec", namespace, "nft", "-c", "-f", "-"],
            input=render_ruleset(spec(members=members)),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert checked.returncode == 0, checked.stderr
    finally:
        subprocess.run(["ip", "netns", "delete", namespace], check=False, capture_output=True)


# -- RoleSets batches (a recording stand-in for Nftables) ---------------------------------------


class RecordingNftables:
    def __init__(self) -> None:
        self.batches: list[list[ElementUpdate]] = []

    def prepare_elements(self, updates: list[ElementUpdate]) -> Callable[[], None]:
        return lambda: self.batches.append(list(updates))


def applied(changes: list[RoleChange]) -> list[tuple[str, str, tuple[str, ...]]]:
    """The one batch RoleSets sends, as (op, set, elements)."""
    nft = RecordingNftables()
    RoleSets(nft).apply(changes)  # type: ignore[arg-type]
    [batch] = nft.batches
    return [(update.op.value, update.set_name, update.elements) for update in batch]


MACS = ("02:00:5e:00:00:01", "02:00:5e:00:00:02", "02:00:5e:00:00:03")
V4 = ("198.18.0.1", "198.18.0.2", "198.18.0.3")


def test_many_changes_are_one_transaction_with_one_update_per_set() -> None:
    changes = [RoleChange(MACS[i], (V4[i],), (), QUARANTINE, "full") for i in range(3)]
    assert applied(changes) == [
        ("remove", "role_quarantine_mac", MACS),
        ("remove", "role_quarantine_v4", V4),
        ("add", "role_full_mac", MACS),
        ("add", "role_full_v4", V4),
    ]


def test_removals_come_before_additions() -> None:
    batch = applied([RoleChange(MACS[0], (), ("2001:db8::1",), "guest", "full")])
    ops = [op for op, _, _ in batch]
    assert ops == sorted(ops, key=lambda op: op != "remove")


def test_changes_of_one_endpoint_in_a_batch_fold_into_its_last_role() -> None:
    batch = applied(
        [
            RoleChange(MACS[0], (), (), QUARANTINE, "full"),
            RoleChange(MACS[0], (), (), "full", REMEDIATION),
        ]
    )
    assert batch == [
        ("remove", "role_full_mac", (MACS[0],)),
        ("remove", "role_quarantine_mac", (MACS[0],)),
        ("add", "role_remediation_mac", (MACS[0],)),
    ]


def test_a_new_endpoint_is_only_added_and_normalised() -> None:
    assert applied([RoleChange("02:00:5E:00:00:01", (), ("2001:DB8::1",), None, "full")]) == [
        ("add", "role_full_mac", (MACS[0],)),
        ("add", "role_full_v6", ("2001:db8::1",)),
    ]


def test_an_address_leaving_every_role_is_only_removed() -> None:
    assert applied([RoleChange(None, (V4[0],), (), "full", None)]) == [
        ("remove", "role_full_v4", (V4[0],)),
    ]


def test_a_change_to_an_invalid_role_name_is_refused_before_the_kernel_is_asked() -> None:
    nft = RecordingNftables()
    with pytest.raises(ValueError, match="role name"):
        RoleSets(nft).apply([RoleChange(None, (V4[0],), (), None, "Full")])  # type: ignore[arg-type]
    assert nft.batches == []
