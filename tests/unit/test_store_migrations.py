"""Store migrations: every database ends at the newest schema, or stays where it was."""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from netaccess.policy.endpoint import Endpoint, EndpointEvent, EventKind
from netaccess.store import MIGRATIONS, Migration, Store, StoreError, migrate, newest_version

MAC = "02:00:00:00:00:0a"
NEWEST = newest_version()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "netaccess.db"


def connect(path: Path) -> closing[sqlite3.Connection]:
    return closing(sqlite3.connect(path, isolation_level=None))


def user_version(path: Path) -> int:
    with connect(path) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


def schema(path: Path) -> list[tuple[str, str]]:
    with connect(path) as db:
        return db.execute("SELECT type, name FROM sqlite_schema ORDER BY type, name").fetchall()


def create_at(path: Path, version: int) -> None:
    with connect(path) as db:
        migrate(db, str(path), MIGRATIONS, target=version)


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))


def test_fresh_database_ends_at_the_newest_version(path: Path) -> None:
    with Store.open(path) as store:
        assert store.schema_version == NEWEST


def test_fresh_database_has_the_tables_indexes_and_triggers_of_every_migration(
    path: Path,
) -> None:
    Store.open(path).close()
    names = {name for _, name in schema(path)}
    assert {"endpoints", "endpoint_ips", "events", "events_by_mac", "events_no_delete"} <= names


def test_migrate_stops_at_the_target_version(path: Path) -> None:
    create_at(path, 1)
    assert (user_version(path), ("trigger", "events_no_update") in schema(path)) == (1, False)


def test_version_1_database_with_rows_migrates_to_newest_and_keeps_them(path: Path) -> None:
    create_at(path, 1)
    with connect(path) as db:
        db.execute(
            "INSERT INTO endpoints (mac, first_seen, last_seen, state) "
            "VALUES (?, 1.0, 2.0, 'active')",
            (MAC,),
        )
        db.execute(
            "INSERT INTO endpoint_ips (ip, mac, learned_at) VALUES ('10.0.0.5', ?, 2.0)", (MAC,)
        )
        db.execute(
            "INSERT INTO events (at, mac, kind, detail) VALUES (1.0, ?, 'discovered', "
            """'{"via": "dhcp"}')""",
            (MAC,),
        )
    with Store.open(path) as store:
        assert (store.schema_version, store.load_endpoints(), store.events()) == (
            NEWEST,
            [Endpoint(MAC, 1.0, 2.0, ips=("10.0.0.5",))],
            [EndpointEvent(1.0, MAC, EventKind.DISCOVERED, {"via": "dhcp"})],
        )


def test_reopening_a_current_database_applies_nothing(path: Path) -> None:
    Store.open(path).close()
    before = schema(path)
    Store.open(path).close()
    assert (user_version(path), schema(path)) == (NEWEST, before)


def test_database_newer_than_the_code_is_refused_naming_both_versions(path: Path) -> None:
    with connect(path) as db:
        db.execute(f"PRAGMA user_version = {NEWEST + 5}")
    expected = (
        f"{re.escape(str(path))} has schema version {NEWEST + 5}, newer than version {NEWEST}"
    )
    with pytest.raises(StoreError, match=expected):
        Store.open(path)


def test_broken_migration_leaves_version_and_schema_unchanged(path: Path) -> None:
    Store.open(path).close()
    before = schema(path)
    broken = Migration(
        NEWEST + 1,
        "half good, half broken",
        "CREATE TABLE sessions (id INTEGER PRIMARY KEY); INSERT INTO no_such_table VALUES (1);",
    )
    with pytest.raises(StoreError, match=f"migration {NEWEST + 1} .* rolled back"):
        Store.open(path, migrations=(*MIGRATIONS, broken))
    assert (user_version(path), schema(path)) == (NEWEST, before)


def test_broken_first_migration_leaves_a_new_database_empty(path: Path) -> None:
    broken = Migration(1, "broken", "CREATE TABLE a (x); CREATE TABLE a (x);")
    with pytest.raises(StoreError, match="schema stays at version 0"):
        Store.open(path, migrations=(broken,))
    assert (user_version(path), schema(path)) == (0, [])


def test_migrations_out_of_order_are_refused(path: Path) -> None:
    swapped = (MIGRATIONS[1], MIGRATIONS[0])
    with pytest.raises(StoreError, match="expected versions numbered 1, 2, 3"):
        Store.open(path, migrations=swapped)


def test_migration_with_an_unterminated_statement_is_refused(path: Path) -> None:
    unterminated = Migration(1, "unterminated", "CREATE TABLE a (x); CREATE TABLE b (y)")
    with pytest.raises(StoreError, match="expected each statement to end with ';'"):
        Store.open(path, migrations=(unterminated,))


def test_semicolons_inside_literals_and_trigger_bodies_do_not_split_statements(
    path: Path,
) -> None:
    tricky = Migration(
        1,
        "tricky",
        """
        CREATE TABLE notes (text TEXT DEFAULT 'a;b');
        CREATE TRIGGER notes_guard BEFORE DELETE ON notes
        BEGIN SELECT RAISE(ABORT, 'no; really'); END;
        """,
    )
    Store.open(path, migrations=(tricky,)).close()
    assert schema(path) == [("table", "notes"), ("trigger", "notes_guard")]


def test_migrating_down_is_refused(path: Path) -> None:
    Store.open(path).close()
    with connect(path) as db, pytest.raises(StoreError, match="down from version"):
        migrate(db, str(path), MIGRATIONS, target=1)
