"""What the agent does with the appliance's Remediation attribute: it shows each fix (the
failed rule, the instructions, the link), and runs the actions the local configuration
allows, each once, then the agent reports again.

Actions are commands the endpoint's owner configured (argv, no shell): the appliance names
an action, it never sends a command. Linux defaults: unattended-upgrade for
trigger_patch_manager, systemctl for ClamAV's daemon, freshclam for signatures; nothing
for enable_firewall (how a site turns its firewall on is its own choice). Windows defaults:
the Configuration Manager (SCCM) client's update schedules through WMI for
trigger_patch_manager (SMS_Client.TriggerSchedule: the software updates scan, then the
deployment evaluation), Windows Firewall on for every profile, and Defender's signature
update and real-time protection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from netaccess.agent.collect import CollectError, Run
from netaccess.proto.tnc.vendor import Remediation

LINUX_ACTIONS: dict[str, tuple[str, ...]] = {
    "trigger_patch_manager": ("unattended-upgrade",),
    "start_antivirus": ("systemctl", "start", "clamav-daemon"),
    "update_signatures": ("freshclam",),
}

# SMS_Client schedule ids: 113 is the Software Updates Scan Cycle, 108 the Software Updates
# Assignments Evaluation Cycle (Configuration Manager's client schedule list).
_SCCM_SCHEDULES = (
    "{00000000-0000-0000-0000-000000000113}",
    "{00000000-0000-0000-0000-000000000108}",
)
_POWERSHELL = ("powershell.exe", "-NoProfile", "-NonInteractive", "-Command")
WINDOWS_ACTIONS: dict[str, tuple[str, ...]] = {
    "trigger_patch_manager": (
        *_POWERSHELL,
        "; ".join(
            "Invoke-CimMethod -Namespace root/ccm -ClassName SMS_Client -MethodName"
            f" TriggerSchedule -Arguments @{{sScheduleID='{schedule}'}} | Out-Null"
            for schedule in _SCCM_SCHEDULES
        ),
    ),
    "enable_firewall": (*_POWERSHELL, "Set-NetFirewallProfile -All -Enabled True"),
    "start_antivirus": (*_POWERSHELL, "Set-MpPreference -DisableRealtimeMonitoring $false"),
    "update_signatures": (*_POWERSHELL, "Update-MpSignature"),
}

DEFAULT_ACTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "linux": LINUX_ACTIONS,
    "windows": WINDOWS_ACTIONS,
}


@dataclass(frozen=True, slots=True)
class ActionResult:
    action: str
    argv: tuple[str, ...]
    status: int | None  # None: it could not run (the message says why)
    message: str = ""

    @property
    def succeeded(self) -> bool:
        return self.status == 0


def describe(remediation: Remediation) -> list[str]:
    """One line per fix, for the user."""
    lines = []
    for step in remediation.steps:
        line = f"{step.policy}/{step.rule}: {step.instructions or 'see your administrator'}"
        if step.link:
            line += f" ({step.link})"
        lines.append(line)
    return lines


def run_actions(
    remediation: Remediation, allowed: Mapping[str, Sequence[str]], run: Run
) -> list[ActionResult]:
    """Run each allowed action the fixes name, once, in the order first named."""
    results = []
    for action in dict.fromkeys(step.action for step in remediation.steps if step.action):
        argv = tuple(allowed.get(action, ()))
        if not argv:
            results.append(ActionResult(action, (), None, "not allowed on this endpoint"))
            continue
        try:
            done = run(argv)
        except CollectError as exc:
            results.append(ActionResult(action, argv, None, str(exc)))
            continue
        results.append(ActionResult(action, argv, done.status, done.stdout[-500:]))
    return results
