"""A patch feed (`netaccess-patch-feed/1`) built from Debian's security archive: the InRelease
file and its SHA256 list, the binary Packages index checked against it, one product and one
patch per binary package, and the feed's Ed25519 signature. Pure: bytes and text in, values
out; tools/feeds/debian does the file I/O."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .debversion import DebianVersionError, parse_version

FEED_FORMAT = "netaccess-patch-feed/1"
DEFAULT_VALID_DAYS = 14
# The Packages index says nothing of severity; Debian's security tracker does, elsewhere.
UNKNOWN_SEVERITY = "unknown"

_SIGNED_HEAD = "-----BEGIN PGP SIGNED MESSAGE-----"
_SIGNATURE_HEAD = "-----BEGIN PGP SIGNATURE-----"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_PACKAGE_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+")
# Release dates are RFC 2822 in UTC (`Sat, 21 Nov 2026 00:53:02 UTC`); parsed by hand because
# strptime's month names follow the locale.
_RELEASE_DATE = re.compile(
    r"(?:[A-Z][a-z]{2}, )?(\d{1,2}) ([A-Z][a-z]{2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) "
    r"(UTC|GMT|Z|[+-]\d{4})"
)
_EXAMPLE = "Sat, 21 Nov 2026 00:53:02 UTC"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class FeedError(ValueError):
    """An archive file or key that cannot make a feed; the message says which and why."""


@dataclass(frozen=True, slots=True)
class IndexedFile:
    """One line of a Release file's SHA256 list."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Release:
    """What a feed needs from an (In)Release file (Debian's repository format)."""

    origin: str
    label: str
    suite: str
    codename: str
    version: str
    date_text: str
    date: datetime
    valid_until: datetime | None
    components: tuple[str, ...]
    architectures: tuple[str, ...]
    sha256: Mapping[str, IndexedFile]


@dataclass(frozen=True, slots=True)
class BinaryPackage:
    """One paragraph of a Packages index; `version` as the index spells it."""

    name: str
    version: str
    architecture: str
    source: str


def parse_release(text: str) -> Release:
    """Parse an InRelease file (the signed text inside its OpenPGP armour; the signature is
    not checked here, apt checked it when it fetched the file) or a plain Release file."""
    body = _signed_text(text)
    paragraphs = list(_paragraphs(body))
    if len(paragraphs) != 1:
        raise FeedError(f"a Release file has one paragraph, this one has {len(paragraphs)}")
    _, fields = paragraphs[0]
    date_text = _required(fields, "Date", "Release")
    return Release(
        origin=fields.get("origin", ""),
        label=fields.get("label", ""),
        suite=fields.get("suite", ""),
        codename=_required(fields, "Codename", "Release"),
        version=fields.get("version", ""),
        date_text=date_text,
        date=_release_date(date_text, "Date"),
        valid_until=_release_date(fields["valid-until"], "Valid-Until")
        if "valid-until" in fields
        else None,
        components=tuple(fields.get("components", "").split()),
        architectures=tuple(fields.get("architectures", "").split()),
        sha256=_hash_list(_required(fields, "SHA256", "Release")),
    )


def verify_index(release: Release, path: str, data: bytes) -> IndexedFile:
    """Check `data` against the entry for `path` (relative to the Release file, e.g.
    `main/binary-amd64/Packages`) in the Release file's SHA256 list; return the entry."""
    entry = release.sha256.get(path)
    if entry is None:
        raise FeedError(f"{release.codename} Release lists no SHA256 for {path}")
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != entry.size or not hmac.compare_digest(digest, entry.sha256):
        raise FeedError(
            f"{path} does not match {release.codename} Release: it lists sha256 "
            f"{entry.sha256} ({entry.size} bytes), the index has {digest} ({len(data)} bytes)"
        )
    return entry


def parse_packages(text: str) -> list[BinaryPackage]:
    """Every paragraph of a Packages index, in order; a paragraph without a valid name or
    version raises FeedError naming its line."""
    found = []
    for line, fields in _paragraphs(text):
        name = _required(fields, "Package", f"the paragraph at line {line}")
        version = _required(fields, "Version", f"package {name} (line {line})")
        if not _PACKAGE_NAME.fullmatch(name):
            raise FeedError(f"line {line}: {name!r} is not a Debian package name")
        try:
            parse_version(version)
        except DebianVersionError as exc:
            raise FeedError(f"package {name} (line {line}): {exc}") from None
        source = fields.get("source", name).split(" ", 1)[0]
        found.append(BinaryPackage(name, version, fields.get("architecture", ""), source))
    return found


def latest_versions(packages: Iterable[BinaryPackage]) -> dict[str, str]:
    """The highest version (dpkg's order) of each package name."""
    latest: dict[str, str] = {}
    for package in packages:
        held = latest.get(package.name)
        if held is None or _newer(package.version, held):
            latest[package.name] = package.version
    return latest


def feed_version(release: Release) -> int:
    """The Release's Date as YYYYMMDDHHMMSS: it grows with every archive update."""
    return int(release.date.strftime("%Y%m%d%H%M%S"))


def feed_source(release: Release, components: Sequence[str], architecture: str) -> str:
    archive = (release.label or release.origin or "debian").lower()
    codename = release.codename.removesuffix("-security")
    return (
        f"{archive} {codename} {','.join(components)} {architecture} "
        f"(InRelease Date: {release.date_text})"
    )


def build_feed(
    release: Release,
    packages: Iterable[BinaryPackage],
    *,
    components: Sequence[str],
    architecture: str,
    issued: datetime,
    valid_days: int = DEFAULT_VALID_DAYS,
    version: int | None = None,
) -> dict[str, object]:
    """The feed document: one product per binary package name, at its highest version, and
    one patch for it (the security archive keeps only the latest). Severity is unknown and
    the release date is the Release file's date: the Packages index carries neither."""
    if issued.tzinfo is None:
        raise FeedError("the issue time needs a time zone")
    if valid_days < 1:
        raise FeedError(f"a feed must be valid for at least a day, not {valid_days}")
    if version is not None and version < 1:
        raise FeedError(f"a feed version is a positive integer, not {version}")
    if not release.version:
        raise FeedError(f"{release.codename} Release has no Version, so no OS to name")
    vendor = release.origin or "Debian"
    os_name = f"{vendor} {release.version}"
    prefix = f"{vendor.lower()}-{release.version}"
    released = release.date.astimezone(UTC).date().isoformat()
    issued = issued.astimezone(UTC).replace(microsecond=0)
    products = []
    patches = []
    for name, latest in sorted(latest_versions(packages).items()):
        product_id = f"{prefix}/{name}"
        products.append(
            {
                "id": product_id,
                "vendor": vendor,
                "name": name,
                "platform": "linux",
                "os": os_name,
                "latest_version": latest,
            }
        )
        patches.append(
            {
                "id": f"{product_id}/{latest}",
                "product": product_id,
                "severity": UNKNOWN_SEVERITY,
                "released": released,
                "fixed_version": latest,
                "superseded_by": None,
            }
        )
    return {
        "format": FEED_FORMAT,
        "version": feed_version(release) if version is None else version,
        "issued": _rfc3339(issued),
        "expires": _rfc3339(issued + timedelta(days=valid_days)),
        "source": feed_source(release, components, architecture),
        "products": products,
        "patches": patches,
    }


def encode_feed(document: Mapping[str, object]) -> bytes:
    """The feed's exact bytes: sorted keys, no spaces, one trailing newline."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return text.encode("ascii") + b"\n"


def generate_signing_key() -> bytes:
    """A new Ed25519 private key, PEM PKCS8 unencrypted (the key file guards it: mode 0600)."""
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_signing_key(pem: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise FeedError(f"not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise FeedError(f"the key is {type(key).__name__}, a feed key must be Ed25519")
    return key


def public_key_text(key: Ed25519PrivateKey) -> str:
    """The public key as trusted-key lists hold it: its raw 32 bytes in base64."""
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def sign_feed(key: Ed25519PrivateKey, data: bytes) -> str:
    """The detached signature over the feed's exact bytes, in base64 (one line)."""
    return base64.b64encode(key.sign(data)).decode("ascii")


def signature_matches(data: bytes, signature: str, public_key: str) -> bool:
    """Whether `signature` (base64) is the Ed25519 signature of `data` by `public_key`
    (base64 of its raw 32 bytes)."""
    try:
        raw_key = base64.b64decode(public_key.strip(), validate=True)
        raw_signature = base64.b64decode(signature.strip(), validate=True)
        Ed25519PublicKey.from_public_bytes(raw_key).verify(raw_signature, data)
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


def _newer(candidate: str, held: str) -> bool:
    order = parse_version(candidate).compare(parse_version(held))
    # Spellings dpkg finds equal (`1.0` and `1.00`): keep one regardless of input order.
    return order > 0 or (order == 0 and candidate < held)


def _signed_text(text: str) -> str:
    lines = text.replace("\r\n", "\n").split("\n")
    starts = [i for i, line in enumerate(lines) if line.rstrip() == _SIGNED_HEAD]
    if not starts:
        return text
    if any(line.strip() for line in lines[: starts[0]]):
        raise FeedError("an InRelease file has text before its signed message")
    # Armour headers (`Hash: SHA256`) end at the first empty line; the signature follows
    # the signed text.
    rest = lines[starts[0] + 1 :]
    try:
        body_start = next(i for i, line in enumerate(rest) if not line.strip()) + 1
        body_end = next(i for i, line in enumerate(rest) if line.rstrip() == _SIGNATURE_HEAD)
    except StopIteration:
        raise FeedError("an InRelease file's OpenPGP armour is incomplete") from None
    if body_end < body_start:
        raise FeedError("an InRelease file's OpenPGP armour is incomplete")
    # Dash-escaped lines (RFC 4880 §7.1) lose their escape.
    body = rest[body_start:body_end]
    return "\n".join(line[2:] if line.startswith("- ") else line for line in body)


def _paragraphs(text: str) -> Iterator[tuple[int, dict[str, str]]]:
    """deb822 paragraphs: field names folded to lower case; continuation lines kept,
    one per line, without their leading space."""
    fields: dict[str, str] = {}
    start = 0
    current = ""
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            if fields:
                yield start, fields
            fields, current = {}, ""
            continue
        if not fields:
            start = number
        if line[0] in " \t":
            if not current:
                raise FeedError(f"line {number}: a continuation line outside a field")
            fields[current] += "\n" + line.strip()
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise FeedError(f"line {number}: expected `Field: value`, found {line[:60]!r}")
        current = name.lower()
        fields[current] = value.strip()
    if fields:
        yield start, fields


def _hash_list(text: str) -> dict[str, IndexedFile]:
    entries = {}
    for line in text.split("\n"):
        if not line:
            continue
        parts = line.split()
        if len(parts) != 3 or not _SHA256.fullmatch(parts[0]) or not parts[1].isdigit():
            raise FeedError(f"a Release SHA256 line is malformed: {line[:100]!r}")
        digest, size, path = parts
        entries[path] = IndexedFile(path, int(size), digest)
    return entries


def _required(fields: Mapping[str, str], name: str, where: str) -> str:
    value = fields.get(name.lower())
    if not value:
        raise FeedError(f"{where} has no {name} field")
    return value


def _release_date(text: str, field: str) -> datetime:
    found = _RELEASE_DATE.fullmatch(text.strip())
    if found is None or found[2] not in _MONTHS:
        raise FeedError(f"Release {field} {text!r} is not an RFC 2822 date such as {_EXAMPLE!r}")
    day, month, year, hour, minute, second, zone = found.groups()
    offset = timedelta()
    if zone[0] in "+-":
        offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5]))
        offset = -offset if zone[0] == "-" else offset
    try:
        when = datetime(
            int(year),
            _MONTHS.index(month) + 1,
            int(day),
            int(hour),
            int(minute),
            int(second),
            tzinfo=timezone(offset),
        )
    except ValueError as exc:
        raise FeedError(f"Release {field} {text!r} is not a valid date: {exc}") from None
    return when.astimezone(UTC)


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = [
    "DEFAULT_VALID_DAYS",
    "FEED_FORMAT",
    "UNKNOWN_SEVERITY",
    "BinaryPackage",
    "FeedError",
    "IndexedFile",
    "Release",
    "build_feed",
    "encode_feed",
    "feed_source",
    "feed_version",
    "generate_signing_key",
    "latest_versions",
    "load_signing_key",
    "parse_packages",
    "parse_release",
    "public_key_text",
    "sign_feed",
    "signature_matches",
    "verify_index",
]
