"""The daemon's admission keeper (netaccess.io.admission) on a real in-memory store and
inventory: sign-in, then the role moved by posture reports, a new patch feed and periodic
re-checks (trio's mock clock drives time), the reuse lease, admin overrides and restarts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
import trio

from netaccess.config import ApplianceConfig
from netaccess.config.load import load_config_text
from netaccess.io.admission import AdmissionKeeper
from netaccess.io.inventory import Inventory
from netaccess.policy.endpoint import Endpoint, EventKind
from netaccess.policy.feed import parse_feed
from netaccess.policy.hostchecker import Platform
from netaccess.policy.posture import PostureReport, Recommendation, ReportedAttribute, Verdict
from netaccess.policy.standing import Trigger
from netaccess.store import Store
from tests.unit.test_feed import encode, feed_document

MAC = "02:00:00:00:00:01"
CONFIG = """
[[policies]]
name = "linux-desktop"
platform = "linux"

[[policies.rules]]
name = "os"
type = "os"
os = "Debian"
min_version = "12"

[[policies.rules]]
name = "firewall"
type = "firewall"
instructions = "Turn the firewall on."
action = "enable_firewall"

[[roles]]
name = "full"
vlan = 100
allow = ["0.0.0.0/0"]
recheck_interval = "10m"
policies = ["linux-desktop"]

[[roles]]
name = "eng"
vlan = 101
allow = ["0.0.0.0/0"]
recheck_interval = 60
policies = ["linux-desktop"]

[[realms]]
name = "staff"
role = "full"

[[realms.mappings]]
role = "eng"
groups = ["eng"]

[[realms]]
name = "leased"
role = "full"
reuse_result_for = "1h"
"""


def config() -> ApplianceConfig:
    return load_config_text(CONFIG, "test.toml")


def report(at: float, *, firewall: bool = True) -> PostureReport:
    attributes = (
        ReportedAttribute(0, 1, 0, 2, "ProductInformation", {"name": "Debian"}),
        ReportedAttribute(0, 1, 0, 4, "StringVersion", {"version": "12.8"}),
        ReportedAttribute(
            0, 5, 32473, 2, "Firewall", {"profiles": [{"name": "default", "enabled": firewall}]}
        ),
    )
    return PostureReport(
        "198.18.0.10", at - 1, at, Verdict.COMPLIANT, Recommendation.ALLOWED, attributes, mac=MAC
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store() -> Iterator[Store]:
    with Store.open_memory() as opened:
        opened.add_user("staff", "ann", "x", 1.0)
        opened.add_user("staff", "bob", "x", 1.0, ["eng"])
        opened.add_user("leased", "ann", "x", 1.0)
        yield opened


def keeper(store: Store, clock: Clock, cfg: ApplianceConfig | None = None) -> AdmissionKeeper:
    inventory = Inventory(store, [Endpoint(MAC, 1.0, 1.0, ("198.18.0.10",))])
    return AdmissionKeeper(cfg or config(), store, inventory, lambda: None, clock=clock)


def role_of(admissions: AdmissionKeeper) -> str:
    endpoint = admissions._inventory.get(MAC)
    assert endpoint is not None
    return endpoint.role


def sign_in(admissions: AdmissionKeeper, realm: str = "staff", user: str = "ann") -> Any:
    found = admissions._config.realm(realm)
    assert found is not None
    return admissions.sign_in(MAC, found, user, Platform.LINUX)


async def test_sign_in_over_a_compliant_report_admits_and_groups_pick_the_mapped_role(
    store: Store,
) -> None:
    clock = Clock()
    store.add_posture_reports([report(clock.now - 5)])
    admissions = keeper(store, clock)
    assert sign_in(admissions).role == "full"
    assert role_of(admissions) == "full"
    assert sign_in(admissions, user="bob").role == "eng"  # bob is in group eng
    standing = admissions.standing(MAC)
    assert standing is not None
    assert (standing.user, standing.groups, standing.trigger) == ("bob", {"eng"}, Trigger.SIGN_IN)


async def test_a_report_with_the_firewall_off_demotes_at_once_and_one_with_it_on_readmits(
    store: Store,
) -> None:
    clock = Clock()
    store.add_posture_reports([report(clock.now - 5)])
    admissions = keeper(store, clock)
    sign_in(admissions)
    clock.now += 30
    admissions.on_report(report(clock.now, firewall=False))
    assert role_of(admissions) == "remediation"
    standing = admissions.standing(MAC)
    assert standing is not None
    assert [(f.policy, f.rule) for f in standing.failed] == [("linux-desktop", "firewall")]
    assert standing.remediation[0][2].instructions == "Turn the firewall on."
    assert await admissions._inventory.flush()
    events = [e for e in store.events(mac=MAC, limit=10) if e.kind is EventKind.ROLE_CHANGED]
    assert "Host Checker posture report: remediation; failed linux-desktop/firewall" in str(
        events[0].detail
    )
    clock.now += 30
    admissions.on_report(report(clock.now, firewall=True))
    assert role_of(admissions) == "full"
    assert admissions.role_changes == 2


async def test_a_report_from_an_endpoint_nobody_signed_in_moves_nothing(store: Store) -> None:
    admissions = keeper(store, Clock())
    admissions.on_report(report(5.0, firewall=False))
    assert (role_of(admissions), admissions.judged) == ("quarantine", 0)


async def test_a_periodic_recheck_judges_the_latest_report_again(store: Store) -> None:
    clock = Clock()
    store.add_posture_reports([report(clock.now - 5)])
    admissions = keeper(store, clock)
    sign_in(admissions)
    # A report with the firewall off reaches the store without passing the keeper (as if
    # the daemon had restarted in between): only the 10 min re-check can notice it.
    store.add_posture_reports([report(clock.now + 1, firewall=False)])
    async with trio.open_nursery() as nursery:
        await nursery.start(admissions.run)
        clock.now += 599
        await trio.sleep(0.05)
        assert role_of(admissions) == "full"
        clock.now += 2
        admissions._wake.set()  # the test's clock moved, not trio's: wake the task
        await _settle(lambda: role_of(admissions) == "remediation")
        nursery.cancel_scope.cancel()
    assert role_of(admissions) == "remediation"
    standing = admissions.standing(MAC)
    assert standing is not None and standing.trigger is Trigger.RECHECK


async def test_within_the_lease_a_recheck_keeps_the_result_and_past_it_asks_for_a_report(
    store: Store,
) -> None:
    clock = Clock()
    store.add_posture_reports([report(clock.now - 5)])
    admissions = keeper(store, clock)
    sign_in(admissions, realm="leased")
    judged = admissions.judged
    async with trio.open_nursery() as nursery:
        await nursery.start(admissions.run)
        clock.now += 601  # first re-check, 10 min in: within the 1 h lease, nothing new
        admissions._wake.set()
        await _settle(lambda: admissions.standing(MAC).judged_at == clock.now)  # type: ignore[union-attr]
        assert (admissions.judged, role_of(admissions)) == (judged, "full")
        clock.now += 3600  # the report is now past the lease
        admissions._wake.set()
        await _settle(lambda: role_of(admissions) == "remediation")
        nursery.cancel_scope.cancel()
    standing = admissions.standing(MAC)
    assert standing is not None
    assert standing.remediation[0][:2] == ("posture", "report")
    assert "reuse_result_for" in standing.message
    # A new report (the agent ran) readmits at once.
    admissions.on_report(report(clock.now))
    assert role_of(admissions) == "full"


async def test_a_new_feed_judges_every_signed_in_endpoint_again(store: Store) -> None:
    clock = Clock()
    store.add_posture_reports([report(clock.now - 5)])
    admissions = keeper(store, clock)
    sign_in(admissions)
    before = admissions.judged
    async with trio.open_nursery() as nursery:
        await nursery.start(admissions.run)
        admissions.on_new_feed(None)  # type: ignore[arg-type]  # the keeper reads feed() itself
        await _settle(lambda: admissions.judged == before + 1)
        nursery.cancel_scope.cancel()
    standing = admissions.standing(MAC)
    assert standing is not None and standing.trigger is Trigger.FEED


async def test_an_admin_override_releases_the_endpoint_and_standings_survive_a_restart(
    store: Store,
) -> None:
    clock = Clock()
    store.add_posture_reports([report(clock.now - 5)])
    admissions = keeper(store, clock)
    sign_in(admissions)
    again = keeper(store, clock)
    again.load()
    standing = again.standing(MAC)
    assert standing is not None and (standing.realm, standing.role) == ("staff", "full")
    assert again.forget(MAC) and again.standing(MAC) is None
    assert not again.forget(MAC)
    third = keeper(store, clock)
    third.load()
    assert third.standing(MAC) is None


async def test_standings_of_a_realm_no_longer_configured_are_dropped_at_load(
    store: Store,
) -> None:
    clock = Clock()
    store.add_posture_reports([report(clock.now - 5)])
    sign_in(keeper(store, clock), realm="leased")
    without = load_config_text(CONFIG.split('[[realms]]\nname = "leased"')[0], "test.toml")
    reloaded = keeper(store, clock, without)
    reloaded.load()
    assert len(reloaded) == 0


async def _settle(done: Any) -> None:
    for _ in range(200):
        if done():
            return
        await trio.sleep(0.01)
    raise AssertionError("the keeper did not get there")


async def test_a_feed_that_makes_an_installed_package_outdated_demotes_on_arrival(
    store: Store,
) -> None:
    patched = CONFIG.replace(
        'name = "firewall"\ntype = "firewall"\ninstructions = "Turn the firewall on."\n'
        'action = "enable_firewall"',
        'name = "patched"\ntype = "patch"\nproducts = ["*"]\ninstructions = "Run apt upgrade."',
    )
    assert "patched" in patched
    older = feed_document(1)
    older["products"] = [dict(older["products"][0], latest_version="3.0.15-1~deb12u1")]
    older["patches"] = [dict(older["patches"][1], superseded_by=None)]
    feeds = [parse_feed(encode(older))]
    clock = Clock()
    clock.now = datetime(2026, 11, 24, 12, tzinfo=UTC).timestamp()
    with_packages = report(clock.now - 5)
    installed = ReportedAttribute(
        0, 1, 0, 7, "InstalledPackages", {"packages": [["openssl", "3.0.15-1~deb12u1"]]}
    )
    store.add_posture_reports(
        [replace(with_packages, attributes=(*with_packages.attributes, installed))]
    )
    inventory = Inventory(store, [Endpoint(MAC, 1.0, 1.0, ("198.18.0.10",))])
    admissions = AdmissionKeeper(
        load_config_text(patched, "test.toml"), store, inventory, lambda: feeds[-1], clock=clock
    )
    assert sign_in(admissions).role == "full"
    async with trio.open_nursery() as nursery:
        await nursery.start(admissions.run)
        feeds.append(parse_feed(encode(feed_document(2))))  # openssl 3.0.17 is out
        admissions.on_new_feed(feeds[-1])
        await _settle(lambda: role_of(admissions) == "remediation")
        nursery.cancel_scope.cancel()
    standing = admissions.standing(MAC)
    assert standing is not None and standing.trigger is Trigger.FEED
    assert [(f.rule, f.outcome) for f in standing.failed] == [("patched", "fail")]
    assert standing.remediation[0][2].instructions == (
        "Run apt upgrade. (missing: openssl 3.0.15-1~deb12u1 < 3.0.17-1~deb12u2)"
    )
