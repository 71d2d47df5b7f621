"""The daemon side of the control socket: a Unix stream listener, peers checked by SO_PEERCRED."""

from __future__ import annotations

import contextlib
import grp
import logging
import os
import pwd
import socket
import stat
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import trio

from netaccess.control import (
    ControlError,
    ErrorCode,
    LineDecoder,
    Request,
    Response,
    decode_request,
    encode,
)

log = logging.getLogger("netaccess.control")

IDLE_TIMEOUT = 60.0
MAX_CONNECTIONS = 32
MAX_REQUEST = 64 * 1024

Handler = Callable[[Request], Awaitable[Response]]


class ControlSocketError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class PeerCredentials:
    pid: int
    uid: int
    gid: int


def peer_credentials(sock: trio.socket.SocketType) -> PeerCredentials:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return PeerCredentials(*struct.unpack("3i", raw))


class PeerPolicy:
    """Who may drive the daemon: root, the daemon's own user, and members of the admin group."""

    def __init__(self, admin_group: str) -> None:
        self.admin_group = admin_group
        try:
            entry = grp.getgrnam(admin_group)
        except KeyError:
            self._gid: int | None = None
            self._members: frozenset[str] = frozenset()
        else:
            self._gid = entry.gr_gid
            self._members = frozenset(entry.gr_mem)

    @property
    def group_id(self) -> int | None:
        return self._gid

    def allows(self, peer: PeerCredentials) -> bool:
        if peer.uid in (0, os.geteuid()):
            return True
        if self._gid is None:
            return False
        if peer.gid == self._gid or self._gid in _process_groups(peer.pid):
            return True
        try:
            return pwd.getpwuid(peer.uid).pw_name in self._members
        except KeyError:
            return False


def _process_groups(pid: int) -> set[int]:
    # SO_PEERCRED carries only the primary gid; the supplementary groups are in /proc.
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("Groups:"):
                    return {int(g) for g in line.split()[1:]}
    except OSError:
        pass
    return set()


async def bind_control_socket(path: Path, policy: PeerPolicy) -> trio.socket.SocketType:
    """Bind and listen, refusing to steal the socket of a daemon that is still alive."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise ControlSocketError(f"{path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # stale socket of a daemon that died
        else:
            raise ControlSocketError(f"another netaccessd is serving {path}")
        finally:
            probe.close()
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # The socket is created 0660 from the start: no window where anyone may connect.
    old_umask = os.umask(0o117)
    try:
        await sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise ControlSocketError(f"cannot bind {path}: {exc.strerror}") from None
    finally:
        os.umask(old_umask)
    if policy.group_id is not None:
        try:
            # Unprivileged, this works when the daemon's user is in the admin group (sysusers).
            os.chown(path, -1, policy.group_id)
        except PermissionError:
            log.warning(
                "control socket not handed to the admin group; only root can use it",
                extra={"socket": str(path), "group": policy.admin_group},
            )
    sock.listen(MAX_CONNECTIONS)
    return sock


class ControlServer:
    def __init__(self, path: Path, policy: PeerPolicy, handler: Handler) -> None:
        self.path = path
        self._policy = policy
        self._handler = handler
        self._slots = trio.CapacityLimiter(MAX_CONNECTIONS)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        sock = await bind_control_socket(self.path, self._policy)
        inode = self.path.stat().st_ino
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                while True:
                    # Over the cap, new peers wait in the listen backlog instead of being served.
                    slot = object()
                    await self._slots.acquire_on_behalf_of(slot)
                    try:
                        conn, _ = await sock.accept()
                    except BaseException:
                        self._slots.release_on_behalf_of(slot)
                        raise
                    nursery.start_soon(self._serve_peer, conn, slot)
        finally:
            sock.close()
            with contextlib.suppress(OSError):
                if self.path.stat().st_ino == inode:
                    self.path.unlink()

    async def _serve_peer(self, conn: trio.socket.SocketType, slot: object) -> None:
        stream = trio.SocketStream(conn)
        try:
            peer = peer_credentials(conn)
            if self._policy.allows(peer):
                await self._converse(stream)
            else:
                log.warning(
                    "control peer refused", extra={"peer_uid": peer.uid, "peer_pid": peer.pid}
                )
                refusal = Response.failure(
                    0,
                    ErrorCode.FORBIDDEN,
                    f"uid {peer.uid} is neither root nor in group {self._policy.admin_group!r}",
                )
                with trio.move_on_after(1):
                    await stream.send_all(encode(refusal))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            self._slots.release_on_behalf_of(slot)
            await trio.aclose_forcefully(stream)

    async def _converse(self, stream: trio.SocketStream) -> None:
        decoder = LineDecoder(MAX_REQUEST)
        while True:
            data = b""
            with trio.move_on_after(IDLE_TIMEOUT):
                data = await stream.receive_some(65536)
            if not data:
                return
            try:
                lines = decoder.feed(data)
            except ControlError as exc:
                await stream.send_all(encode(Response.failure(0, exc.code, exc.message)))
                return
            for line in lines:
                await stream.send_all(encode(await self._answer(line)))

    async def _answer(self, line: bytes) -> Response:
        try:
            request = decode_request(line)
        except ControlError as exc:
            return Response.failure(0, exc.code, exc.message)
        try:
            return await self._handler(request)
        except ControlError as exc:
            return Response.failure(request.id, exc.code, exc.message)
        except Exception:
            log.exception("control request failed", extra={"op": request.op})
            return Response.failure(
                request.id, ErrorCode.INTERNAL, "internal error; see the daemon log"
            )
