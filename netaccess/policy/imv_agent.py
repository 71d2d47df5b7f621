"""The agent IMV: reads our agent's AgentInfo (its platform and version) and, when a newer
build of the agent is published for that platform, tells it in the RESULT (our AgentUpdate
attribute: the build's SHA-256, version and download path on the portal). The agent fetches
the build, checks its signature against its own key, and replaces itself.

It judges nothing: its evaluation is compliant, so it never changes the session's verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from netaccess.policy.agents import AgentBuild, update_for
from netaccess.policy.imv import ImvEvaluation, PaDelivery, PaReply, PostureEndpoint
from netaccess.policy.posture import Recommendation, Verdict
from netaccess.proto.tnc.errors import IETF_PEN
from netaccess.proto.tnc.vendor import AgentInfo, AgentUpdate

NEA_CLIENT = frozenset({(IETF_PEN, 8)})


class AgentImv:
    name = "agent"
    subscriptions = NEA_CLIENT

    def __init__(self, builds: Callable[[], Sequence[AgentBuild]]) -> None:
        """`builds()`: the published builds, newest first."""
        self._builds = builds

    def open(self, endpoint: PostureEndpoint) -> AgentSession:
        return AgentSession(self)


class AgentSession:
    def __init__(self, imv: AgentImv) -> None:
        self._imv = imv
        self.info: AgentInfo | None = None

    async def receive(self, delivery: PaDelivery) -> Sequence[PaReply]:
        for attribute in delivery.message.attributes:
            if isinstance(attribute, AgentInfo):
                self.info = attribute
        return []

    async def evaluate(self) -> ImvEvaluation | None:
        if self.info is None:
            return None
        build = update_for(self._imv._builds(), self.info.platform, self.info.version)
        if build is None:
            return None
        offer = AgentUpdate(bytes.fromhex(build.sha256), build.platform, build.version, build.url)
        return ImvEvaluation(Verdict.COMPLIANT, Recommendation.ALLOWED, to_agent=(offer,))

    async def close(self) -> None:
        pass
