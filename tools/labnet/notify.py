"""The receiving end of systemd's notify protocol (sd_notify(3)), so the lab knows when the
daemon is ready, as systemd would for a Type=notify unit."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

from tools.labnet.errors import LabError

SUN_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) minus the terminating NUL


class NotifyListener:
    """A bound AF_UNIX datagram socket, drained by a thread for as long as the daemon runs.

    Draining matters: a sender blocks once the receive queue is full, so an unread socket
    would eventually hang a daemon sending watchdog pings or status lines.
    """

    def __init__(self, path: Path) -> None:
        if len(os.fsencode(path)) > SUN_PATH_MAX:
            raise LabError(
                f"notify socket path {path} is longer than {SUN_PATH_MAX} bytes;"
                " use a shorter lab workdir"
            )
        self.path = path
        self.messages: list[str] = []
        self.ready = threading.Event()
        self._closing = threading.Event()
        path.unlink(missing_ok=True)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._sock.bind(os.fspath(path))
        # netaccessd drops to its own user right after start and still has to reach us.
        os.chmod(path, 0o666)
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._drain, name=f"notify:{path}", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while not self._closing.is_set():
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            message = data.decode("utf-8", errors="replace")
            self.messages.append(message)
            if "READY=1" in message.splitlines():
                self.ready.set()

    def close(self) -> None:
        self._closing.set()
        self._thread.join(timeout=2)
        self._sock.close()
        self.path.unlink(missing_ok=True)
