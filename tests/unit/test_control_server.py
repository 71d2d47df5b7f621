"""The control server over a real Unix socket in a temp dir, driven by the CLI's client."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import trio

from appliance.client import ControlClient, DaemonRefused, DaemonUnreachable
from netaccess.control import ErrorCode, Request, Response
from netaccess.io.control_server import (
    ControlServer,
    ControlSocketError,
    PeerCredentials,
    PeerPolicy,
)


async def echo_handler(request: Request) -> Response:
    if request.op == "endpoints.show":
        return Response.failure(request.id, ErrorCode.NOT_FOUND, "no such endpoint")
    return Response.success(request.id, {"op": request.op, "args": request.args})


async def call(path: Path, op: str, **args: object) -> object:
    return await trio.to_thread.run_sync(lambda: ControlClient(path, timeout=5).call(op, **args))


async def test_server_answers_requests_from_root(tmp_path: Path) -> None:
    path = tmp_path / "run" / "control.sock"
    async with trio.open_nursery() as nursery:
        await nursery.start(ControlServer(path, PeerPolicy("netaccess-admin"), echo_handler).run)
        assert await call(path, "status") == {"op": "status", "args": {}}
        nursery.cancel_scope.cancel()
    assert not path.exists()


async def test_socket_is_not_world_accessible(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    async with trio.open_nursery() as nursery:
        await nursery.start(ControlServer(path, PeerPolicy("netaccess-admin"), echo_handler).run)
        assert path.stat().st_mode & 0o007 == 0
        nursery.cancel_scope.cancel()


async def test_error_responses_reach_the_client_with_their_code(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    async with trio.open_nursery() as nursery:
        await nursery.start(ControlServer(path, PeerPolicy("netaccess-admin"), echo_handler).run)
        with pytest.raises(DaemonRefused) as err:
            await call(path, "endpoints.show", mac="02:4e:41:00:00:01")
        assert err.value.code is ErrorCode.NOT_FOUND
        nursery.cancel_scope.cancel()


async def test_a_live_daemon_socket_is_never_stolen(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    async with trio.open_nursery() as nursery:
        await nursery.start(ControlServer(path, PeerPolicy("netaccess-admin"), echo_handler).run)
        with pytest.raises(ControlSocketError, match="another netaccessd"):
            await ControlServer(path, PeerPolicy("netaccess-admin"), echo_handler).run()
        nursery.cancel_scope.cancel()


async def test_a_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens
    async with trio.open_nursery() as nursery:
        await nursery.start(ControlServer(path, PeerPolicy("netaccess-admin"), echo_handler).run)
        assert await call(path, "status") == {"op": "status", "args": {}}
        nursery.cancel_scope.cancel()


async def test_garbage_on_the_socket_gets_an_error_line_and_the_server_lives_on(
    tmp_path: Path,
) -> None:
    path = tmp_path / "control.sock"
    async with trio.open_nursery() as nursery:
        await nursery.start(ControlServer(path, PeerPolicy("netaccess-admin"), echo_handler).run)
        stream = await trio.open_unix_socket(str(path))
        await stream.send_all(b"\x00\xffnot json\n")
        answer = await stream.receive_some(4096)
        await stream.aclose()
        assert b'"bad-request"' in answer
        assert await call(path, "status") == {"op": "status", "args": {}}
        nursery.cancel_scope.cancel()


def test_client_reports_an_unreachable_daemon_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(DaemonUnreachable, match=r"cannot reach netaccessd at .*control\.sock"):
        ControlClient(tmp_path / "control.sock").call("status")


def test_peer_policy_admits_root_and_refuses_a_stranger() -> None:
    policy = PeerPolicy("no-such-group-on-this-box")
    assert policy.allows(PeerCredentials(pid=1, uid=0, gid=0))
    assert not policy.allows(PeerCredentials(pid=os.getpid(), uid=65534, gid=65534))
