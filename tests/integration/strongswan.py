"""strongSwan's pt-tls-client, the reference TNC/NEA client, for interop tests of the posture
server (PT-TLS RFC 6876, PB-TNC RFC 5793, PA-TNC RFC 5792).

tools/interop/strongswan-tnc builds the client once from Debian's strongswan source package
into a cache (NETACCESS_CACHE, default /var/cache/netaccess) and prints its install prefix.
A test asks for it, skips loudly when it cannot be had, writes a config and runs the client:

    prefix = strongswan.build_client()
    if prefix is None:
        pytest.skip(f"strongSwan pt-tls-client unavailable: {strongswan.why_unavailable()}")
    env = strongswan.write_client_config(tmp_path, prefix, imcs=True)
    cmd = strongswan.client_command(prefix, server="127.0.0.1", port=port, ca_cert=cert)
    done = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=30)
    assert strongswan.LOG_COMPLIANT in done.stderr

What the client does and how to judge it:
- It logs to stderr, one message a line (and to syslog, authpriv, when /dev/log exists; there
  is no switch for that). Plugin loading and the IMCs are logged before the options are read,
  so the lines LOG_PLUGINS_LOADED and LOG_IMC_OS_LOADED appear whatever --debug says. The
  default level 1 also shows the TLS version, the trusted server certificate and the PB-TNC
  result; --debug 2 adds PT-TLS/PB-TNC message traces, 3 and 4 hex dumps.
- Exit status: 0 when the assessment ran to SUCCESS, 1 on any failure (refused connection,
  untrusted certificate, protocol error) and, per the STANDARDS interop notes, also after a
  normal session (it sends CLOSE after RESULT); 66 when a plugin it needs fails to load (a
  bad `load` list). So judge a session by its log (LOG_COMPLIANT, LOG_RECOMMENDATION), not
  its status. A STRONGSWAN_CONF that does not exist is only warned about ("no files found
  matching"): the client then runs on built-in defaults and /etc/tnc_config, without IMCs.
- It trusts only the certificates given with --cert (the server's own or its CA), and checks
  the server certificate against the --connect string: the certificate needs a
  subjectAltName equal to it (IP:127.0.0.1 for "127.0.0.1").
- TLS 1.2 is its default maximum; write_client_config(tls_max="1.3") allows TLS 1.3.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "interop" / "strongswan-tnc"
BUILD_TIMEOUT = 1800.0  # a build takes ~1.5 min on 2 cores, plus apt

# The plugins pt-tls-client loads: crypto and certificates, then the TNC client stack.
PLUGINS = "random nonce pem pkcs1 pkcs8 x509 pubkey constraints openssl tnc-tnccs tnc-imc tnccs-20"
DEVICE_ID = "netaccess-interop-client"

# Log lines (stderr) a test can look for. Those with {} are str.format templates.
LOG_PLUGINS_LOADED = f"loaded plugins: pt-tls-client {PLUGINS}"
LOG_TNC_CONFIG = "loading IMCs from '{}'"  # the tnc_config path
LOG_IMC_OS_LOADED = 'IMC 1 "OS" loaded from'  # followed by '<prefix>/lib/ipsec/imcvs/imc-os.so'
LOG_OS_VERSION = "operating system version is '{}'"  # what the OS IMC reports, e.g. 12 x86_64
LOG_CONNECT_FAILED = "connecting to PT-TLS server failed: {}"  # e.g. Connection refused
LOG_TLS_VERSION = "negotiated TLS {}"  # 1.2 or 1.3, then " using suite ..."
LOG_SERVER_TRUSTED = 'using trusted certificate "{}"'  # the server certificate's subject DN
LOG_SERVER_MISMATCH = "server certificate does not match to '{}'"  # the --connect string
LOG_COMPLIANT = "PB-TNC assessment result is 'compliant'"
LOG_ASSESSMENT = "PB-TNC assessment result is '{}'"  # compliant, non-compliant minor/major, ...
LOG_RECOMMENDATION = "PB-TNC access recommendation is '{}'"  # Access Allowed/Denied, Quarantined

_unavailable: str | None = None  # why the client cannot be had; None until build_client ran
_prefix: Path | None = None


def build_client() -> Path | None:
    """Build pt-tls-client (or find it in the cache) and return its install prefix, or None
    when it cannot be had; why_unavailable() then says why. The script runs once per process;
    concurrent processes serialise on the cache's lock, so the first one builds."""
    global _unavailable, _prefix
    if _unavailable is not None:
        return _prefix
    try:
        done = subprocess.run(
            [str(SCRIPT)], capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        _unavailable = f"{SCRIPT.relative_to(REPO)}: {e}"
        return None
    prefix = Path(done.stdout.strip()) if done.stdout.strip() else None
    if done.returncode == 0 and prefix is not None and client_binary(prefix).is_file():
        _prefix, _unavailable = prefix, ""
        return prefix
    errors = [line for line in done.stderr.splitlines() if ": error: " in line]
    last = errors[-1] if errors else (done.stderr.strip().splitlines() or ["no output"])[-1]
    _unavailable = f"{SCRIPT.relative_to(REPO)} exited {done.returncode}: {last}"
    return None


def why_unavailable() -> str:
    """Why build_client() returns None (running it if it has not run yet); "" when the
    client is available."""
    if _unavailable is None:
        build_client()
    return _unavailable or ""


def client_binary(prefix: Path) -> Path:
    return prefix / "bin" / "pt-tls-client"


def imc_os_library(prefix: Path) -> Path:
    return prefix / "lib" / "ipsec" / "imcvs" / "imc-os.so"


def write_client_config(
    directory: Path,
    prefix: Path,
    *,
    imcs: bool,
    tls_max: str = "1.3",
    device_id: str = DEVICE_ID,
) -> dict[str, str]:
    """Write directory/strongswan.conf and directory/tnc_config and return the environment
    variables that make pt-tls-client use them ({"STRONGSWAN_CONF": path}; merge them into
    os.environ for the child).

    imcs=False: no IMC at all (tnc_config is empty), the client only runs PT-TLS and PB-TNC.
    imcs=True: the OS IMC, which pushes its facts in the first CDATA batch (Product
    Information, String/Numeric Version, Operational Status, Forwarding Enabled, Default
    Password) under the given device id, and sends Installed Packages when asked.
    tls_max: the highest TLS version offered, "1.2" or "1.3" (strongSwan's own default is 1.2).
    """
    if tls_max not in ("1.2", "1.3"):
        raise ValueError(f"tls_max must be '1.2' or '1.3', not {tls_max!r}")
    tnc_config = directory / "tnc_config"
    conf = directory / "strongswan.conf"
    imc = imc_os_library(prefix)
    # strongSwan's tnc_config parser ends the library path at the first blank.
    for path in (tnc_config, imc):
        if any(c.isspace() or c == '"' for c in str(path)):
            raise ValueError(f"path unusable in a strongSwan config: {path!r}")
    if any(c.isspace() or c in '"{}#' for c in device_id):
        raise ValueError(f"device_id must be a plain word: {device_id!r}")
    directory.mkdir(parents=True, exist_ok=True)
    # tnc_config: one `IMC "<name>" <library>` a line; '#' starts a comment.
    tnc_config.write_text(
        "# IMCs for pt-tls-client (written by tests/integration/strongswan.py)\n"
        + (f'IMC "OS" {imc}\n' if imcs else "")
    )
    # strongswan.conf, standalone (no includes of the prefix's etc/strongswan.d):
    # - pt-tls-client.load: the plugin list (replaces the client's built-in default, which
    #   names wolfssl and logs a failure for it);
    # - pt-tls-client.tnc.tnc_config: the IMC list (default /etc/tnc_config);
    # - libimcv.plugins.imc-os: the OS IMC's settings (pt-tls-client.plugins falls back
    #   to libimcv.plugins); push_info = yes is also its default;
    # - libtls.version_max: pt-tls-client.tls falls back to libtls.
    conf.write_text(
        f"""# pt-tls-client settings (written by tests/integration/strongswan.py)
pt-tls-client {{
    load = {PLUGINS}
    tnc {{
        tnc_config = {tnc_config}
    }}
}}
libimcv {{
    plugins {{
        imc-os {{
            push_info = yes
            device_id = {device_id}
        }}
    }}
}}
libtls {{
    version_max = {tls_max}
}}
"""
    )
    return {"STRONGSWAN_CONF": str(conf)}


def client_command(
    prefix: Path,
    *,
    server: str,
    port: int,
    ca_cert: Path,
    client_id: str | None = None,
    secret: str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The pt-tls-client command line for one assessment against server:port.

    server: the address (or name) to connect to; the server certificate must carry it as
    subjectAltName. ca_cert: PEM or DER certificate trusted for the server (its own
    certificate or its CA's). client_id and secret: SASL PLAIN identity and password, used
    when the server offers SASL (the client's identity is otherwise %any). extra: further
    options, e.g. ["--debug", "2"], ["--mutual"] (PB-TNC mutual mode), or a TLS client
    certificate: ["--cert", client.pem, "--key", client.key, "--key-type", "ecdsa"]
    (key type defaults to rsa). All options: --connect --port --cert --certid --key --keyid
    --key-type --client --secret --mutual --quiet --debug --options.
    """
    if secret is not None and client_id is None:
        raise ValueError("a secret needs a client_id to go with it")
    cmd = [
        str(client_binary(prefix)),
        "--connect", server,
        "--port", str(port),
        "--cert", str(ca_cert),
    ]  # fmt: skip
    if client_id is not None:
        cmd += ["--client", client_id]
    if secret is not None:
        cmd += ["--secret", secret]
    cmd += list(extra)
    return cmd
