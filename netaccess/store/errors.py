"""The error base of the store layer; every failure of netaccess.store is a StoreError."""

from __future__ import annotations


class StoreError(Exception):
    """The database could not be opened, migrated, read or written.

    The message names the operation, the database file and what was expected; the
    underlying sqlite3 error, when there is one, is chained as __cause__.
    """
