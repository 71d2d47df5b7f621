"""The captive portal as the endpoints meet it.

Plain HTTP (captive traffic is redirected there): captive endpoints are sent to the login
page, their probes included; admitted ones never are (netaccess.proto.http.captive).
HTTPS: the RFC 8908 Captive Portal API, the realm login, and the status page. Who is asking
is known by source address: the inventory maps it to an endpoint and its role.
"""

from __future__ import annotations

# Jinja's lexer decodes string literals with this codec, which Python loads on first use;
# loaded here, at import, because netaccessd may no longer be able to read the standard
# library once it has dropped root (the lab's interpreter lives under /root).
import encodings.unicode_escape  # noqa: F401
import hmac
import ipaddress
import json
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jinja2
import trio

from netaccess.config import ApplianceConfig
from netaccess.io.admission import AdmissionKeeper
from netaccess.io.agents import AgentStore
from netaccess.io.http_server import Peer, StreamedResponse
from netaccess.io.inventory import Inventory
from netaccess.policy.admission import Outcome
from netaccess.policy.agents import AgentBuild
from netaccess.policy.credentials import (
    CredentialError,
    LoginThrottle,
    hash_password,
    verify_password,
)
from netaccess.policy.endpoint import Endpoint
from netaccess.policy.hostchecker import Platform, Remediation
from netaccess.policy.roles import QUARANTINE, Realm
from netaccess.proto.http import (
    Request,
    Response,
    admitted_answer,
    captive_redirect,
    https_redirect,
)
from netaccess.proto.http.downloads import (
    Unsatisfiable,
    byte_range,
    etag_of,
    none_match,
    platform_of,
)
from netaccess.store import Store

log = logging.getLogger("netaccess.portal")

SECURITY_HEADERS = (
    (
        "content-security-policy",
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self';"
        " frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cache-control", "no-store"),
)
PLATFORM_NAMES = {
    "windows": "Windows",
    "macos": "macOS",
    "linux": "Linux",
    "android": "Android",
    "ios": "iOS and iPadOS",
}
FORM_COOKIE = "na_form"  # the login form's session: it holds the CSRF token
SESSION_COOKIE = "na_session"  # a signed-in user's session
FORM_LIFETIME = 3600.0
SESSION_LIFETIME = 12 * 3600.0
MAX_SESSIONS = 100_000
MAX_FORM_FIELDS = 16


@dataclass(slots=True)
class _Session:
    csrf: str
    expires: float
    user: str = ""  # "realm/name" once signed in


class Portal:
    def __init__(
        self,
        config: ApplianceConfig,
        inventory: Inventory,
        store: Store,
        *,
        agents: AgentStore | None = None,
        clock: Callable[[], float] = time.monotonic,
        admissions: AdmissionKeeper | None = None,
    ) -> None:
        self._agents = agents
        if admissions is None:  # (not `or`: an empty keeper is falsy)
            admissions = AdmissionKeeper(config, store, inventory, lambda: None)
        self._admissions = admissions
        self.hostname = config.portal.hostname
        self.login_url = f"https://{self.hostname}/login"
        self._config = config
        self._inventory = inventory
        self._store = store
        self._clock = clock
        self._captive = {role.name: role.captive for role in config.roles}
        self._sessions: dict[str, _Session] = {}
        self.throttle = LoginThrottle()
        # One scrypt check per core at once: each holds 32 MiB and a core for ~60 ms, so more
        # in parallel only add memory and take the cores from the event loop, at the same
        # rate of checks (the RADIUS server bounds its own the same way).
        self._password_checks = trio.CapacityLimiter(len(os.sched_getaffinity(0)))
        # Unknown users are checked against this, so a miss costs what a wrong password does.
        self._decoy = hash_password(secrets.token_urlsafe(16))
        self._templates = jinja2.Environment(
            loader=jinja2.PackageLoader("netaccess.io", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        for name in self._templates.list_templates():  # compile now: errors show at start
            self._templates.get_template(name)
        self._css = resources.files("netaccess.io").joinpath("static/portal.css").read_bytes()

    # -- who is asking

    def endpoint_at(self, ip: str) -> Endpoint | None:
        return self._inventory.by_ip(_plain(ip))

    def is_captive(self, ip: str) -> bool:
        """Whether the endpoint at `ip` is in a captive role. One we do not know, or whose
        role the config no longer declares, is: the ruleset quarantines what is in no set,
        and the portal agrees."""
        endpoint = self.endpoint_at(ip)
        role = endpoint.role if endpoint is not None else QUARANTINE
        return self._captive.get(role, True)

    # -- plain HTTP

    async def handle_http(self, request: Request, peer: Peer) -> Response:
        if request.host == self.hostname:
            return https_redirect(request, self.hostname)  # a portal page: over TLS
        if self.is_captive(peer.ip):
            return captive_redirect(request, self.login_url)
        return admitted_answer(request)

    # -- HTTPS

    async def handle_https(self, request: Request, peer: Peer) -> Response | StreamedResponse:
        path = request.path
        if path == "/api/captive":
            return self.captive_api(peer)
        if path == "/static/portal.css":
            return Response(
                200, (("content-type", "text/css"), ("cache-control", "max-age=3600")), self._css
            )
        if path == "/":
            target = "/login" if self.is_captive(peer.ip) else "/status"
            return Response(303, (("location", target), *SECURITY_HEADERS))
        if path == "/login":
            if request.method == "POST":
                return await self.login(request, peer)
            if request.method in ("GET", "HEAD"):
                return self.login_form(request, peer)
            return self._page(405, "message.html", heading="Not allowed", message="Use the form.")
        if path == "/status" and request.method in ("GET", "HEAD"):
            return self.status_page(request, peer)
        if path == "/agent" and request.method in ("GET", "HEAD"):
            return self.agent_page(request)
        if path.startswith("/agent/download/") and request.method in ("GET", "HEAD"):
            return self.agent_download(request)
        return self._page(
            404,
            "message.html",
            heading="Not found",
            message="No such page.",
            link="/",
            link_text="Network access",
        )

    def captive_api(self, peer: Peer) -> Response:
        """RFC 8908 §5: the client's state, as JSON, never cached."""
        body: dict[str, Any] = {
            "captive": self.is_captive(peer.ip),
            "user-portal-url": self.login_url,
        }
        return Response(
            200,
            (("content-type", "application/captive+json"), ("cache-control", "private, no-store")),
            json.dumps(body).encode(),
        )

    def _no_realms(self) -> Response:
        return self._page(
            503,
            "message.html",
            heading="Sign-in unavailable",
            message="No sign-in realm is configured on this appliance. Ask the network admins.",
        )

    def login_form(
        self,
        request: Request,
        peer: Peer,
        *,
        error: str = "",
        status: int = 200,
        username: str = "",
        realm: str = "",
    ) -> Response:
        if not self._config.realms:
            return self._no_realms()
        token, session = self._form_session(request)
        endpoint = self.endpoint_at(peer.ip)
        next_url = _query_value(request, "next")
        response = self._page(
            status,
            "login.html",
            error=error,
            csrf=session.csrf,
            next_url=next_url,
            realms=self._config.realms,
            chosen_realm=realm,
            username=username,
            ip=_plain(peer.ip),
            mac=endpoint.mac if endpoint else "",
        )
        return _with_cookie(response, FORM_COOKIE, token, FORM_LIFETIME)

    async def login(self, request: Request, peer: Peer) -> Response:
        fields = _form_fields(request)
        if fields is None:
            return self._page(
                400,
                "message.html",
                heading="Bad request",
                message="The form could not be read.",
                link="/login",
                link_text="Back to sign in",
            )
        session = self._sessions.get(_cookie(request, FORM_COOKIE) or "")
        now = self._clock()
        if (
            session is None
            or session.expires < now
            or not hmac.compare_digest(session.csrf, fields.get("csrf", ""))
        ):
            return self._page(
                403,
                "message.html",
                heading="Form expired",
                message=(
                    "The sign-in form expired or did not come from this portal. Please try again."
                ),
                link="/login",
                link_text="Sign in",
            )
        realm = self._config.realm(fields.get("realm", ""))
        username = fields.get("username", "")
        password = fields.get("password", "")
        if realm is None or not username or not password:
            return self.login_form(
                request,
                peer,
                error="Choose a realm and give your user name and password.",
                status=400,
                username=username,
            )
        keys = (f"endpoint:{_plain(peer.ip)}", f"user:{realm.name}/{username}")
        locked = self.throttle.locked_until(keys, now)
        if locked is not None:
            return self._locked(locked - now)
        if not await self._password_ok(realm, username, password):
            ends = self.throttle.failed(keys, self._clock())
            log.info(
                "portal login failed",
                extra={"realm": realm.name, "user": username, "peer": peer.ip},
            )
            error = "Wrong user name or password."
            if ends is not None:
                minutes = max(1, round((ends - self._clock()) / 60))
                error += f" Too many failures: sign-in is locked for about {minutes} min."
            return self.login_form(
                request,
                peer,
                error=error,
                status=401,
                username=username,
                realm=realm.name,
            )
        self.throttle.succeeded(keys)
        return self._admit(request, peer, realm, username)

    def status_page(self, request: Request, peer: Peer) -> Response:
        endpoint = self.endpoint_at(peer.ip)
        session = self._sessions.get(_cookie(request, SESSION_COOKIE) or "")
        user = session.user if session is not None and session.expires >= self._clock() else ""
        captive = self.is_captive(peer.ip)
        role = endpoint.role if endpoint is not None else QUARANTINE
        checks = [
            {"name": "Realm sign-in", "state": "passed" if user or not captive else "pending"}
        ]
        standing = self._admissions.standing(endpoint.mac) if endpoint is not None else None
        if standing is not None:
            state = "passed" if standing.outcome is Outcome.ADMITTED else "failed"
            checks.append({"name": "Host Checker", "state": state})
        return self._page(
            200,
            "status.html",
            role=role,
            captive=captive,
            ip=_plain(peer.ip),
            mac=endpoint.mac if endpoint else "",
            user=user,
            checks=checks,
            remediation=_fixes(standing.remediation) if standing is not None else [],
        )

    def agent_page(self, request: Request) -> Response:
        platform = platform_of(request.header("user-agent"))
        builds = self._agents.builds() if self._agents is not None else []
        newest: dict[str, AgentBuild] = {}
        for build in builds:  # newest first: keep the first of each platform
            newest.setdefault(build.platform, build)
        recommended = newest.get(platform) if platform else None
        others = [b for p, b in sorted(newest.items()) if b is not recommended]
        return self._page(
            200,
            "agent.html",
            platform=platform,
            recommended=recommended,
            others=others,
            platform_names=PLATFORM_NAMES,
        )

    def agent_download(self, request: Request) -> Response | StreamedResponse:
        parts = request.path.split("/")  # "", "agent", "download", platform, version, file
        build = None
        if len(parts) == 6 and self._agents is not None:
            build = self._agents.find(parts[3], parts[4], parts[5])
        if build is None or self._agents is None:
            return self._page(
                404,
                "message.html",
                heading="Not found",
                message="No such agent build.",
                link="/agent",
                link_text="Agent downloads",
            )
        etag = etag_of(build.sha256)
        headers = (
            ("etag", etag),
            ("accept-ranges", "bytes"),
            ("cache-control", "private, max-age=300"),
            ("x-content-type-options", "nosniff"),
        )
        if none_match(request.header("if-none-match"), etag):
            return Response(304, headers)
        try:
            wanted = byte_range(request.header("range"), build.size)
        except Unsatisfiable:
            return Response(416, (*headers, ("content-range", f"bytes */{build.size}")))
        agents = self._agents
        content = (
            ("content-type", "application/octet-stream"),
            ("content-disposition", f'attachment; filename="{build.filename}"'),
        )
        if wanted is None:
            return StreamedResponse(
                Response(200, (*headers, *content)),
                build.size,
                lambda: agents.chunks(build, 0, build.size),
            )
        return StreamedResponse(
            Response(206, (*headers, *content, ("content-range", wanted.content_range()))),
            wanted.length,
            lambda: agents.chunks(build, wanted.first, wanted.length),
        )

    # -- internals

    async def _password_ok(self, realm: Realm, username: str, password: str) -> bool:
        stored = self._store.password_hash(realm.name, username)
        try:
            # scrypt takes tens of milliseconds: off the event loop.
            ok = await trio.to_thread.run_sync(
                verify_password, password, stored or self._decoy, limiter=self._password_checks
            )
        except CredentialError as exc:
            log.error(
                "stored password hash unusable",
                extra={"realm": realm.name, "user": username, "error": str(exc)},
            )
            return False
        return ok and stored is not None

    def _admit(self, request: Request, peer: Peer, realm: Realm, username: str) -> Response:
        endpoint = self.endpoint_at(peer.ip)
        if endpoint is None:
            return self._page(
                409,
                "message.html",
                heading="Device not known yet",
                message=(
                    "The appliance has not seen this device's address yet. Reconnect to the"
                    " network (or renew your DHCP lease) and sign in again."
                ),
                link="/login",
                link_text="Sign in",
            )
        who = f"{realm.name}/{username}"
        browser = platform_of(request.header("user-agent"))
        hint = Platform(browser) if browser in {p.value for p in Platform} else None
        decision = self._admissions.sign_in(endpoint.mac, realm, username, hint)
        items = _fixes(decision.remediation)
        if decision.outcome is Outcome.DENIED or decision.role is None:
            log.info(
                "portal login refused by Host Checker",
                extra={
                    "realm": realm.name,
                    "user": username,
                    "mac": endpoint.mac,
                    "why": decision.message,
                },
            )
            return self._page(
                403,
                "message.html",
                heading="Sign-in refused",
                message=decision.message
                + "".join(
                    f" {item['title']}: {item['detail']}" for item in items if item["detail"]
                ),
                link="/agent",
                link_text="Get the agent",
            )
        log.info(
            "portal login",
            extra={
                "realm": realm.name,
                "user": username,
                "mac": endpoint.mac,
                "role": decision.role,
                "outcome": decision.outcome.value,
            },
        )
        token = secrets.token_urlsafe(32)
        self._remember(
            token,
            _Session(
                csrf=secrets.token_urlsafe(32),
                expires=self._clock() + SESSION_LIFETIME,
                user=who,
            ),
        )
        response = Response(303, (("location", "/status"), *SECURITY_HEADERS))
        return _with_cookie(response, SESSION_COOKIE, token, SESSION_LIFETIME)

    def _form_session(self, request: Request) -> tuple[str, _Session]:
        token = _cookie(request, FORM_COOKIE) or ""
        session = self._sessions.get(token)
        if session is not None and session.expires >= self._clock():
            return token, session
        token = secrets.token_urlsafe(32)
        session = _Session(csrf=secrets.token_urlsafe(32), expires=self._clock() + FORM_LIFETIME)
        self._remember(token, session)
        return token, session

    def _remember(self, token: str, session: _Session) -> None:
        if len(self._sessions) >= MAX_SESSIONS:
            now = self._clock()
            for old in [t for t, s in self._sessions.items() if s.expires < now]:
                del self._sessions[old]
            while len(self._sessions) >= MAX_SESSIONS:  # still full: the oldest go first
                del self._sessions[next(iter(self._sessions))]
        self._sessions[token] = session

    def _locked(self, seconds: float) -> Response:
        minutes = max(1, round(seconds / 60))
        response = self._page(
            429,
            "message.html",
            heading="Too many attempts",
            message=(
                f"Too many failed sign-ins. Try again in about {minutes}"
                f" minute{'s' if minutes != 1 else ''}."
            ),
            link="",
            link_text="",
        )
        return Response(
            response.status,
            (("retry-after", str(max(1, round(seconds)))), *response.headers),
            response.body,
        )

    def _page(self, status: int, template: str, **context: Any) -> Response:
        context.setdefault("link", "")
        context.setdefault("link_text", "")
        body = self._templates.get_template(template).render(**context).encode()
        return Response(
            status, (("content-type", "text/html; charset=utf-8"), *SECURITY_HEADERS), body
        )


def _with_cookie(response: Response, name: str, value: str, max_age: float) -> Response:
    cookie = f"{name}={value}; Path=/; Max-Age={int(max_age)}; Secure; HttpOnly; SameSite=Lax"
    return Response(
        response.status, (*response.headers, ("set-cookie", cookie)), response.body, response.close
    )


def _cookie(request: Request, name: str) -> str | None:
    for key, value in request.headers:
        if key != "cookie":
            continue
        for part in value.split(";"):
            cookie_name, _, cookie_value = part.strip().partition("=")
            if cookie_name == name:
                return cookie_value
    return None


def _form_fields(request: Request) -> dict[str, str] | None:
    content_type = (request.header("content-type") or "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return None
    try:
        parsed = parse_qs(
            request.body.decode("utf-8"), max_num_fields=MAX_FORM_FIELDS, strict_parsing=False
        )
    except (UnicodeDecodeError, ValueError):
        return None
    return {key: values[0] for key, values in parsed.items()}


def _query_value(request: Request, name: str) -> str:
    try:
        values = parse_qs(request.query, max_num_fields=MAX_FORM_FIELDS).get(name, [""])
    except ValueError:
        return ""
    value = values[0]
    # Only an absolute http(s) URL is kept (it is shown as a link after sign-in, never
    # followed automatically).
    return value if urlsplit(value).scheme in ("http", "https") else ""


def _plain(ip: str) -> str:
    """`ip` as the inventory spells it: an IPv4-mapped IPv6 address as IPv4, zones dropped."""
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _fixes(remediation: tuple[tuple[str, str, Remediation], ...]) -> list[dict[str, str]]:
    """Remediation items as the pages show them."""
    return [
        {"title": f"{policy}: {rule}", "detail": fix.instructions, "url": fix.link}
        for policy, rule, fix in remediation
    ]
