"""Appliance config: TOML text -> frozen, validated values (model.py) via load.py.

Every problem is a ConfigIssue naming the file, key path and line; all of them raise as ConfigError.
"""

from netaccess.config.errors import ConfigError, ConfigIssue
from netaccess.config.load import (
    DEFAULT_CONFIG_TEXT,
    DEFAULT_SOURCE,
    default_config,
    load_config_file,
    load_config_text,
)
from netaccess.config.model import (
    ApplianceConfig,
    DaemonConfig,
    DetectionConfig,
    EnforcementConfig,
    InterfacesConfig,
    LogLevel,
    PortalConfig,
)

__all__ = [
    "DEFAULT_CONFIG_TEXT",
    "DEFAULT_SOURCE",
    "ApplianceConfig",
    "ConfigError",
    "ConfigIssue",
    "DaemonConfig",
    "DetectionConfig",
    "EnforcementConfig",
    "InterfacesConfig",
    "LogLevel",
    "PortalConfig",
    "default_config",
    "load_config_file",
    "load_config_text",
]
