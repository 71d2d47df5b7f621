"""The posture server's sessions over in-memory streams, against the agent's posture client:
IMV routing, the OS IMV's Attribute Request, reports in the store, SASL PLAIN, and the
session limits (under trio's autojump clock)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import pytest
import trio
import trio.testing

from netaccess.agent.tnc_client import (
    OS,
    Credentials,
    PostureClientError,
    report_posture,
)
from netaccess.config.model import PostureAuthentication, PostureConfig
from netaccess.io.posture import PostureServer
from netaccess.policy.credentials import hash_password
from netaccess.policy.imv import PaDelivery, PaReply, PostureEndpoint
from netaccess.policy.imv_os import OsImv
from netaccess.policy.posture import PostureReport, Recommendation, Verdict
from netaccess.proto.tnc.pa import (
    AttributeKey,
    FactoryDefaultPasswordEnabled,
    ForwardingEnabled,
    ForwardingState,
    InstalledPackages,
    PaAttribute,
    Package,
    ProductInformation,
    StringVersion,
    attribute_key,
    pull_pa_message,
)
from netaccess.proto.tnc.pb import AccessRecommendation, AssessmentResult
from netaccess.store import Store

IP = "198.18.0.10"
DEBIAN = (ProductInformation(0, 0, "Debian"), StringVersion("12", "", "x86_64"))
PACKAGES = InstalledPackages(tuple(Package(f"pkg{n}", f"1.{n}") for n in range(700)))


@pytest.fixture
def store() -> Iterator[Store]:
    with Store.open_memory() as s:
        yield s


def server(store: Store, **settings: object) -> PostureServer:
    config = dataclasses.replace(PostureConfig(), **settings)  # type: ignore[arg-type]
    return PostureServer(config, store, lambda: [OsImv()], lambda ip: "02:00:00:00:00:0a")


def packages_answer(
    component: tuple[int, int], wanted: tuple[AttributeKey, ...]
) -> list[PaAttribute]:
    return [PACKAGES] if attribute_key(InstalledPackages) in wanted else []


async def session(
    srv: PostureServer,
    components: dict[tuple[int, int], Sequence[PaAttribute]],
    **client: object,
) -> object:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    outcome: object = None
    failure: Exception | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(srv.serve_session, server_stream, IP)
        try:
            outcome = await report_posture(client_stream, components, **client)  # type: ignore[arg-type]
        except Exception as exc:  # raised below, outside the nursery's exception group
            failure = exc
        finally:
            await client_stream.aclose()
    if failure is not None:
        raise failure
    return outcome


async def flush(srv: PostureServer) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(srv._write_reports)
        await trio.sleep(0.5)
        nursery.cancel_scope.cancel()


async def test_without_imcs_the_endpoint_is_compliant(store: Store) -> None:
    srv = server(store)
    outcome = await session(srv, {})
    assert outcome.result is AssessmentResult.COMPLIANT  # type: ignore[attr-defined]
    assert outcome.recommendation is AccessRecommendation.ALLOWED  # type: ignore[attr-defined]
    await flush(srv)
    (report,) = store.posture_reports()
    assert (report.ip, report.mac, report.verdict) == (IP, "02:00:00:00:00:0a", Verdict.COMPLIANT)


async def test_the_os_imv_asks_for_installed_packages_and_the_report_keeps_them(
    store: Store,
) -> None:
    srv = server(store)
    outcome = await session(srv, {OS: DEBIAN}, answer=packages_answer)
    assert outcome.result is AssessmentResult.COMPLIANT  # type: ignore[attr-defined]
    assert outcome.rounds == 2  # type: ignore[attr-defined]
    await flush(srv)
    (report,) = store.posture_reports()
    names = [a.name for a in report.attributes]
    assert names == ["ProductInformation", "StringVersion", "InstalledPackages"]
    assert report.attributes[0].value["name"] == "Debian"
    assert len(report.attributes[2].value["packages"]) == 700


async def test_every_finished_report_is_handed_on_at_once_and_a_failing_listener_harms_none(
    store: Store,
) -> None:
    heard: list[PostureReport] = []

    def listener(report: PostureReport) -> None:
        heard.append(report)
        raise RuntimeError("a broken listener")

    srv = PostureServer(
        PostureConfig(), store, lambda: [OsImv()], lambda ip: "02:00:00:00:00:0a", listener
    )
    await session(srv, {OS: DEBIAN}, answer=packages_answer)
    assert [(r.mac, len(r.attributes)) for r in heard] == [("02:00:00:00:00:0a", 3)]
    await flush(srv)
    assert len(store.posture_reports()) == 1  # stored all the same


async def test_packages_are_not_asked_for_when_switched_off(store: Store) -> None:
    srv = PostureServer(
        PostureConfig(), store, lambda: [OsImv(request_packages=False)], lambda ip: None
    )
    outcome = await session(srv, {OS: DEBIAN}, answer=packages_answer)
    assert outcome.rounds == 1  # type: ignore[attr-defined]


async def test_ip_forwarding_gives_minor_non_compliance_with_reason_and_remediation(
    store: Store,
) -> None:
    srv = server(store, request_packages=False)
    facts = (*DEBIAN, ForwardingEnabled(ForwardingState.ENABLED))
    outcome = await session(srv, {OS: facts})
    assert outcome.result is AssessmentResult.MINOR_NON_COMPLIANCE  # type: ignore[attr-defined]
    assert outcome.recommendation is AccessRecommendation.QUARANTINED  # type: ignore[attr-defined]
    assert outcome.reasons == ("IP forwarding is enabled",)  # type: ignore[attr-defined]
    assert "ip_forward=0" in outcome.remediation[0]  # type: ignore[attr-defined]
    await flush(srv)
    assert store.posture_reports()[0].recommendation is Recommendation.QUARANTINED


async def test_a_factory_default_password_is_major_non_compliance(store: Store) -> None:
    srv = server(store, request_packages=False)
    outcome = await session(srv, {OS: (*DEBIAN, FactoryDefaultPasswordEnabled(True))})
    assert outcome.result is AssessmentResult.MAJOR_NON_COMPLIANCE  # type: ignore[attr-defined]


async def test_sasl_plain_admits_a_realm_user(store: Store) -> None:
    store.add_user("staff", "alice", hash_password("correct horse"), 1.0)
    srv = server(store, authentication=PostureAuthentication.PLAIN)
    outcome = await session(srv, {}, credentials=Credentials("alice", "correct horse"))
    assert outcome.result is AssessmentResult.COMPLIANT  # type: ignore[attr-defined]
    await flush(srv)
    assert store.posture_reports()[0].user == "alice@staff"


async def test_sasl_plain_with_a_bad_password_ends_the_session_without_a_report(
    store: Store,
) -> None:
    store.add_user("staff", "alice", hash_password("correct horse"), 1.0)
    srv = server(store, authentication=PostureAuthentication.PLAIN)
    with pytest.raises(PostureClientError, match=r"refused|error"):
        await session(srv, {}, credentials=Credentials("alice@staff", "wrong"))
    await flush(srv)
    assert store.posture_reports() == []
    assert srv.refused == 1


async def test_a_client_without_credentials_cannot_pass_a_server_that_wants_them(
    store: Store,
) -> None:
    srv = server(store, authentication=PostureAuthentication.PLAIN)
    with pytest.raises(PostureClientError, match="SASL"):
        await session(srv, {})


async def test_a_session_that_stalls_mid_batch_is_closed_at_the_message_timeout(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    srv = server(store, message_timeout=5.0)
    client_stream, server_stream = trio.testing.memory_stream_pair()
    started = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(srv.serve_session, server_stream, IP)
        await client_stream.send_all(bytes.fromhex("00000000 00000001 00000014 00000000 00010101"))
        # The first PB-TNC batch message: its header promises 100 bytes, 30 come.
        await client_stream.send_all(
            bytes.fromhex("00000000 00000007 00000064 00000001") + bytes(14)
        )
        answer = b""
        with trio.move_on_after(60):
            while chunk := await client_stream.receive_some(65536):
                answer += chunk
    assert answer.startswith(bytes.fromhex("00000000 00000002"))  # the Version Response
    assert 5 <= trio.current_time() - started < 6
    assert srv.refused == 1


async def test_a_session_over_its_message_cap_is_closed(store: Store) -> None:
    srv = server(store, max_messages=2)
    with pytest.raises((PostureClientError, trio.BrokenResourceError)):
        # Version Request and CDATA pass; the CDATA with the packages is one too many.
        await session(srv, {OS: DEBIAN}, answer=packages_answer)
    assert srv.refused == 1


class RecordingImv:
    """Opens sessions that remember whom they assess and what they were given."""

    name = "recording"
    subscriptions = frozenset({OS})

    def __init__(self) -> None:
        self.endpoints: list[PostureEndpoint] = []
        self.raw: list[bytes] = []

    def open(self, endpoint: PostureEndpoint) -> RecordingImv:
        self.endpoints.append(endpoint)
        return self

    async def receive(self, delivery: PaDelivery) -> list[PaReply]:
        self.raw.append(delivery.raw)
        return []

    async def evaluate(self) -> None:
        return None

    async def close(self) -> None:
        pass


async def test_imvs_learn_the_endpoint_and_the_user_and_get_the_bytes_as_sent(
    store: Store,
) -> None:
    store.add_user("staff", "alice", hash_password("correct horse"), 1.0)
    recording = RecordingImv()
    config = dataclasses.replace(PostureConfig(), authentication=PostureAuthentication.PLAIN)
    srv = PostureServer(config, store, lambda: [recording], lambda ip: "02:00:00:00:00:0a")
    await session(srv, {OS: DEBIAN}, credentials=Credentials("alice", "correct horse"))
    assert recording.endpoints == [PostureEndpoint(IP, "02:00:00:00:00:0a", "alice@staff")]
    (raw,) = recording.raw
    assert pull_pa_message(raw).attributes == DEBIAN


async def test_reports_still_being_batched_are_written_when_the_server_stops(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    srv = server(store)
    report = PostureReport("198.18.0.10", 1.0, 2.0, Verdict.COMPLIANT, Recommendation.ALLOWED)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(srv._write_reports)
        for _ in range(3):
            srv._reports_in.send_nowait(report)
        await trio.sleep(0.01)  # the writer holds them, waiting to fill its batch
        nursery.cancel_scope.cancel()
    assert len(store.posture_reports()) == 3
