"""The config layer's one error: every problem found in a config, each with file, line and key path.

Also how keys and values are shown in those messages (TOML-ish, one line each).
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

KeyPath = tuple[str | int, ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_NAMED_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}
# A value in a message is a hint, not a dump: a 1 MB string must not become a 1 MB log line.
_SHOWN_CHARS = 60
_SHOWN_DEPTH = 3


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a config: `file` as the caller named it, the 1-based `line` when known,
    and the dotted `key_path` ("" when the problem is the file as a whole)."""

    file: str
    line: int | None
    key_path: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return (
            f"{where}: {self.key_path}: {self.message}"
            if self.key_path
            else f"{where}: {self.message}"
        )


class ConfigError(Exception):
    """A config was rejected; `issues` holds every problem found, and str() shows one per line."""

    def __init__(self, issues: Iterable[ConfigIssue]) -> None:
        self.issues = tuple(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


def format_key_path(path: KeyPath) -> str:
    """("roles", 2, "vlan") -> 'roles[2].vlan'; keys that are not bare are quoted as in TOML."""
    shown = ""
    for part in path:
        if isinstance(part, int):
            shown += f"[{part}]"
        else:
            key = part if _BARE_KEY.fullmatch(part) else toml_string(part)
            shown += f".{key}" if shown else key
    return shown


def toml_string(text: str) -> str:
    """`text` as a TOML basic string, non-printable characters escaped so it stays on one line."""
    out = []
    for ch in text:
        if ch in _NAMED_ESCAPES:
            out.append(_NAMED_ESCAPES[ch])
        elif not ch.isprintable() and ch != " ":
            # Also line and paragraph separators, bidi overrides: a message must not hide text.
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_repr(value: object) -> str:
    """A short TOML-ish rendering of a parsed value for messages: "text", 5, true, [1, 2]."""
    shown = _repr(value, 0)
    return shown if len(shown) <= _SHOWN_CHARS else shown[: _SHOWN_CHARS - 3] + "..."


def _repr(value: object, depth: int) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return toml_string(value[: _SHOWN_CHARS + 1])
    if isinstance(value, int):
        return str(value) if value.bit_length() < 200 else "<a very large integer>"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, list | Mapping):
        if depth >= _SHOWN_DEPTH and value:
            return "[...]" if isinstance(value, list) else "{...}"
        if isinstance(value, list):
            items = (_repr(item, depth + 1) for item in value)
            return "[" + _join_shortly(items) + "]"
        pairs = (f"{format_key_path((str(k),))} = {_repr(v, depth + 1)}" for k, v in value.items())
        return "{ " + _join_shortly(pairs) + " }" if value else "{}"
    return repr(value)


def _join_shortly(items: Iterable[str]) -> str:
    """Joins with ", " but stops once the result is longer than any message would show."""
    shown: list[str] = []
    length = 0
    for item in items:
        if length > _SHOWN_CHARS:
            shown.append("...")
            break
        shown.append(item)
        length += len(item) + 2
    return ", ".join(shown)
