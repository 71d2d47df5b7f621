"""Files the appliance keeps beside its database (the vault, the current patch feed): written
whole and synced, so that after a crash a file is either the old one or the new one."""

from __future__ import annotations

import os
from pathlib import Path


def write_synced(path: Path, data: bytes, *, mode: int = 0o600, exclusive: bool = False) -> None:
    """`data` into `path` (created with `mode`, or truncated), every byte written, then
    fsync. exclusive: the file must not exist yet (FileExistsError if it does)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_directory(directory: Path) -> None:
    """Make a rename or creation in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
