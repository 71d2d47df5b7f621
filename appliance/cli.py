"""`appliance`: the admin CLI, reached over SSH; it talks to netaccessd only through control."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from appliance.client import DEFAULT_SOCKET, ControlClient, DaemonRefused, DaemonUnreachable
from netaccess.config import ConfigError, load_config_file
from netaccess.config.policies import check_policies_text
from netaccess.control import ErrorCode
from netaccess.policy.agents import PLATFORMS
from netaccess.policy.credentials import CredentialError, check_new_password, hash_password
from netaccess.policy.feed import MAX_FEED_BYTES, MAX_SIGNATURE_BYTES
from netaccess.proto.mac import InvalidMac, parse_mac
from netaccess.proto.radius.mschapv2 import MAX_PASSWORD, nt_password_hash

EXIT_FAILURE = 1
EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    click.echo(f"appliance: error: {message}", err=True)
    sys.exit(code)


def call(ctx: click.Context, op: str, **args: Any) -> Any:
    client: ControlClient = ctx.obj
    try:
        return client.call(op, **args)
    except DaemonUnreachable as exc:
        fail(str(exc))
    except DaemonRefused as exc:
        fail(exc.args[0], EXIT_USAGE if exc.code is ErrorCode.BAD_REQUEST else EXIT_FAILURE)


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True))


def render_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join(lines)


@click.group()
@click.option(
    "--socket",
    "socket_path",
    type=click.Path(path_type=Path),
    default=lambda: os.environ.get("NETACCESS_CONTROL_SOCKET", str(DEFAULT_SOCKET)),
    show_default=str(DEFAULT_SOCKET),
    help="netaccessd control socket (env NETACCESS_CONTROL_SOCKET).",
)
@click.pass_context
def main(ctx: click.Context, socket_path: Path) -> None:
    """Administer the netaccess appliance."""
    ctx.obj = ControlClient(Path(socket_path))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show the daemon's health and capture counters."""
    st = call(ctx, "status")
    if as_json:
        emit_json(st)
        return
    click.echo(f"netaccessd {st['version']}  pid {st['pid']}  up {st['uptime_s']:.0f} s")
    click.echo(f"config     {st['config']}")
    click.echo(f"store      {st['store']['path']} (schema v{st['store']['schema_version']})")
    click.echo(f"endpoints  {st['endpoints']}")
    rows = [
        [
            i["name"],
            str(i["frames"]),
            str(i["observations"]),
            str(i["malformed"]),
            str(i["kernel_drops"]),
        ]
        for i in st["interfaces"]
    ]
    click.echo(render_table(["INTERFACE", "FRAMES", "OBSERVATIONS", "MALFORMED", "DROPPED"], rows))


@main.group()
def endpoints() -> None:
    """The endpoint inventory."""


@endpoints.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def endpoints_list(ctx: click.Context, as_json: bool) -> None:
    """List every known endpoint."""
    eps = call(ctx, "endpoints.list")
    if as_json:
        emit_json(eps)
        return
    rows = [
        [
            e["mac"],
            ",".join(e["ips"]) or "-",
            e["hostname"] or "-",
            e["role"],
            e["state"],
            e["last_seen"],
            e["fingerprint"] or "-",
        ]
        for e in eps
    ]
    click.echo(
        render_table(["MAC", "IPS", "HOSTNAME", "ROLE", "STATE", "LAST SEEN", "FINGERPRINT"], rows)
    )


@endpoints.command("show")
@click.argument("mac")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@click.pass_context
def endpoints_show(ctx: click.Context, mac: str, as_json: bool) -> None:
    """Show one endpoint and its recent events."""
    try:
        normalised = parse_mac(mac)
    except InvalidMac as exc:
        fail(str(exc), EXIT_USAGE)
    ep = call(ctx, "endpoints.show", mac=normalised)
    if as_json:
        emit_json(ep)
        return
    for key in (
        "mac",
        "ips",
        "hostname",
        "vendor_class",
        "fingerprint",
        "role",
        "state",
        "first_seen",
        "last_seen",
    ):
        value = ep[key]
        shown = ", ".join(value) if isinstance(value, list) else value
        click.echo(f"{key:<13} {shown if shown not in (None, '') else '-'}")
    admission = ep.get("admission")
    if admission:
        click.echo(
            f"{'signed in':<13} {admission['realm']}/{admission['user']} at"
            f" {admission['signed_in']}"
        )
        click.echo(
            f"{'host checker':<13} {admission['outcome']} ({admission['trigger']},"
            f" {admission['judged']})"
            + (f": {admission['message']}" if admission["message"] else "")
        )
        for failed in admission["failed"]:
            click.echo(f"  failed       {failed['policy']}/{failed['rule']} ({failed['outcome']})")
        for fix in admission["remediation"]:
            text = fix["instructions"] or "-"
            link = f" <{fix['link']}>" if fix["link"] else ""
            click.echo(f"  fix          {fix['policy']}/{fix['rule']}: {text}{link}")
    if ep["events"]:
        click.echo("events:")
        for ev in ep["events"]:
            detail = " ".join(f"{k}={v}" for k, v in sorted(ev["detail"].items()))
            click.echo(f"  {ev['at']}  {ev['kind']:<20} {detail}")


@endpoints.command("set-role")
@click.argument("mac")
@click.argument("role")
@click.option("--reason", required=True, help="Why (kept in the endpoint's events and the log).")
@click.option("--json", "as_json", is_flag=True, help="Print the endpoint as JSON.")
@click.pass_context
def endpoints_set_role(ctx: click.Context, mac: str, role: str, reason: str, as_json: bool) -> None:
    """Override the role of the endpoint MAC (an admin decision, recorded with its reason)."""
    try:
        normalised = parse_mac(mac)
    except InvalidMac as exc:
        fail(str(exc), EXIT_USAGE)
    ep = call(ctx, "endpoints.set-role", mac=normalised, role=role, reason=reason)
    if as_json:
        emit_json(ep)
    else:
        click.echo(f"{ep['mac']}: role {ep['role']}")


@endpoints.command("coa")
@click.argument("mac")
@click.option("--json", "as_json", is_flag=True, help="Print the outcomes as JSON.")
@click.pass_context
def endpoints_coa(ctx: click.Context, mac: str, as_json: bool) -> None:
    """Tell the switches holding MAC's sessions its role again (CoA or Disconnect)."""
    done = call(ctx, "endpoints.coa", mac=mac)
    if as_json:
        emit_json(done)
        return
    if not done["sessions"]:
        click.echo(f"{done['mac']}: no RADIUS accounting session known")
    for session in done["sessions"]:
        steps = ", ".join(
            f"{s['request']} {'ACK' if s['acked'] else s['why']} ({s['tries']} tries)"
            for s in session.get("steps", [])
        )
        click.echo(
            f"{done['mac']}: {session['nas']} {session['session_id']}: {session['outcome']}"
            + (f" [{steps}]" if steps else f" ({session.get('why', '')})")
        )


@main.group()
def users() -> None:
    """Portal users: local accounts per realm (passwords are hashed here, with scrypt)."""


def read_new_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        check_new_password(password)
    except CredentialError as exc:
        fail(str(exc), EXIT_USAGE)
    return password


def password_args(password: str) -> dict[str, Any]:
    """What users.add and users.passwd send for a new password: its scrypt hash, and the NT
    hash MSCHAPv2 needs, for the daemon to keep if the realm allows it (it cannot be made
    from the scrypt hash later; none past MSCHAPv2's 256 characters)."""
    nt_hash = nt_password_hash(password).hex() if len(password) <= MAX_PASSWORD else None
    return {"password_hash": hash_password(password), "nt_hash": nt_hash}


PASSWORD_STDIN = click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)


@users.command("add")
@click.argument("realm")
@click.argument("user")
@PASSWORD_STDIN
@click.option(
    "--group",
    "groups",
    multiple=True,
    help="A group the user belongs to (repeat for more); realm role mappings match on groups.",
)
@click.pass_context
def users_add(
    ctx: click.Context, realm: str, user: str, password_stdin: bool, groups: tuple[str, ...]
) -> None:
    """Create USER in REALM; asks for the password (twice) unless --password-stdin."""
    secret = password_args(read_new_password(password_stdin))
    found = call(ctx, "users.add", realm=realm, user=user, groups=list(groups), **secret)
    extra = [f"groups: {', '.join(groups)}"] if groups else []
    if found.get("mschapv2"):
        extra.append("MSCHAPv2 credential kept")
    click.echo(f"{realm}/{user}: created" + (f" ({'; '.join(extra)})" if extra else ""))


@users.command("groups")
@click.argument("realm")
@click.argument("user")
@click.argument("groups", nargs=-1)
@click.pass_context
def users_groups(ctx: click.Context, realm: str, user: str, groups: tuple[str, ...]) -> None:
    """Set the groups of USER in REALM to GROUPS (none given: no groups). Takes effect at the
    user's next sign-in."""
    found = call(ctx, "users.groups", realm=realm, user=user, groups=list(groups))
    click.echo(f"{realm}/{user}: groups {', '.join(found['groups']) or '(none)'}")


@users.command("passwd")
@click.argument("realm")
@click.argument("user")
@PASSWORD_STDIN
@click.pass_context
def users_passwd(ctx: click.Context, realm: str, user: str, password_stdin: bool) -> None:
    """Set a new password for USER in REALM."""
    secret = password_args(read_new_password(password_stdin))
    found = call(ctx, "users.passwd", realm=realm, user=user, **secret)
    kept = " (MSCHAPv2 credential kept)" if found.get("mschapv2") else ""
    click.echo(f"{realm}/{user}: password changed{kept}")


@users.command("del")
@click.argument("realm")
@click.argument("user")
@click.pass_context
def users_del(ctx: click.Context, realm: str, user: str) -> None:
    """Delete USER from REALM."""
    call(ctx, "users.del", realm=realm, user=user)
    click.echo(f"{realm}/{user}: deleted")


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def users_list(ctx: click.Context, as_json: bool) -> None:
    """List portal users by realm."""
    found = call(ctx, "users.list")
    if as_json:
        emit_json(found)
        return
    rows = [
        [
            u["realm"],
            u["user"],
            ",".join(u["groups"]) or "-",
            "yes" if u.get("mschapv2") else "-",
            u["created"],
            u["updated"],
        ]
        for u in found
    ]
    click.echo(render_table(["REALM", "USER", "GROUPS", "MSCHAPV2", "CREATED", "UPDATED"], rows))


@users.command("forget-mschapv2")
@click.pass_context
def users_forget_mschapv2(ctx: click.Context) -> None:
    """Drop the MSCHAPv2 credentials (sealed NT hashes) kept for realms that do not allow
    MSCHAPv2 (mschapv2 = true); those users sign in with PEAP again only after their
    password is set anew. The daemon warns at start when there are any."""
    found = call(ctx, "users.forget-mschapv2")
    if not found["total"]:
        click.echo("no MSCHAPv2 credentials kept outside the realms that allow MSCHAPv2")
        return
    each = ", ".join(f"{realm} {count}" for realm, count in sorted(found["forgotten"].items()))
    click.echo(f"forgot {found['total']} MSCHAPv2 credential(s): {each}")


@main.group()
def agent() -> None:
    """Endpoint agent builds offered on the portal's download page."""


@agent.command("publish")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--platform", required=True, type=click.Choice(PLATFORMS), help="Its system.")
@click.option("--version", "version", required=True, help="Its version, e.g. 1.4.2.")
@click.option("--json", "as_json", is_flag=True, help="Print the build as JSON.")
@click.pass_context
def agent_publish(
    ctx: click.Context, file: Path, platform: str, version: str, as_json: bool
) -> None:
    """Add FILE as the agent build VERSION for PLATFORM (the daemon copies it in, so it
    must be readable to the daemon's user)."""
    build = call(ctx, "agent.publish", path=str(file.resolve()), platform=platform, version=version)
    if as_json:
        emit_json(build)
    else:
        click.echo(f"{build['platform']} {build['version']}: {build['filename']}")
        click.echo(f"  {build['size']} bytes, sha256 {build['sha256']}")


@agent.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def agent_list(ctx: click.Context, as_json: bool) -> None:
    """List published agent builds, newest first."""
    found = call(ctx, "agent.list")
    if as_json:
        emit_json(found)
        return
    rows = [
        [
            b["platform"],
            b["version"],
            b["filename"],
            str(b["size"]),
            b["sha256"][:16],
            b["published"],
        ]
        for b in found
    ]
    click.echo(render_table(["PLATFORM", "VERSION", "FILE", "BYTES", "SHA256", "PUBLISHED"], rows))


@main.group()
def policy() -> None:
    """Host Checker policies."""


@policy.command("check")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the policies as JSON.")
def policy_check(file: Path, as_json: bool) -> None:
    """Validate FILE offline (no daemon needed): a file of [[policies]], or a whole config.
    Every problem is named with its key path and line; exit 1 if there is any."""
    try:
        policies = check_policies_text(file.read_text(), str(file))
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_FAILURE)
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {file}: {exc}")
    if as_json:
        emit_json(
            [
                {
                    "name": p.name,
                    "platform": p.platform.value,
                    "rules": [{"name": r.name, "type": r.kind} for r in p.rules],
                }
                for p in policies
            ]
        )
        return
    for p in policies:
        kinds = ", ".join(f"{r.name} ({r.kind})" for r in p.rules)
        rules = f"{len(p.rules)} rule" + ("" if len(p.rules) == 1 else "s")
        click.echo(f"{p.name}: {p.platform.value}, {rules}: {kinds}")
    click.echo(f"{file}: {len(policies)} policies, no problems")


@policy.command("explain")
@click.argument("mac")
@click.option("--json", "as_json", is_flag=True, help="Print the trace as JSON.")
@click.pass_context
def policy_explain(ctx: click.Context, mac: str, as_json: bool) -> None:
    """Why MAC is (not) compliant: every rule of its platform's policies, what its latest
    posture report showed and what is required, judged now with the current patch feed."""
    found = call(ctx, "policy.explain", mac=mac)
    if as_json:
        emit_json(found)
        return
    click.echo(
        f"{found['mac']} ({found['ip']}), report {found['report']} of {found['reported']},"
        f" platform {found['platform'] or 'unknown'}, feed {found['feed_version'] or 'none'}:"
        f" {found['summary']['access']} ({found['summary']['verdict']})"
    )
    for verdict in found["verdicts"]:
        click.echo(f"\npolicy {verdict['policy']}: {verdict['compliance']}")
        rows = [
            [r["outcome"], r["rule"], r["type"], r["seen"], r["required"]] for r in verdict["rules"]
        ]
        click.echo(render_table(["OUTCOME", "RULE", "TYPE", "SEEN", "REQUIRED"], rows))
        for fix in verdict["remediation"]:
            what = " ".join(part for part in (fix["instructions"], fix["link"]) if part)
            action = f" [agent: {fix['action']}]" if fix["action"] else ""
            click.echo(f"  fix {fix['rule']}: {what}{action}")


@policy.command("what-if")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def policy_what_if(ctx: click.Context, file: Path, as_json: bool) -> None:
    """Replay the policies in FILE over every endpoint's latest posture report, with the
    current patch feed, and show whose access would change (nothing is applied)."""
    try:
        text = file.read_text()
        check_policies_text(text, str(file))
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_FAILURE)
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {file}: {exc}")
    found = call(ctx, "policy.what-if", policies=text, source=str(file))
    if as_json:
        emit_json(found)
        return
    rows = [
        [
            c["mac"] or "-",
            c["ip"],
            c["platform"] or "?",
            f"{c['role']['before']} -> {c['role']['after']}" if c["role"] else "(not signed in)",
            f"{c['before']['access']} -> {c['after']['access']}",
            "; ".join(c["after"]["failed"][:3]) or "-",
        ]
        for c in found["changes"]
    ]
    if rows:
        click.echo(render_table(["MAC", "IP", "PLATFORM", "ROLE", "ACCESS", "WHY (AFTER)"], rows))
    click.echo(
        f"{found['would_change']} of {found['endpoints']} endpoints would change role or access"
        f" under {file} ({found['signed_in']} signed in: their roles are decided again)"
    )


@main.group()
def posture() -> None:
    """Posture reports from endpoint agents (PT-TLS sessions)."""


@posture.command("reports")
@click.option("--mac", help="Only this endpoint's reports.")
@click.option("--ip", help="Only reports from this address.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--attributes", is_flag=True, help="Include every attribute (with --json).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def posture_reports(
    ctx: click.Context,
    mac: str | None,
    ip: str | None,
    limit: int,
    attributes: bool,
    as_json: bool,
) -> None:
    """List posture reports, newest first."""
    arguments: dict[str, object] = {"limit": limit, "attributes": attributes and as_json}
    if mac is not None:
        arguments["mac"] = mac
    if ip is not None:
        arguments["ip"] = ip
    found = call(ctx, "posture.reports", **arguments)
    if as_json:
        emit_json(found)
        return
    rows = [
        [
            r["finished"],
            r["ip"],
            r["mac"] or "-",
            r["user"] or "-",
            r["verdict"],
            r["recommendation"],
            str(r["attribute_count"]),
            "; ".join(r["reasons"]) or "-",
        ]
        for r in found
    ]
    headers = ["FINISHED", "IP", "MAC", "USER", "VERDICT", "ACCESS", "ATTRS", "REASONS"]
    click.echo(render_table(headers, rows))


@main.group()
def patches() -> None:
    """The signed patch feed that Host Checker's patch rules assess endpoints against."""


# A 64 MiB feed takes the daemon seconds to verify and parse; a pull waits for two downloads.
PATCHES_TIMEOUT = 600.0
READ_CHUNK = 1024 * 1024


@patches.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--signature",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Its detached signature (base64, one line).  [default: FILE.sig]",
)
@click.option("--json", "as_json", is_flag=True, help="Print the accepted feed as JSON.")
@click.pass_context
def patches_import(ctx: click.Context, file: Path, signature: Path | None, as_json: bool) -> None:
    """Import the patch feed FILE. The daemon reads FILE and its signature as its own user
    (they must be readable to it), checks the signature, the schema, that the version is
    newer than the current feed's and that it has not expired; a refused feed changes
    nothing."""
    signature = signature if signature is not None else file.with_name(file.name + ".sig")
    sha256 = check_feed_files(file, signature)
    client: ControlClient = ctx.obj
    client.timeout = max(client.timeout, PATCHES_TIMEOUT)
    feed = call(
        ctx,
        "patches.import",
        path=str(file.resolve()),
        signature=str(signature.resolve()),
        sha256=sha256,
    )
    if as_json:
        emit_json(feed)
        return
    click.echo(
        f"patch feed version {feed['version']} accepted: {feed['products']} products,"
        f" {feed['patches']} patches"
    )
    click.echo(f"  source  {feed['source']}")
    click.echo(f"  issued  {feed['issued']}, expires {feed['expires']}")


def check_feed_files(feed: Path, signature: Path) -> str:
    """Read the feed here first (with a progress bar: it may be tens of MB) to catch a wrong
    file before the daemon works on it; its SHA-256 lets the daemon see it did not change."""
    try:
        size = feed.stat().st_size
        if size > MAX_FEED_BYTES:
            fail(f"{feed} has {size} bytes; a feed has at most {MAX_FEED_BYTES}", EXIT_USAGE)
        digest = hashlib.sha256()
        with (
            feed.open("rb") as reader,
            click.progressbar(
                length=size, label=f"checking {feed.name}", file=sys.stderr
            ) as progress,
        ):
            while chunk := reader.read(READ_CHUNK):
                digest.update(chunk)
                progress.update(len(chunk))
        signature_size = signature.stat().st_size
    except OSError as exc:
        fail(f"cannot read {exc.filename}: {exc.strerror or exc}", EXIT_USAGE)
    if signature_size > MAX_SIGNATURE_BYTES:
        fail(f"{signature} has {signature_size} bytes: not a feed signature", EXIT_USAGE)
    return digest.hexdigest()


@patches.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def patches_status(ctx: click.Context, as_json: bool) -> None:
    """Show the current feed, the last pull and recent refusals."""
    shown = call(ctx, "patches.status")
    if as_json:
        emit_json(shown)
        return
    feed = shown["feed"]
    if feed is None:
        click.echo("feed      none (import one with `appliance patches import FILE`)")
    else:
        expired = "  EXPIRED" if feed["expired"] else ""
        click.echo(f"feed      version {feed['version']}{expired}")
        click.echo(f"source    {feed['source']}")
        click.echo(f"issued    {feed['issued']} ({feed['age_s'] // 3600} h ago)")
        click.echo(f"expires   {feed['expires']}")
        click.echo(f"contents  {feed['products']} products, {feed['patches']} patches")
        click.echo(f"accepted  {feed['accepted']} ({feed['via'] or 'kept from before'})")
    pull = shown["pull"]
    if pull is None:
        click.echo("pull      off (no patch_feed.url)")
    else:
        click.echo(f"pull      {pull['url']} every {pull['interval_s']:g} s")
        last = pull["last"]
        if last is not None:
            click.echo(f"last      {last['at']} {last['result']}: {last['message']}")
    if shown["rejections"]:
        click.echo("refused:")
        for event in shown["rejections"]:
            click.echo(
                f"  {event['at']}  {event['source']:<6} {event['kind']:<9} {event['message']}"
            )


@patches.command("pull")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def patches_pull(ctx: click.Context, as_json: bool) -> None:
    """Pull the feed from patch_feed.url now, as the timed pull does, and show the outcome."""
    client: ControlClient = ctx.obj
    client.timeout = max(client.timeout, PATCHES_TIMEOUT)
    outcome = call(ctx, "patches.pull")
    if as_json:
        emit_json(outcome)
    else:
        click.echo(f"{outcome['result']}: {outcome['message']}")
    if outcome["result"] in ("rejected", "failed"):
        sys.exit(EXIT_FAILURE)


@main.group()
def roles() -> None:
    """Roles and what they may reach."""


@roles.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def roles_list(ctx: click.Context, as_json: bool) -> None:
    """List the configured roles, built-in ones included."""
    listed = call(ctx, "roles.list")
    if as_json:
        emit_json(listed)
        return

    def allowed(role: dict[str, Any]) -> str:
        parts = []
        for a in role["allow"]:
            ports = ",".join(map(str, a["ports"]))
            proto = "" if a["proto"] == "any" else f" {a['proto']}"
            parts.append(f"{a['cidr']}{proto}{' ' + ports if ports else ''}")
        return "; ".join(parts) or "-"

    rows = [
        [
            r["name"],
            str(r["vlan"]),
            "yes" if r["captive"] else "no",
            "yes" if r["builtin"] else "no",
            allowed(r),
        ]
        for r in listed
    ]
    click.echo(render_table(["ROLE", "VLAN", "CAPTIVE", "BUILT-IN", "ALLOW"], rows))


@main.group()
def enforcement() -> None:
    """Kernel enforcement (nftables sets, counters)."""


@enforcement.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def enforcement_show(ctx: click.Context, as_json: bool) -> None:
    """Show set sizes and per-role counters from the enforcer."""
    shown = call(ctx, "enforcement.show")
    if as_json:
        emit_json(shown)
        return
    link = shown["link"]
    click.echo(
        f"enforcer pid {shown.get('pid')}  link {'up' if link['connected'] else 'DOWN'}"
        f"  queued {link['queued']}  sent {link['sent_changes']}"
    )
    rows = []
    for name, role in shown.get("roles", {}).items():
        rows.append(
            [
                name,
                str(role.get("macs", 0)),
                str(role.get("ipv4", 0)),
                str(role.get("ipv6", 0)),
                str(role.get("packets", "-")),
                str(role.get("bytes", "-")),
            ]
        )
    click.echo(render_table(["ROLE", "MACS", "IPV4", "IPV6", "PACKETS", "BYTES"], rows))
    for note in shown.get("kernel", {}).get("notes", []):
        click.echo(f"note: {note}")


@main.group()
def config() -> None:
    """Configuration files."""


@config.command("check")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
def config_check(file: Path) -> None:
    """Validate FILE offline, without a daemon."""
    try:
        cfg = load_config_file(file)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_FAILURE)
    click.echo(f"{file}: ok ({len(cfg.interfaces.access)} access interface(s))")


@main.group()
def secrets() -> None:
    """The encrypted credential vault: RADIUS shared secrets and other credentials that the
    config names but never holds."""


@secrets.command("set")
@click.argument("name")
@click.option("--stdin", "from_stdin", is_flag=True, help="Read it from stdin's first line.")
@click.pass_context
def secrets_set(ctx: click.Context, name: str, from_stdin: bool) -> None:
    """Store NAME in the vault; asks for it (twice) unless --stdin. Takes effect at once."""
    if from_stdin:
        value = sys.stdin.readline().rstrip("\n")
    else:
        value = click.prompt("Secret", hide_input=True, confirmation_prompt=True)
    if not value:
        fail("the secret is empty", EXIT_USAGE)
    done = call(ctx, "secrets.set", name=name, value=value)
    used = f" (used by {', '.join(done['used_by'])})" if done["used_by"] else " (not used yet)"
    click.echo(f"{name}: {'replaced' if done['replaced'] else 'stored'}{used}")


@secrets.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def secrets_list(ctx: click.Context, as_json: bool) -> None:
    """The names in the vault and what uses each (never the secrets)."""
    found = call(ctx, "secrets.list")
    if as_json:
        emit_json(found)
        return
    rows = [[s["name"], ", ".join(s["used_by"]) or "-"] for s in found]
    click.echo(render_table(["NAME", "USED BY"], rows))


@secrets.command("delete")
@click.argument("name")
@click.pass_context
def secrets_delete(ctx: click.Context, name: str) -> None:
    """Remove NAME from the vault."""
    call(ctx, "secrets.delete", name=name)
    click.echo(f"{name}: deleted")


@main.group()
def radius() -> None:
    """The RADIUS server for switches: its NAS clients and their accounting sessions."""


@radius.command("clients")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def radius_clients(ctx: click.Context, as_json: bool) -> None:
    """NAS clients as configured, whether their secret is set, and what they sent."""
    found = call(ctx, "radius.clients")
    if as_json:
        emit_json(found)
        return
    rows = []
    for c in found:
        counters = c["counters"]
        dropped = sum(v for k, v in counters.items() if k.startswith("dropped."))
        answered = sum(v for k, v in counters.items() if k.startswith(("accepted.", "rejected.")))
        rows.append(
            [
                c["name"],
                c["address"],
                c["secret"] + ("" if c["secret_set"] else " (NOT SET)"),
                "yes" if c["require_message_authenticator"] else "no",
                c["coa"],
                str(answered),
                str(dropped),
            ]
        )
    headers = ["NAME", "ADDRESS", "SECRET", "REQUIRE-MA", "COA", "ANSWERED", "DROPPED"]
    click.echo(render_table(headers, rows))


@radius.command("sessions")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def radius_sessions(ctx: click.Context, as_json: bool) -> None:
    """Accounting sessions: which NAS port holds which endpoint, with its address."""
    found = call(ctx, "radius.sessions")
    if as_json:
        emit_json(found)
        return
    rows = [
        [
            s["nas"],
            s["session_id"],
            s["mac"] or "-",
            s["nas_port_id"] or (str(s["nas_port"]) if s["nas_port"] is not None else "-"),
            s["framed_ip"] or "-",
            s["user_name"] or "-",
            s["updated"],
        ]
        for s in found
    ]
    click.echo(render_table(["NAS", "SESSION", "MAC", "PORT", "IP", "USER", "UPDATED"], rows))
