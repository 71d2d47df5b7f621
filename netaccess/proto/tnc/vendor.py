"""Our own PA-TNC attributes (RFC 5792 §4.2, vendor-defined types), under our vendor id: the
posture facts the IETF set lacks. Importing this module registers them with pa.py.

Every value is big-endian. S8 and S16 are UTF-8 strings after an 8- or 16-bit byte length;
Count(16) is the number of entries that follow. Flag bits not listed are reserved: sent as
0 and ignored on receipt. An Age is seconds before the collector measured (0xFFFFFFFF:
unknown or never), so the validator needs no clock of the endpoint's. Time is RFC 5792's
20-character "YYYY-MM-DDTHH:MM:SSZ".

==== ================ =========================================================================
Type Name             Value layout
==== ================ =========================================================================
1    Antivirus        Flags(8: 0x80 running, 0x40 real-time protection on) SignatureAge(32)
                      S8 product, S8 vendor, S8 product version, S8 signature version
2    Firewall         S8 product, Count(16), per profile: Flags(8: 0x80 enabled) S8 profile
3    PatchManagement  Flags(8: 0x80 enabled and running) LastScanAge(32) S8 product,
                      Count(16), per missing patch: Severity(8) S8 patch id
4    RunningProcesses Count(16), per process: Pid(32) S8 name S16 path
5    FileHashes       Count(16), per file: SHA-256(256 bits) S16 path
6    RegistryValues   Count(16), per value: ValueType(8) S16 key path S16 value name S16 data
7    Certificates     Count(16), per certificate: SHA-256 fingerprint of the DER (256 bits)
                      NotAfter(Time) S8 store S16 subject S16 issuer
8    AgentInfo        (agent to appliance) Flags(8: 0x80 this report follows a local change)
                      S8 platform S8 agent version S16 what changed ("" if nothing)
9    AgentUpdate      (appliance to agent) SHA-256 of the build (256 bits) S8 platform
                      S8 version S16 download path on the portal
10   Remediation      (appliance to agent) Count(16), per failed rule: S8 action ("" for none)
                      S8 policy S8 rule S16 instructions S16 link
11   DeviceSecurity   (agent to appliance, mobiles) Known(8) Set(8), both with the bits 0x80
                      a screen-lock passcode is set, 0x40 compromised (jailbroken, rooted,
                      bootloader unlocked or boot not verified), 0x20 storage encrypted,
                      0x10 debugging on (USB debugging, developer mode); a Set bit counts
                      only where Known has it, elsewhere the fact is unknown
==== ================ =========================================================================

Certificates travel as fingerprints, not DER, so an entry stays near 150 bytes. Severity:
0 unknown, 1 low, 2 moderate, 3 important, 4 critical. ValueType: Windows' REG_* numbers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from netaccess.proto.errors import LocalProtocolError
from netaccess.proto.tnc.buffer import Buffer, Writer
from netaccess.proto.tnc.errors import PaErrorCode, PaTncError
from netaccess.proto.tnc.pa import (
    AttributeKey,
    PaAttribute,
    pull_count,
    pull_enum,
    pull_string8,
    pull_string16,
    pull_utc_time,
    push_count,
    push_enum,
    push_string8,
    push_string16,
    push_utc_time,
    register_attribute,
    value_buffer,
)

# Provisional: RFC 5612's Private Enterprise Number for documentation, until IANA assigns
# ours. Peers that do not know it skip these attributes (we never send them with NOSKIP).
NETACCESS_PEN = 32473

_UNKNOWN_AGE = 0xFFFFFFFF
_SHA256_SIZE = 32
_RUNNING = 0x80
_REAL_TIME_PROTECTION = 0x40
_ENABLED = 0x80
_CHANGED = 0x80


class NetaccessAttributeType(enum.IntEnum):
    """Our attribute types under NETACCESS_PEN (0 is left unused, as the IETF's Testing)."""

    ANTIVIRUS = 1
    FIREWALL = 2
    PATCH_MANAGEMENT = 3
    RUNNING_PROCESSES = 4
    FILE_HASHES = 5
    REGISTRY_VALUES = 6
    CERTIFICATES = 7
    AGENT_INFO = 8
    AGENT_UPDATE = 9
    REMEDIATION = 10
    DEVICE_SECURITY = 11


class PatchSeverity(enum.IntEnum):
    """How bad a missing patch is, on the vendors' common four-step scale."""

    UNKNOWN = 0
    LOW = 1
    MODERATE = 2
    IMPORTANT = 3
    CRITICAL = 4


class RegistryValueType(enum.IntEnum):
    """Windows registry value types, numbered as Windows numbers them (REG_*)."""

    NONE = 0
    SZ = 1
    EXPAND_SZ = 2
    BINARY = 3
    DWORD = 4
    DWORD_BIG_ENDIAN = 5
    LINK = 6
    MULTI_SZ = 7
    RESOURCE_LIST = 8
    FULL_RESOURCE_DESCRIPTOR = 9
    RESOURCE_REQUIREMENTS_LIST = 10
    QWORD = 11


# --- values -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentInfo(PaAttribute):
    """Type 8, from the agent: what it is, and whether a local change (the firewall turned
    off, a package installed) made it report now rather than on its interval."""

    platform: str
    version: str
    changed: bool = False
    change: str = ""


@dataclass(frozen=True, slots=True)
class AgentUpdate(PaAttribute):
    """Type 9, from the appliance: the newest agent build for the agent's platform and where
    on the portal to fetch it. The agent checks the build's signature itself."""

    sha256: bytes
    platform: str
    version: str
    path: str


@dataclass(frozen=True, slots=True)
class RemediationStep:
    action: str  # what the agent may do itself ("trigger_patch_manager", ...), "" for none
    policy: str
    rule: str
    instructions: str
    link: str


@dataclass(frozen=True, slots=True)
class Remediation(PaAttribute):
    """Type 10, from the appliance: each failed rule's fix, with the action the agent may
    run for it."""

    steps: tuple[RemediationStep, ...]


@dataclass(frozen=True, slots=True)
class Antivirus(PaAttribute):
    """Type 1. `signature_age`: seconds since the signatures in use were released, as the
    endpoint measured it (an age, not a date, so clock skew between endpoint and appliance
    cannot make stale signatures look fresh); None when unknown."""

    product: str
    vendor: str
    version: str
    running: bool
    real_time_protection: bool
    signature_version: str
    signature_age: int | None


@dataclass(frozen=True, slots=True)
class FirewallProfile:
    """One profile of a host firewall: Windows' "domain", "private" and "public", or one
    name such as "default" where the firewall has no profiles."""

    name: str
    enabled: bool


@dataclass(frozen=True, slots=True)
class Firewall(PaAttribute):
    """Type 2: the host firewall product and whether each of its profiles is on."""

    product: str
    profiles: tuple[FirewallProfile, ...]


@dataclass(frozen=True, slots=True)
class MissingPatch:
    """A patch the patch manager knows of and has not installed: its id as the manager
    names it ("KB5034441", "DSA-5678-1") and its severity."""

    id: str
    severity: PatchSeverity


@dataclass(frozen=True, slots=True)
class PatchManagement(PaAttribute):
    """Type 3: the patch manager ("Windows Update", "unattended-upgrades", "SCCM"), whether
    it is enabled and running, seconds since its last scan (None: never or unknown), and
    the patches that scan found missing."""

    product: str
    enabled: bool
    last_scan_age: int | None
    missing: tuple[MissingPatch, ...]


@dataclass(frozen=True, slots=True)
class Process:
    """A running process; `path` is "" where the endpoint cannot tell (kernel threads)."""

    pid: int
    name: str
    path: str


@dataclass(frozen=True, slots=True)
class RunningProcesses(PaAttribute):
    """Type 4: the processes running when the collector looked."""

    processes: tuple[Process, ...]


@dataclass(frozen=True, slots=True)
class FileHash:
    """A file and the SHA-256 of its contents (32 bytes)."""

    path: str
    sha256: bytes


@dataclass(frozen=True, slots=True)
class FileHashes(PaAttribute):
    """Type 5: hashes of the files the IMV asked about (or the collector is set to hash)."""

    files: tuple[FileHash, ...]


@dataclass(frozen=True, slots=True)
class RegistryValue:
    """A Windows registry value. `data` is text: strings as they are, DWORD and QWORD in
    decimal, MULTI_SZ joined with newlines, anything else as lower-case hex."""

    key: str
    name: str
    value_type: RegistryValueType
    data: str


@dataclass(frozen=True, slots=True)
class RegistryValues(PaAttribute):
    """Type 6: registry values the IMV asked about."""

    values: tuple[RegistryValue, ...]


@dataclass(frozen=True, slots=True)
class Certificate:
    """A certificate in a store ("LocalMachine\\My", "/etc/ssl/certs"): the SHA-256 of its
    DER, its subject and issuer as RFC 4514 strings and its notAfter, aware and in UTC."""

    store: str
    sha256: bytes
    subject: str
    not_after: datetime
    issuer: str = ""


@dataclass(frozen=True, slots=True)
class Certificates(PaAttribute):
    """Type 7: certificates found in the endpoint's stores."""

    certificates: tuple[Certificate, ...]


@dataclass(frozen=True, slots=True)
class DeviceSecurity(PaAttribute):
    """Type 11: what a phone or tablet says of its own integrity; None where the collector
    cannot tell (an iOS device's MDM knows the passcode, not whether it is jailbroken)."""

    passcode: bool | None
    compromised: bool | None
    encrypted: bool | None
    debugging: bool | None


# --- field helpers ----------------------------------------------------------------------------


def _pull_age(buf: Buffer, what: str) -> int | None:
    age = buf.pull_uint32(what)
    return None if age == _UNKNOWN_AGE else age


def _push_age(writer: Writer, age: int | None, what: str) -> None:
    if age is not None and not 0 <= age < _UNKNOWN_AGE:
        raise LocalProtocolError(f"{what} {age} is not 0..{_UNKNOWN_AGE - 1} seconds or None")
    writer.push_uint32(_UNKNOWN_AGE if age is None else age, what)


def _push_sha256(writer: Writer, digest: bytes, what: str) -> None:
    if len(digest) != _SHA256_SIZE:
        raise LocalProtocolError(f"{what} is {len(digest)} bytes, a SHA-256 is 32")
    writer.push_bytes(digest)


# --- codecs -----------------------------------------------------------------------------------


def pull_antivirus(value: bytes) -> Antivirus:
    with value_buffer(value) as buf:
        flags = buf.pull_uint8("antivirus flags")
        signature_age = _pull_age(buf, "signature age")
        return Antivirus(
            product=pull_string8(buf, "antivirus product"),
            vendor=pull_string8(buf, "antivirus vendor"),
            version=pull_string8(buf, "antivirus version"),
            running=bool(flags & _RUNNING),
            real_time_protection=bool(flags & _REAL_TIME_PROTECTION),
            signature_version=pull_string8(buf, "signature version"),
            signature_age=signature_age,
        )


def push_antivirus(attribute: Antivirus) -> bytes:
    writer = Writer()
    flags = (_RUNNING if attribute.running else 0) | (
        _REAL_TIME_PROTECTION if attribute.real_time_protection else 0
    )
    writer.push_uint8(flags)
    _push_age(writer, attribute.signature_age, "signature age")
    push_string8(writer, attribute.product, "antivirus product")
    push_string8(writer, attribute.vendor, "antivirus vendor")
    push_string8(writer, attribute.version, "antivirus version")
    push_string8(writer, attribute.signature_version, "signature version")
    return writer.data()


def pull_firewall(value: bytes) -> Firewall:
    with value_buffer(value) as buf:
        product = pull_string8(buf, "firewall product")
        count = pull_count(buf, "profile count", min_entry_size=2)
        profiles = []
        for _ in range(count):
            enabled = bool(buf.pull_uint8("profile flags") & _ENABLED)
            profiles.append(FirewallProfile(pull_string8(buf, "profile name"), enabled))
        return Firewall(product, tuple(profiles))


def push_firewall(attribute: Firewall) -> bytes:
    writer = Writer()
    push_string8(writer, attribute.product, "firewall product")
    push_count(writer, len(attribute.profiles), "profile count")
    for profile in attribute.profiles:
        writer.push_uint8(_ENABLED if profile.enabled else 0)
        push_string8(writer, profile.name, "profile name")
    return writer.data()


def pull_patch_management(value: bytes) -> PatchManagement:
    with value_buffer(value) as buf:
        enabled = bool(buf.pull_uint8("patch management flags") & _ENABLED)
        last_scan_age = _pull_age(buf, "last scan age")
        product = pull_string8(buf, "patch management product")
        count = pull_count(buf, "missing patch count", min_entry_size=2)
        missing = []
        for _ in range(count):
            severity = pull_enum(buf, PatchSeverity, 8, "patch severity")
            missing.append(MissingPatch(pull_string8(buf, "patch id"), severity))
        return PatchManagement(product, enabled, last_scan_age, tuple(missing))


def push_patch_management(attribute: PatchManagement) -> bytes:
    writer = Writer()
    writer.push_uint8(_ENABLED if attribute.enabled else 0)
    _push_age(writer, attribute.last_scan_age, "last scan age")
    push_string8(writer, attribute.product, "patch management product")
    push_count(writer, len(attribute.missing), "missing patch count")
    for patch in attribute.missing:
        push_enum(writer, PatchSeverity, patch.severity, 8, "patch severity")
        push_string8(writer, patch.id, "patch id")
    return writer.data()


def pull_running_processes(value: bytes) -> RunningProcesses:
    with value_buffer(value) as buf:
        count = pull_count(buf, "process count", min_entry_size=7)
        processes = []
        for _ in range(count):
            pid = buf.pull_uint32("pid")
            name = pull_string8(buf, "process name")
            processes.append(Process(pid, name, pull_string16(buf, "process path")))
        return RunningProcesses(tuple(processes))


def push_running_processes(attribute: RunningProcesses) -> bytes:
    writer = Writer()
    push_count(writer, len(attribute.processes), "process count")
    for process in attribute.processes:
        writer.push_uint32(process.pid, "pid")
        push_string8(writer, process.name, "process name")
        push_string16(writer, process.path, "process path")
    return writer.data()


def pull_file_hashes(value: bytes) -> FileHashes:
    with value_buffer(value) as buf:
        count = pull_count(buf, "file count", min_entry_size=_SHA256_SIZE + 2)
        files = []
        for _ in range(count):
            digest = buf.pull_bytes(_SHA256_SIZE, "file sha-256")
            files.append(FileHash(pull_string16(buf, "file path"), digest))
        return FileHashes(tuple(files))


def push_file_hashes(attribute: FileHashes) -> bytes:
    writer = Writer()
    push_count(writer, len(attribute.files), "file count")
    for file in attribute.files:
        _push_sha256(writer, file.sha256, "file sha-256")
        push_string16(writer, file.path, "file path")
    return writer.data()


def pull_registry_values(value: bytes) -> RegistryValues:
    with value_buffer(value) as buf:
        count = pull_count(buf, "registry value count", min_entry_size=7)
        values = []
        for _ in range(count):
            value_type = pull_enum(buf, RegistryValueType, 8, "registry value type")
            key = pull_string16(buf, "registry key")
            name = pull_string16(buf, "registry value name")
            data = pull_string16(buf, "registry value data")
            values.append(RegistryValue(key, name, value_type, data))
        return RegistryValues(tuple(values))


def push_registry_values(attribute: RegistryValues) -> bytes:
    writer = Writer()
    push_count(writer, len(attribute.values), "registry value count")
    for item in attribute.values:
        push_enum(writer, RegistryValueType, item.value_type, 8, "registry value type")
        push_string16(writer, item.key, "registry key")
        push_string16(writer, item.name, "registry value name")
        push_string16(writer, item.data, "registry value data")
    return writer.data()


def pull_certificates(value: bytes) -> Certificates:
    with value_buffer(value) as buf:
        count = pull_count(buf, "certificate count", min_entry_size=_SHA256_SIZE + 20 + 5)
        certificates = []
        for _ in range(count):
            digest = buf.pull_bytes(_SHA256_SIZE, "certificate sha-256")
            not_after_at = buf.offset
            not_after = pull_utc_time(buf, "certificate not after")
            if not_after is None:
                raise PaTncError(
                    PaErrorCode.INVALID_PARAMETER,
                    "a certificate's not after cannot be the all-zero time",
                    offset=not_after_at,
                )
            store = pull_string8(buf, "certificate store")
            subject = pull_string16(buf, "certificate subject")
            issuer = pull_string16(buf, "certificate issuer")
            certificates.append(Certificate(store, digest, subject, not_after, issuer))
        return Certificates(tuple(certificates))


def push_certificates(attribute: Certificates) -> bytes:
    writer = Writer()
    push_count(writer, len(attribute.certificates), "certificate count")
    for certificate in attribute.certificates:
        _push_sha256(writer, certificate.sha256, "certificate sha-256")
        if certificate.not_after is None:
            raise LocalProtocolError("a certificate's not after is required")
        push_utc_time(writer, certificate.not_after, "certificate not after")
        push_string8(writer, certificate.store, "certificate store")
        push_string16(writer, certificate.subject, "certificate subject")
        push_string16(writer, certificate.issuer, "certificate issuer")
    return writer.data()


def pull_agent_info(value: bytes) -> AgentInfo:
    with value_buffer(value) as buf:
        changed = bool(buf.pull_uint8("agent flags") & _CHANGED)
        platform = pull_string8(buf, "agent platform")
        version = pull_string8(buf, "agent version")
        return AgentInfo(platform, version, changed, pull_string16(buf, "agent change"))


def push_agent_info(attribute: AgentInfo) -> bytes:
    writer = Writer()
    writer.push_uint8(_CHANGED if attribute.changed else 0)
    push_string8(writer, attribute.platform, "agent platform")
    push_string8(writer, attribute.version, "agent version")
    push_string16(writer, attribute.change, "agent change")
    return writer.data()


def pull_agent_update(value: bytes) -> AgentUpdate:
    with value_buffer(value) as buf:
        sha256 = buf.pull_bytes(_SHA256_SIZE, "build SHA-256")
        platform = pull_string8(buf, "build platform")
        version = pull_string8(buf, "build version")
        return AgentUpdate(sha256, platform, version, pull_string16(buf, "build path"))


def push_agent_update(attribute: AgentUpdate) -> bytes:
    if len(attribute.sha256) != _SHA256_SIZE:
        raise LocalProtocolError(f"build SHA-256 must be {_SHA256_SIZE} bytes")
    writer = Writer()
    writer.push_bytes(attribute.sha256)
    push_string8(writer, attribute.platform, "build platform")
    push_string8(writer, attribute.version, "build version")
    push_string16(writer, attribute.path, "build path")
    return writer.data()


def pull_remediation(value: bytes) -> Remediation:
    with value_buffer(value) as buf:
        count = pull_count(buf, "remediation count", min_entry_size=7)
        steps = []
        for _ in range(count):
            action = pull_string8(buf, "remediation action")
            policy = pull_string8(buf, "remediation policy")
            rule = pull_string8(buf, "remediation rule")
            instructions = pull_string16(buf, "remediation instructions")
            link = pull_string16(buf, "remediation link")
            steps.append(RemediationStep(action, policy, rule, instructions, link))
        return Remediation(tuple(steps))


def push_remediation(attribute: Remediation) -> bytes:
    writer = Writer()
    push_count(writer, len(attribute.steps), "remediation count")
    for step in attribute.steps:
        push_string8(writer, step.action, "remediation action")
        push_string8(writer, step.policy, "remediation policy")
        push_string8(writer, step.rule, "remediation rule")
        push_string16(writer, step.instructions, "remediation instructions")
        push_string16(writer, step.link, "remediation link")
    return writer.data()


_DEVICE_FLAGS = (0x80, 0x40, 0x20, 0x10)  # passcode, compromised, encrypted, debugging


def pull_device_security(value: bytes) -> DeviceSecurity:
    with value_buffer(value) as buf:
        known = buf.pull_uint8("device facts known")
        flags = buf.pull_uint8("device facts set")
        facts = [bool(flags & bit) if known & bit else None for bit in _DEVICE_FLAGS]
        return DeviceSecurity(*facts)


def push_device_security(attribute: DeviceSecurity) -> bytes:
    facts = (attribute.passcode, attribute.compromised, attribute.encrypted, attribute.debugging)
    known = sum(bit for bit, fact in zip(_DEVICE_FLAGS, facts, strict=True) if fact is not None)
    flags = sum(bit for bit, fact in zip(_DEVICE_FLAGS, facts, strict=True) if fact)
    writer = Writer()
    writer.push_uint8(known)
    writer.push_uint8(flags)
    return writer.data()


register_attribute(
    AttributeKey(NETACCESS_PEN, NetaccessAttributeType.AGENT_INFO),
    AgentInfo,
    pull_agent_info,
    push_agent_info,
)
register_attribute(
    AttributeKey(NETACCESS_PEN, NetaccessAttributeType.AGENT_UPDATE),
    AgentUpdate,
    pull_agent_update,
    push_agent_update,
)
register_attribute(
    AttributeKey(NETACCESS_PEN, NetaccessAttributeType.REMEDIATION),
    Remediation,
    pull_remediation,
    push_remediation,
)
register_attribute(
    AttributeKey(NETACCESS_PEN, NetaccessAttributeType.ANTIVIRUS),
    Antivirus,
    pull_antivirus,
    push_antivirus,
)
register_attribute(
    AttributeKey(NETACCESS_PEN, NetaccessAttributeType.FIREWALL),
    Firewall,
    pull_firewall,
    push_firewall,
)
register_attribute(
    AttributeKey(NETACCESS_PEN, NetaccessAttributeType.PATCH_MANAGEMENT),
    PatchManagement,
    pull_patch_management,
    push_patch_management,
)
register_attribute(
    AttributeKey(NETACCESS_PEN, NetaccessAttributeType.RUNNING_PROCESSES),
    RunningProcesses,
    pull_running_processes,
    push_running_processes,
)
register_attribute(
    AttributeKey(NETACCESS_PEN, NetaccessAttributeType.FILE_HASHES),
    FileHashes,
    pull_file_hashes,
    push_file_hashes,
)
register_attribute(
    AttributeKey(NETACCESS_PEN, NetaccessAttributeType.REGISTRY_VALUES),
    RegistryValues,
    pull_registry_values,
    push_registry_values,
)
register_attribute(
    AttributeKey(NETACCESS_PEN, NetaccessAttributeType.CERTIFICATES),
    Certificates,
    pull_certificates,
    push_certificates,
)
register_attribute(
    AttributeKey(NETACCESS_PEN, NetaccessAttributeType.DEVICE_SECURITY),
    DeviceSecurity,
    pull_device_security,
    push_device_security,
)
