"""The agent's main loop with fakes for the collector, the appliance, the clock, commands,
downloads and restarting: when it reports and what it says, the retry backoff, the fixes'
actions once per posture, the status file, and which offered updates it installs."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from netaccess.agent.client import Answer, Endpoint
from netaccess.agent.collect import FIREWALL, NEA_CLIENT, OS, CommandOutput, Posture
from netaccess.agent.conversation import PostureClientError, PostureOutcome
from netaccess.agent.main import (
    CA_FILE,
    RETRY_FIRST,
    Agent,
    Settings,
    _with_change,
    _without_change,
    allowed_actions,
    build_settings,
    parse_arguments,
    run_forever,
)
from netaccess.agent.remediate import LINUX_ACTIONS
from netaccess.agent.update import BUILD_INFO, sign_build
from netaccess.proto.tnc.pa import ProductInformation
from netaccess.proto.tnc.pb import AccessRecommendation, AssessmentResult
from netaccess.proto.tnc.vendor import (
    AgentInfo,
    AgentUpdate,
    Firewall,
    FirewallProfile,
    Remediation,
    RemediationStep,
)

KEY = Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
INTERVAL = 60.0
COMPLIANT = PostureOutcome(AssessmentResult.COMPLIANT, AccessRecommendation.ALLOWED, (), (), 1)
FAILED = PostureOutcome(
    AssessmentResult.MAJOR_NON_COMPLIANCE,
    AccessRecommendation.QUARANTINED,
    ("linux/fw failed: default: off (required: enabled)",),
    ("Turn the firewall on",),
    1,
)
FIXES = Remediation(
    (
        RemediationStep("trigger_patch_manager", "linux", "patched", "Install updates.", ""),
        RemediationStep("enable_firewall", "linux", "fw", "Turn it on.", "https://help/fw"),
    )
)
PATCH_NOW = {"trigger_patch_manager": ("/usr/local/bin/patch-now",)}


def posture(firewall: bool = True, os_name: str = "Debian") -> Posture:
    return Posture(
        "linux",
        {
            OS: (ProductInformation(0, 0, os_name),),
            FIREWALL: (Firewall("nftables", (FirewallProfile("default", firewall),)),),
            NEA_CLIENT: (AgentInfo("linux", "1.0.0"),),
        },
    )


class Collector:
    platform = "linux"

    def __init__(self) -> None:
        self.posture = posture()

    def collect(self) -> Posture:
        return self.posture


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Appliance:
    """The fake `send`: records what the agent reported, answers as told (or fails)."""

    def __init__(self) -> None:
        self.reports: list[Posture] = []
        self.answer = Answer(COMPLIANT, None, None)
        self.failure: str | None = None

    def __call__(self, sent: Posture, endpoint: Endpoint) -> Answer:
        if self.failure is not None:
            raise PostureClientError(self.failure)
        self.reports.append(sent)
        return self.answer

    @property
    def info(self) -> AgentInfo:
        (info,) = (a for a in self.reports[-1].sent[NEA_CLIENT] if isinstance(a, AgentInfo))
        return info


class Commands:
    def __init__(self, status: int = 0) -> None:
        self.status = status
        self.ran: list[tuple[str, ...]] = []

    def __call__(self, argv: Sequence[str]) -> CommandOutput:
        self.ran.append(tuple(argv))
        return CommandOutput(self.status, "patched\n")


class Portal:
    """The fake `fetch`: serves one build and counts downloads."""

    def __init__(self, build: bytes = b"") -> None:
        self.build = build
        self.fetched: list[str] = []

    def __call__(self, path: str) -> bytes:
        self.fetched.append(path)
        return self.build


class Fixture:
    def __init__(self, tmp_path: Path, **settings: object) -> None:
        self.collector = Collector()
        self.clock = Clock()
        self.appliance = Appliance()
        self.commands = Commands()
        self.portal = Portal()
        self.restarted: list[Path] = []
        self.status_file = tmp_path / "status.json"
        self.settings = Settings(
            Endpoint("portal.example"),
            version="1.0.0",
            interval=INTERVAL,
            status_file=self.status_file,
            **settings,  # type: ignore[arg-type]
        )
        self.agent = Agent(
            self.settings,
            self.collector,
            send=self.appliance,
            fetch=self.portal,
            run=self.commands,
            restart=self.restarted.append,
            clock=self.clock,
        )

    def status(self) -> dict[str, object]:
        loaded: dict[str, object] = json.loads(self.status_file.read_text())
        return loaded


@pytest.fixture
def agent(tmp_path: Path) -> Fixture:
    return Fixture(tmp_path)


def build(version: str = "1.1.0", platform: str = "linux") -> bytes:
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as zf:
        zf.writestr(BUILD_INFO, f"version={version}\nplatform={platform}\n")
        zf.writestr("__main__.py", f"print('agent {version}')\n")
    return data.getvalue()


def offer(data: bytes, version: str = "1.1.0", platform: str = "linux") -> AgentUpdate:
    return AgentUpdate(
        hashlib.sha256(data).digest(), platform, version, f"/agent/download/{platform}/{version}/a"
    )


# -- when it reports


def test_the_first_step_reports(agent: Fixture) -> None:
    assert agent.agent.step() is True
    assert len(agent.appliance.reports) == 1
    assert agent.agent.next_report == agent.clock.now + INTERVAL


def test_an_unchanged_posture_is_not_reported_before_the_interval(agent: Fixture) -> None:
    agent.agent.step()
    agent.clock.now += INTERVAL - 1
    assert agent.agent.step() is False
    assert len(agent.appliance.reports) == 1


def test_an_unchanged_posture_is_reported_once_the_interval_is_up(agent: Fixture) -> None:
    agent.agent.step()
    agent.clock.now += INTERVAL
    assert agent.agent.step() is True
    assert len(agent.appliance.reports) == 2
    assert agent.appliance.info == AgentInfo("linux", "1.0.0", False, "")


def test_a_signalled_change_is_reported_at_once_naming_the_changed_attributes(
    agent: Fixture,
) -> None:
    agent.agent.step()
    agent.clock.now += 1
    agent.collector.posture = posture(firewall=False)
    assert agent.agent.step(["firewall"]) is True
    assert agent.appliance.info == AgentInfo("linux", "1.0.0", True, "Firewall")


def test_several_changed_attributes_are_all_named(agent: Fixture) -> None:
    agent.agent.step()
    agent.collector.posture = posture(firewall=False, os_name="Ubuntu")
    agent.agent.step(["firewall", "installed packages"])
    assert agent.appliance.info.change == "Firewall, ProductInformation"


def test_a_change_found_without_a_signal_is_reported_at_once_without_change_text(
    agent: Fixture,
) -> None:
    agent.agent.step()
    agent.clock.now += 1
    agent.collector.posture = posture(firewall=False)
    assert agent.agent.step() is True
    assert agent.appliance.info == AgentInfo("linux", "1.0.0", False, "")


def test_a_signal_without_a_posture_change_reports_nothing_before_the_interval(
    agent: Fixture,
) -> None:
    agent.agent.step()
    agent.clock.now += 1
    assert agent.agent.step(["firewall"]) is False
    assert len(agent.appliance.reports) == 1


def test_the_collectors_own_change_flag_does_not_count_as_a_posture_change(
    agent: Fixture,
) -> None:
    agent.agent.step()
    agent.collector.posture = _with_change(posture(), True, "Firewall")
    assert agent.agent.step() is False


# -- an unreachable appliance


def test_a_failed_report_backs_off_doubling_up_to_the_interval(agent: Fixture) -> None:
    agent.appliance.failure = "cannot talk to portal.example:271: refused"
    waits = []
    for _ in range(7):
        assert agent.agent.step() is True
        waits.append(agent.agent.next_report - agent.clock.now)
        agent.clock.now = agent.agent.next_report
    assert waits == [RETRY_FIRST, 4.0, 8.0, 16.0, 32.0, INTERVAL, INTERVAL]
    assert agent.agent.failures == 7


def test_the_loop_waits_for_the_backoff_after_a_failure(agent: Fixture) -> None:
    agent.appliance.failure = "refused"
    waited: list[float] = []

    def wait(timeout: float) -> list[str]:
        waited.append(timeout)
        agent.clock.now += timeout
        if len(waited) == 3:
            raise KeyboardInterrupt
        return []

    with pytest.raises(KeyboardInterrupt):
        run_forever(agent.agent, wait)
    assert waited == [RETRY_FIRST, 2 * RETRY_FIRST, 4 * RETRY_FIRST]


def test_after_a_failure_the_next_report_is_in_full_and_the_backoff_resets(
    agent: Fixture,
) -> None:
    agent.agent.step()
    agent.collector.posture = posture(firewall=False)
    agent.appliance.failure = "refused"
    agent.agent.step(["firewall"])
    assert agent.agent.reported is None
    agent.appliance.failure = None
    agent.clock.now = agent.agent.next_report
    assert agent.agent.step() is True
    # nothing to compare with: the whole posture again, no change named
    assert agent.appliance.reports[-1].sent[FIREWALL] == posture(firewall=False).sent[FIREWALL]
    assert agent.appliance.info == AgentInfo("linux", "1.0.0", False, "")
    assert agent.agent.failures == 0
    assert agent.agent.next_report == agent.clock.now + INTERVAL


def test_a_failed_report_is_written_to_the_status_file(agent: Fixture) -> None:
    agent.appliance.failure = "cannot talk to portal.example:271: refused"
    agent.agent.step()
    status = agent.status()
    assert status["error"] == "cannot talk to portal.example:271: refused"
    assert status["version"] == "1.0.0"


# -- fixes and their actions


def test_the_status_file_holds_the_answer_the_fixes_and_the_actions(tmp_path: Path) -> None:
    fixture = Fixture(tmp_path, actions=PATCH_NOW)
    fixture.appliance.answer = Answer(FAILED, FIXES, None)
    fixture.agent.step()
    status = fixture.status()
    assert isinstance(status.pop("time"), float)
    assert status == {
        "version": "1.0.0",
        "result": "major_non_compliance",
        "recommendation": "quarantined",
        "reasons": ["linux/fw failed: default: off (required: enabled)"],
        "fixes": ["linux/patched: Install updates.", "linux/fw: Turn it on. (https://help/fw)"],
        "actions": [
            {"action": "trigger_patch_manager", "succeeded": True, "detail": "patched\n"},
            {
                "action": "enable_firewall",
                "succeeded": False,
                "detail": "not allowed on this endpoint",
            },
        ],
    }
    assert not list(tmp_path.glob(".status.json*"))  # the temporary file was renamed


def test_a_compliant_answer_has_no_fixes_and_no_recommendation_is_null(agent: Fixture) -> None:
    outcome = PostureOutcome(AssessmentResult.COMPLIANT, None, (), (), 1)
    agent.appliance.answer = Answer(outcome, None, None)
    agent.agent.step()
    status = agent.status()
    assert (status["result"], status["recommendation"]) == ("compliant", None)
    assert (status["fixes"], status["actions"]) == ([], [])


def test_only_allowed_actions_run(tmp_path: Path) -> None:
    fixture = Fixture(tmp_path, actions=PATCH_NOW)
    fixture.appliance.answer = Answer(FAILED, FIXES, None)
    fixture.agent.step()
    assert fixture.commands.ran == [("/usr/local/bin/patch-now",)]


def test_a_successful_action_makes_the_next_report_due_at_once(tmp_path: Path) -> None:
    fixture = Fixture(tmp_path, actions=PATCH_NOW)
    fixture.appliance.answer = Answer(FAILED, FIXES, None)
    fixture.agent.step()
    assert fixture.agent.next_report == fixture.clock.now
    assert fixture.agent.step() is True
    assert len(fixture.appliance.reports) == 2


def test_a_failed_action_leaves_the_next_report_at_the_interval(tmp_path: Path) -> None:
    fixture = Fixture(tmp_path, actions=PATCH_NOW)
    fixture.commands.status = 1
    fixture.appliance.answer = Answer(FAILED, FIXES, None)
    fixture.agent.step()
    assert fixture.agent.next_report == fixture.clock.now + INTERVAL
    assert fixture.status()["actions"][0]["succeeded"] is False  # type: ignore[index]


def test_actions_run_once_per_posture_and_again_when_it_changes(tmp_path: Path) -> None:
    fixture = Fixture(tmp_path, actions=PATCH_NOW)
    fixture.appliance.answer = Answer(FAILED, FIXES, None)
    fixture.agent.step()
    fixture.agent.step()  # due at once after the action; the same posture
    fixture.clock.now += INTERVAL
    fixture.agent.step()
    assert len(fixture.appliance.reports) == 3
    assert len(fixture.commands.ran) == 1
    assert fixture.status()["actions"] == []
    fixture.collector.posture = posture(firewall=False)
    fixture.agent.step()
    assert len(fixture.commands.ran) == 2


# -- updates


def test_an_update_is_refused_when_not_running_from_a_build(agent: Fixture) -> None:
    data = build()
    agent.appliance.answer = Answer(COMPLIANT, None, offer(data))
    agent.agent.step()
    assert agent.portal.fetched == []
    agent.clock.now += INTERVAL
    agent.agent.step()
    assert agent.appliance.info == AgentInfo(
        "linux",
        "1.0.0",
        False,
        "update to 1.1.0 refused: this agent does not run from a signed build",
    )


def test_a_refused_update_is_named_once_and_not_fetched_again(tmp_path: Path) -> None:
    fixture = updating(tmp_path)
    data = build()
    fixture.portal.build = data + b"tampered"
    fixture.appliance.answer = Answer(COMPLIANT, None, offer(data))
    for _ in range(3):
        fixture.agent.step()
        fixture.clock.now += INTERVAL
    assert len(fixture.portal.fetched) == 1
    assert fixture.appliance.info.change == ""
    notes = [r.sent[NEA_CLIENT][0].change for r in fixture.appliance.reports]  # type: ignore[attr-defined]
    assert notes == [
        "",
        "update to 1.1.0 refused: the download does not match the offered SHA-256",
        "",
    ]


def test_a_refused_update_is_told_after_the_changes_of_a_signalled_report(
    tmp_path: Path,
) -> None:
    fixture = updating(tmp_path)
    fixture.appliance.answer = Answer(COMPLIANT, None, offer(build(), version="0.9.0"))
    fixture.agent.step()
    fixture.collector.posture = posture(firewall=False)
    fixture.agent.step(["firewall"])
    assert fixture.appliance.info == AgentInfo(
        "linux",
        "1.0.0",
        True,
        "Firewall; update to 0.9.0 refused: version 0.9.0 is not newer than the running 1.0.0",
    )


def updating(tmp_path: Path) -> Fixture:
    archive = tmp_path / "netaccess-agent.pyz"
    archive.write_bytes(b"the running build")
    return Fixture(tmp_path, update_key=PUBLIC, archive=archive)


def refusal(fixture: Fixture) -> str:
    fixture.clock.now += INTERVAL
    fixture.agent.step()
    return fixture.appliance.info.change


def test_an_update_whose_download_does_not_match_its_sha256_is_refused(tmp_path: Path) -> None:
    fixture = updating(tmp_path)
    fixture.portal.build = sign_build(build(), KEY)
    fixture.appliance.answer = Answer(COMPLIANT, None, offer(sign_build(build("1.2.0"), KEY)))
    fixture.agent.step()
    assert refusal(fixture).endswith("the download does not match the offered SHA-256")
    assert fixture.restarted == []
    assert (tmp_path / "netaccess-agent.pyz").read_bytes() == b"the running build"


def test_an_update_signed_with_another_key_is_refused(tmp_path: Path) -> None:
    fixture = updating(tmp_path)
    fixture.portal.build = sign_build(build(), Ed25519PrivateKey.generate())
    fixture.appliance.answer = Answer(COMPLIANT, None, offer(fixture.portal.build))
    fixture.agent.step()
    assert refusal(fixture) == (
        "update to 1.1.0 refused: the build's signature does not verify with this agent's key"
    )
    assert fixture.restarted == []


def test_an_unsigned_update_is_refused(tmp_path: Path) -> None:
    fixture = updating(tmp_path)
    fixture.portal.build = build()
    fixture.appliance.answer = Answer(COMPLIANT, None, offer(fixture.portal.build))
    fixture.agent.step()
    assert refusal(fixture) == "update to 1.1.0 refused: the build carries no signature"


def test_an_offered_downgrade_is_refused_without_a_download(tmp_path: Path) -> None:
    fixture = updating(tmp_path)
    fixture.portal.build = sign_build(build("0.9.0"), KEY)
    fixture.appliance.answer = Answer(COMPLIANT, None, offer(fixture.portal.build, "0.9.0"))
    fixture.agent.step()
    assert refusal(fixture) == (
        "update to 0.9.0 refused: version 0.9.0 is not newer than the running 1.0.0"
    )
    assert fixture.portal.fetched == []


def test_a_build_older_than_its_offer_is_refused(tmp_path: Path) -> None:
    fixture = updating(tmp_path)
    fixture.portal.build = sign_build(build("1.0.0"), KEY)
    fixture.appliance.answer = Answer(COMPLIANT, None, offer(fixture.portal.build, "2.0.0"))
    fixture.agent.step()
    assert refusal(fixture) == (
        "update to 2.0.0 refused: version 1.0.0 is not newer than the running 1.0.0"
    )
    assert fixture.restarted == []


def test_an_update_for_another_platform_is_refused(tmp_path: Path) -> None:
    fixture = updating(tmp_path)
    fixture.portal.build = sign_build(build(platform="windows"), KEY)
    fixture.appliance.answer = Answer(
        COMPLIANT, None, offer(fixture.portal.build, platform="windows")
    )
    fixture.agent.step()
    assert refusal(fixture) == "update to 1.1.0 refused: the build is for windows, not linux"
    assert fixture.portal.fetched == []


def test_a_signed_build_for_another_platform_offered_as_ours_is_refused(tmp_path: Path) -> None:
    fixture = updating(tmp_path)
    fixture.portal.build = sign_build(build(platform="windows"), KEY)
    fixture.appliance.answer = Answer(COMPLIANT, None, offer(fixture.portal.build))
    fixture.agent.step()
    assert refusal(fixture) == "update to 1.1.0 refused: the build is for windows"


def test_a_failed_download_is_refused_with_why(tmp_path: Path) -> None:
    fixture = updating(tmp_path)

    def unreachable(path: str) -> bytes:
        raise OSError("connection refused")

    fixture.agent._fetch = unreachable
    fixture.appliance.answer = Answer(COMPLIANT, None, offer(build()))
    fixture.agent.step()
    assert refusal(fixture) == "update to 1.1.0 refused: download failed: connection refused"


def test_a_good_newer_signed_build_is_installed_and_the_agent_restarts(tmp_path: Path) -> None:
    fixture = updating(tmp_path)
    fixture.portal.build = sign_build(build("1.1.0"), KEY)
    fixture.appliance.answer = Answer(COMPLIANT, None, offer(fixture.portal.build))
    fixture.agent.step()
    archive = tmp_path / "netaccess-agent.pyz"
    assert archive.read_bytes() == fixture.portal.build
    assert fixture.portal.fetched == ["/agent/download/linux/1.1.0/a"]
    assert fixture.restarted == [archive]
    assert refusal(fixture) == ""


# -- the change note on AgentInfo


def test_with_change_replaces_only_the_agent_info() -> None:
    changed = _with_change(posture(), True, "Firewall")
    assert changed.sent[NEA_CLIENT] == (AgentInfo("linux", "1.0.0", True, "Firewall"),)
    assert changed.sent[FIREWALL] == posture().sent[FIREWALL]
    assert _without_change(changed) == posture()


def test_a_posture_without_an_nea_client_component_is_left_as_it_is() -> None:
    bare = Posture("linux", {OS: (ProductInformation(0, 0, "Debian"),)})
    assert _with_change(bare, True, "x") is bare


# -- settings


def test_a_build_carries_its_settings_and_ca(tmp_path: Path) -> None:
    archive = tmp_path / "agent.pyz"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(BUILD_INFO, "version=1.2.0\nappliance=portal.example\nupdate_key=ab=cd\n")
        zf.writestr(CA_FILE, "-----BEGIN CERTIFICATE-----\n")
    assert build_settings(archive) == (
        {"version": "1.2.0", "appliance": "portal.example", "update_key": "ab=cd"},
        b"-----BEGIN CERTIFICATE-----\n",
    )
    assert build_settings(None) == ({}, None)


def test_a_build_without_a_ca_has_none(tmp_path: Path) -> None:
    archive = tmp_path / "agent.pyz"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(BUILD_INFO, "version=1.2.0\n")
    assert build_settings(archive) == ({"version": "1.2.0"}, None)


def test_without_a_config_the_linux_actions_are_allowed() -> None:
    assert allowed_actions(None) == LINUX_ACTIONS


def test_the_config_actions_table_replaces_the_defaults(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('[actions]\ntrigger_patch_manager = ["/usr/bin/apt-get", "upgrade"]\n')
    assert allowed_actions(config) == {"trigger_patch_manager": ("/usr/bin/apt-get", "upgrade")}


def test_a_config_without_actions_allows_none(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text("# nothing\n")
    assert allowed_actions(config) == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[actions]\nstart_antivirus = 'systemctl start clamav'\n", "actions.start_antivirus:"),
        ("[actions]\nstart_antivirus = []\n", "actions.start_antivirus: expected [argv...]"),
        ("[actions]\nstart_antivirus = ['ok', 3]\n", "actions.start_antivirus: expected"),
        ("actions = 'freshclam'\n", "actions: expected a table"),
    ],
)
def test_a_bad_action_value_exits_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(text)
    with pytest.raises(SystemExit) as exited:
        allowed_actions(config)
    assert str(exited.value).startswith(f"netaccess-agent: {config}: ")
    assert message in str(exited.value)


def test_a_config_that_is_not_toml_exits_naming_the_file(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text("[actions\n")
    with pytest.raises(SystemExit, match=r"agent\.toml: "):
        allowed_actions(config)
    with pytest.raises(SystemExit, match=r"missing\.toml: "):
        allowed_actions(tmp_path / "missing.toml")
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b"# caf\xe9\n")
    with pytest.raises(SystemExit, match=r"latin\.toml: "):
        allowed_actions(latin)


def test_the_build_names_the_appliance_and_port_and_options_override_them() -> None:
    built = {"appliance": "portal.example", "port": "2710"}
    arguments = parse_arguments([], built)
    assert (arguments.appliance, arguments.port, arguments.interval) == ("portal.example", 2710, 60)
    arguments = parse_arguments(["--appliance", "other", "--port", "271", "--once"], built)
    assert (arguments.appliance, arguments.port, arguments.once) == ("other", 271, True)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "--appliance is required"),
        (["--appliance", "p", "--interval", "0"], "--interval must be positive"),
        (["--appliance", "p", "--port", "x"], "argument --port: invalid int value"),
        (["--appliance", "p", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_arguments_exit_with_a_usage_error(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_arguments(argv, {})
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_the_collector_is_the_builds_platforms_and_ios_without_its_file_exits_with_why() -> None:
    from netaccess.agent.macos import MacosCollector
    from netaccess.agent.main import Settings, collector_for
    from netaccess.agent.windows import WindowsCollector

    endpoint = Endpoint("appliance.test")
    windows = collector_for(Settings(endpoint, version="1.0.0", platform="windows"))
    assert isinstance(windows, WindowsCollector)
    assert isinstance(collector_for(Settings(endpoint, platform="macos")), MacosCollector)
    with pytest.raises(SystemExit, match="device information file"):
        collector_for(Settings(endpoint, platform="ios"))
