"""802.1X with wpa_supplicant's eapol_test as the switch and the supplicant, in a lab:
eapol_test runs in the lab's NAS namespace against netaccessd on 198.19.1.1, checking the
server certificate (the portal's) and comparing the MPPE keys in the Accept with the MSK it
derived itself ("MPPE keys OK").

EAP-TTLS/PAP with a realm user's password -> Accept, the Layer-2-only remediation VLAN and
the endpoint in remediation; a wrong password -> Reject. EAP-TLS with a client certificate
from the CA in radius.eap_tls_ca -> Accept; one from another CA -> Reject; one the CA's CRL
(radius.eap_tls_crl) revokes -> Reject. PEAP with EAP-MSCHAPv2, the realm keeping its
users' NT hashes (mschapv2 = true) -> Accept, with
wpa_supplicant checking our MS-CHAPv2 Authenticator Response; a wrong password -> the
MS-CHAPv2 Failure (E=691, with our message) and a failure Result TLV, then Reject. EAP-TTLS
with MS-CHAP-V2 inside (the same NT hash) -> Accept; a wrong password -> MS-CHAP-Error,
then Reject."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.appliance_cli import cli, cli_json, listed, write_config
from tests.unit.test_eap_conversation import Authority, Issued
from tools.labnet import Lab
from tools.labnet import addressing as net

pytestmark = pytest.mark.integration

SECRET = "lab-switch-secret"
PASSWORD = "correct horse battery"
EAPOL_SECONDS = 60


def radius_tables(ca: Path, crl: Path) -> str:
    return f"""
[radius]
duplicate_window = 1.0
eap_tls_ca = "{ca}"
eap_tls_crl = "{crl}"

[[radius.clients]]
name = "lab-switch"
address = "{net.NAS_IP}"
secret = "lab-switch"
"""


def eapol_test(lab: Lab, conf: Path, mac: str) -> subprocess.CompletedProcess[str]:
    """One whole authentication; eapol_test gives up by itself after 20 s."""
    if shutil.which("eapol_test") is None:
        pytest.fail("eapol_test is missing: tools/bootstrap installs eapoltest")
    return subprocess.run(
        [
            *("ip", "netns", "exec", lab.nas_ns),
            *("eapol_test", "-c", str(conf), "-t", "20"),
            *("-a", net.APPLIANCE_MGMT_IP, "-p", "1812", "-s", SECRET),
            *("-N", "30:s:AA-BB-CC-DD-EE-01", "-N", f"31:s:{mac.replace(':', '-').upper()}"),
        ],
        capture_output=True,
        text=True,
        timeout=EAPOL_SECONDS,
        check=False,
    )


def network_block(directory: Path, name: str, **settings: str) -> Path:
    conf = directory / f"{name}.conf"
    lines = [f'    {key}="{value}"' for key, value in settings.items() if key != "eap"]
    conf.write_text(
        "network={\n    key_mgmt=IEEE8021X\n"
        + f"    eap={settings['eap']}\n"
        + "\n".join(lines)
        + "\n}\n"
    )
    return conf


def accepted(done: subprocess.CompletedProcess[str]) -> bool:
    return done.returncode == 0 and "SUCCESS" in done.stdout.splitlines()[-1:]


def received_codes(done: subprocess.CompletedProcess[str]) -> list[str]:
    """The RADIUS codes eapol_test received, in order."""
    return re.findall(r"Received RADIUS message\s*\n\s*RADIUS message: code=(\d+)", done.stdout)


def last_accept_vlan(done: subprocess.CompletedProcess[str]) -> str | None:
    """Tunnel-Private-Group-Id of the Access-Accept, as eapol_test dumps it."""
    accept = done.stdout.rsplit("RADIUS message: code=2 ", 1)
    if len(accept) < 2:
        return None
    found = re.search(
        r"Attribute 81 \(Tunnel-Private-Group-Id\) length=\d+\s*\n\s*Value: (\S+)", accept[1]
    )
    if found is None:
        return None
    value = found.group(1)
    if value.startswith("'"):
        return value.strip("'")
    return bytes.fromhex(value).decode()  # eapol_test dumps it in hex


def role_of(base: Path, mac: str) -> str | None:
    endpoint = {ep["mac"]: ep for ep in listed(base)}.get(mac)
    return None if endpoint is None else str(endpoint["role"])


@pytest.fixture
def eap_lab(lab_factory: Any) -> tuple[Lab, Path, dict[str, Any]]:
    lab = lab_factory(endpoints=1)
    base = lab.workdir / "appliance"
    base.mkdir(parents=True, exist_ok=True)
    pki_dir = lab.workdir / "eap-pki"
    pki_dir.mkdir(mode=0o755, exist_ok=True)
    ca = Authority(pki_dir, "lab EAP client CA")
    stranger = Authority(pki_dir, "lab stranger CA")
    ca.path.chmod(0o644)  # netaccessd, unprivileged, reads it
    clients: dict[str, Issued] = {
        "good": ca.issue("laptop-7@staff"),
        "foreign": stranger.issue("laptop-8@staff"),
        "revoked": ca.issue("laptop-9@staff"),
    }
    crl = ca.crl(pki_dir / "clients.crl", (clients["revoked"],))
    crl.chmod(0o644)
    config = write_config(base, extra=radius_tables(ca.path, crl), realm_extra="mschapv2 = true\n")
    lab.up(config=config, dhcp_clients=False)
    cli(base, "secrets", "set", "lab-switch", "--stdin", input=SECRET + "\n")
    added = cli(base, "users", "add", "staff", "alice", "--password-stdin", input=PASSWORD + "\n")
    assert "MSCHAPv2 credential kept" in added.stdout
    (alice,) = cli_json(base, "users", "list")
    assert alice["mschapv2"] is True and "yes" in cli(base, "users", "list").stdout
    kept = cli(base, "users", "forget-mschapv2").stdout  # staff allows it: nothing goes
    assert kept.startswith("no MSCHAPv2 credentials kept outside"), kept
    server_cert = base / "state" / "tls" / "portal.crt"
    assert server_cert.exists(), "netaccessd made no portal certificate"
    return lab, base, {"server": server_cert, "clients": clients, "dir": pki_dir}


def test_eap_ttls_pap_and_eap_tls_with_eapol_test(
    eap_lab: tuple[Lab, Path, dict[str, Any]],
) -> None:
    lab, base, pki = eap_lab
    directory: Path = pki["dir"]
    server = str(pki["server"])

    def alice_block(name: str, eap: str, phase2: str, password: str = PASSWORD) -> Path:
        """alice's supplicant config, her realm in the outer identity."""
        return network_block(
            directory,
            name,
            eap=eap,
            identity="alice",
            anonymous_identity="anonymous@staff",
            password=password,
            phase2=phase2,
            ca_cert=server,
        )

    # EAP-TTLS/PAP, good password: Accept with MPPE keys, in the Layer-2-only remediation.
    mac = "02:4e:41:ea:00:01"
    ttls = alice_block("ttls", "TTLS", "auth=PAP")
    done = eapol_test(lab, ttls, mac)
    assert accepted(done), done.stdout[-4000:] + done.stderr
    assert "MPPE keys OK" in done.stdout
    assert received_codes(done)[-1] == "2"
    assert received_codes(done)[:-1] and set(received_codes(done)[:-1]) == {"11"}
    assert last_accept_vlan(done) == "998", done.stdout[-3000:]
    assert role_of(base, mac) == "remediation"
    (client,) = cli_json(base, "radius", "clients")
    assert client["counters"].get("accepted.eap-ttls", 0) >= 1

    # A wrong password: Reject, and the endpoint is not admitted.
    wrong_mac = "02:4e:41:ea:00:02"
    wrong = alice_block("ttls-wrong", "TTLS", "auth=PAP", password="not the password")
    refused = eapol_test(lab, wrong, wrong_mac)
    assert not accepted(refused)
    assert received_codes(refused)[-1:] == ["3"], refused.stdout[-3000:]
    assert role_of(base, wrong_mac) is None

    # EAP-TLS with a certificate from the configured CA: Accept with MPPE keys.
    good: Issued = pki["clients"]["good"]
    tls_mac = "02:4e:41:ea:00:03"
    tls = network_block(
        directory,
        "tls",
        eap="TLS",
        identity="laptop-7@staff",
        ca_cert=server,
        client_cert=str(good.certificate),
        private_key=str(good.key),
    )
    done = eapol_test(lab, tls, tls_mac)
    assert accepted(done), done.stdout[-4000:] + done.stderr
    assert "MPPE keys OK" in done.stdout
    assert last_accept_vlan(done) == "998"
    assert role_of(base, tls_mac) == "remediation"

    # A certificate from another CA: Reject.
    foreign: Issued = pki["clients"]["foreign"]
    stranger = network_block(
        directory,
        "tls-foreign",
        eap="TLS",
        identity="laptop-8@staff",
        ca_cert=server,
        client_cert=str(foreign.certificate),
        private_key=str(foreign.key),
    )
    refused = eapol_test(lab, stranger, "02:4e:41:ea:00:04")
    assert not accepted(refused)
    assert received_codes(refused)[-1:] == ["3"], refused.stdout[-3000:]

    # EAP-TLS with a certificate of the right CA that its CRL revokes: Reject.
    revoked: Issued = pki["clients"]["revoked"]
    struck = network_block(
        directory,
        "tls-revoked",
        eap="TLS",
        identity="laptop-9@staff",
        ca_cert=server,
        client_cert=str(revoked.certificate),
        private_key=str(revoked.key),
    )
    refused = eapol_test(lab, struck, "02:4e:41:ea:00:09")
    assert not accepted(refused)
    assert received_codes(refused)[-1:] == ["3"], refused.stdout[-3000:]

    # PEAP with EAP-MSCHAPv2 inside: Accept with MPPE keys, wpa_supplicant having checked
    # our Authenticator Response (the proof that we hold alice's NT hash).
    peap_mac = "02:4e:41:ea:00:05"
    peap = alice_block("peap", "PEAP", "auth=MSCHAPV2")
    done = eapol_test(lab, peap, peap_mac)
    assert accepted(done), done.stdout[-4000:] + done.stderr
    assert "EAP-MSCHAPV2: Authentication succeeded" in done.stdout  # our S= checked out
    assert "MPPE keys OK" in done.stdout
    assert last_accept_vlan(done) == "998", done.stdout[-3000:]
    assert role_of(base, peap_mac) == "remediation"

    # EAP-TTLS with MS-CHAP-V2 inside, the same NT hash: Accept with MPPE keys after
    # wpa_supplicant checked our MS-CHAP2-Success; a wrong password gets MS-CHAP-Error, then
    # the Reject.
    ttls_mschap = alice_block("ttls-mschapv2", "TTLS", "auth=MSCHAPV2")
    done = eapol_test(lab, ttls_mschap, "02:4e:41:ea:00:07")
    assert accepted(done), done.stdout[-4000:] + done.stderr
    assert "EAP-TTLS: Phase 2 MSCHAPV2 authentication succeeded" in done.stdout  # our S=
    assert "MPPE keys OK" in done.stdout
    wrong_mschap = directory / "ttls-mschapv2-wrong.conf"
    wrong_mschap.write_text(ttls_mschap.read_text().replace(PASSWORD, "not the password"))
    refused = eapol_test(lab, wrong_mschap, "02:4e:41:ea:00:08")
    assert not accepted(refused)
    assert "EAP-TTLS/MSCHAPV2: Received MS-CHAP-Error - failed" in refused.stdout  # told first
    assert received_codes(refused)[-1:] == ["3"], refused.stdout[-3000:]

    # PEAP with a wrong password: the peer is told so (E=691), then Reject.
    peap_wrong = alice_block("peap-wrong", "PEAP", "auth=MSCHAPV2", password="not the password")
    refused = eapol_test(lab, peap_wrong, "02:4e:41:ea:00:06")
    assert not accepted(refused)
    # Told first, inside the tunnel: the MS-CHAPv2 Failure, then the failure Result TLV.
    told = "failure message: 'wrong user name or password' (retry not allowed, error 691)"
    assert told in refused.stdout, refused.stdout[-3000:]
    assert "EAP-TLV: TLV Result - Failure" in refused.stdout
    assert received_codes(refused)[-1:] == ["3"], refused.stdout[-3000:]
    assert role_of(base, "02:4e:41:ea:00:06") is None

    (client,) = cli_json(base, "radius", "clients")
    counters = client["counters"]
    accepted_counts = [counters[f"accepted.{m}"] for m in ("eap-ttls", "eap-tls", "peap")]
    assert accepted_counts == [2, 1, 1]  # TTLS with PAP and with MS-CHAP-V2
    assert counters["rejected.eap-password"] == 3  # TTLS with each, and PEAP
    assert counters["rejected.eap"] == 2  # the foreign certificate and the revoked one
    log = lab.appliance_log.read_text()
    assert "CERTIFICATE_VERIFY_FAILED" in log
    assert "certificate revoked" in log
    assert "EAP-TLS CRL loaded" in log
    assert "wrong password for 'alice' (MS-CHAPv2)" in log
