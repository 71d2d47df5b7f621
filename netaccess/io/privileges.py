"""Started as root, netaccessd prepares its directories and becomes its unprivileged user.

Under systemd (User=netaccess) it already is that user and this does nothing. Either way it
ends with no capabilities: everything privileged comes from the enforcer as descriptors.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterable
from pathlib import Path


class PrivilegeError(Exception):
    pass


def become(user: str, writable_dirs: Iterable[Path]) -> None:
    """If root: create `writable_dirs` for `user`, then switch uid/gid/groups for good."""
    if os.geteuid() != 0:
        return
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise PrivilegeError(
            f"daemon.user: no such user {user!r}"
            " (create it with systemd-sysusers or tools/bootstrap)"
        ) from None
    if entry.pw_uid == 0:
        return  # configured to stay root (development only)
    for directory in writable_dirs:
        directory.mkdir(parents=True, exist_ok=True, mode=0o750)
        # Its entries too: a database a root-run daemon left (an older release, a manual
        # run) must stay writable once we are no longer root. Symlinks are not followed.
        for path in (directory, *directory.iterdir()):
            if path.lstat().st_uid != entry.pw_uid and not path.is_symlink():
                os.chown(path, entry.pw_uid, entry.pw_gid)
    os.initgroups(user, entry.pw_gid)
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    if os.geteuid() == 0 or os.getegid() == 0:
        raise PrivilegeError("dropping root failed")
