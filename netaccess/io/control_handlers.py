"""What the admin CLI may ask the running daemon, answered from its live state."""

from __future__ import annotations

import logging
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trio

import netaccess
from netaccess.config import ApplianceConfig
from netaccess.config.errors import ConfigError
from netaccess.config.policies import check_policies_text
from netaccess.control import ControlError, ErrorCode, Request, Response
from netaccess.control.views import endpoint_view, event_view, iso_time, role_view, session_view
from netaccess.enforce.intents import Status
from netaccess.io.admission import AdmissionKeeper
from netaccess.io.agents import AgentPublishError, AgentStore
from netaccess.io.capture import Capture
from netaccess.io.enforcer_link import EnforcerLink, EnforcerRefused, EnforcerUnavailable
from netaccess.io.feeds import FeedImportError, FeedKeeper, FeedStorageError, feed_view
from netaccess.io.inventory import Inventory
from netaccess.io.radius import RadiusServer
from netaccess.policy.admission import RoleAdmission, decide
from netaccess.policy.agents import AgentBuild
from netaccess.policy.credentials import CredentialError, verify_password
from netaccess.policy.feed import FeedError, PatchFeed
from netaccess.policy.hostchecker import (
    HostCheckerVerdict,
    Platform,
    Policy,
    PostureFacts,
    evaluate,
    facts_from_report,
)
from netaccess.policy.imv_hostchecker import summarize
from netaccess.policy.posture import PostureReport
from netaccess.policy.roles import QUARANTINE, Realm
from netaccess.policy.standing import Standing
from netaccess.proto.mac import InvalidMac, parse_mac
from netaccess.store import Store
from netaccess.store.vault import Vault, VaultError, check_name

DATABASE_NAME = "netaccess.db"
USER_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")
REASON_MAX = 500
SHA256 = re.compile(r"[0-9a-f]{64}")
NT_HASH = re.compile(r"[0-9a-f]{32}")

log = logging.getLogger("netaccess.control")


class Appliance:
    """The daemon's state as the control socket sees it."""

    def __init__(
        self, config: ApplianceConfig, store: Store, inventory: Inventory, enforcer: EnforcerLink
    ) -> None:
        self.config = config
        self.store = store
        self.inventory = inventory
        self.enforcer = enforcer
        self.captures: list[Capture] = []
        self.agents = AgentStore(config.daemon.state_dir / "agents", store)
        self.feeds = FeedKeeper(config.patch_feed, config.daemon.state_dir, store)
        self.admissions = AdmissionKeeper(config, store, inventory, lambda: self.feeds.current)
        self.admissions.load()
        self.feeds.on_new_feed(self.admissions.on_new_feed)
        self.started_at = time.time()
        # VaultError (a wrong key, an edited file) stops the daemon with its message.
        self.vault = Vault.open(config.daemon.state_dir, os.environ.get("CREDENTIALS_DIRECTORY"))
        self.radius: RadiusServer | None = None

    async def handle(self, request: Request) -> Response:
        args = request.args
        match request.op:
            case "status":
                result: Any = self.status()
            case "endpoints.list":
                result = [endpoint_view(ep) for ep in self.inventory.endpoints()]
            case "endpoints.show":
                result = self.show(args.get("mac"))
            case "endpoints.set-role":
                result = self.set_role(args.get("mac"), args.get("role"), args.get("reason"))
            case "roles.list":
                result = [role_view(role) for role in self.config.roles]
            case "enforcement.show":
                result = await self.enforcement()
            case "users.add" | "users.passwd":
                result = self.save_user(request.op == "users.add", args)
            case "users.groups":
                realm, user = self._realm_user(args)
                groups = _groups(args.get("groups"))
                if not self.store.set_groups(realm, user, groups, time.time()):
                    raise ControlError(ErrorCode.NOT_FOUND, f"no user {user!r} in realm {realm!r}")
                result = {"realm": realm, "user": user, "groups": sorted(set(groups))}
            case "users.forget-mschapv2":
                dropped = self.store.forget_nt_hashes(self.config.mschapv2_realms())
                if dropped:
                    log.info("MSCHAPv2 credentials forgotten", extra={"realms": dropped})
                result = {"forgotten": dropped, "total": sum(dropped.values())}
            case "users.del":
                realm, user = self._realm_user(args)
                if not self.store.delete_user(realm, user):
                    raise ControlError(ErrorCode.NOT_FOUND, f"no user {user!r} in realm {realm!r}")
                result = {"realm": realm, "user": user, "deleted": True}
            case "agent.publish":
                result = await self.publish_agent(args)
            case "agent.list":
                result = [agent_view(build) for build in self.agents.builds()]
            case "posture.reports":
                result = self.posture_reports(args)
            case "patches.import":
                result = await self.import_patches(args)
            case "patches.status":
                result = self.feeds.status()
            case "policy.explain":
                result = await self.explain(args)
            case "policy.what-if":
                result = await self.what_if(args)
            case "patches.pull":
                if not self.config.patch_feed.url:
                    raise ControlError(ErrorCode.BAD_REQUEST, "no patch_feed.url is configured")
                result = (await self.feeds.pull()).view()
            case "secrets.set":
                result = self.set_secret(args)
            case "secrets.list":
                result = [
                    {"name": name, "used_by": self._secret_users(name)}
                    for name in self.vault.names()
                ]
            case "secrets.delete":
                name = check_secret_name(args.get("name"))
                if not self.vault.delete(name):
                    raise ControlError(ErrorCode.NOT_FOUND, f"no secret {name!r} in the vault")
                self._secrets_changed()
                result = {"name": name, "deleted": True}
            case "endpoints.coa":
                mac = self._mac(args.get("mac"))
                if self.radius is None:
                    raise ControlError(ErrorCode.BAD_REQUEST, "no RADIUS clients are configured")
                if self.inventory.get(mac) is None:
                    raise ControlError(ErrorCode.NOT_FOUND, f"no endpoint with MAC {mac}")
                result = {"mac": mac, "sessions": await self.radius.push_to(mac)}
            case "radius.clients":
                result = self.radius.clients_view() if self.radius else []
            case "radius.sessions":
                sessions = self.radius.session_list() if self.radius else []
                result = [session_view(s) for s in sessions]
            case "users.list":
                result = [
                    {
                        "realm": user.realm,
                        "user": user.name,
                        "groups": list(user.groups),
                        "created": iso_time(user.created_at),
                        "updated": iso_time(user.updated_at),
                        "mschapv2": user.nt_hash,
                    }
                    for user in self.store.users()
                ]
            case _:
                raise ControlError(ErrorCode.UNKNOWN_OP, f"unknown op {request.op!r}")
        return Response.success(request.id, result)

    async def explain(self, args: dict[str, Any]) -> dict[str, Any]:
        """The Host Checker trace of an endpoint's latest posture report, judged now by the
        configured policies of its platform and the current patch feed."""
        mac = self._mac(args.get("mac"))
        reports = self.store.posture_reports(mac=mac, limit=1)
        if not reports:
            raise ControlError(ErrorCode.NOT_FOUND, f"no posture report from {mac}")
        report = reports[0]
        feed = self.feeds.current
        policies = self.config.policies
        facts, verdicts = await trio.to_thread.run_sync(_judge, report, policies, feed)
        return {
            "mac": mac,
            "ip": report.ip,
            "report": report.id,
            "reported": iso_time(report.finished_at),
            "platform": facts.platform.value if facts.platform else None,
            "feed_version": feed.version if feed else None,
            "verdicts": [verdict_view(v) for v in verdicts],
            "summary": _access(verdicts),
        }

    async def what_if(self, args: dict[str, Any]) -> dict[str, Any]:
        """Replay a proposed policy file over every endpoint's latest posture report: which
        endpoints' access would change."""
        text = args.get("policies")
        if not isinstance(text, str) or len(text) > MAX_POLICY_TEXT:
            raise ControlError(
                ErrorCode.BAD_REQUEST,
                f"policies: a TOML text of at most {MAX_POLICY_TEXT} characters",
            )
        try:
            proposed = check_policies_text(text, str(args.get("source") or "<proposed>"))
        except ConfigError as exc:
            raise ControlError(ErrorCode.BAD_REQUEST, str(exc)) from None
        reports = self.store.latest_posture_reports()
        current, feed = self.config.policies, self.feeds.current
        standings = {
            report.mac: standing
            for report in reports
            if report.mac is not None
            and (standing := self.admissions.standing(report.mac)) is not None
        }

        def replay() -> list[dict[str, Any]]:
            changes = []
            for report in reports:
                facts, before = _judge(report, current, feed)
                _, after = _judge(report, proposed, feed)
                was, will = _access(before), _access(after)
                change: dict[str, Any] = {
                    "mac": report.mac,
                    "ip": report.ip,
                    "platform": facts.platform.value if facts.platform else None,
                    "before": was,
                    "after": will,
                    "role": None,
                }
                standing = standings.get(report.mac) if report.mac else None
                realm = self.config.realm(standing.realm) if standing is not None else None
                if standing is not None and realm is not None:
                    # Signed in: the role it holds now against the one it would get.
                    platform = facts.platform or standing.platform_hint
                    roles = [
                        self._role_under(realm, standing, platform, current, before),
                        self._role_under(realm, standing, platform, proposed, after),
                    ]
                    change["role"] = {"before": roles[0], "after": roles[1]}
                    if roles[0] != roles[1]:
                        changes.append(change)
                elif was["access"] != will["access"]:
                    changes.append(change)
            return changes

        changes = await trio.to_thread.run_sync(replay)
        return {
            "endpoints": len(reports),
            "signed_in": len(standings),
            "would_change": len(changes),
            "changes": changes,
            "proposed_policies": [p.name for p in proposed],
        }

    def _role_under(
        self,
        realm: Realm,
        standing: Standing,
        platform: Platform | None,
        policies: tuple[Policy, ...],
        verdicts: tuple[HostCheckerVerdict, ...],
    ) -> str:
        decision = decide(
            realm.admission(),
            {role.name: RoleAdmission(role.name, role.policies) for role in self.config.roles},
            {policy.name: policy for policy in policies},
            {verdict.policy: verdict for verdict in verdicts},
            user=standing.user,
            groups=standing.groups,
            platform=platform,
        )
        return decision.role or QUARANTINE

    def posture_reports(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        """The newest posture reports, of one endpoint (mac or ip) or of all."""
        mac, ip, limit = args.get("mac"), args.get("ip"), args.get("limit", 20)
        if mac is not None and not isinstance(mac, str):
            raise ControlError(ErrorCode.BAD_REQUEST, "mac: expected a string")
        if ip is not None and not isinstance(ip, str):
            raise ControlError(ErrorCode.BAD_REQUEST, "ip: expected a string")
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
            raise ControlError(ErrorCode.BAD_REQUEST, "limit: expected 1 to 1000")
        if mac is not None:
            mac = self._mac(mac)
        reports = self.store.posture_reports(mac=mac, ip=ip, limit=limit)
        return [posture_view(r, attributes=bool(args.get("attributes"))) for r in reports]

    def set_secret(self, args: dict[str, Any]) -> dict[str, Any]:
        name = check_secret_name(args.get("name"))
        value = args.get("value")
        if not isinstance(value, str) or not value or "\n" in value or "\0" in value:
            raise ControlError(
                ErrorCode.BAD_REQUEST, "value: the secret, a non-empty line without NUL"
            )
        try:
            replaced = self.vault.set(name, value.encode())
        except VaultError as exc:
            raise ControlError(ErrorCode.BAD_REQUEST, str(exc)) from None
        self._secrets_changed()
        return {"name": name, "replaced": replaced, "used_by": self._secret_users(name)}

    def _secret_users(self, name: str) -> list[str]:
        return [f"radius.clients.{c.name}" for c in self.config.radius.clients if c.secret == name]

    def _secrets_changed(self) -> None:
        if self.radius is not None:
            self.radius.secrets_changed()

    def status(self) -> dict[str, Any]:
        return {
            "version": netaccess.__version__,
            "pid": os.getpid(),
            "uid": os.getuid(),
            "started_at": iso_time(self.started_at),
            "uptime_s": round(time.time() - self.started_at, 3),
            "config": self.config.source,
            "store": {
                "path": str(self.config.daemon.state_dir / DATABASE_NAME),
                "schema_version": self.store.schema_version,
            },
            "endpoints": len(self.inventory),
            "endpoints_refused": self.inventory.refused,
            "pending_writes": self.inventory.pending_writes,
            "interfaces": [capture.view() for capture in self.captures],
            "enforcer": {"connected": self.enforcer.connected, "queued": self.enforcer.queued},
            "host_checker": {
                "signed_in": len(self.admissions),
                "judged": self.admissions.judged,
                "role_changes": self.admissions.role_changes,
            },
            "radius": None
            if self.radius is None
            else {
                "listening": {k: list(v) for k, v in self.radius.bound.items()},
                "clients": len(self.config.radius.clients),
                "sessions": len(self.radius.sessions),
                "counters": dict(sorted(self.radius.counters.items())),
            },
        }

    def show(self, raw_mac: object) -> dict[str, Any]:
        mac = self._mac(raw_mac)
        ep = self.inventory.get(mac)
        if ep is None:
            raise ControlError(ErrorCode.NOT_FOUND, f"no endpoint with MAC {mac}")
        view = endpoint_view(ep)
        # The handler runs on the event loop; one bounded, indexed read is cheap.
        view["events"] = [event_view(ev) for ev in self.store.events(mac=mac, limit=50)]
        standing = self.admissions.standing(mac)
        view["admission"] = standing_view(standing) if standing is not None else None
        return view

    def set_role(self, raw_mac: object, role: object, reason: object) -> dict[str, Any]:
        mac = self._mac(raw_mac)
        known = [r.name for r in self.config.roles]
        if not isinstance(role, str) or role not in known:
            raise ControlError(
                ErrorCode.BAD_REQUEST, f"unknown role {role!r} (known: {', '.join(known)})"
            )
        if not isinstance(reason, str) or not reason.strip() or len(reason) > REASON_MAX:
            raise ControlError(
                ErrorCode.BAD_REQUEST, f"a reason is required (1 to {REASON_MAX} characters)"
            )
        ep = self.inventory.set_role(mac, role, at=time.time(), reason=reason.strip(), by="admin")
        if ep is None:
            raise ControlError(ErrorCode.NOT_FOUND, f"no endpoint with MAC {mac}")
        # The administrator decides now: Host Checker no longer moves this endpoint until
        # its user signs in again.
        released = self.admissions.forget(mac)
        return {**endpoint_view(ep), "host_checker_released": released}

    async def enforcement(self) -> dict[str, Any]:
        try:
            answer, _fds = await self.enforcer.request(Status())
        except EnforcerUnavailable as exc:
            raise ControlError(ErrorCode.UNAVAILABLE, f"enforcer unreachable: {exc}") from None
        except EnforcerRefused as exc:
            raise ControlError(ErrorCode.INTERNAL, f"enforcer: {exc}") from None
        return {
            **answer.result,
            "link": {
                "connected": self.enforcer.connected,
                "queued": self.enforcer.queued,
                "sent_changes": self.enforcer.sent_changes,
                "overflowed": self.enforcer.overflowed,
            },
        }

    async def publish_agent(self, args: dict[str, Any]) -> dict[str, Any]:
        path, platform, version = args.get("path"), args.get("platform"), args.get("version")
        if not (isinstance(path, str) and path.startswith("/")):
            raise ControlError(ErrorCode.BAD_REQUEST, "args.path: an absolute file path")
        if not isinstance(platform, str) or not isinstance(version, str):
            raise ControlError(ErrorCode.BAD_REQUEST, "args.platform and args.version are required")
        try:
            build = await self.agents.publish(Path(path), platform, version)
        except AgentPublishError as exc:
            raise ControlError(ErrorCode.BAD_REQUEST, str(exc)) from None
        return agent_view(build)

    async def import_patches(self, args: dict[str, Any]) -> dict[str, Any]:
        """Import the feed at args.path with its signature (args.signature, default path +
        ".sig"), both read by the daemon; args.sha256: what the CLI read, to compare."""
        path, signature, sha256 = args.get("path"), args.get("signature"), args.get("sha256")
        if signature is None and isinstance(path, str):
            signature = path + ".sig"
        if not (
            isinstance(path, str)
            and isinstance(signature, str)
            and path.startswith("/")
            and signature.startswith("/")
        ):
            raise ControlError(ErrorCode.BAD_REQUEST, "args.path, args.signature: absolute paths")
        if sha256 is not None and not (isinstance(sha256, str) and SHA256.fullmatch(sha256)):
            raise ControlError(ErrorCode.BAD_REQUEST, "args.sha256: 64 hex digits")
        try:
            feed = await self.feeds.import_files(Path(path), Path(signature), sha256)
        except FeedImportError as exc:
            raise ControlError(ErrorCode.BAD_REQUEST, str(exc)) from None
        except FeedError as exc:
            raise ControlError(
                ErrorCode.BAD_REQUEST, f"feed refused ({exc.kind.value}): {exc.message}"
            ) from None
        except FeedStorageError as exc:
            raise ControlError(ErrorCode.INTERNAL, str(exc)) from None
        return feed_view(feed)

    def save_user(self, create: bool, args: dict[str, Any]) -> dict[str, Any]:
        """Add a user, or change one's password. The CLI hashed the password (scrypt): it
        never crosses the control socket; the hash is checked to be one we can verify.
        args.nt_hash (32 hex digits, optional): the NT hash the CLI made too, kept sealed
        with the vault key only when the realm allows MSCHAPv2; otherwise dropped."""
        realm, user = self._realm_user(args)
        stored, nt_hex = args.get("password_hash"), args.get("nt_hash")
        try:
            if not isinstance(stored, str):
                raise CredentialError("args.password_hash is required")
            verify_password("", stored)
        except CredentialError as exc:
            raise ControlError(ErrorCode.BAD_REQUEST, str(exc)) from None
        if nt_hex is not None and not (isinstance(nt_hex, str) and NT_HASH.fullmatch(nt_hex)):
            raise ControlError(ErrorCode.BAD_REQUEST, "args.nt_hash: 32 hex digits")
        settings = self.config.realm(realm)
        sealed: bytes | None = None
        if nt_hex is not None and settings is not None and settings.mschapv2:
            sealed = self.vault.seal(Store.nt_hash_context(realm, user), bytes.fromhex(nt_hex))
        now = time.time()
        groups = _groups(args.get("groups", []))
        if create and not self.store.add_user(realm, user, stored, now, groups, sealed):
            raise ControlError(ErrorCode.BAD_REQUEST, f"realm {realm!r} already has user {user!r}")
        if not create and not self.store.set_password(realm, user, stored, now, sealed):
            raise ControlError(ErrorCode.NOT_FOUND, f"no user {user!r} in realm {realm!r}")
        return {
            "realm": realm,
            "user": user,
            "created" if create else "changed": True,
            "mschapv2": sealed is not None,
        }

    def _realm_user(self, args: dict[str, Any]) -> tuple[str, str]:
        realm, user = args.get("realm"), args.get("user")
        known = [r.name for r in self.config.realms]
        if not isinstance(realm, str) or realm not in known:
            raise ControlError(
                ErrorCode.BAD_REQUEST,
                f"unknown realm {realm!r} (configured: {', '.join(known) or 'none'})",
            )
        if not isinstance(user, str) or not USER_NAME.fullmatch(user):
            raise ControlError(
                ErrorCode.BAD_REQUEST,
                f"user name {user!r}: 1 to 64 of letters, digits and . _ @ -",
            )
        return realm, user

    @staticmethod
    def _mac(raw: object) -> str:
        if not isinstance(raw, str):
            raise ControlError(ErrorCode.BAD_REQUEST, "args.mac is required")
        try:
            return parse_mac(raw)
        except InvalidMac as exc:
            raise ControlError(ErrorCode.BAD_REQUEST, str(exc)) from None


MAX_POLICY_TEXT = 1024 * 1024
MAX_GROUPS = 64


def _groups(raw: object) -> list[str]:
    if (
        not isinstance(raw, list)
        or len(raw) > MAX_GROUPS
        or not all(isinstance(g, str) and USER_NAME.fullmatch(g) for g in raw)
    ):
        raise ControlError(
            ErrorCode.BAD_REQUEST,
            f"groups: at most {MAX_GROUPS} names, each 1 to 64 of letters, digits and . _ @ -"
            f" (got {raw!r:.200})",
        )
    return list(raw)


def standing_view(standing: Standing) -> dict[str, Any]:
    return {
        "realm": standing.realm,
        "user": standing.user,
        "groups": sorted(standing.groups),
        "signed_in": iso_time(standing.signed_in_at),
        "judged": iso_time(standing.judged_at),
        "trigger": standing.trigger.value,
        "report_collected": (
            iso_time(standing.collected_at) if standing.collected_at is not None else None
        ),
        "outcome": standing.outcome.value,
        "role": standing.enforced_role,
        "message": standing.message,
        "failed": [
            {"policy": f.policy, "rule": f.rule, "outcome": f.outcome} for f in standing.failed
        ],
        "remediation": [
            {
                "policy": policy,
                "rule": rule,
                "instructions": fix.instructions,
                "link": fix.link,
                "action": fix.action.value if fix.action else None,
            }
            for policy, rule, fix in standing.remediation
        ],
    }


def _judge(
    report: PostureReport, policies: tuple[Policy, ...], feed: PatchFeed | None
) -> tuple[PostureFacts, tuple[HostCheckerVerdict, ...]]:
    facts = facts_from_report(report.attributes)
    now = datetime.now(UTC)
    mine = tuple(p for p in policies if p.platform is facts.platform)
    return facts, tuple(evaluate(policy, facts, feed, now) for policy in mine)


def _access(verdicts: tuple[HostCheckerVerdict, ...]) -> dict[str, Any]:
    """What the verdicts mean for access: allowed, or quarantined with the failed rules."""
    if not verdicts:
        return {"access": "allowed", "verdict": "no policy for its platform", "failed": []}
    summary = summarize(verdicts)
    return {
        "access": summary.recommendation.value,
        "verdict": summary.verdict.value,
        "failed": list(summary.reasons),
    }


def verdict_view(verdict: HostCheckerVerdict) -> dict[str, Any]:
    return {
        "policy": verdict.policy,
        "compliance": verdict.compliance.value,
        "rules": [
            {
                "rule": r.rule,
                "type": r.kind,
                "outcome": r.outcome.value,
                "seen": r.seen,
                "required": r.required,
            }
            for r in verdict.trace
        ],
        "remediation": [
            {
                "rule": rule,
                "instructions": fix.instructions,
                "link": fix.link,
                "action": fix.action.value if fix.action else None,
            }
            for rule, fix in verdict.remediation
        ],
    }


def posture_view(report: PostureReport, *, attributes: bool) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": report.id,
        "ip": report.ip,
        "mac": report.mac,
        "user": report.user,
        "started": iso_time(report.started_at),
        "finished": iso_time(report.finished_at),
        "verdict": report.verdict.value,
        "recommendation": report.recommendation.value,
        "reasons": list(report.reasons),
        "remediation": [{"text": r.text, "link": r.link} for r in report.remediation],
        "attribute_count": len(report.attributes),
    }
    if attributes:
        view["attributes"] = [
            {
                "component": [a.component_vendor, a.component_subtype],
                "vendor": a.vendor,
                "type": a.type,
                "name": a.name,
                "value": a.value,
            }
            for a in report.attributes
        ]
    return view


def agent_view(build: AgentBuild) -> dict[str, Any]:
    return {
        "platform": build.platform,
        "version": build.version,
        "filename": build.filename,
        "size": build.size,
        "sha256": build.sha256,
        "published": iso_time(build.published_at),
        "url": build.url,
    }


def check_secret_name(raw: object) -> str:
    try:
        return check_name(raw)
    except VaultError as exc:
        raise ControlError(ErrorCode.BAD_REQUEST, str(exc)) from None
