"""tools/build-agent: one signed zipapp, the same bytes from the same tree and settings,
verifying against its key, carrying its settings and CA, and running; bad input refused."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from netaccess.agent.main import CA_FILE, build_settings
from netaccess.agent.update import verify_build

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "build-agent"
CA = b"-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n"


def build_agent(*arguments: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def settings(tmp_path: Path, out: Path, version: str = "1.2.0") -> list[str | Path]:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(CA)
    return [
        "--version",
        version,
        "--key",
        tmp_path / "signing.pem",
        "--appliance",
        "portal.example",
        "--port",
        "2710",
        "--ca",
        ca,
        "--out",
        out,
    ]


def public_key(path: Path) -> bytes:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, dict[str, object]]:
    """Two builds with one new key and the same settings: (first, second, key, printed)."""
    tmp_path = tmp_path_factory.mktemp("build")
    first_dir, second = tmp_path / "first", tmp_path / "second.pyz"
    first_dir.mkdir()
    made = build_agent(*settings(tmp_path, first_dir), "--new-key")
    assert made.returncode == 0, made.stderr
    printed: dict[str, object] = json.loads(made.stdout)
    again = build_agent(*settings(tmp_path, second))
    assert again.returncode == 0, again.stderr
    return first_dir / "netaccess-agent-linux-1.2.0.pyz", second, tmp_path / "signing.pem", printed


def test_the_same_key_and_settings_give_the_same_bytes(
    built: tuple[Path, Path, Path, dict[str, object]],
) -> None:
    first, second, _, _ = built
    assert first.read_bytes() == second.read_bytes()


def test_the_build_prints_its_path_and_sha256(
    built: tuple[Path, Path, Path, dict[str, object]],
) -> None:
    first, _, _, printed = built
    data = first.read_bytes()
    assert printed == {
        "path": str(first),
        "sha256": hashlib.sha256(data).hexdigest(),
        "version": "1.2.0",
        "size": len(data),
    }


def test_the_new_key_is_private_to_its_owner(
    built: tuple[Path, Path, Path, dict[str, object]],
) -> None:
    _, _, key, _ = built
    assert key.stat().st_mode & 0o777 == 0o600


def test_the_build_verifies_with_the_public_key_and_carries_its_settings(
    built: tuple[Path, Path, Path, dict[str, object]],
) -> None:
    first, _, key, _ = built
    public = public_key(key)
    assert verify_build(first.read_bytes(), public) == {
        "version": "1.2.0",
        "platform": "linux",
        "appliance": "portal.example",
        "port": "2710",
        "update_key": public.hex(),
    }
    assert build_settings(first)[1] == CA


def test_the_build_holds_the_agent_and_leaves_the_trio_driver_out(
    built: tuple[Path, Path, Path, dict[str, object]],
) -> None:
    first, _, _, _ = built
    with zipfile.ZipFile(first) as archive:
        names = archive.namelist()
    assert names[0] == "__main__.py"
    assert {"netaccess/agent/main.py", "netaccess/proto/tnc/pa.py", CA_FILE} <= set(names)
    assert "netaccess/agent/tnc_client.py" not in names
    assert not [n for n in names if n.startswith(("netaccess/io/", "netaccess/policy/"))]


def test_the_build_runs(built: tuple[Path, Path, Path, dict[str, object]]) -> None:
    first, _, _, _ = built
    ran = subprocess.run(
        [sys.executable, str(first), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=first.parent,  # not the source tree: the build's own code runs
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("usage: netaccess-agent")


def test_a_version_that_is_not_dotted_numbers_is_refused(tmp_path: Path) -> None:
    made = build_agent(*settings(tmp_path, tmp_path, version="1.2-beta"), "--new-key")
    assert made.returncode == 1
    assert made.stderr == "build-agent: version '1.2-beta' is not a version (numbers and dots)\n"
    assert list(tmp_path.glob("*.pyz")) == []
    assert not (tmp_path / "signing.pem").exists()  # refused before any key was made


def test_a_version_that_is_not_a_build_name_is_refused(tmp_path: Path) -> None:
    made = build_agent(*settings(tmp_path, tmp_path, version="1/2"), "--new-key")
    assert made.returncode == 1
    assert made.stderr.startswith("build-agent: version '1/2': ")


def test_new_key_refuses_to_overwrite_a_key(tmp_path: Path) -> None:
    key = tmp_path / "signing.pem"
    key.write_text("an existing key\n")
    made = build_agent(*settings(tmp_path, tmp_path), "--new-key")
    assert made.returncode == 1
    assert made.stderr.startswith("build-agent: ")
    assert "File exists" in made.stderr
    assert key.read_text() == "an existing key\n"
    assert list(tmp_path.glob("*.pyz")) == []


def test_a_key_that_is_not_ed25519_is_refused(tmp_path: Path) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "signing.pem").write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    made = build_agent(*settings(tmp_path, tmp_path))
    assert made.returncode == 1
    assert "is not an Ed25519 private key" in made.stderr
