"""netaccessd: the trio supervisor that starts every service, reports readiness and drains."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

import trio

import netaccess
from netaccess.config import ApplianceConfig, ConfigError, default_config, load_config_file
from netaccess.control import ControlError, ErrorCode, Request, Response
from netaccess.control.views import endpoint_view, event_view, iso_time
from netaccess.io import jsonlog, sdnotify
from netaccess.io.capture import Capture, CaptureError, interface_mac, open_capture_socket
from netaccess.io.control_server import ControlServer, ControlSocketError, PeerPolicy
from netaccess.io.inventory import Inventory
from netaccess.proto.mac import InvalidMac, parse_mac
from netaccess.store import Store, StoreError

log = logging.getLogger("netaccess.daemon")

DATABASE_NAME = "netaccess.db"
EXIT_CRASHED = 70  # EX_SOFTWARE


class StartupError(Exception):
    """The daemon cannot start; the message says what to fix."""


class Appliance:
    """What the control socket can see of the running daemon."""

    def __init__(self, config: ApplianceConfig, store: Store, inventory: Inventory) -> None:
        self.config = config
        self.store = store
        self.inventory = inventory
        self.captures: list[Capture] = []
        self.started_at = time.time()

    def handle(self, request: Request) -> Response:
        if request.op == "status":
            return Response.success(request.id, self.status())
        if request.op == "endpoints.list":
            return Response.success(
                request.id, [endpoint_view(ep) for ep in self.inventory.endpoints()]
            )
        if request.op == "endpoints.show":
            return Response.success(request.id, self.show(request.args.get("mac")))
        raise ControlError(ErrorCode.UNKNOWN_OP, f"unknown op {request.op!r}")

    def status(self) -> dict[str, Any]:
        return {
            "version": netaccess.__version__,
            "pid": os.getpid(),
            "started_at": iso_time(self.started_at),
            "uptime_s": round(time.time() - self.started_at, 3),
            "config": self.config.source,
            "store": {"path": str(self.store_path), "schema_version": self.store.schema_version},
            "endpoints": len(self.inventory),
            "endpoints_refused": self.inventory.refused,
            "pending_writes": self.inventory.pending_writes,
            "interfaces": [capture.view() for capture in self.captures],
        }

    @property
    def store_path(self) -> Any:
        return self.config.daemon.state_dir / DATABASE_NAME

    def show(self, raw_mac: object) -> dict[str, Any]:
        if not isinstance(raw_mac, str):
            raise ControlError(ErrorCode.BAD_REQUEST, "endpoints.show needs args.mac")
        try:
            mac = parse_mac(raw_mac)
        except InvalidMac as exc:
            raise ControlError(ErrorCode.BAD_REQUEST, str(exc)) from None
        ep = self.inventory.get(mac)
        if ep is None:
            raise ControlError(ErrorCode.NOT_FOUND, f"no endpoint with MAC {mac}")
        view = endpoint_view(ep)
        # The control handler runs on the event loop; a bounded indexed read is cheap.
        view["events"] = [event_view(ev) for ev in self.store.events(mac=mac, limit=50)]
        return view


def open_store(config: ApplianceConfig) -> Store:
    state_dir = config.daemon.state_dir
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        return Store.open(state_dir / DATABASE_NAME)
    except OSError as exc:
        raise StartupError(f"daemon.state_dir: cannot use {state_dir}: {exc.strerror}") from None
    except StoreError as exc:
        raise StartupError(str(exc)) from None


async def run(config: ApplianceConfig) -> None:
    store = open_store(config)
    try:
        inventory = Inventory(
            store,
            store.load_endpoints(),
            max_endpoints=config.detection.max_endpoints,
            refusal_log_interval=config.detection.malformed_log_interval,
        )
        appliance = Appliance(config, store, inventory)
        log.info(
            "starting",
            extra={
                "version": netaccess.__version__,
                "config": config.source,
                "endpoints": len(inventory),
            },
        )
        await _supervise(config, appliance)
    finally:
        store.close()


async def _supervise(config: ApplianceConfig, appliance: Appliance) -> None:
    inventory = appliance.inventory
    grace = config.daemon.shutdown_grace
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as root:
            services_scope = trio.CancelScope()

            async def stop_on_signal() -> None:
                async for signum in signals:
                    log.info("shutting down", extra={"signal": signal.Signals(signum).name})
                    sdnotify.notify("STOPPING=1")
                    services_scope.cancel()
                    return

            root.start_soon(stop_on_signal)
            with services_scope:
                async with trio.open_nursery() as services:
                    await services.start(inventory.run_writer)
                    if config.detection.enabled:
                        for ifname in config.interfaces.access:
                            await services.start(_start_capture, config, appliance, ifname)
                    control = ControlServer(
                        config.daemon.control_socket,
                        PeerPolicy(config.daemon.admin_group),
                        appliance.handle,
                    )
                    await services.start(control.run)
                    # Every listener is bound: only now may systemd (or the lab) send traffic.
                    sdnotify.notify("READY=1")
                    log.info("ready", extra={"control_socket": str(config.daemon.control_socket)})
                    period = sdnotify.watchdog_period() if config.daemon.watchdog else None
                    if period is not None:
                        services.start_soon(sdnotify.keep_watchdog_fed, period)
            root.cancel_scope.cancel()
    # Drain: what was observed before the signal must reach the disk, within the grace period.
    with trio.move_on_after(grace) as drain:
        while inventory.pending_writes and not await inventory.flush():
            await trio.sleep(0.2)
    if drain.cancelled_caught:
        log.error(
            "shutdown grace expired with writes pending",
            extra={"pending": inventory.pending_writes},
        )
    log.info("stopped")


async def _start_capture(
    config: ApplianceConfig,
    appliance: Appliance,
    ifname: str,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    try:
        sock = open_capture_socket(ifname, config.detection.receive_buffer)
    except CaptureError as exc:
        raise StartupError(f"interfaces.access: {exc}") from None
    appliance.inventory.add_own_macs([interface_mac(sock)])
    capture = Capture(
        ifname, sock, appliance.inventory.observe, config.detection.malformed_log_interval
    )
    appliance.captures.append(capture)
    await capture.run(task_status=task_status)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="netaccessd", description="netaccess NAC appliance daemon"
    )
    parser.add_argument(
        "--config", metavar="FILE", help="TOML config (default: the embedded config)"
    )
    parser.add_argument(
        "--version", action="version", version=f"netaccessd {netaccess.__version__}"
    )
    args = parser.parse_args(argv)
    try:
        config = load_config_file(args.config) if args.config else default_config()
    except ConfigError as exc:
        print(f"netaccessd: refusing to start, configuration is invalid:\n{exc}", file=sys.stderr)
        return 2
    jsonlog.setup(config.daemon.log_level.value)
    failures: list[BaseException] = []
    crashed = False
    try:
        trio.run(run, config)
    except* (StartupError, ControlSocketError) as group:
        failures = _leaves(group)
    except* Exception as group:
        for exc in _leaves(group):
            log.critical("crashed", exc_info=exc)
        crashed = True
    if crashed:
        return EXIT_CRASHED
    for exc in failures:
        log.error("cannot start: %s", exc)
    return 1 if failures else 0


def _leaves(group: BaseExceptionGroup[Any]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


if __name__ == "__main__":
    sys.exit(main())
