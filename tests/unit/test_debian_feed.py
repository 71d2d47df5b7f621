"""The Debian patch feed: InRelease and Packages parsing, the index checked against InRelease's
SHA256, the feed's exact bytes and its Ed25519 signature, and tools/feeds/debian run on small
hand-made lists and on this machine's real apt lists."""

from __future__ import annotations

import base64
import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from netaccess.policy.debian_feed import (
    FEED_FORMAT,
    BinaryPackage,
    FeedError,
    build_feed,
    encode_feed,
    generate_signing_key,
    latest_versions,
    load_signing_key,
    parse_packages,
    parse_release,
    public_key_text,
    sign_feed,
    signature_matches,
    verify_index,
)
from netaccess.policy.debversion import compare_versions

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "feeds" / "debian"
APT_LISTS = Path("/var/lib/apt/lists")
SUITE = "bookworm-security"
ISSUED = datetime(2026, 11, 23, 17, 0, 0, tzinfo=UTC)

PACKAGES = """\
Package: openssl
Source: openssl (3.0.17-1~deb12u2)
Version: 3.0.17-1~deb12u2
Architecture: amd64
Description: Secure Sockets Layer toolkit
 - cryptographic utility
 .
 More text.

Package: libssl3
Source: openssl
Version: 3.0.17-1~deb12u2
Architecture: amd64

Package: linux-doc
Version: 6.1.150-1
Architecture: all

Package: linux-doc
Version: 6.1.158-1
Architecture: all

Package: linux-doc
Version: 6.1.99-1
Architecture: all
"""


def in_release(
    files: dict[str, bytes], *, date: str = "Sat, 21 Nov 2026 00:53:02 UTC", armour: bool = True
) -> str:
    lines = "".join(
        f" {hashlib.sha256(data).hexdigest()} {len(data):8d} {path}\n"
        for path, data in sorted(files.items())
    )
    body = (
        "Origin: Debian\n"
        "Label: Debian-Security\n"
        "Suite: oldstable-security\n"
        "Version: 12\n"
        "Codename: bookworm-security\n"
        f"Date: {date}\n"
        "Valid-Until: Sat, 28 Nov 2099 00:53:02 UTC\n"
        "Architectures: amd64 arm64\n"
        "Components: updates/main updates/contrib\n"
        "Description: Debian 12 - Security Updates\n"
        f"SHA256:\n{lines}"
    )
    if not armour:
        return body
    return (
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n"
        f"{body}"
        "-----BEGIN PGP SIGNATURE-----\n\nc2lnbmF0dXJl\n=abcd\n-----END PGP SIGNATURE-----\n"
    )


PACKAGES_BYTES = PACKAGES.encode()
ONE_FILE = {"main/binary-amd64/Packages": PACKAGES_BYTES}
RELEASE = parse_release(in_release({"main/binary-amd64/Packages": PACKAGES_BYTES}))


def small_feed(packages: list[BinaryPackage] | None = None, **options: object) -> bytes:
    document = build_feed(
        RELEASE,
        parse_packages(PACKAGES) if packages is None else packages,
        components=["main"],
        architecture="amd64",
        issued=ISSUED,
        **options,  # type: ignore[arg-type]
    )
    return encode_feed(document)


# --- InRelease -------------------------------------------------------------------------------


def test_in_release_fields_and_hash_list_are_read() -> None:
    assert (RELEASE.origin, RELEASE.codename, RELEASE.version) == ("Debian", SUITE, "12")
    assert RELEASE.date == datetime(2026, 11, 21, 0, 53, 2, tzinfo=UTC)
    assert RELEASE.components == ("updates/main", "updates/contrib")
    entry = RELEASE.sha256["main/binary-amd64/Packages"]
    assert entry.size == len(PACKAGES_BYTES)
    assert entry.sha256 == hashlib.sha256(PACKAGES_BYTES).hexdigest()


def test_a_plain_release_file_reads_like_in_release() -> None:
    plain = parse_release(in_release({"main/binary-amd64/Packages": PACKAGES_BYTES}, armour=False))
    assert plain == RELEASE


def test_dash_escaped_lines_in_the_signed_text_are_unescaped() -> None:
    text = in_release(ONE_FILE).replace("Suite: oldstable-security", "- Suite: oldstable-security")
    assert parse_release(text).suite == "oldstable-security"


def test_text_before_the_signed_message_is_refused() -> None:
    with pytest.raises(FeedError, match="text before"):
        parse_release("Codename: evil\n\n" + in_release(ONE_FILE))


def test_armour_without_a_signature_is_refused() -> None:
    with pytest.raises(FeedError, match="incomplete"):
        parse_release(in_release(ONE_FILE).split("-----BEGIN PGP SIGNATURE-----")[0])


def test_release_without_a_date_is_refused() -> None:
    with pytest.raises(FeedError, match="no Date"):
        parse_release(in_release(ONE_FILE, armour=False).replace("Date: ", "Dated: "))


def test_release_date_that_is_not_rfc_2822_is_refused() -> None:
    with pytest.raises(FeedError, match="not an RFC 2822 date"):
        parse_release(in_release(ONE_FILE, armour=False, date="2026-11-21T00:53:02Z"))


def test_release_date_in_another_zone_is_taken_to_utc() -> None:
    release = parse_release(
        in_release(ONE_FILE, armour=False, date="Sat, 21 Nov 2026 01:53:02 +0100")
    )
    assert release.date == RELEASE.date


def test_malformed_hash_line_is_refused() -> None:
    with pytest.raises(FeedError, match="SHA256 line is malformed"):
        parse_release(
            in_release(ONE_FILE, armour=False) + " nothex 12 main/binary-amd64/Packages\n"
        )


# --- the index against InRelease ---------------------------------------------------------------


def test_index_matching_in_release_is_accepted() -> None:
    entry = verify_index(RELEASE, "main/binary-amd64/Packages", PACKAGES_BYTES)
    assert entry.path == "main/binary-amd64/Packages"


def test_index_with_one_byte_changed_is_refused() -> None:
    tampered = PACKAGES_BYTES.replace(b"3.0.17-1~deb12u2", b"3.0.17-1~deb12u3", 1)
    with pytest.raises(FeedError, match="does not match"):
        verify_index(RELEASE, "main/binary-amd64/Packages", tampered)


def test_index_with_a_different_length_is_refused() -> None:
    with pytest.raises(FeedError, match="does not match"):
        verify_index(RELEASE, "main/binary-amd64/Packages", PACKAGES_BYTES + b"\n")


def test_index_in_release_does_not_list_is_refused() -> None:
    with pytest.raises(FeedError, match="lists no SHA256 for contrib/binary-amd64/Packages"):
        verify_index(RELEASE, "contrib/binary-amd64/Packages", PACKAGES_BYTES)


# --- Packages ----------------------------------------------------------------------------------


def test_packages_paragraphs_are_read_in_order() -> None:
    packages = parse_packages(PACKAGES)
    assert [p.name for p in packages] == ["openssl", "libssl3", *["linux-doc"] * 3]
    assert packages[0] == BinaryPackage("openssl", "3.0.17-1~deb12u2", "amd64", "openssl")
    assert packages[1].source == "openssl"


def test_paragraph_without_a_version_is_refused_with_its_line() -> None:
    with pytest.raises(FeedError, match=r"package curl \(line 4\) has no Version"):
        parse_packages("Package: ab\nVersion: 1\n\nPackage: curl\nArchitecture: amd64\n")


def test_paragraph_with_a_bad_version_is_refused() -> None:
    with pytest.raises(FeedError, match="package curl"):
        parse_packages("Package: curl\nVersion: 1.0_beta\n")


def test_latest_version_is_dpkgs_highest_not_the_last_or_the_longest() -> None:
    latest = latest_versions(parse_packages(PACKAGES))
    assert latest["linux-doc"] == "6.1.158-1"
    extra = [BinaryPackage("x", v, "all", "x") for v in ("2.0-1", "1:0.9-1", "2.0-1+deb12u1")]
    assert latest_versions(extra)["x"] == "1:0.9-1"


# --- the feed document -------------------------------------------------------------------------


def test_feed_has_one_product_and_one_patch_per_binary_package() -> None:
    document = json.loads(small_feed())
    assert document["format"] == FEED_FORMAT
    assert [p["id"] for p in document["products"]] == [
        "debian-12/libssl3",
        "debian-12/linux-doc",
        "debian-12/openssl",
    ]
    assert document["products"][2] == {
        "id": "debian-12/openssl",
        "vendor": "Debian",
        "name": "openssl",
        "platform": "linux",
        "os": "Debian 12",
        "latest_version": "3.0.17-1~deb12u2",
    }
    assert document["patches"][1] == {
        "id": "debian-12/linux-doc/6.1.158-1",
        "product": "debian-12/linux-doc",
        "severity": "unknown",
        "released": "2026-11-21",
        "fixed_version": "6.1.158-1",
        "superseded_by": None,
    }


def test_feed_header_dates_version_and_source() -> None:
    document = json.loads(small_feed())
    assert document["version"] == 20261121005302
    assert document["issued"] == "2026-11-23T17:00:00Z"
    assert document["expires"] == "2026-12-07T17:00:00Z"
    assert document["source"] == (
        "debian-security bookworm main amd64 (InRelease Date: Sat, 21 Nov 2026 00:53:02 UTC)"
    )


def test_feed_version_and_validity_can_be_given() -> None:
    document = json.loads(small_feed(version=7, valid_days=1))
    assert document["version"] == 7
    assert document["expires"] == "2026-11-24T17:00:00Z"


def test_feed_bytes_do_not_depend_on_index_order() -> None:
    packages = parse_packages(PACKAGES)
    assert small_feed(packages) == small_feed(list(reversed(packages)))


def test_feed_bytes_are_compact_sorted_json_with_one_newline() -> None:
    data = small_feed([BinaryPackage("zlib1g", "1:1.2.13.dfsg-1", "amd64", "zlib")])
    assert data == (
        b'{"expires":"2026-12-07T17:00:00Z","format":"netaccess-patch-feed/1",'
        b'"issued":"2026-11-23T17:00:00Z","patches":[{"fixed_version":"1:1.2.13.dfsg-1",'
        b'"id":"debian-12/zlib1g/1:1.2.13.dfsg-1","product":"debian-12/zlib1g",'
        b'"released":"2026-11-21","severity":"unknown","superseded_by":null}],'
        b'"products":[{"id":"debian-12/zlib1g","latest_version":"1:1.2.13.dfsg-1",'
        b'"name":"zlib1g","os":"Debian 12","platform":"linux","vendor":"Debian"}],'
        b'"source":"debian-security bookworm main amd64 (InRelease Date: Sat, 21 Nov 2026 '
        b'00:53:02 UTC)","version":20261121005302}\n'
    )


def test_feed_needs_an_aware_issue_time() -> None:
    with pytest.raises(FeedError, match="time zone"):
        build_feed(
            RELEASE, [], components=["main"], architecture="amd64", issued=datetime(2026, 1, 1)
        )


# --- signature ---------------------------------------------------------------------------------


def test_signature_verifies_with_the_public_key() -> None:
    key = load_signing_key(generate_signing_key())
    data = small_feed()
    signature = sign_feed(key, data)
    assert "\n" not in signature
    assert len(base64.b64decode(signature)) == 64
    assert signature_matches(data, signature, public_key_text(key))


def test_signature_fails_after_a_one_byte_change() -> None:
    key = load_signing_key(generate_signing_key())
    data = small_feed()
    signature = sign_feed(key, data)
    changed = data.replace(b"deb12u2", b"deb12u3", 1)
    assert len(changed) == len(data) and changed != data
    assert not signature_matches(changed, signature, public_key_text(key))


def test_signature_fails_with_another_key() -> None:
    data = small_feed()
    signature = sign_feed(load_signing_key(generate_signing_key()), data)
    other = public_key_text(load_signing_key(generate_signing_key()))
    assert not signature_matches(data, signature, other)


def test_public_key_is_the_raw_32_bytes_in_base64() -> None:
    assert len(base64.b64decode(public_key_text(load_signing_key(generate_signing_key())))) == 32


def test_a_key_that_is_not_ed25519_is_refused() -> None:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(FeedError, match="must be Ed25519"):
        load_signing_key(pem)
    with pytest.raises(FeedError, match="PEM"):
        load_signing_key(b"not a key")


# --- tools/feeds/debian ------------------------------------------------------------------------


def run_tool(
    *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("key") / "feed-key.pem"
    done = run_tool("--generate-key", path)
    assert done.returncode == 0, done.stderr
    return path


def fake_lists(
    directory: Path,
    packages: bytes,
    *,
    stored: str = "",
    listed: bytes | None = None,
    listed_as: str = "",
) -> Path:
    """An apt lists directory with one security suite: apt's copy of the index is `packages`,
    compressed as `stored` says; its InRelease lists `listed` (by default the index itself)
    under the path of the index with `listed_as` appended."""
    directory.mkdir(exist_ok=True)
    prefix = "deb.debian.org_debian-security_dists_bookworm-security_"
    index = "main/binary-amd64/Packages"
    stored_bytes = lzma.compress(packages) if stored == ".xz" else packages
    if listed is None:
        listed = stored_bytes if listed_as else packages
    (directory / f"{prefix}InRelease").write_text(in_release({index + listed_as: listed}))
    (directory / f"{prefix}main_binary-amd64_Packages{stored}").write_bytes(stored_bytes)
    return directory


def test_tool_generates_a_private_key_only_its_owner_reads(key_file: Path) -> None:
    assert key_file.stat().st_mode & 0o777 == 0o600
    printed = run_tool("--public-key", "--key", key_file)
    assert printed.returncode == 0, printed.stderr
    public = printed.stdout.strip()
    assert len(base64.b64decode(public)) == 32
    assert public == public_key_text(load_signing_key(key_file.read_bytes()))


def test_tool_never_overwrites_a_key(key_file: Path) -> None:
    done = run_tool("--generate-key", key_file)
    assert done.returncode == 1
    assert "exists" in done.stderr


def test_tool_writes_a_feed_and_a_signature_that_verifies(tmp_path: Path, key_file: Path) -> None:
    lists = fake_lists(tmp_path / "lists", PACKAGES_BYTES, stored=".xz")
    output = tmp_path / "feed.json"
    done = run_tool("--output", output, "--key", key_file, "--lists", lists)
    assert done.returncode == 0, done.stderr
    assert "matches InRelease's main/binary-amd64/Packages" in done.stderr
    data = output.read_bytes()
    signature = output.with_name("feed.json.sig").read_text()
    assert signature.endswith("\n") and signature.count("\n") == 1
    public = public_key_text(load_signing_key(key_file.read_bytes()))
    assert signature_matches(data, signature, public)
    assert [p["name"] for p in json.loads(data)["products"]] == ["libssl3", "linux-doc", "openssl"]


def test_tool_checks_a_compressed_index_when_only_that_is_listed(
    tmp_path: Path, key_file: Path
) -> None:
    lists = fake_lists(tmp_path / "lists", PACKAGES_BYTES, stored=".xz", listed_as=".xz")
    done = run_tool("--output", tmp_path / "feed.json", "--key", key_file, "--lists", lists)
    assert done.returncode == 0, done.stderr
    assert "matches InRelease's main/binary-amd64/Packages.xz" in done.stderr


def test_tool_output_is_reproducible_with_source_date_epoch(tmp_path: Path, key_file: Path) -> None:
    lists = fake_lists(tmp_path / "lists", PACKAGES_BYTES)
    epoch = {"SOURCE_DATE_EPOCH": str(int(ISSUED.timestamp()))}
    outputs = [tmp_path / "a.json", tmp_path / "b.json"]
    for output in outputs:
        done = run_tool("--output", output, "--key", key_file, "--lists", lists, env=epoch)
        assert done.returncode == 0, done.stderr
    assert outputs[0].read_bytes() == outputs[1].read_bytes() == small_feed()


def test_tool_refuses_an_index_that_does_not_match_in_release(
    tmp_path: Path, key_file: Path
) -> None:
    tampered = PACKAGES_BYTES.replace(b"deb12u2", b"deb12u3", 1)
    lists = fake_lists(tmp_path / "lists", tampered, listed=PACKAGES_BYTES)
    output = tmp_path / "feed.json"
    done = run_tool("--output", output, "--key", key_file, "--lists", lists)
    assert done.returncode == 1
    assert "does not match" in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2  # the InRelease line, then the reason
    assert not output.exists()


def test_tool_says_when_the_index_is_missing(tmp_path: Path, key_file: Path) -> None:
    done = run_tool("--output", tmp_path / "f.json", "--key", key_file, "--lists", tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().endswith("is it in apt's sources? apt-get update")


def real_security_index() -> str | None:
    """Why the real-lists test cannot run here, or None when it can."""
    release = sorted(APT_LISTS.glob(f"*_dists_{SUITE}_InRelease"))
    if not release:
        return f"no {SUITE} InRelease in {APT_LISTS}: this machine's apt has no security source"
    if not list(APT_LISTS.glob(f"*_dists_{SUITE}_main_binary-amd64_Packages*")):
        return f"no {SUITE} main amd64 Packages index in {APT_LISTS}"
    return None


def test_tool_on_this_machines_real_apt_lists(tmp_path: Path, key_file: Path) -> None:
    reason = real_security_index()
    if reason is not None:
        pytest.skip(f"NOT TESTED ON REAL DATA: {reason}")
    output = tmp_path / "debian-12.json"
    done = run_tool("--output", output, "--key", key_file)
    assert done.returncode == 0, done.stderr
    verified = re.search(
        r"main: .*: sha256 \w+\.\.\. matches InRelease's (\S+) .*; (\d+) packages", done.stderr
    )
    assert verified, done.stderr
    assert verified.group(1).startswith("main/binary-amd64/Packages")
    data = output.read_bytes()
    public = public_key_text(load_signing_key(key_file.read_bytes()))
    assert signature_matches(data, output.with_name(output.name + ".sig").read_text(), public)
    document = json.loads(data)
    products = {p["name"]: p for p in document["products"]}
    assert len(products) >= 300, f"only {len(products)} products"
    assert len(document["patches"]) == len(products)
    assert int(verified.group(2)) >= len(products)
    well_known = {"openssl", "libssl3", "libc6", "linux-image-amd64", "curl", "openssh-server"}
    assert well_known & products.keys(), "none of the well-known packages is in the feed"
    # A Debian 12 security upload is named +deb12uN or ~deb12uN; a few (the kernel) are not.
    named = sum("deb12u" in p["latest_version"] for p in products.values())
    assert named > len(products) / 2
    issued = datetime.fromisoformat(document["issued"])
    assert datetime.fromisoformat(document["expires"]) - issued == timedelta(days=14)
    assert str(document["version"]).startswith(document["patches"][0]["released"].replace("-", ""))


def test_real_feed_picks_dpkgs_highest_of_each_packages_versions(
    tmp_path: Path, key_file: Path
) -> None:
    reason = real_security_index()
    if reason is not None:
        pytest.skip(f"NOT TESTED ON REAL DATA: {reason}")
    if shutil.which("dpkg") is None:
        pytest.fail("dpkg is not installed; this test checks the feed's versions with it")
    output = tmp_path / "debian-12.json"
    done = run_tool("--output", output, "--key", key_file)
    assert done.returncode == 0, done.stderr
    latest = {p["name"]: p["latest_version"] for p in json.loads(output.read_bytes())["products"]}
    index = next(APT_LISTS.glob(f"*_dists_{SUITE}_main_binary-amd64_Packages*"))
    stored = index.read_bytes()
    if index.name.endswith(".lz4"):
        stored = subprocess.run(
            ["lz4", "-dc"], input=stored, capture_output=True, check=True
        ).stdout
    elif index.name.endswith(".xz"):
        stored = lzma.decompress(stored)
    versions: dict[str, set[str]] = {}
    for package in parse_packages(stored.decode()):
        versions.setdefault(package.name, set()).add(package.version)
    assert versions.keys() == latest.keys()
    several = {name: found for name, found in versions.items() if len(found) > 1}
    for name, found in sorted(several.items()):
        for other in found - {latest[name]}:
            assert compare_versions(latest[name], other) == 1
            assert (
                subprocess.run(["dpkg", "--compare-versions", latest[name], "gt", other]).returncode
                == 0
            ), (
                name,
                latest[name],
                other,
            )
