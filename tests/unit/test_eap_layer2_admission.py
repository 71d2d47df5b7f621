"""AdmissionKeeper.sign_in_layer2, the 802.1X sign-in (DESIGN.md §4, Layer 2 only): with a
usable posture report it decides as a portal sign-in does; without one the endpoint gets
the remediation role and the instructions to retry over Layer 3, and no standing."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from netaccess.io.admission import LAYER2_INSTRUCTIONS, AdmissionKeeper
from netaccess.policy.admission import Outcome
from netaccess.policy.endpoint import EventKind
from netaccess.policy.roles import Realm
from netaccess.store import Store
from tests.unit.test_admission_keeper import MAC, Clock, config, keeper, report


@pytest.fixture
def store() -> Iterator[Store]:
    with Store.open_memory() as opened:
        opened.add_user("staff", "ann", "x", 1.0)
        opened.add_user("staff", "bob", "x", 1.0, ["eng"])
        yield opened


def staff(admissions: AdmissionKeeper) -> Realm:
    realm = admissions._config.realm("staff")
    assert realm is not None
    return realm


def role_of(admissions: AdmissionKeeper) -> str:
    endpoint = admissions._inventory.get(MAC)
    assert endpoint is not None
    return endpoint.role


async def test_without_a_report_the_endpoint_is_told_to_come_over_layer_3(store: Store) -> None:
    admissions = keeper(store, Clock())
    decision = admissions.sign_in_layer2(MAC, staff(admissions), "ann")
    assert (decision.outcome, decision.role) == (Outcome.REMEDIATION, "remediation")
    assert decision.message == (
        "The agent cannot be downloaded over a Layer 2 connection: retry over Layer 3, "
        "or contact the administrator."
    )
    assert decision.message == LAYER2_INSTRUCTIONS
    assert role_of(admissions) == "remediation"
    assert admissions.standing(MAC) is None and len(admissions) == 0
    assert await admissions._inventory.flush()
    (event,) = [e for e in store.events(mac=MAC, limit=10) if e.kind is EventKind.ROLE_CHANGED]
    assert event.detail["by"] == "802.1x:staff/ann"
    assert "Layer 2 only" in str(event.detail["reason"])


async def test_with_a_usable_report_it_is_a_sign_in_with_role_mapping(store: Store) -> None:
    clock = Clock()
    store.add_posture_reports([report(clock.now - 5)])
    admissions = keeper(store, clock)
    decision = admissions.sign_in_layer2(MAC, staff(admissions), "bob")  # bob is in eng
    assert (decision.outcome, decision.role) == (Outcome.ADMITTED, "eng")
    assert role_of(admissions) == "eng"
    standing = admissions.standing(MAC)
    assert standing is not None and standing.user == "bob"


async def test_a_failing_report_gives_host_checker_remediation(store: Store) -> None:
    clock = Clock()
    store.add_posture_reports([report(clock.now - 5, firewall=False)])
    admissions = keeper(store, clock)
    decision = admissions.sign_in_layer2(MAC, staff(admissions), "ann")
    assert decision.outcome is Outcome.REMEDIATION
    assert decision.message != LAYER2_INSTRUCTIONS
    assert admissions.standing(MAC) is not None


async def test_a_report_past_the_realms_lease_does_not_count(store: Store) -> None:
    clock = Clock()
    store.add_posture_reports([report(clock.now - 7200)])
    store.add_user("leased", "ann", "x", 1.0)
    admissions = keeper(store, clock, config())
    leased = admissions._config.realm("leased")
    assert leased is not None and leased.reuse_result_for == 3600
    decision = admissions.sign_in_layer2(MAC, leased, "ann")
    assert decision.message == LAYER2_INSTRUCTIONS


async def test_from_another_thread_only_changes_go_to_the_loop(store: Store) -> None:
    clock = Clock()
    admissions = keeper(store, clock)
    sent: list[object] = []

    def on_loop(work: Callable[[], object]) -> object:
        sent.append(work)
        return work()

    first = admissions.sign_in_layer2(MAC, staff(admissions), "ann", on_loop=on_loop)
    assert first.message == LAYER2_INSTRUCTIONS and len(sent) == 1  # the role changed
    again = admissions.sign_in_layer2(MAC, staff(admissions), "ann", on_loop=on_loop)
    assert again == first and len(sent) == 1  # already in remediation: nothing to do
    store.add_posture_reports([report(clock.now - 5)])
    judged = admissions.sign_in_layer2(MAC, staff(admissions), "ann", on_loop=on_loop)
    assert judged.role == "full" and len(sent) == 2  # judged and applied on the loop


async def test_a_first_sign_in_posts_its_move_to_remediation_without_waiting(
    store: Store,
) -> None:
    clock = Clock()
    admissions = keeper(store, clock)
    waited: list[object] = []
    posted: list[Callable[[], object]] = []

    def on_loop(work: Callable[[], object]) -> object:
        waited.append(work)
        return work()

    first = admissions.sign_in_layer2(
        MAC, staff(admissions), "ann", on_loop=on_loop, post=posted.append
    )
    assert first.role == "remediation" and first.message == LAYER2_INSTRUCTIONS
    assert not waited and len(posted) == 1
    assert role_of(admissions) == "quarantine"  # not applied yet: the loop has not run
    posted[0]()
    assert role_of(admissions) == "remediation"
    store.add_posture_reports([report(clock.now - 5)])
    judged = admissions.sign_in_layer2(
        MAC, staff(admissions), "ann", on_loop=on_loop, post=posted.append
    )
    assert judged.role == "full" and len(waited) == 1 and len(posted) == 1  # judging waits
