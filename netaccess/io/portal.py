"""The captive portal as the endpoints meet it: the plain-HTTP listener that captive traffic
is redirected to. Who is asking is known by source address (the inventory maps it to an
endpoint and its role); what to answer is netaccess.proto.http.captive's rules."""

from __future__ import annotations

import ipaddress

from netaccess.config import ApplianceConfig
from netaccess.io.http_server import Peer
from netaccess.io.inventory import Inventory
from netaccess.policy.roles import QUARANTINE
from netaccess.proto.http import (
    Request,
    Response,
    admitted_answer,
    captive_redirect,
    https_redirect,
)


class Portal:
    def __init__(self, config: ApplianceConfig, inventory: Inventory) -> None:
        self.hostname = config.portal.hostname
        self.login_url = f"https://{self.hostname}/login"
        self._inventory = inventory
        self._captive = {role.name: role.captive for role in config.roles}

    def is_captive(self, ip: str) -> bool:
        """Whether the endpoint at `ip` is in a captive role. One we do not know, or whose
        role the config no longer declares, is: the ruleset quarantines what is in no set,
        and the portal agrees."""
        endpoint = self._inventory.by_ip(_plain(ip))
        role = endpoint.role if endpoint is not None else QUARANTINE
        return self._captive.get(role, True)

    async def handle_http(self, request: Request, peer: Peer) -> Response:
        if request.host == self.hostname:
            return https_redirect(request, self.hostname)  # a portal page: over TLS
        if self.is_captive(peer.ip):
            return captive_redirect(request, self.login_url)
        return admitted_answer(request)


def _plain(ip: str) -> str:
    """`ip` as the inventory spells it: an IPv4-mapped IPv6 address as IPv4, zones dropped."""
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)
