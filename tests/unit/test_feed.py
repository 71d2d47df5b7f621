"""The patch feed: its schema (errors name the JSON path), its Ed25519 signature, the order
of the acceptance checks, and FeedKeeper keeping the last good feed through every refusal,
across restarts, and through pulls over HTTP(S) on 127.0.0.1."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import logging
import ssl
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from netaccess.config.model import PatchFeedConfig
from netaccess.io.feeds import FEED_FILE, SIGNATURE_FILE, FeedKeeper
from netaccess.policy.feed import (
    MAX_FEED_BYTES,
    FeedError,
    FeedErrorKind,
    PatchFeed,
    Platform,
    Severity,
    accept_feed,
    parse_feed,
    verify_signature,
)
from netaccess.store import Store

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)


# -- building feeds (also used by tests/integration/test_feed_pull.py) ---------------------------


def feed_document(version: int = 2026112317, **changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "format": "netaccess-patch-feed/1",
        "version": version,
        "issued": "2026-11-23T17:00:00Z",
        "expires": "2026-12-07T17:00:00Z",
        "source": "debian-security bookworm main amd64 (InRelease Date: Sun, 23 Nov 2026)",
        "products": [
            {
                "id": "debian-12/openssl",
                "vendor": "Debian",
                "name": "openssl",
                "platform": "linux",
                "os": "Debian 12",
                "latest_version": "3.0.17-1~deb12u2",
            },
            {
                "id": "debian-12/curl",
                "vendor": "Debian",
                "name": "curl",
                "platform": "linux",
                "os": "Debian 12",
                "latest_version": "7.88.1-10+deb12u8",
            },
        ],
        "patches": [
            {
                "id": "debian-12/openssl/3.0.17-1~deb12u2",
                "product": "debian-12/openssl",
                "severity": "unknown",
                "released": "2026-11-20",
                "fixed_version": "3.0.17-1~deb12u2",
                "superseded_by": None,
            },
            {
                "id": "debian-12/openssl/3.0.15-1~deb12u1",
                "product": "debian-12/openssl",
                "severity": "important",
                "released": "2026-10-01",
                "fixed_version": "3.0.15-1~deb12u1",
                "superseded_by": "debian-12/openssl/3.0.17-1~deb12u2",
            },
            {
                "id": "debian-12/curl/7.88.1-10+deb12u8",
                "product": "debian-12/curl",
                "severity": "moderate",
                "released": "2026-11-02",
                "fixed_version": "7.88.1-10+deb12u8",
                "superseded_by": None,
            },
        ],
    }
    document.update(changes)
    return document


def encode(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def sign(key: Ed25519PrivateKey, data: bytes) -> bytes:
    return base64.b64encode(key.sign(data)) + b"\n"


def public_raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


KEY = Ed25519PrivateKey.generate()
OTHER_KEY = Ed25519PrivateKey.generate()
TRUSTED = (public_raw(KEY),)


def signed(document: Any = None, key: Ed25519PrivateKey = KEY) -> tuple[bytes, bytes]:
    data = encode(feed_document() if document is None else document)
    return data, sign(key, data)


def refusal(data: bytes, signature: bytes, **kwargs: Any) -> FeedError:
    with pytest.raises(FeedError) as caught:
        accept_feed(
            data, signature, kwargs.pop("keys", TRUSTED), kwargs.pop("current", None), NOW, **kwargs
        )
    return caught.value


def schema_problem(document: Any) -> str:
    error = refusal(*signed(document))
    assert error.kind is FeedErrorKind.SCHEMA
    return error.message


def edited(path: str, value: Any) -> dict[str, Any]:
    """The sample document with the value at `path` ("patches.1.severity") replaced; the
    value DELETE removes the key."""
    document = feed_document()
    *parents, last = path.split(".")
    target: Any = document
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if value is DELETE:
        del target[last]
    else:
        target[int(last) if isinstance(target, list) else last] = value
    return document


DELETE = object()


# -- a good feed -------------------------------------------------------------------------------


def test_a_signed_feed_is_accepted_with_its_products_and_patches() -> None:
    feed = accept_feed(*signed(), TRUSTED, None, NOW)
    assert (feed.version, len(feed.products), len(feed.patches)) == (2026112317, 2, 3)
    assert feed.issued == dt.datetime(2026, 11, 23, 17, tzinfo=dt.UTC)
    assert feed.patches[1].severity is Severity.IMPORTANT
    assert feed.patches[1].released == dt.date(2026, 10, 1)


def test_products_are_found_by_id_and_by_name_and_platform() -> None:
    feed = parse_feed(encode(feed_document()))
    assert feed.product_by_id("debian-12/curl") is feed.products[1]
    assert feed.product_named("openssl", Platform.LINUX) is feed.products[0]
    assert feed.products_named("openssl", "linux") == (feed.products[0],)
    assert feed.product_named("openssl", "windows") is None
    assert feed.product_named("openssl", "beos") is None


def test_patches_are_found_by_id_and_by_product() -> None:
    feed = parse_feed(encode(feed_document()))
    assert [p.id for p in feed.patches_for("debian-12/openssl")] == [
        "debian-12/openssl/3.0.17-1~deb12u2",
        "debian-12/openssl/3.0.15-1~deb12u1",
    ]
    assert feed.patch("debian-12/curl/7.88.1-10+deb12u8") is feed.patches[2]
    assert feed.patch("nope") is None


def test_severities_are_ranked_least_first() -> None:
    assert Severity.LOW.rank < Severity.MODERATE.rank < Severity.CRITICAL.rank


# -- schema errors name the JSON path ----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            "patches.1.severity",
            "urgent",
            "patches[1].severity: expected one of unknown, low, moderate, important, critical, "
            'got "urgent"',
        ),
        (
            "products.0.platform",
            "beos",
            'products[0].platform: expected one of windows, macos, linux, ios, android, got "beos"',
        ),
        ("patches.2.fixed_version", DELETE, "patches[2]: missing required key fixed_version"),
        (
            "patches.0.product",
            "debian-12/nope",
            'patches[0].product: no product has id "debian-12/nope"',
        ),
        (
            "patches.2.superseded_by",
            "debian-12/gone",
            'patches[2].superseded_by: no patch has id "debian-12/gone"',
        ),
        (
            "products.1.id",
            "debian-12/openssl",
            'products[1].id: "debian-12/openssl" is also products[0].id',
        ),
        (
            "products.1.latest_version",
            "",
            'products[1].latest_version: expected a non-empty string, got ""',
        ),
        (
            "patches.0.released",
            "20 Nov 2026",
            'patches[0].released: expected a date such as "2026-11-20", got "20 Nov 2026"',
        ),
        (
            "version",
            "2026112317",
            'version: expected an integer from 1 to 9223372036854775807, got "2026112317"',
        ),
        ("version", True, "version: expected an integer from 1 to 9223372036854775807, got true"),
        (
            "format",
            "netaccess-patch-feed/2",
            'format: expected "netaccess-patch-feed/1", got "netaccess-patch-feed/2"',
        ),
        (
            "expires",
            "2026-11-23T16:00:00Z",
            "expires: 2026-11-23T16:00:00Z is not after issued (2026-11-23T17:00:00Z)",
        ),
        (
            "issued",
            "yesterday",
            'issued: expected an RFC 3339 time such as "2026-11-23T17:00:00Z", got "yesterday"',
        ),
        ("products", {}, "products: expected an array, got an object of 0 keys"),
        (
            "products.0.name",
            "open\nssl",
            'products[0].name: control character U+000A in "open\\nssl"',
        ),
    ],
)
def test_a_schema_error_names_the_json_path(path: str, value: Any, message: str) -> None:
    assert schema_problem(edited(path, value)) == message


def test_an_unknown_key_is_an_error_listing_the_known_ones() -> None:
    document = feed_document()
    document["products"][0]["colour"] = "blue"
    assert schema_problem(document) == (
        "products[0].colour: unknown key (known: id, latest_version, name, os, platform, vendor)"
    )


def test_a_supersession_cycle_is_an_error() -> None:
    document = edited("patches.0.superseded_by", "debian-12/openssl/3.0.15-1~deb12u1")
    assert schema_problem(document) == (
        "patches[0].superseded_by: supersession goes round in a circle through "
        '"debian-12/openssl/3.0.17-1~deb12u2"'
    )


def test_a_key_given_twice_is_an_error() -> None:
    data = encode(feed_document()).replace(b'"format":', b'"source":"x","format":', 1)
    assert refusal(data, sign(KEY, data)).message == 'the key "source" appears twice in one object'


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x89PNG\r\n\x1a\n garbage", "not UTF-8: byte 0x89 at offset 0"),
        (
            b"{not json",
            "not JSON: Expecting property name enclosed in double quotes at line 1 column 2",
        ),
        (b"[1, 2]", "expected an object at the top, got an array of 2 entries"),
        (b'{"version": NaN}', "not JSON: NaN is not a JSON number"),
    ],
)
def test_bytes_that_are_no_feed_are_schema_errors(data: bytes, message: str) -> None:
    error = refusal(data, sign(KEY, data))
    assert (error.kind, error.message) == (FeedErrorKind.SCHEMA, message)


def test_a_feed_over_the_size_bound_is_refused_unread() -> None:
    data = b" " * (MAX_FEED_BYTES + 1)
    error = refusal(data, b"not even a signature")
    assert (error.kind, error.message) == (
        FeedErrorKind.SCHEMA,
        f"the feed has {MAX_FEED_BYTES + 1} bytes; at most {MAX_FEED_BYTES} are accepted",
    )


# -- signature ---------------------------------------------------------------------------------


def test_a_signature_by_any_trusted_key_verifies() -> None:
    data, signature = signed(key=OTHER_KEY)
    verify_signature(data, signature, [public_raw(KEY), public_raw(OTHER_KEY)])


def test_one_modified_byte_breaks_the_signature() -> None:
    data, signature = signed()
    tampered = data.replace(b'"important"', b'"moderate" ', 1)
    assert len(tampered) == len(data)
    assert refusal(tampered, signature).kind is FeedErrorKind.SIGNATURE


def test_a_signature_by_an_untrusted_key_is_refused() -> None:
    error = refusal(*signed(key=OTHER_KEY))
    assert (error.kind, error.message) == (
        FeedErrorKind.SIGNATURE,
        "the signature does not verify with any of the 1 trusted key(s) (the feed was changed,"
        " or signed by another key)",
    )


@pytest.mark.parametrize(
    ("signature", "message"),
    [
        (b"%%%", "the signature is not base64"),
        (base64.b64encode(b"short"), "the signature has 5 bytes; an Ed25519 signature has 64"),
        (
            b"A" * 2000,
            "the signature file has 2000 bytes; expected one line of base64 (at most 1024)",
        ),
    ],
)
def test_a_malformed_signature_is_refused(signature: bytes, message: str) -> None:
    error = refusal(encode(feed_document()), signature)
    assert (error.kind, error.message) == (FeedErrorKind.SIGNATURE, message)


def test_without_trusted_keys_nothing_verifies() -> None:
    assert refusal(*signed(), keys=()).message.startswith("no trusted keys are configured")


def test_the_signature_is_checked_before_the_bytes_are_parsed() -> None:
    garbage = b"\xff\xfe garbage that no parser should see"
    assert refusal(garbage, sign(OTHER_KEY, garbage)).kind is FeedErrorKind.SIGNATURE
    assert refusal(garbage, sign(KEY, garbage)).kind is FeedErrorKind.SCHEMA


# -- rollback and expiry -----------------------------------------------------------------------


def current_feed(version: int = 2026112317) -> PatchFeed:
    return parse_feed(encode(feed_document(version)))


@pytest.mark.parametrize("version", [2026112317, 2026112316])
def test_a_feed_not_newer_than_the_current_one_is_a_rollback(version: int) -> None:
    error = refusal(*signed(feed_document(version)), current=current_feed())
    assert (error.kind, error.version) == (FeedErrorKind.ROLLBACK, version)
    assert error.message == (
        f"version {version} is not newer than 2026112317, the current feed's version"
    )


def test_a_feed_below_the_newest_ever_accepted_is_a_rollback_even_with_no_current() -> None:
    error = refusal(*signed(feed_document(5)), floor=6)
    assert error.message == "version 5 is not newer than 6, the newest version accepted before"


def test_a_newer_feed_replaces_the_current_one() -> None:
    feed = accept_feed(*signed(feed_document(2026112318)), TRUSTED, current_feed(), NOW)
    assert feed.version == 2026112318


def test_an_expired_feed_is_refused() -> None:
    document = feed_document(expires="2026-11-24T11:59:59Z")
    error = refusal(*signed(document))
    assert (error.kind, error.message) == (
        FeedErrorKind.EXPIRED,
        "version 2026112317 expired at 2026-11-24T11:59:59Z (now 2026-11-24T12:00:00Z)",
    )


def test_the_checks_run_signature_schema_rollback_expiry_in_that_order() -> None:
    old_and_expired = feed_document(1, expires="2026-11-24T00:00:00Z")
    assert refusal(*signed(old_and_expired), current=current_feed()).kind is FeedErrorKind.ROLLBACK
    broken = dict(old_and_expired, source="")
    assert refusal(*signed(broken), current=current_feed()).kind is FeedErrorKind.SCHEMA
    assert refusal(*signed(broken, OTHER_KEY)).kind is FeedErrorKind.SIGNATURE


# -- FeedKeeper: the last good feed stays -------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = NOW.timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store() -> Iterator[Store]:
    with Store.open_memory() as opened:
        yield opened


def keeper_for(
    state_dir: Path, store: Store, clock: Clock | None = None, **settings: Any
) -> FeedKeeper:
    config = PatchFeedConfig(trusted_keys=settings.pop("trusted_keys", TRUSTED), **settings)
    return FeedKeeper(config, state_dir, store, clock=clock or Clock())


async def test_an_imported_feed_becomes_current_is_kept_on_disk_and_told_to_listeners(
    tmp_path: Path, store: Store
) -> None:
    keeper = keeper_for(tmp_path, store)
    told: list[int] = []
    keeper.on_new_feed(lambda feed: told.append(feed.version))
    data, signature = signed()
    feed = await keeper.import_feed(data, signature)
    assert keeper.current is feed and told == [feed.version]
    assert (tmp_path / "feed" / FEED_FILE).read_bytes() == data
    assert (tmp_path / "feed" / SIGNATURE_FILE).read_bytes() == signature
    [event] = store.feed_events()
    assert (event.source, event.accepted, event.version, event.kind) == (
        "import",
        True,
        2026112317,
        None,
    )


REFUSED = {
    "signature": lambda: signed(feed_document(2026112318), OTHER_KEY),
    "schema": lambda: signed(dict(feed_document(2026112318), products="none")),
    "rollback": lambda: signed(feed_document(2026112316)),
    "expired": lambda: signed(feed_document(2026112318, expires="2026-11-24T00:00:00Z")),
}


@pytest.mark.parametrize("kind", REFUSED)
async def test_a_refused_feed_leaves_the_current_one_in_memory_and_on_disk(
    tmp_path: Path, store: Store, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    keeper = keeper_for(tmp_path, store)
    good = await keeper.import_feed(*signed())
    told: list[PatchFeed] = []
    keeper.on_new_feed(told.append)
    with pytest.raises(FeedError) as caught:
        await keeper.import_feed(*REFUSED[kind]())
    assert caught.value.kind.value == kind
    assert keeper.current is good and told == []
    assert (tmp_path / "feed" / FEED_FILE).read_bytes() == encode(feed_document())
    refused = store.feed_events(accepted=False)
    assert [(e.kind, e.message) for e in refused] == [(kind, caught.value.message)]
    [record] = [r for r in caplog.records if r.msg == "patch feed refused"]
    assert (record.kind, record.reason) == (kind, caught.value.message)  # type: ignore[attr-defined]
    assert keeper.status()["rejections"][0]["kind"] == kind


async def test_a_restart_takes_up_the_stored_feed_verified_again(
    tmp_path: Path, store: Store
) -> None:
    await keeper_for(tmp_path, store).import_feed(*signed())
    restarted = keeper_for(tmp_path, store)
    feed = await restarted.load()
    assert feed is not None and restarted.current is feed and feed.version == 2026112317
    assert restarted.status()["feed"]["via"] == "import"


async def test_a_stored_feed_that_fails_its_signature_is_logged_and_ignored(
    tmp_path: Path, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    await keeper_for(tmp_path, store).import_feed(*signed())
    stored = tmp_path / "feed" / FEED_FILE
    stored.write_bytes(stored.read_bytes().replace(b"openssl", b"openSSL", 1))
    restarted = keeper_for(tmp_path, store)
    caplog.set_level(logging.ERROR)
    assert await restarted.load() is None and restarted.current is None
    assert any(r.msg == "stored patch feed ignored" for r in caplog.records)


async def test_a_stored_feed_signed_by_a_key_no_longer_trusted_is_ignored(
    tmp_path: Path, store: Store
) -> None:
    await keeper_for(tmp_path, store).import_feed(*signed())
    restarted = keeper_for(tmp_path, store, trusted_keys=(public_raw(OTHER_KEY),))
    assert await restarted.load() is None


async def test_a_crash_between_the_two_renames_still_finds_the_new_pair(
    tmp_path: Path, store: Store
) -> None:
    await keeper_for(tmp_path, store).import_feed(*signed())
    data, signature = signed(feed_document(2026112318))
    directory = tmp_path / "feed"
    (directory / FEED_FILE).write_bytes(data)  # renamed in place...
    (directory / (SIGNATURE_FILE + ".new")).write_bytes(signature)  # ...this one not yet
    restarted = keeper_for(tmp_path, store)
    feed = await restarted.load()
    assert feed is not None and feed.version == 2026112318


async def test_after_a_lost_stored_feed_an_older_one_is_still_a_rollback(
    tmp_path: Path, store: Store
) -> None:
    await keeper_for(tmp_path, store).import_feed(*signed())
    (tmp_path / "feed" / FEED_FILE).unlink()
    restarted = keeper_for(tmp_path, store)
    assert await restarted.load() is None
    with pytest.raises(FeedError) as caught:
        await restarted.import_feed(*signed(feed_document(2026112316)))
    assert caught.value.kind is FeedErrorKind.ROLLBACK


async def test_an_expired_stored_feed_is_kept_and_shown_expired(
    tmp_path: Path, store: Store
) -> None:
    clock = Clock()
    await keeper_for(tmp_path, store, clock).import_feed(*signed())
    clock.now = dt.datetime(2026, 12, 8, tzinfo=dt.UTC).timestamp()
    restarted = keeper_for(tmp_path, store, clock)
    assert await restarted.load() is not None
    assert restarted.status()["feed"]["expired"] is True


async def test_import_files_refuses_a_file_that_changed_since_the_cli_read_it(
    tmp_path: Path, store: Store
) -> None:
    from netaccess.io.feeds import FeedImportError

    data, signature = signed()
    (tmp_path / "feed.json").write_bytes(data)
    (tmp_path / "feed.json.sig").write_bytes(signature)
    keeper = keeper_for(tmp_path / "state", store)
    with pytest.raises(FeedImportError, match="changed while it was being imported"):
        await keeper.import_files(tmp_path / "feed.json", tmp_path / "feed.json.sig", "0" * 64)
    feed = await keeper.import_files(tmp_path / "feed.json", tmp_path / "feed.json.sig")
    assert feed.version == 2026112317


# -- FeedKeeper: pulls over HTTP(S) --------------------------------------------------------------


class FeedServer:
    """A small HTTP/1.0 server on 127.0.0.1: /feed.json (with ETag) and /feed.json.sig, or
    whatever `behaviour` says."""

    def __init__(self) -> None:
        self.data, self.signature = signed()
        self.behaviour = "serve"
        self.requests: list[tuple[str, str | None]] = []

    async def handle(self, stream: trio.abc.Stream) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = await stream.receive_some(4096)
            if not chunk:
                return
            head += chunk
        lines = head.decode().split("\r\n")
        target = lines[0].split()[1]
        fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        self.requests.append((target, fields.get("If-None-Match")))
        if self.behaviour == "hang":
            await trio.sleep_forever()
        if self.behaviour == "garbage-http":
            await stream.send_all(b"SPEAK FRIEND AND ENTER\r\n\r\n")
            return
        if self.behaviour == "503":
            await stream.send_all(b"HTTP/1.0 503 Service Unavailable\r\n\r\n")
            return
        body = self.data if target == "/feed.json" else self.signature
        etag = '"' + str(hash(self.data)) + '"'
        if target == "/feed.json" and fields.get("If-None-Match") == etag:
            await stream.send_all(b"HTTP/1.0 304 Not Modified\r\n\r\n")
            return
        await stream.send_all(b"HTTP/1.0 200 OK\r\nETag: " + etag.encode() + b"\r\n\r\n" + body)


async def serving(
    nursery: trio.Nursery, server: FeedServer, tls: ssl.SSLContext | None = None
) -> int:
    async def handler(stream: trio.abc.Stream) -> None:
        async with stream:
            await server.handle(stream)

    if tls is None:
        listeners = await nursery.start(partial(trio.serve_tcp, host="127.0.0.1"), handler, 0)
        return int(listeners[0].socket.getsockname()[1])
    serve = partial(trio.serve_ssl_over_tcp, host="127.0.0.1")
    listeners = await nursery.start(serve, handler, 0, tls)
    return int(listeners[0].transport_listener.socket.getsockname()[1])


async def pulled_keeper(
    tmp_path: Path, store: Store, server: FeedServer, nursery: trio.Nursery, **settings: Any
) -> FeedKeeper:
    port = await serving(nursery, server)
    url = f"http://127.0.0.1:{port}/feed.json"
    return keeper_for(
        tmp_path, store, url=url, signature_url=url + ".sig", timeout=settings.pop("timeout", 5.0)
    )


async def test_a_pull_takes_a_good_feed_then_sends_its_etag_and_gets_304(
    tmp_path: Path, store: Store
) -> None:
    server = FeedServer()
    async with trio.open_nursery() as nursery:
        keeper = await pulled_keeper(tmp_path, store, server, nursery)
        first = await keeper.pull()
        second = await keeper.pull()
        server.data, server.signature = signed(feed_document(2026112318))
        third = await keeper.pull()
        nursery.cancel_scope.cancel()
    assert [o.result for o in (first, second, third)] == ["accepted", "not-modified", "accepted"]
    assert keeper.current is not None and keeper.current.version == 2026112318
    feed, signature = "/feed.json", "/feed.json.sig"
    assert [t for t, _ in server.requests] == [feed, signature, feed, feed, signature]
    assert server.requests[0][1] is None and server.requests[2][1] is not None


async def test_the_etag_outlives_a_restart(tmp_path: Path, store: Store) -> None:
    server = FeedServer()
    async with trio.open_nursery() as nursery:
        keeper = await pulled_keeper(tmp_path, store, server, nursery)
        await keeper.pull()
        restarted = keeper_for(
            tmp_path,
            store,
            url=keeper.settings.url,
            signature_url=keeper.settings.signature_url,
        )
        await restarted.load()
        outcome = await restarted.pull()
        nursery.cancel_scope.cancel()
    assert outcome.result == "not-modified" and server.requests[-1][1] is not None


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        ("hang", "no complete answer within 0.5 s"),
        ("503", "HTTP 503 Service Unavailable"),
        ("garbage-http", "not a valid HTTP response"),
    ],
)
async def test_a_failed_pull_is_recorded_and_the_current_feed_stays(
    tmp_path: Path, store: Store, behaviour: str, message: str
) -> None:
    server = FeedServer()
    async with trio.open_nursery() as nursery:
        keeper = await pulled_keeper(tmp_path, store, server, nursery, timeout=0.5)
        await keeper.pull()
        good = keeper.current
        server.behaviour = behaviour
        server.data, server.signature = signed(feed_document(2026112318))
        outcome = await keeper.pull()
        nursery.cancel_scope.cancel()
    assert (outcome.result, keeper.current) == ("failed", good)
    assert message in outcome.message
    [event] = store.feed_events(accepted=False)
    assert (event.source, event.kind) == ("pull", "fetch") and message in event.message


async def test_a_refused_pull_is_not_remembered_by_etag(tmp_path: Path, store: Store) -> None:
    server = FeedServer()
    async with trio.open_nursery() as nursery:
        keeper = await pulled_keeper(tmp_path, store, server, nursery)
        await keeper.pull()
        server.data, server.signature = signed(feed_document(2026112316))
        refused = await keeper.pull()
        again = await keeper.pull()
        nursery.cancel_scope.cancel()
    assert (refused.result, again.result) == ("rejected", "rejected")
    assert refused.message.startswith("rollback: version 2026112316")


async def test_a_pull_from_a_refused_port_fails_without_raising(
    tmp_path: Path, store: Store
) -> None:
    keeper = keeper_for(
        tmp_path, store, url="http://127.0.0.1:9/feed.json", signature_url="http://127.0.0.1:9/s"
    )
    outcome = await keeper.pull()
    assert outcome.result == "failed" and "cannot connect" in outcome.message


def tls_pair(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context with a self-signed certificate for 127.0.0.1, and that certificate
    as a CA file."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "feeds.test")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "server.crt", directory / "server.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context, cert_path


@pytest.mark.parametrize("trusted", [True, False])
async def test_an_https_pull_trusts_the_configured_ca_only(
    tmp_path: Path, store: Store, trusted: bool
) -> None:
    context, ca = tls_pair(tmp_path)
    server = FeedServer()
    async with trio.open_nursery() as nursery:
        port = await serving(nursery, server, context)
        url = f"https://127.0.0.1:{port}/feed.json"
        keeper = keeper_for(
            tmp_path,
            store,
            url=url,
            signature_url=url + ".sig",
            timeout=5.0,
            ca=ca if trusted else None,
        )
        outcome = await keeper.pull()
        nursery.cancel_scope.cancel()
    if trusted:
        assert outcome.result == "accepted"
    else:
        assert outcome.result == "failed" and "TLS: self-signed certificate" in outcome.message
