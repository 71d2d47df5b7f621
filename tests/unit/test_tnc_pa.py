"""PA-TNC (RFC 5792) and our vendor attributes: hand-written wire bytes, round trips, what a
malformed or unsupported message is refused with, and fuzzing of the decoder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netaccess.proto.errors import LocalProtocolError
from netaccess.proto.tnc.errors import IETF_PEN, PaErrorCode, PaTncError
from netaccess.proto.tnc.pa import (
    AssessmentResult,
    AssessmentResultCode,
    AttributeKey,
    AttributeRequest,
    AttributeType,
    AttributeTypeNotSupportedInfo,
    FactoryDefaultPasswordEnabled,
    ForwardingEnabled,
    ForwardingState,
    InstalledPackages,
    InvalidParameterInfo,
    NumericVersion,
    OperationalResultCode,
    OperationalStatus,
    OperationalStatusCode,
    OtherErrorInfo,
    PaAttribute,
    Package,
    PaMessage,
    PaTncErrorAttribute,
    PortFilter,
    PortFilterEntry,
    ProductInformation,
    RawAttribute,
    RawRemediationParameters,
    RemediationInstructions,
    RemediationString,
    RemediationUri,
    SkippedAttribute,
    StringVersion,
    UnsupportedAttributeError,
    VersionNotSupportedInfo,
    attribute_key,
    error_attribute_for,
    pull_numeric_version,
    pull_pa_message,
    push_pa_message,
    register_attribute,
)
from netaccess.proto.tnc.vendor import (
    NETACCESS_PEN,
    AgentInfo,
    AgentUpdate,
    Antivirus,
    Certificate,
    Certificates,
    DeviceSecurity,
    FileHash,
    FileHashes,
    Firewall,
    FirewallProfile,
    MissingPatch,
    NetaccessAttributeType,
    PatchManagement,
    PatchSeverity,
    Process,
    RegistryValue,
    RegistryValues,
    RegistryValueType,
    Remediation,
    RemediationStep,
    RunningProcesses,
    pull_antivirus,
    push_antivirus,
)

FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def message(*attributes_hex: str, header: str = "01 000000 00000001") -> bytes:
    """A PA-TNC message: `header` (version 1, reserved, message id 1) and attributes."""
    return bytes.fromhex(header + "".join(attributes_hex))


# --- hand-written wire bytes (RFC 5792 §4.1, §4.2) -----------------------------------------------
# Attribute header: Flags(8) Vendor ID(24) Type(32) Length(32, header included), then the value.

PRODUCT_INFORMATION_HEX = (
    "00 000000 00000002 00000017"  # no flags, IETF, type 2 Product Information, length 12+11
    "000000 0001"  # product vendor PEN 0, product id 1
    "44 65 62 69 61 6e"  # name "Debian"
)
STRING_VERSION_HEX = (
    "00 000000 00000004 00000017"  # IETF, type 4 String Version, length 12+11
    "02 31 32"  # product version "12"
    "00"  # build number ""
    "06 78 38 36 5f 36 34"  # configuration version "x86_64"
)
NUMERIC_VERSION_HEX = (
    "00 000000 00000003 0000001c"  # IETF, type 3 Numeric Version, length 12+16
    "0000000c 00000005 00000000"  # major 12, minor 5, build 0
    "0000 0000"  # service pack major 0, minor 0
)
OPERATIONAL_STATUS_HEAD_HEX = (
    "00 000000 00000005 00000024"  # IETF, type 5 Operational Status, length 12+24
    "03 01 0000"  # status 3 operational, result 1 succeeded, reserved
)
OPERATIONAL_STATUS_HEX = (
    OPERATIONAL_STATUS_HEAD_HEX
    + "32 30 32 34 2d 30 35 2d 30 31 54 31 32 3a 30 30 3a 30 30 5a"  # "2024-05-01T12:00:00Z"
)
FORWARDING_ENABLED_HEX = (
    "00 000000 0000000b 00000010"  # IETF, type 11 Forwarding Enabled, length 12+4
    "00000000"  # 0 disabled
)
FACTORY_DEFAULT_PASSWORD_HEX = (
    "00 000000 0000000c 00000010"  # IETF, type 12 Factory Default Password Enabled, 12+4
    "00000000"  # 0 not enabled
)
ATTRIBUTE_REQUEST_HEX = (
    "00 000000 00000001 00000014"  # IETF, type 1 Attribute Request, length 12+8
    "00 000000 00000007"  # reserved, vendor IETF, type 7 Installed Packages
)
INSTALLED_PACKAGES_HEX = (
    "00 000000 00000007 0000003e"  # IETF, type 7 Installed Packages, length 12+50
    "0000 0002"  # reserved, package count 2
    "05 6c 69 62 63 36"  # "libc6"
    "0e 32 2e 33 36 2d 39 2b 64 65 62 31 32 75 34"  # "2.36-9+deb12u4"
    "07 6f 70 65 6e 73 73 6c"  # "openssl"
    "10 33 2e 30 2e 31 31 2d 31 7e 64 65 62 31 32 75 32"  # "3.0.11-1~deb12u2"
)
INVALID_PARAMETER_ERROR_HEX = (
    "00 000000 00000008 00000020"  # IETF, type 8 PA-TNC Error, length 12+20
    "00 000000 00000001"  # reserved, error code vendor IETF, code 1 Invalid Parameter
    "01 000000 00000009"  # copy of the refused message's header (message id 9)
    "00000014"  # offset 20
)
VERSION_NOT_SUPPORTED_ERROR_HEX = (
    "00 000000 00000008 00000020"  # IETF, type 8 PA-TNC Error, length 12+20
    "00 000000 00000002"  # reserved, IETF, code 2 Version Not Supported
    "02 000000 00000009"  # copy of the refused header (version 2)
    "01 01 0000"  # max version 1, min version 1, reserved
)
ATTRIBUTE_TYPE_NOT_SUPPORTED_ERROR_HEX = (
    "00 000000 00000008 00000024"  # IETF, type 8 PA-TNC Error, length 12+24
    "00 000000 00000003"  # reserved, IETF, code 3 Attribute Type Not Supported
    "01 000000 00000009"  # copy of the refused header
    "80 00abcd 00000042"  # the refused attribute: NOSKIP, vendor 0xabcd, type 0x42
)
ASSESSMENT_RESULT_HEX = (
    "00 000000 00000009 00000010"  # IETF, type 9 Assessment Result, length 12+4
    "00000002"  # 2 major non-compliance
)
REMEDIATION_URI_HEX = (
    "00 000000 0000000a 00000023"  # IETF, type 10 Remediation Instructions, length 12+23
    "00 000000 00000001"  # reserved, parameters vendor IETF, type 1 URI
    "68 74 74 70 73 3a 2f 2f 6e 61 63 2f 66 69 78"  # "https://nac/fix"
)
REMEDIATION_STRING_HEX = (
    "00 000000 0000000a 00000021"  # IETF, type 10 Remediation Instructions, length 12+21
    "00 000000 00000002"  # reserved, parameters vendor IETF, type 2 string
    "00000006 55 70 64 61 74 65"  # string length 6, "Update"
    "02 65 6e"  # language tag "en"
)
PORT_FILTER_HEX = (
    "00 000000 00000006 00000014"  # IETF, type 6 Port Filter, length 12+8
    "01 06 0016"  # blocked, protocol 6 TCP, port 22
    "00 11 0035"  # allowed, protocol 17 UDP, port 53
)
# Our attributes: vendor 32473 = 0x007ed9.
ANTIVIRUS_HEX = (
    "00 007ed9 00000001 0000002a"  # our vendor, type 1 Antivirus, length 12+30
    "80"  # flags: running, real-time protection off
    "00000e10"  # signature age 3600 s
    "06 43 6c 61 6d 41 56"  # product "ClamAV"
    "05 43 69 73 63 6f"  # vendor "Cisco"
    "05 31 2e 30 2e 35"  # version "1.0.5"
    "05 32 37 33 30 30"  # signature version "27300"
)
FIREWALL_HEX = (
    "00 007ed9 00000002 0000001b"  # our vendor, type 2 Firewall, length 12+15
    "03 75 66 77"  # product "ufw"
    "0001"  # one profile
    "80 07 64 65 66 61 75 6c 74"  # enabled, "default"
)
PATCH_MANAGEMENT_HEX = (
    "00 007ed9 00000003 00000023"  # our vendor, type 3 Patch Management, length 12+23
    "80"  # flags: enabled
    "00015180"  # last scan 86400 s ago
    "03 61 70 74"  # product "apt"
    "0001"  # one missing patch
    "04 0a 44 53 41 2d 35 36 37 38 2d 31"  # severity 4 critical, "DSA-5678-1"
)
RUNNING_PROCESSES_HEX = (
    "00 007ed9 00000004 00000023"  # our vendor, type 4 Running Processes, length 12+23
    "0001"  # one process
    "00000001"  # pid 1
    "04 69 6e 69 74"  # name "init"
    "000a 2f 73 62 69 6e 2f 69 6e 69 74"  # path "/sbin/init" (16-bit length)
)
FILE_HASHES_HEX = (
    "00 007ed9 00000005 00000037"  # our vendor, type 5 File Hashes, length 12+43
    "0001"  # one file
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"  # SHA-256
    "0007 2f 62 69 6e 2f 73 68"  # path "/bin/sh"
)
REGISTRY_VALUES_HEX = (
    "00 007ed9 00000006 0000001e"  # our vendor, type 6 Registry Values, length 12+18
    "0001"  # one value
    "04"  # REG_DWORD
    "0006 48 4b 4c 4d 5c 58"  # key "HKLM\X"
    "0002 4f 6e"  # value name "On"
    "0001 31"  # data "1"
)
CERTIFICATES_HEX = (
    "00 007ed9 00000007 00000053"  # our vendor, type 7 Certificates, length 12+71
    "0001"  # one certificate
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"  # SHA-256 of the DER
    "32 30 33 30 2d 30 31 2d 30 31 54 30 30 3a 30 30 3a 30 30 5a"  # "2030-01-01T00:00:00Z"
    "02 4d 79"  # store "My"
    "0004 43 4e 3d 61"  # subject "CN=a"
    "0006 43 4e 3d 43 41 31"  # issuer "CN=CA1"
)
AGENT_INFO_HEX = (
    "00 007ed9 00000008 00000023"  # our vendor, type 8 Agent Info, length 12+23
    "80"  # a local change made it report
    "05 6c 69 6e 75 78"  # platform "linux"
    "05 31 2e 32 2e 30"  # version "1.2.0"
    "0008 66 69 72 65 77 61 6c 6c"  # what changed: "firewall"
)
AGENT_UPDATE_HEX = (
    "00 007ed9 00000009 0000003e"  # our vendor, type 9 Agent Update, length 12+50
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"  # SHA-256
    "05 6c 69 6e 75 78"  # platform "linux"
    "05 31 2e 33 2e 30"  # version "1.3.0"
    "0004 2f 61 2f 62"  # path "/a/b"
)
REMEDIATION_HEX = (
    "00 007ed9 0000000a 00000028"  # our vendor, type 10 Remediation, length 12+28
    "0001"  # one step
    "0f 65 6e 61 62 6c 65 5f 66 69 72 65 77 61 6c 6c"  # action "enable_firewall"
    "01 70"  # policy "p"
    "01 66"  # rule "f"
    "0002 4f 6e"  # instructions "On"
    "0000"  # no link
)

GOLDEN = [
    pytest.param(PRODUCT_INFORMATION_HEX, ProductInformation(0, 1, "Debian"), id="product-info"),
    pytest.param(STRING_VERSION_HEX, StringVersion("12", "", "x86_64"), id="string-version"),
    pytest.param(NUMERIC_VERSION_HEX, NumericVersion(12, 5, 0, 0, 0), id="numeric-version"),
    pytest.param(
        OPERATIONAL_STATUS_HEX,
        OperationalStatus(
            OperationalStatusCode.OPERATIONAL,
            OperationalResultCode.SUCCEEDED,
            datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC),
        ),
        id="operational-status",
    ),
    pytest.param(
        FORWARDING_ENABLED_HEX, ForwardingEnabled(ForwardingState.DISABLED), id="forwarding"
    ),
    pytest.param(
        FACTORY_DEFAULT_PASSWORD_HEX, FactoryDefaultPasswordEnabled(False), id="default-password"
    ),
    pytest.param(
        ATTRIBUTE_REQUEST_HEX,
        AttributeRequest((AttributeKey(IETF_PEN, AttributeType.INSTALLED_PACKAGES),)),
        id="attribute-request",
    ),
    pytest.param(
        INSTALLED_PACKAGES_HEX,
        InstalledPackages(
            (Package("libc6", "2.36-9+deb12u4"), Package("openssl", "3.0.11-1~deb12u2"))
        ),
        id="installed-packages",
    ),
    pytest.param(
        INVALID_PARAMETER_ERROR_HEX,
        PaTncErrorAttribute(InvalidParameterInfo(bytes.fromhex("0100000000000009"), 20)),
        id="error-invalid-parameter",
    ),
    pytest.param(
        VERSION_NOT_SUPPORTED_ERROR_HEX,
        PaTncErrorAttribute(VersionNotSupportedInfo(bytes.fromhex("0200000000000009"), 1, 1)),
        id="error-version-not-supported",
    ),
    pytest.param(
        ATTRIBUTE_TYPE_NOT_SUPPORTED_ERROR_HEX,
        PaTncErrorAttribute(
            AttributeTypeNotSupportedInfo(
                bytes.fromhex("0100000000000009"), 0x80, AttributeKey(0xABCD, 0x42)
            )
        ),
        id="error-attribute-type-not-supported",
    ),
    pytest.param(
        ASSESSMENT_RESULT_HEX,
        AssessmentResult(AssessmentResultCode.MAJOR_NON_COMPLIANCE),
        id="assessment-result",
    ),
    pytest.param(
        REMEDIATION_URI_HEX,
        RemediationInstructions(RemediationUri("https://nac/fix")),
        id="remediation-uri",
    ),
    pytest.param(
        REMEDIATION_STRING_HEX,
        RemediationInstructions(RemediationString("Update", "en")),
        id="remediation-string",
    ),
    pytest.param(
        PORT_FILTER_HEX,
        PortFilter((PortFilterEntry(True, 6, 22), PortFilterEntry(False, 17, 53))),
        id="port-filter",
    ),
    pytest.param(
        ANTIVIRUS_HEX,
        Antivirus(
            product="ClamAV",
            vendor="Cisco",
            version="1.0.5",
            running=True,
            real_time_protection=False,
            signature_version="27300",
            signature_age=3600,
        ),
        id="vendor-antivirus",
    ),
    pytest.param(
        FIREWALL_HEX, Firewall("ufw", (FirewallProfile("default", True),)), id="vendor-firewall"
    ),
    pytest.param(
        PATCH_MANAGEMENT_HEX,
        PatchManagement("apt", True, 86400, (MissingPatch("DSA-5678-1", PatchSeverity.CRITICAL),)),
        id="vendor-patch-management",
    ),
    pytest.param(
        RUNNING_PROCESSES_HEX,
        RunningProcesses((Process(1, "init", "/sbin/init"),)),
        id="vendor-running-processes",
    ),
    pytest.param(
        FILE_HASHES_HEX, FileHashes((FileHash("/bin/sh", bytes(range(32))),)), id="vendor-hashes"
    ),
    pytest.param(
        REGISTRY_VALUES_HEX,
        RegistryValues((RegistryValue("HKLM\\X", "On", RegistryValueType.DWORD, "1"),)),
        id="vendor-registry-values",
    ),
    pytest.param(
        CERTIFICATES_HEX,
        Certificates(
            (Certificate("My", b"\xaa" * 32, "CN=a", datetime(2030, 1, 1, tzinfo=UTC), "CN=CA1"),)
        ),
        id="vendor-certificates",
    ),
    pytest.param(
        AGENT_INFO_HEX, AgentInfo("linux", "1.2.0", True, "firewall"), id="vendor-agent-info"
    ),
    pytest.param(
        AGENT_UPDATE_HEX,
        AgentUpdate(bytes(range(32)), "linux", "1.3.0", "/a/b"),
        id="vendor-agent-update",
    ),
    pytest.param(
        REMEDIATION_HEX,
        Remediation((RemediationStep("enable_firewall", "p", "f", "On", ""),)),
        id="vendor-remediation",
    ),
]
ALL_GOLDEN_HEX = [str(param.values[0]) for param in GOLDEN]


@pytest.mark.parametrize(("attribute_hex", "attribute"), GOLDEN)
def test_an_attribute_decodes_from_its_hand_written_bytes(
    attribute_hex: str, attribute: PaAttribute
) -> None:
    assert pull_pa_message(message(attribute_hex)) == PaMessage(1, (attribute,))


@pytest.mark.parametrize(("attribute_hex", "attribute"), GOLDEN)
def test_an_attribute_encodes_to_its_hand_written_bytes(
    attribute_hex: str, attribute: PaAttribute
) -> None:
    assert push_pa_message(PaMessage(1, (attribute,))) == message(attribute_hex)


OS_IMC_FIRST_MESSAGE = message(
    PRODUCT_INFORMATION_HEX,
    STRING_VERSION_HEX,
    NUMERIC_VERSION_HEX,
    OPERATIONAL_STATUS_HEX,
    FORWARDING_ENABLED_HEX,
    FACTORY_DEFAULT_PASSWORD_HEX,
)


def test_the_os_imc_first_message_decodes_to_its_six_typed_attributes() -> None:
    decoded = pull_pa_message(OS_IMC_FIRST_MESSAGE)
    assert [type(attribute) for attribute in decoded.attributes] == [
        ProductInformation,
        StringVersion,
        NumericVersion,
        OperationalStatus,
        ForwardingEnabled,
        FactoryDefaultPasswordEnabled,
    ]


def test_the_os_imc_first_message_encodes_back_to_the_same_bytes() -> None:
    assert push_pa_message(pull_pa_message(OS_IMC_FIRST_MESSAGE)) == OS_IMC_FIRST_MESSAGE


def test_the_message_identifier_is_the_last_four_header_bytes() -> None:
    assert pull_pa_message(bytes.fromhex("01000000 deadbeef")) == PaMessage(0xDEADBEEF)


def test_a_noskip_flag_is_kept_on_a_known_attribute() -> None:
    data = message("80" + FORWARDING_ENABLED_HEX[2:])
    (attribute,) = pull_pa_message(data).attributes
    assert attribute == ForwardingEnabled(ForwardingState.DISABLED, noskip=True)
    assert push_pa_message(PaMessage(1, (attribute,))) == data


def test_last_use_never_is_the_all_zero_time() -> None:
    status = OperationalStatus(
        OperationalStatusCode.NOT_INSTALLED, OperationalResultCode.UNKNOWN, None
    )
    data = push_pa_message(PaMessage(1, (status,)))
    assert data.endswith(b"0000-00-00T00:00:00Z")
    assert pull_pa_message(data).attributes == (status,)


def test_last_use_in_another_zone_is_sent_in_utc_to_the_second() -> None:
    cest = timezone(timedelta(hours=2))
    when = datetime(2024, 5, 1, 14, 0, 0, 999_999, tzinfo=cest)
    status = OperationalStatus(
        OperationalStatusCode.OPERATIONAL, OperationalResultCode.FAILED, when
    )
    assert push_pa_message(PaMessage(1, (status,))).endswith(b"2024-05-01T12:00:00Z")


def test_an_ietf_error_of_an_unknown_code_keeps_its_information_raw() -> None:
    value = "00 000000 00000063 0102"  # IETF vendor, code 99, two bytes of information
    data = message("00 000000 00000008 00000016" + value)
    (attribute,) = pull_pa_message(data).attributes
    assert attribute == PaTncErrorAttribute(OtherErrorInfo(IETF_PEN, 99, b"\x01\x02"))


def test_remediation_parameters_of_another_vendor_stay_raw() -> None:
    value = "00 007ed9 00000005 ff"
    (attribute,) = pull_pa_message(message("00 000000 0000000a 00000015" + value)).attributes
    assert attribute == RemediationInstructions(RawRemediationParameters(NETACCESS_PEN, 5, b"\xff"))


def test_invalid_utf8_in_a_name_decodes_to_replacement_characters() -> None:
    data = message("00 000000 00000002 00000013 000000 0000 ff fe")
    (attribute,) = pull_pa_message(data).attributes
    assert attribute == ProductInformation(0, 0, "\ufffd\ufffd")


# --- unknown attributes (§4.2) ----------------------------------------------------------------

UNKNOWN_NOSKIP_HEX = "80 00abcd 00000042 0000000e beef"  # NOSKIP, vendor 0xabcd, type 0x42
UNKNOWN_SKIPPABLE_HEX = "00 00abcd 00000042 0000000e beef"  # the same without NOSKIP


def test_an_unknown_noskip_attribute_raises_attribute_type_not_supported() -> None:
    data = message(PRODUCT_INFORMATION_HEX, UNKNOWN_NOSKIP_HEX)
    with pytest.raises(UnsupportedAttributeError) as caught:
        pull_pa_message(data)
    assert caught.value.code is PaErrorCode.ATTRIBUTE_TYPE_NOT_SUPPORTED
    assert caught.value.offset == 8 + 23  # after the header and Product Information
    assert caught.value.header == data[:8]
    assert caught.value.attribute == AttributeKey(0xABCD, 0x42)


def test_an_unknown_attribute_without_noskip_is_skipped_and_reported() -> None:
    data = message(UNKNOWN_SKIPPABLE_HEX, PRODUCT_INFORMATION_HEX)
    assert pull_pa_message(data).attributes == (
        SkippedAttribute(0xABCD, 0x42, 2),
        ProductInformation(0, 1, "Debian"),
    )


def test_the_ietf_testing_type_is_skipped_like_any_unknown_type() -> None:
    assert pull_pa_message(message("00 000000 00000000 0000000c")).attributes == (
        SkippedAttribute(IETF_PEN, AttributeType.TESTING, 0),
    )


def test_a_skipped_attribute_cannot_be_encoded() -> None:
    with pytest.raises(LocalProtocolError):
        push_pa_message(PaMessage(1, (SkippedAttribute(1, 2, 3),)))


def test_a_raw_attribute_is_sent_as_given() -> None:
    raw = RawAttribute(0xABCD, 0x42, b"\xbe\xef", noskip=True)
    assert push_pa_message(PaMessage(1, (raw,))) == message(UNKNOWN_NOSKIP_HEX)


# --- malformed messages -------------------------------------------------------------------------


def refusal(data: bytes) -> PaTncError:
    with pytest.raises(PaTncError) as caught:
        pull_pa_message(data)
    return caught.value


def test_a_message_of_another_version_raises_version_not_supported() -> None:
    error = refusal(message(PRODUCT_INFORMATION_HEX, header="02 000000 00000009"))
    assert (error.code, error.offset) == (PaErrorCode.VERSION_NOT_SUPPORTED, 0)
    assert error.header == bytes.fromhex("0200000000000009")


def test_a_header_shorter_than_eight_bytes_raises_invalid_parameter() -> None:
    error = refusal(bytes.fromhex("01 000000 0000"))
    assert error.code is PaErrorCode.INVALID_PARAMETER


def test_an_empty_message_raises_invalid_parameter() -> None:
    assert refusal(b"").code is PaErrorCode.INVALID_PARAMETER


def test_a_truncated_attribute_header_raises_invalid_parameter_at_its_offset() -> None:
    error = refusal(message("00 000000 0000"))
    assert (error.code, error.offset) == (PaErrorCode.INVALID_PARAMETER, 8 + 4)


def test_an_attribute_length_below_twelve_raises_invalid_parameter_at_the_length_field() -> None:
    error = refusal(message("00 000000 00000002 0000000b"))
    assert (error.code, error.offset) == (PaErrorCode.INVALID_PARAMETER, 8 + 8)


def test_an_attribute_length_past_the_end_raises_invalid_parameter_at_the_length_field() -> None:
    error = refusal(message("00 000000 00000002 00000100 000000 0001 41"))
    assert (error.code, error.offset) == (PaErrorCode.INVALID_PARAMETER, 8 + 8)


def test_a_numeric_version_of_the_wrong_size_raises_invalid_parameter() -> None:
    error = refusal(message(NUMERIC_VERSION_HEX[:-4].replace("0000001c", "0000001a", 1)))
    assert error.code is PaErrorCode.INVALID_PARAMETER


def test_bytes_after_a_fixed_size_value_are_refused_at_the_first_extra_byte() -> None:
    error = refusal(message(PRODUCT_INFORMATION_HEX, "00 000000 0000000b 00000011 00000001 ff"))
    assert (error.code, error.offset) == (PaErrorCode.INVALID_PARAMETER, 8 + 23 + 12 + 4)


def test_a_value_decoder_reports_offsets_within_the_value() -> None:
    with pytest.raises(PaTncError) as caught:
        pull_numeric_version(bytes(15))
    assert caught.value.offset == 14  # where service pack minor should start


def test_an_unknown_operational_status_raises_invalid_parameter_at_that_field() -> None:
    bad = OPERATIONAL_STATUS_HEX.replace("03 01 0000", "03 07 0000")
    error = refusal(message(bad))
    assert (error.code, error.offset) == (PaErrorCode.INVALID_PARAMETER, 8 + 12 + 1)


@pytest.mark.parametrize(
    "last_use",
    [b"2024-13-01T12:00:00Z", b"2024-05-01 12:00:00Z", b"2024-05-01T12:00:00+", b"\xff" * 20],
)
def test_a_malformed_last_use_raises_invalid_parameter_at_that_field(last_use: bytes) -> None:
    error = refusal(message(OPERATIONAL_STATUS_HEAD_HEX) + last_use)
    assert (error.code, error.offset) == (PaErrorCode.INVALID_PARAMETER, 8 + 12 + 4)


def test_an_unknown_forwarding_state_is_refused() -> None:
    assert refusal(message("00 000000 0000000b 00000010 00000003")).offset == 8 + 12


def test_a_default_password_flag_other_than_0_or_1_is_refused() -> None:
    assert refusal(message("00 000000 0000000c 00000010 00000002")).offset == 8 + 12


def test_a_package_count_larger_than_the_bytes_hold_is_refused_at_the_count() -> None:
    error = refusal(message("00 000000 00000007 00000014 0000 ffff 01 41 01 31"))
    assert (error.code, error.offset) == (PaErrorCode.INVALID_PARAMETER, 8 + 12 + 2)


def test_a_package_count_smaller_than_the_packages_sent_is_refused() -> None:
    error = refusal(message("00 000000 00000007 00000016 0000 0001 01 41 01 31 00 00"))
    assert (error.code, error.offset) == (PaErrorCode.INVALID_PARAMETER, 8 + 12 + 8)


def test_a_port_filter_with_a_partial_entry_is_refused() -> None:
    assert refusal(message("00 000000 00000006 00000012 01 06 0016 00 11")).offset == 8 + 12 + 4


def test_a_certificate_without_a_not_after_is_refused() -> None:
    data = message(
        CERTIFICATES_HEX.replace("32 30 33 30 2d 30 31 2d 30 31", "30 30 30 30 2d 30 30 2d 30 30")
    )
    error = refusal(data)
    assert (error.code, error.offset) == (PaErrorCode.INVALID_PARAMETER, 8 + 12 + 2 + 32)


# --- answering a refusal (§4.2.8) ---------------------------------------------------------------


def test_the_answer_to_invalid_parameter_quotes_the_header_and_the_offset() -> None:
    data = message("00 000000 00000002 0000000b", header="01 000000 00000009")
    answer = error_attribute_for(refusal(data))
    assert answer == PaTncErrorAttribute(InvalidParameterInfo(data[:8], 16))
    assert (answer.vendor, answer.code) == (IETF_PEN, PaErrorCode.INVALID_PARAMETER)


def test_the_answer_to_version_not_supported_offers_version_1() -> None:
    answer = error_attribute_for(refusal(message(header="02 000000 00000009")))
    assert push_pa_message(PaMessage(1, (answer,))) == message(VERSION_NOT_SUPPORTED_ERROR_HEX)


def test_the_answer_to_an_unsupported_attribute_names_its_flags_vendor_and_type() -> None:
    error = refusal(message(UNKNOWN_NOSKIP_HEX, header="01 000000 00000009"))
    answer = error_attribute_for(error)
    assert push_pa_message(PaMessage(1, (answer,))) == message(
        ATTRIBUTE_TYPE_NOT_SUPPORTED_ERROR_HEX
    )


def test_the_answer_to_a_message_shorter_than_its_header_pads_the_quote_with_zeros() -> None:
    answer = error_attribute_for(refusal(b"\x01\x00"))
    assert answer.information == InvalidParameterInfo(b"\x01" + bytes(7), 1)  # reserved, cut


def test_an_attribute_type_answer_needs_to_know_the_attribute() -> None:
    with pytest.raises(LocalProtocolError):
        error_attribute_for(PaTncError(PaErrorCode.ATTRIBUTE_TYPE_NOT_SUPPORTED, "?"))


# --- encoding refuses what does not fit ---------------------------------------------------------


@pytest.mark.parametrize(
    "attribute",
    [
        pytest.param(StringVersion("x" * 256, "", ""), id="string-over-255-bytes"),
        pytest.param(StringVersion("é" * 128, "", ""), id="string-over-255-utf8-bytes"),
        pytest.param(ProductInformation(0, 0, "\ud800"), id="lone-surrogate"),
        pytest.param(ProductInformation(1 << 24, 0, ""), id="vendor-over-24-bits"),
        pytest.param(NumericVersion(-1, 0, 0, 0, 0), id="negative"),
        pytest.param(NumericVersion(0, 0, 0, 1 << 16, 0), id="service-pack-over-16-bits"),
        pytest.param(
            OperationalStatus(
                OperationalStatusCode.OPERATIONAL,
                OperationalResultCode.SUCCEEDED,
                datetime(2024, 1, 1),
            ),
            id="naive-last-use",
        ),
        pytest.param(AssessmentResult(7), id="assessment-not-in-enum"),  # type: ignore[arg-type]
        pytest.param(
            InstalledPackages(tuple(Package("a", "1") for _ in range(1 << 16))), id="count-overflow"
        ),
        pytest.param(
            PaTncErrorAttribute(InvalidParameterInfo(b"\x01", 0)), id="short-quoted-header"
        ),
        pytest.param(FileHashes((FileHash("/x", b"\x00" * 31),)), id="short-sha256"),
        pytest.param(
            Antivirus("a", "b", "c", True, True, "d", 0xFFFFFFFF), id="age-is-the-unknown-marker"
        ),
        pytest.param(RegistryValues((RegistryValue("k", "n", 12, "v"),)), id="registry-type"),  # type: ignore[arg-type]
    ],
)
def test_encoding_refuses_a_value_that_does_not_fit(attribute: PaAttribute) -> None:
    with pytest.raises(LocalProtocolError):
        push_pa_message(PaMessage(1, (attribute,)))


def test_a_message_identifier_over_32_bits_is_refused() -> None:
    with pytest.raises(LocalProtocolError):
        push_pa_message(PaMessage(1 << 32))


# --- the registry -------------------------------------------------------------------------------


def test_attribute_key_names_the_vendor_and_type_a_class_travels_as() -> None:
    assert attribute_key(InstalledPackages) == AttributeKey(IETF_PEN, 7)
    assert attribute_key(Antivirus) == AttributeKey(NETACCESS_PEN, 1)


def test_our_vendor_id_is_the_documentation_pen_until_iana_assigns_ours() -> None:
    assert NETACCESS_PEN == 32473


def test_a_second_codec_for_a_taken_key_is_refused() -> None:
    with pytest.raises(LocalProtocolError):
        register_attribute(AttributeKey(IETF_PEN, 7), Antivirus, pull_antivirus, push_antivirus)


def test_registering_the_same_codec_again_is_harmless() -> None:
    key = attribute_key(Antivirus)
    register_attribute(key, Antivirus, pull_antivirus, push_antivirus)
    assert attribute_key(Antivirus) == key


# --- round trips --------------------------------------------------------------------------------

U8 = st.integers(0, 0xFF)
U16 = st.integers(0, 0xFFFF)
U24 = st.integers(0, 0xFFFFFF)
U32 = st.integers(0, 0xFFFFFFFF)
TEXT8 = st.text(max_size=40)  # at most 160 UTF-8 bytes: fits an 8-bit length
TEXT16 = st.text(max_size=300)
KEYS = st.builds(AttributeKey, U24, U32)
HEADERS = st.binary(min_size=8, max_size=8)
TIMES = st.datetimes(
    min_value=datetime(1, 1, 1),
    max_value=datetime(9999, 12, 31, 23, 59, 59),
    timezones=st.just(UTC),
).map(lambda moment: moment.replace(microsecond=0))
AGES = st.none() | st.integers(0, 0xFFFFFFFE)
SHA256 = st.binary(min_size=32, max_size=32)
NOSKIP = st.booleans()

ROUND_TRIPS: dict[type[PaAttribute], st.SearchStrategy[PaAttribute]] = {
    AttributeRequest: st.builds(
        AttributeRequest, st.lists(KEYS, max_size=8).map(tuple), noskip=NOSKIP
    ),
    ProductInformation: st.builds(ProductInformation, U24, U16, st.text(), noskip=NOSKIP),
    NumericVersion: st.builds(NumericVersion, U32, U32, U32, U16, U16, noskip=NOSKIP),
    StringVersion: st.builds(StringVersion, TEXT8, TEXT8, TEXT8, noskip=NOSKIP),
    OperationalStatus: st.builds(
        OperationalStatus,
        st.sampled_from(OperationalStatusCode),
        st.sampled_from(OperationalResultCode),
        st.none() | TIMES,
        noskip=NOSKIP,
    ),
    PortFilter: st.builds(
        PortFilter,
        st.lists(st.builds(PortFilterEntry, st.booleans(), U8, U16), max_size=8).map(tuple),
        noskip=NOSKIP,
    ),
    InstalledPackages: st.builds(
        InstalledPackages,
        st.lists(st.builds(Package, TEXT8, TEXT8), max_size=8).map(tuple),
        noskip=NOSKIP,
    ),
    PaTncErrorAttribute: st.builds(
        PaTncErrorAttribute,
        st.one_of(
            st.builds(InvalidParameterInfo, HEADERS, U32),
            st.builds(VersionNotSupportedInfo, HEADERS, U8, U8),
            st.builds(AttributeTypeNotSupportedInfo, HEADERS, U8, KEYS),
            st.builds(OtherErrorInfo, st.integers(1, 0xFFFFFF), U32, st.binary(max_size=16)),
            st.builds(
                OtherErrorInfo,
                st.just(IETF_PEN),
                U32.filter(lambda c: c not in (1, 2, 3)),
                st.binary(),
            ),
        ),
        noskip=NOSKIP,
    ),
    AssessmentResult: st.builds(
        AssessmentResult, st.sampled_from(AssessmentResultCode), noskip=NOSKIP
    ),
    RemediationInstructions: st.builds(
        RemediationInstructions,
        st.one_of(
            st.builds(RemediationUri, st.text()),
            st.builds(RemediationString, st.text(), TEXT8),
            st.builds(RawRemediationParameters, st.integers(1, 0xFFFFFF), U32, st.binary()),
        ),
        noskip=NOSKIP,
    ),
    ForwardingEnabled: st.builds(
        ForwardingEnabled, st.sampled_from(ForwardingState), noskip=NOSKIP
    ),
    FactoryDefaultPasswordEnabled: st.builds(
        FactoryDefaultPasswordEnabled, st.booleans(), noskip=NOSKIP
    ),
    Antivirus: st.builds(
        Antivirus, TEXT8, TEXT8, TEXT8, st.booleans(), st.booleans(), TEXT8, AGES, noskip=NOSKIP
    ),
    Firewall: st.builds(
        Firewall,
        TEXT8,
        st.lists(st.builds(FirewallProfile, TEXT8, st.booleans()), max_size=4).map(tuple),
        noskip=NOSKIP,
    ),
    PatchManagement: st.builds(
        PatchManagement,
        TEXT8,
        st.booleans(),
        AGES,
        st.lists(st.builds(MissingPatch, TEXT8, st.sampled_from(PatchSeverity)), max_size=6).map(
            tuple
        ),
        noskip=NOSKIP,
    ),
    RunningProcesses: st.builds(
        RunningProcesses,
        st.lists(st.builds(Process, U32, TEXT8, TEXT16), max_size=6).map(tuple),
        noskip=NOSKIP,
    ),
    FileHashes: st.builds(
        FileHashes,
        st.lists(st.builds(FileHash, TEXT16, SHA256), max_size=6).map(tuple),
        noskip=NOSKIP,
    ),
    RegistryValues: st.builds(
        RegistryValues,
        st.lists(
            st.builds(RegistryValue, TEXT16, TEXT16, st.sampled_from(RegistryValueType), TEXT16),
            max_size=4,
        ).map(tuple),
        noskip=NOSKIP,
    ),
    Certificates: st.builds(
        Certificates,
        st.lists(st.builds(Certificate, TEXT8, SHA256, TEXT16, TIMES, TEXT16), max_size=4).map(
            tuple
        ),
        noskip=NOSKIP,
    ),
    AgentInfo: st.builds(AgentInfo, TEXT8, TEXT8, st.booleans(), TEXT16, noskip=NOSKIP),
    DeviceSecurity: st.builds(DeviceSecurity, *[st.none() | st.booleans()] * 4, noskip=NOSKIP),
    AgentUpdate: st.builds(AgentUpdate, SHA256, TEXT8, TEXT8, TEXT16, noskip=NOSKIP),
    Remediation: st.builds(
        Remediation,
        st.lists(st.builds(RemediationStep, TEXT8, TEXT8, TEXT8, TEXT16, TEXT16), max_size=4).map(
            tuple
        ),
        noskip=NOSKIP,
    ),
}


def test_every_attribute_type_has_a_round_trip_strategy() -> None:
    ietf = {type_ for type_ in AttributeType if type_ is not AttributeType.TESTING}
    covered = {attribute_key(kind) for kind in ROUND_TRIPS}
    assert {AttributeKey(IETF_PEN, type_) for type_ in ietf} <= covered
    assert {key.vendor for key in covered} == {IETF_PEN, NETACCESS_PEN}
    assert len(covered) == len(ietf) + len(NetaccessAttributeType)


@pytest.mark.parametrize("kind", ROUND_TRIPS, ids=lambda kind: kind.__name__)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_an_attribute_survives_a_round_trip(kind: type[PaAttribute], data: st.DataObject) -> None:
    attribute = data.draw(ROUND_TRIPS[kind])
    message_id = data.draw(U32)
    original = PaMessage(message_id, (attribute,))
    assert pull_pa_message(push_pa_message(original)) == original


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(*ROUND_TRIPS.values()), max_size=6))
def test_a_message_of_mixed_attributes_survives_a_round_trip(attributes: list[PaAttribute]) -> None:
    original = PaMessage(7, tuple(attributes))
    assert pull_pa_message(push_pa_message(original)) == original


DEBIAN_NAMES = ["libc6", "openssl", "systemd", "bash", "coreutils", "libssl3", "python3.11"]
DEBIAN_VERSIONS = ["2.36-9+deb12u4", "3.0.11-1~deb12u2", "252.22-1~deb12u1", "5.2.15-2+b2"]
# Few choices per package, so that 700 of them stay cheap for Hypothesis to generate.
DEBIAN_PACKAGE = st.builds(
    lambda name, number, version: Package(f"{name}-{number}", version),
    st.sampled_from(DEBIAN_NAMES),
    st.integers(0, 999),
    st.sampled_from(DEBIAN_VERSIONS),
)


@settings(
    max_examples=25,
    deadline=None,
    # 650+ packages is the point: the smallest example is large by design.
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
@given(st.lists(DEBIAN_PACKAGE, min_size=650, max_size=750))
def test_an_os_inventory_of_about_700_packages_survives_a_round_trip(
    packages: list[Package],
) -> None:
    original = PaMessage(3, (InstalledPackages(tuple(packages)),))
    data = push_pa_message(original)
    assert pull_pa_message(data) == original


# --- fuzzing: garbage in, only PaTncError out -----------------------------------------------------

SEEDS = [
    OS_IMC_FIRST_MESSAGE,
    message(*ALL_GOLDEN_HEX),
    message(ATTRIBUTE_REQUEST_HEX, INSTALLED_PACKAGES_HEX, UNKNOWN_SKIPPABLE_HEX),
]


def pull_checked(data: bytes) -> PaMessage | None:
    """pull_pa_message(), failing the test on any exception other than PaTncError, and
    checking that a refusal can be answered and an acceptance encoded back."""
    try:
        decoded = pull_pa_message(data)
    except PaTncError as error:
        assert type(error) in (PaTncError, UnsupportedAttributeError)
        assert 0 <= error.offset <= len(data)
        assert error.header == data[:8]
        push_pa_message(PaMessage(0, (error_attribute_for(error),)))
        return None
    assert isinstance(decoded, PaMessage)
    if not any(isinstance(attribute, SkippedAttribute) for attribute in decoded.attributes):
        try:
            again = push_pa_message(decoded)
        except LocalProtocolError:
            pass  # e.g. 255 bad bytes became 255 U+FFFD, which no longer fit their length
        else:
            assert pull_pa_message(again) == decoded
    return decoded


@FUZZ
@given(st.binary(max_size=512))
def test_arbitrary_bytes_raise_only_pa_tnc_error(data: bytes) -> None:
    pull_checked(data)


@FUZZ
@given(st.binary(max_size=256))
def test_arbitrary_bytes_after_a_valid_header_raise_only_pa_tnc_error(data: bytes) -> None:
    pull_checked(message() + data)


@FUZZ
@given(st.sampled_from(sorted(attribute_key(kind) for kind in ROUND_TRIPS)), st.binary(max_size=96))
def test_arbitrary_values_of_every_known_attribute_raise_only_pa_tnc_error(
    key: AttributeKey, value: bytes
) -> None:
    header = bytes([0]) + key.vendor.to_bytes(3, "big") + key.type.to_bytes(4, "big")
    pull_checked(message() + header + (12 + len(value)).to_bytes(4, "big") + value)


@st.composite
def mutated_messages(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data)))
        mutation = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        if mutation == "flip" and position < len(data):
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif mutation == "set" and position < len(data):
            data[position] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF]))
        elif mutation == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif mutation == "delete":
            del data[position : position + draw(st.integers(1, 8))]
        else:
            del data[position:]
    return bytes(data)


@FUZZ
@given(mutated_messages())
def test_mutated_valid_messages_raise_only_pa_tnc_error(data: bytes) -> None:
    pull_checked(data)
