"""The remote IMV protocol (netaccess.proto.tnc.remote_imv): golden frames written by hand,
the frame decoder's limits, message checks, the PA-TNC relay split, and garbage that must
raise only RemoteImvProtocolError."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netaccess.proto.errors import LocalProtocolError, RemoteProtocolError
from netaccess.proto.tnc.pa import (
    AttributeRequest,
    PaMessage,
    RawAttribute,
    StringVersion,
    attribute_key,
    push_pa_message,
)
from netaccess.proto.tnc.remote_imv import (
    MAX_FRAME_SIZE,
    NEED_DATA,
    Begin,
    Deliver,
    End,
    Endpoint,
    Evaluate,
    Evaluated,
    Evaluation,
    FrameDecoder,
    Ok,
    Refused,
    Remediation,
    RemoteImvProtocolError,
    Replies,
    Request,
    Response,
    decode_request,
    decode_response,
    encode_frame,
    encode_request,
    encode_response,
    pull_raw_attributes,
)
from netaccess.proto.tnc.vendor import Antivirus

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def frame(text: str) -> bytes:
    body = text.encode()
    return len(body).to_bytes(4, "big") + body


def decoded(data: bytes) -> dict[str, object]:
    decoder = FrameDecoder()
    decoder.receive_data(data)
    obj = decoder.next_frame()
    assert isinstance(obj, dict)
    return obj


# -- golden frames -----------------------------------------------------------------------------


def test_begin_is_a_length_then_compact_json() -> None:
    request = Begin("s1", Endpoint("198.18.0.10", "02:00:00:00:00:0a", None))
    assert encode_request(request) == bytes.fromhex("00000063") + (
        b'{"op":"begin","session":"s1","endpoint":'
        b'{"ip":"198.18.0.10","mac":"02:00:00:00:00:0a","user":null}}'
    )


def test_deliver_carries_the_pa_tnc_message_in_base64() -> None:
    request = Deliver("s1", 0, 2, 1, b"\x01\x00\x00\x00\x00\x00\x00\x07")
    assert encode_request(request) == frame(
        '{"op":"deliver","session":"s1","vendor":0,"subtype":2,"collector":1,'
        '"message":"AQAAAAAAAAc="}'
    )


def test_evaluate_and_end_name_only_the_session() -> None:
    assert encode_request(Evaluate("s1")) == frame('{"op":"evaluate","session":"s1"}')
    assert encode_request(End("s1")) == frame('{"op":"end","session":"s1"}')


def test_answers_are_golden_too() -> None:
    assert encode_response(Ok()) == frame('{"ok":true}')
    assert encode_response(Replies((b"\x01\x00",))) == frame('{"replies":["AQA="]}')
    assert encode_response(Evaluated(None)) == frame('{"evaluation":null}')
    assert encode_response(Refused("no")) == frame('{"error":"no"}')
    evaluation = Evaluation(
        "minor non-compliance",
        "quarantined",
        ("ClamAV signatures are 9 days old",),
        (Remediation("Update ClamAV signatures", "https://r.example/av"),),
    )
    assert encode_response(Evaluated(evaluation)) == frame(
        '{"evaluation":{"verdict":"minor non-compliance","recommendation":"quarantined",'
        '"reasons":["ClamAV signatures are 9 days old"],'
        '"remediation":[{"text":"Update ClamAV signatures","link":"https://r.example/av"}]}}'
    )


def test_non_ascii_text_travels_as_utf8() -> None:
    assert encode_response(Refused("é")) == frame('{"error":"é"}')


@pytest.mark.parametrize(
    "request_",
    [
        Begin("s", Endpoint("198.18.0.10", None, "alice@staff")),
        Deliver("s", 0xFFFFFF, 0xFFFFFFFF, 0xFFFF, bytes(range(256))),
        Evaluate("s"),
        End("s"),
    ],
)
def test_requests_round_trip(request_: Begin | Deliver | Evaluate | End) -> None:
    assert decode_request(decoded(encode_request(request_))) == request_


def test_answers_round_trip_against_their_request() -> None:
    evaluation = Evaluation("compliant", "allowed", ("a",), (Remediation("t"),))
    cases: list[tuple[Request, Response]] = [
        (Begin("s"), Ok()),
        (Deliver("s", 0, 2, 1, b""), Replies((b"\x01", b"\x02"))),
        (Evaluate("s"), Evaluated(evaluation)),
        (Evaluate("s"), Evaluated(None)),
        (End("s"), Refused("no session s")),
    ]
    for request, response in cases:
        assert decode_response(decoded(encode_response(response)), request) == response


# -- frames ------------------------------------------------------------------------------------


def test_frames_come_whole_whatever_the_chunks() -> None:
    data = encode_request(Evaluate("s1")) + encode_request(End("s1"))
    decoder = FrameDecoder()
    frames = []
    for byte in data:
        decoder.receive_data(bytes([byte]))
        while (obj := decoder.next_frame()) is not NEED_DATA:
            frames.append(obj)
    assert frames == [{"op": "evaluate", "session": "s1"}, {"op": "end", "session": "s1"}]
    assert decoder.buffered == 0


def test_an_oversized_frame_is_refused_from_its_length_alone() -> None:
    decoder = FrameDecoder()
    with pytest.raises(RemoteImvProtocolError, match="at most 8388608"):
        decoder.receive_data((MAX_FRAME_SIZE + 1).to_bytes(4, "big"))


def test_a_frame_of_exactly_the_maximum_is_accepted() -> None:
    body = b'{"a":"' + b"x" * (1000 - 8) + b'"}'
    decoder = FrameDecoder(max_frame_size=1000)
    decoder.receive_data(len(body).to_bytes(4, "big") + body)
    assert decoder.next_frame() == {"a": "x" * 992}


def test_we_do_not_send_a_frame_over_the_maximum() -> None:
    with pytest.raises(LocalProtocolError, match="at most 10"):
        encode_frame({"a": "xxxxxxxxxx"}, max_frame_size=10)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"", "not JSON"),
        (b"[1, 2]", "list, not an object"),
        (b'"text"', "str, not an object"),
        (b"{", "not JSON"),
        (b'{"a": NaN}', "NaN is not a JSON number"),
        (b'{"a": Infinity}', "Infinity"),
        (b'{"a": "\xff"}', "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nests|list"),
        (b'{"a": 1' + b"0" * 5000 + b"}", "not JSON"),
    ],
)
def test_a_frame_that_is_not_a_json_object_is_a_protocol_error(body: bytes, why: str) -> None:
    decoder = FrameDecoder()
    decoder.receive_data(len(body).to_bytes(4, "big") + body)
    with pytest.raises(RemoteImvProtocolError, match=why):
        decoder.next_frame()


def test_the_error_is_a_remote_protocol_error() -> None:
    assert issubclass(RemoteImvProtocolError, RemoteProtocolError)


# -- messages ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "why"),
    [
        ({"op": "begin"}, "session"),
        ({"op": "begin", "session": ""}, "session"),
        ({"op": "begin", "session": "s" * 129}, "session"),
        ({"op": "fly", "session": "s"}, 'unknown op "fly"'),
        ({"op": "begin", "session": "s", "endpoint": []}, "endpoint is not an object"),
        ({"op": "begin", "session": "s", "endpoint": {"ip": 7}}, "ip is not a string"),
        ({"op": "deliver", "session": "s", "vendor": 0, "subtype": 2, "collector": 1}, "message"),
        (
            {"op": "deliver", "session": "s", "vendor": 1 << 24, "subtype": 2, "collector": 1},
            "vendor",
        ),
        (
            {"op": "deliver", "session": "s", "vendor": True, "subtype": 2, "collector": 1},
            "vendor",
        ),
        (
            {
                "op": "deliver",
                "session": "s",
                "vendor": 0,
                "subtype": 2,
                "collector": 1,
                "message": "no base64!",
            },
            "base64",
        ),
        ({"op": "end", "session": "\ud800"}, "lone surrogate"),
    ],
)
def test_a_bad_request_is_a_protocol_error(obj: dict[str, object], why: str) -> None:
    with pytest.raises(RemoteImvProtocolError, match=why):
        decode_request(obj)


GOOD = {"verdict": "compliant", "recommendation": "allowed"}


@pytest.mark.parametrize(
    ("obj", "why"),
    [
        ({"ok": False}, "expected"),
        ({}, "evaluation"),
        ({"evaluation": []}, "neither null nor an object"),
        ({"evaluation": {**GOOD, "verdict": "fine"}}, 'verdict "fine"'),
        ({"evaluation": {**GOOD, "recommendation": "Allowed"}}, "recommendation"),
        ({"evaluation": {**GOOD, "reasons": "x"}}, "reasons is not a list"),
        ({"evaluation": {**GOOD, "reasons": [1]}}, "reason is not a string"),
        ({"evaluation": {**GOOD, "reasons": ["x"] * 257}}, "at most 256"),
        ({"evaluation": {**GOOD, "reasons": ["x" * 4097]}}, "at most 4096"),
        ({"evaluation": {**GOOD, "reasons": ["\udc00"]}}, "lone surrogate"),
        ({"evaluation": {**GOOD, "remediation": ["x"]}}, "not an object"),
        ({"evaluation": {**GOOD, "remediation": [{"link": 5}]}}, "link is not a string"),
        ({"error": 5}, "error is not a string"),
    ],
)
def test_a_bad_answer_is_a_protocol_error(obj: dict[str, object], why: str) -> None:
    request = Begin("s") if "ok" in obj else Evaluate("s")
    with pytest.raises(RemoteImvProtocolError, match=why):
        decode_response(obj, request)


def test_replies_must_be_a_list_of_base64() -> None:
    with pytest.raises(RemoteImvProtocolError, match="replies is not a list"):
        decode_response({"replies": "AQA="}, Deliver("s", 0, 2, 1, b""))
    with pytest.raises(RemoteImvProtocolError, match="a reply is not a base64 string"):
        decode_response({"replies": [None]}, Deliver("s", 0, 2, 1, b""))


def test_unknown_keys_are_ignored_for_later_additions() -> None:
    answer = decode_response({"ok": True, "server": "x"}, End("s"))
    assert answer == Ok()


def test_we_do_not_send_a_verdict_outside_the_protocol() -> None:
    with pytest.raises(LocalProtocolError, match="verdict"):
        encode_response(Evaluated(Evaluation("fine", "allowed")))


# -- relaying PA-TNC messages ------------------------------------------------------------------


def test_a_relayed_message_keeps_every_attribute_as_sent() -> None:
    known = StringVersion("1.0", "", "")
    unknown = RawAttribute(9999, 3, b"third-party value", noskip=True)
    message = push_pa_message(PaMessage(7, (known, unknown)))
    first, second = pull_raw_attributes(message)
    assert (first.vendor, first.type, first.noskip) == (0, 4, False)
    assert second == unknown
    assert push_pa_message(PaMessage(7, (first, second))) == message


def test_a_relayed_attribute_request_is_the_same_bytes() -> None:
    request = AttributeRequest((attribute_key(Antivirus),))
    message = push_pa_message(PaMessage(1, (request,)))
    assert push_pa_message(PaMessage(1, pull_raw_attributes(message))) == message


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "version"),
        (bytes.fromhex("02000000 00000001"), "version 2"),
        (bytes.fromhex("01000000 000000"), "message header"),
        (bytes.fromhex("01000000 00000001 00 000000 00000004 0000000b"), "below its header"),
        (bytes.fromhex("01000000 00000001 00 000000 00000004 00000010 00"), "attribute value"),
    ],
)
def test_a_bad_pa_tnc_message_cannot_be_relayed(data: bytes, why: str) -> None:
    with pytest.raises(RemoteImvProtocolError, match=why):
        pull_raw_attributes(data)


# -- garbage -----------------------------------------------------------------------------------


framed_garbage = st.binary(max_size=64).map(lambda body: len(body).to_bytes(4, "big") + body)
framed_text = st.text(max_size=64).map(frame)


@FUZZ
@given(st.lists(st.binary(max_size=64) | framed_garbage | framed_text, max_size=8))
def test_garbage_bytes_raise_only_the_protocol_error(chunks: list[bytes]) -> None:
    decoder = FrameDecoder(max_frame_size=256)
    try:
        for chunk in chunks:
            decoder.receive_data(chunk)
            while decoder.next_frame() is not NEED_DATA:
                pass
    except RemoteImvProtocolError:
        pass


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
KEYS = ["op", "session", "endpoint", "vendor", "subtype", "collector", "message", "ok"]
KEYS += ["replies", "evaluation", "error", "ip", "verdict", "reasons", "remediation"]
shaped = st.dictionaries(
    st.sampled_from(KEYS),
    json_values
    | st.sampled_from(["begin", "deliver", "evaluate", "end", "s", "AQA=", "compliant"])
    | st.builds(dict, verdict=st.just("compliant"), recommendation=st.just("allowed")),
    max_size=7,
)


@FUZZ
@given(shaped)
def test_any_json_object_is_a_message_or_the_protocol_error(obj: dict[str, object]) -> None:
    for decode in (
        decode_request,
        lambda o: decode_response(o, Begin("s")),
        lambda o: decode_response(o, Deliver("s", 0, 2, 1, b"")),
        lambda o: decode_response(o, Evaluate("s")),
    ):
        with contextlib.suppress(RemoteImvProtocolError):
            decode(obj)


@FUZZ
@given(shaped)
def test_framed_json_decodes_to_the_same_object(obj: dict[str, object]) -> None:
    assert decoded(encode_frame(obj)) == json.loads(json.dumps(obj))


@FUZZ
@given(st.binary(max_size=128))
def test_garbage_pa_tnc_messages_raise_only_the_protocol_error(data: bytes) -> None:
    with contextlib.suppress(RemoteImvProtocolError):
        pull_raw_attributes(data)
