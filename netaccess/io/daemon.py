"""netaccessd: the trio supervisor that starts every service, reports readiness and drains.

It runs unprivileged: started as root it prepares its directories and becomes daemon.user at
once; raw sockets and privileged listeners come from netaccess-enforcer as descriptors.
"""

from __future__ import annotations

import logging
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import trio

import netaccess
from netaccess.config import ApplianceConfig
from netaccess.config.radius_dictionary import server_dictionary
from netaccess.enforce.intents import OpenCapture, OpenListener
from netaccess.io import sdnotify
from netaccess.io.capture import Capture, interface_mac
from netaccess.io.control_handlers import DATABASE_NAME, Appliance
from netaccess.io.control_server import ControlServer, ControlSocketError, PeerPolicy
from netaccess.io.eap_tls import EapTls, EapTlsUnavailable
from netaccess.io.enforcer_link import EnforcerLink, EnforcerRefused
from netaccess.io.http_server import (
    Handler,
    HttpServer,
    HttpTimeouts,
    TlsListener,
    open_listeners,
)
from netaccess.io.inventory import Inventory
from netaccess.io.portal import Portal
from netaccess.io.posture import PostureServer
from netaccess.io.privileges import PrivilegeError, become
from netaccess.io.radius import RadiusServer
from netaccess.io.remote_imv import RemoteImv, remote_imv_context
from netaccess.io.startup import EXIT_BAD_CONFIG, configure, tune_gc
from netaccess.io.tls import TlsSetupError, posture_context, self_signed, server_context
from netaccess.policy.imv_agent import AgentImv
from netaccess.policy.imv_hostchecker import HostCheckerImv
from netaccess.policy.imv_os import OsImv
from netaccess.proto.http import HttpLimits
from netaccess.proto.radius.errors import DictionaryError
from netaccess.store import Store, StoreError
from netaccess.store.vault import VaultError

log = logging.getLogger("netaccess.daemon")

EXIT_CRASHED = 70  # EX_SOFTWARE


class StartupError(Exception):
    """The daemon cannot start; the message says what to fix."""


def open_store(config: ApplianceConfig) -> Store:
    state_dir = config.daemon.state_dir
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        store = Store.open(state_dir / DATABASE_NAME)
    except OSError as exc:
        raise StartupError(f"daemon.state_dir: cannot use {state_dir}: {exc.strerror}") from None
    except StoreError as exc:
        raise StartupError(str(exc)) from None
    # The inventory writes from a worker thread while the loop writes too (reports, users).
    store.serialize_with(threading.Lock())
    return store


def warn_of_stray_nt_hashes(config: ApplianceConfig, store: Store) -> dict[str, int]:
    """NT hashes kept for realms that no longer allow MSCHAPv2 (mschapv2 turned off, or the
    realm gone): password equivalents nothing uses. They are not dropped unasked (turning
    the setting back on uses them again); the warning says how to drop them."""
    strays = store.stray_nt_hashes(config.mschapv2_realms())
    if strays:
        log.warning(
            "MSCHAPv2 credentials kept for realms that do not allow MSCHAPv2",
            extra={
                "realms": strays,
                "fix": "`appliance users forget-mschapv2` drops them; mschapv2 = true uses them",
            },
        )
    return strays


async def run(config: ApplianceConfig) -> None:
    store = open_store(config)
    try:
        warn_of_stray_nt_hashes(config, store)
        inventory = Inventory(
            store,
            store.load_endpoints(),
            max_endpoints=config.detection.max_endpoints,
            refusal_log_interval=config.detection.malformed_log_interval,
        )
        enforcer = EnforcerLink(
            config.enforcement.enforcer_socket,
            inventory.desired_memberships,
            lambda repairs: inventory.record_repairs(repairs, time.time()),
            config.enforcement.intent_queue,
        )
        inventory.set_membership_listener(enforcer.submit)
        try:
            appliance = Appliance(config, store, inventory, enforcer)
        except VaultError as exc:
            raise StartupError(f"vault: {exc}") from None
        if config.radius.clients:
            try:
                dictionary = server_dictionary(config.radius.dictionary)
            except DictionaryError as exc:
                raise StartupError(f"radius.dictionary: {exc}") from None
            # 802.1X's TLS server certificate is the portal's (and PT-TLS's).
            certificate, key = _portal_certificate(config)
            try:
                eap = EapTls(
                    certificate,
                    key,
                    config.radius.eap_tls_ca,
                    peap=bool(config.mschapv2_realms()),
                    client_crl=config.radius.eap_tls_crl,
                )
            except EapTlsUnavailable as exc:
                raise StartupError(f"radius: 802.1X (EAP) cannot run: {exc}") from None
            appliance.radius = RadiusServer(
                config,
                inventory,
                dictionary,
                appliance.vault.get,
                store=store,
                admissions=appliance.admissions,
                eap=eap,
                unseal=appliance.vault.unseal,
            )
        await appliance.feeds.load()
        tune_gc()
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
    inventory, enforcer = appliance.inventory, appliance.enforcer
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as root:
            services_scope = trio.CancelScope()
            portal = Portal(
                config,
                appliance.inventory,
                appliance.store,
                agents=appliance.agents,
                admissions=appliance.admissions,
            )
            portal_http = _portal_server(config, portal.handle_http, "portal-http")
            portal_https = _portal_server(config, portal.handle_https, "portal-https")
            certificate = _portal_certificate(config)
            tls = _tls(lambda: server_context(*certificate))
            posture_tls = _tls(
                lambda: posture_context(
                    *certificate,
                    client_certificates=config.posture.client_certificates.value,
                    client_ca=config.posture.client_ca,
                )
            )
            remote_imvs = [
                RemoteImv(settings, _tls(partial(remote_imv_context, settings)))
                for settings in config.posture.remote_imvs
            ]
            posture = PostureServer(
                config.posture,
                appliance.store,
                lambda: [
                    OsImv(request_packages=config.posture.request_packages),
                    HostCheckerImv(
                        config.policies,
                        lambda: appliance.feeds.current,
                        lambda: datetime.now(UTC),
                    ),
                    AgentImv(appliance.agents.builds),
                    *remote_imvs,
                ],
                appliance.inventory.mac_at,
                appliance.admissions.on_report,
            )

            async def stop_on_signal() -> None:
                async for signum in signals:
                    log.info("shutting down", extra={"signal": signal.Signals(signum).name})
                    sdnotify.notify("STOPPING=1")
                    # Requests in flight get the grace period to finish; idle ones close now.
                    grace = config.daemon.shutdown_grace
                    portal_http.drain(grace)
                    portal_https.drain(grace)
                    with trio.move_on_after(grace):
                        await portal_http.finished.wait()
                        await portal_https.finished.wait()
                    services_scope.cancel()
                    return

            root.start_soon(stop_on_signal)
            with services_scope:
                await enforcer.connect()
                listeners = await _privileged_sockets(config, appliance)
                async with trio.open_nursery() as services:
                    await services.start(inventory.run_writer)
                    await services.start(enforcer.run)
                    services.start_soon(_reconcile_periodically, config, enforcer)
                    await services.start(appliance.admissions.run)
                    if config.patch_feed.url:
                        services.start_soon(appliance.feeds.run_pull)
                    for capture in appliance.captures:
                        await services.start(capture.run)
                    http_listeners = open_listeners([listeners.pop(0)])
                    await services.start(portal_http.serve, http_listeners)
                    https_listeners = [
                        TlsListener(listener, tls)
                        for listener in open_listeners([listeners.pop(0)])
                    ]
                    await services.start(portal_https.serve, https_listeners)
                    await services.start(
                        posture.serve,
                        [TlsListener(plain, posture_tls) for plain in open_listeners(listeners)],
                    )
                    control = ControlServer(
                        config.daemon.control_socket,
                        PeerPolicy(config.daemon.admin_group),
                        appliance.handle,
                    )
                    if appliance.radius is not None:
                        try:
                            await services.start(appliance.radius.serve)
                        except OSError as exc:
                            raise StartupError(
                                f"radius: cannot listen on UDP {config.radius.address} "
                                f"{config.radius.auth_port}/{config.radius.acct_port}: "
                                f"{exc.strerror}"
                            ) from None
                    await services.start(control.run)
                    # Every listener is bound: only now may systemd (or the lab) send traffic.
                    sdnotify.notify("READY=1")
                    log.info("ready", extra={"control_socket": str(config.daemon.control_socket)})
                    period = sdnotify.watchdog_period() if config.daemon.watchdog else None
                    if period is not None:
                        services.start_soon(sdnotify.keep_watchdog_fed, period)
            root.cancel_scope.cancel()
    await _drain(config, inventory)


async def _privileged_sockets(config: ApplianceConfig, appliance: Appliance) -> list[socket.socket]:
    """Capture sockets (kept on the appliance) and the listeners, all from the enforcer."""
    enforcer = appliance.enforcer
    if config.detection.enabled:
        for ifname in config.interfaces.access:
            try:
                sock = await enforcer.request_one_fd(
                    OpenCapture(ifname, config.detection.receive_buffer)
                )
            except EnforcerRefused as exc:
                raise StartupError(f"interfaces.access: {exc}") from None
            sock.setblocking(False)
            appliance.inventory.add_own_macs([interface_mac(sock)])
            appliance.captures.append(
                Capture(
                    ifname,
                    sock,
                    appliance.inventory.observe,
                    config.detection.malformed_log_interval,
                )
            )
    ports = config.enforcement
    listeners = []
    for port in (ports.portal_http_port, ports.portal_https_port, ports.pt_tls_port):
        try:
            listeners.append(await enforcer.request_one_fd(OpenListener(port)))
        except EnforcerRefused as exc:
            raise StartupError(f"enforcement: {exc}") from None
    return listeners


def _portal_server(config: ApplianceConfig, handler: Handler, name: str) -> HttpServer:
    settings = config.portal
    return HttpServer(
        handler,
        name=name,
        limits=HttpLimits(
            max_header_bytes=settings.max_header_bytes,
            max_headers=settings.max_headers,
            max_body_bytes=settings.max_body_bytes,
        ),
        timeouts=HttpTimeouts(request=settings.request_timeout, idle=settings.idle_timeout),
        max_connections=settings.max_connections,
    )


def _portal_certificate(config: ApplianceConfig) -> tuple[Path, Path]:
    """(certificate, key) of the portal, which PT-TLS serves too: the configured ones, or a
    self-signed pair for the portal's hostname made at first start."""
    settings = config.portal
    if settings.tls_certificate is not None and settings.tls_key is not None:
        return settings.tls_certificate, settings.tls_key
    try:
        return self_signed(config.daemon.state_dir / "tls", settings.hostname)
    except (TlsSetupError, OSError) as exc:
        raise StartupError(f"portal TLS: {exc}") from None


def _tls(make: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    try:
        return make()
    except (TlsSetupError, OSError) as exc:
        raise StartupError(f"TLS: {exc}") from None


async def _reconcile_periodically(config: ApplianceConfig, enforcer: EnforcerLink) -> None:
    while True:
        await trio.sleep(config.enforcement.reconcile_interval)
        enforcer.request_reconcile()


async def _drain(config: ApplianceConfig, inventory: Inventory) -> None:
    # What was observed before the signal must reach the disk, within the grace period.
    with trio.move_on_after(config.daemon.shutdown_grace) as drain:
        while inventory.pending_writes and not await inventory.flush():
            await trio.sleep(0.2)
    if drain.cancelled_caught:
        log.error(
            "shutdown grace expired with writes pending",
            extra={"pending": inventory.pending_writes},
        )
    log.info("stopped")


def main(argv: Sequence[str] | None = None) -> int:
    config = configure("netaccessd", "netaccess NAC appliance daemon", argv)
    if config is None:
        return EXIT_BAD_CONFIG
    try:
        become(config.daemon.user, [config.daemon.state_dir, config.daemon.control_socket.parent])
    except (PrivilegeError, OSError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    failures: list[BaseException] = []
    crashed = False
    try:
        trio.run(run, config)
    except* (StartupError, ControlSocketError) as group:
        failures = _leaves(group)
    except* Exception as group:
        for leaf in _leaves(group):
            log.critical("crashed", exc_info=leaf)
        crashed = True
    if crashed:
        return EXIT_CRASHED
    for failure in failures:
        log.error("cannot start: %s", failure)
    return 1 if failures else 0


def _leaves(group: BaseExceptionGroup[Any]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


if __name__ == "__main__":
    sys.exit(main())
