"""netaccess's RADIUS service for the race: netaccess.io.radius.RadiusServer, the object
netaccessd runs, with its own inventory in a temporary store, on loopback. Prints "ready"
once both its ports are bound; stops on SIGTERM and prints its counters as JSON."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
from pathlib import Path

import trio

from netaccess.config import DEFAULT_CONFIG_TEXT, load_config_text
from netaccess.config.radius_dictionary import standard_dictionary
from netaccess.io.inventory import Inventory
from netaccess.io.radius import RadiusServer
from netaccess.io.startup import tune_gc
from netaccess.store import Store


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--auth-port", type=int, required=True)
    parser.add_argument("--acct-port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    args = parser.parse_args()
    text = DEFAULT_CONFIG_TEXT.replace('address = "::"', 'address = "127.0.0.1"', 1)
    text = text.replace("auth_port = 1812", f"auth_port = {args.auth_port}", 1)
    text = text.replace("acct_port = 1813", f"acct_port = {args.acct_port}", 1)
    text += '[[radius.clients]]\nname = "bench"\naddress = "127.0.0.1"\nsecret = "bench"\n'
    config = load_config_text(text, "<radius bench>")
    secret = args.secret.encode()
    trio.run(serve, config, secret)


async def serve(config: object, secret: bytes) -> None:
    with tempfile.TemporaryDirectory(prefix="na-radius-bench-") as work:
        store = Store.open(Path(work) / "netaccess.db")
        try:
            inventory = Inventory(store, store.load_endpoints())
            server = RadiusServer(
                config,  # type: ignore[arg-type]
                inventory,
                standard_dictionary(),
                {"bench": secret}.get,
            )
            tune_gc()
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async with trio.open_nursery() as nursery:
                    await nursery.start(inventory.run_writer)
                    await nursery.start(server.serve)
                    print("ready", flush=True)
                    async for _ in signals:
                        break
                    nursery.cancel_scope.cancel()
            await inventory.flush()
            print(json.dumps({"counters": dict(server.counters), "endpoints": len(inventory)}))
        finally:
            store.close()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
