"""Set elements as nf_tables netlink attributes: the batch encoding is exact, and anything
that is not an element of the set's type is refused before it reaches the kernel."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netaccess.enforce.nft import _encoded
from netaccess.enforce.ruleset import SetKind

NLA_F_NESTED = 0x8000


def one_element(key: bytes) -> bytes:
    """LIST_ELEM { KEY { DATA_VALUE key } }, written out from the netlink rules by hand."""
    value = struct.pack("=HH", 4 + len(key), 1) + key + b"\0" * (-len(key) % 4)
    nested_key = struct.pack("=HH", 4 + len(value), 1 | NLA_F_NESTED) + value
    return struct.pack("=HH", 4 + len(nested_key), 1 | NLA_F_NESTED) + nested_key


MACS = st.lists(st.binary(min_size=6, max_size=6), min_size=1, max_size=50)


@given(MACS)
def test_macs_encode_back_to_back_exactly(raw: list[bytes]) -> None:
    macs = [":".join(f"{b:02x}" for b in mac) for mac in raw]
    blob, size = _encoded(SetKind.MAC, macs)
    assert blob == b"".join(one_element(mac) for mac in raw)
    assert size * len(macs) == len(blob)


@given(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=20))
def test_ipv4_addresses_encode_in_network_order(numbers: list[int]) -> None:
    addresses = [str(ipaddress.IPv4Address(n)) for n in numbers]
    blob, _ = _encoded(SetKind.IPV4, addresses)
    assert blob == b"".join(one_element(n.to_bytes(4, "big")) for n in numbers)


@pytest.mark.parametrize(
    "macs",
    [
        ["02:00:5e:00:00:0g"],
        ["02:00:5e:00:00"],
        ["02:00:5e:00:00:0a:0b"],
        ["0200:5e:00:00:0a:"],  # 17 characters, but 11 hex digits
        ["02:00:5e:00:00:0a", "02-00-5e-00-00-0b"],
    ],
)
def test_a_malformed_mac_is_refused(macs: list[str]) -> None:
    with pytest.raises(ValueError, match="MAC"):
        _encoded(SetKind.MAC, macs)


@pytest.mark.parametrize("address", ["198.18.0", "198.18.0.1.2", "198.18.0.256", "x"])
def test_a_malformed_ipv4_address_is_refused(address: str) -> None:
    with pytest.raises(ValueError, match="ipv4_addr"):
        _encoded(SetKind.IPV4, [address])
