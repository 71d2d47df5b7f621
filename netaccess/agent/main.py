"""The agent's main loop: collect, report, follow the appliance's answer, wait for a change.

- It collects every `interval` seconds and whenever a local change signal fires (watch.py);
  it reports when posture differs from what it last reported, or when the interval is up
  (the appliance's re-checks want a fresh report), and says which attributes changed.
- It shows the fixes it is given (log and status file), runs the actions the endpoint
  allows for them, once per posture, then collects and reports again.
- When the appliance offers a newer build, it downloads it from the portal, checks its
  SHA-256, signature (against the key this build was made with), platform and version,
  replaces its own file atomically and starts again. A refused build is logged and named
  in the next report (AgentInfo's change text); it is not fetched again.

A build (tools/build-agent) carries its settings in the archive (BUILD_INFO: version,
platform, appliance, port, update key; and the appliance's CA certificate); command-line
options override them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
import tomllib
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from netaccess.agent.client import Answer, Endpoint, report, tls_context
from netaccess.agent.collect import NEA_CLIENT, CollectError, Collector, Posture, Run, run_command
from netaccess.agent.conversation import Credentials, PostureClientError
from netaccess.agent.platforms import current_platform
from netaccess.agent.remediate import DEFAULT_ACTIONS, describe, run_actions
from netaccess.agent.update import (
    BUILD_INFO,
    MAX_BUILD,
    UpdateRefused,
    check_newer,
    install,
    verify_build,
)
from netaccess.proto.tnc.vendor import AgentInfo, AgentUpdate

log = logging.getLogger("netaccess.agent")

SOURCE_VERSION = "0.0.0"  # an agent run from the source tree, not a build
CA_FILE = "netaccess_agent_ca.pem"  # in a build: the appliance's CA certificate
RETRY_FIRST = 2.0  # seconds before retrying an unreachable appliance, doubling to interval


@dataclass(frozen=True, slots=True)
class Settings:
    endpoint: Endpoint
    version: str = SOURCE_VERSION
    platform: str = "linux"
    interval: float = 60.0
    status_file: Path | None = None
    actions: Mapping[str, Sequence[str]] = field(default_factory=dict)
    update_key: bytes | None = None  # raw Ed25519 public key; None: updates are not applied
    archive: Path | None = None  # the build this agent runs from, if any


class Agent:
    """One agent's state between reports; `step()` is one turn of the loop."""

    def __init__(
        self,
        settings: Settings,
        collector: Collector,
        *,
        send: Callable[[Posture, Endpoint], Answer] = report,
        fetch: Callable[[str], bytes] | None = None,
        run: Run = run_command,
        restart: Callable[[Path], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._collector = collector
        self._send = send
        self._fetch = fetch or self._download
        self._run = run
        self._restart = restart or _exec_again
        self._clock = clock
        self.reported: Posture | None = None  # what the appliance last heard
        self.last_answer: Answer | None = None
        self.next_report = 0.0  # clock time of the next report due anyway
        self.failures = 0
        self._actions_done: set[tuple[str, str]] = set()  # (action, posture fingerprint)
        self._refused: dict[str, str] = {}  # build SHA-256 -> why it was refused
        self._pending_note = ""  # told with the next report (a refused update)

    def step(self, changes: Sequence[str] = ()) -> bool:
        """Collect; report if posture changed or a report is due. True if it reported."""
        posture = _without_change(self._collector.collect())
        changed = self.reported is None or posture.fingerprint() != self.reported.fingerprint()
        # After a failure the backoff holds even when a change signal comes (a ruleset that
        # changes often must not turn into a connection attempt per change).
        if (self.failures or not changed) and self._clock() < self.next_report:
            return False
        what = posture.changes_from(self.reported) if self.reported is not None else []
        note = ", ".join(what) if changes and what else ""
        if self._pending_note:
            note = f"{note}; {self._pending_note}" if note else self._pending_note
        try:
            answer = self._send(
                _with_change(posture, bool(changes and what), note), self.settings.endpoint
            )
        except PostureClientError as exc:
            self.failures += 1
            self.next_report = self._clock() + min(
                self.settings.interval, RETRY_FIRST * 2 ** min(self.failures - 1, 10)
            )
            self.reported = None  # report in full once it is reachable again
            log.warning("report failed: %s", exc)
            self._write_status({"error": str(exc)})
            return True
        self.failures = 0
        self._pending_note = ""
        self.reported, self.last_answer = posture, answer
        self.next_report = self._clock() + self.settings.interval
        self._follow(answer, posture)
        return True

    def _follow(self, answer: Answer, posture: Posture) -> None:
        outcome = answer.outcome
        fixes = describe(answer.remediation) if answer.remediation else []
        status: dict[str, object] = {
            "result": outcome.result.name.lower(),
            "recommendation": (
                outcome.recommendation.name.lower() if outcome.recommendation else None
            ),
            "reasons": list(outcome.reasons),
            "fixes": fixes,
            "actions": [],
        }
        log.info(
            "reported: %s, %s", status["result"], status["recommendation"] or "no recommendation"
        )
        for line in fixes:
            log.warning("to fix: %s", line)
        ran_any = False
        if answer.remediation is not None:
            fingerprint = posture.fingerprint()
            wanted = [
                s.action
                for s in answer.remediation.steps
                if s.action and (s.action, fingerprint) not in self._actions_done
            ]
            if wanted:
                for action in wanted:
                    self._actions_done.add((action, fingerprint))
                steps = tuple(s for s in answer.remediation.steps if s.action in wanted)
                results = run_actions(
                    replace(answer.remediation, steps=steps),
                    self.settings.actions,
                    self._run,
                )
                for result in results:
                    log.info(
                        "action %s: %s",
                        result.action,
                        "done" if result.succeeded else f"failed ({result.message})",
                    )
                    ran_any = ran_any or result.succeeded
                status["actions"] = [
                    {"action": r.action, "succeeded": r.succeeded, "detail": r.message}
                    for r in results
                ]
        self._write_status(status)
        if ran_any:
            self.next_report = self._clock()  # report again at once: the fix may have worked
        if answer.update is not None:
            self._update(answer.update)

    def _update(self, offer: AgentUpdate) -> None:
        key = offer.sha256.hex()
        if key in self._refused:
            return
        why = self._try_update(offer)
        if why:
            self._refused[key] = why
            self._pending_note = f"update to {offer.version} refused: {why}"
            log.warning("update to %s refused: %s", offer.version, why)

    def _try_update(self, offer: AgentUpdate) -> str:
        settings = self.settings
        if settings.archive is None or settings.update_key is None:
            return "this agent does not run from a signed build"
        if offer.platform != settings.platform:
            return f"the build is for {offer.platform}, not {settings.platform}"
        try:
            check_newer(offer.version, settings.version)
            build = self._fetch(offer.path)
            if hashlib.sha256(build).digest() != offer.sha256:
                return "the download does not match the offered SHA-256"
            info = verify_build(build, settings.update_key)
            if info.get("platform", settings.platform) != settings.platform:
                return f"the build is for {info.get('platform')}"
            check_newer(info["version"], settings.version)
        except UpdateRefused as exc:
            return str(exc)
        except (OSError, urllib.error.URLError, ValueError) as exc:
            return f"download failed: {exc}"
        try:
            install(build, settings.archive)
        except OSError as exc:
            return f"cannot replace {settings.archive}: {exc}"
        log.info("updated to %s; starting again", info["version"])
        self._restart(settings.archive)
        return ""

    def _download(self, path: str) -> bytes:
        endpoint = self.settings.endpoint
        url = f"https://{endpoint.host}{path}"
        context = tls_context(replace(endpoint, certificate=None))
        with urllib.request.urlopen(url, timeout=endpoint.timeout, context=context) as reply:
            data: bytes = reply.read(MAX_BUILD + 1)
        if len(data) > MAX_BUILD:
            raise ValueError(f"the build is larger than {MAX_BUILD} bytes")
        return data

    def _write_status(self, status: Mapping[str, object]) -> None:
        path = self.settings.status_file
        if path is None:
            return
        record = {"time": time.time(), "version": self.settings.version, **status}
        try:
            temporary = path.with_name(f".{path.name}.new")
            temporary.write_text(json.dumps(record, indent=2) + "\n")
            os.replace(temporary, path)
        except OSError as exc:
            log.warning("status file %s not written: %s", path, exc)


def run_forever(agent: Agent, wait: Callable[[float], list[str]], *, once: bool = False) -> None:
    """The loop: a step, then wait for a change signal or the next due report."""
    changes: list[str] = []
    while True:
        agent.step(changes)
        if once:
            return
        changes = wait(max(0.0, agent.next_report - agent._clock()))
        if changes:
            log.info("local change: %s", ", ".join(changes))


def _without_change(posture: Posture) -> Posture:
    return _with_change(posture, False, "")


def _with_change(posture: Posture, changed: bool, change: str) -> Posture:
    """The posture with its AgentInfo saying whether (and what) a local change prompted it
    (kept out of the comparison between collections)."""
    attributes = posture.sent.get(NEA_CLIENT)
    if not attributes:
        return posture
    updated = tuple(
        AgentInfo(a.platform, a.version, changed, change) if isinstance(a, AgentInfo) else a
        for a in attributes
    )
    return replace(posture, sent={**posture.sent, NEA_CLIENT: updated})


def _exec_again(archive: Path) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, str(archive), *sys.argv[1:]])


# -- settings from the build and the command line


def running_archive() -> Path | None:
    """The build (zipapp) this code runs from, or None when run from source."""
    loader = globals().get("__loader__")
    archive = getattr(loader, "archive", None)
    return Path(archive) if archive else None


def build_settings(archive: Path | None) -> tuple[dict[str, str], bytes | None]:
    """The build's BUILD_INFO keys and its CA certificate (PEM), if it has them."""
    if archive is None:
        return {}, None
    with zipfile.ZipFile(archive) as zipped:
        text = zipped.read(BUILD_INFO).decode("utf-8")
        ca = zipped.read(CA_FILE) if CA_FILE in zipped.namelist() else None
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line), ca


def parse_arguments(argv: Sequence[str], built: Mapping[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="netaccess-agent", description=__doc__.split("\n")[0])
    parser.add_argument("--appliance", default=built.get("appliance"), help="host name or IP")
    parser.add_argument("--port", type=int, default=int(built.get("port", "271")))
    parser.add_argument("--ca", type=Path, help="the appliance's CA certificate (PEM)")
    parser.add_argument("--user", help="sign in as USER (name or name@realm; SASL PLAIN)")
    parser.add_argument("--password-file", type=Path, help="the password, on its first line")
    parser.add_argument("--certificate", type=Path, help="a client certificate (PEM, with key)")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between reports")
    parser.add_argument("--config", type=Path, help="TOML: [actions] name = [argv...]")
    parser.add_argument("--status-file", type=Path, help="where the last answer is written")
    parser.add_argument("--once", action="store_true", help="report once and exit")
    parser.add_argument("--no-watch", action="store_true", help="no local change signals")
    parser.add_argument(
        "--device-info", type=Path, help="iOS: the device information file the MDM writes"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    arguments = parser.parse_args(list(argv))
    if not arguments.appliance:
        parser.error("--appliance is required (this is not a build that names one)")
    if arguments.interval <= 0:
        parser.error("--interval must be positive")
    return arguments


def allowed_actions(config: Path | None, platform: str = "linux") -> dict[str, tuple[str, ...]]:
    """The endpoint's allowed actions: the [actions] table of `config`, else the platform's
    defaults (none for a platform without them)."""
    if config is None:
        return dict(DEFAULT_ACTIONS.get(platform, {}))
    try:
        table = tomllib.loads(config.read_text(encoding="utf-8")).get("actions", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SystemExit(f"netaccess-agent: {config}: {exc}") from None
    if not isinstance(table, dict):
        raise SystemExit(f"netaccess-agent: {config}: actions: expected a table")
    actions: dict[str, tuple[str, ...]] = {}
    for name, argv in table.items():
        if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)):
            raise SystemExit(f"netaccess-agent: {config}: actions.{name}: expected [argv...]")
        actions[name] = tuple(argv)
    return actions


def main(argv: Sequence[str] | None = None) -> int:
    archive = running_archive()
    built, ca_pem = build_settings(archive)
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv, built)
    logging.basicConfig(
        level=logging.DEBUG if arguments.verbose else logging.INFO,
        format="%(asctime)s netaccess-agent %(levelname)s %(message)s",
    )
    credentials = None
    if arguments.user:
        if arguments.password_file is None:
            raise SystemExit("netaccess-agent: --user needs --password-file")
        password = arguments.password_file.read_text().splitlines()[0]
        credentials = Credentials(arguments.user, password)
    endpoint = Endpoint(
        arguments.appliance,
        arguments.port,
        ca=arguments.ca,
        ca_pem=ca_pem.decode("ascii", "replace") if ca_pem is not None else None,
        credentials=credentials,
        certificate=arguments.certificate,
    )
    key = built.get("update_key")
    try:
        platform = built.get("platform") or current_platform()
    except CollectError as exc:
        raise SystemExit(f"netaccess-agent: {exc}") from None
    settings = Settings(
        endpoint,
        version=built.get("version", SOURCE_VERSION),
        platform=platform,
        interval=arguments.interval,
        status_file=arguments.status_file,
        actions=allowed_actions(arguments.config, platform),
        update_key=bytes.fromhex(key) if key else None,
        archive=archive,
    )
    collector = collector_for(settings, arguments.device_info)
    agent = Agent(settings, collector)
    log.info(
        "agent %s for %s, reporting to %s:%d every %g s",
        settings.version,
        settings.platform,
        endpoint.host,
        endpoint.port,
        settings.interval,
    )
    if arguments.once or arguments.no_watch or settings.platform != "linux":
        # Change signals are Linux's (inotify, nftables netlink); elsewhere the interval.
        run_forever(agent, _sleeper, once=arguments.once)
        return 0 if agent.failures == 0 else 1
    from netaccess.agent.watch import ChangeWatcher

    with ChangeWatcher() as watcher:
        for problem in watcher.unavailable:
            log.info("no change signal for %s (the interval covers it)", problem)
        run_forever(agent, watcher.wait)
    return 0


def collector_for(settings: Settings, device_info: Path | None = None) -> Collector:
    from netaccess.agent.platforms import collector_for as platform_collector

    try:
        return platform_collector(
            settings.platform, agent_version=settings.version, device_info=device_info
        )
    except CollectError as exc:
        raise SystemExit(f"netaccess-agent: {exc}") from None


def _sleeper(seconds: float) -> list[str]:
    time.sleep(seconds)
    return []


if __name__ == "__main__":
    sys.exit(main())
