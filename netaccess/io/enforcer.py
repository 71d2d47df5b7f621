"""netaccess-enforcer: the one privileged process. It turns typed intents into kernel state.

It parses no packet and no HTTP: it loads the nftables ruleset, changes set elements, flushes
conntrack, and opens the raw sockets and privileged listeners that netaccessd (unprivileged)
needs, handing them over as file descriptors. Only netaccessd's uid may talk to it.
"""

from __future__ import annotations

import logging
import os
import pwd
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from netaccess.config import ApplianceConfig
from netaccess.enforce.errors import EnforcementError
from netaccess.enforce.intents import (
    MAX_LINE,
    Answer,
    FlushFlows,
    Intent,
    IntentError,
    OpenCapture,
    OpenListener,
    Reconcile,
    SetMemberships,
    Status,
    decode_intent,
    encode_answer,
)
from netaccess.enforce.kernel_state import KernelEnforcement
from netaccess.enforce.ruleset import RulesetSpec
from netaccess.io import sdnotify
from netaccess.io.beside import worker_thread
from netaccess.io.capture import CaptureError, open_capture_socket
from netaccess.io.control_server import peer_credentials
from netaccess.io.fdpass import LineChannel
from netaccess.io.startup import EXIT_BAD_CONFIG, configure

log = logging.getLogger("netaccess.enforcer")


class EnforcerStartupError(Exception):
    pass


class Enforcer:
    """Executes intents; every answer says what happened, and nothing is half-applied."""

    def __init__(self, config: ApplianceConfig, kernel: KernelEnforcement) -> None:
        self.config = config
        self.kernel = kernel
        self.started_at = time.time()
        self.intents_handled = 0
        # Listeners outlive netaccessd: while it restarts, new connections wait in the
        # backlog instead of being refused, and it gets the same socket back (a dup).
        self._listeners: dict[int, socket.socket] = {}

    def handle(self, intent: Intent) -> tuple[Answer, list[int]]:
        self.intents_handled += 1
        match intent:
            case SetMemberships(changes):
                flows = self.kernel.apply(changes)
                return Answer(True, {"applied": len(changes), "flows_deleted": flows}), []
            case FlushFlows(addresses):
                return Answer(True, {"flows_deleted": self.kernel.flush(addresses)}), []
            case Reconcile(desired):
                return Answer(True, self.kernel.reconcile(desired)), []
            case OpenCapture(ifname, receive_buffer):
                try:
                    sock = open_capture_socket(ifname, receive_buffer)
                except CaptureError as exc:
                    return Answer(False, error=str(exc)), []
                return Answer(True, {"ifname": ifname}), [sock.detach()]
            case OpenListener(port, backlog):
                return self._open_listener(port, backlog)
            case Status():
                return Answer(True, self.status()), []

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "started_at": self.started_at,
            "intents_handled": self.intents_handled,
            **self.kernel.status(),
        }

    def _open_listener(self, port: int, backlog: int) -> tuple[Answer, list[int]]:
        allowed = {
            self.config.enforcement.portal_http_port,
            self.config.enforcement.portal_https_port,
            self.config.enforcement.pt_tls_port,
        }
        if port not in allowed:
            return Answer(
                False, error=f"port {port} is not a configured listener {sorted(allowed)}"
            ), []
        sock = self._listeners.get(port)
        if sock is None:
            try:
                sock = _listening_socket(port, backlog)
            except OSError as exc:
                return Answer(False, error=f"cannot listen on TCP {port}: {exc.strerror}"), []
            self._listeners[port] = sock
        return Answer(True, {"port": port}), [os.dup(sock.fileno())]


def _listening_socket(port: int, backlog: int) -> socket.socket:
    """A TCP listener on every address of both families (IPv4 arrives as ::ffff:a.b.c.d):
    the ruleset redirects captive IPv6 HTTP here as well. IPv4 only where the kernel has no
    IPv6."""
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    except OSError:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        address: tuple[str, int] = ("0.0.0.0", port)
    else:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        address = ("::", port)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


async def serve(config: ApplianceConfig, enforcer: Enforcer, daemon_uid: int) -> None:
    path = config.enforcement.enforcer_socket
    listener = await _bind(path, daemon_uid)
    lock = trio.Lock()  # one kernel transaction at a time, whoever asks
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:

            async def stop_on_signal() -> None:
                async for signum in signals:
                    log.info("shutting down", extra={"signal": signal.Signals(signum).name})
                    sdnotify.notify("STOPPING=1")
                    nursery.cancel_scope.cancel()

            nursery.start_soon(stop_on_signal)
            sdnotify.notify("READY=1")
            log.info("ready", extra={"socket": str(path), "daemon_uid": daemon_uid})
            period = sdnotify.watchdog_period()
            if period is not None:
                nursery.start_soon(sdnotify.keep_watchdog_fed, period)
            index_fd = enforcer.kernel.flow_index_fileno()
            if index_fd is not None:
                nursery.start_soon(_keep_flow_index, enforcer.kernel, index_fd, lock)
            try:
                while True:
                    conn, _ = await listener.accept()
                    nursery.start_soon(_serve_peer, conn, enforcer, daemon_uid, lock)
            finally:
                listener.close()
                with trio.CancelScope(shield=True):
                    if path.exists():
                        path.unlink()
    log.info("stopped; the kernel keeps enforcing the last state")


async def _keep_flow_index(kernel: KernelEnforcement, fd: int, lock: trio.Lock) -> None:
    """Apply conntrack events as they come, so that the index stays small (destroyed flows
    leave it) and its socket never overflows. Under the intent lock: a drain must not change
    the index while a flush reads it."""
    while True:
        await trio.lowlevel.wait_readable(fd)
        failed = False
        async with lock:
            try:
                kernel.refresh_flow_index()
            except EnforcementError as exc:
                log.error("flow index refresh failed", extra={"error": str(exc)})
                failed = True
        if failed:
            # Flushes walk the table while the index is stale; retry, but not in a spin.
            await trio.sleep(1)


async def _bind(path: Path, daemon_uid: int) -> trio.socket.SocketType:
    daemon_gid = pwd.getpwuid(daemon_uid).pw_gid
    if not path.parent.exists():
        # Under systemd tmpfiles made it; elsewhere (the lab) we do, and netaccessd keeps its
        # control socket beside ours, so it must be able to write here.
        path.parent.mkdir(parents=True, mode=0o755)
        os.chown(path.parent, daemon_uid, daemon_gid)
    if path.exists():
        path.unlink()
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o117)
    try:
        await sock.bind(str(path))
    finally:
        os.umask(old_umask)
    # Under systemd we are not root and the directory's group already is netaccessd's; chown
    # only when it differs (giving a file to another owner needs CAP_CHOWN we do not hold).
    if path.stat().st_gid != daemon_gid:
        os.chown(path, -1, daemon_gid)
    sock.listen(8)
    return sock


async def _serve_peer(
    conn: trio.socket.SocketType, enforcer: Enforcer, daemon_uid: int, lock: trio.Lock
) -> None:
    channel = LineChannel(conn, MAX_LINE)
    try:
        peer = peer_credentials(conn)
        if peer.uid != daemon_uid:
            log.warning(
                "peer refused",
                extra={"peer_uid": peer.uid, "peer_pid": peer.pid, "daemon_uid": daemon_uid},
            )
            refusal = Answer(False, error=f"uid {peer.uid} is not netaccessd's uid {daemon_uid}")
            with trio.move_on_after(1):
                await channel.send(encode_answer(refusal))
            return
        log.info("netaccessd connected", extra={"peer_pid": peer.pid})
        while (received := await channel.receive_line()) is not None:
            line, stray_fds = received
            for fd in stray_fds:  # we never accept descriptors from the daemon
                os.close(fd)
            answer, fds = await _answer(line, enforcer, lock)
            try:
                await channel.send(encode_answer(answer), fds)
            finally:
                for fd in fds:
                    os.close(fd)
    except (OSError, ValueError, trio.BrokenResourceError) as exc:
        log.warning("peer connection ended", extra={"error": str(exc)})
    finally:
        channel.close_fds()
        conn.close()


async def _answer(line: bytes, enforcer: Enforcer, lock: trio.Lock) -> tuple[Answer, list[int]]:
    try:
        intent = decode_intent(line)
    except IntentError as exc:
        return Answer(False, error=f"refused: {exc}"), []
    async with lock:
        try:
            return enforcer.handle(intent)
        except EnforcementError as exc:
            log.error("intent failed", extra={"intent": type(intent).__name__, "error": str(exc)})
            return Answer(False, error=str(exc)), []


def ruleset_spec(config: ApplianceConfig) -> RulesetSpec:
    return RulesetSpec(
        roles=config.roles,
        access_interfaces=config.interfaces.access,
        upstream_interfaces=config.interfaces.upstream,
        portal_http_port=config.enforcement.portal_http_port,
        portal_https_port=config.enforcement.portal_https_port,
        pt_tls_port=config.enforcement.pt_tls_port,
    )


def main(argv: Sequence[str] | None = None) -> int:
    config = configure("netaccess-enforcer", "netaccess privileged enforcer", argv)
    if config is None:
        return EXIT_BAD_CONFIG
    try:
        daemon_uid = pwd.getpwnam(config.daemon.user).pw_uid
    except KeyError:
        log.error(
            "cannot start: daemon.user: no such user %r (create it, e.g. with sysusers)",
            config.daemon.user,
        )
        return 1
    beside, stop_worker = worker_thread()
    try:
        try:
            kernel = KernelEnforcement.start(ruleset_spec(config), beside)
        except EnforcementError as exc:
            log.error("cannot start: %s", exc)
            return 1
        trio.run(serve, config, Enforcer(config, kernel), daemon_uid)
    finally:
        stop_worker()
    return 0


if __name__ == "__main__":
    sys.exit(main())
