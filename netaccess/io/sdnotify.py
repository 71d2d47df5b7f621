"""systemd's notify protocol (sd_notify(3)): READY=1, STOPPING=1 and watchdog pings."""

from __future__ import annotations

import logging
import os
import socket

import trio

log = logging.getLogger("netaccess.sdnotify")


def notify(message: str) -> bool:
    """Send one state datagram to $NOTIFY_SOCKET; False when there is none or nobody listens.

    Never raises and never blocks: a supervisor that went away must not take the daemon down
    (or stall its shutdown) with it.
    """
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message.encode(), socket.MSG_DONTWAIT, address)
    except OSError as exc:
        log.warning("sd_notify failed", extra={"notify_socket": address, "error": str(exc)})
        return False
    return True


def watchdog_period() -> float | None:
    """Seconds between pings (half of WATCHDOG_USEC), or None when no watchdog is armed for us."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2_000_000 if value > 0 else None


async def keep_watchdog_fed(period: float) -> None:
    while True:
        notify("WATCHDOG=1")
        await trio.sleep(period)
