"""A blocking control-socket client for the admin CLI (one request, one response line)."""

from __future__ import annotations

import itertools
import socket
from pathlib import Path
from typing import Any

from netaccess.control import ControlError, ErrorCode, LineDecoder, Request, decode_response, encode

DEFAULT_SOCKET = Path("/run/netaccess/control.sock")
TIMEOUT = 10.0


class DaemonUnreachable(Exception):
    pass


class DaemonRefused(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class ControlClient:
    def __init__(self, path: Path, timeout: float = TIMEOUT) -> None:
        self.path = path
        self.timeout = timeout
        self._ids = itertools.count(1)

    def call(self, op: str, **args: Any) -> Any:
        request = Request(next(self._ids), op, args)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            try:
                sock.connect(str(self.path))
            except OSError as exc:
                raise DaemonUnreachable(
                    f"cannot reach netaccessd at {self.path}: {exc.strerror or exc}"
                ) from None
            try:
                sock.sendall(encode(request))
                line = self._read_line(sock)
            except TimeoutError:
                raise DaemonUnreachable(
                    f"netaccessd at {self.path} did not answer in {self.timeout:g} s"
                ) from None
            except OSError as exc:
                raise DaemonUnreachable(
                    f"connection to netaccessd at {self.path} failed: {exc}"
                ) from None
        finally:
            sock.close()
        try:
            response = decode_response(line)
        except ControlError as exc:
            raise DaemonUnreachable(f"netaccessd at {self.path} answered garbage: {exc}") from None
        if not response.ok:
            assert response.error_code is not None
            raise DaemonRefused(response.error_code, response.error_message)
        return response.result

    @staticmethod
    def _read_line(sock: socket.socket) -> bytes:
        decoder = LineDecoder()
        while True:
            data = sock.recv(1 << 20)
            if not data:
                raise DaemonUnreachable("netaccessd closed the connection without answering")
            lines = decoder.feed(data)
            if lines:
                return lines[0]
