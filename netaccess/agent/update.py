"""Signed agent builds, and the agent replacing itself with a newer one.

A build is one zipapp. Its Ed25519 signature travels inside it, in the ZIP archive comment
("netaccess-signature:" and the base64 signature), and covers the archive exactly as it is
with an empty comment. So a build is a single file the portal serves as it is, and any
ZIP reader (Python's zipimport included) still runs it.

An agent accepts a build only if the signature verifies against the public key it was
itself built with, and the build's version is newer than its own: a downgrade or a
tampered file is refused with a reason (the agent reports it). It then replaces its own
file atomically (a temporary file beside it, fsync, rename) and starts again.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
import struct
import zipfile
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIGNATURE_TAG = b"netaccess-signature:"
BUILD_INFO = "netaccess_agent_build.txt"  # in the zipapp: "version=...\nplatform=...\n"
_EOCD = b"PK\x05\x06"
_EOCD_SIZE = 22
_VERSION = re.compile(r"[0-9]+(\.[0-9]+){0,3}")
MAX_BUILD = 64 * 1024 * 1024


class UpdateRefused(Exception):
    """A build the agent will not run; the message says why."""


def sign_build(archive: bytes, key: Ed25519PrivateKey) -> bytes:
    """The archive (written with an empty comment) with its signature in the comment."""
    eocd = _find_eocd(archive)
    if archive[eocd + 20 : eocd + 22] != b"\x00\x00":
        raise UpdateRefused("the archive to sign already has a comment")
    signature = base64.b64encode(key.sign(archive))
    comment = SIGNATURE_TAG + signature
    return archive[: eocd + 20] + struct.pack("<H", len(comment)) + comment


def verify_build(build: bytes, public_key: bytes) -> dict[str, str]:
    """Check `build`'s signature against `public_key` (raw 32 bytes); its build info."""
    if len(build) > MAX_BUILD:
        raise UpdateRefused(f"the build is larger than {MAX_BUILD} bytes")
    eocd = _find_eocd(build)
    (length,) = struct.unpack("<H", build[eocd + 20 : eocd + 22])
    comment = build[eocd + 22 : eocd + 22 + length]
    if len(comment) != length or eocd + 22 + length != len(build):
        raise UpdateRefused("the build's ZIP comment is malformed")
    if not comment.startswith(SIGNATURE_TAG):
        raise UpdateRefused("the build carries no signature")
    try:
        signature = base64.b64decode(comment[len(SIGNATURE_TAG) :], validate=True)
        unsigned = build[: eocd + 20] + b"\x00\x00"
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, unsigned)
    except (InvalidSignature, binascii.Error, ValueError):
        raise UpdateRefused("the build's signature does not verify with this agent's key") from None
    return read_build_info(build)


def read_build_info(build: bytes) -> dict[str, str]:
    try:
        with zipfile.ZipFile(io.BytesIO(build)) as archive:
            text = archive.read(BUILD_INFO).decode("utf-8")
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError, OSError):
        raise UpdateRefused(f"the build has no readable {BUILD_INFO}") from None
    info = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    if not _VERSION.fullmatch(info.get("version", "")):
        raise UpdateRefused(f"the build's version {info.get('version')!r} is not a version")
    return info


def version_key(version: str) -> tuple[int, ...]:
    if not _VERSION.fullmatch(version):
        raise UpdateRefused(f"{version!r} is not a version (numbers and dots)")
    return tuple(int(part) for part in version.split("."))


def check_newer(offered: str, running: str) -> None:
    if version_key(offered) <= version_key(running):
        raise UpdateRefused(f"version {offered} is not newer than the running {running}")


def install(build: bytes, target: Path) -> None:
    """Replace `target` by `build` atomically: the old file or the new one, never half."""
    temporary = target.with_name(f".{target.name}.new")
    with open(temporary, "wb") as file:
        file.write(build)
        file.flush()
        os.fsync(file.fileno())
    os.chmod(temporary, 0o755)
    os.replace(temporary, target)
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _find_eocd(archive: bytes) -> int:
    """Where the end-of-central-directory record starts (the last one in the file)."""
    start = max(0, len(archive) - _EOCD_SIZE - 0xFFFF)
    where = archive.rfind(_EOCD, start)
    if where < 0 or len(archive) - where < _EOCD_SIZE:
        raise UpdateRefused("the build is not a ZIP archive")
    return where
