"""`appliance`: the admin CLI, reached over SSH; it talks to netaccessd only through control."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from appliance.client import DEFAULT_SOCKET, ControlClient, DaemonRefused, DaemonUnreachable
from netaccess.config import ConfigError, load_config_file
from netaccess.control import ErrorCode
from netaccess.proto.mac import InvalidMac, parse_mac

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
    if ep["events"]:
        click.echo("events:")
        for ev in ep["events"]:
            detail = " ".join(f"{k}={v}" for k, v in sorted(ev["detail"].items()))
            click.echo(f"  {ev['at']}  {ev['kind']:<20} {detail}")


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
