"""The Windows collector: Windows' own PowerShell cmdlets and WMI classes, read as JSON.

- OS: Win32_OperatingSystem (caption, version, build, service pack, last boot), the update
  build revision (UBR) from the registry, IP routing (Tcpip IPEnableRouter).
- Antivirus and anti-spyware: Security Center's AntiVirusProduct and AntiSpywareProduct
  (root/SecurityCenter2; client editions only), with Microsoft Defender's own status
  (Get-MpComputerStatus) for Defender's entry, or alone where Security Center is absent.
- Firewall: Windows Defender Firewall's profiles (Get-NetFirewallProfile, the active
  store), and the third-party firewalls Security Center knows.
- Patch management: Windows Update (the update agent's missing updates from its last scan,
  with Microsoft's severities; whether it is enabled) and, where its client is installed,
  Configuration Manager (SCCM: root\\ccm, its pending updates from CCM_SoftwareUpdate).
- Installed packages (held for a request): the Uninstall keys, 64- and 32-bit, and the
  installed hotfixes (Get-HotFix) as packages named by their KB, versioned by the date
  they were installed ("" when Windows does not say).
- Processes (Win32_Process, whose names keep the ".exe" that process rules name, unlike
  Get-Process), listening TCP and bound UDP ports, registry values, file hashes and the
  certificates of the configured stores.

Every command is PowerShell through `run`, so tests replay recorded outputs. Security
Center's productState is an undocumented DWORD whose layout is well known: bits 8-15 the
scanner state (0x10 set: on) and bits 0-7 the signatures (0x10 set: out of date). Only
the first is carried: our Antivirus attribute has a signature age, not a flag, and
Security Center gives no age, so a third-party product's age is unknown.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from netaccess.agent.collect import (
    ANTISPYWARE,
    ANTIVIRUS,
    FIREWALL,
    NEA_CLIENT,
    OS,
    PATCH_MANAGEMENT,
    CollectError,
    Component,
    Posture,
    Run,
    assembled,
    attempt,
)
from netaccess.agent.os_facts import MICROSOFT_PEN, numeric_version
from netaccess.agent.platforms import (
    MAX_ENTRIES,
    S16,
    age,
    as_list,
    certificate_from_der,
    command_runner,
    fit,
    inherited_environment,
    noted,
    parse_time,
    text_of,
    unsigned,
)
from netaccess.proto.tnc.pa import (
    ForwardingEnabled,
    ForwardingState,
    InstalledPackages,
    NumericVersion,
    OperationalResultCode,
    OperationalStatus,
    OperationalStatusCode,
    PaAttribute,
    Package,
    PortFilter,
    PortFilterEntry,
    ProductInformation,
    StringVersion,
)
from netaccess.proto.tnc.vendor import (
    AgentInfo,
    Antivirus,
    Certificate,
    Certificates,
    FileHash,
    FileHashes,
    Firewall,
    FirewallProfile,
    MissingPatch,
    PatchManagement,
    PatchSeverity,
    Process,
    RegistryValue,
    RegistryValues,
    RegistryValueType,
    RunningProcesses,
)

POWERSHELL = ("powershell.exe", "-NoProfile", "-NonInteractive", "-Command")
# Errors end the script with a non-zero status; output is UTF-8 without a byte-order mark;
# U formats a local time as UTC, Z one that already is.
PRELUDE = (
    "$ErrorActionPreference = 'Stop'; $ProgressPreference = 'SilentlyContinue'; "
    "[Console]::OutputEncoding = New-Object System.Text.UTF8Encoding $false; "
    "function U($t) { if ($t) { ([datetime]$t).ToUniversalTime()"
    ".ToString('yyyy-MM-ddTHH:mm:ssZ') } }; "
    "function Z($t) { if ($t) { ([datetime]$t).ToString('yyyy-MM-ddTHH:mm:ssZ') } };\n"
)

OS_SCRIPT = r"""$os = Get-CimInstance -ClassName Win32_OperatingSystem
$nt = Get-ItemProperty -Path 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion'
$ip = Get-ItemProperty -Path 'HKLM:\SYSTEM\CurrentControlSet\Services\Tcpip\Parameters'
[pscustomobject]@{
    Caption = $os.Caption
    Version = $os.Version
    BuildNumber = $os.BuildNumber
    ServicePackMajorVersion = $os.ServicePackMajorVersion
    ServicePackMinorVersion = $os.ServicePackMinorVersion
    UBR = $nt.UBR
    Architecture = $env:PROCESSOR_ARCHITECTURE
    LastBootUpTime = U $os.LastBootUpTime
    IPEnableRouter = $ip.IPEnableRouter
} | ConvertTo-Json -Depth 4"""


def security_center_script(product_class: str) -> str:
    return (
        f"Get-CimInstance -Namespace root/SecurityCenter2 -ClassName {product_class} |"
        " Select-Object displayName, productState, pathToSignedProductExe, timestamp |"
        " ConvertTo-Json -Depth 4"
    )


ANTIVIRUS_SCRIPT = security_center_script("AntiVirusProduct")
ANTISPYWARE_SCRIPT = security_center_script("AntiSpywareProduct")
FIREWALL_PRODUCT_SCRIPT = security_center_script("FirewallProduct")
DEFENDER_SCRIPT = """Get-MpComputerStatus | Select-Object AMServiceEnabled, AMRunningMode, \
AMProductVersion, AntivirusEnabled, AntispywareEnabled, RealTimeProtectionEnabled, \
AntivirusSignatureVersion, AntispywareSignatureVersion, \
@{n='AntivirusSignatureLastUpdated'; e={U $_.AntivirusSignatureLastUpdated}}, \
@{n='AntispywareSignatureLastUpdated'; e={U $_.AntispywareSignatureLastUpdated}}, \
AntivirusSignatureAge, AntispywareSignatureAge | ConvertTo-Json -Depth 4"""
FIREWALL_PROFILE_SCRIPT = (
    "Get-NetFirewallProfile -PolicyStore ActiveStore | Select-Object Name, Enabled |"
    " ConvertTo-Json -Depth 4"
)
# The update agent's search against what its last scan found (Online = false: no network,
# seconds rather than minutes); LastSearchSuccessDate is already UTC.
WINDOWS_UPDATE_SCRIPT = r"""$session = New-Object -ComObject Microsoft.Update.Session
$searcher = $session.CreateUpdateSearcher()
$searcher.Online = $false
$found = $searcher.Search("IsInstalled=0 and IsHidden=0 and Type='Software'")
$au = New-Object -ComObject Microsoft.Update.AutoUpdate
$key = 'HKLM:\SOFTWARE\Policies\Microsoft\Windows\WindowsUpdate\AU'
$policy = Get-ItemProperty -Path $key -ErrorAction SilentlyContinue
[pscustomobject]@{
    ServiceEnabled = $au.ServiceEnabled
    StartType = [string](Get-Service -Name wuauserv).StartType
    NoAutoUpdate = $policy.NoAutoUpdate
    LastSearchSuccessDate = Z $au.Results.LastSearchSuccessDate
    Updates = @($found.Updates | ForEach-Object {
        [pscustomobject]@{
            Title = $_.Title
            KBArticleIDs = @($_.KBArticleIDs)
            MsrcSeverity = $_.MsrcSeverity
        }
    })
} | ConvertTo-Json -Depth 4"""
# Schedule 113 is the client's software updates scan cycle.
CONFIGURATION_MANAGER_SCRIPT = r"""$ccm = "Name='ccm'"
if (-not (Get-CimInstance -Namespace root -ClassName __NAMESPACE -Filter $ccm)) {
    [pscustomobject]@{ Installed = $false } | ConvertTo-Json; exit 0
}
$client = Get-CimInstance -Namespace root/ccm -ClassName SMS_Client
$cycle = "ScheduleID='{00000000-0000-0000-0000-000000000113}'"
$scan = Get-CimInstance -Namespace root/ccm/Scheduler -ClassName CCM_Scheduler_History `
    -Filter $cycle -ErrorAction SilentlyContinue | Select-Object -First 1
$updates = Get-CimInstance -Namespace root/ccm/ClientSDK -ClassName CCM_SoftwareUpdate
[pscustomobject]@{
    Installed = $true
    ClientVersion = $client.ClientVersion
    Service = [string](Get-Service -Name CcmExec -ErrorAction SilentlyContinue).Status
    LastScan = U $scan.LastTriggerTime
    Updates = @($updates | Select-Object ArticleID, Name, ComplianceState, EvaluationState)
} | ConvertTo-Json -Depth 4"""
HOTFIX_SCRIPT = (
    "Get-HotFix | Select-Object HotFixID, Description,"
    " @{n='InstalledOn'; e={if ($_.InstalledOn) { $_.InstalledOn.ToString('yyyy-MM-dd') }}} |"
    " ConvertTo-Json -Depth 4"
)
SOFTWARE_SCRIPT = (
    r"Get-ItemProperty -Path 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\*',"
    r" 'HKLM:\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall\*'"
    " -ErrorAction SilentlyContinue | Where-Object { $_.DisplayName } |"
    " Select-Object DisplayName, DisplayVersion, Publisher | ConvertTo-Json -Depth 4"
)
PROCESS_SCRIPT = (
    "Get-CimInstance -ClassName Win32_Process | Select-Object ProcessId, Name, ExecutablePath |"
    " ConvertTo-Json -Depth 4"
)
PORT_SCRIPT = """[pscustomobject]@{
    Tcp = @(Get-NetTCPConnection -State Listen | Select-Object LocalAddress, LocalPort)
    Udp = @(Get-NetUDPEndpoint | Select-Object LocalAddress, LocalPort)
} | ConvertTo-Json -Depth 4"""

# Registry values read unless configured otherwise: UAC, Remote Desktop, SMB 1, blank
# passwords over the network.
REGISTRY_VALUES: tuple[tuple[str, str], ...] = (
    (r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System", "EnableLUA"),
    (r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server", "fDenyTSConnections"),
    (r"HKLM\SYSTEM\CurrentControlSet\Services\LanmanServer\Parameters", "SMB1"),
    (r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa", "LimitBlankPasswordUse"),
)
CERTIFICATE_STORES = ("LocalMachine\\My",)
WINDOWS_FIREWALL = "Windows Defender Firewall"
DEFENDER = "Microsoft Defender Antivirus"
WINDOWS_UPDATE = "Windows Update"
CONFIGURATION_MANAGER = "Configuration Manager (SCCM)"

_HIVES = {
    "HKLM": "HKEY_LOCAL_MACHINE",
    "HKCU": "HKEY_CURRENT_USER",
    "HKCR": "HKEY_CLASSES_ROOT",
    "HKU": "HKEY_USERS",
    "HKCC": "HKEY_CURRENT_CONFIG",
}
_KINDS = {
    "none": RegistryValueType.NONE,
    "unknown": RegistryValueType.NONE,
    "string": RegistryValueType.SZ,
    "expandstring": RegistryValueType.EXPAND_SZ,
    "binary": RegistryValueType.BINARY,
    "dword": RegistryValueType.DWORD,
    "multistring": RegistryValueType.MULTI_SZ,
    "qword": RegistryValueType.QWORD,
}
_SEVERITIES = {
    "critical": PatchSeverity.CRITICAL,
    "important": PatchSeverity.IMPORTANT,
    "moderate": PatchSeverity.MODERATE,
    "low": PatchSeverity.LOW,
}
_SCANNER_ON = 0x1000
_DEFENDER_PATH = "windowsdefender://"
_UNKNOWN_DAYS = 65535  # Get-MpComputerStatus's signature age when it has none
_PS_DATE = re.compile(r"/Date\((-?\d{1,15})\)/")  # ConvertTo-Json 5.1's own DateTime form
_PS_QUOTES = re.compile("['\u2018\u2019\u201a\u201b]")  # all end a PowerShell '...' string
_MAX_PROCESSES = 2000
_MAX_CERTIFICATES = 1000
TCP, UDP = 6, 17


# The real Run on Windows: this process's environment (PowerShell needs SystemRoot and
# PATH), and no console window.
run_windows_command: Run = command_runner(
    inherited_environment, getattr(subprocess, "CREATE_NO_WINDOW", 0x08000000)
)


def quote(text: str) -> str:
    """`text` as a PowerShell single-quoted string (every kind of single quote doubled)."""
    return "'" + _PS_QUOTES.sub(lambda match: match[0] * 2, text) + "'"


class WindowsCollector:
    platform = "windows"

    def __init__(
        self,
        *,
        agent_version: str,
        run: Run = run_windows_command,
        clock: Callable[[], float] = time.time,
        registry_values: Sequence[tuple[str, str]] = REGISTRY_VALUES,
        files: Sequence[str] = (),
        certificate_stores: Sequence[str] = CERTIFICATE_STORES,
    ) -> None:
        """`registry_values`: (key, value name) pairs to report, keys as "HKLM\\...";
        `files`: paths to hash; `certificate_stores`: as "LocalMachine\\My"."""
        self.agent_version = agent_version
        self._run = run
        self._clock = clock
        self.registry_values = tuple(registry_values)
        self.files = tuple(files)
        self.certificate_stores = tuple(certificate_stores)
        self.change = ""

    def collect(self) -> Posture:
        problems: list[str] = []
        os_component: list[PaAttribute] = list(noted(problems, "os", self.os, ()))
        os_component += attempt(problems, "ports", self.listening_ports)
        os_component += attempt(problems, "registry", self.registry)
        antivirus, antispyware = self.protection(problems)
        firewall = attempt(problems, "firewall", self.windows_firewall)
        firewall += noted(problems, "firewall products", self.firewall_products, [])
        windows_update = noted(problems, "windows update", self.windows_update, None)
        patch_management: list[PaAttribute] = [windows_update] if windows_update else []
        patch_management += attempt(
            problems, "configuration manager", lambda: self.configuration_manager(windows_update)
        )
        sent: dict[Component, list[PaAttribute]] = {
            OS: os_component,
            ANTIVIRUS: list(antivirus),
            ANTISPYWARE: list(antispyware),
            FIREWALL: firewall,
            PATCH_MANAGEMENT: patch_management,
            NEA_CLIENT: [
                AgentInfo(self.platform, self.agent_version, bool(self.change), self.change),
                *attempt(problems, "processes", self.processes),
                *attempt(problems, "files", self.file_hashes),
                *attempt(problems, "certificates", lambda: self.certificates(problems)),
            ],
        }
        held = {OS: tuple(attempt(problems, "packages", self.packages))}
        return assembled(self.platform, sent, held, problems)

    # -- each fact

    def os(self) -> tuple[PaAttribute, ...]:
        found = _one_object(self._json(OS_SCRIPT, "Win32_OperatingSystem"), "Win32_OperatingSystem")
        caption = text_of(found.get("Caption")).strip()
        version = text_of(found.get("Version")).strip()
        if not caption or not version[:1].isdigit():
            raise CollectError("Win32_OperatingSystem gave no Caption or Version")
        build = text_of(found.get("BuildNumber")).strip()
        revision = unsigned(found.get("UBR"), 32)
        if revision is not None:
            version = f"{version}.{revision}"
            build = f"{build}.{revision}"
        major, minor, build_number, _, _ = numeric_version(version)
        routing = found.get("IPEnableRouter")
        forwarding = (
            ForwardingState.DISABLED
            if routing in (0, None)
            else ForwardingState.ENABLED
            if routing == 1
            else ForwardingState.UNKNOWN
        )
        return (
            ProductInformation(MICROSOFT_PEN, 0, fit(caption)),
            StringVersion(fit(version), fit(build), fit(text_of(found.get("Architecture")))),
            NumericVersion(
                major,
                minor,
                build_number,
                unsigned(found.get("ServicePackMajorVersion"), 16) or 0,
                unsigned(found.get("ServicePackMinorVersion"), 16) or 0,
            ),
            OperationalStatus(
                OperationalStatusCode.OPERATIONAL,
                OperationalResultCode.SUCCEEDED,
                _when(found.get("LastBootUpTime")),
            ),
            ForwardingEnabled(forwarding),
        )

    def protection(self, problems: list[str]) -> tuple[list[Antivirus], list[Antivirus]]:
        """The antivirus and anti-spyware products: Security Center's, with Defender's own
        status for Defender's entry (or Defender alone without Security Center)."""
        defender = noted(problems, "defender", self.defender_status, None)
        return (
            self._protection(problems, "antivirus", ANTIVIRUS_SCRIPT, "Antivirus", defender),
            self._protection(problems, "anti-spyware", ANTISPYWARE_SCRIPT, "Antispyware", defender),
        )

    def defender_status(self) -> dict[str, Any]:
        return _one_object(self._json(DEFENDER_SCRIPT, "Get-MpComputerStatus"), "Defender")

    def windows_firewall(self) -> Firewall:
        profiles = []
        for entry in _objects(self._json(FIREWALL_PROFILE_SCRIPT, "Get-NetFirewallProfile")):
            name = text_of(entry.get("Name")).strip().lower()
            enabled = _firewall_enabled(entry.get("Enabled"))
            if name and enabled is not None:
                profiles.append(FirewallProfile(fit(name), enabled))
        if not profiles:
            raise CollectError("Get-NetFirewallProfile listed no profile it could read")
        return Firewall(WINDOWS_FIREWALL, tuple(profiles))

    def firewall_products(self) -> list[Firewall]:
        """Third-party firewalls registered with Security Center, each as one profile."""
        found = []
        for product in self._security_center(FIREWALL_PRODUCT_SCRIPT) or []:
            decoded = _security_center_product(product)
            if decoded is not None:
                name, state, _ = decoded
                found.append(
                    Firewall(fit(name), (FirewallProfile("default", bool(state & _SCANNER_ON)),))
                )
        return found

    def windows_update(self) -> PatchManagement:
        found = _one_object(self._json(WINDOWS_UPDATE_SCRIPT, "Windows Update"), "Windows Update")
        if "Updates" not in found:
            raise CollectError("the update search gave no Updates")
        missing: dict[str, PatchSeverity] = {}
        for update in _objects(found.get("Updates")):
            articles = [text_of(a) for a in as_list(update.get("KBArticleIDs")) if text_of(a)]
            patch_id = f"KB{articles[0]}" if articles else text_of(update.get("Title"))
            if patch_id and len(missing) < MAX_ENTRIES:
                severity = _SEVERITIES.get(text_of(update.get("MsrcSeverity")).lower())
                missing.setdefault(fit(patch_id), severity or PatchSeverity.UNKNOWN)
        enabled = (
            found.get("ServiceEnabled") is True
            and text_of(found.get("StartType")).lower() != "disabled"
            and found.get("NoAutoUpdate") != 1
        )
        last_scan = _when(found.get("LastSearchSuccessDate"))
        return PatchManagement(
            WINDOWS_UPDATE,
            enabled,
            age(self._clock(), last_scan.timestamp() if last_scan else None),
            tuple(MissingPatch(i, s) for i, s in missing.items()),
        )

    def configuration_manager(
        self, windows_update: PatchManagement | None
    ) -> PatchManagement | None:
        """The Configuration Manager client, when installed: running, its last scan, the
        deployed updates it has not installed (severities as Windows Update rates the same
        KB; Configuration Manager's client does not say)."""
        found = _one_object(
            self._json(CONFIGURATION_MANAGER_SCRIPT, "Configuration Manager"),
            "Configuration Manager",
        )
        if found.get("Installed") is False:
            return None
        if found.get("Installed") is not True:
            raise CollectError("root\\ccm: no Installed field")
        rated = (
            {patch.id: patch.severity for patch in windows_update.missing} if windows_update else {}
        )
        missing: dict[str, PatchSeverity] = {}
        for update in _objects(found.get("Updates")):
            if update.get("ComplianceState") not in (0, None):
                continue  # installed (1), or a state it does not report as missing
            article = text_of(update.get("ArticleID")).strip()
            patch_id = fit(f"KB{article}" if article else text_of(update.get("Name")))
            if patch_id and len(missing) < MAX_ENTRIES:
                missing.setdefault(patch_id, rated.get(patch_id, PatchSeverity.UNKNOWN))
        last_scan = _when(found.get("LastScan"))
        return PatchManagement(
            CONFIGURATION_MANAGER,
            text_of(found.get("Service")).lower() == "running",
            age(self._clock(), last_scan.timestamp() if last_scan else None),
            tuple(MissingPatch(i, s) for i, s in missing.items()),
        )

    def packages(self) -> InstalledPackages:
        software = _objects(self._json(SOFTWARE_SCRIPT, "the Uninstall keys"))
        hotfixes = _objects(self._json(HOTFIX_SCRIPT, "Get-HotFix"))
        found: dict[tuple[str, str], None] = {}
        for entry in software:
            name = text_of(entry.get("DisplayName")).strip()
            if name:
                found[(fit(name), fit(text_of(entry.get("DisplayVersion")).strip()))] = None
        for entry in hotfixes:
            name = text_of(entry.get("HotFixID")).strip()
            if name:
                found[(fit(name), fit(text_of(entry.get("InstalledOn"))))] = None
        if not found:
            raise CollectError("neither the Uninstall keys nor Get-HotFix listed anything")
        return InstalledPackages(tuple(Package(n, v) for n, v in sorted(found)[:MAX_ENTRIES]))

    def processes(self) -> RunningProcesses:
        found = []
        for entry in _objects(self._json(PROCESS_SCRIPT, "Win32_Process")):
            pid = unsigned(entry.get("ProcessId"), 32)
            name = text_of(entry.get("Name"))
            if pid is None or not name:
                continue
            found.append(Process(pid, fit(name), fit(text_of(entry.get("ExecutablePath")), S16)))
            if len(found) >= _MAX_PROCESSES:
                break
        if not found:
            raise CollectError("Win32_Process listed no process")
        return RunningProcesses(tuple(found))

    def listening_ports(self) -> PortFilter:
        found = _one_object(self._json(PORT_SCRIPT, "Get-NetTCPConnection"), "ports")
        if "Tcp" not in found:
            raise CollectError("Get-NetTCPConnection gave no listening list")
        entries: set[tuple[int, int]] = set()
        for protocol, key in ((TCP, "Tcp"), (UDP, "Udp")):
            for entry in _objects(found.get(key)):
                port = unsigned(entry.get("LocalPort"), 16)
                if port is not None:
                    entries.add((protocol, port))
        return PortFilter(tuple(PortFilterEntry(False, p, n) for p, n in sorted(entries)))

    def registry(self) -> RegistryValues | None:
        """The configured values that exist (a value not set is left out)."""
        if not self.registry_values:
            return None
        found = []
        for entry in _objects(self._json(self._registry_script(), "the registry")):
            kind = _KINDS.get(text_of(entry.get("Kind")).lower())
            key, name = text_of(entry.get("Key")), text_of(entry.get("Name"))
            data = None if kind is None else _registry_data(kind, entry.get("Data"))
            if kind is not None and data is not None and key and name:
                found.append(RegistryValue(fit(key, S16), fit(name, S16), kind, fit(data, S16)))
        return RegistryValues(tuple(found[:MAX_ENTRIES]))

    def file_hashes(self) -> FileHashes | None:
        if not self.files:
            return None
        paths = ", ".join(quote(path) for path in self.files)
        script = (
            f"@(foreach ($p in @({paths})) {{ Get-FileHash -LiteralPath $p -Algorithm SHA256"
            " -ErrorAction SilentlyContinue | Select-Object Path, Hash }) |"
            " ConvertTo-Json -Depth 4"
        )
        found = []
        for entry in _objects(self._json(script, "Get-FileHash")):
            path, digest = text_of(entry.get("Path")), text_of(entry.get("Hash"))
            try:
                raw = bytes.fromhex(digest)
            except ValueError:
                continue
            if path and len(raw) == 32:
                found.append(FileHash(fit(path, S16), raw))
        return FileHashes(tuple(found[:MAX_ENTRIES]))

    def certificates(self, problems: list[str]) -> Certificates:
        stores = ", ".join(quote(store) for store in self.certificate_stores)
        script = (
            f"@(foreach ($s in @({stores})) {{ Get-ChildItem -LiteralPath ('Cert:\\' + $s) |"
            " ForEach-Object { [pscustomobject]@{ Store = $s; Subject = $_.Subject;"
            " RawData = [Convert]::ToBase64String($_.RawData) } } }) | ConvertTo-Json -Depth 4"
        )
        found: list[Certificate] = []
        unreadable = 0
        for entry in _objects(self._json(script, "the certificate stores")):
            try:
                der = base64.b64decode(text_of(entry.get("RawData")), validate=True)
                found.append(certificate_from_der(text_of(entry.get("Store")), der))
            except (ValueError, CollectError):  # binascii.Error is one, so is non-ASCII
                unreadable += 1
            if len(found) >= _MAX_CERTIFICATES:
                break
        if unreadable:
            problems.append(f"certificates: {unreadable} could not be read, left out")
        return Certificates(tuple(found))

    # -- helpers

    def _registry_script(self) -> str:
        wanted = []
        for key, name in self.registry_values:
            hive, _, rest = key.partition("\\")
            path = "Registry::" + _HIVES.get(hive.upper(), hive) + ("\\" + rest if rest else "")
            wanted.append(f"@{{K = {quote(key)}; P = {quote(path)}; N = {quote(name)}}}")
        return (
            f"$wanted = @({', '.join(wanted)})\n"
            "@(foreach ($w in $wanted) {\n"
            "    $key = Get-Item -LiteralPath $w.P -ErrorAction SilentlyContinue\n"
            "    if ($key -and ($key.GetValueNames() -contains $w.N)) {\n"
            "        [pscustomobject]@{ Key = $w.K; Name = $w.N;"
            " Kind = [string]$key.GetValueKind($w.N);"
            " Data = $key.GetValue($w.N, $null, 'DoNotExpandEnvironmentNames') }\n"
            "    }\n"
            "}) | ConvertTo-Json -Depth 4"
        )

    def _security_center(self, script: str) -> list[dict[str, Any]]:
        return _objects(self._json(script, "root/SecurityCenter2"))

    def _protection(
        self,
        problems: list[str],
        what: str,
        script: str,
        prefix: str,
        defender: Mapping[str, Any] | None,
    ) -> list[Antivirus]:
        products = noted(problems, what, lambda: self._security_center(script), [])
        listed = []
        defender_listed = False
        for product in products:
            decoded = _security_center_product(product)
            if decoded is None:
                problems.append(f"{what}: a product without a readable productState")
                continue
            name, state, is_defender = decoded
            defender_listed |= is_defender
            if is_defender and defender is not None:
                listed.append(self._defender(name, defender, prefix))
            else:
                on = bool(state & _SCANNER_ON)
                vendor = "Microsoft" if is_defender else ""
                listed.append(Antivirus(fit(name), vendor, "", on, on, "", None))
        if defender is not None and not defender_listed:
            listed.append(self._defender(DEFENDER, defender, prefix))
        return listed

    def _defender(self, name: str, status: Mapping[str, Any], prefix: str) -> Antivirus:
        """Defender's entry for antivirus (`prefix` "Antivirus") or anti-spyware."""
        updated = _when(status.get(f"{prefix}SignatureLastUpdated"))
        if updated is not None:
            signature_age = age(self._clock(), updated.timestamp())
        else:
            days = unsigned(status.get(f"{prefix}SignatureAge"), 32)
            signature_age = None if days is None or days >= _UNKNOWN_DAYS else days * 86400
        return Antivirus(
            product=fit(name),
            vendor="Microsoft",
            version=fit(text_of(status.get("AMProductVersion"))),
            running=status.get("AMServiceEnabled") is True
            and status.get(f"{prefix}Enabled") is True,
            real_time_protection=status.get("RealTimeProtectionEnabled") is True,
            signature_version=fit(text_of(status.get(f"{prefix}SignatureVersion"))),
            signature_age=signature_age,
        )

    def _json(self, script: str, what: str) -> Any:
        """What `script` printed, as JSON: None for no output (an empty list piped to
        ConvertTo-Json prints nothing)."""
        out = self._run([*POWERSHELL, PRELUDE + script])
        if out.status != 0:
            raise CollectError(f"{what}: PowerShell exited {out.status}")
        text = out.stdout.lstrip("\ufeff").strip()
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            raise CollectError(f"{what}: the output is not JSON") from None


def _objects(value: Any) -> list[dict[str, Any]]:
    """ConvertTo-Json's one object or list of them; CollectError for any other JSON."""
    items = as_list(value)
    if not all(isinstance(item, dict) for item in items):
        raise CollectError("the output is not a list of objects")
    return items


def _one_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CollectError(f"{what}: the output is not one object")
    return value


def _security_center_product(product: Mapping[str, Any]) -> tuple[str, int, bool] | None:
    """(display name, productState, whether it is Defender), None without a state."""
    state = unsigned(product.get("productState"), 32)
    name = text_of(product.get("displayName")).strip()
    if state is None or not name:
        return None
    path = text_of(product.get("pathToSignedProductExe")).lower()
    return name, state, path.startswith(_DEFENDER_PATH)


def _firewall_enabled(value: object) -> bool | None:
    """Get-NetFirewallProfile's Enabled: a GpoBoolean, 1 or 0 (or True/False) in JSON;
    2 (NotConfigured) says nothing."""
    if value is True or value == 1 or value == "True":
        return True
    if value is False or value == 0 or value == "False":
        return False
    return None


def _registry_data(kind: RegistryValueType, data: object) -> str | None:
    """Registry data as RegistryValue carries it, None if it is not of its kind."""
    if kind in (RegistryValueType.SZ, RegistryValueType.EXPAND_SZ):
        return data if isinstance(data, str) else None
    if kind in (RegistryValueType.DWORD, RegistryValueType.QWORD):
        bits = 32 if kind is RegistryValueType.DWORD else 64
        if isinstance(data, int) and not isinstance(data, bool) and -(1 << bits) < data < 1 << bits:
            return str(data % (1 << bits))  # .NET reads them signed
        return None
    if kind is RegistryValueType.MULTI_SZ:
        items = as_list(data)
        return "\n".join(items) if all(isinstance(i, str) for i in items) else None
    items = as_list(data)
    if all(unsigned(item, 8) is not None for item in items):
        return bytes(items).hex()
    return None


def _when(value: object) -> datetime | None:
    """A time from our scripts ("2026-11-20T07:12:00Z") or ConvertTo-Json's own form."""
    if isinstance(value, str):
        match = _PS_DATE.search(value)
        if match:
            try:
                return datetime.fromtimestamp(int(match[1]) / 1000, UTC)
            except (OverflowError, OSError, ValueError):
                return None
    return parse_time(value)
