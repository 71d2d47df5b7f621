"""Benchmark peer: netaccess's own portal HTTP server (trio + h11) on 127.0.0.1:PORT, answering
every request as the portal answers a captive endpoint. Started by tools/bench/portal.py."""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import trio

from netaccess.io.http_server import HttpServer, HttpTimeouts, Peer, open_listeners
from netaccess.io.startup import tune_gc
from netaccess.proto.http import Request, Response, captive_redirect

LOGIN_URL = "https://portal.netaccess.test/login"
BACKLOG = 1024


async def answer(request: Request, peer: Peer) -> Response:
    return captive_redirect(request, LOGIN_URL)


async def serve(port: int, idle: float) -> None:
    # Bound and listening before trio sees it, as the enforcer hands the daemon its sockets.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(BACKLOG)
    listeners = open_listeners([sock])
    tune_gc()  # as netaccessd does once it has started
    server = HttpServer(
        answer,
        name="portal-bench",
        timeouts=HttpTimeouts(idle=idle),
        max_connections=20_000,
    )
    await server.serve(listeners)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=600.0,
        help="seconds a kept-alive connection may idle (long: the idle-connection measurement)",
    )
    args = parser.parse_args()
    trio.run(serve, args.port, args.idle_timeout)


if __name__ == "__main__":
    main()
