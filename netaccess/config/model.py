"""The appliance config as frozen values; defaults here are the single source for load.py too.

Only load.py validates: build these directly only from values that are already known good.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path


class LogLevel(enum.Enum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    """netaccessd itself. shutdown_grace: seconds work may take to finish after SIGTERM (≤ 300)."""

    state_dir: Path = Path("/var/lib/netaccess")
    control_socket: Path = Path("/run/netaccess/control.sock")
    admin_group: str = "netaccess-admin"
    log_level: LogLevel = LogLevel.INFO
    shutdown_grace: float = 5.0
    watchdog: bool = True


@dataclass(frozen=True, slots=True)
class InterfacesConfig:
    """Linux interface names: `access` faces endpoints (at least one), `upstream` the network.

    No name appears twice, in one list or across both.
    """

    access: tuple[str, ...] = ("acc0",)
    upstream: tuple[str, ...] = ("up0",)


@dataclass(frozen=True, slots=True)
class DetectionConfig:
    """Learning endpoints from DHCP and ARP on the access interfaces.

    malformed_log_interval: seconds between log lines about malformed frames, per interface (> 0).
    receive_buffer: capture socket receive buffer in bytes (64 KiB to 256 MiB).
    max_endpoints: inventory size past which new MACs are counted and refused, so a DHCP
        starvation flood of random MACs cannot exhaust memory and disk (1 to 10,000,000).
    """

    enabled: bool = True
    malformed_log_interval: float = 10.0
    receive_buffer: int = 4 * 1024 * 1024
    max_endpoints: int = 100_000


@dataclass(frozen=True, slots=True)
class ApplianceConfig:
    """A whole validated config; `source` names where it came from, for logs and the CLI."""

    daemon: DaemonConfig
    interfaces: InterfacesConfig
    detection: DetectionConfig
    source: str
