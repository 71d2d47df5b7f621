"""Debian package versions, `[epoch:]upstream_version[-debian_revision]`, ordered exactly as
`dpkg --compare-versions` orders them (deb-version(7); Debian Policy §5.6.12). The Debian
patch feed and the Linux patch rules compare installed and fixed versions with it."""

from __future__ import annotations

import functools
import re
import string
from dataclasses import dataclass, field
from typing import TypeAlias

# dpkg keeps an epoch in a C int.
MAX_EPOCH = 2**31 - 1
MAX_VERSION_CHARS = 256

_DIGITS = frozenset(string.digits)
_LETTERS = frozenset(string.ascii_letters)
_UPSTREAM_CHARS = _DIGITS | _LETTERS | frozenset(".+-~:")
_REVISION_CHARS = _DIGITS | _LETTERS | frozenset(".+~")
# The same sets as patterns: a fullmatch is one C call, where the set difference built a set.
_UPSTREAM = re.compile(r"[0-9A-Za-z.+~:-]*")
_REVISION = re.compile(r"[0-9A-Za-z.+~]*")

# One step of the comparison: a non-digit run as character weights, closed by a 0 (what dpkg
# reads at a digit or at the end), then the digit run's value. Past its end, a string reads as
# endless empty runs and zeros; trailing steps equal to that are dropped, so two versions are
# equal exactly when their steps are.
_Step: TypeAlias = tuple[tuple[int, ...], int]
_NEUTRAL: _Step = ((0,), 0)


class DebianVersionError(ValueError):
    """A string that is not a Debian version; the message says which part is wrong."""


def _weight(char: str) -> int:
    # `~` sorts before everything, even the end of a run (0); letters by ASCII code before
    # every other character.
    if char == "~":
        return -1
    if char in _LETTERS:
        return ord(char)
    return ord(char) + 256


class _Weights(dict[str, int]):
    """_weight of each character, worked out once per character."""

    def __missing__(self, char: str) -> int:
        weight = self[char] = _weight(char)
        return weight


_WEIGHTS = _Weights()
# A step: a run of non-digits (maybe empty), then a run of digits (maybe empty). At the end
# of the string the pattern also matches empty once more; that match is not a step.
_STEP = re.compile(r"([^0-9]*)([0-9]*)")


def _steps(part: str) -> tuple[_Step, ...]:
    weights = _WEIGHTS
    steps: list[_Step] = [
        ((*map(weights.__getitem__, run), 0), int(digits) if digits else 0)
        for run, digits in _STEP.findall(part)
        if run or digits
    ]
    while steps and steps[-1] == _NEUTRAL:
        steps.pop()
    return tuple(steps)


def _compare_steps(a: tuple[_Step, ...], b: tuple[_Step, ...]) -> int:
    for i in range(max(len(a), len(b))):
        left = a[i] if i < len(a) else _NEUTRAL
        right = b[i] if i < len(b) else _NEUTRAL
        if left != right:
            return -1 if left < right else 1
    return 0


@dataclass(frozen=True, slots=True, eq=False)
class DebianVersion:
    """A parsed version. Equality, hashing and order follow dpkg, so `1.0`, `1.00`,
    `0:1.0` and `1.0-0` are one version; `str()` gives a canonical spelling."""

    epoch: int
    upstream: str
    revision: str = ""
    _key: tuple[int, tuple[_Step, ...], tuple[_Step, ...]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not 0 <= self.epoch <= MAX_EPOCH:
            raise DebianVersionError(f"epoch {self.epoch} is outside 0..{MAX_EPOCH}")
        if not self.upstream:
            raise DebianVersionError("the upstream version is empty")
        bad = set() if _UPSTREAM.fullmatch(self.upstream) else set(self.upstream) - _UPSTREAM_CHARS
        if bad:
            raise DebianVersionError(
                f"upstream version {self.upstream!r} has {_listed(bad)}; allowed are "
                "letters, digits and . + - ~ :"
            )
        if "-" in self.upstream and not self.revision:
            raise DebianVersionError(
                f"upstream version {self.upstream!r} has a hyphen but there is no revision"
            )
        bad = set() if _REVISION.fullmatch(self.revision) else set(self.revision) - _REVISION_CHARS
        if bad:
            raise DebianVersionError(
                f"revision {self.revision!r} has {_listed(bad)}; allowed are "
                "letters, digits and . + ~"
            )
        object.__setattr__(self, "_key", (self.epoch, _steps(self.upstream), _steps(self.revision)))

    def compare(self, other: DebianVersion) -> int:
        """-1, 0 or 1 as self sorts before, with or after `other`."""
        mine, theirs = self._key, other._key
        if mine[0] != theirs[0]:
            return -1 if mine[0] < theirs[0] else 1
        return _compare_steps(mine[1], theirs[1]) or _compare_steps(mine[2], theirs[2])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DebianVersion):
            return NotImplemented
        return self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __lt__(self, other: DebianVersion) -> bool:
        return self.compare(other) < 0

    def __le__(self, other: DebianVersion) -> bool:
        return self.compare(other) <= 0

    def __gt__(self, other: DebianVersion) -> bool:
        return self.compare(other) > 0

    def __ge__(self, other: DebianVersion) -> bool:
        return self.compare(other) >= 0

    def __str__(self) -> str:
        # A colon in the upstream part needs its epoch written, even 0, to parse back.
        epoch = f"{self.epoch}:" if self.epoch or ":" in self.upstream else ""
        revision = f"-{self.revision}" if self.revision else ""
        return f"{epoch}{self.upstream}{revision}"


@functools.lru_cache(maxsize=8192)
def parse_version(text: str) -> DebianVersion:
    """Parse `[epoch:]upstream_version[-debian_revision]` as dpkg does: the epoch ends at the
    first colon, the revision starts after the last hyphen, and surrounding whitespace is
    ignored. An upstream part that does not start with a digit is accepted (dpkg only warns);
    an empty string, a bad epoch or a character outside the allowed set raises
    DebianVersionError."""
    version = text.strip()
    if not version:
        raise DebianVersionError("a version is empty")
    if len(version) > MAX_VERSION_CHARS:
        raise DebianVersionError(f"a version has more than {MAX_VERSION_CHARS} characters")
    if len(version.split(None, 1)) > 1:  # str.split() splits where isspace() is true
        raise DebianVersionError(f"version {version!r} has embedded whitespace")
    epoch = 0
    rest = version
    if ":" in version:
        digits, rest = version.split(":", 1)
        if not digits:
            raise DebianVersionError(f"version {version!r} has an empty epoch before ':'")
        if not all(c in _DIGITS for c in digits):
            raise DebianVersionError(f"version {version!r} has epoch {digits!r}, not a number")
        epoch = int(digits)
        if epoch > MAX_EPOCH:
            raise DebianVersionError(f"version {version!r} has an epoch above {MAX_EPOCH}")
        if not rest:
            raise DebianVersionError(f"version {version!r} has nothing after the epoch")
    upstream, hyphen, revision = rest.rpartition("-")
    if not hyphen:
        upstream, revision = rest, ""
    elif not revision:
        raise DebianVersionError(f"version {version!r} has an empty revision after '-'")
    try:
        return DebianVersion(epoch, upstream, revision)
    except DebianVersionError as exc:
        raise DebianVersionError(f"version {version!r}: {exc}") from None


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as version `a` sorts before, with or after `b` (`dpkg --compare-versions`)."""
    return parse_version(a).compare(parse_version(b))


def _listed(chars: set[str]) -> str:
    return "character " + ", ".join(repr(c) for c in sorted(chars))


__all__ = [
    "DebianVersion",
    "DebianVersionError",
    "compare_versions",
    "parse_version",
]
