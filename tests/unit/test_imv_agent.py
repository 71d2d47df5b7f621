"""What the appliance tells our agent in the RESULT: a newer build (the agent IMV, from the
agent's AgentInfo and the published builds) and each failed rule's fix with its action (the
Host Checker, only for our agent), carried in a PB-PA message to the NEA client component."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import pytest
import trio
import trio.testing

from netaccess.agent.client import _result_attributes
from netaccess.agent.conversation import PostureConversation
from netaccess.config.model import PostureConfig
from netaccess.io.posture import PostureServer
from netaccess.policy.agents import AgentBuild, update_for, version_order
from netaccess.policy.hostchecker import (
    AgentAction,
    FirewallRule,
    OsRule,
    Platform,
    Policy,
    Remediation,
    SoftwareRule,
)
from netaccess.policy.imv import (
    ImvEvaluation,
    PaDelivery,
    PostureAssessment,
    combine,
)
from netaccess.policy.imv_agent import AgentImv
from netaccess.policy.imv_hostchecker import HostCheckerImv
from netaccess.policy.posture import Recommendation, Verdict
from netaccess.proto.tnc.pa import (
    InstalledPackages,
    PaAttribute,
    Package,
    PaMessage,
    ProductInformation,
    StringVersion,
    pull_pa_message,
    push_pa_message,
)
from netaccess.proto.tnc.pb import ANY_VALIDATOR, BatchType, PbBatch, PbPa
from netaccess.proto.tnc.vendor import (
    AgentInfo,
    AgentUpdate,
    Firewall,
    FirewallProfile,
    RemediationStep,
)
from netaccess.proto.tnc.vendor import Remediation as AgentRemediation
from netaccess.store import Store

OS = (0, 1)
FIREWALL = (0, 5)
NEA_CLIENT = (0, 8)
SHA = hashlib.sha256(b"agent 1.2.0").hexdigest()


def published(platform: str, version: str, sha256: str = SHA) -> AgentBuild:
    name = f"netaccess-agent-{platform}-{version}.pyz"
    return AgentBuild(platform, version, name, 1000, sha256, 1_800_000_000.0)


LINUX_120 = published("linux", "1.2.0")
BUILDS = (LINUX_120, published("windows", "2.0.0"), published("linux", "1.1.0"))
UPDATE = AgentUpdate(bytes.fromhex(SHA), "linux", "1.2.0", LINUX_120.url)


# -- which build an agent should run


def test_versions_order_as_numbers() -> None:
    assert version_order("1.10.2") == (1, 10, 2)
    assert version_order("1.10.2") > version_order("1.9")  # type: ignore[operator]
    assert version_order("1.2-beta") is None
    assert version_order("1..2") is None


def test_an_agent_older_than_the_newest_build_gets_it() -> None:
    assert update_for(BUILDS, "linux", "1.1.0") == LINUX_120
    assert update_for(BUILDS, "linux", "1.9") is None  # 1.9 is after 1.2.0


def test_versions_compare_by_number_not_by_text() -> None:
    builds = [published("linux", "1.10.0")]
    assert update_for(builds, "linux", "1.9.5") == builds[0]
    assert update_for(builds, "linux", "1.10.0") is None
    assert update_for(builds, "linux", "1.11") is None


def test_only_the_newest_build_of_the_platform_counts() -> None:
    # newest first: 1.2.0 decides, even though the older 1.1.0 is also newer than 1.0
    assert update_for(BUILDS, "linux", "1.0") == LINUX_120
    assert update_for(BUILDS, "linux", "1.2.0") is None


def test_another_platforms_build_is_never_offered() -> None:
    assert update_for(BUILDS, "windows", "1.0.0") == BUILDS[1]
    assert update_for(BUILDS, "macos", "1.0.0") is None
    assert update_for([published("windows", "9.0")], "linux", "1.0") is None


def test_a_version_that_is_not_numbers_is_offered_when_it_differs() -> None:
    beta = [published("linux", "1.3-beta")]
    assert update_for(beta, "linux", "1.2.0") == beta[0]
    assert update_for(beta, "linux", "1.3-beta") is None
    assert update_for([LINUX_120], "linux", "source") == LINUX_120
    assert update_for([], "linux", "1.0") is None


# -- the agent IMV in a session


def delivery(*attributes: PaAttribute, component: tuple[int, int] = NEA_CLIENT) -> PaDelivery:
    return PaDelivery(*component, 7, PaMessage(1, attributes))


async def evaluated(builds: Sequence[AgentBuild], *deliveries: PaDelivery) -> object:
    session = AgentImv(lambda: builds).open(None)  # type: ignore[arg-type]
    for each in deliveries:
        assert await session.receive(each) == []
    result = await session.evaluate()
    await session.close()
    return result


async def test_an_older_agent_is_offered_the_newer_build() -> None:
    evaluation = await evaluated(BUILDS, delivery(AgentInfo("linux", "1.1.0")))
    assert evaluation == ImvEvaluation(
        Verdict.COMPLIANT, Recommendation.ALLOWED, to_agent=(UPDATE,)
    )


async def test_an_agent_running_the_newest_build_is_not_judged() -> None:
    assert await evaluated(BUILDS, delivery(AgentInfo("linux", "1.2.0"))) is None


async def test_without_agent_info_the_agent_imv_does_not_weigh_in() -> None:
    firewall = Firewall("nftables", (FirewallProfile("default", True),))
    assert await evaluated(BUILDS, delivery(firewall)) is None
    assert await evaluated(BUILDS) is None


async def test_the_builds_are_asked_for_at_evaluation() -> None:
    builds: list[AgentBuild] = []
    session = AgentImv(lambda: builds).open(None)  # type: ignore[arg-type]
    await session.receive(delivery(AgentInfo("linux", "1.1.0")))
    builds.append(LINUX_120)  # published during the session
    evaluation = await session.evaluate()
    assert evaluation is not None
    assert evaluation.to_agent == (UPDATE,)


def test_combine_keeps_every_imvs_attributes_for_the_agent() -> None:
    fixes = AgentRemediation((RemediationStep("", "p", "r", "do it", ""),))
    combined = combine(
        [
            ImvEvaluation(
                Verdict.MAJOR_NONCOMPLIANCE, Recommendation.QUARANTINED, to_agent=(fixes,)
            ),
            ImvEvaluation(Verdict.COMPLIANT, Recommendation.ALLOWED, to_agent=(UPDATE,)),
        ]
    )
    assert combined.verdict is Verdict.MAJOR_NONCOMPLIANCE
    assert combined.to_agent == (fixes, UPDATE)


# -- the RESULT batch

DEBIAN = (
    ProductInformation(0, 0, "Debian"),
    StringVersion("12", "", "x86_64"),
    InstalledPackages((Package("openssl", "3.0.15-1~deb12u1"),)),
)
FIREWALL_OFF = Firewall("nftables", (FirewallProfile("default", False),))
LINUX = Policy(
    "linux-desktop",
    Platform.LINUX,
    (
        OsRule("os", "Debian", "12"),
        SoftwareRule("ssl", "openssl", "3.1.0", Remediation("Upgrade OpenSSL")),
        FirewallRule(
            "fw",
            remediation=Remediation(
                "Turn the firewall on", "https://help/fw", AgentAction.ENABLE_FIREWALL
            ),
        ),
    ),
)
STEPS = (
    RemediationStep("", "linux-desktop", "ssl", "Upgrade OpenSSL", ""),
    RemediationStep(
        "enable_firewall", "linux-desktop", "fw", "Turn the firewall on", "https://help/fw"
    ),
)


def host_checker() -> HostCheckerImv:
    return HostCheckerImv([LINUX], lambda: None, lambda: datetime(2026, 11, 23, tzinfo=UTC))


def pb_pa(component: tuple[int, int], *attributes: PaAttribute, collector: int = 3) -> PbPa:
    return PbPa(*component, push_pa_message(PaMessage(1, attributes)), collector_id=collector)


async def result(imvs: Sequence[object], *messages: PbPa) -> PbBatch:
    assessment = PostureAssessment(imvs)  # type: ignore[arg-type]
    try:
        batch = await assessment.answer(PbBatch(BatchType.CDATA, messages))
    finally:
        await assessment.close()
    assert batch.type is BatchType.RESULT
    return batch


def to_agent(batch: PbBatch) -> list[PbPa]:
    return [m for m in batch.messages if isinstance(m, PbPa)]


async def test_the_result_carries_the_update_to_the_nea_client_collector() -> None:
    batch = await result(
        [AgentImv(lambda: BUILDS)], pb_pa(NEA_CLIENT, AgentInfo("linux", "1.1.0"), collector=3)
    )
    (message,) = to_agent(batch)
    assert (message.vendor, message.subtype) == NEA_CLIENT
    assert (message.collector_id, message.validator_id, message.exclusive) == (
        3,
        ANY_VALIDATOR,
        False,
    )
    assert pull_pa_message(message.body).attributes == (UPDATE,)


async def test_a_result_with_nothing_for_the_agent_has_no_pb_pa() -> None:
    batch = await result([AgentImv(lambda: BUILDS)], pb_pa(NEA_CLIENT, AgentInfo("linux", "1.2.0")))
    assert to_agent(batch) == []


async def test_the_result_carries_the_fixes_with_their_actions_and_the_update() -> None:
    batch = await result(
        [host_checker(), AgentImv(lambda: BUILDS)],
        pb_pa(OS, *DEBIAN),
        pb_pa(FIREWALL, FIREWALL_OFF),
        pb_pa(NEA_CLIENT, AgentInfo("linux", "1.1.0")),
    )
    (message,) = to_agent(batch)
    assert pull_pa_message(message.body).attributes == (AgentRemediation(STEPS), UPDATE)


async def test_fixes_go_to_the_agent_only_when_it_reported_agent_info() -> None:
    session = host_checker().open(None)  # type: ignore[arg-type]
    await session.receive(delivery(*DEBIAN, component=OS))
    await session.receive(delivery(FIREWALL_OFF, component=FIREWALL))
    evaluation = await session.evaluate()
    assert evaluation is not None
    assert evaluation.to_agent == ()
    assert [item.text for item in evaluation.remediation] == [
        "Upgrade OpenSSL",
        "Turn the firewall on",
    ]
    await session.receive(delivery(AgentInfo("linux", "1.2.0")))
    evaluation = await session.evaluate()
    assert evaluation is not None
    assert evaluation.to_agent == (AgentRemediation(STEPS),)


async def test_a_compliant_agent_gets_no_fixes() -> None:
    firewall_on = Firewall("nftables", (FirewallProfile("default", True),))
    policy = Policy("linux-desktop", Platform.LINUX, LINUX.rules[::2])  # os and fw only
    imv = HostCheckerImv([policy], lambda: None, lambda: datetime(2026, 11, 23, tzinfo=UTC))
    session = imv.open(None)  # type: ignore[arg-type]
    await session.receive(delivery(*DEBIAN, component=OS))
    await session.receive(delivery(firewall_on, component=FIREWALL))
    await session.receive(delivery(AgentInfo("linux", "1.2.0")))
    evaluation = await session.evaluate()
    assert evaluation is not None
    assert evaluation.verdict is Verdict.COMPLIANT
    assert evaluation.to_agent == ()


# -- end to end: the posture server to the agent's own conversation


@pytest.fixture
def store() -> Iterator[Store]:
    with Store.open_memory() as s:
        yield s


async def test_the_agent_reads_its_fixes_and_update_from_the_servers_result(
    store: Store,
) -> None:
    imvs = [host_checker(), AgentImv(lambda: BUILDS)]
    server = PostureServer(PostureConfig(), store, lambda: imvs, lambda ip: None)  # type: ignore[arg-type,return-value]
    conversation = PostureConversation(
        {OS: DEBIAN, FIREWALL: (FIREWALL_OFF,), NEA_CLIENT: (AgentInfo("linux", "1.1.0"),)}
    )
    client, server_stream = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.serve_session, server_stream, "198.18.0.10")
        await client.send_all(conversation.start())
        while conversation.outcome is None:
            data = await client.receive_some(64 * 1024)
            assert data, "the server closed the session before a result"
            reply = conversation.receive(bytes(data))
            if reply:
                await client.send_all(reply)
        await client.aclose()
    assert _result_attributes(conversation) == [AgentRemediation(STEPS), UPDATE]
