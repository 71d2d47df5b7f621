"""line_of: the line of a key path in TOML text, as used in config error messages."""

from __future__ import annotations

import random
import re
import tomllib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from netaccess.config.errors import KeyPath
from netaccess.config.locate import line_of

DOC = """\
# a comment with key = 1 and [fake]
top = 1

[daemon]
log_level = "info"   # trailing comment
"quoted key" = true
site.name = "lab"

[[roles]]
name = "quarantine"

[[roles]]
name = "full"
[roles.limits]
sessions = 4

[[roles.rules]]
kind = "os"

[interfaces]
note = \"\"\"
[fake.table]
fake_key = 1
\"\"\"
access = [
  "acc0",
  # between elements
  "acc1",
]
client = { name = "sw1", secret = "s" }
after = 'x'
"""


def test_key_in_table_is_found_on_its_line() -> None:
    assert line_of(DOC, ("daemon", "log_level")) == 5


def test_top_level_key_before_any_header_is_found() -> None:
    assert line_of(DOC, ("top",)) == 2


def test_quoted_key_is_found() -> None:
    assert line_of(DOC, ("daemon", "quoted key")) == 6


def test_dotted_key_is_found_and_names_its_implicit_table() -> None:
    assert line_of(DOC, ("daemon", "site", "name")) == 7
    assert line_of(DOC, ("daemon", "site")) == 7


def test_missing_key_falls_back_to_its_table_header() -> None:
    assert line_of(DOC, ("daemon", "no_such_key")) == 4


def test_missing_table_gives_none() -> None:
    assert line_of(DOC, ("nowhere", "key")) is None


def test_empty_path_gives_none() -> None:
    assert line_of(DOC, ()) is None


def test_int_index_selects_the_nth_array_table() -> None:
    assert line_of(DOC, ("roles", 1, "name")) == 13


def test_array_of_tables_itself_is_its_first_header() -> None:
    assert line_of(DOC, ("roles",)) == 9


def test_index_past_the_last_array_table_falls_back_to_the_first_header() -> None:
    assert line_of(DOC, ("roles", 7, "name")) == 9


def test_subtable_header_belongs_to_the_latest_array_table() -> None:
    assert line_of(DOC, ("roles", 1, "limits", "sessions")) == 15


def test_nested_array_table_is_counted_within_its_parent() -> None:
    assert line_of(DOC, ("roles", 1, "rules", 0, "kind")) == 18


def test_text_inside_a_multiline_string_is_not_a_header() -> None:
    assert line_of(DOC, ("fake", "table")) is None
    assert line_of(DOC, ("interfaces", "fake_key")) == 20


def test_key_after_a_multiline_string_is_found() -> None:
    assert line_of(DOC, ("interfaces", "access")) == 25


def test_elements_of_a_multiline_array_are_found_on_their_lines() -> None:
    assert line_of(DOC, ("interfaces", "access", 1)) == 28


def test_inline_table_key_is_on_its_line() -> None:
    assert line_of(DOC, ("interfaces", "client", "secret")) == 30


def test_key_after_an_inline_table_is_found() -> None:
    assert line_of(DOC, ("interfaces", "after")) == 31


def test_key_of_an_inline_table_in_a_multiline_array_is_on_its_elements_line() -> None:
    text = 'rules = [\n  { kind = "os" },\n  { kind = "av" },\n]\n'
    assert line_of(text, ("rules", 1, "kind")) == 3


def test_keys_in_comments_are_ignored() -> None:
    assert line_of(DOC, ("key",)) is None


def test_escaped_quoted_key_is_decoded_before_matching() -> None:
    assert line_of('[t]\n"a\\u0041\\"b" = 1\n', ("t", 'aA"b')) == 2


def test_literal_quoted_key_is_found() -> None:
    assert line_of("[t]\n'c:\\x' = 1\n", ("t", "c:\\x")) == 2


def test_spaces_inside_header_and_dotted_keys_are_allowed() -> None:
    assert line_of('[ a . "b" ]\nx . y = 1\n', ("a", "b", "x", "y")) == 2


def test_explicit_table_header_wins_over_an_earlier_implicit_mention() -> None:
    assert line_of("[a.b]\nx = 1\n[a]\ny = 2\n", ("a", "missing")) == 3


@given(st.text())
def test_arbitrary_text_never_raises(text: str) -> None:
    line = line_of(text, ("a", 0, "b"))
    assert line is None or 1 <= line <= text.count("\n") + 1


def test_deeply_nested_brackets_do_not_exhaust_the_stack() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    assert line_of(f"a = {deep}\nb = 1\n", ("b",)) == 2


# -- generated documents: render a random dict as TOML, remembering each key's line ----------

Table = dict[str, Any]
BARE = re.compile(r"[A-Za-z0-9_-]+")
NOT_GENERATED = "a-key-longer-than-any-generated-one"

keys = st.one_of(st.from_regex(r"[A-Za-z0-9_-]{1,6}", fullmatch=True), st.text(max_size=5))
tricky_strings = st.sampled_from(["[x]", "k = 1", "[[y]]\nz = 2\n", '"""', "'''", "#", "a\\b", ""])
scalars = st.one_of(st.integers(-1000, 1000), st.booleans(), st.text(max_size=12), tricky_strings)
leaves = st.one_of(scalars, st.lists(scalars, max_size=4))


def tables(depth: int) -> st.SearchStrategy[Table]:
    if depth == 0:
        return st.dictionaries(keys, leaves, max_size=4)
    sub = tables(depth - 1)
    values = st.one_of(leaves, sub, st.lists(sub, min_size=1, max_size=3))
    return st.dictionaries(keys, values, max_size=4)


def is_table(value: object) -> bool:
    return isinstance(value, dict)


def is_table_array(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def dottable(table: Table) -> bool:
    """Renderable as `key.sub = value` lines: non-empty, holding no arrays of tables."""
    return bool(table) and all(
        dottable(v) if is_table(v) else not is_table_array(v) for v in table.values()
    )


def escaped(text: str, keep_newlines: bool) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n" and keep_newlines:
            out.append(ch)
        elif ch < " " or ch == "\x7f":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


class Renderer:
    """Writes TOML in varied styles and records the line where each key path must be found."""

    def __init__(self, rnd: random.Random) -> None:
        self.rnd = rnd
        self.lines: list[str] = []
        self.expected: dict[KeyPath, int] = {}

    def emit(self, text: str) -> int:
        line = len(self.lines) + 1
        self.lines.extend(text.split("\n"))
        if self.rnd.random() < 0.2:
            self.lines.append(self.rnd.choice(["", "# [not.a] table = 1", "   "]))
        return line

    def key(self, key: str) -> str:
        if BARE.fullmatch(key) and self.rnd.random() < 0.8:
            return key
        if (
            "'" not in key
            and not any(c < " " or c == "\x7f" for c in key)
            and self.rnd.random() < 0.3
        ):
            return f"'{key}'"
        return f'"{escaped(key, keep_newlines=False)}"'

    def dotted(self, path: KeyPath) -> str:
        sep = self.rnd.choice([".", " . "])
        return sep.join(self.key(k) for k in path if isinstance(k, str))

    def scalar(self, value: object) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return str(value)
        assert isinstance(value, str)
        if "\n" in value and self.rnd.random() < 0.7:
            body = escaped(value, keep_newlines=True)
            # A newline right after the opening quotes would be trimmed by TOML; escape it.
            return '"""' + (("\\n" + body[1:]) if body.startswith("\n") else body) + '"""'
        return f'"{escaped(value, keep_newlines=False)}"'

    def record(self, path: KeyPath, line: int) -> None:
        self.expected.setdefault(path, line)
        for length in range(1, len(path)):
            self.expected.setdefault(path[:length], line)

    def key_value(self, path: KeyPath, keys: KeyPath, value: object) -> None:
        text = f"{self.dotted(keys)} = "
        start = len(self.lines) + 1
        self.record((*path, *keys), start)
        if isinstance(value, list):
            multiline = self.rnd.random() < 0.5
            text += "["
            for index, item in enumerate(value):
                text += "\n  " if multiline else (" " if index else "")
                self.record((*path, *keys, index), start + text.count("\n"))
                text += self.scalar(item) + ","
            text += "\n]" if multiline else "]"
        else:
            text += self.scalar(value)
        if self.rnd.random() < 0.3:
            text += "  # x = [1]"
        self.emit(text)

    def dotted_table(self, path: KeyPath, keys: KeyPath, table: Table) -> None:
        for key, value in table.items():
            if is_table(value):
                self.dotted_table(path, (*keys, key), value)
            else:
                self.key_value(path, (*keys, key), value)

    def body(self, path: KeyPath, table: Table) -> None:
        headed: list[tuple[str, Table]] = []
        arrays: list[tuple[str, list[Table]]] = []
        for key, value in table.items():
            if is_table_array(value):
                arrays.append((key, value))
            elif is_table(value):
                if dottable(value) and self.rnd.random() < 0.4:
                    self.dotted_table(path, (key,), value)
                else:
                    headed.append((key, value))
            else:
                self.key_value(path, (key,), value)
        for key, sub in headed:
            self.record((*path, key), self.emit(f"[{self.dotted((*path, key))}]"))
            self.body((*path, key), sub)
        for key, items in arrays:
            for index, item in enumerate(items):
                line = self.emit(f"[[{self.dotted((*path, key))}]]")
                self.record((*path, key, index), line)
                self.body((*path, key, index), item)


@settings(max_examples=300)
@given(tables(2), st.randoms(use_true_random=False))
def test_line_of_finds_every_key_of_a_generated_document(table: Table, rnd: random.Random) -> None:
    renderer = Renderer(rnd)
    renderer.body((), table)
    text = "\n".join(renderer.lines) + "\n"
    assert tomllib.loads(text) == table  # the renderer itself is right
    for path, line in renderer.expected.items():
        assert line_of(text, path) == line, (path, text)


@given(tables(2), st.randoms(use_true_random=False))
def test_missing_key_under_a_generated_path_gives_that_paths_line(
    table: Table, rnd: random.Random
) -> None:
    renderer = Renderer(rnd)
    renderer.body((), table)
    text = "\n".join(renderer.lines) + "\n"
    for path, line in renderer.expected.items():
        assert line_of(text, (*path, NOT_GENERATED)) == line, (path, text)
