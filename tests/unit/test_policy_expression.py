"""Host Checker `require` expressions: precedence, three-valued logic, and errors that say
where the expression goes wrong."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netaccess.policy.expression import (
    And,
    ExpressionError,
    Name,
    Not,
    Or,
    Truth,
    all_of,
    evaluate_expression,
    names_in,
    parse_expression,
)

T, F, U = Truth.TRUE, Truth.FALSE, Truth.UNKNOWN


def test_and_binds_tighter_than_or_and_not_tighter_than_and() -> None:
    assert parse_expression("a or b and not c") == Or((Name("a"), And((Name("b"), Not(Name("c"))))))


def test_parentheses_group() -> None:
    assert parse_expression("(a or b) and c") == And((Or((Name("a"), Name("b"))), Name("c")))


def test_a_long_chain_stays_flat() -> None:
    names = [f"r{n}" for n in range(400)]
    expression = parse_expression(" and ".join(names))
    assert isinstance(expression, And) and len(expression.operands) == 400
    assert evaluate_expression(expression, lambda name: T) is T


def test_names_may_carry_digits_hyphens_and_underscores() -> None:
    assert names_in(parse_expression("os-12 and av_on or fw2")) == {"os-12", "av_on", "fw2"}


@pytest.mark.parametrize(
    ("left", "right", "both", "either"),
    [
        (T, T, T, T),
        (T, F, F, T),
        (F, F, F, F),
        (U, T, U, T),
        (U, F, F, U),
        (U, U, U, U),
    ],
)
def test_three_valued_logic(left: Truth, right: Truth, both: Truth, either: Truth) -> None:
    truth = {"a": left, "b": right}.__getitem__
    assert evaluate_expression(parse_expression("a and b"), truth) is both
    assert evaluate_expression(parse_expression("a or b"), truth) is either
    assert evaluate_expression(parse_expression("b and a"), truth) is both


def test_not_unknown_stays_unknown() -> None:
    assert evaluate_expression(parse_expression("not a"), lambda name: U) is U


def test_the_default_expression_requires_every_rule() -> None:
    truth = {"a": T, "b": T, "c": U}.__getitem__
    assert evaluate_expression(all_of(["a", "b"]), truth) is T
    assert evaluate_expression(all_of(["a", "b", "c"]), truth) is U


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "column 1: the expression ends too early"),
        ("a and", "column 6: the expression ends too early"),
        ("a b", "column 3: unexpected 'b'"),
        ("(a or b", "column 8: expected ')' for column 1"),
        ("a or )", "column 6: expected a rule name, got ')'"),
        ("a & b", "column 3: unexpected character '&'"),
        ("and a", "column 1: expected a rule name, got 'and'"),
        ("(" * 70 + "a" + ")" * 70, "column 65: nested too deeply"),
        ("not " * 70 + "a", "column 257: nested too deeply"),
    ],
)
def test_errors_say_where(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_expression(text)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=" ()abnotrd_-&1", max_size=80))
def test_any_text_parses_or_raises_expression_error_only(text: str) -> None:
    try:
        expression = parse_expression(text)
    except ExpressionError:
        return
    assert names_in(expression)
