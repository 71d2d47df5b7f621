"""The versioned store of agent builds in the state directory: files kept by content
(agents/<sha256>), described in the database, and read back in chunks for downloads."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import trio

from netaccess.policy.agents import AgentBuild, check_build_names
from netaccess.store import Store

CHUNK = 256 * 1024


class AgentPublishError(Exception):
    """The build cannot be published; the message says why."""


class AgentStore:
    def __init__(self, directory: Path, store: Store) -> None:
        self.directory = directory
        self._store = store
        self._builds: list[AgentBuild] | None = None  # newest first; read once per publish

    def builds(self) -> list[AgentBuild]:
        """Every published build, newest first (each posture session asks: kept in memory,
        since builds change only through publish)."""
        if self._builds is None:
            self._builds = self._store.agent_builds()
        return list(self._builds)

    def find(self, platform: str, version: str, filename: str) -> AgentBuild | None:
        for build in self.builds():
            if (build.platform, build.version, build.filename) == (platform, version, filename):
                return build
        return None

    def path_of(self, build: AgentBuild) -> Path:
        return self.directory / build.sha256

    async def publish(self, source: Path, platform: str, version: str) -> AgentBuild:
        """Copy `source` in (hashing it on the way, off the event loop) and record it."""
        problem = check_build_names(platform, version, source.name)
        if problem is not None:
            raise AgentPublishError(problem)
        if any(b.platform == platform and b.version == version for b in self.builds()):
            raise AgentPublishError(f"{platform} {version} is already published")
        sha256, size = await trio.to_thread.run_sync(self._copy_in, source)
        build = AgentBuild(platform, version, source.name, size, sha256, time.time())
        self._builds = None
        if not self._store.add_agent_build(build):
            raise AgentPublishError(f"{platform} {version} is already published")
        return build

    async def chunks(self, build: AgentBuild, first: int, length: int) -> AsyncIterator[bytes]:
        """`length` bytes of the build's file from offset `first`, a chunk at a time."""
        async with await trio.open_file(self.path_of(build), "rb") as file:
            await file.seek(first)
            left = length
            while left > 0:
                data = await file.read(min(CHUNK, left))
                if not data:
                    return  # the file shrank: the connection is closed short
                left -= len(data)
                yield data

    def _copy_in(self, source: Path) -> tuple[str, int]:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o755)
        partial = self.directory / f".incoming-{os.getpid()}-{time.monotonic_ns()}"
        digest = hashlib.sha256()
        size = 0
        try:
            with open(source, "rb") as reader, open(partial, "wb") as writer:
                while data := reader.read(1024 * 1024):
                    digest.update(data)
                    writer.write(data)
                    size += len(data)
                writer.flush()
                os.fsync(writer.fileno())
            os.chmod(partial, 0o644)
            os.replace(partial, self.directory / digest.hexdigest())
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise AgentPublishError(
                f"cannot copy {source} into {self.directory}: {exc.strerror or exc}"
                " (the daemon reads it as its own user: the file must be readable to it)"
            ) from None
        return digest.hexdigest(), size
