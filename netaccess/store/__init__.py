"""Persistence for the daemon: SQLite in WAL mode with versioned migrations.

Holds the endpoint inventory and its append-only event log; imports policy models only.
"""

from netaccess.store.endpoints import Store
from netaccess.store.errors import StoreError
from netaccess.store.migrations import MIGRATIONS, Migration, migrate, newest_version

__all__ = ["MIGRATIONS", "Migration", "Store", "StoreError", "migrate", "newest_version"]
