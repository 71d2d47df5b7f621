"""DHCP leases as the endpoints saw them: records written by our udhcpc hook script."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Lease:
    """One endpoint's current lease (from WORKDIR/leases/epK)."""

    endpoint: int
    ip: str
    prefixlen: int
    mac: str
    at: float  # wall-clock time the lease was bound or renewed (time.time() scale)
    router: str | None
    dns: tuple[str, ...]
    server: str | None  # option 54, the DHCP server identifier
    seconds: int | None  # option 51, the lease time
    captive_portal: str | None  # option 114 (RFC 8910 captive-portal API URI), if offered

    @classmethod
    def read(cls, endpoint: int, path: Path) -> Lease | None:
        """Parse a lease record; None when there is none (no lease, or released)."""
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        fields: dict[str, str] = {}
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                fields[key.strip()] = value.strip()
        if not fields.get("ip") or not fields.get("at"):
            return None  # hook script still writing or nonsense; the writer renames atomically
        return cls(
            endpoint=endpoint,
            ip=fields["ip"],
            prefixlen=int(fields.get("prefixlen") or 32),
            mac=fields.get("mac", "").lower(),
            at=float(fields["at"]),
            router=fields.get("router") or None,
            dns=tuple(fields.get("dns", "").split()),
            server=fields.get("serverid") or None,
            seconds=int(fields["lease"]) if fields.get("lease", "").isdigit() else None,
            captive_portal=_decode_option(fields.get("opt114", "")),
        )


def _decode_option(value: str) -> str | None:
    """udhcpc exports options it does not know as hex; decode such a string option."""
    if not value:
        return None
    try:
        return bytes.fromhex(value).decode("utf-8", errors="replace")
    except ValueError:
        return value  # already text
