"""The agent's blocking posture client: TLS to the appliance's PT-TLS port (271), one
session driven by the sans-IO PostureConversation, and what the appliance said back: the
result, its reasons, and our vendor attributes for the agent (the fixes and their actions,
the newest agent build)."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from netaccess.agent.collect import Posture
from netaccess.agent.conversation import (
    Credentials,
    PostureClientError,
    PostureConversation,
    PostureOutcome,
)
from netaccess.agent.os_facts import HeldAttributes
from netaccess.proto.errors import ProtocolError
from netaccess.proto.tnc.pa import PaAttribute, pull_pa_message
from netaccess.proto.tnc.pb import PbPa
from netaccess.proto.tnc.vendor import AgentUpdate, Remediation

PT_TLS_PORT = 271
RECEIVE = 64 * 1024


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how the agent reaches its appliance."""

    host: str
    port: int = PT_TLS_PORT
    ca: Path | None = None  # the portal's CA (or self-signed certificate); None: system CAs
    ca_pem: str | None = None  # the same, as PEM text (a build carries it); used if ca is None
    credentials: Credentials | None = None  # SASL PLAIN, when the appliance asks
    certificate: Path | None = None  # a client certificate (PEM, key included), if any
    timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class Answer:
    outcome: PostureOutcome
    remediation: Remediation | None
    update: AgentUpdate | None


def tls_context(endpoint: Endpoint) -> ssl.SSLContext:
    context = ssl.create_default_context(
        cafile=str(endpoint.ca) if endpoint.ca is not None else None,
        cadata=endpoint.ca_pem if endpoint.ca is None else None,
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if endpoint.certificate is not None:
        context.load_cert_chain(str(endpoint.certificate))
    return context


def report(posture: Posture, endpoint: Endpoint) -> Answer:
    """One posture session to its result. Raises PostureClientError (with why) on any
    failure: unreachable, TLS refused, protocol errors, a session without a result."""
    conversation = PostureConversation(
        posture.sent, answer=HeldAttributes(posture.held), credentials=endpoint.credentials
    )
    try:
        context = tls_context(endpoint)
        with (
            socket.create_connection((endpoint.host, endpoint.port), endpoint.timeout) as raw,
            context.wrap_socket(raw, server_hostname=endpoint.host) as tls,
        ):
            tls.settimeout(endpoint.timeout)
            tls.sendall(conversation.start())
            while conversation.outcome is None:
                data = tls.recv(RECEIVE)
                if not data:
                    raise PostureClientError("the appliance closed the session before a result")
                reply = conversation.receive(data)
                if reply:
                    tls.sendall(reply)
    except (OSError, ssl.SSLError) as exc:
        raise PostureClientError(f"cannot talk to {endpoint.host}:{endpoint.port}: {exc}") from None
    except ProtocolError as exc:
        raise PostureClientError(f"protocol error from {endpoint.host}: {exc}") from None
    outcome = conversation.outcome
    remediation = update = None
    for attribute in _result_attributes(conversation):
        if isinstance(attribute, Remediation):
            remediation = attribute
        elif isinstance(attribute, AgentUpdate):
            update = attribute
    return Answer(outcome, remediation, update)


def _result_attributes(conversation: PostureConversation) -> list[PaAttribute]:
    found: list[PaAttribute] = []
    for message in conversation.result_messages:
        if isinstance(message, PbPa):
            try:
                found.extend(pull_pa_message(message.body).attributes)
            except ProtocolError:
                continue  # an IMV's message we cannot read: the result still stands
    return found
