"""Signed agent builds: the signature in the ZIP comment, what is refused (tampering, another
key, no signature, downgrades), the atomic replacement, and that a signed build still runs."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from netaccess.agent.update import (
    BUILD_INFO,
    UpdateRefused,
    check_newer,
    install,
    sign_build,
    verify_build,
)

KEY = Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def archive(version: str = "1.2.0") -> bytes:
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as zf:
        zf.writestr(BUILD_INFO, f"version={version}\nplatform=linux\n")
        zf.writestr("__main__.py", f"print('agent {version}')\n")
    return data.getvalue()


def test_a_signed_build_verifies_and_names_its_version() -> None:
    info = verify_build(sign_build(archive(), KEY), PUBLIC)
    assert info == {"version": "1.2.0", "platform": "linux"}


@pytest.mark.parametrize("where", [0, 40, -80])
def test_a_tampered_build_is_refused(where: int) -> None:
    build = bytearray(sign_build(archive(), KEY))
    build[where] ^= 0x01
    with pytest.raises(UpdateRefused):
        verify_build(bytes(build), PUBLIC)


def test_another_keys_build_and_an_unsigned_one_are_refused() -> None:
    other = Ed25519PrivateKey.generate()
    with pytest.raises(UpdateRefused, match="does not verify"):
        verify_build(sign_build(archive(), other), PUBLIC)
    with pytest.raises(UpdateRefused, match="carries no signature"):
        verify_build(archive(), PUBLIC)
    with pytest.raises(UpdateRefused, match="not a ZIP"):
        verify_build(b"#!/bin/sh\necho hi\n", PUBLIC)


def test_only_a_newer_version_is_taken() -> None:
    check_newer("1.10.0", "1.9.3")
    for offered in ("1.9.3", "1.9.2", "0.9"):
        with pytest.raises(UpdateRefused, match="not newer"):
            check_newer(offered, "1.9.3")
    with pytest.raises(UpdateRefused, match="not a version"):
        check_newer("1.10-beta", "1.9")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_garbage_is_refused_with_our_error_only(data: bytes) -> None:
    with pytest.raises(UpdateRefused):
        verify_build(data, PUBLIC)


def test_install_replaces_the_file_and_the_signed_build_still_runs(tmp_path: Path) -> None:
    target = tmp_path / "netaccess-agent.pyz"
    target.write_bytes(sign_build(archive("1.0.0"), KEY))
    install(sign_build(archive("1.1.0"), KEY), target)
    assert [p.name for p in tmp_path.iterdir()] == ["netaccess-agent.pyz"]
    ran = subprocess.run(
        [sys.executable, str(target)], capture_output=True, text=True, timeout=30, check=True
    )
    assert ran.stdout == "agent 1.1.0\n"
