"""The agent's remediation: fixes shown, allowed actions run once each, the rest refused."""

from __future__ import annotations

from collections.abc import Sequence

from netaccess.agent.collect import CollectError, CommandOutput
from netaccess.agent.remediate import describe, run_actions
from netaccess.proto.tnc.vendor import Remediation, RemediationStep

FIXES = Remediation(
    (
        RemediationStep("trigger_patch_manager", "linux", "patched", "Install updates.", ""),
        RemediationStep("enable_firewall", "linux", "firewall", "Turn it on.", "https://x/fw"),
        RemediationStep("trigger_patch_manager", "linux", "kernel", "", ""),
        RemediationStep("", "linux", "no-ssh", "Stop sshd.", ""),
    )
)


def test_each_fix_is_shown_with_its_rule_and_link() -> None:
    assert describe(FIXES) == [
        "linux/patched: Install updates.",
        "linux/firewall: Turn it on. (https://x/fw)",
        "linux/kernel: see your administrator",
        "linux/no-ssh: Stop sshd.",
    ]


def test_allowed_actions_run_once_and_others_are_refused() -> None:
    ran: list[Sequence[str]] = []

    def run(argv: Sequence[str]) -> CommandOutput:
        ran.append(tuple(argv))
        return CommandOutput(0, "done\n")

    results = run_actions(FIXES, {"trigger_patch_manager": ["/usr/local/bin/patch-now"]}, run)
    assert ran == [("/usr/local/bin/patch-now",)]
    assert [(r.action, r.succeeded, r.message) for r in results] == [
        ("trigger_patch_manager", True, "done\n"),
        ("enable_firewall", False, "not allowed on this endpoint"),
    ]


def test_an_action_that_cannot_run_is_reported_not_raised() -> None:
    def run(argv: Sequence[str]) -> CommandOutput:
        raise CollectError(f"{argv[0]} is not installed")

    (result,) = run_actions(
        Remediation((FIXES.steps[0],)), {"trigger_patch_manager": ["nope"]}, run
    )
    assert (result.status, result.message) == (None, "nope is not installed")


def test_windows_defaults_trigger_the_sccm_client_schedules_and_the_firewall() -> None:
    from netaccess.agent.main import allowed_actions
    from netaccess.agent.remediate import WINDOWS_ACTIONS

    actions = allowed_actions(None, "windows")
    assert actions == WINDOWS_ACTIONS
    script = actions["trigger_patch_manager"][-1]
    assert actions["trigger_patch_manager"][0] == "powershell.exe"
    # the updates scan, then the deployment evaluation, through WMI's SMS_Client
    assert script.index("000000000113") < script.index("000000000108")
    assert script.count("-ClassName SMS_Client -MethodName TriggerSchedule") == 2
    assert actions["enable_firewall"][-1] == "Set-NetFirewallProfile -All -Enabled True"
    assert allowed_actions(None, "ios") == {}
