"""The only code that touches the kernel: nftables ruleset and sets, netlink, conntrack."""
