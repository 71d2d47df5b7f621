"""MAC address parsing in the formats switches, DHCP servers and people write them."""

from __future__ import annotations

import re

from netaccess.proto.errors import ProtocolError

# aa:bb:cc:dd:ee:ff, aa-bb-cc-dd-ee-ff, aabb.ccdd.eeff (Cisco), aabbccddeeff (MAB User-Name)
_MAC_FORMS = (
    re.compile(
        r"^([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})$"
    ),
    re.compile(
        r"^([0-9a-f]{2})([0-9a-f]{2})\.([0-9a-f]{2})([0-9a-f]{2})\.([0-9a-f]{2})([0-9a-f]{2})$"
    ),
    re.compile(r"^([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$"),
)


class InvalidMac(ProtocolError):
    def __init__(self, text: str) -> None:
        super().__init__(f"{text!r} is not a MAC address (expected e.g. aa:bb:cc:dd:ee:ff)")
        self.text = text


def parse_mac(text: str) -> str:
    """Return `text` as a lower-case colon MAC, accepting the common written forms."""
    candidate = text.strip().lower()
    for form in _MAC_FORMS:
        m = form.match(candidate)
        if m is not None:
            # A mixed-separator form like aa:bb-cc... is a typo, not a MAC.
            if form is _MAC_FORMS[0] and len(set(candidate[2::3])) != 1:
                break
            return ":".join(m.groups())
    raise InvalidMac(text)
