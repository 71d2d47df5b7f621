"""The credential vault (shared/DESIGN.md §7): RADIUS shared secrets and other credentials,
kept encrypted with AES-256-GCM, never in the config file.

The vault is one JSON file of named entries. Each entry is a fresh 96-bit nonce and the
ciphertext of the secret, with the entry's name as associated data, so an entry copied under
another name fails to open. The key is 32 random bytes: from systemd's credentials directory
when the unit passes one (LoadCredentialEncrypted=, which a TPM can seal), else a key file
beside the vault, created on first use with mode 0600. Every write is a whole new file
renamed over the old one after fsync: a crash leaves the old vault or the new one, never half.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from netaccess.store.files import sync_directory, write_synced

VAULT_NAME = "vault.json"
KEY_NAME = "vault.key"
CREDENTIAL_NAME = "netaccess-vault-key"  # the systemd credential, when the unit gives one
FORMAT = 1
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
MAX_SECRET = 4096
_NONCE = 12
_KEY = 32
SEALED_OVERHEAD = _NONCE + 16  # what seal() adds to a value: the nonce and the GCM tag


class VaultError(Exception):
    """The vault cannot be read or written, or an entry is bad; the message says which."""


def check_name(name: object) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise VaultError(
            f"bad secret name {name!r}: 1 to 64 of a-z, 0-9, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    return name


def check_secret(value: bytes) -> bytes:
    if not 1 <= len(value) <= MAX_SECRET:
        raise VaultError(f"a secret must be 1 to {MAX_SECRET} bytes, not {len(value)}")
    return value


class Vault:
    """Named secrets, encrypted at rest. Reads are served from memory after open()."""

    def __init__(self, path: Path, key: bytes, entries: Mapping[str, bytes]) -> None:
        self.path = path
        self._aead = AESGCM(key)
        self._entries = dict(entries)  # name -> nonce || ciphertext

    @classmethod
    def open(cls, directory: Path, credentials_directory: str | None = None) -> Vault:
        """The vault in `directory` (created empty if absent), with its key from
        `credentials_directory` (systemd's $CREDENTIALS_DIRECTORY) or the key file."""
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise VaultError(f"cannot create {directory}: {exc.strerror}") from None
        key = _key(directory, credentials_directory)
        path = directory / VAULT_NAME
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return cls(path, key, {})
        except OSError as exc:
            raise VaultError(f"cannot read {path}: {exc.strerror}") from None
        vault = cls(path, key, _parse(raw, path))
        for name in vault.names():
            vault.get(name)  # a wrong key or an edited file is an error now, not at first use
        return vault

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str) -> bytes | None:
        sealed = self._entries.get(name)
        if sealed is None:
            return None
        try:
            return self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], _aad(name))
        except InvalidTag:
            raise VaultError(
                f"{self.path}: entry {name!r} does not decrypt (wrong key, or the file was edited)"
            ) from None

    def set(self, name: str, value: bytes) -> bool:
        """Store `value` as `name`; True if it replaced an entry. Written to disk before
        returning; on failure the vault (memory and disk) is unchanged."""
        check_name(name)
        check_secret(value)
        nonce = secrets.token_bytes(_NONCE)
        entries = dict(self._entries)
        replaced = name in entries
        entries[name] = nonce + self._aead.encrypt(nonce, value, _aad(name))
        self._write(entries)
        return replaced

    def seal(self, context: str, value: bytes) -> bytes:
        """`value` encrypted under the vault's key for keeping elsewhere (the store), bound
        to `context` (what it belongs to: another context cannot open it)."""
        nonce = secrets.token_bytes(_NONCE)
        return nonce + self._aead.encrypt(nonce, value, _sealed_aad(context))

    def unseal(self, context: str, sealed: bytes) -> bytes:
        """What seal(context, ...) encrypted. VaultError when it does not open."""
        try:
            return self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], _sealed_aad(context))
        except (InvalidTag, ValueError):
            raise VaultError(
                f"a value sealed for {context!r} does not open (wrong key, or moved)"
            ) from None

    def delete(self, name: str) -> bool:
        if name not in self._entries:
            return False
        entries = dict(self._entries)
        del entries[name]
        self._write(entries)
        return True

    def _write(self, entries: dict[str, bytes]) -> None:
        body = {
            "format": FORMAT,
            "cipher": "AES-256-GCM",
            "entries": {n: base64.b64encode(v).decode() for n, v in sorted(entries.items())},
        }
        _write_private(self.path, json.dumps(body, indent=1).encode() + b"\n")
        self._entries = entries


def _aad(name: str) -> bytes:
    return b"netaccess-vault/1/" + name.encode()


def _sealed_aad(context: str) -> bytes:
    return b"netaccess-sealed/1/" + context.encode()


def _parse(raw: bytes, path: Path) -> dict[str, bytes]:
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VaultError(f"{path}: not a vault (not JSON: {exc})") from None
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise VaultError(f"{path}: not a vault of format {FORMAT}")
    entries = body.get("entries")
    if not isinstance(entries, dict):
        raise VaultError(f"{path}: entries must be an object")
    out: dict[str, bytes] = {}
    for name, value in entries.items():
        try:
            check_name(name)
            sealed = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
        except (VaultError, binascii.Error):
            raise VaultError(f"{path}: bad entry {name!r}") from None
        if len(sealed) < _NONCE + 16:
            raise VaultError(f"{path}: entry {name!r} is too short")
        out[name] = sealed
    return out


def _key(directory: Path, credentials_directory: str | None) -> bytes:
    if credentials_directory:
        path = Path(credentials_directory) / CREDENTIAL_NAME
        if path.exists():
            return _read_key(path)
    path = directory / KEY_NAME
    if not path.exists():
        try:
            _write_private(path, secrets.token_bytes(_KEY), exclusive=True)
        except FileExistsError:
            pass  # another process made it first: use theirs
        except OSError as exc:
            raise VaultError(f"cannot create the vault key {path}: {exc.strerror}") from None
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise VaultError(f"cannot read the vault key {path}: {exc.strerror}") from None
    if len(key) != _KEY:
        raise VaultError(f"{path}: a vault key is {_KEY} bytes, not {len(key)}")
    return key


def _write_private(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """`data` into `path` with mode 0600: written whole to a temporary file, synced, renamed
    (exclusive: created in place, only if absent)."""
    if exclusive:
        write_synced(path, data, exclusive=True)
        return
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    try:
        write_synced(temporary, data, exclusive=True)
        os.replace(temporary, path)
        sync_directory(path.parent)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise VaultError(f"cannot write {path}: {exc.strerror}") from None
