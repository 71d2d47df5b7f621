"""Local change signals on Linux, so the agent reports a change at once instead of at its next
interval:

- inotify on the files whose change alters posture: dpkg's status file (a package installed
  or removed; dpkg replaces it by rename, so its directory is watched), ClamAV's signature
  directory and clamd's socket directory (the daemon started or stopped), ufw's config;
- the nftables ruleset: a netlink socket in the NFNLGRP_NFTABLES multicast group hears
  every ruleset change the kernel makes in this network namespace (joining needs
  CAP_NET_ADMIN, as reading the ruleset does).

A signal that cannot be set up (no such directory, no privilege) is left out and named in
`unavailable`: the interval still catches that change, later. Nothing here decides whether
posture changed; the agent collects again and compares.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import select
import socket
import struct
import time
from collections.abc import Sequence
from pathlib import Path

IN_MODIFY = 0x002
IN_CLOSE_WRITE = 0x008
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
MASK = IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE
_EVENT = struct.Struct("=iIII")  # wd, mask, cookie, len (struct inotify_event)

NETLINK_NETFILTER = 12
NFNLGRP_NFTABLES = 7

# (directory, file names in it that matter or None for any, what the change is called)
LINUX_WATCHES: tuple[tuple[str, frozenset[str] | None, str], ...] = (
    ("/var/lib/dpkg", frozenset({"status"}), "installed packages"),
    ("/var/lib/clamav", None, "antivirus signatures"),
    ("/run/clamav", None, "antivirus daemon"),
    ("/etc/ufw", frozenset({"ufw.conf"}), "firewall"),
)
SETTLE = 0.3  # seconds to wait for the rest of a burst of signals (dpkg writes many)


class ChangeWatcher:
    def __init__(
        self,
        watches: Sequence[tuple[str, frozenset[str] | None, str]] = LINUX_WATCHES,
        *,
        nftables: bool = True,
        root: Path = Path("/"),
    ) -> None:
        self.unavailable: list[str] = []
        self._names: dict[int, tuple[frozenset[str] | None, str]] = {}
        self._inotify = -1
        self._netlink: socket.socket | None = None
        self._open_inotify(watches, root)
        if nftables:
            self._open_netlink()

    def _open_inotify(
        self, watches: Sequence[tuple[str, frozenset[str] | None, str]], root: Path
    ) -> None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
            fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        except (OSError, AttributeError) as exc:
            self.unavailable.append(f"inotify: {exc}")
            return
        if fd < 0:
            self.unavailable.append(f"inotify: {os.strerror(ctypes.get_errno())}")
            return
        self._inotify = fd
        for directory, names, what in watches:
            path = root / directory.lstrip("/")
            wd = libc.inotify_add_watch(fd, os.fsencode(path), MASK)
            if wd < 0:
                self.unavailable.append(f"{what} ({path}): {os.strerror(ctypes.get_errno())}")
                continue
            self._names[wd] = (names, what)

    def _open_netlink(self) -> None:
        try:
            sock = socket.socket(
                socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK, NETLINK_NETFILTER
            )
        except OSError as exc:
            self.unavailable.append(f"nftables ruleset: {exc.strerror or exc}")
            return
        try:
            sock.bind((0, 1 << (NFNLGRP_NFTABLES - 1)))
        except OSError as exc:
            sock.close()
            self.unavailable.append(f"nftables ruleset: {exc.strerror or exc}")
            return
        self._netlink = sock

    def close(self) -> None:
        if self._inotify >= 0:
            os.close(self._inotify)
            self._inotify = -1
        if self._netlink is not None:
            self._netlink.close()
            self._netlink = None

    def __enter__(self) -> ChangeWatcher:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def wait(self, timeout: float) -> list[str]:
        """What changed, once something did or after `timeout` seconds (then: nothing).
        A burst of signals is gathered for SETTLE seconds into one answer."""
        fds = [fd for fd in (self._inotify, self._fileno_netlink()) if fd >= 0]
        if not fds:
            time.sleep(max(0.0, timeout))
            return []
        deadline = time.monotonic() + max(0.0, timeout)
        changes: list[str] = []
        settle_until = deadline
        while True:
            left = deadline - time.monotonic()
            if changes:
                left = min(left, settle_until - time.monotonic())
            if left <= 0:
                return changes
            ready, _, _ = select.select(fds, [], [], left)
            found = self._drain(ready)
            if found and not changes:
                settle_until = time.monotonic() + SETTLE
            changes.extend(c for c in found if c not in changes)

    def _fileno_netlink(self) -> int:
        return self._netlink.fileno() if self._netlink is not None else -1

    def _drain(self, ready: Sequence[int]) -> list[str]:
        found: list[str] = []
        if self._inotify in ready:
            found.extend(self._read_inotify())
        if self._netlink is not None and self._netlink.fileno() in ready:
            while True:
                try:
                    self._netlink.recv(65536)
                except BlockingIOError:
                    break
                except OSError as exc:  # ENOBUFS: we missed some; it still changed
                    if exc.errno != errno.ENOBUFS:
                        break
                if "firewall" not in found:
                    found.append("firewall")
        return found

    def _read_inotify(self) -> list[str]:
        found: list[str] = []
        while True:
            try:
                data = os.read(self._inotify, 65536)
            except BlockingIOError:
                return found
            offset = 0
            while offset + _EVENT.size <= len(data):
                wd, _mask, _cookie, length = _EVENT.unpack_from(data, offset)
                raw = data[offset + _EVENT.size : offset + _EVENT.size + length]
                offset += _EVENT.size + length
                name = raw.rstrip(b"\0").decode("utf-8", "replace")
                names, what = self._names.get(wd, (frozenset(), ""))
                if what and (names is None or name in names) and what not in found:
                    found.append(what)
