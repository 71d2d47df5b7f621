"""The only code that touches the kernel: nftables ruleset and sets, netlink, conntrack."""

from netaccess.enforce.conntrack import ConntrackFlusher, FlowIndex
from netaccess.enforce.errors import EnforcementError
from netaccess.enforce.kernel import KernelFeatures, detect
from netaccess.enforce.nft import ElementOp, ElementUpdate, Nftables
from netaccess.enforce.ruleset import (
    RoleMembers,
    RoleSetNames,
    RulesetSpec,
    SetKind,
    dispatch_order,
    render_ruleset,
    set_names,
)
from netaccess.enforce.sets import Repairs, RoleChange, RoleSets

__all__ = [
    "ConntrackFlusher",
    "ElementOp",
    "ElementUpdate",
    "EnforcementError",
    "FlowIndex",
    "KernelFeatures",
    "Nftables",
    "Repairs",
    "RoleChange",
    "RoleMembers",
    "RoleSetNames",
    "RoleSets",
    "RulesetSpec",
    "SetKind",
    "detect",
    "dispatch_order",
    "render_ruleset",
    "set_names",
]
