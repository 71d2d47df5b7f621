"""What both programs do first: parse the command line, load the config or refuse, log JSON."""

from __future__ import annotations

import argparse
import gc
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


# Young collections every 20,000 net allocations instead of 700: a posture session decodes
# hundreds of packages and the portal builds a request and response per probe; at 700 the
# collector ran several times per session (an 18% share of a session's CPU, measured).
# Older generations: rarely, as the heap holds the inventory and barely churns.
GC_THRESHOLDS = (20_000, 50, 100)


def tune_gc() -> None:
    """After startup: move what was built so far (config, modules, the inventory loaded
    from the store) out of the collector's sight, and collect young objects less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
