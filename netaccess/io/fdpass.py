"""Lines over a Unix stream socket with file descriptors beside them (SCM_RIGHTS)."""

from __future__ import annotations

import array
import contextlib
import os
import socket

import trio

CHUNK = 1 << 20
MAX_FDS = 8


class LineChannel:
    """One JSON-lines conversation over a trio Unix socket; received fds are kept in order."""

    def __init__(self, sock: trio.socket.SocketType, max_line: int) -> None:
        self.sock = sock
        self._max_line = max_line
        self._buffer = bytearray()
        self._fds: list[int] = []

    async def send(self, data: bytes, fds: list[int] | None = None) -> None:
        view = memoryview(data)
        if fds:
            ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
            sent = await self.sock.sendmsg([view[:CHUNK]], ancillary)
            view = view[sent:]
        while view:
            sent = await self.sock.send(view[:CHUNK])
            view = view[sent:]

    async def receive_line(self) -> tuple[bytes, list[int]] | None:
        """The next line and the fds that came with it; None at end of stream."""
        while (end := self._buffer.find(b"\n")) < 0:
            if len(self._buffer) > self._max_line:
                raise ValueError(f"line longer than {self._max_line} bytes")
            data, ancillary, _flags, _addr = await self.sock.recvmsg(
                CHUNK, socket.CMSG_SPACE(MAX_FDS * array.array("i").itemsize)
            )
            self._fds += _fds_from(ancillary)
            if not data:
                self.close_fds()
                return None
            self._buffer += data
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        fds, self._fds = self._fds, []
        return line, fds

    def close_fds(self) -> None:
        for fd in self._fds:
            _close(fd)
        self._fds = []


def _fds_from(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    fds: list[int] = []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            received = array.array("i")
            received.frombytes(data[: len(data) - len(data) % received.itemsize])
            fds += list(received)
    return fds


def _close(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
