"""The SQLite store of the endpoint inventory: endpoints, the IPs each holds, and their events.

Sits below io: no clock and no threads of its own; every timestamp comes from the models.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

from netaccess.policy.admission import Outcome
from netaccess.policy.agents import AgentBuild
from netaccess.policy.endpoint import Endpoint, EndpointEvent, EndpointState, EventKind
from netaccess.policy.feed import FeedEvent
from netaccess.policy.hostchecker import Platform
from netaccess.policy.posture import (
    PostureReport,
    Recommendation,
    RemediationItem,
    ReportedAttribute,
    Verdict,
)
from netaccess.policy.radius_sessions import Session, SessionKey
from netaccess.policy.standing import (
    FailedRule,
    Standing,
    Trigger,
    remediation_from_json,
    remediation_to_json,
)
from netaccess.store.errors import StoreError
from netaccess.store.migrations import MIGRATIONS, Migration, migrate, schema_version

BUSY_TIMEOUT_MS = 5000
# Endpoints latest_posture_report remembers to have no report (all forgotten when full).
REPORTLESS_KEPT = 65536

_ENDPOINT_COLUMNS = (
    "mac, first_seen, last_seen, hostname, vendor_class, fingerprint, role, state, layer2_only"
)

# Not INSERT OR REPLACE: REPLACE deletes the old row first, and ON DELETE CASCADE would
# take the endpoint's addresses with it.
_UPSERT_ENDPOINT = f"""
    INSERT INTO endpoints ({_ENDPOINT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (mac) DO UPDATE SET
        first_seen = excluded.first_seen,
        last_seen = excluded.last_seen,
        hostname = excluded.hostname,
        vendor_class = excluded.vendor_class,
        fingerprint = excluded.fingerprint,
        role = excluded.role,
        state = excluded.state,
        layer2_only = excluded.layer2_only
"""

# A conflict means another MAC holds the address: it moves, since an IP belongs to one MAC
# at a time.
_CLAIM_IP = """
    INSERT INTO endpoint_ips (ip, mac, learned_at) VALUES (?, ?, ?)
    ON CONFLICT (ip) DO UPDATE SET mac = excluded.mac, learned_at = excluded.learned_at
"""

# Errors that mean "this operation failed", as opposed to a bug in our code. A str that
# cannot be encoded as UTF-8 (a lone surrogate) fails while binding, outside sqlite3.Error.
_DATABASE_ERRORS = (sqlite3.Error, UnicodeEncodeError)


def _strays(db: sqlite3.Connection, allowed: Collection[str]) -> dict[str, int]:
    rows = db.execute(
        "SELECT realm, count(*) FROM portal_users WHERE nt_hash IS NOT NULL"
        " GROUP BY realm ORDER BY realm"
    ).fetchall()
    return {str(realm): int(count) for realm, count in rows if realm not in allowed}


class PortalUser(NamedTuple):
    realm: str
    name: str
    created_at: float
    updated_at: float
    groups: tuple[str, ...]
    nt_hash: bool  # a sealed NT hash is kept (MSCHAPv2)


class Store:
    """The endpoint inventory on one SQLite database, in WAL mode, migrated on open.

    Threads: the connection is opened with check_same_thread=False because the daemon
    calls the store from worker threads as well as from its event loop. A caller that does
    so gives the store a lock (serialize_with): every transaction holds it, so a write from
    one thread never starts inside another thread's transaction on the shared connection
    (it waits the few milliseconds that one takes).
    """

    def __init__(self, connection: sqlite3.Connection, where: str) -> None:
        """Wrap an open, configured and migrated connection; use open() or open_memory()."""
        self._connection = connection
        self._where = where
        self._lock: AbstractContextManager[object] = nullcontext()
        # Bumped after each change to the portal users this object makes. The daemon is the
        # store's only writer (the CLI goes through its control socket), so a reader that
        # kept a user's row may trust it while this is unchanged (io.radius.PasswordChecker).
        self.users_generation = 0
        # Likewise for posture reports (only added, by add_posture_reports): the endpoints
        # found to have none, with the generation they were looked up under. Only the
        # absence is kept: a report can hold thousands of attributes (installed packages).
        self.reports_generation = 0
        self._reportless: dict[str, int] = {}

    def serialize_with(self, lock: AbstractContextManager[object]) -> None:
        """Hold `lock` (a threading.Lock) around every transaction from now on."""
        self._lock = lock

    @classmethod
    def open(cls, path: Path, *, migrations: Sequence[Migration] = MIGRATIONS) -> Store:
        """Open or create the database file at `path` and bring its schema up to date.

        The parent directory must exist: creating it, with the right owner and mode, is the
        daemon's job (systemd StateDirectory=). Once the file exists, several processes
        may open it at once; two creating the same new file at once may get "database is
        locked" while switching it to WAL, which a single daemon never meets.
        """
        where = str(path)
        try:
            connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot open the store database {where}: {exc}; expected a readable and "
                f"writable file in an existing directory"
            ) from exc
        return cls._prepared(connection, where, migrations, wal=True)

    @classmethod
    def open_memory(cls, *, migrations: Sequence[Migration] = MIGRATIONS) -> Store:
        """A private in-memory database (tests, dry runs); it has no WAL and dies with close()."""
        connection = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        return cls._prepared(connection, ":memory:", migrations, wal=False)

    @classmethod
    def _prepared(
        cls,
        connection: sqlite3.Connection,
        where: str,
        migrations: Sequence[Migration],
        *,
        wal: bool,
    ) -> Store:
        try:
            with _database_errors(f"configuring the store database {where}"):
                _configure(connection, where, wal=wal)
            migrate(connection, where, migrations)
        except BaseException:
            connection.close()
            raise
        return cls(connection, where)

    @property
    def schema_version(self) -> int:
        with _database_errors(f"reading the schema version of {self._where}"):
            return schema_version(self._connection)

    def close(self) -> None:
        """Close the database; calling it again does nothing."""
        self._connection.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def load_endpoints(self) -> list[Endpoint]:
        """Every endpoint in the inventory, oldest first, each with its addresses."""
        # Read row by row: fetchall() would hold every row's values at once, and the holes
        # they leave among the objects kept stay in the daemon's RSS (with load_standings,
        # some 650 bytes per endpoint at 100k). Texts many endpoints have alike are kept once.
        shared: dict[str, str] = {}
        with self._transaction("loading the endpoint inventory", "BEGIN") as db:
            ips: dict[str, list[str]] = {}
            for ip, mac in db.execute("SELECT ip, mac FROM endpoint_ips ORDER BY learned_at, ip"):
                ips.setdefault(mac, []).append(ip)
            return [
                self._endpoint(row, ips.get(row[0], []), shared)
                for row in db.execute(
                    f"SELECT {_ENDPOINT_COLUMNS} FROM endpoints ORDER BY first_seen, mac"
                )
            ]

    def get_endpoint(self, mac: str) -> Endpoint | None:
        with self._transaction(f"loading endpoint {mac}", "BEGIN") as db:
            row = db.execute(
                f"SELECT {_ENDPOINT_COLUMNS} FROM endpoints WHERE mac = ?", (mac,)
            ).fetchone()
            ips = [
                ip
                for (ip,) in db.execute(
                    "SELECT ip FROM endpoint_ips WHERE mac = ? ORDER BY learned_at, ip", (mac,)
                )
            ]
        return None if row is None else self._endpoint(row, ips)

    def owner_of_ip(self, ip: str) -> str | None:
        """The MAC that holds `ip`, or None if no endpoint does."""
        with _database_errors(f"looking up the owner of {ip} in {self._where}"):
            row = self._connection.execute(
                "SELECT mac FROM endpoint_ips WHERE ip = ?", (ip,)
            ).fetchone()
        return None if row is None else str(row[0])

    def save(self, changes: Sequence[tuple[Endpoint, Sequence[EndpointEvent]]]) -> None:
        """Write a batch of endpoints and their new events in one transaction: all or nothing.

        Each endpoint's row is upserted and its addresses become exactly `endpoint.ips`; an
        address another MAC holds moves to this one. The events are appended. Within a
        batch later entries win: list changes in the order they were observed.
        """
        with self._transaction(f"saving {len(changes)} endpoint(s)", "BEGIN IMMEDIATE") as db:
            for endpoint, events in changes:
                db.execute(_UPSERT_ENDPOINT, _endpoint_row(endpoint))
                self._set_ips(db, endpoint)
                db.executemany(
                    "INSERT INTO events (at, mac, kind, detail) VALUES (?, ?, ?, ?)",
                    [(e.at, e.mac, e.kind.value, self._detail_json(e)) for e in events],
                )

    def events(self, mac: str | None = None, limit: int = 100) -> list[EndpointEvent]:
        """The newest `limit` events, newest first; only `mac`'s when given."""
        if limit < 0:
            raise ValueError(f"limit must be 0 or more, got {limit}")
        # id breaks ties between events stamped with the same time, in insertion order.
        query = "SELECT id, at, mac, kind, detail FROM events"
        params: tuple[object, ...] = (limit,)
        if mac is not None:
            query += " WHERE mac = ?"
            params = (mac, limit)
        query += " ORDER BY at DESC, id DESC LIMIT ?"
        with _database_errors(f"reading events from {self._where}"):
            rows = self._connection.execute(query, params).fetchall()
        return [self._event(row) for row in rows]

    # -- portal users

    def add_user(
        self,
        realm: str,
        name: str,
        password_hash: str,
        at: float,
        groups: Sequence[str] = (),
        nt_hash: bytes | None = None,
    ) -> bool:
        """Create the account; False if the realm already has a user of that name.
        `nt_hash`: the sealed NT hash, for a realm whose users may sign in with MSCHAPv2."""
        return self._change_user(
            f"adding portal user {realm}/{name}",
            "INSERT INTO portal_users"
            " (realm, name, password_hash, created_at, updated_at, groups, nt_hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (realm, name) DO NOTHING",
            (realm, name, password_hash, at, at, _groups_json(groups), nt_hash),
        )

    def set_groups(self, realm: str, name: str, groups: Sequence[str], at: float) -> bool:
        """Replace the user's groups; False if there is no such user."""
        return self._change_user(
            f"changing the groups of {realm}/{name}",
            "UPDATE portal_users SET groups = ?, updated_at = ? WHERE realm = ? AND name = ?",
            (_groups_json(groups), at, realm, name),
        )

    def user_groups(self, realm: str, name: str) -> frozenset[str]:
        """The user's groups (none for an unknown user)."""
        with _database_errors(f"reading the groups of {realm}/{name} from {self._where}"):
            row = self._connection.execute(
                "SELECT groups FROM portal_users WHERE realm = ? AND name = ?", (realm, name)
            ).fetchone()
        return frozenset() if row is None else frozenset(_read_groups(row[0]))

    def set_password(
        self, realm: str, name: str, password_hash: str, at: float, nt_hash: bytes | None = None
    ) -> bool:
        """Replace the user's password hash and sealed NT hash (None: forgotten, as a new
        password makes the old one wrong); False if there is no such user."""
        return self._change_user(
            f"changing the password of {realm}/{name}",
            "UPDATE portal_users SET password_hash = ?, nt_hash = ?, updated_at = ?"
            " WHERE realm = ? AND name = ?",
            (password_hash, nt_hash, at, realm, name),
        )

    @staticmethod
    def nt_hash_context(realm: str, name: str) -> str:
        """What a user's NT hash is sealed for (Vault.seal): moved to another user's row, it
        does not open."""
        return f"portal-user-nt-hash/{realm}/{name}"

    def sealed_nt_hash(self, realm: str, name: str) -> tuple[bool, bytes | None]:
        """(whether the user exists, its sealed NT hash if it has one)."""
        with _database_errors(f"reading portal user {realm}/{name} from {self._where}"):
            row = self._connection.execute(
                "SELECT nt_hash FROM portal_users WHERE realm = ? AND name = ?", (realm, name)
            ).fetchone()
        if row is None:
            return False, None
        return True, None if row[0] is None else bytes(row[0])

    def delete_user(self, realm: str, name: str) -> bool:
        """Remove the account; False if there is no such user."""
        return self._change_user(
            f"deleting portal user {realm}/{name}",
            "DELETE FROM portal_users WHERE realm = ? AND name = ?",
            (realm, name),
        )

    def _change_user(self, operation: str, statement: str, parameters: tuple[object, ...]) -> bool:
        """One write to portal_users in its own transaction: whether it changed a row. The
        users_generation moves after it, so readers that kept a user's row read it again."""
        with self._transaction(operation, "BEGIN IMMEDIATE") as db:
            changed = db.execute(statement, parameters).rowcount == 1
        self.users_generation += 1
        return changed

    def password_hash(self, realm: str, name: str) -> str | None:
        with _database_errors(f"reading portal user {realm}/{name} from {self._where}"):
            row = self._connection.execute(
                "SELECT password_hash FROM portal_users WHERE realm = ? AND name = ?",
                (realm, name),
            ).fetchone()
        return None if row is None else str(row[0])

    def users(self) -> list[PortalUser]:
        """Every portal user, by realm and name."""
        with _database_errors(f"listing portal users in {self._where}"):
            rows = self._connection.execute(
                "SELECT realm, name, created_at, updated_at, groups, nt_hash IS NOT NULL"
                " FROM portal_users ORDER BY realm, name"
            ).fetchall()
        return [
            PortalUser(
                str(r[0]),
                str(r[1]),
                float(r[2]),
                float(r[3]),
                tuple(_read_groups(r[4])),
                bool(r[5]),
            )
            for r in rows
        ]

    def stray_nt_hashes(self, allowed: Collection[str]) -> dict[str, int]:
        """How many users keep a sealed NT hash in each realm not in `allowed` (the realms
        whose users may sign in with MSCHAPv2): {realm: count}, realms with none left out."""
        with _database_errors(f"counting NT hashes in {self._where}"):
            return _strays(self._connection, allowed)

    def forget_nt_hashes(self, allowed: Collection[str]) -> dict[str, int]:
        """Drop the sealed NT hashes of every realm not in `allowed`, in one transaction:
        what was dropped, {realm: count}."""
        with self._transaction("forgetting NT hashes", "BEGIN IMMEDIATE") as db:
            dropped = _strays(db, allowed)
            db.executemany(
                "UPDATE portal_users SET nt_hash = NULL WHERE realm = ?",
                [(realm,) for realm in dropped],
            )
        self.users_generation += 1
        return dropped

    # -- admissions (who signed an endpoint in; what Host Checker last decided)

    def save_standings(self, standings: Sequence[Standing]) -> None:
        """Keep the standings (one per MAC, replacing the previous), in one transaction."""
        if not standings:
            return
        with self._transaction(f"recording {len(standings)} admissions", "BEGIN IMMEDIATE") as db:
            db.executemany(_UPSERT_ADMISSION, [_standing_row(s) for s in standings])

    def delete_standing(self, mac: str) -> bool:
        with self._transaction(f"forgetting the admission of {mac}", "BEGIN IMMEDIATE") as db:
            return db.execute("DELETE FROM admissions WHERE mac = ?", (mac,)).rowcount == 1

    def load_standings(self) -> list[Standing]:
        """Every admission; a row that cannot be read back is skipped (and so forgotten)."""
        shared: dict[str, str] = {}
        out = []
        # Row by row, as load_endpoints reads, and for the same reason; in a transaction, so
        # no write from another thread lands while the rows are read.
        with self._transaction("reading admissions", "BEGIN") as db:
            for row in db.execute(
                f"SELECT {_ADMISSION_COLUMNS} FROM admissions ORDER BY signed_in_at"
            ):
                standing = _standing(row, shared)
                if standing is not None:
                    out.append(standing)
        return out

    def latest_posture_report(self, mac: str) -> PostureReport | None:
        """The endpoint's newest posture report, if any. That it has none is remembered
        while no report is added: an endpoint on Layer 2 only (802.1X) never reports, its
        every re-authentication asks, and the read costs more than the rest of the decision
        (13 us in-process, about 30 live)."""
        generation = self.reports_generation
        if self._reportless.get(mac) == generation:
            return None
        found = self.posture_reports(mac=mac, limit=1)
        if found:
            return found[0]
        if len(self._reportless) >= REPORTLESS_KEPT:
            self._reportless.clear()
        self._reportless[mac] = generation
        return None

    def latest_report_times(self) -> dict[str, float]:
        """When each endpoint (by MAC) last reported posture."""
        with _database_errors(f"reading posture report times from {self._where}"):
            rows = self._connection.execute(
                "SELECT mac, max(finished_at) FROM posture_reports"
                " WHERE mac IS NOT NULL GROUP BY mac"
            ).fetchall()
        return {str(r[0]): float(r[1]) for r in rows}

    # -- agent builds

    def add_agent_build(self, build: AgentBuild) -> bool:
        """Record a published build; False if its platform already has that version."""
        with self._transaction(
            f"recording agent build {build.platform} {build.version}", "BEGIN IMMEDIATE"
        ) as db:
            cursor = db.execute(
                "INSERT INTO agent_builds"
                " (platform, version, filename, size, sha256, published_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (platform, version) DO NOTHING",
                (
                    build.platform,
                    build.version,
                    build.filename,
                    build.size,
                    build.sha256,
                    build.published_at,
                ),
            )
            return cursor.rowcount == 1

    def add_posture_reports(self, reports: Sequence[PostureReport]) -> None:
        """Keep finished posture sessions, in one transaction (the server batches them)."""
        if not reports:
            return
        with self._transaction(
            f"recording {len(reports)} posture reports", "BEGIN IMMEDIATE"
        ) as db:
            db.executemany(
                "INSERT INTO posture_reports (ip, mac, user, started_at, finished_at, verdict,"
                " recommendation, reasons, remediation, attributes)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        r.ip,
                        r.mac,
                        r.user,
                        r.started_at,
                        r.finished_at,
                        r.verdict.value,
                        r.recommendation.value,
                        json.dumps(list(r.reasons)),
                        json.dumps([[item.text, item.link] for item in r.remediation]),
                        json.dumps(
                            [
                                [
                                    a.component_vendor,
                                    a.component_subtype,
                                    a.vendor,
                                    a.type,
                                    a.name,
                                    a.value,
                                ]
                                for a in r.attributes
                            ],
                            separators=(",", ":"),
                        ),
                    )
                    for r in reports
                ],
            )
        self.reports_generation += 1

    def posture_reports(
        self, *, mac: str | None = None, ip: str | None = None, limit: int = 20
    ) -> list[PostureReport]:
        """The newest reports first, of one endpoint (by MAC or IP) or of all."""
        where, arguments = "", []
        if mac is not None:
            where, arguments = " WHERE mac = ?", [mac]
        elif ip is not None:
            where, arguments = " WHERE ip = ?", [ip]
        return self._select_reports(
            f"{where} ORDER BY finished_at DESC, id DESC LIMIT ?", [*arguments, limit]
        )

    def latest_posture_reports(self, *, limit: int = 1_000_000) -> list[PostureReport]:
        """Each endpoint's newest report (by MAC, or by IP for reports without one)."""
        return self._select_reports(
            " WHERE id IN (SELECT max(id) FROM posture_reports"
            " GROUP BY coalesce(mac, 'ip:' || ip)) ORDER BY finished_at DESC, id DESC LIMIT ?",
            [limit],
        )

    def _select_reports(self, clause: str, arguments: list[object]) -> list[PostureReport]:
        with _database_errors(f"reading posture reports from {self._where}"):
            rows = self._connection.execute(
                "SELECT id, ip, mac, user, started_at, finished_at, verdict, recommendation,"
                " reasons, remediation, attributes FROM posture_reports" + clause,
                arguments,
            ).fetchall()
        return [
            PostureReport(
                ip=str(r[1]),
                mac=None if r[2] is None else str(r[2]),
                user=None if r[3] is None else str(r[3]),
                started_at=float(r[4]),
                finished_at=float(r[5]),
                verdict=Verdict(r[6]),
                recommendation=Recommendation(r[7]),
                reasons=tuple(str(reason) for reason in json.loads(r[8])),
                remediation=tuple(RemediationItem(str(t), str(k)) for t, k in json.loads(r[9])),
                attributes=tuple(
                    ReportedAttribute(int(a[0]), int(a[1]), int(a[2]), int(a[3]), str(a[4]), a[5])
                    for a in json.loads(r[10])
                ),
                id=int(r[0]),
            )
            for r in rows
        ]

    def agent_builds(self) -> list[AgentBuild]:
        """Every build, newest first."""
        with _database_errors(f"listing agent builds in {self._where}"):
            rows = self._connection.execute(
                "SELECT platform, version, filename, size, sha256, published_at"
                " FROM agent_builds ORDER BY published_at DESC, platform"
            ).fetchall()
        return [
            AgentBuild(str(r[0]), str(r[1]), str(r[2]), int(r[3]), str(r[4]), float(r[5]))
            for r in rows
        ]

    # -- patch feed events

    def add_feed_event(self, event: FeedEvent) -> None:
        with self._transaction("recording a patch feed event", "BEGIN IMMEDIATE") as db:
            db.execute(
                "INSERT INTO feed_events (at, source, accepted, version, kind, message)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    event.at,
                    event.source,
                    int(event.accepted),
                    event.version,
                    event.kind,
                    event.message,
                ),
            )

    def feed_events(self, *, accepted: bool | None = None, limit: int = 20) -> list[FeedEvent]:
        """The newest feed events first; only accepted (or only refused) ones when given."""
        where, arguments = "", []
        if accepted is not None:
            where, arguments = " WHERE accepted = ?", [int(accepted)]
        with _database_errors(f"reading patch feed events from {self._where}"):
            rows = self._connection.execute(
                "SELECT at, source, accepted, version, kind, message FROM feed_events"
                f"{where} ORDER BY at DESC, id DESC LIMIT ?",
                [*arguments, limit],
            ).fetchall()
        return [
            FeedEvent(
                at=float(r[0]),
                source=str(r[1]),
                accepted=bool(r[2]),
                version=None if r[3] is None else int(r[3]),
                kind=None if r[4] is None else str(r[4]),
                message=str(r[5]),
            )
            for r in rows
        ]

    def newest_accepted_feed_version(self) -> int:
        """The highest feed version ever accepted (0 if none): no feed may go below it."""
        with _database_errors(f"reading patch feed events from {self._where}"):
            row = self._connection.execute(
                "SELECT max(version) FROM feed_events WHERE accepted = 1"
            ).fetchone()
        return 0 if row is None or row[0] is None else int(row[0])

    def radius_sessions(self) -> list[Session]:
        """The RADIUS accounting sessions kept (save_radius_sessions), oldest update first."""
        with _database_errors(f"reading RADIUS sessions from {self._where}"):
            rows = self._connection.execute(
                "SELECT nas, nas_address, session_id, mac, user_name, nas_port, nas_port_id,"
                " framed_ip, started, updated FROM radius_sessions ORDER BY updated"
            ).fetchall()
        return [Session(*row) for row in rows]

    def save_radius_sessions(self, changes: Mapping[SessionKey, Session | None]) -> None:
        """Each (NAS, session id) as it now stands, in one transaction: the session, or
        None once it ended."""
        ended = [key for key, session in changes.items() if session is None]
        kept = [
            (
                s.nas,
                s.session_id,
                s.nas_address,
                s.mac,
                s.user_name,
                s.nas_port,
                s.nas_port_id,
                s.framed_ip,
                s.started,
                s.updated,
            )
            for s in changes.values()
            if s is not None
        ]
        operation = f"saving {len(kept)} and ending {len(ended)} RADIUS session(s)"
        with self._transaction(operation, "BEGIN IMMEDIATE") as db:
            db.executemany("DELETE FROM radius_sessions WHERE nas = ? AND session_id = ?", ended)
            db.executemany(
                "INSERT OR REPLACE INTO radius_sessions (nas, session_id, nas_address, mac,"
                " user_name, nas_port, nas_port_id, framed_ip, started, updated)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                kept,
            )

    @contextmanager
    def _transaction(self, operation: str, begin: str) -> Iterator[sqlite3.Connection]:
        """Run the block in one transaction; any failure rolls the whole of it back.

        Writers use BEGIN IMMEDIATE: in WAL mode a deferred transaction that reads and then
        writes can fail with SQLITE_BUSY at the upgrade without waiting for busy_timeout.
        Readers use a deferred BEGIN, so several SELECTs see one snapshot.
        """
        db = self._connection
        with self._lock:
            try:
                db.execute(begin)
                yield db
                db.execute("COMMIT")
            except BaseException as exc:
                # The error that got us here is the one to report; should ROLLBACK fail too,
                # the transaction left open makes the next BEGIN fail loudly.
                with suppress(sqlite3.Error):
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                if isinstance(exc, _DATABASE_ERRORS):
                    raise StoreError(
                        f"{operation} in {self._where} failed and was rolled back: {exc}"
                    ) from exc
                raise

    def _set_ips(self, db: sqlite3.Connection, endpoint: Endpoint) -> None:
        held = {
            ip for (ip,) in db.execute("SELECT ip FROM endpoint_ips WHERE mac = ?", (endpoint.mac,))
        }
        wanted = dict.fromkeys(endpoint.ips)
        db.executemany(
            "DELETE FROM endpoint_ips WHERE ip = ?", [(ip,) for ip in held if ip not in wanted]
        )
        # The model keeps no time per address; last_seen is the newest observation folded
        # into the endpoint, so it is when a new address was learned, at the latest.
        db.executemany(
            _CLAIM_IP, [(ip, endpoint.mac, endpoint.last_seen) for ip in wanted if ip not in held]
        )

    def _detail_json(self, event: EndpointEvent) -> str:
        # Checked here rather than left to json.dumps, which would also take numbers and
        # lists that could not be read back as the model's dict[str, str].
        detail: object = event.detail
        if not isinstance(detail, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in detail.items()
        ):
            raise StoreError(
                f"event {event.kind.value} of {event.mac} has detail {detail!r}, which cannot "
                f"be stored in {self._where}; expected a dict of str to str"
            )
        return json.dumps(dict(detail), sort_keys=True)

    def _endpoint(
        self, row: tuple[Any, ...], ips: list[str], shared: dict[str, str] | None = None
    ) -> Endpoint:
        """The endpoint of a row; with `shared`, its role, DHCP vendor class and fingerprint
        are the equal strings already in there (added when new), one object for many."""
        mac, first_seen, last_seen, hostname, vendor_class, fingerprint, role, state, l2 = row
        if shared is not None:
            role = shared.setdefault(role, role)
            if vendor_class is not None:
                vendor_class = shared.setdefault(vendor_class, vendor_class)
            if fingerprint is not None:
                fingerprint = shared.setdefault(fingerprint, fingerprint)
        try:
            parsed_state = EndpointState(state)
        except ValueError:
            raise StoreError(
                f"endpoint {mac} in {self._where} has state {state!r}; expected one of "
                f"{', '.join(s.value for s in EndpointState)}"
            ) from None
        return Endpoint(
            mac=mac,
            first_seen=first_seen,
            last_seen=last_seen,
            ips=tuple(ips),
            hostname=hostname,
            vendor_class=vendor_class,
            fingerprint=fingerprint,
            role=role,
            state=parsed_state,
            layer2_only=bool(l2),
        )

    def _event(self, row: tuple[Any, ...]) -> EndpointEvent:
        event_id, at, mac, kind, detail_json = row
        try:
            parsed_kind = EventKind(kind)
        except ValueError:
            raise StoreError(
                f"event {event_id} in {self._where} has kind {kind!r}; expected one of "
                f"{', '.join(k.value for k in EventKind)}"
            ) from None
        try:
            detail = json.loads(detail_json)
        except (TypeError, ValueError):
            detail = None
        if not isinstance(detail, dict) or not all(isinstance(v, str) for v in detail.values()):
            raise StoreError(
                f"event {event_id} in {self._where} has detail {detail_json!r}; expected a "
                f"JSON object of strings"
            )
        return EndpointEvent(at=at, mac=mac, kind=parsed_kind, detail=detail)


def _configure(connection: sqlite3.Connection, where: str, *, wal: bool) -> None:
    # First, so the statements below wait for another process's lock rather than fail at once.
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
    if wal:
        # WAL lets readers (a backup, say) run beside the writer; a commit is one append.
        (mode,) = connection.execute("PRAGMA journal_mode = WAL").fetchone()
        if str(mode).lower() != "wal":
            raise StoreError(
                f"the store database {where} is in journal mode {mode!r} after asking for "
                f"WAL; expected 'wal' (WAL needs a local filesystem with shared memory)"
            )
    # With WAL, NORMAL cannot corrupt the database; a power cut may only lose the last
    # commits, which the next observations of the same endpoints rebuild.
    connection.execute("PRAGMA synchronous = NORMAL")
    connection.execute("PRAGMA foreign_keys = ON")


@contextmanager
def _database_errors(operation: str) -> Iterator[None]:
    try:
        yield
    except _DATABASE_ERRORS as exc:
        raise StoreError(f"{operation} failed: {exc}") from exc


def _endpoint_row(ep: Endpoint) -> tuple[object, ...]:
    return (
        ep.mac,
        ep.first_seen,
        ep.last_seen,
        ep.hostname,
        ep.vendor_class,
        ep.fingerprint,
        ep.role,
        ep.state.value,
        int(ep.layer2_only),
    )


_ADMISSION_COLUMNS = (
    "mac, realm, user, groups, platform_hint, signed_in_at, judged_at, collected_at, trigger,"
    " outcome, role, message, remediation, failed"
)
_UPSERT_ADMISSION = f"""
    INSERT INTO admissions ({_ADMISSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (mac) DO UPDATE SET
        realm = excluded.realm, user = excluded.user, groups = excluded.groups,
        platform_hint = excluded.platform_hint, signed_in_at = excluded.signed_in_at,
        judged_at = excluded.judged_at, collected_at = excluded.collected_at,
        trigger = excluded.trigger, outcome = excluded.outcome, role = excluded.role,
        message = excluded.message, remediation = excluded.remediation, failed = excluded.failed
"""


def _groups_json(groups: Sequence[str]) -> str:
    return json.dumps(sorted(set(groups)))


def _read_groups(raw: object) -> list[str]:
    try:
        groups = json.loads(str(raw))
    except ValueError:
        return []
    return [g for g in groups if isinstance(g, str)] if isinstance(groups, list) else []


def _standing_row(s: Standing) -> tuple[object, ...]:
    return (
        s.mac,
        s.realm,
        s.user,
        _groups_json(sorted(s.groups)),
        s.platform_hint.value if s.platform_hint else None,
        s.signed_in_at,
        s.judged_at,
        s.collected_at,
        s.trigger.value,
        s.outcome.value,
        s.role,
        s.message,
        json.dumps(remediation_to_json(s.remediation)),
        json.dumps([[f.policy, f.rule, f.outcome] for f in s.failed]),
    )


_NO_GROUPS: frozenset[str] = frozenset()  # shared: each new empty frozenset is 216 bytes


def _standing(r: tuple[Any, ...], shared: dict[str, str] | None = None) -> Standing | None:
    """The standing of a row; with `shared`, its realm, role and message are the equal
    strings already in there (added when new), as _endpoint shares its texts."""
    try:
        failed = tuple(FailedRule(str(p), str(rule), str(o)) for p, rule, o in json.loads(r[13]))
        realm, message = str(r[1]), str(r[11])
        role = None if r[10] is None else str(r[10])
        if shared is not None:
            realm = shared.setdefault(realm, realm)
            message = shared.setdefault(message, message)
            role = None if role is None else shared.setdefault(role, role)
        groups = _read_groups(r[3])
        return Standing(
            mac=str(r[0]),
            realm=realm,
            user=str(r[2]),
            groups=frozenset(groups) if groups else _NO_GROUPS,
            platform_hint=None if r[4] is None else Platform(r[4]),
            signed_in_at=float(r[5]),
            judged_at=float(r[6]),
            collected_at=None if r[7] is None else float(r[7]),
            trigger=Trigger(r[8]),
            outcome=Outcome(r[9]),
            role=role,
            message=message,
            remediation=remediation_from_json(json.loads(r[12])),
            failed=failed,
        )
    except (ValueError, TypeError):
        return None
