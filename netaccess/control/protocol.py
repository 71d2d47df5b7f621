"""Framing and message shapes of the control protocol: one JSON object per line, both ways.

A request is {"id": N, "op": "endpoints.list", "args": {...}}; a response is
{"id": N, "ok": true, "result": ...} or
{"id": N, "ok": false, "error": {"code": ..., "message": ...}}.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any

# A full inventory listing of tens of thousands of endpoints still fits; a peer that sends more
# without a newline is broken or hostile.
MAX_LINE = 64 * 1024 * 1024
OPS = frozenset(
    {
        "status",
        "endpoints.list",
        "endpoints.show",
        "endpoints.set-role",
        "endpoints.coa",
        "roles.list",
        "enforcement.show",
        "users.add",
        "users.passwd",
        "users.del",
        "users.groups",
        "users.forget-mschapv2",
        "secrets.set",
        "secrets.list",
        "secrets.delete",
        "radius.clients",
        "radius.sessions",
        "users.list",
        "agent.publish",
        "agent.list",
        "posture.reports",
        "policy.explain",
        "policy.what-if",
        "patches.import",
        "patches.status",
        "patches.pull",
    }
)


class ErrorCode(enum.Enum):
    BAD_REQUEST = "bad-request"
    UNKNOWN_OP = "unknown-op"
    NOT_FOUND = "not-found"
    FORBIDDEN = "forbidden"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


class ControlError(Exception):
    """The peer sent something that is not the control protocol."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Request:
    id: int
    op: str
    args: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "op": self.op, "args": self.args}


@dataclass(frozen=True, slots=True)
class Response:
    id: int
    ok: bool
    result: Any = None
    error_code: ErrorCode | None = None
    error_message: str = ""

    @classmethod
    def success(cls, request_id: int, result: Any) -> Response:
        return cls(request_id, True, result)

    @classmethod
    def failure(cls, request_id: int, code: ErrorCode, message: str) -> Response:
        return cls(request_id, False, None, code, message)

    def to_json(self) -> dict[str, Any]:
        if self.ok:
            return {"id": self.id, "ok": True, "result": self.result}
        assert self.error_code is not None
        return {
            "id": self.id,
            "ok": False,
            "error": {"code": self.error_code.value, "message": self.error_message},
        }


def encode(message: Request | Response) -> bytes:
    return json.dumps(message.to_json(), separators=(",", ":")).encode() + b"\n"


class LineDecoder:
    """Splits a byte stream into lines of at most `max_line` bytes."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._buffer = bytearray()
        self._max_line = max_line

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        lines: list[bytes] = []
        while (end := self._buffer.find(b"\n")) >= 0:
            lines.append(bytes(self._buffer[:end]))
            del self._buffer[: end + 1]
        if len(self._buffer) > self._max_line:
            raise ControlError(ErrorCode.BAD_REQUEST, f"line longer than {self._max_line} bytes")
        return lines

    @property
    def pending(self) -> int:
        return len(self._buffer)


def _load_object(line: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ControlError(ErrorCode.BAD_REQUEST, f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ControlError(ErrorCode.BAD_REQUEST, "expected a JSON object")
    return obj


def decode_request(line: bytes) -> Request:
    obj = _load_object(line)
    rid, op, args = obj.get("id"), obj.get("op"), obj.get("args", {})
    if not isinstance(rid, int) or isinstance(rid, bool):
        raise ControlError(ErrorCode.BAD_REQUEST, "request id must be an integer")
    if not isinstance(op, str):
        raise ControlError(ErrorCode.BAD_REQUEST, "request op must be a string")
    if not isinstance(args, dict):
        raise ControlError(ErrorCode.BAD_REQUEST, "request args must be an object")
    if op not in OPS:
        raise ControlError(
            ErrorCode.UNKNOWN_OP, f"unknown op {op!r} (known: {', '.join(sorted(OPS))})"
        )
    return Request(rid, op, args)


def decode_response(line: bytes) -> Response:
    obj = _load_object(line)
    rid, ok = obj.get("id"), obj.get("ok")
    if not isinstance(rid, int) or not isinstance(ok, bool):
        raise ControlError(ErrorCode.BAD_REQUEST, "response needs an integer id and a boolean ok")
    if ok:
        return Response.success(rid, obj.get("result"))
    err = obj.get("error")
    if not isinstance(err, dict):
        raise ControlError(ErrorCode.BAD_REQUEST, "failed response without an error object")
    try:
        code = ErrorCode(err.get("code"))
    except ValueError:
        code = ErrorCode.INTERNAL
    return Response.failure(rid, code, str(err.get("message", "")))
