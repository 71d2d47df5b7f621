"""netaccess's RADIUS service for the race: netaccess.io.radius.RadiusServer, the object
netaccessd runs, with its own inventory in a temporary store, on loopback. Prints "ready"
once both its ports are bound; stops on SIGTERM and prints its counters as JSON.

With --eap-certificate, --eap-key and --eap-user REALM/USER:PASSWORD it serves 802.1X as
netaccessd does: EAP-TTLS with that certificate, the user in the store (its scrypt hash),
and an admission keeper for the sign-ins."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import trio

from netaccess.config import DEFAULT_CONFIG_TEXT, ApplianceConfig, load_config_text
from netaccess.config.radius_dictionary import standard_dictionary
from netaccess.io.admission import AdmissionKeeper
from netaccess.io.eap_tls import EapTls
from netaccess.io.inventory import Inventory
from netaccess.io.radius import RadiusServer
from netaccess.io.startup import tune_gc
from netaccess.policy.credentials import hash_password
from netaccess.store import Store


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--auth-port", type=int, required=True)
    parser.add_argument("--acct-port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--eap-certificate", type=Path)
    parser.add_argument("--eap-key", type=Path)
    parser.add_argument("--eap-user", help="REALM/USER:PASSWORD")
    args = parser.parse_args()
    text = DEFAULT_CONFIG_TEXT.replace('address = "::"', 'address = "127.0.0.1"', 1)
    text = text.replace("auth_port = 1812", f"auth_port = {args.auth_port}", 1)
    text = text.replace("acct_port = 1813", f"acct_port = {args.acct_port}", 1)
    text += '[[radius.clients]]\nname = "bench"\naddress = "127.0.0.1"\nsecret = "bench"\n'
    config = load_config_text(text, "<radius bench>")
    secret = args.secret.encode()
    eap = None
    if args.eap_certificate and args.eap_key and args.eap_user:
        eap = (args.eap_certificate, args.eap_key, args.eap_user)
    trio.run(serve, config, secret, eap)


async def serve(config: ApplianceConfig, secret: bytes, eap: tuple[Path, Path, str] | None) -> None:
    with tempfile.TemporaryDirectory(prefix="na-radius-bench-") as work:
        store = Store.open(Path(work) / "netaccess.db")
        store.serialize_with(threading.Lock())  # as netaccessd: threads share the store
        try:
            inventory = Inventory(store, store.load_endpoints())
            admissions = tls = None
            if eap is not None:
                certificate, key, login = eap
                name, _, password = login.partition(":")
                realm, _, user = name.partition("/")
                store.add_user(realm, user, hash_password(password), time.time())
                admissions = AdmissionKeeper(config, store, inventory, lambda: None)
                tls = EapTls(certificate, key, None)
            server = RadiusServer(
                config,
                inventory,
                standard_dictionary(),
                {"bench": secret}.get,
                store=store,
                admissions=admissions,
                eap=tls,
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
