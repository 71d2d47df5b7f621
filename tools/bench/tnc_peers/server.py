"""Benchmark peer: netaccess's PT-TLS posture server (netaccess.io.posture) on 127.0.0.1:PORT,
as netaccessd runs it: the built-in OS IMV asking for Installed Packages, reports kept in a
SQLite store file, JSON-lines logging at info. Started by tools/bench/tnc.py.

Writes READY to --ready once listening; on SIGTERM it stops, keeps the queued reports and
prints one JSON line with its counters."""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import trio

from netaccess.config.model import PostureConfig
from netaccess.io import jsonlog
from netaccess.io.http_server import SocketListener, TlsListener
from netaccess.io.posture import PostureServer
from netaccess.io.startup import tune_gc
from netaccess.io.tls import posture_context
from netaccess.policy.imv_os import OsImv
from netaccess.store import Store

BACKLOG = 1024


async def serve(args: argparse.Namespace) -> dict[str, int]:
    # Bound and listening before trio sees it, as the enforcer hands netaccessd its sockets.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(BACKLOG)
    listener = TlsListener(SocketListener(sock), posture_context(args.cert, args.key))
    store = Store.open(args.store)
    tune_gc()  # as netaccessd does once it has started
    try:
        server = PostureServer(
            PostureConfig(),
            store,
            lambda: [OsImv(request_packages=True)],
            lambda ip: None,  # no inventory here: reports carry the IP alone
        )
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(server.serve, [listener])
                args.ready.write_text("READY\n")
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break
        return {
            "sessions": server.sessions,
            "refused": server.refused,
            "reports_written": server.reports_written,
        }
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--store", type=Path, required=True, help="SQLite file for reports")
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--ready", type=Path, required=True, help="written once listening")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    jsonlog.setup(args.log_level)
    counters = trio.run(serve, args)
    print(json.dumps(counters), flush=True)


if __name__ == "__main__":
    main()
