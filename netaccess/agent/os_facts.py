"""What the agent tells an IMV about the operating system (RFC 5792 §4.2, OS component): its
first message's attributes, from this machine or made up for a named OS, and the answers to an
Attribute Request (Installed Packages, §4.2.7). tools/tnc-probe and the posture bench use it."""

from __future__ import annotations

import platform
import random
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from netaccess.agent.conversation import Component
from netaccess.proto.errors import LocalProtocolError
from netaccess.proto.tnc.pa import (
    ATTRIBUTE_HEADER_SIZE,
    MESSAGE_HEADER_SIZE,
    AttributeKey,
    FactoryDefaultPasswordEnabled,
    ForwardingEnabled,
    ForwardingState,
    InstalledPackages,
    NumericVersion,
    OperationalResultCode,
    OperationalStatus,
    OperationalStatusCode,
    PaAttribute,
    Package,
    PaMessage,
    ProductInformation,
    RawAttribute,
    SkippedAttribute,
    StringVersion,
    attribute_key,
    push_pa_message,
)

OS_RELEASE = Path("/etc/os-release")
DEBIAN_VERSION = Path("/etc/debian_version")
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
PROC_STAT = Path("/proc/stat")
DPKG_QUERY = ("dpkg-query", "-W", "-f", "${Package}\\t${Version}\\n")
DPKG_SECONDS = 30.0
MAX_FIELD = 255  # §4.2.7: a package name or version is at most 255 UTF-8 bytes

# SMI Private Enterprise Numbers of the OS vendors named below (IANA registry).
MICROSOFT_PEN = 311
APPLE_PEN = 63
CANONICAL_PEN = 28816
RED_HAT_PEN = 2312


class OsFactsError(Exception):
    """A fact could not be read from this machine; the message says which and why."""


@dataclass(frozen=True, slots=True)
class OsIdentity:
    """The product and versions an OS IMC reports: Product Information (vendor PEN, product
    id, name), String Version (version, build, configuration: the architecture here) and
    Numeric Version (major, minor, build, service pack major and minor)."""

    name: str
    vendor: int
    product_id: int
    version: str
    build: str
    configuration: str
    numeric: tuple[int, int, int, int, int]


# Made-up but plausible machines, for tests and benchmarks that must not depend on this one.
SYNTHETIC_OS: dict[str, OsIdentity] = {
    "debian": OsIdentity("Debian", 0, 0, "12.11", "", "x86_64", (12, 11, 0, 0, 0)),
    "ubuntu": OsIdentity("Ubuntu", CANONICAL_PEN, 0, "24.04", "", "x86_64", (24, 4, 0, 0, 0)),
    "fedora": OsIdentity("Fedora Linux", RED_HAT_PEN, 0, "41", "", "x86_64", (41, 0, 0, 0, 0)),
    "windows": OsIdentity(
        "Windows 11 Enterprise",
        MICROSOFT_PEN,
        0,
        "10.0.22631",
        "22631.4317",
        "x64",
        (10, 0, 22631, 0, 0),
    ),
    "macos": OsIdentity("macOS", APPLE_PEN, 0, "15.1", "24B83", "arm64", (15, 1, 0, 0, 0)),
}


def os_attributes(
    identity: OsIdentity,
    *,
    forwarding: ForwardingState,
    default_password: bool = False,
    last_boot: datetime | None = None,
) -> tuple[PaAttribute, ...]:
    """The OS component's first message, as strongSwan's OS IMC sends it: product, string
    and numeric version, operational status (running since `last_boot`), IP forwarding
    and whether a factory default password is enabled."""
    return (
        ProductInformation(identity.vendor, identity.product_id, identity.name),
        StringVersion(identity.version, identity.build, identity.configuration),
        NumericVersion(*identity.numeric),
        OperationalStatus(
            OperationalStatusCode.OPERATIONAL, OperationalResultCode.SUCCEEDED, last_boot
        ),
        ForwardingEnabled(forwarding),
        FactoryDefaultPasswordEnabled(default_password),
    )


# --- this machine -----------------------------------------------------------------------------


def parse_os_release(text: str) -> dict[str, str]:
    """os-release(5): KEY=value lines, values optionally quoted; comments and blanks skipped."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        fields[key.strip()] = value
    return fields


def local_identity(
    os_release: Path = OS_RELEASE, debian_version: Path = DEBIAN_VERSION
) -> OsIdentity:
    """This machine's OS from os-release (and Debian's point release from
    /etc/debian_version, which os-release leaves out)."""
    try:
        fields = parse_os_release(os_release.read_text(errors="replace"))
    except OSError as exc:
        raise OsFactsError(f"cannot read {os_release}: {exc.strerror or exc}") from None
    name = fields.get("NAME") or fields.get("ID") or platform.system()
    version = fields.get("VERSION_ID", "")
    if fields.get("ID") == "debian":
        try:
            point = debian_version.read_text().strip()
        except OSError:
            point = ""
        if point[:1].isdigit():
            version = point
    return OsIdentity(
        name=name,
        vendor=0,
        product_id=0,
        version=version,
        build=fields.get("BUILD_ID", ""),
        configuration=platform.machine(),
        numeric=numeric_version(version),
    )


def numeric_version(version: str) -> tuple[int, int, int, int, int]:
    """The leading numbers of "12.11" or "24.04.1" as (major, minor, build, 0, 0)."""
    parts = [0, 0, 0]
    for index, piece in enumerate(version.split(".")[:3]):
        digits = ""
        for char in piece:
            if not char.isdigit():
                break
            digits += char
        if not digits:
            break
        parts[index] = min(int(digits), 0xFFFFFFFF)
    return parts[0], parts[1], parts[2], 0, 0


def local_forwarding(path: Path = IP_FORWARD) -> ForwardingState:
    """Whether this machine forwards IPv4 (net.ipv4.ip_forward); unknown if unreadable."""
    try:
        value = path.read_text().strip()
    except OSError:
        return ForwardingState.UNKNOWN
    if value == "0":
        return ForwardingState.DISABLED
    return ForwardingState.ENABLED if value.isdigit() else ForwardingState.UNKNOWN


def local_last_boot(path: Path = PROC_STAT) -> datetime | None:
    """When this machine booted (the kernel's btime), or None if unknown."""
    try:
        for line in path.read_text().splitlines():
            if line.startswith("btime "):
                return datetime.fromtimestamp(int(line.split()[1]), UTC)
    except (OSError, ValueError):
        pass
    return None


def dpkg_packages(
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
) -> InstalledPackages:
    """This machine's Debian packages, as `dpkg-query -W` lists them."""
    if shutil.which(DPKG_QUERY[0]) is None:
        raise OsFactsError("dpkg-query is not installed: this is not a Debian-like system")
    try:
        done = run(list(DPKG_QUERY), capture_output=True, text=True, timeout=DPKG_SECONDS)
    except (OSError, subprocess.SubprocessError) as exc:
        raise OsFactsError(f"dpkg-query failed: {exc}") from None
    if done.returncode != 0:
        reason = (done.stderr or "").strip().splitlines()[-1:] or [f"status {done.returncode}"]
        raise OsFactsError(f"dpkg-query failed: {reason[0]}")
    return InstalledPackages(parse_dpkg_list(done.stdout))


def parse_dpkg_list(text: str) -> tuple[Package, ...]:
    """Lines of "name<TAB>version"; fields longer than the attribute allows are cut."""
    packages = []
    for line in text.splitlines():
        name, tab, version = line.partition("\t")
        if tab and name:
            packages.append(Package(_fit(name), _fit(version)))
    return tuple(packages)


def _fit(text: str) -> str:
    data = text.encode("utf-8")
    if len(data) <= MAX_FIELD:
        return text
    return data[:MAX_FIELD].decode("utf-8", errors="ignore")


# --- made-up packages -------------------------------------------------------------------------

# Stems of real Debian package names, and the shapes their names and versions take, so a
# made-up list has the sizes of a real one (a Debian 12 desktop: ~25 bytes a package).
_STEMS = (  # noqa: SIM905 (a list of words reads better as words)
    "acl adduser apt attr audit base-files bash bsdutils bzip2 ca-certificates coreutils cpio "
    "cron curl dash dbus debconf debianutils diffutils dmidecode dpkg e2fsprogs findutils "
    "gcc-12 gdbm gettext glib2.0 gnupg gnutls28 grep gzip hostname ifupdown "
    "init-system-helpers iproute2 iptables iputils kmod krb5 less libcap2 libffi "
    "libgcrypt20 libidn2 "
    "libnftnl libpsl libseccomp libselinux libssh2 libtasn1-6 libunistring libxml2 libzstd "
    "logrotate lsb-base lz4 man-db mawk mount nano ncurses netbase nettle nftables openssh "
    "openssl pam passwd perl procps python3.11 readline rsyslog sed sensible-utils shadow "
    "sqlite3 sudo systemd sysvinit tar tzdata ucf udev util-linux vim wget whiptail xz-utils "
    "zlib"
).split()
_PREFIXES = ("", "", "", "", "lib", "lib", "lib", "python3-", "gir1.2-", "node-")
_SUFFIXES = ("", "", "", "", "", "-common", "-data", "-bin", "-dev", "-doc", "1", "6", "t64")


def synthetic_packages(count: int, seed: int = 12) -> InstalledPackages:
    """`count` distinct made-up packages with Debian-shaped names and versions; the same
    `count` and `seed` always give the same list."""
    rng = random.Random(seed)
    packages: list[Package] = []
    seen: set[str] = set()
    plenty = len(set(_PREFIXES)) * len(_STEMS) * len(set(_SUFFIXES)) // 4
    while len(packages) < count:
        name = rng.choice(_PREFIXES) + rng.choice(_STEMS) + rng.choice(_SUFFIXES)
        if len(packages) >= plenty:  # the combinations run out: number the rest
            name = f"{name}-{len(packages)}"
        if name in seen:
            continue
        seen.add(name)
        packages.append(Package(name, _synthetic_version(rng)))
    return InstalledPackages(tuple(packages))


def _synthetic_version(rng: random.Random) -> str:
    major, minor, patch = rng.randint(0, 12), rng.randint(0, 40), rng.randint(0, 9)
    revision = rng.randint(1, 9)
    shape = rng.randrange(6)
    if shape == 0:
        return f"{major}.{minor}.{patch}-{revision}"
    if shape == 1:
        return f"{major}.{minor}-{revision}+deb12u{rng.randint(1, 12)}"
    if shape == 2:
        return f"1:{major}.{minor}.{patch}-{revision}+b{rng.randint(1, 3)}"
    if shape == 3:
        return f"{major}.{minor}.{patch}+dfsg-{revision}"
    if shape == 4:
        return f"{major}.{minor}.{patch}-{revision}~deb12u{rng.randint(1, 4)}"
    return f"{2020 + major % 5}{minor % 13:02d}{patch + 1:02d}"


# --- answering Attribute Requests -------------------------------------------------------------


def key_of(attribute: PaAttribute) -> AttributeKey:
    """The (vendor, type) an attribute travels as."""
    if isinstance(attribute, RawAttribute | SkippedAttribute):
        return AttributeKey(attribute.vendor, attribute.type)
    return attribute_key(type(attribute))


def pre_encoded(attribute: PaAttribute) -> RawAttribute:
    """`attribute` encoded once, to send many times (a load generator's package list) at
    the cost of copying bytes; the peer receives exactly what `attribute` would send."""
    key = key_of(attribute)
    return RawAttribute(key.vendor, key.type, value_bytes(attribute), noskip=attribute.noskip)


def value_bytes(attribute: PaAttribute) -> bytes:
    """The value bytes of `attribute` alone (without the 12-byte attribute header)."""
    encoded = push_pa_message(PaMessage(0, (attribute,)))
    return encoded[MESSAGE_HEADER_SIZE + ATTRIBUTE_HEADER_SIZE :]


class HeldAttributes:
    """What the agent has but sends only when an IMV asks (RFC 5792 §4.2.1), per component;
    an instance is the `answer` of report_posture(). It answers with the attributes asked
    for that it holds, in the order asked, and with nothing for the rest."""

    def __init__(self, held: Mapping[Component, Sequence[PaAttribute]]) -> None:
        self._held: dict[Component, dict[AttributeKey, PaAttribute]] = {}
        for component, attributes in held.items():
            by_key = self._held.setdefault(component, {})
            for attribute in attributes:
                by_key[key_of(attribute)] = attribute

    def __call__(self, component: Component, wanted: tuple[AttributeKey, ...]) -> list[PaAttribute]:
        by_key = self._held.get(component, {})
        answers: list[PaAttribute] = []
        for key in dict.fromkeys(wanted):  # each once, even if asked twice
            attribute = by_key.get(AttributeKey(int(key.vendor), int(key.type)))
            if attribute is not None:
                answers.append(attribute)
        return answers


def check_fits(attributes: Sequence[PaAttribute]) -> None:
    """Raise OsFactsError naming the first attribute whose value does not fit its fields
    (an overlong name, say), before a session is opened with it."""
    for attribute in attributes:
        try:
            value_bytes(attribute)
        except LocalProtocolError as exc:
            raise OsFactsError(f"{type(attribute).__name__}: {exc}") from None
