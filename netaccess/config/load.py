"""Loads TOML config text into the frozen model, collecting every issue with its file, key and line.

A new section is one function over a TableReader; the reader does the types, ranges and typos.
"""

from __future__ import annotations

import base64
import binascii
import enum
import functools
import ipaddress
import math
import os
import pathlib
import re
import urllib.parse
from collections.abc import Mapping
from importlib import resources
from typing import Final, TypeVar

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef,import-not-found]

import contextlib
import dataclasses

from netaccess.config.errors import (
    ConfigError,
    ConfigIssue,
    KeyPath,
    format_key_path,
    toml_repr,
    toml_string,
)
from netaccess.config.locate import LineIndex
from netaccess.config.model import (
    ApplianceConfig,
    ClientCertificates,
    CoaMethod,
    DaemonConfig,
    DetectionConfig,
    EnforcementConfig,
    InterfacesConfig,
    PatchFeedConfig,
    PortalConfig,
    PostureAuthentication,
    PostureConfig,
    RadiusClientConfig,
    RadiusConfig,
    RemoteImvConfig,
    RemoteImvFailure,
)
from netaccess.config.policies import read_policies
from netaccess.policy.admission import RoleMapping
from netaccess.policy.feed import ED25519_KEY_BYTES
from netaccess.policy.hostchecker import Platform, Policy
from netaccess.policy.roles import (
    BUILTIN_ROLES,
    ROLE_NAME_MAX,
    Destination,
    Protocol,
    Realm,
    Role,
    builtin_role,
)

DEFAULT_SOURCE: Final = "<embedded default>"
DEFAULT_CONFIG_TEXT: Final = (
    resources.files("netaccess.config").joinpath("default.toml").read_text(encoding="utf-8")
)

# Far above any real config; it keeps a wrong path (a disk image, /dev/zero) from eating memory.
_MAX_FILE_BYTES = 4 * 1024 * 1024
_SYNTAX_POSITION = re.compile(r"\s*\((?:at line (\d+), column \d+|at end of document)\)\s*$")
_GROUP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,31}")
_USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
# Role names become nftables set and chain names (role_<name>_mac and so on).
_REALM_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_ROLE_NAME = re.compile(rf"[a-z][a-z0-9_]{{0,{ROLE_NAME_MAX - 1}}}")
_ABSENT: Final = object()

_E = TypeVar("_E", bound=enum.Enum)
_T = TypeVar("_T")


def load_config_text(text: str, source: str) -> ApplianceConfig:
    """Validates a whole config; raises ConfigError listing every issue, in file order."""
    issues = _IssueLog(source, text)
    root = TableReader(_parse_toml(text, source), (), issues)
    policies = read_policies(root)  # first: roles and realms name them
    config = ApplianceConfig(
        daemon=_daemon(root.subtable("daemon")),
        interfaces=_interfaces(root.subtable("interfaces")),
        detection=_detection(root.subtable("detection")),
        source=source,
        enforcement=_enforcement(root.subtable("enforcement")),
        roles=_roles(root, policies),
        portal=_portal(root.subtable("portal")),
        policies=policies,
    )
    config = dataclasses.replace(config, realms=_realms(root, config.roles, policies))
    config = dataclasses.replace(config, posture=_posture(root.subtable("posture"), config.realms))
    config = dataclasses.replace(config, patch_feed=_patch_feed(root.subtable("patch_feed")))
    config = dataclasses.replace(config, radius=_radius(root.subtable("radius"), config.realms))
    root.finish()
    issues.raise_if_any()
    return config


def load_config_file(path: pathlib.Path | str) -> ApplianceConfig:
    """Reads and validates a config file; messages name the file as `path` was given."""
    source = os.fspath(path)
    try:
        with open(path, "rb") as file:
            data = file.read(_MAX_FILE_BYTES + 1)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            [ConfigIssue(source, None, "", f"cannot read config file: {reason}")]
        ) from exc
    if len(data) > _MAX_FILE_BYTES:
        message = f"config file is larger than {_MAX_FILE_BYTES // (1024 * 1024)} MiB"
        raise ConfigError([ConfigIssue(source, None, "", message)])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        message = (
            f"not valid UTF-8: byte 0x{data[exc.start]:02x} at column {exc.start - line_start + 1}"
        )
        raise ConfigError([ConfigIssue(source, line, "", message)]) from exc
    return load_config_text(text, source)


@functools.cache
def default_config() -> ApplianceConfig:
    """The embedded default.toml, loaded (and so checked) once."""
    return load_config_text(DEFAULT_CONFIG_TEXT, DEFAULT_SOURCE)


# -- sections ----------------------------------------------------------------------------------


def _daemon(table: TableReader) -> DaemonConfig:
    default = DaemonConfig()
    return DaemonConfig(
        state_dir=table.path("state_dir", default.state_dir),
        control_socket=table.path("control_socket", default.control_socket),
        user=table.string(
            "user",
            default.user,
            pattern=_USER_NAME,
            expected="a user name (lower-case letters, digits, _ and -, at most 32)",
        ),
        admin_group=table.string(
            "admin_group",
            default.admin_group,
            pattern=_GROUP_NAME,
            expected="a group name (letters, digits, _ and -, at most 32)",
        ),
        log_level=table.enum("log_level", default.log_level),
        shutdown_grace=table.number(
            "shutdown_grace",
            default.shutdown_grace,
            min=0,
            min_exclusive=True,
            max=300,
            unit="seconds",
        ),
        watchdog=table.boolean("watchdog", default.watchdog),
    )


def _interfaces(table: TableReader) -> InterfacesConfig:
    default = InterfacesConfig()
    access = table.ifname_list("access", default.access, allow_empty=False)
    upstream = table.ifname_list(
        "upstream", default.upstream, allow_empty=True, disjoint_from=("access", access)
    )
    return InterfacesConfig(access=access, upstream=upstream)


def _detection(table: TableReader) -> DetectionConfig:
    default = DetectionConfig()
    return DetectionConfig(
        enabled=table.boolean("enabled", default.enabled),
        malformed_log_interval=table.number(
            "malformed_log_interval",
            default.malformed_log_interval,
            min=0,
            min_exclusive=True,
            unit="seconds",
        ),
        receive_buffer=table.integer(
            "receive_buffer",
            default.receive_buffer,
            min=64 * 1024,
            max=256 * 1024 * 1024,
            unit="bytes",
        ),
        max_endpoints=table.integer(
            "max_endpoints", default.max_endpoints, min=1, max=10_000_000, unit="endpoints"
        ),
    )


def _enforcement(table: TableReader) -> EnforcementConfig:
    default = EnforcementConfig()

    def port(key: str, value: int) -> int:
        return table.integer(key, value, min=1, max=65535, unit="a TCP port")

    return EnforcementConfig(
        enforcer_socket=table.path("enforcer_socket", default.enforcer_socket),
        reconcile_interval=table.number(
            "reconcile_interval", default.reconcile_interval, min=1, max=86400, unit="seconds"
        ),
        portal_http_port=port("portal_http_port", default.portal_http_port),
        portal_https_port=port("portal_https_port", default.portal_https_port),
        pt_tls_port=port("pt_tls_port", default.pt_tls_port),
        intent_queue=table.integer(
            "intent_queue", default.intent_queue, min=1000, max=100_000_000, unit="intents"
        ),
    )


# A DNS name: labels of letters, digits and inner hyphens, dot-separated (RFC 1123).
_HOSTNAME = re.compile(
    r"(?=.{1,253}\Z)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
)


def _portal(table: TableReader) -> PortalConfig:
    default = PortalConfig()
    portal = _portal_fields(table, default)
    if (portal.tls_certificate is None) != (portal.tls_key is None):
        table.issue("tls_key", "tls_certificate and tls_key go together: give both or neither")
    return portal


def _portal_fields(table: TableReader, default: PortalConfig) -> PortalConfig:
    return PortalConfig(
        hostname=table.string(
            "hostname",
            default.hostname,
            pattern=_HOSTNAME,
            expected="a DNS name in lower case (letters, digits, hyphens, dots)",
        ),
        max_connections=table.integer(
            "max_connections", default.max_connections, min=1, max=1_000_000, unit="connections"
        ),
        request_timeout=table.number(
            "request_timeout", default.request_timeout, min=1, max=600, unit="seconds"
        ),
        idle_timeout=table.number(
            "idle_timeout", default.idle_timeout, min=1, max=3600, unit="seconds"
        ),
        max_header_bytes=table.integer(
            "max_header_bytes", default.max_header_bytes, min=1024, max=1024 * 1024, unit="bytes"
        ),
        max_headers=table.integer(
            "max_headers", default.max_headers, min=8, max=1000, unit="header fields"
        ),
        max_body_bytes=table.integer(
            "max_body_bytes", default.max_body_bytes, min=1024, max=16 * 1024 * 1024, unit="bytes"
        ),
        tls_certificate=table.optional_path("tls_certificate"),
        tls_key=table.optional_path("tls_key"),
    )


def _posture(table: TableReader, realms: tuple[Realm, ...]) -> PostureConfig:
    default = PostureConfig()
    posture = PostureConfig(
        authentication=table.enum("authentication", default.authentication),
        realm=table.string("realm", default.realm),
        client_certificates=table.enum("client_certificates", default.client_certificates),
        client_ca=table.optional_path("client_ca"),
        session_timeout=table.number(
            "session_timeout", default.session_timeout, min=1, max=3600, unit="seconds"
        ),
        message_timeout=table.number(
            "message_timeout", default.message_timeout, min=1, max=600, unit="seconds"
        ),
        max_sessions=table.integer(
            "max_sessions", default.max_sessions, min=1, max=100_000, unit="sessions"
        ),
        max_messages=table.integer(
            "max_messages", default.max_messages, min=4, max=100_000, unit="messages"
        ),
        max_session_bytes=table.integer(
            "max_session_bytes",
            default.max_session_bytes,
            min=64 * 1024,
            max=1024 * 1024 * 1024,
            unit="bytes",
        ),
        max_message_bytes=table.integer(
            "max_message_bytes",
            default.max_message_bytes,
            min=64 * 1024,
            max=64 * 1024 * 1024,
            unit="bytes",
        ),
        request_packages=table.boolean("request_packages", default.request_packages),
        remote_imvs=_remote_imvs(table),
    )
    if posture.authentication is PostureAuthentication.PLAIN and posture.realm not in {
        realm.name for realm in realms
    }:
        table.issue("realm", f"unknown realm {toml_string(posture.realm)}")
    if posture.client_certificates is not ClientCertificates.NONE and posture.client_ca is None:
        table.issue("client_ca", "client certificates need the CA that signs them: give client_ca")
    return posture


_REMOTE_IMV_REQUIRED = ("name", "address", "port", "subscriptions", "certificate", "key", "ca")
# PB-PA's all-ones vendor and subtype are wildcards (RFC 5793 §4.5), never a component.
_MAX_PA_VENDOR = 0xFFFFFE
_MAX_PA_SUBTYPE = 0xFFFFFFFE


def _remote_imvs(posture: TableReader) -> tuple[RemoteImvConfig, ...]:
    """`[[posture.remote_imvs]]`: remote IMV servers, in file order, each name once."""
    found: dict[str, RemoteImvConfig] = {}
    for table in posture.array_of_tables("remote_imvs"):
        missing = [key for key in _REMOTE_IMV_REQUIRED if not table.has(key)]
        if missing:
            table.issue(
                (), f"missing required key{'s' if len(missing) > 1 else ''} " + ", ".join(missing)
            )
        name = table.string(
            "name", "", pattern=_REALM_NAME, expected="a name (a-z, 0-9, _ and -, at most 32)"
        )
        address = _host(table, "address", "")
        port = table.integer("port", 0, min=1, max=65535, unit="a TCP port")
        subscriptions = _subscriptions(table)
        certificate = table.path("certificate", pathlib.Path("/"))
        key = table.path("key", pathlib.Path("/"))
        ca = table.path("ca", pathlib.Path("/"))
        server_name = _host(table, "server_name", address)
        timeout = table.number("timeout", 5.0, min=0, min_exclusive=True, max=60, unit="seconds")
        on_failure = table.enum("on_failure", RemoteImvFailure.DONT_KNOW)
        if name == "os":
            table.issue("name", 'the built-in OS IMV is named "os": choose another name')
            continue
        if name in found:
            table.issue("name", f"remote IMV {toml_string(name)} is declared twice")
            continue
        if missing or not name:
            continue
        found[name] = RemoteImvConfig(
            name=name,
            address=address,
            port=port,
            subscriptions=subscriptions,
            certificate=certificate,
            key=key,
            ca=ca,
            server_name=server_name,
            timeout=timeout,
            on_failure=on_failure,
        )
    return tuple(found.values())


def _host(table: TableReader, key: str, default: str) -> str:
    """A DNS name (lower case) or an IP address."""
    value = table.raw(key)
    if value is None:
        return default
    if isinstance(value, str):
        if _HOSTNAME.fullmatch(value):
            return value
        with contextlib.suppress(ValueError):
            return str(ipaddress.ip_address(value))
    table.issue(key, f"expected a DNS name in lower case or an IP address, got {toml_repr(value)}")
    return default


def _subscriptions(table: TableReader) -> tuple[tuple[int, int], ...]:
    """`subscriptions = [[0, 2], [32473, 1]]`: (vendor, subtype) pairs of PB-PA (RFC 5793
    §4.5), vendor an SMI Private Enterprise Number."""
    raw = table.raw("subscriptions")
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw:
        table.issue(
            "subscriptions",
            f"expected a list of at least one [vendor, subtype] pair, got {toml_repr(raw)}",
        )
        return ()
    pairs: list[tuple[int, int]] = []
    for index, item in enumerate(raw):
        where = ("subscriptions", index)
        if not (
            isinstance(item, list)
            and len(item) == 2
            and all(isinstance(n, int) and not isinstance(n, bool) for n in item)
            and 0 <= item[0] <= _MAX_PA_VENDOR
            and 0 <= item[1] <= _MAX_PA_SUBTYPE
        ):
            table.issue(
                where,
                f"expected a [vendor, subtype] pair of integers (vendor 0 to {_MAX_PA_VENDOR}, "
                f"subtype 0 to {_MAX_PA_SUBTYPE}), got {toml_repr(item)}",
            )
            continue
        pair = (item[0], item[1])
        if pair in pairs:
            table.issue(where, f"[{pair[0]}, {pair[1]}] is listed twice")
            continue
        pairs.append(pair)
    return tuple(pairs)


def _patch_feed(table: TableReader) -> PatchFeedConfig:
    """`[patch_feed]`: the keys that may sign the patch feed, and where to pull it from."""
    default = PatchFeedConfig()
    trusted_keys = _ed25519_keys(table, "trusted_keys")
    url = _feed_url(table, "url")
    signature_url = _feed_url(table, "signature_url")
    if url and not trusted_keys:
        table.issue("url", "a feed URL needs trusted_keys to verify what it serves")
    if signature_url and not url:
        table.issue("signature_url", "signature_url without url: give the feed's url too")
    if url and not signature_url:
        parts = urllib.parse.urlsplit(url)
        signature_url = urllib.parse.urlunsplit(parts._replace(path=parts.path + ".sig"))
    return PatchFeedConfig(
        trusted_keys=trusted_keys,
        url=url,
        signature_url=signature_url,
        interval=table.number("interval", default.interval, min=60, max=7 * 86400, unit="seconds"),
        timeout=table.number("timeout", default.timeout, min=1, max=600, unit="seconds"),
        ca=table.optional_path("ca"),
    )


def _radius(table: TableReader, realms: tuple[Realm, ...]) -> RadiusConfig:
    """`[radius]` and its `[[radius.clients]]`: the NAS clients, each network once. EAP's
    realm, when set, must be one of `realms` ("" stands for the first)."""
    default = RadiusConfig()
    eap_realm = table.string("eap_realm", "")
    names = [realm.name for realm in realms]
    if eap_realm and eap_realm not in names:
        known = ", ".join(toml_string(name) for name in names) or "none are declared"
        table.issue("eap_realm", f"unknown realm {toml_string(eap_realm)} (realms: {known})")
    eap_tls_ca, eap_tls_crl = table.optional_path("eap_tls_ca"), table.optional_path("eap_tls_crl")
    if eap_tls_crl is not None and eap_tls_ca is None:
        table.issue("eap_tls_crl", "needs radius.eap_tls_ca: a CRL is checked for EAP-TLS only")
    address = table.string("address", default.address)
    try:
        address = str(ipaddress.ip_address(address))
    except ValueError:
        table.issue("address", f'expected a local IP address ("::" for all), got {address!r}')
        address = default.address
    auth_port = table.integer("auth_port", default.auth_port, min=1, max=65535, unit="a UDP port")
    acct_port = table.integer("acct_port", default.acct_port, min=1, max=65535, unit="a UDP port")
    if auth_port == acct_port:
        table.issue("acct_port", "auth_port and acct_port must differ")
    clients: dict[str, RadiusClientConfig] = {}
    for client in table.array_of_tables("clients"):
        for key in ("name", "address", "secret"):
            if not client.has(key):
                client.issue((), f"missing required key {key}")
        name = client.string(
            "name", "", pattern=_REALM_NAME, expected="a name (a-z, 0-9, _ and -, at most 32)"
        )
        network = None
        raw = client.raw("address")
        if raw is not None:
            network = _client_network(client, raw)
        secret = client.string(
            "secret",
            "",
            pattern=_SECRET_NAME,
            expected="the name of a vault entry (a-z, 0-9, '.', '_' and '-', at most 64)",
        )
        entry = RadiusClientConfig(
            name=name,
            network=network or ipaddress.ip_network("0.0.0.0/32"),
            secret=secret,
            require_message_authenticator=client.boolean("require_message_authenticator", True),
            coa=client.enum("coa", CoaMethod.REAUTHENTICATE),
            coa_port=client.integer("coa_port", 3799, min=1, max=65535, unit="a UDP port"),
        )
        if name in clients:
            client.issue("name", f"RADIUS client {toml_string(name)} is declared twice")
            continue
        overlapping = [
            other.name
            for other in clients.values()
            if network is not None
            and other.network.version == network.version
            and other.network.overlaps(network)
        ]
        if overlapping:
            client.issue(
                "address",
                f"overlaps the address of client {toml_string(overlapping[0])}: a datagram's "
                "source must name one client (one secret)",
            )
            continue
        if name and network is not None and secret:
            clients[name] = entry
    return RadiusConfig(
        address=address,
        auth_port=auth_port,
        acct_port=acct_port,
        queue=table.integer("queue", default.queue, min=16, max=1_000_000, unit="datagrams"),
        duplicate_window=table.number(
            "duplicate_window", default.duplicate_window, min=1, max=300, unit="seconds"
        ),
        coa_timeout=table.number(
            "coa_timeout", default.coa_timeout, min=0.1, max=60, unit="seconds"
        ),
        coa_tries=table.integer("coa_tries", default.coa_tries, min=1, max=10, unit="tries"),
        max_sessions=table.integer(
            "max_sessions", default.max_sessions, min=1, max=10_000_000, unit="sessions"
        ),
        session_idle=table.number(
            "session_idle", default.session_idle, min=600, max=2_592_000, unit="seconds"
        ),
        dictionary=table.optional_path("dictionary"),
        eap_realm=eap_realm,
        eap_timeout=table.number(
            "eap_timeout", default.eap_timeout, min=5, max=600, unit="seconds"
        ),
        eap_sessions=table.integer(
            "eap_sessions", default.eap_sessions, min=1, max=1_000_000, unit="conversations"
        ),
        eap_tls_ca=eap_tls_ca,
        eap_tls_crl=eap_tls_crl,
        clients=tuple(clients.values()),
    )


_SECRET_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")  # the vault's entry names


def _client_network(
    table: TableReader, raw: object
) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """A NAS's source: an IP address or a CIDR."""
    if isinstance(raw, str) and "/" not in raw:
        try:
            return ipaddress.ip_network(raw)
        except ValueError:
            table.issue("address", f"expected an IP address or a CIDR, got {toml_repr(raw)}")
            return None
    return _network(table, ("address",), raw)


_MAX_URL = 2048


def _ed25519_keys(table: TableReader, key: str) -> tuple[bytes, ...]:
    """Raw Ed25519 public keys, each given as base64 of its 32 bytes."""
    raw = table.raw(key)
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        table.issue(
            key,
            "expected a list of Ed25519 public keys (base64 of the raw 32 bytes), "
            f"got {toml_repr(raw)}",
        )
        return ()
    keys: list[bytes] = []
    for index, text in enumerate(raw):
        try:
            decoded = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            table.issue((key, index), f"not base64: {toml_string(text)}")
            continue
        if len(decoded) != ED25519_KEY_BYTES:
            table.issue(
                (key, index),
                f"decodes to {len(decoded)} bytes; an Ed25519 public key has {ED25519_KEY_BYTES}"
                " (give the raw key in base64, not PEM or OpenSSH format)",
            )
        elif decoded in keys:
            table.issue((key, index), f"key {toml_string(text)} is listed twice")
        else:
            keys.append(decoded)
    return tuple(keys)


def _feed_url(table: TableReader, key: str) -> str:
    """An http:// or https:// URL with a host, or "" for none."""
    value = table.raw(key)
    if value is None or value == "":
        return ""
    problem = _url_problem(value)
    if problem is None:
        assert isinstance(value, str)
        return value
    table.issue(
        key,
        f'expected an http:// or https:// URL, or "" for none, got {toml_repr(value)}: {problem}',
    )
    return ""


def _url_problem(value: object) -> str | None:
    if not isinstance(value, str):
        return "not a string"
    if len(value) > _MAX_URL:
        return f"longer than {_MAX_URL} characters"
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        return "it contains whitespace or control characters"
    try:
        parts = urllib.parse.urlsplit(value)
        port = parts.port
    except ValueError as exc:
        return str(exc)
    if parts.scheme not in ("http", "https"):
        return "the scheme must be http or https"
    if parts.username is not None or parts.password is not None:
        return "credentials do not belong in a URL here"
    if parts.fragment:
        return "a URL to fetch has no #fragment"
    host = parts.hostname or ""
    if not _HOSTNAME.fullmatch(host):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return "no valid host name or address"
    if port == 0:
        return "port 0"
    return None


def _realms(
    root: TableReader, roles: tuple[Role, ...], policies: tuple[Policy, ...] = ()
) -> tuple[Realm, ...]:
    """Portal login realms, in file order; each maps to declared roles."""
    known = {role.name for role in roles}

    def known_role(table: TableReader, key: str, value: str) -> bool:
        if value in known:
            return True
        table.issue(
            key, f"unknown role {toml_string(value)} (declared: {', '.join(sorted(known))})"
        )
        return False

    realms: dict[str, Realm] = {}
    for table in root.array_of_tables("realms"):
        if not table.has("name"):
            table.issue((), "missing required key name")
        if not table.has("role"):
            table.issue((), "missing required key role (the role its users get)")
        name = table.string(
            "name", "", pattern=_REALM_NAME, expected="a realm name (a-z, 0-9, _ and -, at most 32)"
        )
        role = table.string("role", "")
        title = table.string("title", name)
        if table.has("role"):
            known_role(table, "role", role)
        realm_policies = _policy_names(table, policies)
        remediation = table.string("remediation_role", "")
        if remediation:
            known_role(table, "remediation_role", remediation)
        mappings = []
        for mapping in table.array_of_tables("mappings"):
            mapped = mapping.string("role", "")
            if not mapping.has("role"):
                mapping.issue((), "missing required key role")
            elif known_role(mapping, "role", mapped):
                mappings.append(
                    RoleMapping(
                        mapped,
                        frozenset(_names(mapping, "users")),
                        frozenset(_names(mapping, "groups")),
                        frozenset(_platforms(mapping)),
                    )
                )
        reuse = _optional_seconds(table, "reuse_result_for")
        mschap = table.boolean("mschapv2", False)
        if name in realms:
            table.issue("name", f"realm {toml_string(name)} is declared twice")
            continue
        if name:
            realms[name] = Realm(
                name,
                role,
                title,
                realm_policies,
                remediation or None,
                tuple(mappings),
                reuse,
                mschap,
            )
    return tuple(realms.values())


def _names(table: TableReader, key: str) -> list[str]:
    raw = table.raw(key)
    if raw is None:
        return []
    if isinstance(raw, list) and all(isinstance(v, str) and v for v in raw):
        return list(raw)
    table.issue(key, f"expected a list of names, got {toml_repr(raw)}")
    return []


def _platforms(table: TableReader) -> list[Platform]:
    found = []
    for value in _names(table, "platforms"):
        try:
            found.append(Platform(value))
        except ValueError:
            choices = ", ".join(toml_string(p.value) for p in Platform)
            table.issue("platforms", f"{toml_string(value)} is not a platform ({choices})")
    return found


def _policy_names(table: TableReader, policies: tuple[Policy, ...]) -> tuple[str, ...]:
    """`policies = ["name", ...]`: Host Checker policies declared in [[policies]]."""
    raw = table.raw("policies")
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(n, str) for n in raw):
        table.issue("policies", f"expected a list of policy names, got {toml_repr(raw)}")
        return ()
    known = {policy.name for policy in policies}
    for name in raw:
        if name not in known:
            declared = ", ".join(sorted(known)) or "none"
            table.issue("policies", f"unknown policy {toml_string(name)} (declared: {declared})")
    return tuple(dict.fromkeys(raw))


def _roles(root: TableReader, policies: tuple[Policy, ...] = ()) -> tuple[Role, ...]:
    """Built-in roles first (the config may tune them), then the declared ones in file order."""
    declared: dict[str, Role] = {}
    for table in root.array_of_tables("roles"):
        role = _role(table, policies)
        if role is None:
            continue
        if role.name in declared:
            table.issue("name", f"role {toml_string(role.name)} is declared twice")
            continue
        declared[role.name] = role
    builtins = tuple(
        declared.pop(name) if name in declared else builtin_role(name) for name in BUILTIN_ROLES
    )
    return builtins + tuple(declared.values())


def _role(table: TableReader, policies: tuple[Policy, ...] = ()) -> Role | None:
    name = table.string(
        "name",
        "",
        pattern=_ROLE_NAME,
        expected=f"a role name (a-z first, then a-z, 0-9 and _, at most {ROLE_NAME_MAX})",
    )
    if not table.has("name"):
        table.issue((), "missing required key name")
    base = builtin_role(name) if name in BUILTIN_ROLES else None
    if base is None and not table.has("vlan"):
        table.issue((), "missing required key vlan (the VLAN id switches put this role in)")
    vlan = table.integer("vlan", base.vlan if base else 1, min=1, max=4094, unit="a VLAN id")
    captive = table.boolean("captive", base.captive if base else False)
    allow = tuple(_destinations(table))
    recheck = _optional_seconds(table, "recheck_interval")
    lifetime = _optional_seconds(table, "session_lifetime")
    role_policies = _policy_names(table, policies)
    if not name:
        return None
    return Role(name, vlan, captive, allow, recheck, lifetime, role_policies)


_DURATION = re.compile(r"([0-9]{1,9})(s|m|h|d|w)")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION_MAX = 365 * 86400


def _optional_seconds(table: TableReader, key: str) -> float | None:
    """Seconds, as a number or a duration string ("90s", "15m", "12h", "7d", "2w"); more
    than 0, at most a year. Absent: None."""
    if not table.has(key):
        return None
    raw = table.raw(key)
    if isinstance(raw, str):
        match = _DURATION.fullmatch(raw)
        seconds = int(match[1]) * _DURATION_UNITS[match[2]] if match else 0
        if 0 < seconds <= _DURATION_MAX:
            return float(seconds)
        table.issue(
            key,
            f'expected seconds (a number) or a duration such as "15m", "12h" or "7d",'
            f" more than 0 and at most 365d, got {toml_repr(raw)}",
        )
        return None
    return table.number(key, 0.0, min=0, min_exclusive=True, max=_DURATION_MAX, unit="seconds")


def _destinations(table: TableReader) -> list[Destination]:
    """`allow = ["198.19.0.0/24", {cidr = "198.19.0.3/32", proto = "tcp", ports = [80, 443]}]`."""
    raw = table.raw("allow")
    if raw is None:
        return []
    if not isinstance(raw, list):
        table.issue(
            "allow",
            f"expected a list of CIDRs or {{cidr, proto, ports}} tables, got {toml_repr(raw)}",
        )
        return []
    out: list[Destination] = []
    for index, item in enumerate(raw):
        where = ("allow", index)
        if isinstance(item, str):
            item = {"cidr": item}
        if not isinstance(item, dict):
            table.issue(where, f"expected a CIDR string or a table, got {toml_repr(item)}")
            continue
        unknown = sorted(set(item) - {"cidr", "proto", "ports"})
        if unknown:
            table.issue((*where, unknown[0]), "unknown key (known: cidr, ports, proto)")
            continue
        network = _network(table, (*where, "cidr"), item.get("cidr"))
        protocol = _protocol(table, (*where, "proto"), item.get("proto", "any"))
        ports = _ports(table, (*where, "ports"), item.get("ports", []), protocol)
        if network is not None and protocol is not None and ports is not None:
            out.append(Destination(network, protocol, ports))
    return out


def _network(
    table: TableReader, where: KeyPath, value: object
) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if not isinstance(value, str):
        table.issue(where, f'expected a CIDR such as "198.19.0.0/24", got {toml_repr(value)}')
        return None
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        hint = ""
        with contextlib.suppress(ValueError):
            hint = f" (did you mean {toml_string(str(ipaddress.ip_network(value, strict=False)))}?)"
        table.issue(where, f"invalid CIDR {toml_string(value)}: {exc}{hint}")
        return None


def _protocol(table: TableReader, where: KeyPath, value: object) -> Protocol | None:
    for member in Protocol:
        if member.value == value:
            return member
    choices = ", ".join(toml_string(member.value) for member in Protocol)
    table.issue(where, f"expected one of {choices}, got {toml_repr(value)}")
    return None


def _ports(
    table: TableReader, where: KeyPath, value: object, protocol: Protocol | None
) -> tuple[int, ...] | None:
    if not isinstance(value, list) or not all(
        isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 65535 for p in value
    ):
        table.issue(where, f"expected a list of ports between 1 and 65535, got {toml_repr(value)}")
        return None
    if value and protocol not in (Protocol.TCP, Protocol.UDP):
        table.issue(where, 'ports need proto = "tcp" or "udp"')
        return None
    return tuple(sorted(set(value)))


# -- machinery ---------------------------------------------------------------------------------


def _parse_toml(text: str, source: str) -> dict[str, object]:
    try:
        return tomllib.loads(text)
    except ValueError as exc:
        # TOMLDecodeError is a ValueError; so is an integer literal longer than Python converts.
        message = str(exc)
        position = _SYNTAX_POSITION.search(message)
        line = None
        if position:
            message = message[: position.start()]
            line = int(position[1]) if position[1] else text.count("\n") + 1 - text.endswith("\n")
        issue = ConfigIssue(source, line, "", f"TOML syntax error: {message}")
        raise ConfigError([issue]) from exc
    except RecursionError as exc:
        issue = ConfigIssue(source, None, "", "TOML syntax error: values nested too deeply")
        raise ConfigError([issue]) from exc


class _IssueLog:
    """The issues found in one text; lines are looked up only once something is wrong."""

    def __init__(self, source: str, text: str) -> None:
        self._source = source
        self._text = text
        self._lines: LineIndex | None = None
        self._issues: list[ConfigIssue] = []

    def add(self, path: KeyPath, message: str) -> None:
        if self._lines is None:
            self._lines = LineIndex(self._text)
        line = self._lines.line_of(path)
        self._issues.append(ConfigIssue(self._source, line, format_key_path(path), message))

    def raise_if_any(self) -> None:
        if self._issues:
            raise ConfigError(sorted(self._issues, key=lambda i: (i.line is None, i.line or 0)))


class TableReader:
    """Typed reads from one TOML table; a bad value is recorded as an issue and the default is
    returned so reading goes on. Keys never asked for are reported by finish() as typos."""

    def __init__(self, data: Mapping[str, object], path: KeyPath, issues: _IssueLog) -> None:
        self.key_path = path
        self._data = data
        self._issues = issues
        self._known: set[str] = set()
        self._children: list[TableReader] = []

    def issue(self, where: str | KeyPath, message: str) -> None:
        """Records a problem at a key of this table (or a deeper path, e.g. ("access", 2))."""
        self._issues.add(
            (*self.key_path, *((where,) if isinstance(where, str) else where)), message
        )

    def string(
        self,
        key: str,
        default: str,
        *,
        pattern: re.Pattern[str] | None = None,
        expected: str = "a string",
    ) -> str:
        value = self._get(key)
        if value is _ABSENT:
            return default
        if isinstance(value, str) and (pattern is None or pattern.fullmatch(value)):
            return value
        return self._wrong(key, expected, value, default)

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is _ABSENT:
            return default
        if isinstance(value, bool):
            return value
        return self._wrong(key, "true or false", value, default)

    def number(
        self,
        key: str,
        default: float,
        *,
        min: float | None = None,
        max: float | None = None,
        min_exclusive: bool = False,
        unit: str = "",
    ) -> float:
        """An int or float from TOML, as a finite float within the bounds."""
        value = self._get(key)
        if value is _ABSENT:
            return default
        if (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and _within(value, min, max, min_exclusive)
        ):
            return float(value)
        noun = f"a number of {unit}" if unit else "a number"
        return self._wrong(key, _describe(noun, min, max, min_exclusive), value, default)

    def integer(
        self,
        key: str,
        default: int,
        *,
        min: int | None = None,
        max: int | None = None,
        unit: str = "",
    ) -> int:
        value = self._get(key)
        if value is _ABSENT:
            return default
        if (
            isinstance(value, int)
            and not isinstance(value, bool)
            and _within(value, min, max, False)
        ):
            return value
        noun = f"an integer number of {unit}" if unit else "an integer"
        return self._wrong(key, _describe(noun, min, max, False), value, default)

    def optional_path(self, key: str) -> pathlib.Path | None:
        """An absolute path, or "" (the default) for none."""
        value = self._get(key)
        if value is _ABSENT or value == "":
            return None
        if isinstance(value, str) and value.startswith("/") and "\0" not in value:
            return pathlib.Path(value)
        return self._wrong(key, 'an absolute path, or "" for none', value, None)

    def path(self, key: str, default: pathlib.Path) -> pathlib.Path:
        value = self._get(key)
        if value is _ABSENT:
            return default
        if isinstance(value, str) and value.startswith("/") and "\0" not in value:
            return pathlib.Path(value)
        return self._wrong(key, "an absolute path", value, default)

    def enum(self, key: str, default: _E) -> _E:
        """A string naming one member (by value) of the default's enum."""
        value = self._get(key)
        if value is _ABSENT:
            return default
        for member in type(default):
            if member.value == value:
                return member
        choices = ", ".join(toml_string(str(member.value)) for member in type(default))
        return self._wrong(key, f"one of {choices}", value, default)

    def ifname_list(
        self,
        key: str,
        default: tuple[str, ...],
        *,
        allow_empty: bool,
        disjoint_from: tuple[str, tuple[str, ...]] | None = None,
    ) -> tuple[str, ...]:
        """Linux interface names, no duplicates, none also in `disjoint_from` (key, names)."""
        value = self._get(key)
        if value is _ABSENT:
            return default
        if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
            return self._wrong(key, "a list of interface names", value, ())
        if not value and not allow_empty:
            return self._wrong(key, "at least one interface name", value, ())
        names: list[str] = []
        for index, name in enumerate(value):
            problem = _ifname_problem(name)
            if problem:
                self.issue((key, index), f"invalid interface name {toml_string(name)}: {problem}")
            elif name in names:
                self.issue((key, index), f"interface {toml_string(name)} is listed twice")
            elif disjoint_from and name in disjoint_from[1]:
                other = disjoint_from[0]
                self.issue(
                    (key, index), f"interface {toml_string(name)} is in both {other} and {key}"
                )
            else:
                names.append(name)
        return tuple(names)

    def subtable(self, key: str) -> TableReader:
        """The table at `key`; an empty one if absent (so every key takes its default)."""
        value = self._get(key)
        data: Mapping[str, object] = {}
        if isinstance(value, dict):
            data = value
        elif value is not _ABSENT:
            self._wrong(key, "a table", value, None)
        return self._child(data, (*self.key_path, key))

    def array_of_tables(self, key: str) -> list[TableReader]:
        """The tables of `[[key]]` (or `key = [{...}, ...]`); none if absent."""
        value = self._get(key)
        if value is _ABSENT:
            return []
        if not isinstance(value, list):
            return self._wrong(key, "an array of tables", value, [])
        tables = []
        for index, item in enumerate(value):
            if isinstance(item, dict):
                tables.append(self._child(item, (*self.key_path, key, index)))
            else:
                self.issue((key, index), f"expected a table, got {toml_repr(item)}")
        return tables

    def has(self, key: str) -> bool:
        return key in self._data

    def raw(self, key: str) -> object | None:
        """The untyped value at `key` (None if absent), for shapes the typed readers lack."""
        value = self._get(key)
        return None if value is _ABSENT else value

    def skip_rest(self) -> None:
        """Treat every key here as read: after an error that makes the others meaningless
        (a rule of unknown type), so only that error is reported."""
        self._known.update(self._data)

    def finish(self) -> None:
        """Reports every key nobody asked for, here and in all tables read through this one."""
        known = ", ".join(sorted(self._known)) or "none"
        for key, value in self._data.items():
            if key not in self._known:
                is_table = isinstance(value, dict) or (
                    isinstance(value, list)
                    and bool(value)
                    and all(isinstance(v, dict) for v in value)
                )
                self.issue(key, f"unknown {'table' if is_table else 'key'} (known: {known})")
        for child in self._children:
            child.finish()

    def _get(self, key: str) -> object:
        self._known.add(key)
        return self._data.get(key, _ABSENT)

    def _child(self, data: Mapping[str, object], path: KeyPath) -> TableReader:
        child = TableReader(data, path, self._issues)
        self._children.append(child)
        return child

    def _wrong(self, key: str, expected: str, value: object, fallback: _T) -> _T:
        self.issue(key, f"expected {expected}, got {toml_repr(value)}")
        return fallback


def _within(value: float, low: float | None, high: float | None, low_exclusive: bool) -> bool:
    if low is not None and (value <= low if low_exclusive else value < low):
        return False
    return high is None or value <= high


def _describe(noun: str, low: float | None, high: float | None, low_exclusive: bool) -> str:
    """'a number of seconds > 0 and <= 300', 'an integer number of bytes between 1 and 9'."""
    if low is not None and high is not None and not low_exclusive:
        return f"{noun} between {_number(low)} and {_number(high)}"
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_exclusive else '>='} {_number(low)}")
    if high is not None:
        bounds.append(f"<= {_number(high)}")
    return " ".join([noun, " and ".join(bounds)]) if bounds else noun


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _ifname_problem(name: str) -> str | None:
    """Why the kernel would refuse `name` as an interface name (dev_valid_name), or None."""
    if not 1 <= len(name.encode("utf-8", "surrogatepass")) <= 15:
        return "must be 1 to 15 bytes long"
    if name in (".", ".."):
        return 'must not be "." or ".."'
    for ch, what in (("/", '"/"'), (":", '":"'), ("\0", "NUL")):
        if ch in name:
            return f"must not contain {what}"
    if any(ch.isspace() for ch in name):
        return "must not contain whitespace"
    return None
