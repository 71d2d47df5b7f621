"""What every platform's collector gives the agent, and how collectors run commands.

A collector reads the machine it runs on (files, and the platform's own commands through a
`Run`, so tests replay recorded outputs) and returns a Posture: the PA-TNC attributes each
component sends at once, and those it holds until an IMV asks (Installed Packages, which
are large). Standard IETF attributes (RFC 5792) where they exist, our vendor attributes
(netaccess.proto.tnc.vendor) otherwise.

Components are (vendor, subtype) pairs of RFC 5792 §4.1 / the IANA PA Subtypes: the
validator knows antivirus from anti-spyware by the subtype its attribute arrives under.

The agent imports only netaccess.proto, the standard library and cryptography.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from netaccess.proto.tnc.pa import PaAttribute, PaMessage, push_pa_message

Component = tuple[int, int]  # (vendor, subtype)

IETF = 0
OS: Component = (IETF, 1)
ANTIVIRUS: Component = (IETF, 2)
ANTISPYWARE: Component = (IETF, 3)
FIREWALL: Component = (IETF, 5)
NEA_CLIENT: Component = (IETF, 8)  # the agent itself: AgentInfo, processes, files, ports
PATCH_MANAGEMENT: Component = (IETF, 0)  # no PA subtype exists for it; 0 as strongSwan does

COMMAND_SECONDS = 30.0
MAX_OUTPUT = 16 * 1024 * 1024


class CollectError(Exception):
    """A fact could not be collected; the message says which and why. Collectors catch it
    per fact, so one failing command leaves that fact out (unknown), not the report."""


@dataclass(frozen=True, slots=True)
class CommandOutput:
    status: int
    stdout: str


# Runs argv (no shell) and returns its status and output; raises CollectError when it
# cannot run at all (not installed, timed out).
Run = Callable[[Sequence[str]], CommandOutput]


def run_command(argv: Sequence[str], timeout: float = COMMAND_SECONDS) -> CommandOutput:
    """The real Run: the command with a clean locale, its stdout (stderr dropped)."""
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            timeout=timeout,
            env={"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            check=False,
        )
    except FileNotFoundError:
        raise CollectError(f"{argv[0]} is not installed") from None
    except (OSError, subprocess.SubprocessError) as exc:
        raise CollectError(f"{argv[0]} failed: {exc}") from None
    return CommandOutput(done.returncode, done.stdout[:MAX_OUTPUT].decode("utf-8", "replace"))


@dataclass(frozen=True, slots=True)
class Posture:
    """One collection: attributes per component, sent at once or held for a request."""

    platform: str
    sent: Mapping[Component, tuple[PaAttribute, ...]]
    held: Mapping[Component, tuple[PaAttribute, ...]] = field(default_factory=dict)
    problems: tuple[str, ...] = ()  # facts that could not be collected, and why

    def fingerprint(self) -> str:
        """A digest of everything collected: equal digests, nothing changed."""
        digest = hashlib.sha256()
        for part in (self.sent, self.held):
            for component in sorted(part):
                digest.update(repr(component).encode())
                digest.update(push_pa_message(PaMessage(0, part[component])))
        return digest.hexdigest()

    def changes_from(self, before: Posture | None) -> list[str]:
        """Names of the attributes that differ from `before` (all of them if none)."""

        def named(posture: Posture) -> dict[tuple[Component, str], PaAttribute]:
            return {
                (component, type(attribute).__name__): attribute
                for part in (posture.sent, posture.held)
                for component, attributes in part.items()
                for attribute in attributes
            }

        now = named(self)
        then = named(before) if before is not None else {}
        return sorted({key[1] for key in now.keys() | then.keys() if now.get(key) != then.get(key)})


class Collector(Protocol):
    platform: str

    def collect(self) -> Posture: ...


def assembled(
    platform: str,
    sent: Mapping[Component, Sequence[PaAttribute]],
    held: Mapping[Component, tuple[PaAttribute, ...]],
    problems: Sequence[str],
) -> Posture:
    """A collection's Posture: components with nothing to send are left out."""
    return Posture(
        platform,
        {component: tuple(attrs) for component, attrs in sent.items() if attrs},
        held,
        tuple(problems),
    )


def attempt(
    problems: list[str], what: str, read: Callable[[], PaAttribute | None]
) -> list[PaAttribute]:
    """`read()`'s attribute, or none with the problem noted when it raises CollectError."""
    try:
        attribute = read()
    except CollectError as exc:
        problems.append(f"{what}: {exc}")
        return []
    return [] if attribute is None else [attribute]
