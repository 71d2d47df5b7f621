"""The appliance config as frozen values; defaults here are the single source for load.py too.

Only load.py validates: build these directly only from values that are already known good.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from netaccess.policy.hostchecker import Policy
from netaccess.policy.roles import Realm, Role


class LogLevel(enum.Enum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    """netaccessd itself. shutdown_grace: seconds work may take to finish after SIGTERM (≤ 300)."""

    state_dir: Path = Path("/var/lib/netaccess")
    control_socket: Path = Path("/run/netaccess/control.sock")
    admin_group: str = "netaccess-admin"
    log_level: LogLevel = LogLevel.INFO
    shutdown_grace: float = 5.0
    watchdog: bool = True
    user: str = "netaccess"


@dataclass(frozen=True, slots=True)
class InterfacesConfig:
    """Linux interface names: `access` faces endpoints (at least one), `upstream` the network.

    No name appears twice, in one list or across both.
    """

    access: tuple[str, ...] = ("acc0",)
    upstream: tuple[str, ...] = ("up0",)


@dataclass(frozen=True, slots=True)
class DetectionConfig:
    """Learning endpoints from DHCP and ARP on the access interfaces.

    malformed_log_interval: seconds between log lines about malformed frames, per interface (> 0).
    receive_buffer: capture socket receive buffer in bytes (64 KiB to 256 MiB).
    max_endpoints: inventory size past which new MACs are counted and refused, so a DHCP
        starvation flood of random MACs cannot exhaust memory and disk (1 to 10,000,000).
    """

    enabled: bool = True
    malformed_log_interval: float = 10.0
    receive_buffer: int = 4 * 1024 * 1024
    max_endpoints: int = 100_000


@dataclass(frozen=True, slots=True)
class EnforcementConfig:
    """The privileged enforcer and the kernel ruleset.

    enforcer_socket: where netaccess-enforcer takes intents from netaccessd.
    reconcile_interval: seconds between comparisons of the kernel's sets with the store.
    portal_http_port / portal_https_port / pt_tls_port: the listeners the enforcer opens and
        hands to netaccessd, and where captive HTTP is redirected.
    intent_queue: intents netaccessd keeps while the enforcer is unreachable.
    """

    enforcer_socket: Path = Path("/run/netaccess/enforcer.sock")
    reconcile_interval: float = 60.0
    portal_http_port: int = 80
    portal_https_port: int = 443
    pt_tls_port: int = 271
    intent_queue: int = 1_000_000


@dataclass(frozen=True, slots=True)
class PortalConfig:
    """The captive portal's web server (plain HTTP on enforcement.portal_http_port).

    hostname: the portal's DNS name, which endpoints must resolve to the appliance; captive
        requests are redirected to https://<hostname>/login.
    max_connections: open connections at most; past it new ones wait in the listen backlog.
    request_timeout: seconds a whole request may take to arrive, from its first byte (a new
        connection also gets this long for that first byte).
    idle_timeout: seconds a kept-alive connection may wait for its next request.
    max_header_bytes / max_headers: the request line and header fields (431 past them).
    max_body_bytes: a request body (413 past it).
    tls_certificate / tls_key: PEM files for HTTPS (both or neither); None: a self-signed
        certificate for `hostname` is made at first start and kept in the state directory.
    """

    hostname: str = "portal.netaccess.test"
    max_connections: int = 20_000
    request_timeout: float = 10.0
    idle_timeout: float = 60.0
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100
    max_body_bytes: int = 64 * 1024
    tls_certificate: Path | None = None
    tls_key: Path | None = None


class PostureAuthentication(enum.Enum):
    """Whether PT-TLS clients must sign in (SASL PLAIN, RFC 6876 §3.8) before posture."""

    NONE = "none"
    PLAIN = "plain"


class ClientCertificates(enum.Enum):
    NONE = "none"
    OPTIONAL = "optional"
    REQUIRED = "required"


class RemoteImvFailure(enum.Enum):
    """What a session gets from a remote IMV server that is unreachable, slow or broken."""

    DONT_KNOW = "dont-know"  # don't know, quarantined
    NO_ACCESS = "no-access"  # error, no access


@dataclass(frozen=True, slots=True)
class RemoteImvConfig:
    """IMVs on a remote IMV server (netaccess.proto.tnc.remote_imv), reached over TLS with
    our client certificate: PA-TNC messages for `subscriptions` ((vendor, subtype) pairs)
    are relayed there and its evaluation joins the session's.

    name: for logs and reasons. address / port: the server. certificate / key: our client
        certificate and key (PEM). ca: the CA certificates (PEM) that sign the server's
        certificate, which must name `server_name`.
    timeout: seconds each request may take. on_failure: what the session gets if the
        server cannot be reached or fails.
    """

    name: str
    address: str
    port: int
    subscriptions: tuple[tuple[int, int], ...]
    certificate: Path
    key: Path
    ca: Path
    server_name: str
    timeout: float = 5.0
    on_failure: RemoteImvFailure = RemoteImvFailure.DONT_KNOW


@dataclass(frozen=True, slots=True)
class PostureConfig:
    """The PT-TLS posture server (RFC 6876) on enforcement.pt_tls_port: TLS 1.2 or 1.3 with
    the portal's certificate, then PB-TNC and PA-TNC to the IMVs.

    authentication: "plain" makes clients sign in with SASL PLAIN as a realm user
        ("user@realm", or "user" in `realm`); a bad password ends the session.
    realm: the realm of user names without "@realm".
    client_certificates / client_ca: TLS client certificates ("none", "optional",
        "required"), checked against the CA certificates in the PEM file client_ca.
    session_timeout: seconds a whole session may take. message_timeout: seconds the client
        may stay silent when it is its turn (a stalled session is closed).
    max_sessions: sessions at once; past it new connections wait in the listen backlog.
    max_messages / max_session_bytes: PT-TLS messages and bytes one session may send us.
    max_message_bytes: one PT-TLS message (a PB-TNC batch inside it).
    request_packages: the OS IMV asks for the Installed Packages list (RFC 5792 §4.2.7).
    remote_imvs: remote IMV servers, each with its own subscriptions.
    """

    authentication: PostureAuthentication = PostureAuthentication.NONE
    realm: str = "staff"
    client_certificates: ClientCertificates = ClientCertificates.NONE
    client_ca: Path | None = None
    session_timeout: float = 60.0
    message_timeout: float = 20.0
    max_sessions: int = 1000
    max_messages: int = 200
    max_session_bytes: int = 16 * 1024 * 1024
    max_message_bytes: int = 4 * 1024 * 1024
    request_packages: bool = True
    remote_imvs: tuple[RemoteImvConfig, ...] = ()


@dataclass(frozen=True, slots=True)
class PatchFeedConfig:
    """The signed patch feed (netaccess.policy.feed): who may sign it and where it is pulled.

    trusted_keys: raw 32-byte Ed25519 public keys; a feed signed by any one is trusted.
    url: fetched every `interval` seconds over HTTP or HTTPS; "" pulls nothing (import only).
    signature_url: the detached signature; the loader fills in url + ".sig" when not given.
    timeout: seconds each download may take. ca: the CA certificates (PEM) for an https
        server; None: the system's.
    """

    trusted_keys: tuple[bytes, ...] = ()
    url: str = ""
    signature_url: str = ""
    interval: float = 3600.0
    timeout: float = 60.0
    ca: Path | None = None


class CoaMethod(enum.Enum):
    """How a role change reaches a NAS's session (RFC 5176): a CoA asking the NAS to
    re-authenticate the session (Cisco's subscriber:command=reauthenticate), a CoA bouncing
    the port (subscriber:command=bounce-host-port, the endpoint renews DHCP in its new VLAN),
    a Disconnect-Request, or nothing (the role applies at the NAS's next re-authentication)."""

    REAUTHENTICATE = "reauthenticate"
    BOUNCE_PORT = "bounce-port"
    DISCONNECT = "disconnect"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class RadiusClientConfig:
    """A NAS (switch, wireless controller) allowed to send us RADIUS.

    network: the source addresses it sends from (one address is a /32 or /128).
    secret: the name of its shared secret in the vault (`appliance secrets set NAME`).
    require_message_authenticator: drop its Access-Requests without one (BlastRADIUS).
    coa / coa_port: how and where role changes are pushed to it.
    """

    name: str
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    secret: str
    require_message_authenticator: bool = True
    coa: CoaMethod = CoaMethod.REAUTHENTICATE
    coa_port: int = 3799


@dataclass(frozen=True, slots=True)
class RadiusConfig:
    """The RADIUS server for switches (MAB, 802.1X, accounting); it runs when clients are
    declared.

    address: the local address it binds ("::" is every address of both families).
    auth_port / acct_port: UDP ports for Access-Request and Accounting-Request.
    queue: datagrams waiting to be processed at most; past it new ones are dropped and
        counted (overload sheds instead of stalling).
    duplicate_window: seconds a reply is kept to answer a NAS's retransmission (RFC 5080).
    coa_timeout / coa_tries: per CoA/Disconnect try, and how many tries in all.
    max_sessions: accounting sessions kept at most.
    session_idle: seconds a session is kept with no accounting for it; past that it is
        dropped as if stopped (a NAS that went away without a Stop or Accounting-Off).
    eap_realm: the realm whose users EAP-TTLS/PAP checks when the identity names none
        ("user@realm" and "realm\\user" name one); "" (the default): the first realm.
    eap_timeout: seconds an unfinished EAP conversation (one State) is kept.
    eap_sessions: unfinished EAP conversations kept at most; when full, new ones are
        refused (Access-Reject) until some finish or expire.
    eap_tls_ca: the CA that signs the client certificates EAP-TLS accepts; EAP-TLS is
        offered only when it is set.
    eap_tls_crl: the CA's CRL (PEM): a client certificate it revokes is refused. Read
        again when the file changes.
    """

    address: str = "::"
    auth_port: int = 1812
    acct_port: int = 1813
    queue: int = 4096
    duplicate_window: float = 5.0
    coa_timeout: float = 2.0
    coa_tries: int = 3
    max_sessions: int = 100_000
    session_idle: float = 86_400.0
    dictionary: Path | None = None
    eap_realm: str = ""
    eap_timeout: float = 60.0
    eap_sessions: int = 4096
    eap_tls_ca: Path | None = None
    eap_tls_crl: Path | None = None
    clients: tuple[RadiusClientConfig, ...] = ()


@dataclass(frozen=True, slots=True)
class ApplianceConfig:
    """A whole validated config; `source` names where it came from, for logs and the CLI.

    roles always holds the built-in quarantine and remediation roles, first, then the rest in
    file order.
    """

    daemon: DaemonConfig
    interfaces: InterfacesConfig
    detection: DetectionConfig
    source: str
    enforcement: EnforcementConfig = EnforcementConfig()
    roles: tuple[Role, ...] = ()
    portal: PortalConfig = PortalConfig()
    realms: tuple[Realm, ...] = ()
    posture: PostureConfig = PostureConfig()
    patch_feed: PatchFeedConfig = PatchFeedConfig()
    policies: tuple[Policy, ...] = ()  # Host Checker ([[policies]]); see config/policies.py
    radius: RadiusConfig = RadiusConfig()

    def policy(self, name: str) -> Policy | None:
        for policy in self.policies:
            if policy.name == name:
                return policy
        return None

    def realm(self, name: str) -> Realm | None:
        for realm in self.realms:
            if realm.name == name:
                return realm
        return None

    def mschapv2_realms(self) -> frozenset[str]:
        """The realms whose users may sign in with MSCHAPv2 (PEAP): mschapv2 = true."""
        return frozenset(realm.name for realm in self.realms if realm.mschapv2)

    def role(self, name: str) -> Role | None:
        for role in self.roles:
            if role.name == name:
                return role
        return None
