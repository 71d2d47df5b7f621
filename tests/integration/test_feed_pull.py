"""The timed patch feed pull in the lab: the real netaccessd in the appliance namespace pulls a
signed feed from an HTTP server in the upstream namespace (198.19.0.2:8080), and the real
`appliance patches` CLI shows what it kept, what it refused, and that it kept serving."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.appliance_cli import APPLIANCE, cli, cli_json, write_config
from tests.unit.test_feed import KEY, OTHER_KEY, encode, feed_document, public_raw, sign

pytestmark = pytest.mark.integration

SERVER_IP = "198.19.0.2"  # the upstream web server's address; up-www has port 80
PORT = 8080
V1, V2, V3 = 2026112317, 2026112318, 2026112319
TIMEOUT = 2  # patch_feed.timeout in these labs, seconds

# Serves FEED_DIR/feed.json and feed.json.sig with a strong ETag (If-None-Match -> 304);
# FEED_DIR/mode "hang" makes it accept a request and never answer. Every request is logged
# to FEED_DIR/requests.log as a JSON line.
SERVER = r"""
import hashlib, http.server, json, sys, time
from pathlib import Path

root = Path(sys.argv[1])

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        mode = (root / "mode").read_text().strip() if (root / "mode").exists() else "serve"
        asked = self.headers.get("If-None-Match")
        with open(root / "requests.log", "a") as log:
            log.write(json.dumps({"path": self.path, "if_none_match": asked}) + "\n")
        if mode == "hang":
            time.sleep(3600)
            return
        name = self.path.lstrip("/")
        try:
            body = (root / name).read_bytes()
        except OSError:
            self.send_error(404)
            return
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        if asked == etag:
            self.send_response(304)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("ETag", etag)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

server = http.server.ThreadingHTTPServer((sys.argv[2], int(sys.argv[3])), Handler)
server.daemon_threads = True
(root / "ready").touch()
server.serve_forever()
"""


def publish(directory: Path, data: bytes, signature: bytes) -> None:
    (directory / "feed.json").write_bytes(data)
    (directory / "feed.json.sig").write_bytes(signature)


def signed_feed(version: int, key: Any = KEY) -> tuple[bytes, bytes]:
    data = encode(feed_document(version, expires="2099-01-01T00:00:00Z"))
    return data, sign(key, data)


class FeedLab:
    """A lab whose appliance pulls from a feed server in the upstream namespace."""

    def __init__(self, lab: Any, served: Path) -> None:
        self.lab = lab
        self.served = served
        self.base = lab.workdir / "appliance"

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = cli_json(self.base, "patches", "status")
        return result

    def pull(self) -> subprocess.CompletedProcess[str]:
        return cli(self.base, "patches", "pull", check=False)

    def wait_for_version(self, version: int, timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            shown = self.status()
            if shown["feed"] is not None and shown["feed"]["version"] == version:
                return shown
            assert time.monotonic() < deadline, f"feed version {version} never came: {shown}"
            time.sleep(0.1)

    def requests(self) -> list[dict[str, Any]]:
        lines = (self.served / "requests.log").read_text().splitlines()
        return [json.loads(line) for line in lines]

    def serve(self, mode: str) -> None:
        (self.served / "mode").write_text(mode)


@pytest.fixture
def feed_lab(lab_factory: Any) -> Iterator[FeedLab]:
    """A lab with the feed server up (serving version V1) and the appliance pulling from it."""
    lab = lab_factory(endpoints=1)
    lab.up(appliance=False, dhcp_clients=False)
    served = lab.workdir / "feed-server"
    served.mkdir()
    publish(served, *signed_feed(V1))
    script = lab.workdir / "feed_server.py"
    script.write_text(SERVER)
    with (lab.workdir / "feed-server.log").open("wb") as log:
        argv = [sys.executable, str(script), str(served), SERVER_IP, str(PORT)]
        server = subprocess.Popen(
            ["ip", "netns", "exec", lab.up_ns, *argv],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        deadline = time.monotonic() + 10
        while not (served / "ready").exists():
            assert server.poll() is None, "the feed server exited"
            assert time.monotonic() < deadline, "the feed server never started"
            time.sleep(0.02)
        trusted = json.dumps([base64.b64encode(public_raw(KEY)).decode()])
        extra = (
            f"\n[patch_feed]\ntrusted_keys = {trusted}\n"
            f'url = "http://{SERVER_IP}:{PORT}/feed.json"\n'
            f"interval = 60\ntimeout = {TIMEOUT}\n"
        )
        lab.start_appliance(write_config(lab.workdir / "appliance", extra))
        yield FeedLab(lab, served)
    finally:
        server.kill()
        server.wait(10)


def test_a_signed_feed_is_pulled_at_start_and_shown(feed_lab: FeedLab) -> None:
    shown = feed_lab.wait_for_version(V1)
    assert shown["feed"]["products"] == 2 and shown["feed"]["patches"] == 3
    assert shown["feed"]["via"] == "pull" and shown["feed"]["expired"] is False
    assert shown["pull"]["url"] == f"http://{SERVER_IP}:{PORT}/feed.json"
    assert shown["pull"]["signature_url"] == f"http://{SERVER_IP}:{PORT}/feed.json.sig"
    assert shown["pull"]["last"]["result"] == "accepted"
    assert shown["rejections"] == []


def test_a_newer_feed_replaces_it_and_an_unchanged_one_costs_a_304(feed_lab: FeedLab) -> None:
    feed_lab.wait_for_version(V1)
    unchanged = feed_lab.pull()
    assert (unchanged.returncode, unchanged.stdout) == (
        0,
        "not-modified: the feed has not changed\n",
    )
    first, again = feed_lab.requests()[0], feed_lab.requests()[-1]
    assert first["if_none_match"] is None and again["if_none_match"] is not None
    assert feed_lab.status()["feed"]["version"] == V1

    publish(feed_lab.served, *signed_feed(V2))
    newer = feed_lab.pull()
    assert (newer.returncode, newer.stdout) == (0, f"accepted: version {V2}\n")
    assert feed_lab.status()["feed"]["version"] == V2


def test_a_server_that_hangs_times_out_while_the_daemon_keeps_serving(feed_lab: FeedLab) -> None:
    feed_lab.wait_for_version(V1)
    publish(feed_lab.served, *signed_feed(V2))
    feed_lab.serve("hang")
    socket = str(feed_lab.base / "run" / "control.sock")
    pulling = subprocess.Popen(
        [*APPLIANCE, "--socket", socket, "patches", "pull"], stdout=subprocess.PIPE, text=True
    )
    try:
        time.sleep(0.3)  # the pull is waiting for an answer now
        started = time.monotonic()
        assert cli_json(feed_lab.base, "status")["pid"] > 0
        assert feed_lab.status()["feed"]["version"] == V1
        assert time.monotonic() - started < TIMEOUT / 2
        out, _ = pulling.communicate(timeout=TIMEOUT + 10)
    finally:
        pulling.kill()
    assert pulling.returncode == 1
    assert out == (
        f"failed: http://{SERVER_IP}:{PORT}/feed.json: no complete answer within {TIMEOUT} s\n"
    )
    shown = feed_lab.status()
    assert (shown["feed"]["version"], shown["pull"]["last"]["result"]) == (V1, "failed")
    assert shown["rejections"][0]["kind"] == "fetch"


def test_garbage_bad_signatures_and_rollbacks_are_refused_and_listed(feed_lab: FeedLab) -> None:
    feed_lab.wait_for_version(V1)
    publish(feed_lab.served, *signed_feed(V2))
    assert feed_lab.pull().returncode == 0
    garbage = b"\x00\x01 this is not a feed \xff"
    bad = {
        "schema": (garbage, sign(KEY, garbage)),  # signed by the trusted key, yet garbage
        "signature": signed_feed(V3, OTHER_KEY),
        "rollback": signed_feed(V1),
    }
    for kind, (data, signature) in bad.items():
        publish(feed_lab.served, data, signature)
        refused = feed_lab.pull()
        assert refused.returncode == 1 and refused.stdout.startswith(f"rejected: {kind}: ")
        shown = feed_lab.status()
        assert shown["feed"]["version"] == V2
        assert shown["rejections"][0]["kind"] == kind
    assert [r["kind"] for r in feed_lab.status()["rejections"]] == [
        "rollback",
        "signature",
        "schema",
    ]


def test_a_feed_imported_by_hand_goes_through_the_same_checks(feed_lab: FeedLab) -> None:
    feed_lab.wait_for_version(V1)
    imports = feed_lab.base / "imports"
    imports.mkdir()
    imports.chmod(0o755)
    for name, (data, signature) in {"old": signed_feed(V1), "new": signed_feed(V3)}.items():
        (imports / f"{name}.json").write_bytes(data)
        (imports / f"{name}.json.sig").write_bytes(signature)
    refused = cli(feed_lab.base, "patches", "import", str(imports / "old.json"), check=False)
    assert refused.returncode == 2
    assert f"feed refused (rollback): version {V1} is not newer than {V1}" in refused.stderr
    accepted = cli(feed_lab.base, "patches", "import", str(imports / "new.json"))
    assert accepted.stdout.startswith(f"patch feed version {V3} accepted: 2 products, 3 patches")
    shown = feed_lab.status()
    assert (shown["feed"]["version"], shown["feed"]["via"]) == (V3, "import")
