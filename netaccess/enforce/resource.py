"""What every kernel handle of enforce shares: close() once, and use as a context manager."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self


class Closing:
    """A handle released by close(); `with handle:` closes it at the end of the block."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SocketOwner(Closing):
    """A handle around one socket in `_sock`; close() closes it once (also after a failed
    __init__, which may have left no `_sock` at all)."""

    _sock: Any

    def close(self) -> None:
        sock = getattr(self, "_sock", None)
        if sock is not None:
            self._sock = None
            sock.close()
