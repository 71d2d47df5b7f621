"""Portal users' passwords: scrypt hashes (RFC 7914, from `cryptography`) in one string, and
the throttle that makes guessing them slow: failures per endpoint and per user, with a
lockout that ends on its own. Pure: time is an argument."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

# N=2^15, r=8, p=1: 32 MiB and some 60 ms per check here; enough to make an offline guess
# costly while a login stays quick. Stored with the hash, so they can rise later.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 15, 8, 1
SALT_BYTES = 16
HASH_BYTES = 32
SCHEME = "scrypt"
MAX_PASSWORD_BYTES = 1024


class CredentialError(ValueError):
    """A password or stored hash that cannot be used; the message says why."""


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """`scrypt$N$r$p$salt$hash`, salt and hash in unpadded base64."""
    secret = _encoded(password)
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = Scrypt(salt=salt, length=HASH_BYTES, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P).derive(secret)
    return "$".join((SCHEME, str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)))


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches `stored` (from hash_password). A malformed `stored`
    raises CredentialError rather than failing every login quietly."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != SCHEME:
            raise ValueError(f"scheme {scheme!r}")
        kdf = Scrypt(salt=_unb64(salt), length=len(_unb64(digest)), n=int(n), r=int(r), p=int(p))
        expected = _unb64(digest)
    except ValueError as exc:
        raise CredentialError(f"stored password hash is malformed: {exc}") from None
    try:
        secret = _encoded(password)
    except CredentialError:
        return False
    try:
        kdf.verify(secret, expected)
    except InvalidKey:
        return False
    return True


def check_new_password(password: str) -> None:
    """Raise CredentialError unless `password` is acceptable for a new account."""
    if len(password) < 8:
        raise CredentialError("a password needs at least 8 characters")
    _encoded(password)


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """After `max_failures` failures within `window` seconds, a key (an endpoint, or a
    realm's user) is locked out for `lockout` seconds."""

    max_failures: int = 9
    window: float = 900.0
    lockout: float = 300.0


@dataclass(slots=True)
class _Record:
    failures: list[float] = field(default_factory=list)
    locked_until: float = 0.0


class LoginThrottle:
    """Failed logins per key; `now` is seconds on any monotonic clock."""

    def __init__(self, policy: ThrottlePolicy | None = None, *, max_keys: int = 100_000) -> None:
        self.policy = policy or ThrottlePolicy()
        self._records: dict[str, _Record] = {}
        self._max_keys = max_keys

    def locked_until(self, keys: tuple[str, ...], now: float) -> float | None:
        """When the latest lockout among `keys` ends, if one is in force."""
        ends = [
            r.locked_until for k in keys if (r := self._records.get(k)) and r.locked_until > now
        ]
        return max(ends) if ends else None

    def failed(self, keys: tuple[str, ...], now: float) -> float | None:
        """Record a failure for each key; return when the lockout it started ends, if any."""
        if len(self._records) >= self._max_keys:
            self._forget_old(now)
        ends = []
        for key in keys:
            record = self._records.setdefault(key, _Record())
            record.failures = [t for t in record.failures if now - t < self.policy.window]
            record.failures.append(now)
            if len(record.failures) >= self.policy.max_failures:
                record.locked_until = now + self.policy.lockout
                record.failures.clear()
            if record.locked_until > now:
                ends.append(record.locked_until)
        return max(ends) if ends else None

    def succeeded(self, keys: tuple[str, ...]) -> None:
        for key in keys:
            self._records.pop(key, None)

    def _forget_old(self, now: float) -> None:
        stale = [
            key
            for key, record in self._records.items()
            if record.locked_until <= now
            and all(now - t >= self.policy.window for t in record.failures)
        ]
        for key in stale:
            del self._records[key]


def _encoded(password: str) -> bytes:
    try:
        secret = password.encode("utf-8")
    except UnicodeEncodeError:
        raise CredentialError("a password must be valid text") from None
    if len(secret) > MAX_PASSWORD_BYTES:
        raise CredentialError(f"a password may have at most {MAX_PASSWORD_BYTES} bytes")
    return secret


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


__all__ = [
    "CredentialError",
    "LoginThrottle",
    "ThrottlePolicy",
    "check_new_password",
    "hash_password",
    "verify_password",
]
