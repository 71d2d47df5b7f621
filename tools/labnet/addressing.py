"""The lab's fixed addressing plan: only 198.18.0.0/15 (RFC 2544 benchmarking space), which is
never routed on the Internet, so nothing here can collide with a real network."""

from __future__ import annotations

ACCESS_NET = "198.18.0.0/22"
ACCESS_PREFIXLEN = 22
ACCESS_NETMASK = "255.255.252.0"
APPLIANCE_ACCESS_IP = "198.18.0.1"  # acc0: router, DNS and portal for the endpoints
DHCP_RANGE = ("198.18.0.10", "198.18.3.250")
DHCP_LEASE_TIME = "12h"

UPSTREAM_NET = "198.19.0.0/24"
UPSTREAM_PREFIXLEN = 24
APPLIANCE_UPSTREAM_IP = "198.19.0.1"  # up0
WEB_IP = "198.19.0.2"  # upstream web server and DNS server
REMEDIATION_IP = "198.19.0.3"  # remediation server

# The management network: where switches (NAS clients) talk RADIUS to the appliance, as on a
# real site, apart from the endpoints' access network.
MGMT_NET = "198.19.1.0/24"
MGMT_PREFIXLEN = 24
APPLIANCE_MGMT_IP = "198.19.1.1"  # mgmt0
NAS_IP = "198.19.1.2"  # the lab's switch management address: radclient, eapol_test, CoA

CAPTIVE_PORTAL_API = "https://portal.netaccess.test/api/captive"  # DHCP option 114, RFC 8910
DNS_RECORDS = {
    "www.corp.test": WEB_IP,
    "remediation.corp.test": REMEDIATION_IP,
    "portal.netaccess.test": APPLIANCE_ACCESS_IP,
    # The OS connectivity-probe hosts resolve to the lab's upstream web server, so probes stay
    # inside the lab and a captive endpoint's probe is seen to land on the portal instead.
    "connectivitycheck.gstatic.com": WEB_IP,
    "captive.apple.com": WEB_IP,
    "www.msftconnecttest.com": WEB_IP,
    "detectportal.firefox.com": WEB_IP,
}
# The lab's DNS is authoritative-only: every name it answers lies in one of these zones (the
# probe hosts' zones included; nothing is forwarded, so no lookup leaves the lab).
DNS_ZONES = (
    f"corp.test,{UPSTREAM_NET}",
    "netaccess.test",
    "gstatic.com",
    "apple.com",
    "msftconnecttest.com",
    "firefox.com",
)

MAX_ENDPOINTS = 250


def endpoint_mac(k: int) -> str:
    """Deterministic, locally administered unicast MAC of endpoint `k` (1..250)."""
    if not 1 <= k <= MAX_ENDPOINTS:
        raise ValueError(f"endpoint number {k} is outside 1..{MAX_ENDPOINTS}")
    return f"02:4e:41:00:00:{k:02x}"
