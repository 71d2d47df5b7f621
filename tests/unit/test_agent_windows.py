"""The Windows collector on PowerShell outputs recorded in Windows PowerShell 5.1's
ConvertTo-Json layout (tests/fixtures/agent/windows), and what Host Checker makes of them."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netaccess.agent.collect import (
    ANTISPYWARE,
    ANTIVIRUS,
    FIREWALL,
    NEA_CLIENT,
    OS,
    PATCH_MANAGEMENT,
    CollectError,
    CommandOutput,
    Posture,
)
from netaccess.agent.windows import POWERSHELL, WindowsCollector, quote
from netaccess.policy.hostchecker import (
    CertificateFact,
    CertificateRule,
    Compliance,
    FileRule,
    FirewallRule,
    OsRule,
    PatchManagementRule,
    PatchRule,
    Platform,
    Policy,
    PortRule,
    PostureFacts,
    ProcessRule,
    ProtectionFact,
    ProtectionRule,
    RegistryRule,
    SoftwareRule,
    evaluate,
    facts_from_report,
)
from netaccess.policy.imv import reported
from netaccess.proto.tnc.pa import (
    ForwardingEnabled,
    ForwardingState,
    InstalledPackages,
    NumericVersion,
    OperationalResultCode,
    OperationalStatus,
    OperationalStatusCode,
    PaAttribute,
    PaMessage,
    PortFilter,
    PortFilterEntry,
    ProductInformation,
    StringVersion,
    pull_pa_message,
    push_pa_message,
)
from netaccess.proto.tnc.vendor import (
    AgentInfo,
    Antivirus,
    Certificates,
    FileHashes,
    Firewall,
    FirewallProfile,
    MissingPatch,
    PatchManagement,
    PatchSeverity,
    RegistryValue,
    RegistryValues,
    RegistryValueType,
    RunningProcesses,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "agent" / "windows"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
DEFENDER_DIR = "C:\\ProgramData\\Microsoft\\Windows Defender\\Platform\\4.18.25100.9008-0\\"
MSMPENG = DEFENDER_DIR + "MsMpEng.exe"
MSMPENG_SHA256 = "5a1f3c9e0b7d2a64c8e1f09b3d5a7c2e4f6b8d0a1c3e5f7092b4d6f8a0c2e4f6"

# Each script is known by a word only it holds; "" is an empty output (nothing listed).
ALL: dict[str, str | CommandOutput] = {
    "Win32_OperatingSystem": "os.json",
    "AntiVirusProduct": "security-center-antivirus.json",
    "AntiSpywareProduct": "security-center-antispyware.json",
    "FirewallProduct": "",
    "Get-MpComputerStatus": "defender-status.json",
    "Get-NetFirewallProfile": "firewall-profiles.json",
    "Microsoft.Update.Session": "windows-update.json",
    "root/ccm": "configuration-manager.json",
    "Get-HotFix": "hotfixes.json",
    "Uninstall": "software.json",
    "Win32_Process": "processes.json",
    "Get-NetTCPConnection": "ports.json",
    "GetValueKind": "registry.json",
    "Get-FileHash": "file-hashes.json",
    "Cert:": "certificates.json",
}


class Recorded:
    """A Run that answers each PowerShell script from the fixture its marker names."""

    def __init__(self, answers: dict[str, str | CommandOutput]) -> None:
        self.answers = answers
        self.scripts: list[str] = []

    def __call__(self, argv: Sequence[str]) -> CommandOutput:
        assert tuple(argv[:4]) == POWERSHELL and len(argv) == 5
        self.scripts.append(argv[4])
        for marker, answer in self.answers.items():
            if marker in argv[4]:
                if isinstance(answer, CommandOutput):
                    return answer
                return CommandOutput(0, (FIXTURES / answer).read_text() if answer else "")
        raise CollectError("powershell.exe is not installed")


def collector(run: Callable[[Sequence[str]], CommandOutput]) -> WindowsCollector:
    return WindowsCollector(agent_version="1.0.0", run=run, clock=NOW.timestamp, files=(MSMPENG,))


def collect(**changes: str | CommandOutput) -> Posture:
    return collector(Recorded({**ALL, **changes})).collect()


def facts_of(posture: Posture) -> PostureFacts:
    """What the appliance's Host Checker reads from this posture, after the wire."""
    found = []
    for part in (posture.sent, posture.held):
        for (vendor, subtype), attributes in part.items():
            message = pull_pa_message(push_pa_message(PaMessage(1, attributes)))
            found += [reported(vendor, subtype, a) for a in message.attributes]
    return facts_from_report(found)


def certificate_der(index: int) -> bytes:
    entries = json.loads((FIXTURES / "certificates.json").read_text())
    return base64.b64decode(entries[index]["RawData"])


@dataclass(frozen=True)
class FeedProduct:
    id: str
    name: str
    latest_version: str


@dataclass(frozen=True)
class FeedPatch:
    id: str
    product: str
    severity: str
    released: date
    fixed_version: str


class Catalog:
    """The November cumulative update, as a patch feed would list it."""

    windows = FeedProduct("windows-11-24h2", "Microsoft Windows 11 Enterprise", "10.0.26100.7296")
    cumulative = FeedPatch(
        "KB5070773", "windows-11-24h2", "critical", date(2026, 11, 10), "10.0.26100.7296"
    )

    def product_named(self, name: str, platform: str) -> FeedProduct | None:
        return self.windows if name == self.windows.name else None

    def product_by_id(self, product_id: str) -> FeedProduct | None:
        return self.windows if product_id == self.windows.id else None

    def patch(self, patch_id: str) -> FeedPatch | None:
        return self.cumulative if patch_id == self.cumulative.id else None


POLICY = Policy(
    "windows-baseline",
    Platform.WINDOWS,
    (
        OsRule("os", os="Windows 11", min_version="10.0.26100.7000", min_service_pack=0),
        SoftwareRule("chrome", product="Google Chrome", min_version="142.0"),
        SoftwareRule("november-ssu", product="KB5068861", min_version=""),
        PatchRule("cumulative", patches=("KB5070773",)),
        ProtectionRule("antivirus", max_signature_days=3),
        ProtectionRule("antispyware", max_signature_days=3, antispyware=True),
        FirewallRule("firewall", profiles=("domain", "private", "public")),
        PatchManagementRule("windows-update", product="Windows Update"),
        PatchManagementRule("sccm", product="SCCM"),
        ProcessRule("defender-engine", process="MsMpEng.exe"),
        FileRule("defender-binary", path=MSMPENG, sha256=MSMPENG_SHA256),
        RegistryRule(
            "uac",
            key=r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System",
            value_name="EnableLUA",
            data="1",
        ),
        CertificateRule("machine-certificate", issuer="Corp Issuing CA", subject="laptop-17"),
    ),
)


def failed(posture: Posture) -> set[str]:
    verdict = evaluate(POLICY, facts_of(posture), Catalog(), NOW)
    return {r.rule for r in verdict.trace if r.outcome.name == "FALSE"}


# --- the facts ---------------------------------------------------------------------------


def test_a_windows_11_endpoint_reports_its_os() -> None:
    posture = collect()
    assert posture.problems == ()
    assert posture.sent[OS][:5] == (
        ProductInformation(311, 0, "Microsoft Windows 11 Enterprise"),
        StringVersion("10.0.26100.7171", "26100.7171", "AMD64"),
        NumericVersion(10, 0, 26100, 0, 0),
        OperationalStatus(
            OperationalStatusCode.OPERATIONAL,
            OperationalResultCode.SUCCEEDED,
            datetime(2026, 11, 20, 7, 55, 12, tzinfo=UTC),
        ),
        ForwardingEnabled(ForwardingState.DISABLED),
    )


def test_listening_ports_and_registry_values_travel_with_the_os() -> None:
    ports, registry = collect().sent[OS][5:]
    tcp = [135, 139, 445, 5040, 49664]
    udp = [123, 137, 138, 5353]
    assert ports == PortFilter(
        tuple(PortFilterEntry(False, 6, p) for p in tcp)
        + tuple(PortFilterEntry(False, 17, p) for p in udp)
    )
    dword = RegistryValueType.DWORD
    assert registry == RegistryValues(
        (
            RegistryValue(
                r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System",
                "EnableLUA",
                dword,
                "1",
            ),
            RegistryValue(
                r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server",
                "fDenyTSConnections",
                dword,
                "1",
            ),
            RegistryValue(
                r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa", "LimitBlankPasswordUse", dword, "1"
            ),
        )
    )


def test_defender_is_reported_with_its_own_status_and_signature_age() -> None:
    posture = collect()
    defender = Antivirus(
        "Windows Defender",
        "Microsoft",
        "4.18.25100.9008",
        running=True,
        real_time_protection=True,
        signature_version="1.441.318.0",
        signature_age=4 * 3600 + 45 * 60 + 51,  # updated at 07:14:09, now 12:00:00
    )
    assert posture.sent[ANTIVIRUS] == (defender,)
    assert posture.sent[ANTISPYWARE] == (defender,)


def test_the_firewall_profiles_are_reported_by_name() -> None:
    profiles = (
        FirewallProfile("domain", True),
        FirewallProfile("private", True),
        FirewallProfile("public", True),
    )
    assert collect().sent[FIREWALL] == (Firewall("Windows Defender Firewall", profiles),)


def test_windows_update_and_configuration_manager_are_the_patch_managers() -> None:
    assert collect().sent[PATCH_MANAGEMENT] == (
        PatchManagement("Windows Update", True, 2 * 3600 + 28 * 60 + 20, ()),
        PatchManagement("Configuration Manager (SCCM)", True, 8 * 3600 + 59 * 60 + 48, ()),
    )


def test_the_agent_reports_processes_file_hashes_and_certificates() -> None:
    info, processes, files, certificates = collect().sent[NEA_CLIENT]
    assert info == AgentInfo("windows", "1.0.0", False, "")
    assert isinstance(processes, RunningProcesses)
    assert [p.name for p in processes.processes][:4] == [
        "System Idle Process",
        "System",
        "Registry",
        "smss.exe",
    ]
    defender = processes.processes[10]
    assert (defender.pid, defender.name, defender.path) == (3712, "MsMpEng.exe", MSMPENG)
    assert processes.processes[0].path == ""  # Windows does not say
    assert isinstance(files, FileHashes)
    assert [(f.path, f.sha256.hex()[:8]) for f in files.files] == [(MSMPENG, "5a1f3c9e")]
    assert isinstance(certificates, Certificates)
    machine, own = certificates.certificates
    assert (machine.store, machine.subject, machine.issuer, machine.not_after) == (
        "LocalMachine\\My",
        "CN=laptop-17.corp.example.com,O=Example Corp",
        "CN=Corp Issuing CA,O=Example Corp",
        datetime(2027, 6, 30, 9, 0, tzinfo=UTC),
    )
    assert machine.sha256 == hashlib.sha256(certificate_der(0)).digest()
    assert own.issuer == own.subject == "CN=WMSvc-SHA2-LAPTOP-17"


def test_installed_software_and_hotfixes_are_held_as_packages() -> None:
    (packages,) = collect().held[OS]
    assert isinstance(packages, InstalledPackages)
    found = dict(packages.packages)
    assert len(found) == 18  # 15 programs (64- and 32-bit keys) and 3 hotfixes
    assert found["Google Chrome"] == "142.0.7444.176"  # from WOW6432Node
    assert found["AT&T Global Network Client"] == "10.1.0.4"  # \u0026 in the JSON
    assert found["Windows PC Health Check"] == ""  # no DisplayVersion
    assert (found["KB5068861"], found["KB5069802"]) == ("2026-11-12", "")


def test_host_checker_reads_every_fact_of_the_report() -> None:
    facts = facts_of(collect())
    assert (facts.platform, facts.os_name, facts.os_version, facts.service_pack) == (
        Platform.WINDOWS,
        "Microsoft Windows 11 Enterprise",
        "10.0.26100.7171",
        0,
    )
    defender = ProtectionFact("Windows Defender", True, True, 17151)
    assert facts.antivirus == facts.antispyware == (defender,)
    assert facts.firewall_profiles == {"domain": True, "private": True, "public": True}
    assert facts.patch_managers is not None
    assert [(m.product, m.enabled, m.missing) for m in facts.patch_managers] == [
        ("Windows Update", True, ()),
        ("Configuration Manager (SCCM)", True, ()),
    ]
    assert facts.packages is not None and facts.packages["KB5066128"] == "2026-10-15"
    assert facts.processes is not None and ("MsMpEng.exe", MSMPENG) in facts.processes
    assert facts.files == {
        MSMPENG: "5a1f3c9e0b7d2a64c8e1f09b3d5a7c2e4f6b8d0a1c3e5f7092b4d6f8a0c2e4f6"
    }
    assert facts.registry is not None
    assert (
        facts.registry[(r"hklm\system\currentcontrolset\control\lsa", "limitblankpassworduse")]
        == "1"
    )
    assert facts.ports is not None and facts.ports[(6, 445)] is False  # open
    assert facts.certificates is not None and facts.certificates[0] == CertificateFact(
        "LocalMachine\\My",
        "CN=laptop-17.corp.example.com,O=Example Corp",
        "CN=Corp Issuing CA,O=Example Corp",
        "2027-06-30T09:00:00+00:00",
    )


def test_a_healthy_endpoint_passes_a_windows_policy() -> None:
    verdict = evaluate(POLICY, facts_of(collect()), Catalog(), NOW)
    assert [(r.rule, r.outcome.name) for r in verdict.trace if r.outcome.name != "TRUE"] == []
    assert verdict.compliance is Compliance.COMPLIANT


# --- bad endpoints -----------------------------------------------------------------------


def test_a_public_profile_switched_off_fails_the_firewall_rule() -> None:
    posture = collect(**{"Get-NetFirewallProfile": "firewall-profiles-public-off.json"})
    (firewall,) = posture.sent[FIREWALL]
    assert isinstance(firewall, Firewall)
    assert firewall.profiles[2] == FirewallProfile("public", False)
    assert failed(posture) == {"firewall"}


def test_stale_defender_signatures_fail_the_protection_rules() -> None:
    posture = collect(**{"Get-MpComputerStatus": "defender-status-stale.json"})
    (antivirus,) = posture.sent[ANTIVIRUS]
    assert isinstance(antivirus, Antivirus)
    assert (antivirus.signature_version, antivirus.signature_age) == (
        "1.439.2.0",
        19 * 86400 + 5 * 3600 + 57 * 60 + 9,
    )
    assert failed(posture) == {"antivirus", "antispyware"}


def test_missing_updates_are_listed_with_microsofts_severities() -> None:
    posture = collect(**{"Microsoft.Update.Session": "windows-update-missing.json"})
    windows_update, _ = posture.sent[PATCH_MANAGEMENT]
    assert windows_update == PatchManagement(
        "Windows Update",
        True,
        14 * 86400 + 2 * 3600 + 47 * 60 + 55,
        (
            MissingPatch("KB5070773", PatchSeverity.CRITICAL),
            MissingPatch("KB5070452", PatchSeverity.IMPORTANT),
            MissingPatch("KB890830", PatchSeverity.UNKNOWN),  # no MSRC rating
            MissingPatch("Intel Corporation - Extension - 1.2.0.1213", PatchSeverity.UNKNOWN),
        ),
    )
    assert failed(posture) == {"cumulative", "windows-update"}


def test_configuration_managers_pending_updates_take_windows_updates_severities() -> None:
    posture = collect(
        **{
            "Microsoft.Update.Session": "windows-update-missing.json",
            "root/ccm": "configuration-manager-pending.json",
        }
    )
    _, sccm = posture.sent[PATCH_MANAGEMENT]
    assert isinstance(sccm, PatchManagement)
    assert sccm.missing == (  # KB890830 is installed (ComplianceState 1)
        MissingPatch("KB5070773", PatchSeverity.CRITICAL),
        MissingPatch("KB5070452", PatchSeverity.IMPORTANT),
    )
    assert "sccm" in failed(posture)


def test_windows_update_switched_off_by_policy_is_reported_disabled() -> None:
    posture = collect(**{"Microsoft.Update.Session": "windows-update-disabled.json"})
    windows_update, _ = posture.sent[PATCH_MANAGEMENT]
    assert isinstance(windows_update, PatchManagement) and not windows_update.enabled
    assert failed(posture) == {"windows-update"}


def test_without_a_configuration_manager_client_only_windows_update_is_reported() -> None:
    posture = collect(**{"root/ccm": "configuration-manager-absent.json"})
    assert [p.product for p in posture.sent[PATCH_MANAGEMENT]] == ["Windows Update"]  # type: ignore[attr-defined]
    assert posture.problems == ()
    assert failed(posture) == {"sccm"}


def test_an_open_remote_desktop_port_fails_a_closed_port_rule() -> None:
    facts = facts_of(collect(**{"Get-NetTCPConnection": "ports-rdp-open.json"}))
    policy = Policy("no-rdp", Platform.WINDOWS, (PortRule("rdp", port=3389, open=False),))
    assert evaluate(policy, facts, None, NOW).compliance is Compliance.NON_COMPLIANT


def test_a_third_party_antivirus_is_reported_beside_a_passive_defender() -> None:
    posture = collect(
        **{
            "AntiVirusProduct": "security-center-antivirus-third-party.json",
            "Get-MpComputerStatus": "defender-status-passive.json",
            "FirewallProduct": "security-center-firewall-third-party.json",
        }
    )
    defender, sophos = posture.sent[ANTIVIRUS]
    assert isinstance(defender, Antivirus) and isinstance(sophos, Antivirus)
    assert (defender.running, defender.real_time_protection) == (True, False)
    assert sophos == Antivirus("Sophos Anti-Virus", "", "", True, True, "", None)
    assert posture.sent[FIREWALL][1] == Firewall(
        "Sophos Firewall", (FirewallProfile("default", True),)
    )
    # Security Center gives no signature age: an age rule cannot pass Sophos, nor fail it
    facts = facts_of(posture)
    rule = ProtectionRule("sophos", product="Sophos", max_signature_days=3)
    verdict = evaluate(Policy("av", Platform.WINDOWS, (rule,)), facts, None, NOW)
    assert verdict.compliance is Compliance.UNKNOWN


def test_without_security_center_defender_alone_is_reported() -> None:
    server = CommandOutput(1, (FIXTURES / "security-center-server.txt").read_text())
    posture = collect(AntiVirusProduct=server, AntiSpywareProduct=server, FirewallProduct=server)
    (antivirus,) = posture.sent[ANTIVIRUS]
    assert isinstance(antivirus, Antivirus)
    assert (antivirus.product, antivirus.running) == ("Microsoft Defender Antivirus", True)
    assert posture.problems == (
        "antivirus: root/SecurityCenter2: PowerShell exited 1",
        "anti-spyware: root/SecurityCenter2: PowerShell exited 1",
        "firewall products: root/SecurityCenter2: PowerShell exited 1",
    )


def test_security_centers_bits_decide_when_defender_cannot_be_asked() -> None:
    posture = collect(
        **{
            "AntiVirusProduct": "security-center-antivirus-third-party.json",
            "Get-MpComputerStatus": CommandOutput(1, ""),
        }
    )
    assert posture.sent[ANTIVIRUS] == (
        Antivirus("Windows Defender", "Microsoft", "", False, False, "", None),
        Antivirus("Sophos Anti-Virus", "", "", True, True, "", None),
    )
    assert posture.problems == ("defender: Get-MpComputerStatus: PowerShell exited 1",)


def test_registry_values_of_every_kind_become_text() -> None:
    posture = collect(GetValueKind="registry-kinds.json")
    registry = posture.sent[OS][-1]
    assert isinstance(registry, RegistryValues)
    assert [(v.name, v.value_type, v.data) for v in registry.values] == [
        ("Owner", RegistryValueType.SZ, "IT Operations"),
        ("Tools", RegistryValueType.EXPAND_SZ, "%ProgramFiles%\\Corp"),
        ("Mask", RegistryValueType.DWORD, "4294967295"),  # .NET reads DWORDs signed
        ("Stamp", RegistryValueType.QWORD, "133958124000000000"),
        ("Sites", RegistryValueType.MULTI_SZ, "hq\nlab"),
        ("Blob", RegistryValueType.BINARY, "deadbeef"),
    ]


def test_the_registry_script_quotes_what_it_is_given() -> None:
    run = Recorded(ALL)
    WindowsCollector(
        agent_version="1.0.0", run=run, registry_values=[(r"HKCU\Software\O'Brien", "Name")]
    ).registry()
    assert "K = 'HKCU\\Software\\O''Brien'" in run.scripts[0]
    assert "P = 'Registry::HKEY_CURRENT_USER\\Software\\O''Brien'" in run.scripts[0]
    assert quote("it\u2019s") == "'it\u2019\u2019s'"  # PowerShell ends strings there too


def test_nothing_configured_to_hash_or_read_is_not_asked() -> None:
    run = Recorded(ALL)
    posture = WindowsCollector(agent_version="1.0.0", run=run, registry_values=()).collect()
    assert not any("Get-FileHash" in s or "GetValueKind" in s for s in run.scripts)
    assert not any(isinstance(a, FileHashes | RegistryValues) for a in posture.sent[NEA_CLIENT])


# --- broken outputs ----------------------------------------------------------------------

TRUNCATED = (FIXTURES / "os.json").read_text()[:90]
ERROR_TEXT = "The term 'Get-NetTCPConnection' is not recognized as the name of a cmdlet\r\n"

# marker -> (what the problem starts with, a check that the fact is gone)
BROKEN: dict[str, tuple[str, Callable[[Posture], bool]]] = {
    "Win32_OperatingSystem": (
        "os: ",
        lambda p: not any(isinstance(a, ProductInformation) for a in p.sent[OS]),
    ),
    "Get-NetTCPConnection": (
        "ports: ",
        lambda p: not any(isinstance(a, PortFilter) for a in p.sent[OS]),
    ),
    "GetValueKind": (
        "registry: ",
        lambda p: not any(isinstance(a, RegistryValues) for a in p.sent[OS]),
    ),
    "Get-NetFirewallProfile": ("firewall: ", lambda p: FIREWALL not in p.sent),
    "FirewallProduct": ("firewall products: ", lambda p: len(p.sent[FIREWALL]) == 1),
    "Microsoft.Update.Session": (
        "windows update: ",
        lambda p: (
            [a.product for a in p.sent[PATCH_MANAGEMENT]]  # type: ignore[attr-defined]
            == ["Configuration Manager (SCCM)"]
        ),
    ),
    "root/ccm": (
        "configuration manager: ",
        lambda p: (
            [a.product for a in p.sent[PATCH_MANAGEMENT]]  # type: ignore[attr-defined]
            == ["Windows Update"]
        ),
    ),
    "Get-HotFix": ("packages: ", lambda p: p.held[OS] == ()),
    "Uninstall": ("packages: ", lambda p: p.held[OS] == ()),
    "Win32_Process": (
        "processes: ",
        lambda p: not any(isinstance(a, RunningProcesses) for a in p.sent[NEA_CLIENT]),
    ),
    "Get-FileHash": (
        "files: ",
        lambda p: not any(isinstance(a, FileHashes) for a in p.sent[NEA_CLIENT]),
    ),
    "Cert:": (
        "certificates: ",
        lambda p: not any(isinstance(a, Certificates) for a in p.sent[NEA_CLIENT]),
    ),
    "Get-MpComputerStatus": (
        "defender: ",
        lambda p: (
            p.sent[ANTIVIRUS]
            == (Antivirus("Windows Defender", "Microsoft", "", True, True, "", None),)
        ),
    ),
    "AntiVirusProduct": (
        "antivirus: ",
        lambda p: (
            [a.product for a in p.sent[ANTIVIRUS]]  # type: ignore[attr-defined]
            == ["Microsoft Defender Antivirus"]
        ),
    ),
    "AntiSpywareProduct": (
        "anti-spyware: ",
        lambda p: (
            [a.product for a in p.sent[ANTISPYWARE]]  # type: ignore[attr-defined]
            == ["Microsoft Defender Antivirus"]
        ),
    ),
}
GARBAGE = {
    "truncated": CommandOutput(0, TRUNCATED),
    "not json": CommandOutput(0, ERROR_TEXT),
    "a number": CommandOutput(0, "42\r\n"),
    "failed": CommandOutput(1, ERROR_TEXT),
}


@pytest.mark.parametrize("garbage", GARBAGE, ids=list(GARBAGE))
@pytest.mark.parametrize("marker", BROKEN)
def test_a_broken_output_leaves_its_fact_out_and_names_it(marker: str, garbage: str) -> None:
    posture = collect(**{marker: GARBAGE[garbage]})
    starts, gone = BROKEN[marker]
    assert [p for p in posture.problems if p.startswith(starts)], posture.problems
    assert gone(posture)
    posture.fingerprint()  # everything left still encodes


def test_an_unreadable_certificate_is_left_out_and_counted() -> None:
    entries = json.loads((FIXTURES / "certificates.json").read_text())
    entries[1]["RawData"] = base64.b64encode(b"\x30\x03\x02\x01\x00").decode()
    entries.append({"Store": "LocalMachine\\My", "RawData": "not base64!"})
    entries.append({"Store": "LocalMachine\\My", "RawData": "\u00e9t\u00e9"})  # not even ASCII
    posture = collect(**{"Cert:": CommandOutput(0, json.dumps(entries))})
    certificates = posture.sent[NEA_CLIENT][-1]
    assert isinstance(certificates, Certificates) and len(certificates.certificates) == 1
    assert posture.problems == ("certificates: 3 could not be read, left out",)


# --- any output at all -------------------------------------------------------------------

FIELDS = sorted(
    {
        key
        for name in FIXTURES.glob("*.json")
        for item in (lambda v: v if isinstance(v, list) else [v])(json.loads(name.read_text()))
        for key in item
    }
    | {"KBArticleIDs", "MsrcSeverity", "Title", "ArticleID", "ComplianceState", "LocalPort"}
)
SCALARS = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=300)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), inner, max_size=8)
    ),
    max_leaves=30,
)
OUTPUTS = st.text() | JSON_VALUES.map(json.dumps) | JSON_VALUES.map(lambda v: json.dumps([v, v]))

PARSERS: dict[str, Callable[[WindowsCollector], Any]] = {
    "os": lambda c: c.os(),
    "protection": lambda c: c.protection([]),
    "windows firewall": lambda c: c.windows_firewall(),
    "firewall products": lambda c: c.firewall_products(),
    "windows update": lambda c: c.windows_update(),
    "configuration manager": lambda c: c.configuration_manager(None),
    "packages": lambda c: c.packages(),
    "processes": lambda c: c.processes(),
    "ports": lambda c: c.listening_ports(),
    "registry": lambda c: c.registry(),
    "files": lambda c: c.file_hashes(),
    "certificates": lambda c: c.certificates([]),
}


def attributes_in(result: Any) -> list[PaAttribute]:
    if isinstance(result, PaAttribute):
        return [result]
    if isinstance(result, list | tuple):
        return [a for item in result for a in attributes_in(item)]
    return []


@pytest.mark.parametrize("parser", PARSERS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(output=OUTPUTS)
def test_any_output_gives_an_attribute_that_encodes_or_a_collect_error(
    parser: str, output: str
) -> None:
    run = lambda argv: CommandOutput(0, output)  # noqa: E731
    try:
        result = PARSERS[parser](collector(run))
    except CollectError:
        return
    push_pa_message(PaMessage(1, tuple(attributes_in(result))))


@settings(max_examples=100, deadline=None)
@given(output=OUTPUTS)
def test_a_collection_from_any_output_never_raises(output: str) -> None:
    posture = collector(lambda argv: CommandOutput(0, output)).collect()
    posture.fingerprint()
    facts_of(posture)
