"""The one error the lab raises: what failed, with the command and its output when there was one."""

from __future__ import annotations


class LabError(Exception):
    """Building, running or tearing down the lab failed."""
