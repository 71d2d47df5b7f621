"""The signed patch feed (DESIGN §6): products with their current versions and the patches
that fix them, the Ed25519 signature over the file, and the checks a new feed must pass
before it replaces the current one. Pure: the clock is an argument (`now`).

Format `netaccess-patch-feed/1`, one JSON object:
    {"format", "version": int, "issued", "expires": RFC 3339 times, "source": str,
     "products": [{"id", "vendor", "name", "platform", "os", "latest_version"}],
     "patches": [{"id", "product", "severity", "released": YYYY-MM-DD, "fixed_version",
                  "superseded_by": patch id or null}]}
The signature is detached: base64 (one line) of Ed25519 over the exact bytes of the file.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Final, NoReturn, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FEED_FORMAT: Final = "netaccess-patch-feed/1"
# Far above a real feed (Debian's security archive for one release is a few MB); it keeps a
# wrong file or a hostile server from eating the daemon's memory.
MAX_FEED_BYTES: Final = 64 * 1024 * 1024
MAX_PRODUCTS: Final = 1_000_000
MAX_PATCHES: Final = 1_000_000
# The .sig file is 88 base64 characters and a newline; anything much longer is not one.
MAX_SIGNATURE_BYTES: Final = 1024
ED25519_KEY_BYTES: Final = 32
ED25519_SIGNATURE_BYTES: Final = 64
MAX_TEXT: Final = 512
MAX_SOURCE: Final = 2048
# The version is an SQLite INTEGER in the store's feed events.
MAX_VERSION: Final = 2**63 - 1

_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)")
_DATE = re.compile(r"\d{4}-\d\d-\d\d")
# C0 controls, DEL and C1 controls: ids and names end up in logs and CLI tables.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SHOWN_CHARS = 60

_E = TypeVar("_E", bound=enum.Enum)


class FeedErrorKind(enum.Enum):
    """Why a feed was refused, in the order the checks run."""

    SIGNATURE = "signature"  # not signed by a trusted key (or no usable signature)
    SCHEMA = "schema"  # not a well-formed feed of this format (or too large)
    ROLLBACK = "rollback"  # not newer than the current feed
    EXPIRED = "expired"  # past its `expires` time


class FeedError(Exception):
    """A feed was refused; `message` says what was wrong and, for SCHEMA, where (the JSON
    path, e.g. `patches[3].severity`)."""

    def __init__(self, kind: FeedErrorKind, message: str, *, version: int | None = None) -> None:
        super().__init__(f"{kind.value}: {message}")
        self.kind = kind
        self.message = message
        self.version = version  # the refused feed's, once known (ROLLBACK, EXPIRED)


class Platform(enum.StrEnum):
    """A StrEnum, so a member is its value: lookups take "linux" as well as Platform.LINUX."""

    WINDOWS = "windows"
    MACOS = "macos"
    LINUX = "linux"
    IOS = "ios"
    ANDROID = "android"


class Severity(enum.StrEnum):
    """A patch's severity, least first (`rank` orders them); a member is its value."""

    UNKNOWN = "unknown"
    LOW = "low"
    MODERATE = "moderate"
    IMPORTANT = "important"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {severity: rank for rank, severity in enumerate(Severity)}
_PLATFORMS = frozenset(platform.value for platform in Platform)


@dataclass(frozen=True, slots=True)
class Product:
    id: str
    vendor: str
    name: str
    platform: Platform
    os: str
    latest_version: str


@dataclass(frozen=True, slots=True)
class Patch:
    id: str
    product: str  # a Product.id of the same feed
    severity: Severity
    released: date
    fixed_version: str
    superseded_by: str | None  # a Patch.id of the same feed


@dataclass(frozen=True, slots=True)
class PatchFeed:
    """A parsed, validated feed with lookups; build it through parse_feed or accept_feed."""

    version: int
    issued: datetime
    expires: datetime
    source: str
    products: tuple[Product, ...]
    patches: tuple[Patch, ...]
    _products_by_id: Mapping[str, Product] = field(init=False, repr=False, compare=False)
    _products_by_name: Mapping[tuple[str, Platform], tuple[Product, ...]] = field(
        init=False, repr=False, compare=False
    )
    _patches_by_id: Mapping[str, Patch] = field(init=False, repr=False, compare=False)
    _patches_by_product: Mapping[str, tuple[Patch, ...]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        by_name: dict[tuple[str, Platform], list[Product]] = {}
        for product in self.products:
            by_name.setdefault((product.name, product.platform), []).append(product)
        by_product: dict[str, list[Patch]] = {}
        for patch in self.patches:
            by_product.setdefault(patch.product, []).append(patch)
        # Frozen: the indexes are set once, here, and never change after.
        object.__setattr__(self, "_products_by_id", {p.id: p for p in self.products})
        object.__setattr__(self, "_products_by_name", {k: tuple(v) for k, v in by_name.items()})
        object.__setattr__(self, "_patches_by_id", {p.id: p for p in self.patches})
        object.__setattr__(
            self, "_patches_by_product", {k: tuple(v) for k, v in by_product.items()}
        )

    def product_by_id(self, product_id: str) -> Product | None:
        return self._products_by_id.get(product_id)

    def products_named(self, name: str, platform: Platform | str) -> tuple[Product, ...]:
        """Every product called `name` on `platform` (one per OS release, e.g. Debian 11
        and 12 both have openssl), in feed order."""
        return (
            self._products_by_name.get((name, Platform(platform)), ())
            if platform in _PLATFORMS
            else ()
        )

    def product_named(self, name: str, platform: Platform | str) -> Product | None:
        """The first product called `name` on `platform`, or None."""
        found = self.products_named(name, platform)
        return found[0] if found else None

    def patch(self, patch_id: str) -> Patch | None:
        return self._patches_by_id.get(patch_id)

    def patches_for(self, product_id: str) -> tuple[Patch, ...]:
        """The patches of one product, in feed order."""
        return self._patches_by_product.get(product_id, ())

    def expired(self, now: datetime) -> bool:
        return self.expires <= now


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """A feed that was accepted or refused, or a pull that failed, as the store keeps it.

    source: "import" or "pull". kind: None when accepted, else a FeedErrorKind value or
    "fetch" (the download failed) or "storage" (the feed could not be kept on disk).
    """

    at: float
    source: str
    accepted: bool
    version: int | None
    kind: str | None
    message: str


# -- signature ---------------------------------------------------------------------------------


def verify_signature(
    data: bytes, signature_b64: bytes | str, trusted_keys: Iterable[bytes]
) -> None:
    """Raises FeedError(SIGNATURE) unless one of `trusted_keys` (raw 32-byte Ed25519 public
    keys) signed exactly `data`; `signature_b64` is the .sig file's content."""
    keys = list(trusted_keys)
    if not keys:
        _refuse(
            FeedErrorKind.SIGNATURE,
            "no trusted keys are configured (patch_feed.trusted_keys), so no feed can be verified",
        )
    signature = decode_signature(signature_b64)
    for raw in keys:
        try:
            key = Ed25519PublicKey.from_public_bytes(raw)
        except ValueError:
            continue  # the config checked the length; a key that is no point cannot verify
        try:
            key.verify(signature, data)
        except InvalidSignature:
            continue
        return
    _refuse(
        FeedErrorKind.SIGNATURE,
        f"the signature does not verify with any of the {len(keys)} trusted key(s)"
        " (the feed was changed, or signed by another key)",
    )


def decode_signature(signature_b64: bytes | str) -> bytes:
    """The 64 signature bytes of a .sig file's content (base64, surrounding whitespace
    ignored); FeedError(SIGNATURE) if it is not one."""
    if len(signature_b64) > MAX_SIGNATURE_BYTES:
        _refuse(
            FeedErrorKind.SIGNATURE,
            f"the signature file has {len(signature_b64)} bytes; expected one line of base64"
            f" (at most {MAX_SIGNATURE_BYTES})",
        )
    try:
        text = signature_b64.encode("ascii") if isinstance(signature_b64, str) else signature_b64
        text.decode("ascii")
        signature = base64.b64decode(text.strip(), validate=True)
    except (UnicodeError, binascii.Error, ValueError):
        _refuse(FeedErrorKind.SIGNATURE, "the signature is not base64")
    if len(signature) != ED25519_SIGNATURE_BYTES:
        _refuse(
            FeedErrorKind.SIGNATURE,
            f"the signature has {len(signature)} bytes; an Ed25519 signature has"
            f" {ED25519_SIGNATURE_BYTES}",
        )
    return signature


# -- acceptance --------------------------------------------------------------------------------


def accept_feed(
    data: bytes,
    signature: bytes | str,
    trusted_keys: Iterable[bytes],
    current: PatchFeed | None,
    now: datetime,
    *,
    floor: int = 0,
) -> PatchFeed:
    """The feed in `data` if it may replace `current`, else FeedError.

    Checks in this order: size, signature (before any parsing: untrusted JSON is never
    looked into), schema, rollback (the version must exceed the current feed's and
    `floor`, the newest version ever accepted), expiry (at `now`, an aware datetime).
    """
    _check_size(data)
    verify_signature(data, signature, trusted_keys)
    feed = parse_feed(data)
    newest = max(floor, current.version if current is not None else 0)
    if feed.version <= newest:
        held = current is not None and current.version == newest
        what = "the current feed's version" if held else "the newest version accepted before"
        raise FeedError(
            FeedErrorKind.ROLLBACK,
            f"version {feed.version} is not newer than {newest}, {what}",
            version=feed.version,
        )
    if feed.expired(now):
        raise FeedError(
            FeedErrorKind.EXPIRED,
            f"version {feed.version} expired at {_iso(feed.expires)} (now {_iso(now)})",
            version=feed.version,
        )
    return feed


# -- schema ------------------------------------------------------------------------------------

_TOP_KEYS = ("format", "version", "issued", "expires", "source", "products", "patches")
_PRODUCT_KEYS = ("id", "vendor", "name", "platform", "os", "latest_version")
_PATCH_KEYS = ("id", "product", "severity", "released", "fixed_version", "superseded_by")


def parse_feed(data: bytes) -> PatchFeed:
    """The feed in `data`, validated; FeedError(SCHEMA) naming the first problem's JSON path.

    Does not check the signature: use accept_feed for anything that came from outside.
    """
    _check_size(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        _schema("", f"not UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start}")
    try:
        document = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except _NotJson as exc:
        _schema("", str(exc))
    except json.JSONDecodeError as exc:
        _schema("", f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    except (ValueError, RecursionError) as exc:  # an integer too long to convert; deep nesting
        _schema("", f"not JSON this parser accepts: {exc}")
    top = _object(document, "", _TOP_KEYS)
    if top["format"] != FEED_FORMAT:
        _schema("format", f"expected {json.dumps(FEED_FORMAT)}, got {_shown(top['format'])}")
    version = top["version"]
    if not (isinstance(version, int) and not isinstance(version, bool)) or not (
        1 <= version <= MAX_VERSION
    ):
        _schema("version", f"expected an integer from 1 to {MAX_VERSION}, got {_shown(version)}")
    issued = _timestamp(top["issued"], "issued")
    expires = _timestamp(top["expires"], "expires")
    if expires <= issued:
        _schema("expires", f"{_iso(expires)} is not after issued ({_iso(issued)})")
    source = _text(top["source"], "source", limit=MAX_SOURCE)
    products = _products(top["products"])
    patches = _patches(top["patches"], {product.id for product in products})
    return PatchFeed(version, issued, expires, source, products, patches)


def _products(value: object) -> tuple[Product, ...]:
    items = _array(value, "products", MAX_PRODUCTS)
    seen: dict[str, int] = {}
    out: list[Product] = []
    for index, item in enumerate(items):
        where = f"products[{index}]"
        obj = _object(item, where, _PRODUCT_KEYS)
        product_id = _text(obj["id"], f"{where}.id")
        if product_id in seen:
            _schema(f"{where}.id", f"{_shown(product_id)} is also products[{seen[product_id]}].id")
        seen[product_id] = index
        out.append(
            Product(
                id=product_id,
                vendor=_text(obj["vendor"], f"{where}.vendor"),
                name=_text(obj["name"], f"{where}.name"),
                platform=_choice(obj["platform"], f"{where}.platform", Platform),
                os=_text(obj["os"], f"{where}.os"),
                latest_version=_text(obj["latest_version"], f"{where}.latest_version"),
            )
        )
    return tuple(out)


def _patches(value: object, product_ids: set[str]) -> tuple[Patch, ...]:
    items = _array(value, "patches", MAX_PATCHES)
    seen: dict[str, int] = {}
    out: list[Patch] = []
    for index, item in enumerate(items):
        where = f"patches[{index}]"
        obj = _object(item, where, _PATCH_KEYS)
        patch_id = _text(obj["id"], f"{where}.id")
        if patch_id in seen:
            _schema(f"{where}.id", f"{_shown(patch_id)} is also patches[{seen[patch_id]}].id")
        seen[patch_id] = index
        product = _text(obj["product"], f"{where}.product")
        if product not in product_ids:
            _schema(f"{where}.product", f"no product has id {_shown(product)}")
        superseded_by = obj["superseded_by"]
        if superseded_by is not None:
            superseded_by = _text(superseded_by, f"{where}.superseded_by")
        out.append(
            Patch(
                id=patch_id,
                product=product,
                severity=_choice(obj["severity"], f"{where}.severity", Severity),
                released=_date(obj["released"], f"{where}.released"),
                fixed_version=_text(obj["fixed_version"], f"{where}.fixed_version"),
                superseded_by=superseded_by,
            )
        )
    _check_supersession(out, seen)
    return tuple(out)


def _check_supersession(patches: list[Patch], index_of: dict[str, int]) -> None:
    """Every superseded_by names another patch, and no chain of them comes back on itself."""
    for index, patch in enumerate(patches):
        if patch.superseded_by is None:
            continue
        where = f"patches[{index}].superseded_by"
        if patch.superseded_by not in index_of:
            _schema(where, f"no patch has id {_shown(patch.superseded_by)}")
        if patch.superseded_by == patch.id:
            _schema(where, "a patch cannot supersede itself")
    finished: set[int] = set()  # chains known to end
    for start in range(len(patches)):
        walked: list[int] = []
        on_walk: set[int] = set()
        step: int | None = start
        while step is not None and step not in finished:
            if step in on_walk:
                _schema(
                    f"patches[{step}].superseded_by",
                    f"supersession goes round in a circle through {_shown(patches[step].id)}",
                )
            on_walk.add(step)
            walked.append(step)
            following = patches[step].superseded_by
            step = None if following is None else index_of[following]
        finished.update(walked)


# -- JSON shapes -------------------------------------------------------------------------------


class _NotJson(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A key given twice means two readers may see two different documents; a signed
    # document must mean one thing.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _NotJson(f"the key {_shown(key)} appears twice in one object")
        out[key] = value
    return out


def _no_constant(name: str) -> NoReturn:
    raise _NotJson(f"not JSON: {name} is not a JSON number")


def _object(value: object, where: str, keys: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        _schema(where, f"expected an object{'' if where else ' at the top'}, got {_shown(value)}")
    for key in keys:
        if key not in value:
            _schema(where, f"missing required key {key}")
    unknown = sorted(set(value) - set(keys))
    if unknown:
        _schema(_join(where, unknown[0]), f"unknown key (known: {', '.join(sorted(keys))})")
    return value


def _array(value: object, where: str, limit: int) -> list[Any]:
    if not isinstance(value, list):
        _schema(where, f"expected an array, got {_shown(value)}")
    if len(value) > limit:
        _schema(where, f"{len(value)} entries; at most {limit} are accepted")
    return value


def _text(value: object, where: str, *, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or not value:
        _schema(where, f"expected a non-empty string, got {_shown(value)}")
    if len(value) > limit:
        _schema(where, f"{len(value)} characters; at most {limit}")
    control = _CONTROL.search(value)
    if control:
        _schema(where, f"control character U+{ord(control[0]):04X} in {_shown(value)}")
    return value


def _choice(value: object, where: str, kind: type[_E]) -> _E:
    for member in kind:
        if member.value == value:
            return member
    choices = ", ".join(str(member.value) for member in kind)
    _schema(where, f"expected one of {choices}, got {_shown(value)}")


def _timestamp(value: object, where: str) -> datetime:
    if isinstance(value, str) and _RFC3339.fullmatch(value):
        try:
            return datetime.fromisoformat(value).astimezone(UTC)
        except ValueError:
            pass
    _schema(where, f'expected an RFC 3339 time such as "2026-11-23T17:00:00Z", got {_shown(value)}')


def _date(value: object, where: str) -> date:
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    _schema(where, f'expected a date such as "2026-11-20", got {_shown(value)}')


def _check_size(data: bytes) -> None:
    if len(data) > MAX_FEED_BYTES:
        _refuse(
            FeedErrorKind.SCHEMA,
            f"the feed has {len(data)} bytes; at most {MAX_FEED_BYTES} are accepted",
        )


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _schema(where: str, message: str) -> NoReturn:
    _refuse(FeedErrorKind.SCHEMA, f"{where}: {message}" if where else message)


def _refuse(kind: FeedErrorKind, message: str) -> NoReturn:
    raise FeedError(kind, message)


def _shown(value: object) -> str:
    """A value as JSON, cut short: a message is a hint, not a dump (nor a 64 MiB walk)."""
    if isinstance(value, list):
        return f"an array of {len(value)} entries"
    if isinstance(value, dict):
        return f"an object of {len(value)} keys"
    if isinstance(value, str) and len(value) > _SHOWN_CHARS:
        value = value[:_SHOWN_CHARS]
    shown = json.dumps(value, ensure_ascii=True)
    return shown if len(shown) <= _SHOWN_CHARS else shown[: _SHOWN_CHARS - 3] + "..."


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
