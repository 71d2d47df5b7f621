"""Batched UDP datagrams: Linux's recvmmsg(2) and sendmmsg(2) through libc (ctypes).

Python's socket module makes one system call per datagram (recvfrom, sendto). Under load a
server's receive queue holds many requests at once; recvmmsg with MSG_WAITFORONE blocks
until one has come, then takes every other queued one in the same call (up to `slots`), and
sendmmsg sends the replies in one call. The memory is allocated once: `slots` receive
buffers and source addresses, and as many send buffers; the hot path reads and writes the
kernel's structures through memoryviews, never through ctypes objects.

`Batches.open(sock)` answers None where the calls are missing (not Linux, no libc, no
ctypes); OneAtATime gives the same two calls over recvfrom and sendto, so the caller has one
loop for both.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import socket
import sys
from typing import Any

MSG_WAITFORONE = 0x10000  # linux/socket.h
_SOCKADDR = 128  # sizeof(struct sockaddr_storage)
_NAMES = 4096  # source addresses remembered in their Python form


class _IoVec(ctypes.Structure):
    _fields_ = (("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t))


class _MsgHdr(ctypes.Structure):
    _fields_ = (
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.c_void_p),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    )


class _MMsgHdr(ctypes.Structure):
    _fields_ = (("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint32))


_STRIDE = ctypes.sizeof(_MMsgHdr)
_IOV_STRIDE = ctypes.sizeof(_IoVec)
# Offsets in the vector's uint32 and uint64 views (the layout is LP64's on every Linux
# target we run on; _layout_ok checks it before anything is used).
_LEN32 = _MMsgHdr.msg_len.offset // 4
_NAMELEN32 = _MsgHdr.msg_namelen.offset // 4
_NAME64 = _MsgHdr.msg_name.offset // 8
_IOVLEN64 = _IoVec.iov_len.offset // 8


def _layout_ok() -> bool:
    return (
        ctypes.sizeof(ctypes.c_void_p) == 8
        and _STRIDE % 8 == 0
        and _IOV_STRIDE == 16
        and _MMsgHdr.msg_len.offset % 4 == 0
        and _MsgHdr.msg_namelen.offset % 4 == 0
    )


def _libc() -> Any | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        recvmmsg, sendmmsg = libc.recvmmsg, libc.sendmmsg
    except (OSError, AttributeError):
        return None
    recvmmsg.argtypes = (
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_void_p,
    )
    recvmmsg.restype = ctypes.c_int
    sendmmsg.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int)
    sendmmsg.restype = ctypes.c_int
    return libc


_LIBC = _libc() if _layout_ok() else None


def _address(sockaddr: bytes) -> tuple[Any, ...]:
    """A struct sockaddr_in or sockaddr_in6 as Python's socket module reports it."""
    family = int.from_bytes(sockaddr[:2], sys.byteorder)
    port = int.from_bytes(sockaddr[2:4], "big")
    if family == socket.AF_INET:
        return (socket.inet_ntop(socket.AF_INET, sockaddr[4:8]), port)
    if family == socket.AF_INET6:
        flowinfo = int.from_bytes(sockaddr[4:8], "big")
        scope = int.from_bytes(sockaddr[24:28], sys.byteorder)
        host = socket.inet_ntop(socket.AF_INET6, sockaddr[8:24])
        return (host, port, flowinfo, scope)
    raise OSError(errno.EAFNOSUPPORT, f"datagram from address family {family}")


class Batches:
    """recvmmsg/sendmmsg on one datagram socket, `slots` datagrams of up to `size` octets at
    a time. One thread receives and sends through it (its buffers are reused per call)."""

    @classmethod
    def open(cls, sock: socket.socket, slots: int, size: int) -> Batches | None:
        if _LIBC is None or sock.type & 0xF != socket.SOCK_DGRAM:
            return None
        return cls(sock, slots, size)

    def __init__(self, sock: socket.socket, slots: int, size: int) -> None:
        assert _LIBC is not None  # open() answers None without it
        self._recvmmsg, self._sendmmsg = _LIBC.recvmmsg, _LIBC.sendmmsg
        self._fd = sock.fileno()
        self.slots, self.size = slots, size
        self._names_seen: dict[bytes, tuple[Any, ...]] = {}
        self._namelen = [0] * slots  # each slot's source length, from the last receive
        # Receive side: vector, one iovec and buffer and sockaddr per slot.
        self._rvec = bytearray(_STRIDE * slots)
        self._riov = bytearray(_IOV_STRIDE * slots)
        self._rdata = bytearray(size * slots)
        self._rname = bytearray(_SOCKADDR * slots)
        # Send side: vector, iovecs and buffers; each entry's name points at the receive
        # slot whose source it answers, set per reply.
        self._svec = bytearray(_STRIDE * slots)
        self._siov = bytearray(_IOV_STRIDE * slots)
        self._sdata = bytearray(size * slots)
        rvec, riov = self._struct(_MMsgHdr, self._rvec), self._struct(_IoVec, self._riov)
        svec, siov = self._struct(_MMsgHdr, self._svec), self._struct(_IoVec, self._siov)
        rdata, rname, sdata = self._at(self._rdata), self._at(self._rname), self._at(self._sdata)
        self._name_at = [rname + slot * _SOCKADDR for slot in range(slots)]
        for slot in range(slots):
            riov[slot].iov_base, riov[slot].iov_len = rdata + slot * size, size
            rvec[slot].msg_hdr.msg_name = self._name_at[slot]
            rvec[slot].msg_hdr.msg_namelen = _SOCKADDR
            rvec[slot].msg_hdr.msg_iov = self._at(self._riov) + slot * _IOV_STRIDE
            rvec[slot].msg_hdr.msg_iovlen = 1
            siov[slot].iov_base = sdata + slot * size
            svec[slot].msg_hdr.msg_iov = self._at(self._siov) + slot * _IOV_STRIDE
            svec[slot].msg_hdr.msg_iovlen = 1
        self._rvec_at, self._svec_at = self._at(self._rvec), self._at(self._svec)
        self._r32 = memoryview(self._rvec).cast("I")
        self._s32 = memoryview(self._svec).cast("I")
        self._s64 = memoryview(self._svec).cast("Q")
        self._siov64 = memoryview(self._siov).cast("Q")
        self._rdata_view = memoryview(self._rdata)
        self._rname_view = memoryview(self._rname)
        self._sdata_view = memoryview(self._sdata)

    @staticmethod
    def _struct(kind: type[ctypes.Structure], buffer: bytearray) -> Any:
        return (kind * (len(buffer) // ctypes.sizeof(kind))).from_buffer(buffer)

    @staticmethod
    def _at(buffer: bytearray) -> int:
        return ctypes.addressof(ctypes.c_char.from_buffer(buffer))

    def receive(self) -> list[tuple[bytes, tuple[Any, ...] | None]]:
        """Block until a datagram is queued, then take it and every other one queued (up to
        `slots`): (data, source) each, in arrival order. A socket shut down for reading
        answers [(b"", None)], as recvfrom does. Raises OSError as recvfrom would."""
        while True:
            count = self._recvmmsg(self._fd, self._rvec_at, self.slots, MSG_WAITFORONE, None)
            if count >= 0:
                break
            code = ctypes.get_errno()
            if code != errno.EINTR:
                raise OSError(code, os.strerror(code))
        r32, data, names, seen = self._r32, self._rdata_view, self._rname_view, self._names_seen
        namelens = self._namelen
        size, words = self.size, _STRIDE // 4
        out: list[tuple[bytes, tuple[Any, ...] | None]] = []
        for slot in range(count):
            base = slot * words
            # The kernel wrote back its length, the same for every datagram on one socket
            # (sockaddr_in, or sockaddr_in6 on an IPv6 socket, v4-mapped included).
            namelen = namelens[slot] = r32[base + _NAMELEN32]
            if not namelen:  # shut down: no source, and the slot's room is given back
                r32[base + _NAMELEN32] = _SOCKADDR
                out.append((b"", None))
                continue
            name = bytes(names[slot * _SOCKADDR : slot * _SOCKADDR + namelen])
            source = seen.get(name)
            if source is None:
                if len(seen) >= _NAMES:
                    seen.clear()
                source = seen[name] = _address(name)
            start = slot * size
            out.append((bytes(data[start : start + r32[base + _LEN32]]), source))
        if not count:
            out.append((b"", None))
        return out

    def send(self, replies: list[tuple[int, bytes]]) -> list[tuple[int, OSError]]:
        """Send each (slot, reply) to the source of the datagram the last receive put in
        that slot, in as few calls as the kernel allows (one, normally). Answers the replies
        it could not send, each with its error, as sendto would have raised it."""
        s32, s64, iov64, data = self._s32, self._s64, self._siov64, self._sdata_view
        names, namelens, size = self._name_at, self._namelen, self.size
        words, quads = _STRIDE // 4, _STRIDE // 8
        failed: list[tuple[int, OSError]] = []
        order: list[int] = []
        for slot, reply in replies:
            length = len(reply)
            if length > size:
                failed.append((slot, OSError(errno.EMSGSIZE, os.strerror(errno.EMSGSIZE))))
                continue
            entry = len(order)
            s64[entry * quads + _NAME64] = names[slot]
            s32[entry * words + _NAMELEN32] = namelens[slot]
            iov64[entry * 2 + _IOVLEN64] = length
            data[entry * size : entry * size + length] = reply
            order.append(slot)
        done, entries = 0, len(order)
        while done < entries:
            sent = self._sendmmsg(self._fd, self._svec_at + done * _STRIDE, entries - done, 0)
            if sent > 0:
                done += sent
                continue
            code = ctypes.get_errno() if sent < 0 else errno.EIO
            if code == errno.EINTR:
                continue
            failed.append((order[done], OSError(code, os.strerror(code))))
            done += 1  # that one failed; the rest still go
        return failed


class OneAtATime:
    """Batches' receive and send over recvfrom and sendto, one datagram per call: where
    recvmmsg is missing."""

    def __init__(self, sock: socket.socket, size: int) -> None:
        self._recvfrom, self._sendto, self._size = sock.recvfrom, sock.sendto, size
        self._source: tuple[Any, ...] | None = None

    def receive(self) -> list[tuple[bytes, tuple[Any, ...] | None]]:
        data, self._source = self._recvfrom(self._size)
        return [(data, self._source)]

    def send(self, replies: list[tuple[int, bytes]]) -> list[tuple[int, OSError]]:
        failed: list[tuple[int, OSError]] = []
        source = self._source
        for slot, reply in replies:
            try:
                if source is None:  # nothing received to answer
                    raise OSError(errno.EDESTADDRREQ, os.strerror(errno.EDESTADDRREQ))
                self._sendto(reply, source)
            except OSError as exc:
                failed.append((slot, exc))
        return failed
