"""What the portal's plain-HTTP listener answers, by rule: captive endpoints are sent to the
login page, the operating systems' connectivity probes included (so each opens its portal
sheet); admitted endpoints get the answer their probe expects, and are never redirected.

The probes are the URLs the systems fetch to decide whether they are behind a portal; a
captive 302 on any of them makes the system show its portal window (STANDARDS.md, captive
portal; RFC 8952 §2.3 describes the mechanism).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from urllib.parse import quote

from netaccess.proto.http.server import Request, Response

NO_STORE = ("cache-control", "no-store, no-cache, must-revalidate")
CACHED_URL_MAX = 256  # host + target; probes are short, and 4096 of these stay under 5 MB


@dataclass(frozen=True, slots=True)
class Probe:
    """A connectivity check: `path` fetched by `system`, and what it expects when online."""

    system: str
    path: str
    status: int
    body: bytes
    content_type: str = "text/plain"


PROBES: tuple[Probe, ...] = (
    Probe("Android, ChromeOS", "/generate_204", 204, b""),
    Probe("Android (older)", "/gen_204", 204, b""),
    Probe(
        "Apple iOS and macOS",
        "/hotspot-detect.html",
        200,
        b"<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>",
        "text/html",
    ),
    Probe("Apple (older)", "/library/test/success.html", 200, b"Success", "text/html"),
    Probe("Windows 10 and 11", "/connecttest.txt", 200, b"Microsoft Connect Test"),
    Probe("Windows (older)", "/ncsi.txt", 200, b"Microsoft NCSI"),
    Probe("Firefox", "/success.txt", 200, b"success\n"),
    Probe("Firefox (canonical)", "/canonical.html", 200, b"", "text/html"),
)
_PROBE_BY_PATH = {probe.path: probe for probe in PROBES}


def probe_of(request: Request) -> Probe | None:
    return _PROBE_BY_PATH.get(request.path)


def captive_redirect(request: Request, login_url: str) -> Response:
    """302 to the login page for any request of a captive endpoint, probe or not. The page
    it wanted rides along, so the portal can offer it after login. Never cached: once the
    endpoint is admitted the same URL must reach the real site."""
    host, target = request.host, request.target
    if len(host) + len(target) <= CACHED_URL_MAX:
        headers, body = _redirect_to_login(login_url, host, target)
    else:  # a long URL is built each time: the cache must stay small, whatever clients send
        headers, body = _redirect_to_login.__wrapped__(login_url, host, target)
    # An unread upload: start afresh on a new connection.
    return Response(302, headers, body, close=request.method not in ("GET", "HEAD"))


@functools.lru_cache(maxsize=4096)
def _redirect_to_login(
    login_url: str, host: str, target: str
) -> tuple[tuple[tuple[str, str], ...], bytes]:
    """Headers and body of the redirect; cached, since endpoints ask the same probe URLs
    over and over and quoting costs more than the rest of the answer."""
    wanted = f"http://{host}{target}" if host else ""
    location = login_url if not wanted else f"{login_url}?next={quote(wanted, safe='')}"
    return (
        (("location", location), NO_STORE, ("content-type", "text/plain; charset=utf-8")),
        b"Network login required: " + location.encode() + b"\n",
    )


def admitted_answer(request: Request) -> Response:
    """For an endpoint that is not captive (any more) whose request still reached us: its
    probe gets the answer of an open network, anything else a short 503 to retry, so that
    the retry goes out to the real site now that its role lets it."""
    probe = probe_of(request)
    if probe is not None:
        return Response(probe.status, (("content-type", probe.content_type), NO_STORE), probe.body)
    return Response(
        503,
        (("retry-after", "1"), NO_STORE, ("content-type", "text/plain; charset=utf-8")),
        b"Network access granted: retry.\n",
        close=True,
    )


def https_redirect(request: Request, portal_host: str) -> Response:
    """A portal page asked for over plain HTTP: the same page over HTTPS."""
    return Response(
        302,
        (("location", f"https://{portal_host}{request.target}"), NO_STORE),
        b"",
    )
