"""The error base of the enforcement layer; every kernel-facing failure is an EnforcementError."""

from __future__ import annotations


class EnforcementError(Exception):
    """The kernel refused or could not be asked: a ruleset, set update, conntrack or probe.

    The message names the operation, the object (table, set, namespace, library) and what was
    expected; the underlying OSError or netlink error, when there is one, is chained.
    """
