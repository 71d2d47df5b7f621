"""The macOS collector on a made-up file tree and recorded command outputs
(tests/fixtures/agent/macos), and what Host Checker makes of them."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netaccess.agent.collect import (
    FIREWALL,
    NEA_CLIENT,
    OS,
    PATCH_MANAGEMENT,
    CollectError,
    CommandOutput,
    Posture,
)
from netaccess.agent.macos import (
    ANTIMALWARE,
    SOCKETFILTERFW,
    SOFTWARE_UPDATE_PREFERENCES,
    XPROTECT_INFO,
    MacosCollector,
    parse_softwareupdate,
)
from netaccess.policy.hostchecker import (
    CertificateRule,
    Compliance,
    FileRule,
    FirewallRule,
    OsRule,
    PatchManagementRule,
    Platform,
    Policy,
    PostureFacts,
    ProcessRule,
    ProtectionFact,
    ProtectionRule,
    Severity,
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
    FileHash,
    FileHashes,
    Firewall,
    FirewallProfile,
    MissingPatch,
    PatchManagement,
    PatchSeverity,
    Process,
    RunningProcesses,
)
from tests.unit.agent_recorded import Recorded

FIXTURES = Path(__file__).parent.parent / "fixtures" / "agent" / "macos"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CHROME = "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome"
CHROME_BYTES = b"\xcf\xfa\xed\xfe a made-up Mach-O"
FIREWALL_STATE = f"{SOCKETFILTERFW} --getglobalstate"

ALL: dict[str, str | CommandOutput] = {
    "sw_vers": "sw_vers.txt",
    "sysctl hw.machine": "sysctl.txt",
    "system_profiler -json": "system_profiler-applications.json",
    "softwareupdate --list": "softwareupdate-list-none.txt",
    FIREWALL_STATE: "socketfilterfw-enabled.txt",
    "ps -axo": "ps.txt",
    "lsof -iTCP": "lsof-listen.txt",
    "security find-certificate": "security-find-certificate.pem",
}


def tree(
    root: Path,
    *,
    preferences: str | None = "com.apple.SoftwareUpdate.plist",
    xprotect_age: float = 2 * 86400,
) -> Path:
    def place(path: str, source: str | None = None, data: bytes = b"") -> Path:
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if source is not None:
            shutil.copyfile(FIXTURES / source, target)
        else:
            target.write_bytes(data)
        return target

    if preferences is not None:
        place(SOFTWARE_UPDATE_PREFERENCES, preferences)
    info = place(XPROTECT_INFO, "XProtect-Info.plist")
    stamp = NOW.timestamp() - xprotect_age
    os.utime(info, (stamp, stamp))
    place(CHROME, data=CHROME_BYTES)
    return root


def collector(root: Path, run: Callable[[Sequence[str]], CommandOutput]) -> MacosCollector:
    return MacosCollector(
        agent_version="1.0.0",
        run=run,
        root=root,
        clock=NOW.timestamp,
        files=(CHROME, "/usr/local/bin/absent"),
    )


def collect(root: Path, **changes: str | CommandOutput) -> Posture:
    return collector(root, Recorded(FIXTURES, {**ALL, **changes})).collect()


def facts_of(posture: Posture) -> PostureFacts:
    """What the appliance's Host Checker reads from this posture, after the wire."""
    found = []
    for part in (posture.sent, posture.held):
        for (vendor, subtype), attributes in part.items():
            message = pull_pa_message(push_pa_message(PaMessage(1, attributes)))
            found += [reported(vendor, subtype, a) for a in message.attributes]
    return facts_from_report(found)


POLICY = Policy(
    "macos-baseline",
    Platform.MACOS,
    (
        OsRule("os", os="macOS", min_version="26.1"),
        SoftwareRule("chrome", product="Google Chrome", min_version="142"),
        ProtectionRule("xprotect", product="XProtect", max_signature_days=14),
        FirewallRule("firewall"),
        PatchManagementRule(
            "software-update",
            product="Software Update",
            ignore_severities=frozenset({Severity.LOW}),
        ),
        ProcessRule("gatekeeper", process="syspolicyd"),
        FileRule("chrome-binary", path=CHROME, sha256=hashlib.sha256(CHROME_BYTES).hexdigest()),
        CertificateRule("machine-certificate", issuer="Corp Issuing CA", subject="mbp-42.corp"),
    ),
)


def failed(posture: Posture) -> set[str]:
    verdict = evaluate(POLICY, facts_of(posture), None, NOW)
    return {r.rule for r in verdict.trace if r.outcome.name == "FALSE"}


# --- the facts ---------------------------------------------------------------------------


def test_a_mac_reports_its_os(tmp_path: Path) -> None:
    posture = collect(tree(tmp_path))
    assert posture.problems == ()
    assert posture.sent[OS] == (
        ProductInformation(63, 0, "macOS"),
        StringVersion("26.1", "25B78", "arm64"),
        NumericVersion(26, 1, 0, 0, 0),
        OperationalStatus(
            OperationalStatusCode.OPERATIONAL,
            OperationalResultCode.SUCCEEDED,
            datetime(2026, 11, 20, 7, 53, 12, tzinfo=UTC),
        ),
        ForwardingEnabled(ForwardingState.DISABLED),
        PortFilter(tuple(PortFilterEntry(False, 6, p) for p in (22, 631, 5000, 7000, 49152))),
    )


def test_firewall_xprotect_and_software_update_are_reported(tmp_path: Path) -> None:
    posture = collect(tree(tmp_path))
    assert posture.sent[FIREWALL] == (
        Firewall("Application Firewall", (FirewallProfile("default", True),)),
    )
    assert posture.sent[ANTIMALWARE] == (
        Antivirus("XProtect", "Apple", "", True, True, "5331", 2 * 86400),
    )
    # last successful check 06:18:02, nothing to install
    assert posture.sent[PATCH_MANAGEMENT] == (
        PatchManagement("Software Update", True, 5 * 3600 + 41 * 60 + 58, ()),
    )


def test_the_agent_reports_processes_files_and_certificates(tmp_path: Path) -> None:
    info, processes, files, certificates = collect(tree(tmp_path)).sent[NEA_CLIENT]
    assert info == AgentInfo("macos", "1.0.0", False, "")
    assert isinstance(processes, RunningProcesses)
    assert processes.processes[0] == Process(1, "launchd", "/sbin/launchd")
    assert Process(1208, "Google Chrome", CHROME) in processes.processes
    assert processes.processes[-1] == Process(2051, "-zsh", "")  # a login shell's argv[0]
    assert files == FileHashes((FileHash(CHROME, hashlib.sha256(CHROME_BYTES).digest()),))
    assert isinstance(certificates, Certificates)
    assert [(c.subject, c.issuer, c.not_after.year) for c in certificates.certificates] == [
        ("CN=mbp-42.corp.example.com,O=Example Corp", "CN=Corp Issuing CA,O=Example Corp", 2027),
        ("CN=Corp Issuing CA,O=Example Corp", "CN=Corp Issuing CA,O=Example Corp", 2035),
        (
            "CN=mbp-42-old.corp.example.com,O=Example Corp",
            "CN=Corp Issuing CA,O=Example Corp",
            2026,
        ),
    ]
    assert {c.store for c in certificates.certificates} == {"/Library/Keychains/System.keychain"}


def test_applications_are_held_as_packages(tmp_path: Path) -> None:
    (packages,) = collect(tree(tmp_path)).held[OS]
    assert isinstance(packages, InstalledPackages)
    found = dict(packages.packages)
    assert len(found) == 9
    assert found["Google Chrome"] == "142.0.7444.176"
    assert found["Legacy Helper"] == ""  # system_profiler gives no version


def test_host_checker_reads_every_fact_of_the_report(tmp_path: Path) -> None:
    facts = facts_of(collect(tree(tmp_path)))
    assert (facts.platform, facts.os_name, facts.os_version, facts.service_pack) == (
        Platform.MACOS,
        "macOS",
        "26.1",
        0,
    )
    assert facts.antivirus == (ProtectionFact("XProtect", True, True, 2 * 86400),)
    assert facts.firewall_profiles == {"default": True}
    assert facts.patch_managers is not None
    assert [(m.product, m.enabled, m.missing) for m in facts.patch_managers] == [
        ("Software Update", True, ())
    ]
    assert facts.ports is not None and facts.ports[(6, 22)] is False
    assert (
        facts.processes is not None and ("syspolicyd", "/usr/libexec/syspolicyd") in facts.processes
    )
    assert facts.files == {CHROME: hashlib.sha256(CHROME_BYTES).hexdigest()}
    assert facts.packages is not None and facts.packages["Safari"] == "26.1"


def test_a_healthy_mac_passes_a_macos_policy(tmp_path: Path) -> None:
    verdict = evaluate(POLICY, facts_of(collect(tree(tmp_path))), None, NOW)
    assert [(r.rule, r.outcome.name) for r in verdict.trace if r.outcome.name != "TRUE"] == []
    assert verdict.compliance is Compliance.COMPLIANT


# --- bad macs ----------------------------------------------------------------------------


def test_a_firewall_switched_off_fails_the_firewall_rule(tmp_path: Path) -> None:
    posture = collect(
        tree(tmp_path),
        **{FIREWALL_STATE: "socketfilterfw-disabled.txt"},
    )
    assert posture.sent[FIREWALL] == (
        Firewall("Application Firewall", (FirewallProfile("default", False),)),
    )
    assert failed(posture) == {"firewall"}


def test_blocking_all_incoming_connections_is_a_firewall_on(tmp_path: Path) -> None:
    posture = collect(
        tree(tmp_path),
        **{FIREWALL_STATE: "socketfilterfw-block-all.txt"},
    )
    assert failed(posture) == set()


def test_pending_updates_and_automatic_checks_off_fail_software_update(tmp_path: Path) -> None:
    root = tree(tmp_path, preferences="com.apple.SoftwareUpdate-off.plist")
    posture = collect(root, **{"softwareupdate --list": "softwareupdate-list.txt"})
    assert posture.sent[PATCH_MANAGEMENT] == (
        PatchManagement(
            "Software Update",
            False,
            int(NOW.timestamp() - datetime(2026, 8, 2, 19, 44, 10, tzinfo=UTC).timestamp()),
            (
                MissingPatch("macOS Tahoe 26.1.1-25B104", PatchSeverity.IMPORTANT),
                MissingPatch("Safari26.2-21623.1.14.11.3", PatchSeverity.IMPORTANT),
                MissingPatch("Command Line Tools for Xcode-26.1", PatchSeverity.LOW),
            ),
        ),
    )
    assert failed(posture) == {"software-update"}


def test_pending_updates_alone_fail_software_update(tmp_path: Path) -> None:
    posture = collect(tree(tmp_path), **{"softwareupdate --list": "softwareupdate-list.txt"})
    assert failed(posture) == {"software-update"}


def test_an_update_apple_does_not_recommend_is_low_and_can_be_ignored(tmp_path: Path) -> None:
    only_tools = "* Label: Command Line Tools for Xcode-26.1\n\tTitle: X, Recommended: NO, \n"
    posture = collect(tree(tmp_path), **{"softwareupdate --list": CommandOutput(0, only_tools)})
    assert failed(posture) == set()


def test_mojaves_update_list_is_read_too() -> None:
    text = (FIXTURES / "softwareupdate-list-mojave.txt").read_text()
    assert parse_softwareupdate(text) == (
        MissingPatch("macOS Mojave 10.14.6 Supplemental Update", PatchSeverity.IMPORTANT),
        MissingPatch("Safari14.1.2MojaveAuto-14.1.2", PatchSeverity.IMPORTANT),
        MissingPatch("Pro Video Formats-2.2.1", PatchSeverity.LOW),
    )


def test_without_software_update_preferences_apples_defaults_hold(tmp_path: Path) -> None:
    posture = collect(tree(tmp_path, preferences=None))
    assert posture.sent[PATCH_MANAGEMENT] == (PatchManagement("Software Update", True, None, ()),)


def test_stale_xprotect_signatures_fail_the_antimalware_rule(tmp_path: Path) -> None:
    posture = collect(tree(tmp_path, xprotect_age=40 * 86400))
    (xprotect,) = posture.sent[ANTIMALWARE]
    assert isinstance(xprotect, Antivirus) and xprotect.signature_age == 40 * 86400
    assert failed(posture) == {"xprotect"}


def test_an_older_macos_fails_the_os_rule(tmp_path: Path) -> None:
    posture = collect(tree(tmp_path), sw_vers="sw_vers-sequoia.txt")
    assert posture.sent[OS][1] == StringVersion("15.3.2", "24D81", "arm64")
    assert failed(posture) == {"os"}


def test_an_expired_certificate_does_not_pass_a_certificate_rule(tmp_path: Path) -> None:
    rule = CertificateRule("old", issuer="Corp Issuing CA", subject="mbp-42-old")
    facts = facts_of(collect(tree(tmp_path)))
    verdict = evaluate(Policy("c", Platform.MACOS, (rule,)), facts, None, NOW)
    assert verdict.compliance is Compliance.NON_COMPLIANT


def test_no_listening_port_is_an_empty_port_filter(tmp_path: Path) -> None:
    posture = collect(tree(tmp_path), **{"lsof -iTCP": CommandOutput(1, "")})
    assert posture.sent[OS][-1] == PortFilter(())
    assert posture.problems == ()


def test_without_sysctl_the_os_is_still_reported_with_unknowns(tmp_path: Path) -> None:
    posture = collect(tree(tmp_path), **{"sysctl hw.machine": CommandOutput(1, "")})
    assert posture.sent[OS][1] == StringVersion("26.1", "25B78", "")
    assert posture.sent[OS][4] == ForwardingEnabled(ForwardingState.UNKNOWN)
    assert posture.problems == ("sysctl: sysctl exited 1",)


# --- broken outputs ----------------------------------------------------------------------

NOT_THIS = "zsh: command not found: brew\nsomething else entirely\n"
BROKEN: dict[str, tuple[str, Callable[[Posture], bool]]] = {
    "sw_vers": ("os: ", lambda p: not any(isinstance(a, ProductInformation) for a in p.sent[OS])),
    "system_profiler -json": ("packages: ", lambda p: p.held[OS] == ()),
    "softwareupdate --list": ("software update: ", lambda p: PATCH_MANAGEMENT not in p.sent),
    FIREWALL_STATE: (
        "firewall: ",
        lambda p: FIREWALL not in p.sent,
    ),
    "ps -axo": (
        "processes: ",
        lambda p: not any(isinstance(a, RunningProcesses) for a in p.sent[NEA_CLIENT]),
    ),
    "lsof -iTCP": ("ports: ", lambda p: not any(isinstance(a, PortFilter) for a in p.sent[OS])),
    "security find-certificate": (
        "certificates: ",
        lambda p: not any(isinstance(a, Certificates) for a in p.sent[NEA_CLIENT]),
    ),
}
GARBAGE = {
    "other text": CommandOutput(0, NOT_THIS),
    "truncated": CommandOutput(0, '{\n  "SPApplicationsDataType" : [\n    {\n      "_name'),
    "failed": CommandOutput(2, ""),
}


@pytest.mark.parametrize("garbage", GARBAGE, ids=list(GARBAGE))
@pytest.mark.parametrize("command", BROKEN)
def test_a_broken_output_leaves_its_fact_out_and_names_it(
    tmp_path: Path, command: str, garbage: str
) -> None:
    posture = collect(tree(tmp_path), **{command: GARBAGE[garbage]})
    starts, gone = BROKEN[command]
    assert [p for p in posture.problems if p.startswith(starts)], posture.problems
    assert gone(posture)
    posture.fingerprint()


@pytest.mark.parametrize("path", [XPROTECT_INFO, SOFTWARE_UPDATE_PREFERENCES])
@pytest.mark.parametrize("content", [b"", b"<?xml version='1.0'?><plist><dict><key>", b"[1, 2]"])
def test_a_broken_property_list_leaves_its_fact_out_and_names_it(
    tmp_path: Path, path: str, content: bytes
) -> None:
    root = tree(tmp_path)
    (root / path.lstrip("/")).write_bytes(content)
    posture = collect(root)
    component = ANTIMALWARE if path == XPROTECT_INFO else PATCH_MANAGEMENT
    assert component not in posture.sent
    assert len(posture.problems) == 1
    assert posture.problems[0].startswith("xprotect: " if path == XPROTECT_INFO else "software")


def test_a_mac_without_xprotect_says_so(tmp_path: Path) -> None:
    root = tree(tmp_path)
    (root / XPROTECT_INFO.lstrip("/")).unlink()
    assert collect(root).problems == (f"xprotect: no XProtect bundle at {XPROTECT_INFO}",)


# --- any output at all -------------------------------------------------------------------

PIECES = st.sampled_from(
    [
        "* Label: ",
        "\tTitle: x, Recommended: YES, ",
        "Firewall is enabled.",
        "(State = 7)",
        "COMMAND PID USER\n",
        " TCP *:99999 (LISTEN)",
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        '{"SPApplicationsDataType": [{"_name": 1, "version": null}]}',
        "ProductName: macOS\nProductVersion: 99999999999.1\n",
        "kern.boottime: { sec = 999999999999 }\n",
        "\n",
        "   4294967296 /bin/x\n",
    ]
)
OUTPUTS = st.text() | st.lists(PIECES | st.text(max_size=20), max_size=12).map("".join)
PARSERS: dict[str, Callable[[MacosCollector], object]] = {
    "os": lambda c: c.os([]),
    "packages": lambda c: c.packages(),
    "firewall": lambda c: c.firewall(),
    "software update": lambda c: c.software_update(),
    "processes": lambda c: c.processes(),
    "ports": lambda c: c.listening_ports(),
    "certificates": lambda c: c.certificates([]),
}


@pytest.mark.parametrize("parser", PARSERS)
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(output=OUTPUTS, status=st.sampled_from([0, 0, 1]))
def test_any_output_gives_an_attribute_that_encodes_or_a_collect_error(
    tmp_path: Path, parser: str, output: str, status: int
) -> None:
    mac = collector(tmp_path, lambda argv: CommandOutput(status, output))
    try:
        result = PARSERS[parser](mac)
    except CollectError:
        return
    attributes = result if isinstance(result, tuple) else (result,)
    push_pa_message(PaMessage(1, attributes))  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=300) | st.sampled_from([b"bplist00", b"<?xml", b"<plist>"]))
def test_any_property_list_gives_an_attribute_or_a_noted_problem(data: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as name:
        root = tree(Path(name))
        (root / XPROTECT_INFO.lstrip("/")).write_bytes(data)
        (root / SOFTWARE_UPDATE_PREFERENCES.lstrip("/")).write_bytes(data)
        posture = collect(root)
        posture.fingerprint()
        assert all(p.startswith(("xprotect: ", "software update: ")) for p in posture.problems)
