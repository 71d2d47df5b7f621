from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netaccess.control import (
    ControlError,
    ErrorCode,
    LineDecoder,
    Request,
    Response,
    decode_request,
    decode_response,
    encode,
)


def test_request_round_trips_through_one_line() -> None:
    wire = encode(Request(7, "endpoints.show", {"mac": "02:4e:41:00:00:01"}))
    assert wire.endswith(b"\n") and wire.count(b"\n") == 1
    assert decode_request(wire[:-1]) == Request(7, "endpoints.show", {"mac": "02:4e:41:00:00:01"})


def test_failure_response_round_trips_with_its_code() -> None:
    wire = encode(Response.failure(3, ErrorCode.NOT_FOUND, "no endpoint"))
    back = decode_response(wire[:-1])
    assert (back.id, back.ok, back.error_code, back.error_message) == (
        3,
        False,
        ErrorCode.NOT_FOUND,
        "no endpoint",
    )


def test_decoder_splits_lines_across_arbitrary_chunks() -> None:
    decoder = LineDecoder()
    assert decoder.feed(b'{"a"') == []
    assert decoder.feed(b':1}\n{"b":2}\n{"c"') == [b'{"a":1}', b'{"b":2}']
    assert decoder.pending == 4


def test_decoder_refuses_an_endless_line() -> None:
    decoder = LineDecoder(max_line=16)
    with pytest.raises(ControlError) as err:
        decoder.feed(b"x" * 17)
    assert err.value.code is ErrorCode.BAD_REQUEST


def test_unknown_op_is_named_in_the_error() -> None:
    with pytest.raises(ControlError, match="unknown op 'reboot'") as err:
        decode_request(json.dumps({"id": 1, "op": "reboot"}).encode())
    assert err.value.code is ErrorCode.UNKNOWN_OP


@pytest.mark.parametrize(
    "line",
    [
        b"[]",
        b'{"id": true, "op": "status"}',
        b'{"id": 1}',
        b'{"id":1,"op":"status","args":[]}',
        b"\xff",
    ],
)
def test_malformed_requests_are_bad_requests(line: bytes) -> None:
    with pytest.raises(ControlError) as err:
        decode_request(line)
    assert err.value.code is ErrorCode.BAD_REQUEST


@given(st.binary(max_size=200))
def test_decoding_garbage_raises_only_control_errors(data: bytes) -> None:
    for decode in (decode_request, decode_response):
        with contextlib.suppress(ControlError):
            decode(data)


def test_deeply_nested_json_is_a_bad_request_not_a_crash() -> None:
    with pytest.raises(ControlError) as err:
        decode_request(b"[" * 100_000)
    assert err.value.code is ErrorCode.BAD_REQUEST
