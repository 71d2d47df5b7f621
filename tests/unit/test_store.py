"""The endpoint inventory store: what it keeps, how batches commit, and how it fails."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from netaccess.policy.admission import Outcome
from netaccess.policy.endpoint import Endpoint, EndpointEvent, EndpointState, EventKind
from netaccess.policy.hostchecker import AgentAction, Platform, Remediation
from netaccess.policy.posture import (
    PostureReport,
    Recommendation,
    RemediationItem,
    ReportedAttribute,
    Verdict,
)
from netaccess.policy.standing import FailedRule, Standing, Trigger
from netaccess.store import Store, StoreError

MAC_A = "02:00:00:00:00:0a"
MAC_B = "02:00:00:00:00:0b"


def endpoint(mac: str = MAC_A, *ips: str, at: float = 1000.0) -> Endpoint:
    return Endpoint(mac=mac, first_seen=at, last_seen=at, ips=ips)


def event(at: float, mac: str = MAC_A, kind: EventKind = EventKind.IP_LEARNED) -> EndpointEvent:
    return EndpointEvent(at, mac, kind, {"ip": "10.0.0.5", "via": "arp"})


@pytest.fixture
def store() -> Iterator[Store]:
    with Store.open_memory() as s:
        yield s


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "netaccess.db"


def execute(path: Path, sql: str) -> list[tuple[object, ...]]:
    """Run `sql` on a connection of its own, as another process reading the file would."""
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        return db.execute(sql).fetchall()


def test_endpoint_round_trips_with_ips_hostname_fingerprint_and_state(store: Store) -> None:
    ep = Endpoint(
        mac=MAC_A,
        first_seen=100.5,
        last_seen=200.25,
        ips=("10.0.0.5", "10.0.0.7"),
        hostname="laptop-ü",
        vendor_class="MSFT 5.0",
        fingerprint="1,3,6,15,119,252",
        role="staff",
        state=EndpointState.GONE,
    )
    store.save([(ep, ())])
    assert store.get_endpoint(MAC_A) == ep


def test_a_layer_2_only_endpoint_round_trips(store: Store) -> None:
    ep = Endpoint(mac=MAC_A, first_seen=1.0, last_seen=2.0, role="remediation", layer2_only=True)
    store.save([(ep, ())])
    assert store.get_endpoint(MAC_A) == ep
    store.save([(replace(ep, layer2_only=False, role="quarantine"), ())])
    assert store.get_endpoint(MAC_A) == replace(ep, layer2_only=False, role="quarantine")


def test_unknown_endpoint_is_none(store: Store) -> None:
    assert store.get_endpoint(MAC_A) is None


def test_load_endpoints_returns_every_endpoint_with_its_ips(store: Store) -> None:
    a = endpoint(MAC_A, "10.0.0.5", at=1.0)
    b = endpoint(MAC_B, "10.0.0.6", "10.0.0.8", at=2.0)
    store.save([(a, ()), (b, ())])
    assert store.load_endpoints() == [a, b]


def test_loaded_endpoints_share_one_object_per_common_text(store: Store) -> None:
    alike = {"vendor_class": "MSFT 5.0", "fingerprint": "1,3,6,15", "role": "full"}
    a, b = (replace(endpoint(mac), **alike) for mac in (MAC_A, MAC_B))
    store.save([(a, ()), (b, ())])
    first, second = store.load_endpoints()
    assert (first, second) == (a, b)
    assert all(getattr(first, name) is getattr(second, name) for name in alike)


def test_ips_load_in_the_order_they_were_learned(store: Store) -> None:
    first = endpoint(MAC_A, "10.0.0.9", at=1.0)
    store.save([(first, ())])
    later = Endpoint(MAC_A, 1.0, 2.0, ips=("10.0.0.9", "10.0.0.10"))
    store.save([(later, ())])
    assert store.get_endpoint(MAC_A) == later


def test_saving_an_endpoint_again_updates_its_row(store: Store) -> None:
    store.save([(replace(endpoint(), hostname="old"), ())])
    store.save([(replace(endpoint(), hostname="new", role="staff"), ())])
    saved = store.get_endpoint(MAC_A)
    assert saved is not None
    assert (saved.hostname, saved.role) == ("new", "staff")


def test_saved_ips_become_exactly_the_endpoints_ips(store: Store) -> None:
    store.save([(endpoint(MAC_A, "10.0.0.5", "10.0.0.6"), ())])
    store.save([(endpoint(MAC_A, "10.0.0.6", "10.0.0.7"), ())])
    assert [store.owner_of_ip(ip) for ip in ("10.0.0.5", "10.0.0.6", "10.0.0.7")] == [
        None,
        MAC_A,
        MAC_A,
    ]


def test_ip_moves_to_the_mac_that_claims_it(store: Store) -> None:
    store.save([(endpoint(MAC_A, "10.0.0.5"), ())])
    store.save([(endpoint(MAC_B, "10.0.0.5"), ())])
    assert store.owner_of_ip("10.0.0.5") == MAC_B


def test_ip_that_moved_is_gone_from_the_previous_owner(store: Store) -> None:
    store.save([(endpoint(MAC_A, "10.0.0.5", "10.0.0.6"), ())])
    store.save([(endpoint(MAC_B, "10.0.0.5"), ())])
    previous = store.get_endpoint(MAC_A)
    assert previous is not None
    assert previous.ips == ("10.0.0.6",)


def test_owner_of_unknown_ip_is_none(store: Store) -> None:
    assert store.owner_of_ip("10.0.0.5") is None


def test_batch_with_unserialisable_event_detail_writes_nothing(store: Store) -> None:
    bad = EndpointEvent(2.0, MAC_B, EventKind.DISCOVERED, {"via": object()})  # type: ignore[dict-item]
    with pytest.raises(StoreError, match="expected a dict of str to str"):
        store.save(
            [
                (endpoint(MAC_A, "10.0.0.5"), [event(1.0)]),
                (endpoint(MAC_B, "10.0.0.6"), [bad]),
            ]
        )
    assert (store.load_endpoints(), store.events(), store.owner_of_ip("10.0.0.5")) == ([], [], None)


def test_batch_failing_in_sqlite_midway_writes_nothing(path: Path) -> None:
    with Store.open(path) as store:
        execute(
            path,
            f"CREATE TRIGGER fail_b BEFORE INSERT ON events WHEN NEW.mac = '{MAC_B}' "
            "BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
        )
        batch = [
            (endpoint(MAC_A, "10.0.0.5"), [event(1.0)]),
            (endpoint(MAC_B), [event(2.0, MAC_B)]),
        ]
        with pytest.raises(StoreError, match="injected failure"):
            store.save(batch)
        assert (store.load_endpoints(), store.events()) == ([], [])


def test_hostname_that_is_not_encodable_as_utf8_raises_store_error(store: Store) -> None:
    with pytest.raises(StoreError, match="saving 1 endpoint"):
        store.save([(replace(endpoint(), hostname="\udcff"), ())])


def test_store_is_usable_after_a_failed_batch(store: Store) -> None:
    with pytest.raises(StoreError):
        store.save([(replace(endpoint(), hostname="\udcff"), ())])
    store.save([(endpoint(), ())])
    assert store.get_endpoint(MAC_A) == endpoint()


def test_data_survives_close_and_reopen(path: Path) -> None:
    ep = replace(endpoint(MAC_A, "10.0.0.5"), hostname="laptop")
    with Store.open(path) as store:
        store.save([(ep, [event(1.0)])])
    with Store.open(path) as store:
        assert (store.load_endpoints(), store.events()) == ([ep], [event(1.0)])


def test_file_database_is_in_wal_mode(path: Path) -> None:
    Store.open(path).close()
    assert execute(path, "PRAGMA journal_mode") == [("wal",)]


def test_opening_in_a_missing_directory_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=re.escape(str(Path("missing", "netaccess.db")))):
        Store.open(tmp_path / "missing" / "netaccess.db")


def test_opening_a_file_that_is_not_a_database_raises_store_error(path: Path) -> None:
    path.write_bytes(b"this is not an sqlite database, just text " * 100)
    with pytest.raises(StoreError, match=re.escape(str(path))):
        Store.open(path)


def test_updating_an_event_is_refused(path: Path) -> None:
    with Store.open(path) as store:
        store.save([(endpoint(), [event(1.0)])])
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        execute(path, "UPDATE events SET kind = 'gone'")


def test_deleting_an_event_is_refused(path: Path) -> None:
    with Store.open(path) as store:
        store.save([(endpoint(), [event(1.0)])])
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        execute(path, "DELETE FROM events")


def test_events_come_newest_first(store: Store) -> None:
    store.save([(endpoint(), [event(1.0), event(3.0)]), (endpoint(MAC_B), [event(2.0, MAC_B)])])
    assert [e.at for e in store.events()] == [3.0, 2.0, 1.0]


def test_events_with_the_same_time_come_last_written_first(store: Store) -> None:
    first = EndpointEvent(1.0, MAC_A, EventKind.DISCOVERED, {"via": "dhcp"})
    second = EndpointEvent(1.0, MAC_A, EventKind.IP_LEARNED, {"ip": "10.0.0.5"})
    store.save([(endpoint(), [first, second])])
    assert store.events() == [second, first]


def test_events_filtered_by_mac_are_only_that_macs(store: Store) -> None:
    store.save([(endpoint(), [event(1.0), event(3.0)]), (endpoint(MAC_B), [event(2.0, MAC_B)])])
    assert store.events(MAC_A) == [event(3.0), event(1.0)]


def test_events_are_limited_to_the_newest(store: Store) -> None:
    store.save([(endpoint(), [event(float(t)) for t in range(10)])])
    assert [e.at for e in store.events(limit=3)] == [9.0, 8.0, 7.0]


def test_negative_event_limit_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="limit"):
        store.events(limit=-1)


def test_stored_event_of_unknown_kind_raises_store_error_naming_it(path: Path) -> None:
    Store.open(path).close()
    execute(
        path,
        f"INSERT INTO events (at, mac, kind, detail) VALUES (1.0, '{MAC_A}', 'teleported', '{{}}')",
    )
    with Store.open(path) as store, pytest.raises(StoreError, match="'teleported'"):
        store.events()


def test_closed_store_raises_store_error(store: Store) -> None:
    store.close()
    with pytest.raises(StoreError):
        store.load_endpoints()


def test_posture_reports_round_trip_newest_first_per_endpoint(store: Store) -> None:
    packages = ReportedAttribute(0, 1, 0, 7, "installed packages", [["bash", "5.2.15-2+b2"]])
    first = PostureReport(
        ip="10.0.0.5",
        mac=MAC_A,
        user="alice@staff",
        started_at=10.0,
        finished_at=11.0,
        verdict=Verdict.MINOR_NONCOMPLIANCE,
        recommendation=Recommendation.QUARANTINED,
        attributes=(packages,),
        reasons=("IP forwarding is enabled",),
        remediation=(RemediationItem("Turn off IP forwarding", "https://portal/help"),),
    )
    second = replace(first, started_at=20.0, finished_at=21.0, verdict=Verdict.COMPLIANT)
    other = replace(first, ip="10.0.0.9", mac=None, finished_at=30.0)
    store.add_posture_reports([first, second, other])
    kept = store.posture_reports(mac=MAC_A)
    assert [replace(r, id=None) for r in kept] == [second, first]
    assert [r.ip for r in store.posture_reports()] == ["10.0.0.9", "10.0.0.5", "10.0.0.5"]
    assert store.posture_reports(ip="10.0.0.9", limit=1)[0].mac is None


def test_latest_posture_reports_gives_each_endpoints_newest(store: Store) -> None:
    def report(ip: str, mac: str | None, at: float) -> PostureReport:
        return PostureReport(ip, at, at, Verdict.COMPLIANT, Recommendation.ALLOWED, mac=mac)

    store.add_posture_reports(
        [
            report("10.0.0.5", MAC_A, 1.0),
            report("10.0.0.5", MAC_A, 2.0),
            report("10.0.0.9", None, 3.0),
            report("10.0.0.9", None, 4.0),
            report("10.0.0.7", "02:00:00:00:00:0b", 5.0),
        ]
    )
    latest = store.latest_posture_reports()
    assert [(r.ip, r.finished_at) for r in latest] == [
        ("10.0.0.7", 5.0),
        ("10.0.0.9", 4.0),
        ("10.0.0.5", 2.0),
    ]


def test_an_endpoint_without_a_report_is_remembered_until_one_is_added(store: Store) -> None:
    def report(mac: str, at: float) -> PostureReport:
        return PostureReport("10.0.0.5", at, at, Verdict.COMPLIANT, Recommendation.ALLOWED, mac=mac)

    reads: list[str | None] = []
    read = store.posture_reports

    def counted(**kwargs: Any) -> list[PostureReport]:
        reads.append(kwargs.get("mac"))
        return read(**kwargs)

    store.posture_reports = counted  # type: ignore[method-assign]
    assert store.latest_posture_report(MAC_A) is None
    assert store.latest_posture_report(MAC_A) is None
    assert reads == [MAC_A]  # that it has none was remembered
    store.add_posture_reports([report("02:00:00:00:00:0b", 2.0)])
    assert store.latest_posture_report(MAC_A) is None
    assert reads == [MAC_A, MAC_A]  # any report added: asked again
    store.add_posture_reports([report(MAC_A, 3.0)])
    found = store.latest_posture_report(MAC_A)
    assert found is not None and found.finished_at == 3.0
    assert store.latest_posture_report(MAC_A) == found
    assert reads == [MAC_A, MAC_A, MAC_A, MAC_A]  # a report itself is not kept


def test_user_groups_are_kept_set_and_listed(store: Store) -> None:
    assert store.add_user("staff", "ann", "h", 1.0, ["eng", "ops", "eng"])
    assert store.user_groups("staff", "ann") == {"eng", "ops"}
    assert store.set_groups("staff", "ann", [], 2.0)
    assert store.user_groups("staff", "ann") == frozenset()
    assert not store.set_groups("staff", "nobody", ["x"], 2.0)
    assert store.user_groups("staff", "nobody") == frozenset()
    assert store.users() == [("staff", "ann", 1.0, 2.0, (), False)]


def test_nt_hashes_outside_the_allowed_realms_are_counted_and_forgotten(store: Store) -> None:
    store.add_user("staff", "ann", "h", 1.0, nt_hash=b"sealed-ann")
    store.add_user("guests", "gail", "h", 1.0, nt_hash=b"sealed-gail")
    store.add_user("guests", "gus", "h", 1.0, nt_hash=b"sealed-gus")
    store.add_user("guests", "plain", "h", 1.0)
    store.add_user("gone", "old", "h", 1.0, nt_hash=b"sealed-old")  # a realm since removed
    # by realm and name: gone/old, guests/gail, guests/gus, guests/plain, staff/ann
    assert [u.nt_hash for u in store.users()] == [True, True, True, False, True]
    assert store.stray_nt_hashes({"staff"}) == {"gone": 1, "guests": 2}
    assert store.stray_nt_hashes({"staff", "guests", "gone"}) == {}
    generation = store.users_generation
    assert store.forget_nt_hashes({"staff"}) == {"gone": 1, "guests": 2}
    assert store.users_generation > generation  # kept hashes are read again
    assert store.sealed_nt_hash("staff", "ann") == (True, b"sealed-ann")
    assert store.sealed_nt_hash("guests", "gail") == (True, None)
    assert store.sealed_nt_hash("gone", "old") == (True, None)
    assert store.password_hash("guests", "gail") == "h"  # only the NT hash goes
    assert store.forget_nt_hashes({"staff"}) == {}


def test_standings_round_trip_replace_and_are_forgotten(store: Store) -> None:
    fix = Remediation("Turn it on", "https://x/fw", AgentAction.ENABLE_FIREWALL)
    first = Standing(
        MAC_A,
        "staff",
        "ann",
        frozenset({"eng"}),
        Platform.LINUX,
        10.0,
        20.0,
        None,
        Trigger.SIGN_IN,
        Outcome.REMEDIATION,
        "remediation",
        "no role's checks pass",
        (("linux", "fw", fix),),
        (FailedRule("linux", "fw", "fail"),),
    )
    store.save_standings([first])
    assert store.load_standings() == [first]
    second = replace(first, judged_at=30.0, collected_at=29.0, outcome=Outcome.DENIED, role=None)
    store.save_standings([second])
    assert store.load_standings() == [second]
    assert store.delete_standing(MAC_A) and not store.delete_standing(MAC_A)
    assert store.load_standings() == []


def test_loaded_standings_share_realm_role_and_an_empty_group_set(store: Store) -> None:
    ann = Standing(
        MAC_A,
        "staff",
        "ann",
        frozenset(),
        None,
        1.0,
        2.0,
        2.0,
        Trigger.REPORT,
        Outcome.ADMITTED,
        "full",
    )
    store.save_standings([ann, replace(ann, mac=MAC_B, user="bob")])
    first, second = store.load_standings()
    assert first.realm is second.realm and first.role is second.role
    assert first.groups is second.groups and first.groups == frozenset()


def test_a_standing_row_that_cannot_be_read_back_is_skipped(store: Store) -> None:
    store._connection.execute(
        "INSERT INTO admissions VALUES"
        " ('m', 'r', 'u', '[]', 'beos', 1, 2, NULL, 'sign-in', 'admitted', 'full', '', '[]', '[]')"
    )
    assert store.load_standings() == []


def test_transactions_hold_the_lock_they_are_given(store: Store) -> None:
    held: list[bool] = []

    class Recording:
        def __enter__(self) -> None:
            held.append(True)

        def __exit__(self, *exc: object) -> None:
            held.append(False)

    store.serialize_with(Recording())
    store.add_user("staff", "ann", "h", 1.0)
    assert held == [True, False]
