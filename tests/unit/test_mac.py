from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netaccess.proto.errors import ProtocolError
from netaccess.proto.mac import InvalidMac, parse_mac


@pytest.mark.parametrize(
    "text",
    [
        "02:4E:41:00:00:01",
        "02-4e-41-00-00-01",
        "024e.4100.0001",
        "024E41000001",
        " 02:4e:41:00:00:01 ",
    ],
)
def test_common_mac_forms_normalise_to_lower_case_colons(text: str) -> None:
    assert parse_mac(text) == "02:4e:41:00:00:01"


@pytest.mark.parametrize(
    "text",
    ["", "zz:zz:zz:zz:zz:zz", "02:4e:41:00:00", "02:4e-41:00:00:01", "02:4e:41:00:00:01:02", "ep1"],
)
def test_non_macs_are_rejected_with_an_example_of_the_expected_form(text: str) -> None:
    with pytest.raises(InvalidMac, match=r"expected e\.g\. aa:bb:cc:dd:ee:ff"):
        parse_mac(text)


@given(st.text(max_size=40))
def test_parse_mac_raises_only_its_own_error(text: str) -> None:
    with contextlib.suppress(ProtocolError):
        parse_mac(text)
