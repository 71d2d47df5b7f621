"""The captive portal from an endpoint's side, in the lab: real curl in endpoint namespaces,
the real netaccessd and enforcer, the lab's DNS and DHCP."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.integration.appliance_cli import cli, cli_json, write_config

pytestmark = pytest.mark.integration

LOGIN = "https://portal.netaccess.test/login"
PROBES = (
    "http://connectivitycheck.gstatic.com/generate_204",
    "http://captive.apple.com/hotspot-detect.html",
    "http://www.msftconnecttest.com/connecttest.txt",
    "http://www.msftconnecttest.com/ncsi.txt",
    "http://detectportal.firefox.com/success.txt",
)


@pytest.fixture
def lab(lab_factory: Any) -> Any:
    built = lab_factory(endpoints=2)
    built.up(config=write_config(built.workdir / "appliance"))
    built.wait_for_leases(30)
    deadline = time.monotonic() + 10
    while len(cli_json(built.workdir / "appliance", "endpoints", "list")) < 2:
        assert time.monotonic() < deadline, "endpoints never listed"
        time.sleep(0.05)
    return built


def fetch(lab: Any, endpoint: int, url: str) -> tuple[int, str, str]:
    """(status, Location, Cache-Control) of a GET from ep<endpoint>, redirects not followed."""
    out = lab.exec(
        f"ep{endpoint}",
        [
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "--max-time",
            "5",
            "-w",
            "%{http_code} %{redirect_url} %header{cache-control}",
            url,
        ],
        capture_output=True,
        text=True,
    )
    status, location, cache_control = [*out.stdout.split(" ", 2), "", ""][:3]
    return int(status or 0), location, cache_control


def test_any_http_url_of_a_captive_endpoint_is_sent_to_the_login_page(lab: Any) -> None:
    status, location, cache_control = fetch(lab, 1, "http://www.corp.test/some/page?x=1")
    assert status == 302
    assert location == f"{LOGIN}?next=http%3A%2F%2Fwww.corp.test%2Fsome%2Fpage%3Fx%3D1"
    assert "no-store" in cache_control


@pytest.mark.parametrize("probe", PROBES)
def test_each_systems_connectivity_probe_is_sent_to_the_login_page(lab: Any, probe: str) -> None:
    status, location, _ = fetch(lab, 1, probe)
    assert (status, location.split("?")[0]) == (302, LOGIN)


def test_an_admitted_endpoints_probe_is_never_redirected(lab: Any) -> None:
    mac = lab.endpoint_mac(1)
    cli(lab.workdir / "appliance", "endpoints", "set-role", mac, "full", "--reason", "test")
    deadline = time.monotonic() + 5
    while (result := fetch(lab, 1, PROBES[0]))[0] == 302:
        assert time.monotonic() < deadline, f"still redirected: {result}"
        time.sleep(0.1)
    assert LOGIN not in result[1]
    assert fetch(lab, 2, PROBES[0])[0] == 302  # its quarantined neighbour still is


def test_a_portal_page_over_plain_http_moves_to_https(lab: Any) -> None:
    status, location, _ = fetch(lab, 1, "http://portal.netaccess.test/status")
    assert (status, location) == (302, "https://portal.netaccess.test/status")


# -- HTTPS: the captive API and the realm sign-in -----------------------------------------------

PASSWORD = "correct horse battery"
UPSTREAM_PAGE = "corp.test web server"


def https(lab: Any, endpoint: int, path: str, *extra: str) -> tuple[int, str]:
    """(status, body) of an HTTPS request from ep<endpoint> to the portal, checking the
    portal's certificate against the one the appliance made; cookies kept per endpoint."""
    base = lab.workdir / "appliance"
    jar = lab.workdir / f"cookies-ep{endpoint}"
    out = lab.exec(
        f"ep{endpoint}",
        [
            "curl",
            "-sS",
            "--max-time",
            "10",
            "--cacert",
            str(base / "state" / "tls" / "portal.crt"),
            "-b",
            str(jar),
            "-c",
            str(jar),
            "-w",
            "\n%{http_code}",
            *extra,
            f"https://portal.netaccess.test{path}",
        ],
        capture_output=True,
        text=True,
    )
    body, _, status = out.stdout.rpartition("\n")
    assert status.isdigit(), f"curl failed: {out.stderr}"
    return int(status), body


def sign_in(lab: Any, endpoint: int, user: str, password: str) -> tuple[int, str]:
    status, page = https(lab, endpoint, "/login")
    assert status == 200, page
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, page
    form = urlencode({"csrf": match[1], "realm": "staff", "username": user, "password": password})
    return https(lab, endpoint, "/login", "--data", form)


def add_user(lab: Any, user: str, password: str) -> None:
    cli(
        lab.workdir / "appliance",
        "users",
        "add",
        "staff",
        user,
        "--password-stdin",
        input=password + "\n",
    )


def captive_state(lab: Any, endpoint: int) -> dict[str, Any]:
    status, body = https(lab, endpoint, "/api/captive")
    assert status == 200
    answer: dict[str, Any] = json.loads(body)
    return answer


def test_the_captive_api_says_captive_then_not_after_sign_in(lab: Any) -> None:
    assert captive_state(lab, 1) == {"captive": True, "user-portal-url": LOGIN}
    add_user(lab, "alice", PASSWORD)
    status, _ = sign_in(lab, 1, "alice", PASSWORD)
    assert status == 303
    assert captive_state(lab, 1)["captive"] is False
    assert captive_state(lab, 2)["captive"] is True


def test_a_good_password_admits_the_endpoint_to_upstream(lab: Any) -> None:
    add_user(lab, "alice", PASSWORD)
    assert fetch(lab, 1, "http://www.corp.test/")[0] == 302
    assert sign_in(lab, 1, "alice", PASSWORD)[0] == 303
    deadline = time.monotonic() + 5
    while UPSTREAM_PAGE not in (page := curl_body(lab, 1, "http://www.corp.test/")):
        assert time.monotonic() < deadline, page
        time.sleep(0.1)
    status, page = https(lab, 1, "/status")
    assert status == 200 and "staff/alice" in page and "full" in page
    shown = cli_json(lab.workdir / "appliance", "endpoints", "show", lab.endpoint_mac(1))
    assert shown["role"] == "full"


def test_a_bad_password_does_not_admit_and_the_tenth_bad_try_is_locked_out(lab: Any) -> None:
    add_user(lab, "bob", PASSWORD)
    answers = [sign_in(lab, 2, "bob", "not the password")[0] for _ in range(9)]
    assert answers == [401] * 9
    status, page = sign_in(lab, 2, "bob", "not the password")
    assert status == 429 and "Too many failed sign-ins" in page
    assert sign_in(lab, 2, "bob", PASSWORD)[0] == 429  # even the right one, while locked
    assert fetch(lab, 2, "http://www.corp.test/")[0] == 302  # still captive


def test_a_sign_in_without_the_forms_token_is_refused(lab: Any) -> None:
    add_user(lab, "alice", PASSWORD)
    form = urlencode(
        {"csrf": "forged", "realm": "staff", "username": "alice", "password": PASSWORD}
    )
    status, _ = https(lab, 1, "/login", "--data", form)
    assert status == 403
    assert captive_state(lab, 1)["captive"] is True


def test_portal_pages_carry_the_security_headers(lab: Any) -> None:
    out = lab.exec(
        "ep1",
        [
            "curl",
            "-sS",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "--cacert",
            str(lab.workdir / "appliance" / "state" / "tls" / "portal.crt"),
            "https://portal.netaccess.test/login",
        ],
        capture_output=True,
        text=True,
    )
    headers = out.stdout.lower()
    assert "content-security-policy: default-src 'none'" in headers
    assert "frame-ancestors 'none'" in headers
    assert "x-content-type-options: nosniff" in headers
    assert "referrer-policy: no-referrer" in headers
    assert re.search(
        r"set-cookie: na_form=[^;]+; path=/; max-age=\d+; secure; httponly; samesite=lax", headers
    )


def curl_body(lab: Any, endpoint: int, url: str) -> str:
    out = lab.exec(
        f"ep{endpoint}", ["curl", "-sS", "--max-time", "5", url], capture_output=True, text=True
    )
    return str(out.stdout)


# -- agent downloads ----------------------------------------------------------------------------


def publish_agent(lab: Any, size: int) -> tuple[bytes, str]:
    data = os.urandom(size)
    path = lab.workdir / "netaccess-agent-1.2.0.tar.gz"
    path.write_bytes(data)
    path.chmod(0o644)
    cli(
        lab.workdir / "appliance",
        "agent",
        "publish",
        str(path),
        "--platform",
        "linux",
        "--version",
        "1.2.0",
    )
    return data, "/agent/download/linux/1.2.0/netaccess-agent-1.2.0.tar.gz"


def test_an_agent_download_matches_its_published_sha256(lab: Any) -> None:
    data, url = publish_agent(lab, 3 * 1024 * 1024 + 17)
    listed_builds = cli_json(lab.workdir / "appliance", "agent", "list")
    assert [(b["platform"], b["size"]) for b in listed_builds] == [("linux", len(data))]
    saved = lab.workdir / "downloaded"
    status, _ = https(lab, 1, url, "-o", str(saved))
    assert status == 200
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == listed_builds[0]["sha256"]
    assert saved.read_bytes() == data


def test_an_agent_download_serves_one_range_and_revalidates_by_etag(lab: Any) -> None:
    data, url = publish_agent(lab, 100_000)
    saved = lab.workdir / "part"
    status, _ = https(lab, 1, url, "-r", "1000-1999", "-o", str(saved))
    assert status == 206 and saved.read_bytes() == data[1000:2000]
    etag = '"' + hashlib.sha256(data).hexdigest() + '"'
    status, _ = https(lab, 1, url, "-H", f"If-None-Match: {etag}", "-o", str(saved))
    assert status == 304
    status, _ = https(lab, 1, url, "-r", "200000-", "-o", str(saved))
    assert status == 416


def test_the_download_page_offers_the_build_for_the_browsers_system(lab: Any) -> None:
    data, url = publish_agent(lab, 1000)
    linux = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0"
    status, page = https(lab, 1, "/agent", "-A", linux)
    assert status == 200
    assert f'href="{url}"' in page and hashlib.sha256(data).hexdigest() in page
    status, page = https(lab, 1, "/agent", "-A", "Mozilla/5.0 (Windows NT 10.0; Win64; x64)")
    assert "No agent is published for Windows yet" in page


# -- a real browser -----------------------------------------------------------------------------


def spki_sha256(certificate: Path) -> str:
    """Chromium's pin for a certificate: base64 of the SHA-256 of its public key info."""
    cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    info = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(info).digest()).decode()


def test_chromium_follows_a_probe_to_the_portal_signs_in_and_sees_full_access(
    lab: Any, tmp_path: Path
) -> None:
    add_user(lab, "alice", PASSWORD)
    shot = lab.workdir / "status.png"  # in the lab's workdir: the namespace can write there
    certificate = lab.workdir / "appliance" / "state" / "tls" / "portal.crt"
    https(lab, 1, "/api/captive")  # the certificate exists once the portal answered
    out = lab.exec(
        "ep1",
        [
            sys.executable,
            str(Path(__file__).with_name("browser_portal.py")),
            PROBES[0],
            "alice",
            PASSWORD,
            str(shot),
            spki_sha256(certificate),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout)
    assert seen["login_url"].startswith(LOGIN)
    assert "Sign in to the network" in seen["login_text"]
    assert seen["status_url"] == "https://portal.netaccess.test/status"
    assert "Network access status" in seen["status_text"]
    assert "full" in seen["status_text"] and "staff/alice" in seen["status_text"]
    saved = tmp_path / "status.png"
    saved.write_bytes(shot.read_bytes())
    assert saved.read_bytes().startswith(b"\x89PNG") and saved.stat().st_size > 2000
    assert (
        cli_json(lab.workdir / "appliance", "endpoints", "show", lab.endpoint_mac(1))["role"]
        == "full"
    )


def settled_link_local(lab: Any, namespace: str, device: str) -> str:
    """The device's IPv6 link-local address once duplicate address detection has passed
    (a tentative address can be neither reached nor used as a source)."""
    deadline = time.monotonic() + 10
    while True:
        shown = lab.exec(
            namespace,
            ["ip", "-6", "-o", "addr", "show", "dev", device, "scope", "link", "-tentative"],
            capture_output=True,
            text=True,
        ).stdout
        if shown.strip():
            return str(shown.split()[3].split("/")[0])
        assert time.monotonic() < deadline, f"{namespace}/{device}: link-local still tentative"
        time.sleep(0.1)


def test_the_portal_listener_answers_ipv6_too(lab: Any) -> None:
    # The ruleset redirects captive HTTP of both families to the portal's port; here, by the
    # appliance's link-local address (the lab routes no global IPv6).
    link_local = settled_link_local(lab, "app", "acc0")
    settled_link_local(lab, "ep1", "eth0")  # curl's source address
    out = lab.exec(
        "ep1",
        [
            "curl",
            "-sS",
            "-g",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
            "--max-time",
            "5",
            f"http://[{link_local}%eth0]/",
        ],
        capture_output=True,
        text=True,
    )
    status, location = ([*out.stdout.split(" ", 1), ""])[:2]
    assert status == "302", out.stderr
    assert location.startswith(LOGIN)
