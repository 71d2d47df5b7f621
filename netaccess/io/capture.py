"""AF_PACKET capture of DHCP and ARP on one access interface, filtered in the kernel (BPF)."""

from __future__ import annotations

import ctypes
import errno
import logging
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import trio

from netaccess.proto.detect import MalformedFrame, Observation, dissect
from netaccess.proto.detect.bpf import CAPTURE_FILTER, packed_instructions

log = logging.getLogger("netaccess.capture")

ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33  # <asm-generic/socket.h>; Python does not export it
SOL_PACKET = 263
PACKET_STATISTICS = 6
FRAME_MAX = 65536
# Frames handled per wake-up before yielding, so a flood on one interface cannot starve the
# control socket or the other interfaces.
BURST = 256
READ_ERROR_BACKOFF = 1.0


class CaptureError(Exception):
    pass


@dataclass(slots=True)
class CaptureCounters:
    frames: int = 0
    observations: int = 0
    ignored: int = 0
    malformed: int = 0
    kernel_drops: int = 0
    malformed_by_reason: Counter[str] = field(default_factory=Counter)

    def view(self) -> dict[str, object]:
        return {
            "frames": self.frames,
            "observations": self.observations,
            "ignored": self.ignored,
            "malformed": self.malformed,
            "kernel_drops": self.kernel_drops,
            "malformed_by_reason": dict(self.malformed_by_reason),
        }


def open_capture_socket(ifname: str, receive_buffer: int) -> socket.socket:
    """A non-blocking AF_PACKET socket on `ifname` that sees only DHCP and ARP.

    Created with protocol 0 so it receives nothing until bound, and bound only after the
    filter is attached: no unfiltered frame can slip in between.
    """
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
    try:
        program = ctypes.create_string_buffer(packed_instructions())
        fprog = struct.pack("@HP", len(CAPTURE_FILTER), ctypes.addressof(program))
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, receive_buffer)
        except PermissionError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        try:
            sock.bind((ifname, ETH_P_ALL))  # CPython applies htons itself
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                raise CaptureError(f"access interface {ifname!r} does not exist") from None
            raise CaptureError(f"cannot capture on {ifname!r}: {exc.strerror}") from None
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def interface_mac(sock: socket.socket) -> str:
    return ":".join(f"{b:02x}" for b in sock.getsockname()[4][:6])


class Capture:
    """Reads one capture socket, dissects each frame and hands Observations to `sink`."""

    def __init__(
        self,
        ifname: str,
        sock: socket.socket,
        sink: Callable[[Sequence[Observation]], None],
        malformed_log_interval: float,
    ) -> None:
        self.ifname = ifname
        self.counters = CaptureCounters()
        self._sock = sock
        self._sink = sink
        self._log_interval = malformed_log_interval
        self._next_log = 0.0
        self._unlogged = 0

    def view(self) -> dict[str, object]:
        self._read_kernel_drops()
        return {"name": self.ifname, **self.counters.view()}

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            while True:
                await trio.lowlevel.wait_readable(self._sock)
                if self._drain_burst():
                    await trio.lowlevel.checkpoint()
                else:
                    # A read error (link down, device gone) may repeat on every wake-up:
                    # back off instead of spinning on it.
                    await trio.sleep(READ_ERROR_BACKOFF)
        finally:
            self._sock.close()

    def _drain_burst(self) -> bool:
        """Handle up to BURST frames; False when the socket reported an error."""
        now = time.time()
        found: list[Observation] = []
        counters = self.counters
        for _ in range(BURST):
            try:
                frame = self._sock.recv(FRAME_MAX)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                # The link went down or away: keep the task alive, it comes back on its own.
                log.warning("capture read failed", extra={"iface": self.ifname, "error": str(exc)})
                self._hand_over(found)
                return False
            counters.frames += 1
            try:
                obs = dissect(frame, now)
            except MalformedFrame as exc:
                counters.malformed += 1
                counters.malformed_by_reason[exc.reason] += 1
                self._log_malformed(exc, frame)
                continue
            if obs is None:
                counters.ignored += 1
            else:
                found.append(obs)
        self._hand_over(found)
        return True

    def _hand_over(self, found: list[Observation]) -> None:
        if found:
            self.counters.observations += len(found)
            self._sink(found)

    def _log_malformed(self, exc: MalformedFrame, frame: bytes) -> None:
        now = time.monotonic()
        if now < self._next_log:
            self._unlogged += 1
            return
        log.warning(
            "malformed frame",
            extra={
                "iface": self.ifname,
                "reason": exc.reason,
                "detail": exc.detail,
                "src": ":".join(f"{b:02x}" for b in frame[6:12]),
                "length": len(frame),
                "suppressed_since_last": self._unlogged,
                "malformed_total": self.counters.malformed,
            },
        )
        self._unlogged = 0
        self._next_log = now + self._log_interval

    def _read_kernel_drops(self) -> None:
        # PACKET_STATISTICS resets on read, so accumulate.
        try:
            raw = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        except OSError:
            return
        _packets, drops = struct.unpack("II", raw)
        self.counters.kernel_drops += drops
