"""The store's schema as ordered, versioned migrations; the version lives in PRAGMA user_version.

Each migration and its version bump commit together, so a database is always at one version.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass

from netaccess.store.errors import StoreError


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step. `sql` holds one or more statements, each ended by ';'."""

    version: int
    description: str
    sql: str


# Append new migrations; never edit one that has shipped, since databases in the field
# record only the version number, not the SQL that produced it.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "endpoints, the IPv4 addresses each holds, and the endpoint event log",
        """
        CREATE TABLE endpoints (
            mac          TEXT PRIMARY KEY,
            first_seen   REAL NOT NULL,
            last_seen    REAL NOT NULL,
            hostname     TEXT,
            vendor_class TEXT,
            fingerprint  TEXT,
            role         TEXT NOT NULL DEFAULT 'quarantine',
            state        TEXT NOT NULL
        );
        CREATE TABLE endpoint_ips (
            ip         TEXT PRIMARY KEY,
            mac        TEXT NOT NULL REFERENCES endpoints(mac) ON DELETE CASCADE,
            learned_at REAL NOT NULL
        );
        -- No foreign key on mac: the event log is history and must neither block nor
        -- cascade from changes to the endpoints table. detail holds a JSON object.
        CREATE TABLE events (
            id     INTEGER PRIMARY KEY AUTOINCREMENT,
            at     REAL NOT NULL,
            mac    TEXT NOT NULL,
            kind   TEXT NOT NULL,
            detail TEXT NOT NULL
        );
        """,
    ),
    Migration(
        2,
        "lookup indexes, and triggers that make events append-only",
        """
        -- (mac, at) rather than (mac): the per-endpoint query reads newest first, and the
        -- implicit trailing rowid makes the index serve ORDER BY at, id as well.
        CREATE INDEX events_by_mac ON events(mac, at);
        CREATE INDEX events_by_at ON events(at);
        CREATE INDEX endpoint_ips_by_mac ON endpoint_ips(mac);
        -- A guard against our own mistakes, not against tampering (the audit chain is that).
        CREATE TRIGGER events_no_update BEFORE UPDATE ON events
        BEGIN
            SELECT RAISE(ABORT, 'events are append-only: UPDATE is not allowed');
        END;
        CREATE TRIGGER events_no_delete BEFORE DELETE ON events
        BEGIN
            SELECT RAISE(ABORT, 'events are append-only: DELETE is not allowed');
        END;
        """,
    ),
    Migration(
        3,
        "portal users: local accounts per realm, with scrypt password hashes",
        """
        CREATE TABLE portal_users (
            realm         TEXT NOT NULL,
            name          TEXT NOT NULL,
            password_hash TEXT NOT NULL,
            created_at    REAL NOT NULL,
            updated_at    REAL NOT NULL,
            PRIMARY KEY (realm, name)
        );
        """,
    ),
    Migration(
        4,
        "agent builds offered for download: one file per platform and version",
        """
        CREATE TABLE agent_builds (
            platform     TEXT NOT NULL,
            version      TEXT NOT NULL,
            filename     TEXT NOT NULL,
            size         INTEGER NOT NULL,
            sha256       TEXT NOT NULL,
            published_at REAL NOT NULL,
            PRIMARY KEY (platform, version)
        );
        """,
    ),
    Migration(
        5,
        "posture reports: every finished PT-TLS session, its attributes and its verdict",
        """
        CREATE TABLE posture_reports (
            id             INTEGER PRIMARY KEY,
            ip             TEXT NOT NULL,
            mac            TEXT,
            user           TEXT,
            started_at     REAL NOT NULL,
            finished_at    REAL NOT NULL,
            verdict        TEXT NOT NULL,
            recommendation TEXT NOT NULL,
            reasons        TEXT NOT NULL,
            remediation    TEXT NOT NULL,
            attributes     TEXT NOT NULL
        );
        CREATE INDEX posture_reports_by_mac ON posture_reports (mac, finished_at);
        CREATE INDEX posture_reports_by_ip ON posture_reports (ip, finished_at);
        """,
    ),
    Migration(
        6,
        "patch feed events: every feed accepted or refused, and every failed pull",
        """
        -- kind is NULL for an accepted feed; version is NULL when no feed could be read.
        CREATE TABLE feed_events (
            id       INTEGER PRIMARY KEY,
            at       REAL NOT NULL,
            source   TEXT NOT NULL,
            accepted INTEGER NOT NULL,
            version  INTEGER,
            kind     TEXT,
            message  TEXT NOT NULL
        );
        CREATE INDEX feed_events_by_at ON feed_events (at);
        """,
    ),
    Migration(
        7,
        "admissions: who signed each endpoint in and what Host Checker last decided; user groups",
        """
        -- groups: a JSON list of names, for role mapping.
        ALTER TABLE portal_users ADD COLUMN groups TEXT NOT NULL DEFAULT '[]';
        -- One row per signed-in endpoint. collected_at: the finished_at of the posture report
        -- judged (NULL: judged without one); remediation and failed: JSON lists.
        CREATE TABLE admissions (
            mac           TEXT PRIMARY KEY,
            realm         TEXT NOT NULL,
            user          TEXT NOT NULL,
            groups        TEXT NOT NULL,
            platform_hint TEXT,
            signed_in_at  REAL NOT NULL,
            judged_at     REAL NOT NULL,
            collected_at  REAL,
            trigger       TEXT NOT NULL,
            outcome       TEXT NOT NULL,
            role          TEXT,
            message       TEXT NOT NULL,
            remediation   TEXT NOT NULL,
            failed        TEXT NOT NULL
        );
        """,
    ),
    Migration(
        8,
        "endpoints: whether an endpoint has been seen at Layer 2 only (802.1X, no IP contact)",
        """
        ALTER TABLE endpoints ADD COLUMN layer2_only INTEGER NOT NULL DEFAULT 0;
        """,
    ),
    Migration(
        9,
        "RADIUS accounting sessions, so CoA still reaches the switches after a restart",
        """
        -- One row per session the NASes reported (Start, Interim-Update) and have not ended
        -- (Stop, Accounting-On/Off). nas is the client's configured name.
        CREATE TABLE radius_sessions (
            nas         TEXT NOT NULL,
            session_id  TEXT NOT NULL,
            nas_address TEXT NOT NULL,
            mac         TEXT,
            user_name   TEXT,
            nas_port    INTEGER,
            nas_port_id TEXT,
            framed_ip   TEXT,
            started     REAL NOT NULL,
            updated     REAL NOT NULL,
            PRIMARY KEY (nas, session_id)
        );
        """,
    ),
    Migration(
        10,
        "portal users: the NT hash MSCHAPv2 (PEAP) needs, sealed, for realms that opt in",
        """
        -- The NT hash is a password equivalent: kept sealed (AES-256-GCM under the vault's
        -- key, the realm and user bound in), and only for realms with mschapv2 = true.
        ALTER TABLE portal_users ADD COLUMN nt_hash BLOB;
        """,
    ),
)


def newest_version(migrations: Sequence[Migration] = MIGRATIONS) -> int:
    return migrations[-1].version if migrations else 0


def schema_version(connection: sqlite3.Connection) -> int:
    """The version recorded in the database (0 for a new, empty one)."""
    return int(connection.execute("PRAGMA user_version").fetchone()[0])


def migrate(
    connection: sqlite3.Connection,
    where: str,
    migrations: Sequence[Migration] = MIGRATIONS,
    target: int | None = None,
) -> int:
    """Bring the database up to `target` (default: the newest migration); return `target`.

    `where` names the database in error messages. The connection must have
    isolation_level=None: each step runs in an explicit BEGIN IMMEDIATE ... COMMIT, and
    sqlite3's implicit transaction handling would otherwise interleave with it.
    """
    _check_numbering(migrations)
    if connection.isolation_level is not None:
        raise StoreError(
            f"cannot migrate {where}: the connection has isolation_level="
            f"{connection.isolation_level!r}; expected None (explicit transactions)"
        )
    newest = newest_version(migrations)
    if target is None:
        target = newest
    if not 0 <= target <= newest:
        raise StoreError(
            f"cannot migrate {where} to version {target}: known versions are 0 to {newest}"
        )
    try:
        found = schema_version(connection)
    except sqlite3.Error as exc:
        raise StoreError(
            f"cannot read the schema version of {where}: {exc} (expected an SQLite database)"
        ) from exc
    if found > newest:
        raise StoreError(
            f"the database {where} has schema version {found}, newer than version {newest}, "
            f"the newest this netaccess knows; it was written by a newer release "
            f"(downgrading the schema is not supported)"
        )
    if found > target:
        raise StoreError(
            f"cannot migrate {where} down from version {found} to {target}: "
            f"migrations only move forward"
        )
    for migration in migrations:
        if found < migration.version <= target:
            _apply(connection, where, migration)
    return target


def _apply(connection: sqlite3.Connection, where: str, migration: Migration) -> None:
    step = f"migration {migration.version} ({migration.description})"
    try:
        # IMMEDIATE takes the write lock now, so a second process opening the same file
        # waits (busy_timeout) instead of racing us through the same DDL.
        connection.execute("BEGIN IMMEDIATE")
        if schema_version(connection) >= migration.version:
            connection.execute("ROLLBACK")  # another process applied it while we waited
            return
        for statement in _statements(migration):
            connection.execute(statement)
        connection.execute(f"PRAGMA user_version = {migration.version:d}")
        connection.execute("COMMIT")
    except BaseException as exc:
        _rollback(connection)
        if isinstance(exc, sqlite3.Error):
            raise StoreError(
                f"{step} failed on {where} and was rolled back; the schema stays at "
                f"version {migration.version - 1}: {exc}"
            ) from exc
        raise


def _rollback(connection: sqlite3.Connection) -> None:
    # The error that made us roll back is the one worth reporting; should ROLLBACK fail
    # too, the transaction left open makes the next BEGIN fail loudly. SQLite may also
    # have rolled back already by itself (it does on some I/O errors).
    with suppress(sqlite3.Error):
        if connection.in_transaction:
            connection.execute("ROLLBACK")


def _statements(migration: Migration) -> list[str]:
    """Split the migration's SQL into single statements, as Connection.execute runs only one.

    Not executescript: it COMMITs any open transaction first, which would split the
    migration from its version bump. sqlite3.complete_statement understands string
    literals, comments and trigger bodies, so a ';' inside those does not end a statement.
    """
    *pieces, rest = migration.sql.split(";")
    statements: list[str] = []
    pending = ""
    for piece in pieces:
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if (pending + rest).strip():
        raise StoreError(
            f"migration {migration.version} ({migration.description}) has SQL after its "
            f"last complete statement: {(pending + rest).strip()[:60]!r}; expected each "
            f"statement to end with ';'"
        )
    return statements


def _check_numbering(migrations: Sequence[Migration]) -> None:
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise StoreError(
                f"migration {migration.description!r} has version {migration.version} at "
                f"position {expected}; expected versions numbered 1, 2, 3, ... in order"
            )
