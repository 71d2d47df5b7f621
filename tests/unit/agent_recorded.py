"""A Run for collector tests that answers from recorded outputs (tests/fixtures/agent/...)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from netaccess.agent.collect import CollectError, CommandOutput

FIXTURES = Path(__file__).parent.parent / "fixtures" / "agent"


class Recorded:
    """Answers each command, keyed by its first two words, with the fixture file named in
    `answers` (in `directory`) or the CommandOutput given; an unknown command is not
    installed."""

    def __init__(self, directory: Path, answers: Mapping[str, str | CommandOutput]) -> None:
        self.directory = directory
        self.answers = answers

    def __call__(self, argv: Sequence[str]) -> CommandOutput:
        key = " ".join(argv[:2])
        if key not in self.answers:
            raise CollectError(f"{argv[0]} is not installed")
        answer = self.answers[key]
        if isinstance(answer, CommandOutput):
            return answer
        return CommandOutput(0, (self.directory / answer).read_text())
