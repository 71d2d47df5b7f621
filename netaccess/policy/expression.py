"""A Host Checker policy's `require` expression: rule names joined by `and`, `or`, `not` and
parentheses, e.g. `os and (antivirus or firewall) and not remote_desktop`. Evaluated in
three-valued logic (Kleene's): a rule whose facts are missing is unknown, and unknown
never turns into a pass by accident (`unknown and true` is unknown, `unknown or true` is
true: the other branch alone is enough)."""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass


class Truth(enum.Enum):
    FALSE = "fail"
    UNKNOWN = "unknown"
    TRUE = "pass"

    def __and__(self, other: Truth) -> Truth:
        if Truth.FALSE in (self, other):
            return Truth.FALSE
        if Truth.UNKNOWN in (self, other):
            return Truth.UNKNOWN
        return Truth.TRUE

    def __or__(self, other: Truth) -> Truth:
        if Truth.TRUE in (self, other):
            return Truth.TRUE
        if Truth.UNKNOWN in (self, other):
            return Truth.UNKNOWN
        return Truth.FALSE

    def __invert__(self) -> Truth:
        return {Truth.TRUE: Truth.FALSE, Truth.FALSE: Truth.TRUE}.get(self, Truth.UNKNOWN)


class ExpressionError(ValueError):
    """The expression cannot be read; the message says where (a 1-based column)."""


@dataclass(frozen=True, slots=True)
class Name:
    name: str


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expression


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Expression, ...]  # two or more: chains stay flat, never deep


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Expression, ...]


Expression = Name | Not | And | Or

_TOKEN = re.compile(r"\s*(?:(?P<paren>[()])|(?P<word>[A-Za-z_][A-Za-z0-9_-]*)|(?P<bad>\S))")
_KEYWORDS = {"and", "or", "not"}
MAX_LENGTH = 4096


def parse_expression(text: str) -> Expression:
    """`or` binds loosest, then `and`, then `not`; names are rule names."""
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"longer than {MAX_LENGTH} characters")
    parser = _Parser(text)
    expression = parser.disjunction()
    if parser.peek is not None:
        raise ExpressionError(f"column {parser.column}: unexpected {parser.peek[0]!r}")
    return expression


def names_in(expression: Expression) -> set[str]:
    if isinstance(expression, Name):
        return {expression.name}
    if isinstance(expression, Not):
        return names_in(expression.operand)
    return set().union(*(names_in(operand) for operand in expression.operands))


def evaluate_expression(expression: Expression, truth_of: Callable[[str], Truth]) -> Truth:
    if isinstance(expression, Name):
        return truth_of(expression.name)
    if isinstance(expression, Not):
        return ~evaluate_expression(expression.operand, truth_of)
    values = [evaluate_expression(operand, truth_of) for operand in expression.operands]
    result = values[0]
    for value in values[1:]:
        result = result & value if isinstance(expression, And) else result | value
    return result


def all_of(names: list[str]) -> Expression:
    """The default expression: every rule."""
    if not names:
        raise ExpressionError("a policy needs at least one rule")
    if len(names) == 1:
        return Name(names[0])
    return And(tuple(Name(name) for name in names))


class _Parser:
    def __init__(self, text: str) -> None:
        self._tokens = list(self._tokenize(text))
        self._at = 0
        self._end = len(text) + 1
        self.depth = 0

    @staticmethod
    def _tokenize(text: str) -> Iterator[tuple[str, int]]:
        for match in _TOKEN.finditer(text):
            if match.group("bad") is not None:
                raise ExpressionError(
                    f"column {match.start('bad') + 1}: unexpected character "
                    f"{match.group('bad')!r} (rule names, and, or, not, parentheses)"
                )
            kind = "paren" if match.group("paren") is not None else "word"
            yield match.group(kind), match.start(kind) + 1

    @property
    def peek(self) -> tuple[str, int] | None:
        return self._tokens[self._at] if self._at < len(self._tokens) else None

    @property
    def column(self) -> int:
        token = self.peek
        return token[1] if token else self._end

    def _take(self) -> tuple[str, int]:
        token = self.peek
        if token is None:
            raise ExpressionError(f"column {self._end}: the expression ends too early")
        self._at += 1
        return token

    def disjunction(self) -> Expression:
        operands = [self.conjunction()]
        while self.peek is not None and self.peek[0] == "or":
            self._take()
            operands.append(self.conjunction())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def conjunction(self) -> Expression:
        operands = [self.negation()]
        while self.peek is not None and self.peek[0] == "and":
            self._take()
            operands.append(self.negation())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def negation(self) -> Expression:
        if self.peek is not None and self.peek[0] == "not":
            _, column = self._take()
            self._nest(column)
            expression = Not(self.negation())
            self.depth -= 1
            return expression
        return self.atom()

    def _nest(self, column: int) -> None:
        self.depth += 1
        if self.depth > 64:
            raise ExpressionError(f"column {column}: nested too deeply (64 levels at most)")

    def atom(self) -> Expression:
        word, column = self._take()
        if word == "(":
            self._nest(column)
            expression = self.disjunction()
            closing = self.peek
            if closing is None or closing[0] != ")":
                raise ExpressionError(f"column {self.column}: expected ')' for column {column}")
            self._take()
            self.depth -= 1
            return expression
        if word == ")" or word in _KEYWORDS:
            raise ExpressionError(f"column {column}: expected a rule name, got {word!r}")
        return Name(word)
