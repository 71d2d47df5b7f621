"""The Android collector on recorded shell outputs and the iOS collector on device
information files (tests/fixtures/agent/android, ios), and what Host Checker makes of them."""

from __future__ import annotations

import itertools
import json
import os
import plistlib
import shutil
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netaccess.agent.collect import (
    NEA_CLIENT,
    OS,
    PATCH_MANAGEMENT,
    CollectError,
    CommandOutput,
    Posture,
)
from netaccess.agent.mobile import (
    AndroidCollector,
    IosCollector,
    device_security,
    ios_os,
    ios_packages,
    ios_security,
    missing_bulletins,
)
from netaccess.policy.hostchecker import (
    Compliance,
    OsRule,
    PatchManagementRule,
    Platform,
    Policy,
    PostureFacts,
    SoftwareRule,
    evaluate,
    facts_from_report,
)
from netaccess.policy.imv import reported
from netaccess.policy.posture import ReportedAttribute
from netaccess.proto.tnc.pa import (
    InstalledPackages,
    NumericVersion,
    OperationalResultCode,
    OperationalStatus,
    OperationalStatusCode,
    PaAttribute,
    Package,
    PaMessage,
    ProductInformation,
    StringVersion,
    pull_pa_message,
    push_pa_message,
)
from netaccess.proto.tnc.vendor import (
    AgentInfo,
    DeviceSecurity,
    MissingPatch,
    PatchManagement,
    PatchSeverity,
)
from tests.unit.agent_recorded import Recorded

ANDROID = Path(__file__).parent.parent / "fixtures" / "agent" / "android"
IOS = Path(__file__).parent.parent / "fixtures" / "agent" / "ios"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

ALL: dict[str, str | CommandOutput] = {
    "getprop": "getprop.txt",
    "settings list": "settings-list-global.txt",
    "pm list": "pm-list-packages.txt",
    "dumpsys package": "dumpsys-package-packages.txt",
}


def android(run: Callable[[Sequence[str]], CommandOutput]) -> AndroidCollector:
    return AndroidCollector(agent_version="1.0.0", run=run, clock=NOW.timestamp)


def collect_android(**changes: str | CommandOutput) -> Posture:
    return android(Recorded(ANDROID, {**ALL, **changes})).collect()


def collect_ios(path: Path, max_age: float = 86400.0) -> Posture:
    return IosCollector(
        agent_version="1.0.0", device_info=path, clock=NOW.timestamp, max_age=max_age
    ).collect()


def report_of(posture: Posture) -> list[ReportedAttribute]:
    """The report the appliance keeps of this posture, after the wire."""
    found = []
    for part in (posture.sent, posture.held):
        for (vendor, subtype), attributes in part.items():
            message = pull_pa_message(push_pa_message(PaMessage(1, attributes)))
            found += [reported(vendor, subtype, a) for a in message.attributes]
    return found


def facts_of(posture: Posture) -> PostureFacts:
    return facts_from_report(report_of(posture))


ANDROID_POLICY = Policy(
    "android-baseline",
    Platform.ANDROID,
    (
        OsRule("os", os="Android", min_version="15"),
        SoftwareRule("chrome", product="com.android.chrome", min_version="140"),
        PatchManagementRule("security-updates", product="Android", max_missing=1),
    ),
)
IOS_POLICY = Policy(
    "ios-baseline",
    Platform.IOS,
    (
        OsRule("os", os="iOS", min_version="26.0"),
        SoftwareRule("chrome", product="com.google.chrome.ios", min_version="142"),
    ),
)


def failed(policy: Policy, posture: Posture) -> set[str]:
    verdict = evaluate(policy, facts_of(posture), None, NOW)
    return {r.rule for r in verdict.trace if r.outcome.name == "FALSE"}


# --- Android -----------------------------------------------------------------------------


def test_an_android_phone_reports_its_os_and_integrity() -> None:
    posture = collect_android()
    assert posture.problems == ()
    assert posture.sent[OS] == (
        ProductInformation(11129, 0, "Android"),
        StringVersion("16", "BP3A.251105.015", "arm64-v8a"),
        NumericVersion(16, 0, 0, 0, 0),
        OperationalStatus(
            OperationalStatusCode.OPERATIONAL,
            OperationalResultCode.SUCCEEDED,
            datetime(2026, 11, 20, 7, 53, 12, 482000, tzinfo=UTC),
        ),
        DeviceSecurity(passcode=None, compromised=False, encrypted=True, debugging=False),
    )
    assert posture.sent[NEA_CLIENT] == (AgentInfo("android", "1.0.0", False, ""),)


def test_a_current_patch_level_misses_no_bulletin() -> None:
    assert collect_android().sent[PATCH_MANAGEMENT] == (
        PatchManagement("Android security updates", True, None, ()),
    )


def test_packages_are_versioned_by_their_version_names() -> None:
    (packages,) = collect_android().held[OS]
    assert isinstance(packages, InstalledPackages)
    found = dict(packages.packages)
    assert len(found) == 9
    assert found["com.android.chrome"] == "142.0.7444.171"  # not the factory 130 (hidden)
    assert found["com.corp.vpnclient"] == "412"  # versionName=null: the versionCode


def test_host_checker_reads_an_androids_os_packages_and_patch_state() -> None:
    facts = facts_of(collect_android())
    assert (facts.platform, facts.os_name, facts.os_version) == (
        Platform.ANDROID,
        "Android",
        "16",
    )
    assert facts.packages is not None and facts.packages["android"] == "16"
    assert facts.patch_managers is not None
    assert facts.patch_managers[0].missing == ()
    assert evaluate(ANDROID_POLICY, facts, None, NOW).compliance is Compliance.COMPLIANT


def test_the_device_security_attribute_is_kept_in_the_report() -> None:
    (security,) = [a for a in report_of(collect_android()) if a.name == "DeviceSecurity"]
    assert (security.component_subtype, security.vendor, security.type) == (1, 32473, 11)
    assert security.value == {
        "passcode": None,
        "compromised": False,
        "encrypted": True,
        "debugging": False,
    }


def test_an_unlocked_phone_months_behind_is_compromised_and_misses_bulletins() -> None:
    posture = collect_android(
        getprop="getprop-unlocked-behind.txt",
        **{"settings list": "settings-list-global-debugging.txt"},
    )
    assert posture.sent[OS][-1] == DeviceSecurity(None, True, True, True)
    (updates,) = posture.sent[PATCH_MANAGEMENT]
    assert updates == PatchManagement(
        "Android security updates",
        False,  # automatic system updates off
        None,
        tuple(
            MissingPatch(f"ASB-2026-{month:02d}", PatchSeverity.UNKNOWN)
            for month in (7, 8, 9, 10, 11)  # July's second half (level 2026-07-01) onwards
        ),
    )
    assert failed(ANDROID_POLICY, posture) == {"os", "security-updates"}


@pytest.mark.parametrize(
    ("level", "today", "missing"),
    [
        (date(2026, 11, 5), date(2026, 11, 23), []),
        (date(2026, 11, 1), date(2026, 11, 23), ["ASB-2026-11"]),
        (date(2026, 10, 5), date(2026, 11, 1), []),  # November's comes out Monday the 2nd
        (date(2026, 10, 5), date(2026, 11, 2), ["ASB-2026-11"]),
        (date(2025, 12, 5), date(2026, 2, 2), ["ASB-2026-01", "ASB-2026-02"]),
        (date(2027, 1, 5), date(2026, 11, 23), []),  # a level from the future
    ],
)
def test_bulletins_count_from_their_first_monday(
    level: date, today: date, missing: list[str]
) -> None:
    assert missing_bulletins(level, today) == missing


def test_an_ancient_level_lists_the_newest_bulletins_within_the_bound() -> None:
    found = missing_bulletins(date(1990, 1, 1), date(2026, 11, 23))
    assert len(found) == 240 and found[-1] == "ASB-2026-11" and found[0] == "ASB-2006-12"


def test_integrity_signs_count_only_where_the_device_shows_them() -> None:
    assert device_security({}, None) == DeviceSecurity(None, None, None, None)
    assert device_security({"ro.boot.verifiedbootstate": "yellow"}, {}) == DeviceSecurity(
        None, True, None, False
    )
    assert device_security(
        {"ro.build.tags": "test-keys", "ro.crypto.state": "unencrypted"}, {"adb_enabled": "1"}
    ) == DeviceSecurity(None, True, False, True)


def test_without_settings_patch_management_is_unknown_and_debugging_too() -> None:
    posture = collect_android(**{"settings list": CommandOutput(255, "")})
    assert PATCH_MANAGEMENT not in posture.sent
    assert posture.sent[OS][-1] == DeviceSecurity(None, False, True, None)
    assert posture.problems == (
        "settings: settings exited 255",
        "patch management: whether automatic system updates are on is unknown",
    )


def test_without_dumpsys_packages_keep_their_version_codes() -> None:
    posture = collect_android(**{"dumpsys package": CommandOutput(0, "Permission Denial\n")})
    (packages,) = posture.held[OS]
    assert isinstance(packages, InstalledPackages)
    assert Package("com.android.chrome", "744417633") in packages.packages
    assert posture.problems == ("package versions: dumpsys printed no Packages section",)


ANDROID_BROKEN: dict[str, tuple[tuple[str, ...], Callable[[Posture], bool]]] = {
    "getprop": (("getprop: ",), lambda p: OS not in p.sent and PATCH_MANAGEMENT not in p.sent),
    "settings list": (
        ("settings: ", "patch management: "),
        lambda p: PATCH_MANAGEMENT not in p.sent,
    ),
    "pm list": (("packages: ",), lambda p: p.held[OS] == ()),
}
ANDROID_GARBAGE = {
    "other text": CommandOutput(0, "/system/bin/sh: getprop: inaccessible or not found\n"),
    "half a line": CommandOutput(0, "[ro.build.version.rel"),
    "failed": CommandOutput(1, ""),
}


@pytest.mark.parametrize("garbage", ANDROID_GARBAGE, ids=list(ANDROID_GARBAGE))
@pytest.mark.parametrize("command", ANDROID_BROKEN)
def test_a_broken_android_output_leaves_its_fact_out_and_names_it(
    command: str, garbage: str
) -> None:
    posture = collect_android(**{command: ANDROID_GARBAGE[garbage]})
    starts, gone = ANDROID_BROKEN[command]
    assert posture.problems and all(p.startswith(starts) for p in posture.problems)
    assert gone(posture)
    posture.fingerprint()


@pytest.mark.parametrize("level", ["", "2026-13-05", "November 2026", "2026-11-5"])
def test_an_unreadable_patch_level_is_a_noted_problem(level: str) -> None:
    props = (ANDROID / "getprop.txt").read_text().replace("2026-11-05", level)
    posture = collect_android(getprop=CommandOutput(0, props))
    assert PATCH_MANAGEMENT not in posture.sent
    assert posture.problems == (
        f"patch management: the security patch level {level!r} is not a date",
    )


# --- iOS ---------------------------------------------------------------------------------


def test_an_iphone_is_read_from_its_mdms_answers() -> None:
    posture = collect_ios(IOS / "device-info-mdm.plist")
    assert posture.problems == ()
    assert posture.sent[OS] == (
        ProductInformation(63, 0, "iOS"),
        StringVersion("26.1", "23B85", "iPhone17,1"),
        NumericVersion(26, 1, 0, 0, 0),
        DeviceSecurity(passcode=True, compromised=None, encrypted=True, debugging=None),
    )
    assert posture.sent[NEA_CLIENT] == (AgentInfo("ios", "1.0.0", False, ""),)
    assert posture.held[OS] == (
        InstalledPackages(
            (
                Package("com.apple.mobilesafari", "26.1"),
                Package("com.corp.vpn", "412"),
                Package("com.google.chrome.ios", "142.0.7444.148"),
                Package("com.microsoft.skype.teams", "7.22.1"),
            )
        ),
    )
    assert failed(IOS_POLICY, posture) == set()


def test_an_ipad_is_read_from_the_apps_json() -> None:
    posture = collect_ios(IOS / "device-info-app.json")
    assert posture.sent[OS][0] == ProductInformation(63, 0, "iPadOS")
    assert posture.sent[OS][-1] == DeviceSecurity(True, False, True, None)
    assert posture.held == {OS: ()}  # the app lists no applications
    facts = facts_of(posture)
    assert (facts.platform, facts.os_version, facts.packages) == (Platform.IOS, "26.1", None)


def test_a_jailbroken_iphone_without_a_passcode_on_an_old_ios() -> None:
    posture = collect_ios(IOS / "device-info-jailbroken.json")
    assert posture.sent[OS][-1] == DeviceSecurity(False, True, False, None)
    assert posture.sent[OS][1] == StringVersion("17.5.1", "21F90", "iPhone14,5")
    policy = Policy("ios", Platform.IOS, (IOS_POLICY.rules[0],))
    assert failed(policy, posture) == {"os"}


def test_stale_device_information_is_refused(tmp_path: Path) -> None:
    posture = collect_ios(IOS / "device-info-stale.json")
    assert OS not in posture.sent
    assert posture.problems == ("device information: the device information is 100 hours old",)


def test_without_collected_at_the_files_age_counts(tmp_path: Path) -> None:
    info = json.loads((IOS / "device-info-app.json").read_text())
    del info["CollectedAt"]
    path = tmp_path / "device.json"
    path.write_text(json.dumps(info))
    os.utime(path, (NOW.timestamp() - 7200, NOW.timestamp() - 7200))
    assert collect_ios(path).problems == ()
    assert collect_ios(path, max_age=3600).problems == (
        "device information: the device information is 2 hours old",
    )


@pytest.mark.parametrize(
    "content", [b"", b"{", b"[]", b"<?xml version='1.0'?><plist><dict><key>", b"\x00\xff"]
)
def test_a_broken_device_information_file_is_a_noted_problem(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "device"
    path.write_bytes(content)
    posture = collect_ios(path)
    assert set(posture.sent) == {NEA_CLIENT}
    assert len(posture.problems) == 1 and posture.problems[0].startswith("device information: ")


def test_a_missing_device_information_file_is_a_noted_problem(tmp_path: Path) -> None:
    posture = collect_ios(tmp_path / "absent.plist")
    assert posture.problems == (
        f"device information: cannot read {tmp_path / 'absent.plist'}: No such file or directory",
    )


def test_device_information_without_a_version_leaves_the_os_out(tmp_path: Path) -> None:
    path = tmp_path / "device.plist"
    shutil.copyfile(IOS / "device-info-mdm.plist", path)
    info = plistlib.loads(path.read_bytes())
    del info["OSVersion"]
    path.write_bytes(plistlib.dumps(info))
    posture = collect_ios(path)
    assert posture.problems == ("os: no ProductVersion (or OSVersion) in the device information",)
    assert posture.sent[OS] == (DeviceSecurity(True, None, True, None),)


# --- the attribute -----------------------------------------------------------------------


@pytest.mark.parametrize("facts", list(itertools.product([None, False, True], repeat=4)))
def test_device_security_travels_with_its_unknowns(facts: tuple[bool | None, ...]) -> None:
    attribute = DeviceSecurity(*facts)
    assert pull_pa_message(push_pa_message(PaMessage(1, (attribute,)))).attributes == (attribute,)


# --- any input at all --------------------------------------------------------------------

LINES = st.sampled_from(
    [
        "[ro.build.version.release]: [16]\n",
        "[ro.build.version.release]: [x]\n",
        "[ro.build.version.security_patch]: [2026-02-30]\n",
        "[ro.runtime.firstboot]: [99999999999999999]\n",
        "package:a.b versionCode:1\n",
        "Packages:\n",
        "  Package [a.b] (1):\n",
        "    versionName=\udcff\n",
        "adb_enabled=1\n",
        "=\n",
    ]
)
OUTPUTS = st.text() | st.lists(LINES | st.text(max_size=30), max_size=12).map("".join)
ANDROID_PARSERS: dict[str, Callable[[AndroidCollector], Any]] = {
    "properties": lambda c: c.properties(),
    "settings": lambda c: c.global_settings(),
    "os": lambda c: c.os(c.properties()),
    "patch management": lambda c: c.patch_management(c.properties(), c.global_settings()),
    "packages": lambda c: c.packages([]),
}


def attributes_in(result: Any) -> tuple[PaAttribute, ...]:
    if isinstance(result, PaAttribute):
        return (result,)
    if isinstance(result, tuple):
        return tuple(a for a in result if isinstance(a, PaAttribute))
    return ()


@pytest.mark.parametrize("parser", ANDROID_PARSERS)
@settings(max_examples=150, deadline=None)
@given(output=OUTPUTS)
def test_any_android_output_gives_an_attribute_that_encodes_or_a_collect_error(
    parser: str, output: str
) -> None:
    try:
        result = ANDROID_PARSERS[parser](android(lambda argv: CommandOutput(0, output)))
    except CollectError:
        return
    push_pa_message(PaMessage(1, attributes_in(result)))


SCALARS = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=40)
KEYS = st.sampled_from(
    [
        "ProductName",
        "ProductVersion",
        "OSVersion",
        "BuildVersion",
        "ProductType",
        "PasscodePresent",
        "HardwareEncryptionCaps",
        "Jailbroken",
        "SecurityInfo",
        "InstalledApplicationList",
        "Identifier",
        "ShortVersion",
        "CollectedAt",
    ]
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=6),
    max_leaves=20,
)
INFOS = st.dictionaries(KEYS, VALUES, max_size=10)
IOS_PARSERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "os": ios_os,
    "security": ios_security,
    "packages": ios_packages,
}


@pytest.mark.parametrize("parser", IOS_PARSERS)
@settings(max_examples=200, deadline=None)
@given(info=INFOS)
def test_any_device_information_gives_an_attribute_that_encodes_or_a_collect_error(
    parser: str, info: dict[str, Any]
) -> None:
    try:
        result = IOS_PARSERS[parser](info)
    except CollectError:
        return
    push_pa_message(PaMessage(1, attributes_in(result)))


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=200) | INFOS.map(lambda i: json.dumps(i).encode()))
def test_any_device_information_file_is_collected_or_a_noted_problem(
    tmp_path: Path, data: bytes
) -> None:
    path = tmp_path / "device"
    path.write_bytes(data)
    posture = collect_ios(path, max_age=float("inf"))
    posture.fingerprint()
    facts_of(posture)
