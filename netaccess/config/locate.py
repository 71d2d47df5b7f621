"""Finds the line of a key path in TOML text, for error messages only (tomllib gives no positions).

A lenient scanner, not a parser: tomllib has already judged the text; this never raises.
"""

from __future__ import annotations

import bisect

from netaccess.config.errors import KeyPath

_BARE_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}
_SCALAR_ENDS = frozenset(",]}#\n")
# Arbitrary text may nest brackets thousands deep; past this depth values are skipped flatly.
_MAX_DEPTH = 50


def line_of(text: str, key_path: KeyPath) -> int | None:
    """The 1-based line of the deepest component of `key_path` found in `text`, or None.

    An int component selects the n-th `[[array]]` table (or the n-th element of an inline array).
    """
    return LineIndex(text).line_of(key_path)


class LineIndex:
    """The first line mentioning each key path of one TOML text; build once, ask many times."""

    def __init__(self, text: str) -> None:
        # Explicit: a header or `key =` names the path itself. Implicit: it names a longer path
        # (`[a.b]` implies `a`), used only when `a` is never given a line of its own.
        self._explicit: dict[KeyPath, int] = {}
        self._implicit: dict[KeyPath, int] = {}
        _Scanner(text, self).run()

    def line_of(self, key_path: KeyPath) -> int | None:
        for length in range(len(key_path), 0, -1):
            prefix = tuple(key_path[:length])
            line = self._explicit.get(prefix, self._implicit.get(prefix))
            if line is not None:
                return line
        return None

    def define(self, path: KeyPath, line: int) -> None:
        self._explicit.setdefault(path, line)
        for length in range(1, len(path)):
            self._implicit.setdefault(path[:length], line)


class _Scanner:
    def __init__(self, text: str, index: LineIndex) -> None:
        self.text = text
        self.pos = 0
        self.index = index
        self.newlines = [i for i, ch in enumerate(text) if ch == "\n"]
        self.table: KeyPath = ()
        # How many [[x]] tables each array has so far, keyed by the array's resolved path.
        self.array_sizes: dict[KeyPath, int] = {}

    # -- characters --------------------------------------------------------------------------

    def peek(self, offset: int = 0) -> str:
        return self.text[self.pos + offset : self.pos + offset + 1]

    def at(self, prefix: str) -> bool:
        return self.text.startswith(prefix, self.pos)

    def line(self) -> int:
        return bisect.bisect_left(self.newlines, self.pos) + 1

    def skip_spaces(self) -> None:
        while self.peek() in (" ", "\t"):
            self.pos += 1

    def skip_blank(self) -> None:
        """Spaces, newlines and comments."""
        while True:
            ch = self.peek()
            if ch in (" ", "\t", "\r", "\n"):
                self.pos += 1
            elif ch == "#":
                self.skip_to_newline()
            else:
                return

    def skip_to_newline(self) -> None:
        end = self.text.find("\n", self.pos)
        self.pos = len(self.text) if end < 0 else end

    # -- statements ----------------------------------------------------------------------------

    def run(self) -> None:
        while True:
            self.skip_blank()
            if self.pos >= len(self.text):
                return
            if self.peek() == "[":
                self.header()
            else:
                self.key_value(self.table, 0)
            # Whatever is left of the line is a comment, or text we could not follow.
            self.skip_to_newline()

    def header(self) -> None:
        line = self.line()
        is_array = self.at("[[")
        self.pos += 2 if is_array else 1
        keys = self.dotted_key()
        self.skip_spaces()
        if not keys or not self.at("]]" if is_array else "]"):
            return
        if is_array:
            array = (*self.resolve(keys[:-1]), keys[-1])
            size = self.array_sizes.get(array, 0)
            self.array_sizes[array] = size + 1
            self.table = (*array, size)
        else:
            self.table = self.resolve(keys)
        self.index.define(self.table, line)

    def resolve(self, keys: list[str]) -> KeyPath:
        """A header's keys as a path: a name that is an array of tables means its last table."""
        path: KeyPath = ()
        for key in keys:
            path = (*path, key)
            size = self.array_sizes.get(path)
            if size:
                path = (*path, size - 1)
        return path

    def key_value(self, table: KeyPath, depth: int) -> bool:
        """`key = value`; False when the text is not one, so the caller can stop following."""
        line = self.line()
        keys = self.dotted_key()
        self.skip_spaces()
        if not keys or self.peek() != "=":
            return False
        self.pos += 1
        self.skip_spaces()
        path = (*table, *keys)
        self.index.define(path, line)
        self.value(path, depth)
        return True

    # -- keys ----------------------------------------------------------------------------------

    def dotted_key(self) -> list[str] | None:
        keys: list[str] = []
        while True:
            self.skip_spaces()
            key = self.simple_key()
            if key is None:
                return None
            keys.append(key)
            self.skip_spaces()
            if self.peek() != ".":
                return keys
            self.pos += 1

    def simple_key(self) -> str | None:
        if self.peek() == '"':
            return self.basic_string()
        if self.peek() == "'":
            return self.literal_string()
        start = self.pos
        while self.peek() in _BARE_KEY_CHARS:
            self.pos += 1
        return self.text[start : self.pos] if self.pos > start else None

    def basic_string(self) -> str | None:
        """A one-line "..." string, decoded; None (stopping at the line's end) if unterminated."""
        self.pos += 1
        out: list[str] = []
        while (ch := self.peek()) not in ("", "\n"):
            if ch == '"':
                self.pos += 1
                return "".join(out)
            if ch != "\\":
                out.append(ch)
                self.pos += 1
                continue
            escape = self.peek(1)
            if escape in _ESCAPES:
                out.append(_ESCAPES[escape])
                self.pos += 2
            elif escape in ("u", "U"):
                digits = self.text[self.pos + 2 : self.pos + (6 if escape == "u" else 10)]
                try:
                    out.append(chr(int(digits, 16)))
                except (ValueError, OverflowError):
                    return None
                self.pos += 2 + len(digits)
            else:
                return None
        return None

    def literal_string(self) -> str | None:
        start = self.pos + 1
        end = self.text.find("'", start)
        newline = self.text.find("\n", start)
        if end < 0 or 0 <= newline < end:
            self.pos = start
            return None
        self.pos = end + 1
        return self.text[start:end]

    # -- values --------------------------------------------------------------------------------

    def value(self, path: KeyPath, depth: int) -> None:
        if self.at('"""') or self.at("'''"):
            self.multiline_string()
        elif self.peek() == '"':
            self.basic_string()
        elif self.peek() == "'":
            self.literal_string()
        elif self.peek() == "[" and depth < _MAX_DEPTH:
            self.array(path, depth + 1)
        elif self.peek() == "{" and depth < _MAX_DEPTH:
            self.inline_table(path, depth + 1)
        else:
            # Numbers, booleans, dates (which may hold a space) end at a separator or comment.
            while self.peek() not in _SCALAR_ENDS and self.pos < len(self.text):
                self.pos += 1

    def multiline_string(self) -> None:
        quote = self.peek()
        self.pos += 3
        while self.pos < len(self.text):
            if quote == '"' and self.peek() == "\\":
                self.pos += 2
            elif self.at(quote * 3):
                self.pos += 3
                # Up to two quotes may end the content right before the delimiter: """a""""
                for _ in range(2):
                    if self.peek() == quote:
                        self.pos += 1
                return
            else:
                self.pos += 1

    def array(self, path: KeyPath, depth: int) -> None:
        self.pos += 1
        index = 0
        while True:
            self.skip_blank()
            if self.peek() != "]":
                self.index.define((*path, index), self.line())
                self.value((*path, index), depth)
                self.skip_blank()
            if self.peek() == "]":
                self.pos += 1
                return
            if self.peek() != ",":
                return
            self.pos += 1
            index += 1

    def inline_table(self, path: KeyPath, depth: int) -> None:
        self.pos += 1
        while True:
            # TOML 1.0 keeps inline tables on one line; newlines are tolerated here all the same.
            self.skip_blank()
            if self.peek() != "}":
                if not self.key_value(path, depth):
                    return
                self.skip_blank()
            if self.peek() == "}":
                self.pos += 1
                return
            if self.peek() != ",":
                return
            self.pos += 1
