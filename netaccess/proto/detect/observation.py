"""What one DHCP or ARP frame tells us about one endpoint (RFC 2131/2132, RFC 826)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from netaccess.proto.errors import RemoteProtocolError


class MalformedFrame(RemoteProtocolError):
    """A frame that passed the capture filter but cannot be dissected (truncated, bad fields).

    `reason` is a short stable token usable as a metrics label, e.g. "truncated-bootp".
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class ObservationSource(enum.Enum):
    DHCP = "dhcp"
    ARP = "arp"
    RADIUS = "radius"  # a NAS asked for it (MAB, 802.1X) or accounted its session
    EAPOL = "eapol"  # an 802.1X supplicant's frame: contact at Layer 2 only


class DhcpMessageType(enum.IntEnum):
    """DHCP option 53 values (RFC 2132 §9.6)."""

    DISCOVER = 1
    OFFER = 2
    REQUEST = 3
    DECLINE = 4
    ACK = 5
    NAK = 6
    RELEASE = 7
    INFORM = 8


@dataclass(frozen=True, slots=True)
class Observation:
    """One endpoint sighting.

    mac: the endpoint's MAC, lower-case colon form "aa:bb:cc:dd:ee:ff" (for DHCP the client
         hardware address chaddr, for ARP the sender hardware address).
    ip: an IPv4 address in dotted form proven to belong to `mac`, or None. Set only by DHCP ACK
        (yiaddr, or ciaddr when yiaddr is 0), by DHCP RELEASE (ciaddr, the address given up),
        and by ARP with a non-zero sender protocol address.
    hostname: DHCP option 12, trailing NULs stripped, decoded as UTF-8 with replacement and
        capped at 255 characters, or None.
    vendor_class: DHCP option 60, same decoding, only from client-sent messages, or None.
    fingerprint: DHCP option 55 as a comma-joined list of decimal option codes, e.g.
        "1,3,6,15,119,252"; only from client-sent messages; None otherwise.
    dhcp_type: option 53 for DHCP frames, None for ARP and EAPOL.
    from_client: True when the endpoint itself sent the frame (DHCP op=1 BOOTREQUEST, any
        ARP, a supplicant's EAPOL), False for server replies (OFFER/ACK/NAK).
    at: the time the frame was captured (seconds since the epoch), passed in by the caller.
    """

    source: ObservationSource
    mac: str
    at: float
    ip: str | None = None
    hostname: str | None = None
    vendor_class: str | None = None
    fingerprint: str | None = None
    dhcp_type: DhcpMessageType | None = None
    from_client: bool = True

    @property
    def is_release(self) -> bool:
        return self.dhcp_type is DhcpMessageType.RELEASE
