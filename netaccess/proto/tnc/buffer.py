"""A cursor over bytes for the TNC codecs: big-endian integers of 8, 16, 24 and 32 bits,
read with pull_* and written with push_*. Reading past the end raises BufferUnderrun."""

from __future__ import annotations

from netaccess.proto.errors import LocalProtocolError, RemoteProtocolError


class BufferUnderrun(RemoteProtocolError):
    """A field runs past the end of the bytes it should be in."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class Buffer:
    """Reads from `data` starting at 0; `offset` is where the next pull starts."""

    __slots__ = ("_data", "offset")

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._data = bytes(data)
        self.offset = 0

    @property
    def remaining(self) -> int:
        return len(self._data) - self.offset

    def at_end(self) -> bool:
        return self.offset >= len(self._data)

    def _take(self, size: int, what: str) -> bytes:
        if size < 0 or self.offset + size > len(self._data):
            raise BufferUnderrun(
                f"{what}: needs {size} bytes at offset {self.offset}, "
                f"{len(self._data) - self.offset} left",
                self.offset,
            )
        start = self.offset
        self.offset += size
        return self._data[start : self.offset]

    def pull_bytes(self, size: int, what: str = "field") -> bytes:
        return self._take(size, what)

    def pull_rest(self) -> bytes:
        return self._take(self.remaining, "rest")

    def pull_uint8(self, what: str = "uint8") -> int:
        return self._take(1, what)[0]

    def pull_uint16(self, what: str = "uint16") -> int:
        return int.from_bytes(self._take(2, what), "big")

    def pull_uint24(self, what: str = "uint24") -> int:
        return int.from_bytes(self._take(3, what), "big")

    def pull_uint32(self, what: str = "uint32") -> int:
        return int.from_bytes(self._take(4, what), "big")


class Writer:
    """Collects big-endian fields; `data()` gives the bytes so far."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def data(self) -> bytes:
        return b"".join(self._parts)

    def push_bytes(self, value: bytes) -> None:
        self._parts.append(bytes(value))

    def _push(self, value: int, size: int, what: str) -> None:
        if not 0 <= value < 1 << (8 * size):
            raise LocalProtocolError(f"{what} {value} does not fit in {8 * size} bits")
        self._parts.append(value.to_bytes(size, "big"))

    def push_uint8(self, value: int, what: str = "uint8") -> None:
        self._push(value, 1, what)

    def push_uint16(self, value: int, what: str = "uint16") -> None:
        self._push(value, 2, what)

    def push_uint24(self, value: int, what: str = "uint24") -> None:
        self._push(value, 3, what)

    def push_uint32(self, value: int, what: str = "uint32") -> None:
        self._push(value, 4, what)
