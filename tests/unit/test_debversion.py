"""Debian version order (deb-version(7), Policy §5.6.12): rule by rule, then against the real
`dpkg --compare-versions` on pairs of versions from this machine's apt indexes."""

from __future__ import annotations

import bz2
import gzip
import itertools
import lzma
import os
import random
import re
import shlex
import shutil
import subprocess
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from netaccess.policy.debversion import (
    DebianVersion,
    DebianVersionError,
    compare_versions,
    parse_version,
)

APT_LISTS = Path("/var/lib/apt/lists")
DPKG_PAIRS = 10_000
SEED = 20261123


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("1.0", "1.1"),
        ("1.2.3", "1.2.10"),
        ("9", "10"),
        ("1.0", "1.0.0"),
        ("1.0", "1.0a"),
    ],
)
def test_upstream_digit_runs_compare_numerically(lower: str, higher: str) -> None:
    assert compare_versions(lower, higher) == -1
    assert compare_versions(higher, lower) == 1


@pytest.mark.parametrize(
    ("a", "b"), [("1.01", "1.1"), ("1.001", "1.1"), ("007", "7"), ("1.0", "1.00")]
)
def test_leading_zeros_are_ignored(a: str, b: str) -> None:
    assert compare_versions(a, b) == 0


def test_epoch_outranks_everything_else() -> None:
    assert compare_versions("1:0.1", "2.0") == 1
    assert compare_versions("1:1.0-1", "0:9.9-9") == 1


def test_epochs_compare_numerically() -> None:
    assert compare_versions("10:1.0", "9:1.0") == 1
    assert compare_versions("002:1.0", "2:1.0") == 0


def test_missing_epoch_is_zero() -> None:
    assert compare_versions("0:1.0", "1.0") == 0


def test_tilde_sorts_before_everything_even_the_end() -> None:
    # The order deb-version(7) gives as its example.
    ordered = ["1.0~~", "1.0~~a", "1.0~", "1.0", "1.0a"]
    for lower, higher in itertools.pairwise(ordered):
        assert compare_versions(lower, higher) == -1, (lower, higher)


def test_release_candidate_with_tilde_is_before_the_release() -> None:
    assert compare_versions("3.0.0~rc1-1", "3.0.0-1") == -1
    assert compare_versions("3.0.17-1~deb12u1", "3.0.17-1") == -1
    assert compare_versions("3.0.17-1~deb12u2", "3.0.17-1~deb12u1") == 1


def test_plus_sorts_after_the_end_and_before_a_dot() -> None:
    assert compare_versions("1.0+b1", "1.0") == 1
    assert compare_versions("1.0+dfsg", "1.0.1") == -1
    assert compare_versions("1.0+dfsg-1", "1.0-1") == 1


def test_letters_sort_before_non_letters() -> None:
    assert compare_versions("1.0a", "1.0+") == -1
    assert compare_versions("1.0z", "1.0.") == -1
    assert compare_versions("1a", "1-1") == 1  # `-1` is a revision: upstream 1a > 1


def test_letters_sort_by_ascii_so_capitals_come_first() -> None:
    assert compare_versions("1.0Z", "1.0a") == -1


def test_dot_sorts_after_plus_and_tilde() -> None:
    assert compare_versions("1.", "1+") == 1
    assert compare_versions("1.", "1~") == 1


def test_revisions_compare_after_upstream() -> None:
    assert compare_versions("1.0-2", "1.0-10") == -1
    assert compare_versions("1.0-1", "1.0") == 1
    assert compare_versions("1.1-1", "1.0-9") == 1
    assert compare_versions("1.0-1~bpo12+1", "1.0-1") == -1


def test_missing_revision_equals_revision_zero() -> None:
    assert compare_versions("1.0", "1.0-0") == 0


def test_revision_starts_after_the_last_hyphen() -> None:
    version = parse_version("1:2.0-rc-3+b1")
    assert (version.epoch, version.upstream, version.revision) == (1, "2.0-rc", "3+b1")


def test_epoch_ends_at_the_first_colon_and_upstream_may_hold_more() -> None:
    version = parse_version("1:2:3-4")
    assert (version.epoch, version.upstream, version.revision) == (1, "2:3", "4")


def test_upstream_not_starting_with_a_digit_is_tolerated_as_dpkg_does() -> None:
    assert parse_version("a1.0").upstream == "a1.0"
    assert compare_versions("a1.0", "1.0") == 1


def test_surrounding_whitespace_is_ignored() -> None:
    assert parse_version(" 1.0-1\n") == parse_version("1.0-1")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty"),
        ("   ", "empty"),
        (":1.0", "empty epoch"),
        ("a:1.0", "not a number"),
        ("-1:1.0", "not a number"),
        ("2147483648:1.0", "epoch above"),
        ("1:", "nothing after the epoch"),
        ("1.0-", "empty revision"),
        ("1:-1", "upstream version is empty"),
        ("1.0 1", "whitespace"),
        ("1.0_1", "character '_'"),
        ("1.0-1_2", "character '_'"),
        ("1:2.0-1:3", "character ':'"),
        ("1.0\u00e9", "character"),
    ],
)
def test_invalid_versions_are_rejected_with_the_reason(text: str, says: str) -> None:
    with pytest.raises(DebianVersionError, match=re.escape(says)):
        parse_version(text)


def test_constructor_validates_like_the_parser() -> None:
    with pytest.raises(DebianVersionError, match="hyphen"):
        DebianVersion(0, "1.0-1")
    with pytest.raises(DebianVersionError, match="epoch"):
        DebianVersion(-1, "1.0")


def test_equal_versions_are_equal_and_hash_alike() -> None:
    spellings = {parse_version(t) for t in ("1.0", "1.00", "0:1.0", "1.0-0", "01.0-00")}
    assert len(spellings) == 1


def test_str_round_trips() -> None:
    for text in ("1:2.0-1", "2.0", "0:1:2-3", "1.0~rc1+dfsg-1~deb12u1"):
        assert parse_version(str(parse_version(text))) == parse_version(text)
    assert str(parse_version("0:1:2")) == "0:1:2"
    assert str(parse_version("0:1.2-1")) == "1.2-1"


def test_rich_comparisons_and_max() -> None:
    a, b = parse_version("1.0-1"), parse_version("1.0-1+deb12u1")
    assert a < b and a <= b and b > a and b >= a and a != b
    assert max([b, a]) is b


def test_compare_versions_returns_minus_one_zero_or_one() -> None:
    assert {
        compare_versions("1", "200"),
        compare_versions("1", "1"),
        compare_versions("9", "1"),
    } == {
        -1,
        0,
        1,
    }


# --- against dpkg -------------------------------------------------------------------------------


def _read_index(path: Path) -> str:
    data = path.read_bytes()
    name = path.name
    if name.endswith(".lz4"):
        try:
            import lz4.frame  # type: ignore[import-not-found]

            data = lz4.frame.decompress(data)
        except ImportError:
            lz4 = shutil.which("lz4")
            if lz4 is None:
                pytest.fail(f"{path} is lz4-compressed; install python lz4 or the lz4 tool")
            data = subprocess.run([lz4, "-dc"], input=data, capture_output=True, check=True).stdout
    elif name.endswith(".xz"):
        data = lzma.decompress(data)
    elif name.endswith(".gz"):
        data = gzip.decompress(data)
    elif name.endswith(".bz2"):
        data = bz2.decompress(data)
    elif not name.endswith("_Packages"):
        pytest.fail(f"{path}: unknown compression")
    return data.decode("utf-8", "replace")


def _versions_by_package() -> dict[str, set[str]]:
    """Every binary package's versions across the Packages indexes apt keeps here."""
    indexes = sorted(APT_LISTS.glob("*_Packages*"))
    if not indexes:
        pytest.fail(
            f"no apt Packages index in {APT_LISTS}: run `apt-get update` so the comparison "
            "with dpkg has real versions to work on"
        )
    found: dict[str, set[str]] = defaultdict(set)
    for index in indexes:
        package = None
        for line in _read_index(index).splitlines():
            if line.startswith("Package:"):
                package = line.split(":", 1)[1].strip()
            elif line.startswith("Version:") and package is not None:
                found[package].add(line.split(":", 1)[1].strip())
    return found


def _pairs(by_package: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Pairs that exercise the rules: one package's versions across indexes, neighbours in
    sorted order (the closest calls), random pairs, and pairs with epochs and tildes."""
    rng = random.Random(SEED)
    everything = sorted({v for versions in by_package.values() for v in versions})
    pairs: set[tuple[str, str]] = set()
    for package in sorted(by_package):
        versions = sorted(by_package[package])
        pairs.update(itertools.combinations(versions, 2))
    ordered = sorted(everything, key=parse_version)
    neighbours = list(itertools.pairwise(ordered))
    pairs.update(rng.sample(neighbours, min(3000, len(neighbours))))
    for _ in range(2500):
        a, b = rng.sample(everything, 2)
        pairs.add((a, b))
    with_epoch = [v for v in everything if ":" in v]
    with_tilde = [v for v in everything if "~" in v]
    special = with_epoch + with_tilde
    for _ in range(1500):
        pairs.add((rng.choice(special), rng.choice(everything)))
        pairs.add((rng.choice(with_epoch), rng.choice(with_epoch)))
        pairs.add((rng.choice(with_tilde), rng.choice(with_tilde)))
    # Near misses built from real versions: a tilde, a `+b1` rebuild, one less epoch.
    for version in rng.sample(everything, 600):
        pairs.update([(version, version + "~"), (version, version + "+b1")])
        _, colon, rest = version.partition(":")
        if colon:
            pairs.add((version, rest))
    pairs = {(a, b) for a, b in pairs if a != b}
    return sorted(pairs)


def _dpkg_agrees(pairs: list[tuple[str, str, int]]) -> list[bool]:
    """One shell per core runs `dpkg --compare-versions a OP b` for each of its pairs, OP
    being our answer; each line prints whether dpkg agreed."""
    operators = {-1: "lt", 0: "eq", 1: "gt"}
    lines = [
        f"dpkg --compare-versions {shlex.quote(a)} {operators[r]} {shlex.quote(b)}"
        " && echo 1 || echo 0"
        for a, b, r in pairs
    ]
    workers = max(2, os.cpu_count() or 1)
    size = -(-len(lines) // workers)
    chunks = [lines[i : i + size] for i in range(0, len(lines), size)]

    def run(chunk: list[str]) -> list[bool]:
        done = subprocess.run(
            ["sh", "-s"],
            input="\n".join(chunk) + "\n",
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        answers = done.stdout.split()
        assert len(answers) == len(chunk), done.stderr[-2000:]
        return [answer == "1" for answer in answers]

    with ThreadPoolExecutor(workers) as pool:
        return [agreed for part in pool.map(run, chunks) for agreed in part]


def _dpkg_says(a: str, b: str) -> int:
    for result, operator in ((-1, "lt"), (0, "eq"), (1, "gt")):
        if subprocess.run(["dpkg", "--compare-versions", a, operator, b]).returncode == 0:
            return result
    raise AssertionError(f"dpkg gives no order for {a!r} and {b!r}")


def test_order_matches_dpkg_on_real_index_versions() -> None:
    if shutil.which("dpkg") is None:
        pytest.fail("dpkg is not installed; this test compares against `dpkg --compare-versions`")
    pairs = _pairs(_versions_by_package())
    assert len(pairs) >= DPKG_PAIRS, f"only {len(pairs)} distinct pairs in {APT_LISTS}"
    assert sum(":" in a or ":" in b for a, b in pairs) > 1000
    assert sum("~" in a or "~" in b for a, b in pairs) > 1000
    ours = [(a, b, compare_versions(a, b)) for a, b in pairs]
    wrong = [(a, b, r) for (a, b, r), ok in zip(ours, _dpkg_agrees(ours), strict=True) if not ok]
    shown = [f"{a!r} vs {b!r}: ours {r}, dpkg {_dpkg_says(a, b)}" for a, b, r in wrong[:20]]
    assert not wrong, f"{len(wrong)} of {len(pairs)} pairs disagree with dpkg:\n" + "\n".join(shown)
