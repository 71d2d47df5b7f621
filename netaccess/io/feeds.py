"""The patch feed in the daemon: the last good feed (kept in state_dir/feed and verified again
at start), manual imports, and the timed pull over HTTP(S) (h11 on trio streams).

Every candidate goes through policy.feed.accept_feed. A refused one is logged, recorded as a
feed event in the store, and never replaces the current feed; an accepted one is written to
disk first and only then becomes `current`, after which the listeners are told.
"""

from __future__ import annotations

import contextlib

# getaddrinfo encodes host names with this codec, which Python loads on first use; loaded
# here, at import, because netaccessd may no longer be able to read the standard library
# once it has dropped root (the lab's interpreter lives under /root).
import encodings.idna  # noqa: F401
import hashlib
import json
import logging
import os
import ssl
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import h11
import trio

import netaccess
from netaccess.config.model import PatchFeedConfig
from netaccess.control.views import iso_time
from netaccess.policy.feed import (
    MAX_FEED_BYTES,
    MAX_SIGNATURE_BYTES,
    FeedError,
    FeedEvent,
    PatchFeed,
    accept_feed,
    parse_feed,
    verify_signature,
)
from netaccess.store import Store, StoreError
from netaccess.store.files import sync_directory, write_synced

log = logging.getLogger("netaccess.feeds")

FEED_FILE = "current.json"
SIGNATURE_FILE = "current.json.sig"
ETAG_FILE = "etag.json"
PENDING = ".new"  # suffix of a file being written, before os.replace puts it in place
RECEIVE_SIZE = 256 * 1024
MAX_RESPONSE_HEAD = 64 * 1024
RECENT_REJECTIONS = 10

FeedListener = Callable[[PatchFeed], None]


class FeedImportError(Exception):
    """The files to import cannot be read as given; the message says why."""


class FeedStorageError(Exception):
    """A feed passed every check but could not be written to the state directory."""


class FeedFetchError(Exception):
    """A download failed: no connection, no answer in time, a bad status, not HTTP."""


@dataclass(frozen=True, slots=True)
class PullOutcome:
    """How one pull ended: "accepted", "not-modified", "rejected" or "failed"."""

    at: float
    result: str
    message: str
    version: int | None = None

    def view(self) -> dict[str, Any]:
        return {
            "at": iso_time(self.at),
            "result": self.result,
            "message": self.message,
            "version": self.version,
        }


@dataclass(frozen=True, slots=True)
class _Fetched:
    status: int
    body: bytes
    etag: str | None


@dataclass(frozen=True, slots=True)
class _Stored:
    feed: PatchFeed
    sha256: str
    mtime: float


class FeedKeeper:
    """The current patch feed and every way a new one arrives.

    `current` is the last good feed (None before the first); swapping it is the last step of
    an acceptance, so readers see either the old feed or the new one, whole.
    """

    def __init__(
        self,
        settings: PatchFeedConfig,
        state_dir: Path,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.directory = state_dir / "feed"
        self._store = store
        self._clock = clock
        self.current: PatchFeed | None = None
        self.sha256: str | None = None
        self.accepted_at: float | None = None
        self.accepted_via: str | None = None
        self.last_pull: PullOutcome | None = None
        self.next_pull: float | None = None
        self._floor = 0  # the newest version ever accepted: nothing older gets in
        self._etag: str | None = None
        self._listeners: list[FeedListener] = []
        self._accepting = trio.Lock()
        self._pulling = trio.Lock()
        self._tls: ssl.SSLContext | None = None

    def on_new_feed(self, callback: FeedListener) -> None:
        """Call `callback(feed)` after each accepted feed has become current."""
        self._listeners.append(callback)

    # -- the stored feed -------------------------------------------------------------------

    async def load(self) -> PatchFeed | None:
        """Take up the feed kept by the last run, verified again with today's trusted keys;
        a stored feed that fails is logged and ignored."""
        try:
            self._floor = self._store.newest_accepted_feed_version()
        except StoreError as exc:
            log.error("cannot read patch feed events", extra={"error": str(exc)})
        stored, problems = await trio.to_thread.run_sync(self._read_stored)
        for problem in problems:
            log.error("stored patch feed ignored", extra={"reason": problem})
        if stored is None:
            return None
        feed = stored.feed
        if feed.version < self._floor:
            log.error(
                "stored patch feed ignored",
                extra={
                    "reason": f"version {feed.version} is older than version {self._floor},"
                    " accepted before",
                },
            )
            return None
        self.sha256, self.accepted_at, self.accepted_via = stored.sha256, stored.mtime, None
        with contextlib.suppress(StoreError):
            for event in self._store.feed_events(accepted=True, limit=1):
                if event.version == feed.version:
                    self.accepted_at, self.accepted_via = event.at, event.source
        self._floor = max(self._floor, feed.version)
        self.current = feed
        self._etag = self._read_etag()
        if feed.expired(self._now()):
            log.warning(
                "the stored patch feed has expired; keeping it until a newer one arrives",
                extra={"version": feed.version, "expires": _iso(feed.expires)},
            )
        log.info(
            "patch feed loaded",
            extra={
                "version": feed.version,
                "products": len(feed.products),
                "patches": len(feed.patches),
            },
        )
        return feed

    def _read_stored(self) -> tuple[_Stored | None, list[str]]:
        feed_path = self.directory / FEED_FILE
        signature_path = self.directory / SIGNATURE_FILE
        # A crash between the two renames of _keep leaves the new feed beside the pending
        # signature; the old pair is otherwise always whole.
        candidates = [(feed_path, signature_path), (feed_path, _pending(signature_path))]
        problems: list[str] = []
        for data_path, sig_path in candidates:
            try:
                data = _read_bounded(data_path, MAX_FEED_BYTES)
                signature = _read_bounded(sig_path, MAX_SIGNATURE_BYTES)
                mtime = data_path.stat().st_mtime
            except FileNotFoundError:
                continue
            except (OSError, FeedImportError) as exc:
                problems.append(f"{data_path}: {_reason(exc)}")
                continue
            try:
                verify_signature(data, signature, self.settings.trusted_keys)
                feed = parse_feed(data)
            except FeedError as exc:
                problems.append(f"{data_path} with {sig_path.name}: {exc}")
                continue
            return _Stored(feed, hashlib.sha256(data).hexdigest(), mtime), []
        return None, problems

    def _keep(self, data: bytes, signature: bytes) -> None:
        """Write the feed and its signature in place: each to a pending file, synced, then
        renamed over the old one, then the directory synced."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o750)
        feed_path = self.directory / FEED_FILE
        signature_path = self.directory / SIGNATURE_FILE
        _write_synced(_pending(feed_path), data)
        _write_synced(_pending(signature_path), signature)
        os.replace(_pending(feed_path), feed_path)
        os.replace(_pending(signature_path), signature_path)
        sync_directory(self.directory)

    def _read_etag(self) -> str | None:
        try:
            saved = json.loads((self.directory / ETAG_FILE).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(saved, dict) or saved.get("url") != self.settings.url:
            return None
        etag = saved.get("etag")
        return etag if isinstance(etag, str) else None

    async def _remember_etag(self, etag: str | None) -> None:
        self._etag = etag
        saved = json.dumps({"url": self.settings.url, "etag": etag}).encode()
        try:
            await trio.to_thread.run_sync(
                partial(_write_synced, self.directory / ETAG_FILE, saved, replace=True)
            )
        except OSError as exc:
            log.warning("cannot keep the patch feed's ETag", extra={"error": _reason(exc)})

    # -- accepting -------------------------------------------------------------------------

    async def import_files(
        self, feed_path: Path, signature_path: Path, sha256: str | None = None
    ) -> PatchFeed:
        """Import the feed at `feed_path` with the signature at `signature_path`, read by the
        daemon (as its own user). `sha256`: what the admin's side read, so a file changed in
        between is refused rather than imported unseen."""
        data, signature, digest = await trio.to_thread.run_sync(
            _read_pair, feed_path, signature_path
        )
        if sha256 is not None and digest != sha256.lower():
            raise FeedImportError(
                f"{feed_path} changed while it was being imported (its SHA-256 is now {digest})"
            )
        return await self.import_feed(data, signature)

    async def import_feed(self, data: bytes, signature: bytes) -> PatchFeed:
        """Accept a feed given by hand; FeedError if refused (the current feed stays)."""
        return await self._accept(data, signature, "import")

    async def _accept(self, data: bytes, signature: bytes, source: str) -> PatchFeed:
        async with self._accepting:
            now = self._clock()
            check = partial(
                _checked,
                data,
                signature,
                self.settings.trusted_keys,
                self.current,
                datetime.fromtimestamp(now, UTC),
                self._floor,
            )
            try:
                feed, digest = await trio.to_thread.run_sync(check)
            except FeedError as exc:
                log.warning(
                    "patch feed refused",
                    extra={
                        "source": source,
                        "kind": exc.kind.value,
                        "reason": exc.message,
                        "bytes": len(data),
                        "current_version": self.current.version if self.current else None,
                    },
                )
                self._record(
                    FeedEvent(now, source, False, exc.version, exc.kind.value, exc.message)
                )
                raise
            try:
                await trio.to_thread.run_sync(self._keep, data, signature)
            except OSError as exc:
                message = f"cannot keep the feed in {self.directory}: {_reason(exc)}"
                log.error("patch feed not kept", extra={"source": source, "reason": message})
                self._record(FeedEvent(now, source, False, feed.version, "storage", message))
                raise FeedStorageError(message) from None
            self.sha256, self.accepted_at, self.accepted_via = digest, now, source
            self._floor = max(self._floor, feed.version)
            self.current = feed  # last: everything about it is in place
            self._record(
                FeedEvent(now, source, True, feed.version, None, f"from {feed.source}"[:2048])
            )
            log.info(
                "patch feed accepted",
                extra={
                    "source": source,
                    "version": feed.version,
                    "products": len(feed.products),
                    "patches": len(feed.patches),
                    "feed_source": feed.source,
                },
            )
        for listener in self._listeners:
            try:
                listener(feed)
            except Exception:
                log.exception("a patch feed listener failed", extra={"version": feed.version})
        return feed

    def _record(self, event: FeedEvent) -> None:
        try:
            self._store.add_feed_event(event)
        except StoreError as exc:
            log.error("patch feed event not stored", extra={"error": str(exc)})

    # -- the timed pull --------------------------------------------------------------------

    async def run_pull(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Pull at once, then every `interval` seconds, for ever; a failed pull is logged and
        recorded, never raised."""
        task_status.started()
        while True:
            await self.pull()
            self.next_pull = self._clock() + self.settings.interval
            await trio.sleep(self.settings.interval)

    async def pull(self) -> PullOutcome:
        """Fetch the feed (If-None-Match: the last accepted ETag) and, when it changed, its
        signature, and offer them to accept_feed. One pull at a time."""
        async with self._pulling:
            try:
                outcome = await self._pull()
            except Exception as exc:  # a bug here must not end the timed pull
                log.exception("patch feed pull failed unexpectedly")
                outcome = PullOutcome(self._clock(), "failed", f"{type(exc).__name__}: {exc}")
            self.last_pull = outcome
            return outcome

    async def _pull(self) -> PullOutcome:
        settings = self.settings
        started = self._clock()
        if not settings.url:
            return PullOutcome(started, "failed", "no patch_feed.url is configured")
        etag = self._etag if self.current is not None else None
        try:
            fetched = await self._fetch(settings.url, etag, MAX_FEED_BYTES)
            if fetched.status == 304:
                log.debug("patch feed not modified", extra={"url": settings.url})
                version = self.current.version if self.current is not None else None
                return PullOutcome(started, "not-modified", "the feed has not changed", version)
            signature = await self._fetch(settings.signature_url, None, MAX_SIGNATURE_BYTES)
        except FeedFetchError as exc:
            log.warning("patch feed pull failed", extra={"url": settings.url, "reason": str(exc)})
            self._record(FeedEvent(started, "pull", False, None, "fetch", str(exc)))
            return PullOutcome(started, "failed", str(exc))
        try:
            feed = await self._accept(fetched.body, signature.body, "pull")
        except FeedError as exc:
            return PullOutcome(started, "rejected", f"{exc.kind.value}: {exc.message}", exc.version)
        except FeedStorageError as exc:
            return PullOutcome(started, "failed", str(exc))
        await self._remember_etag(fetched.etag)
        return PullOutcome(started, "accepted", f"version {feed.version}", feed.version)

    async def _fetch(self, url: str, etag: str | None, limit: int) -> _Fetched:
        timeout = self.settings.timeout
        try:
            with trio.fail_after(timeout):
                return await self._get(url, etag, limit)
        except trio.TooSlowError:
            raise FeedFetchError(f"{url}: no complete answer within {timeout:g} s") from None
        except h11.ProtocolError as exc:
            raise FeedFetchError(f"{url}: not a valid HTTP response: {exc}") from None
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise FeedFetchError(f"{url}: {_why(exc)}") from None

    async def _get(self, url: str, etag: str | None, limit: int) -> _Fetched:
        """One GET with h11, the connection closed after it."""
        parts = urlsplit(url)
        secure = parts.scheme == "https"
        host = parts.hostname or ""
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        stream: trio.abc.Stream = await trio.open_tcp_stream(
            host, parts.port or (443 if secure else 80)
        )
        try:
            if secure:
                stream = trio.SSLStream(stream, self._tls_context(), server_hostname=host)
                await stream.do_handshake()
            connection = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_RESPONSE_HEAD)
            headers = [
                ("Host", parts.netloc),
                ("User-Agent", f"netaccessd/{netaccess.__version__}"),
                ("Accept", "*/*"),
                ("Connection", "close"),
            ]
            if etag is not None:
                headers.append(("If-None-Match", etag))
            request = connection.send(h11.Request(method="GET", target=target, headers=headers))
            await stream.send_all(request or b"")
            await stream.send_all(connection.send(h11.EndOfMessage()) or b"")
            return await _response(stream, connection, url, etag, limit)
        finally:
            await trio.aclose_forcefully(stream)

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            ca = self.settings.ca
            try:
                context = ssl.create_default_context(cafile=None if ca is None else str(ca))
            except (OSError, ssl.SSLError) as exc:
                raise FeedFetchError(f"TLS: CA certificates {ca}: {_reason(exc)}") from None
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            self._tls = context
        return self._tls

    # -- status ----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """What `appliance patches status` shows: the current feed, the pull, and the most
        recent refusals."""
        now = self._clock()
        feed = self.current
        view: dict[str, Any] = {"feed": None, "pull": None, "rejections": []}
        if feed is not None:
            view["feed"] = {
                **feed_view(feed),
                "expired": feed.expired(datetime.fromtimestamp(now, UTC)),
                "age_s": round(now - feed.issued.timestamp()),
                "sha256": self.sha256,
                "accepted": None if self.accepted_at is None else iso_time(self.accepted_at),
                "via": self.accepted_via,
            }
        if self.settings.url:
            view["pull"] = {
                "url": self.settings.url,
                "signature_url": self.settings.signature_url,
                "interval_s": self.settings.interval,
                "timeout_s": self.settings.timeout,
                "last": None if self.last_pull is None else self.last_pull.view(),
                "next": None if self.next_pull is None else iso_time(self.next_pull),
            }
        try:
            refused = self._store.feed_events(accepted=False, limit=RECENT_REJECTIONS)
        except StoreError as exc:
            log.error("cannot read patch feed events", extra={"error": str(exc)})
            refused = []
        view["rejections"] = [
            {
                "at": iso_time(event.at),
                "source": event.source,
                "kind": event.kind,
                "version": event.version,
                "message": event.message,
            }
            for event in refused
        ]
        return view

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)


def feed_view(feed: PatchFeed) -> dict[str, Any]:
    return {
        "version": feed.version,
        "source": feed.source,
        "issued": _iso(feed.issued),
        "expires": _iso(feed.expires),
        "products": len(feed.products),
        "patches": len(feed.patches),
    }


async def _response(
    stream: trio.abc.Stream, connection: h11.Connection, url: str, etag: str | None, limit: int
) -> _Fetched:
    """The response to the one request sent: 200 with a body of at most `limit` bytes, or
    304 when `etag` was sent."""
    body = bytearray()
    status, etag_seen = 0, None
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            connection.receive_data(bytes(await stream.receive_some(RECEIVE_SIZE)))
        elif isinstance(event, h11.InformationalResponse):
            continue
        elif isinstance(event, h11.Response):
            status = event.status_code
            if status == 304 and etag is not None:
                return _Fetched(304, b"", etag)
            if status != 200:
                reason = event.reason.decode("ascii", "replace")
                raise FeedFetchError(f"{url}: HTTP {status} {reason}".rstrip())
            fields = {name.lower(): value for name, value in event.headers}
            length = fields.get(b"content-length")
            if length is not None and int(length) > limit:
                raise FeedFetchError(
                    f"{url}: {int(length)} bytes announced; at most {limit} are accepted"
                )
            if b"etag" in fields:
                etag_seen = fields[b"etag"].decode("latin-1")
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > limit:
                raise FeedFetchError(f"{url}: more than {limit} bytes; at most that is accepted")
        elif isinstance(event, h11.EndOfMessage):
            return _Fetched(status, bytes(body), etag_seen)
        else:
            raise FeedFetchError(f"{url}: the server closed the connection mid-answer")


def _checked(
    data: bytes,
    signature: bytes,
    trusted_keys: tuple[bytes, ...],
    current: PatchFeed | None,
    now: datetime,
    floor: int,
) -> tuple[PatchFeed, str]:
    """accept_feed and the file's SHA-256, both in one worker thread (a big feed takes
    seconds to parse)."""
    feed = accept_feed(data, signature, trusted_keys, current, now, floor=floor)
    return feed, hashlib.sha256(data).hexdigest()


def _read_pair(feed_path: Path, signature_path: Path) -> tuple[bytes, bytes, str]:
    try:
        data = _read_bounded(feed_path, MAX_FEED_BYTES)
        signature = _read_bounded(signature_path, MAX_SIGNATURE_BYTES)
    except OSError as exc:
        raise FeedImportError(
            f"cannot read {exc.filename}: {_reason(exc)} (the daemon reads it as its own"
            " user: the file must be readable to it)"
        ) from None
    return data, signature, hashlib.sha256(data).hexdigest()


def _read_bounded(path: Path, limit: int) -> bytes:
    """A regular file's bytes, FeedImportError if larger than `limit`. O_NONBLOCK: a FIFO
    given by mistake must not hang a thread (it is refused as not a regular file)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with open(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise FeedImportError(f"{path} is not a regular file")
        data = file.read(limit + 1)
    if len(data) > limit:
        raise FeedImportError(f"{path} is larger than {limit} bytes, the most accepted")
    return data


def _write_synced(path: Path, data: bytes, *, replace: bool = False) -> None:
    target = _pending(path) if replace else path
    write_synced(target, data, mode=0o640)
    if replace:
        os.replace(target, path)


def _pending(path: Path) -> Path:
    return path.with_name(path.name + PENDING)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def _why(exc: BaseException) -> str:
    """One line on a failed download, for logs, events and `patches status`."""
    if isinstance(exc, trio.BrokenResourceError) and isinstance(exc.__cause__, ssl.SSLError):
        exc = exc.__cause__
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: {exc.verify_message or exc}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    if isinstance(exc, OSError):
        # trio tries every address and puts each attempt's error in an exception group.
        if isinstance(exc.__cause__, BaseExceptionGroup):
            attempts = [e for e in exc.__cause__.exceptions if isinstance(e, OSError)]
            exc = attempts[0] if attempts else exc
        return f"cannot connect: {_reason(exc)}"
    return f"connection lost: {exc.__cause__ or exc or type(exc).__name__}"
