"""What both programs do first: parse the command line, load the config or refuse, log JSON."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import netaccess
from netaccess.config import ApplianceConfig, ConfigError, default_config, load_config_file
from netaccess.io import jsonlog

EXIT_BAD_CONFIG = 2


def configure(prog: str, description: str, argv: Sequence[str] | None) -> ApplianceConfig | None:
    """The validated config (logging set up), or None after printing why it is refused."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", metavar="FILE", help="TOML config (default: the embedded one)")
    parser.add_argument("--version", action="version", version=f"{prog} {netaccess.__version__}")
    args = parser.parse_args(argv)
    try:
        config = load_config_file(args.config) if args.config else default_config()
    except ConfigError as exc:
        print(f"{prog}: refusing to start, configuration is invalid:\n{exc}", file=sys.stderr)
        return None
    jsonlog.setup(config.daemon.log_level.value)
    return config
