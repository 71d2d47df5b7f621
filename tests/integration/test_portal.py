"""The captive portal from an endpoint's side, in the lab: real curl in endpoint namespaces,
the real netaccessd and enforcer, the lab's DNS and DHCP."""

from __future__ import annotations

import time
from typing import Any

import pytest

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
