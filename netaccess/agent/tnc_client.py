"""The agent's posture client on trio: one PT-TLS session over a stream the caller opened (TLS
in production, in memory in tests), driven by the sans-IO PostureConversation.
tools/tnc-probe and the posture benchmark use it; the agent itself runs the blocking driver
(netaccess.agent.client), since it carries no trio."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import trio

from netaccess.agent.conversation import (
    OS,
    Answer,
    Component,
    Credentials,
    PostureClientError,
    PostureConversation,
    PostureOutcome,
)
from netaccess.proto.tnc.pa import PaAttribute

__all__ = [
    "OS",
    "Answer",
    "Component",
    "Credentials",
    "PostureClientError",
    "PostureConversation",
    "PostureOutcome",
    "report_posture",
]


async def report_posture(
    stream: trio.abc.Stream,
    components: Mapping[Component, Sequence[PaAttribute]],
    *,
    answer: Answer | None = None,
    credentials: Credentials | None = None,
    language: str = "Accept-Language: en",
) -> PostureOutcome:
    """Run one session on `stream` to its RESULT, then CLOSE it (the stream stays open
    for the caller to close)."""
    conversation = PostureConversation(
        components, answer=answer, credentials=credentials, language=language
    )
    await stream.send_all(conversation.start())
    while conversation.outcome is None:
        data = await stream.receive_some(64 * 1024)
        if not data:
            raise PostureClientError("the server closed the session before a result")
        reply = conversation.receive(bytes(data))
        if reply:
            await stream.send_all(reply)
    return conversation.outcome
