"""The admission loop end to end, with the real agent: built by tools/build-agent, published,
downloaded from the portal with curl, and run inside an endpoint's namespace, where it
reads that namespace's real nftables ruleset. Its reports move the endpoint's role, which
the kernel enforces (curl to upstream, and a held connection cut on demotion)."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.appliance_cli import cli, cli_json, write_config
from tests.integration.test_enforcement import (
    PORTAL_PAGE,
    UPSTREAM_PAGE,
    WEB,
    curl,
    stream_client,
    stream_server,
)
from tests.integration.test_hostchecker_signin import POLICY, REALM  # os and firewall rules
from tests.integration.test_portal import PASSWORD, add_user, https, sign_in
from tools.labnet.addressing import REMEDIATION_IP
from tools.labnet.services import REMEDIATION_PAGE

pytestmark = pytest.mark.integration

MAC = "02:4e:41:00:00:01"

# The endpoint's own firewall: input dropped except its replies, DHCP and loopback.
FIREWALL = """
table inet endpoint_fw {
    chain input {
        type filter hook input priority 0; policy drop;
        ct state established,related accept
        iif lo accept
        udp dport 68 accept
    }
}
"""


@pytest.fixture
def lab(lab_factory: Any) -> Any:
    built = lab_factory(endpoints=1)
    built.up(config=write_config(built.workdir / "appliance", POLICY, REALM))
    built.wait_for_leases(30)
    return built


def build_agent(lab: Any, version: str, key: Path, *, new_key: bool = False) -> Path:
    out = lab.workdir / "builds"
    out.mkdir(exist_ok=True)
    done = subprocess.run(
        [
            str(lab.repo / ".venv" / "bin" / "python"),
            str(lab.repo / "tools" / "build-agent"),
            *("--version", version, "--key", str(key)),
            *(["--new-key"] if new_key else []),
            *("--appliance", "portal.netaccess.test"),
            *("--ca", str(lab.workdir / "appliance" / "state" / "tls" / "portal.crt")),
            *("--out", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    path = Path(json.loads(done.stdout)["path"])
    path.chmod(0o644)
    return path


def publish(lab: Any, build: Path, version: str) -> dict[str, Any]:
    cli(
        lab.workdir / "appliance",
        *("agent", "publish", str(build), "--platform", "linux", "--version", version),
    )
    (published,) = [
        b for b in cli_json(lab.workdir / "appliance", "agent", "list") if b["version"] == version
    ]
    return dict(published)


def set_firewall(lab: Any, on: bool) -> None:
    if on:
        lab.exec("ep1", ["nft", "-f", "-"], input=FIREWALL, text=True, check=True)
    else:  # the user turns it off: the input hook accepts everything
        lab.exec(
            "ep1",
            ["nft", "chain", "inet", "endpoint_fw", "input", "{ policy accept; }"],
            check=True,
        )


def role_of_ep1(lab: Any) -> str:
    (endpoint,) = cli_json(lab.workdir / "appliance", "endpoints", "list")
    return str(endpoint["role"])


def wait_for_role(lab: Any, role: str, seconds: float) -> float:
    """Seconds it took for ep1 to have `role`."""
    started = time.monotonic()
    while role_of_ep1(lab) != role:
        assert time.monotonic() < started + seconds, f"ep1 is {role_of_ep1(lab)}, not {role}"
        time.sleep(0.1)
    return time.monotonic() - started


@pytest.fixture
def run_agent(lab: Any) -> Iterator[Any]:
    """run_agent(build, *args) starts the agent in ep1's namespace (killed at teardown);
    its log is the workdir's agent.log (shown when a test fails)."""
    running: list[subprocess.Popen[bytes]] = []

    def start(build: Path, *args: str) -> subprocess.Popen[bytes]:
        log = open(lab.workdir / "agent.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [
                *("ip", "netns", "exec", lab.endpoint_ns(1)),
                str(lab.repo / ".venv" / "bin" / "python"),
                str(build),
                *("--status-file", str(lab.workdir / "agent-status.json")),
                *args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        running.append(proc)
        return proc

    yield start
    for proc in running:
        proc.kill()
        proc.wait()


def agent_log(lab: Any) -> str:
    return str((lab.workdir / "agent.log").read_text(errors="replace"))


def test_download_posture_sign_in_demotion_on_a_firewall_change_and_readmission(
    lab: Any, run_agent: Any
) -> None:
    base = lab.workdir / "appliance"
    # Quarantined: upstream unreachable, the probe goes to the portal.
    assert UPSTREAM_PAGE not in curl(lab, 1, f"http://{WEB}/").stdout
    assert PORTAL_PAGE in curl(lab, 1, "http://detectportal.firefox.com/").stdout

    build = build_agent(lab, "1.0.0", lab.workdir / "signing.pem", new_key=True)
    published = publish(lab, build, "1.0.0")
    downloaded = lab.workdir / "downloaded-agent.pyz"
    status, _ = https(lab, 1, published["url"], "-o", str(downloaded))
    assert status == 200
    digest = hashlib.sha256(downloaded.read_bytes()).hexdigest()
    assert digest == published["sha256"] == hashlib.sha256(build.read_bytes()).hexdigest()

    add_user(lab, "alice", PASSWORD)
    status, _ = sign_in(lab, 1, "alice", PASSWORD)
    assert status in (200, 303)
    set_firewall(lab, on=True)
    run_agent(downloaded, "--interval", "60")
    wait_for_role(lab, "full", 30)
    assert UPSTREAM_PAGE in curl(lab, 1, f"http://{WEB}/").stdout

    # The user turns the firewall off while holding a connection open: the agent hears
    # the ruleset change, reports, and the endpoint is demoted; the connection is cut.
    streamer = stream_server(lab)
    receipts = lab.workdir / "receipts"
    client = stream_client(lab, receipts)
    try:
        deadline = time.monotonic() + 5
        while not receipts.exists() or len(receipts.read_text().split()) < 5:
            assert time.monotonic() < deadline, "the stream never started"
            time.sleep(0.05)
        set_firewall(lab, on=False)
        turned_off = time.time()
        took = wait_for_role(lab, "remediation", 5)
        time.sleep(1.5)
        last = max(float(t) for t in receipts.read_text().split())
        assert last < turned_off + took + 1.0, "the held connection was not cut on demotion"
    finally:
        for proc in (client, streamer):
            proc.kill()
            proc.wait()
    shown = cli_json(base, "endpoints", "show", MAC)
    admission = shown["admission"]
    assert admission["trigger"] == "posture report"
    failed = {"policy": "linux-firewall", "rule": "firewall", "outcome": "fail"}
    assert failed in admission["failed"]
    assert admission["remediation"][0]["instructions"] == "Turn the firewall on"
    status, page = https(lab, 1, "/status")
    assert status == 200 and "Turn the firewall on" in page
    # The agent was told the fix too, and said what changed in its report.
    told = json.loads((lab.workdir / "agent-status.json").read_text())
    assert any("linux-firewall/firewall: Turn the firewall on" in f for f in told["fixes"]), told
    assert "local change: firewall" in agent_log(lab)
    # In remediation it reaches the remediation server and the agent download, nothing else.
    assert UPSTREAM_PAGE not in curl(lab, 1, f"http://{WEB}/").stdout
    assert REMEDIATION_PAGE in curl(lab, 1, f"http://{REMEDIATION_IP}/").stdout
    status, _ = https(lab, 1, published["url"], "-o", str(lab.workdir / "again.pyz"))
    assert status == 200
    assert REMEDIATION_PAGE not in curl(lab, 1, f"http://{REMEDIATION_IP}:8080/").stdout

    set_firewall(lab, on=True)  # fixed: readmitted on the agent's next report
    wait_for_role(lab, "full", 5)
    assert UPSTREAM_PAGE in curl(lab, 1, f"http://{WEB}/").stdout


def test_a_newer_build_replaces_the_running_agent_and_a_tampered_one_is_refused(
    lab: Any, run_agent: Any
) -> None:
    key = lab.workdir / "signing.pem"
    first = build_agent(lab, "1.0.0", key, new_key=True)
    running = lab.workdir / "netaccess-agent.pyz"
    running.write_bytes(first.read_bytes())
    set_firewall(lab, on=True)
    # A tampered 1.1.0: one byte of the signed build changed, published as the newest.
    good = build_agent(lab, "1.1.0", key)
    tampered = bytearray(good.read_bytes())
    tampered[len(tampered) // 2] ^= 0x01
    bad = lab.workdir / "builds" / "tampered" / good.name
    bad.parent.mkdir()
    bad.write_bytes(bytes(tampered))
    bad.chmod(0o644)
    publish(lab, bad, "1.1.0")
    run_agent(running, "--interval", "2", "--no-watch")
    deadline = time.monotonic() + 30
    while "update to 1.1.0 refused" not in agent_log(lab):
        assert time.monotonic() < deadline, agent_log(lab)
        time.sleep(0.2)
    assert running.read_bytes() == first.read_bytes()  # still the 1.0.0 it was
    # The refusal is reported to the appliance with the next report.
    deadline = time.monotonic() + 30
    while True:
        reports = cli_json(lab.workdir / "appliance", "posture", "reports", "--attributes")
        if any("refused" in json.dumps(r) for r in reports):
            break
        assert time.monotonic() < deadline, "no report named the refused update"
        time.sleep(0.2)

    # A good 1.2.0 is fetched, checked, installed in place and run.
    publish(lab, build_agent(lab, "1.2.0", key), "1.2.0")
    deadline = time.monotonic() + 30
    while "agent 1.2.0 for linux" not in agent_log(lab):
        assert time.monotonic() < deadline, agent_log(lab)
        time.sleep(0.2)
    assert hashlib.sha256(running.read_bytes()).hexdigest() == publish_sha(lab, "1.2.0")


def publish_sha(lab: Any, version: str) -> str:
    (build,) = [
        b for b in cli_json(lab.workdir / "appliance", "agent", "list") if b["version"] == version
    ]
    return str(build["sha256"])


WIRED_SUPPLICANT = """
ap_scan=0
network={
    key_mgmt=IEEE8021X
    eap=TTLS
    identity="alice"
    password="not sent: nobody answers"
    phase2="auth=PAP"
    eapol_flags=0
}
"""


def test_an_endpoint_heard_only_at_layer_2_gets_remediation_then_quarantine_over_layer_3(
    lab_factory: Any,
) -> None:
    lab = lab_factory(endpoints=1)
    lab.up(config=write_config(lab.workdir / "appliance", POLICY, REALM), dhcp_clients=False)
    base = lab.workdir / "appliance"
    conf = lab.workdir / "wired.conf"
    conf.write_text(WIRED_SUPPLICANT)
    log = open(lab.workdir / "wpa_supplicant.log", "wb")  # noqa: SIM115 - closed below
    supplicant = subprocess.Popen(
        [
            *("ip", "netns", "exec", lab.endpoint_ns(1)),
            *("wpa_supplicant", "-D", "wired", "-i", "eth0", "-c", str(conf), "-d"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    try:
        # The real supplicant sends EAPOL-Start to the PAE group address; the appliance hears
        # it with no DHCP or ARP from the endpoint: Layer 2 only.
        deadline = time.monotonic() + 30
        while not cli_json(base, "endpoints", "list"):
            assert time.monotonic() < deadline, "the supplicant was never heard"
            time.sleep(0.2)
        shown = cli_json(base, "endpoints", "show", MAC)
        assert shown["role"] == "remediation" and shown["layer2_only"] is True
        assert "retry over Layer 3, or contact the administrator" in shown["instructions"]
        discovered = [e for e in shown["events"] if e["kind"] == "discovered"]
        assert discovered[0]["detail"]["via"] == "eapol"
        reasons = [e["detail"].get("reason", "") for e in shown["events"]]
        assert any("cannot be downloaded over a Layer 2 connection" in r for r in reasons)
    finally:
        supplicant.kill()
        supplicant.wait()
    # Now it asks for an address: it can reach the portal, so it is captive as any other.
    lab.start_dhcp_client(1)
    lab.wait_for_leases(30)
    deadline = time.monotonic() + 10
    while role_of_ep1(lab) != "quarantine":
        assert time.monotonic() < deadline, f"ep1 is still {role_of_ep1(lab)}"
        time.sleep(0.2)
    shown = cli_json(base, "endpoints", "show", MAC)
    assert shown["layer2_only"] is False and shown["instructions"] is None
    assert PORTAL_PAGE in curl(lab, 1, "http://detectportal.firefox.com/").stdout


PATCH_POLICY = """
[[policies]]
name = "linux-patched"
platform = "linux"

[[policies.rules]]
name = "security-updates"
type = "patch"
products = ["*"]
instructions = "Install the security updates"
action = "trigger_patch_manager"
"""
PATCH_REALM = 'policies = ["linux-patched"]\nremediation_role = "remediation"\n'

# Stands in for apt: "upgrades" PACKAGE to VERSION in the dpkg status file the agent reads
# (a private copy bind-mounted over /var/lib/dpkg for the agent only), replacing the file by
# rename as dpkg does, and leaves a mark that it ran.
FAKE_APT = """#!/bin/sh
set -e
echo "$0 ran" >> "{marker}"
exec {python} - <<'PY'
import os, re
path = "/var/lib/dpkg/status"
text = open(path).read()
stanza = re.compile(r"(Package: {package}\\n(?:[^\\n]+\\n)*?Version: )[^\\n]+")
open(path + "-new", "w").write(stanza.sub(lambda m: m[1] + "{version}", text, count=1))
os.replace(path + "-new", path)
PY
"""


def installed_version(package: str) -> str:
    done = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", package],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def feed_for(package: str, version: str) -> dict[str, Any]:
    """A feed in which the security archive has `package` at `version`."""
    return {
        "format": "netaccess-patch-feed/1",
        "version": 2026120701,
        "issued": "2026-12-07T00:00:00Z",
        "expires": "2099-01-01T00:00:00Z",
        "source": "a test feed: one package made outdated",
        "products": [
            {
                "id": f"debian-12/{package}",
                "vendor": "Debian",
                "name": package,
                "platform": "linux",
                "os": "Debian 12",
                "latest_version": version,
            }
        ],
        "patches": [
            {
                "id": f"debian-12/{package}/{version}",
                "product": f"debian-12/{package}",
                "severity": "important",
                "released": "2026-11-01",
                "fixed_version": version,
                "superseded_by": None,
            }
        ],
    }


def test_a_missing_patch_sends_the_endpoint_to_remediation_and_the_patch_manager_fixes_it(
    lab_factory: Any,
) -> None:
    from tests.unit.test_feed import KEY, encode, public_raw, sign

    package = "bash"
    newer = installed_version(package) + "+nadeb1"
    lab = lab_factory(endpoints=1)
    base = lab.workdir / "appliance"
    trusted = json.dumps([base64.b64encode(public_raw(KEY)).decode()])
    lab.up(
        config=write_config(
            base, PATCH_POLICY + f"\n[patch_feed]\ntrusted_keys = {trusted}\n", PATCH_REALM
        )
    )
    lab.wait_for_leases(30)
    data = encode(feed_for(package, newer))
    feed = lab.workdir / "feed.json"
    feed.write_bytes(data)
    (lab.workdir / "feed.json.sig").write_bytes(sign(KEY, data))
    for path in (feed, lab.workdir / "feed.json.sig"):
        path.chmod(0o644)
    cli(base, "patches", "import", str(feed))

    # The agent's own view of dpkg: a copy of the status file, over /var/lib/dpkg for the
    # agent's mount namespace only; the stand-in for apt edits that copy.
    dpkg = lab.workdir / "dpkg"
    (dpkg / "updates").mkdir(parents=True)
    shutil.copy("/var/lib/dpkg/status", dpkg / "status")
    marker = lab.workdir / "patch-manager-ran"
    fake_apt = lab.workdir / "fake-apt"
    fake_apt.write_text(
        FAKE_APT.format(marker=marker, python=sys.executable, package=package, version=newer)
    )
    fake_apt.chmod(0o755)
    actions = lab.workdir / "agent.toml"
    actions.write_text(f'[actions]\ntrigger_patch_manager = ["{fake_apt}"]\n')
    build = build_agent(lab, "1.0.0", lab.workdir / "signing.pem", new_key=True)

    add_user(lab, "alice", PASSWORD)
    sign_in(lab, 1, "alice", PASSWORD)
    log = open(lab.workdir / "agent.log", "ab")  # noqa: SIM115 - closed below
    agent = subprocess.Popen(
        [
            *("ip", "netns", "exec", lab.endpoint_ns(1), "sh", "-c"),
            'mount --bind "$0" /var/lib/dpkg && exec "$@"',
            str(dpkg),
            str(lab.repo / ".venv" / "bin" / "python"),
            str(build),
            *("--interval", "60", "--config", str(actions)),
            *("--status-file", str(lab.workdir / "agent-status.json")),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    try:
        # First report: bash is older than the feed's: remediation, the package named.
        deadline = time.monotonic() + 30
        while True:
            admission = cli_json(base, "endpoints", "show", MAC)["admission"]
            if admission is not None and admission["trigger"] == "posture report":
                break
            assert time.monotonic() < deadline, agent_log(lab)
            time.sleep(0.2)
        assert admission["outcome"] == "remediation", admission
        fix = admission["remediation"][0]
        assert fix["rule"] == "security-updates" and fix["action"] == "trigger_patch_manager"
        assert f"{package} {installed_version(package)} < {newer}" in fix["instructions"]
        # The agent ran the patch manager (the stand-in), then reported again: readmitted.
        wait_for_role(lab, "full", 30)
        assert marker.read_text().count("ran") == 1
        assert "action trigger_patch_manager: done" in agent_log(lab)
    finally:
        agent.kill()
        agent.wait()
    # The host's own dpkg status is untouched.
    assert installed_version(package) != newer
