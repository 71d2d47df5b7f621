"""nftables from Python, with no process per change: set elements as raw nf_tables netlink
batches, commands and listings through libnftables (ctypes), and `nft -f -` for a whole
ruleset. Not thread-safe: one owner thread per Nftables."""

from __future__ import annotations

import ctypes
import enum
import functools
import ipaddress
import json
import os
import struct
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

from pyroute2.netlink.nlsocket import (  # type: ignore[import-untyped,unused-ignore]
    NetlinkSocket,
)

from netaccess.enforce.errors import EnforcementError
from netaccess.enforce.resource import Closing
from netaccess.enforce.ruleset import TABLE_FAMILY, TABLE_NAME, SetKind

LIBRARY = "libnftables.so.1"
NETNS_DIR = "/run/netns"
LOAD_TIMEOUT = 60.0  # seconds; a 100k-endpoint ruleset loads in about one

# include/nftables/libnftables.h
NFT_CTX_DEFAULT = 0
NFT_CTX_OUTPUT_JSON = 1 << 4
CLONE_NEWNET = 0x40000000

# linux/netlink.h, linux/netfilter/nfnetlink.h, linux/netfilter/nf_tables.h
NETLINK_NETFILTER = 12
NLMSG_ERROR = 2
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_CREATE = 0x400
NLA_F_NESTED = 0x8000
NFNL_MSG_BATCH_BEGIN = 0x10
NFNL_MSG_BATCH_END = 0x11
NFNL_SUBSYS_NFTABLES = 10
NFPROTO_INET = 1
NFT_MSG_NEWSETELEM = 12
NFT_MSG_DELSETELEM = 14
NFT_MSG_DESTROYSETELEM = 30  # Linux 6.3: a delete that ignores a missing element
NFTA_SET_ELEM_LIST_TABLE = 1
NFTA_SET_ELEM_LIST_SET = 2
NFTA_SET_ELEM_LIST_ELEMENTS = 3
NFTA_LIST_ELEM = 1
NFTA_SET_ELEM_KEY = 1
NFTA_DATA_VALUE = 1
EINVAL = 22
EOPNOTSUPP = 95
SOL_SOCKET = 1
SO_SNDBUFFORCE = 32
SO_RCVBUFFORCE = 33
SO_RCVTIMEO = 20
SOCKET_BUFFER = 64 * 1024 * 1024  # charged only while a batch or its answers are in flight
RECEIVE_TIMEOUT = 5
# The elements of one message sit in one attribute, whose length field has 16 bits.
MESSAGE_ELEMENT_BYTES = 60_000

_HEADER = struct.Struct("=IHHII")  # nlmsghdr
_NFGEN = struct.Struct("=BBH")  # nfgenmsg: family, version, res_id
_ATTR = struct.Struct("=HH")
_ERROR = struct.Struct("=i")
# The batch delimiters name the subsystem in res_id, big-endian.
_NFTABLES_RES_ID = struct.unpack("=H", struct.pack(">H", NFNL_SUBSYS_NFTABLES))[0]


class ElementOp(enum.Enum):
    ADD = "add"  # present afterwards; already present is fine
    REMOVE = "remove"  # absent afterwards; already absent is fine


@dataclass(frozen=True, slots=True)
class ElementUpdate:
    """Add or remove `elements` (as ruleset.normalize gives them) in one set of the table."""

    op: ElementOp
    set_name: str
    kind: SetKind
    elements: tuple[str, ...]


class Nftables(Closing):
    """One libnftables context; `netns` (a name under /run/netns) or the caller's namespace.

    The context's netlink socket is opened once, in the namespace it is created in, and stays
    there: nothing but the creation runs outside the caller's namespace.
    """

    def __init__(self, netns: str | None = None, *, nft_command: str = "nft") -> None:
        self._netns = netns
        self._nft_command = nft_command
        self._lib = _load_library()
        with entered_netns(netns):
            ctx = self._lib.nft_ctx_new(NFT_CTX_DEFAULT)
        if not ctx:
            raise EnforcementError(
                f"nft_ctx_new: libnftables returned no context ({_where(netns)})"
            )
        self._ctx: int | None = ctx
        # Buffered, so results and errors come back as strings instead of going to stdout.
        if self._lib.nft_ctx_buffer_output(ctx) != 0 or self._lib.nft_ctx_buffer_error(ctx) != 0:
            self.close()
            raise EnforcementError("nft_ctx_buffer_output/error: libnftables refused buffering")
        self._plain_flags: int = self._lib.nft_ctx_output_get_flags(ctx)
        self._netlink: _SetElementBatches | None = None

    @property
    def netns(self) -> str | None:
        return self._netns

    def run(self, commands: str) -> str:
        """Run `commands` (nft syntax, one per line) as ONE transaction; return nft's output.

        Raises EnforcementError with nft's own message when any command fails; then none of
        them took effect.
        """
        return self._run(commands, json_output=False)

    def update_elements(self, updates: Sequence[ElementUpdate]) -> None:
        """Apply `updates` as ONE nf_tables transaction, sent as a raw netlink batch.

        No parsing and no cache refresh, unlike a libnftables command: one endpoint's change
        costs about 0.1 ms whatever the size of the sets. Raises EnforcementError naming the set the
        kernel refused (a missing set, say); then none of the updates took effect.
        """
        self.prepare_elements(updates)()

    def prepare_elements(self, updates: Sequence[ElementUpdate]) -> Callable[[], None]:
        """update_elements in two steps: encode `updates` now, and return the function that
        sends them as ONE transaction. The encoding is Python work; the commit is the
        kernel's, and may run on another thread (one at a time, and no other call of this
        object meanwhile)."""
        if not updates:
            return _nothing
        if self._netlink is None:
            self._netlink = _SetElementBatches(self._netns)
        return self._netlink.prepare(updates)

    def run_json(self, commands: str) -> Any:
        """Run a listing command and return its JSON output, parsed."""
        out = self._run(commands, json_output=True)
        try:
            return json.loads(out)
        except ValueError as exc:
            raise EnforcementError(f"{commands!r}: nft printed no valid JSON: {exc}") from exc

    def list_set(self, name: str) -> list[str]:
        """Elements of set `name` of the netaccess table, as nft prints them."""
        listing = self.run_json(f"list set {TABLE_FAMILY} {TABLE_NAME} {name}")
        for item in listing.get("nftables", []):
            if "set" in item:
                return set_elements(item["set"])
        raise EnforcementError(f"list set {name}: nft's JSON holds no set ({_where(self._netns)})")

    def load_ruleset(self, text: str) -> None:
        """Load a whole ruleset file with `nft -f -`: one process, one transaction."""
        argv = [self._nft_command, "-f", "-"]
        if self._netns is not None:
            argv = ["ip", "netns", "exec", self._netns, *argv]
        try:
            result = subprocess.run(
                argv, input=text, capture_output=True, text=True, timeout=LOAD_TIMEOUT, check=False
            )
        except FileNotFoundError as exc:
            raise EnforcementError(f"loading the ruleset: {argv[0]} not found") from exc
        except subprocess.TimeoutExpired as exc:
            raise EnforcementError(
                f"loading the ruleset ({_where(self._netns)}): nft did not finish within"
                f" {LOAD_TIMEOUT:g} s"
            ) from exc
        if result.returncode != 0:
            detail = result.stderr.strip() or "(no message)"
            raise EnforcementError(
                f"loading the ruleset ({_where(self._netns)}): nft -f exited with"
                f" {result.returncode}: {detail}"
            )

    def close(self) -> None:
        ctx = getattr(self, "_ctx", None)  # absent when __init__ failed early
        if ctx is not None:
            self._ctx = None
            self._lib.nft_ctx_free(ctx)
        netlink = getattr(self, "_netlink", None)
        if netlink is not None:
            self._netlink = None
            netlink.close()

    def __del__(self) -> None:
        self.close()

    def _run(self, commands: str, *, json_output: bool) -> str:
        ctx = self._ctx
        if ctx is None:
            raise EnforcementError("nftables context used after close()")
        lib = self._lib
        if json_output:
            lib.nft_ctx_output_set_flags(ctx, self._plain_flags | NFT_CTX_OUTPUT_JSON)
        try:
            rc = lib.nft_run_cmd_from_buffer(ctx, commands.encode())
        finally:
            if json_output:
                lib.nft_ctx_output_set_flags(ctx, self._plain_flags)
        # Reading a buffer also rewinds it, so stale text never leaks into the next call.
        out = (lib.nft_ctx_get_output_buffer(ctx) or b"").decode()
        err = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode()
        if rc != 0:
            raise EnforcementError(
                f"nft ({_where(self._netns)}) refused {_summary(commands)}:"
                f" {err.strip() or '(no message)'}"
            )
        return out


class _SetElementBatches:
    """nf_tables set element messages over a NETLINK_NETFILTER socket (pyroute2's, used only
    to send and receive bytes: its nftables module cannot encode set elements)."""

    def __init__(self, netns: str | None) -> None:
        self._netns = netns
        try:
            self._sock: Any = NetlinkSocket(family=NETLINK_NETFILTER, netns=netns)
        except OSError as exc:
            raise EnforcementError(f"nf_tables netlink socket ({_where(netns)}): {exc}") from exc
        self._sock.setsockopt(SOL_SOCKET, SO_SNDBUFFORCE, SOCKET_BUFFER)
        self._sock.setsockopt(SOL_SOCKET, SO_RCVBUFFORCE, SOCKET_BUFFER)
        self._sock.setsockopt(SOL_SOCKET, SO_RCVTIMEO, struct.pack("@ll", RECEIVE_TIMEOUT, 0))
        self._seq = 0
        self._destroy: bool | None = None  # DESTROYSETELEM known to work / not to exist

    def prepare(self, updates: Sequence[ElementUpdate]) -> Callable[[], None]:
        destroy = self._destroy is not False
        return functools.partial(self._apply, updates, destroy, self._messages(updates, destroy))

    def _apply(
        self, updates: Sequence[ElementUpdate], destroy: bool, messages: list[_Message]
    ) -> None:
        while True:
            if destroy != (self._destroy is not False):  # learnt meanwhile: encode again
                destroy = self._destroy is not False
                messages = self._messages(updates, destroy)
            if not messages:
                return
            failures = self._send_batch(messages)
            if not failures:
                if destroy and any(m.kind == NFT_MSG_DESTROYSETELEM for m in messages):
                    self._destroy = True
                return
            if self._destroy is None and any(
                f.kind == NFT_MSG_DESTROYSETELEM and f.error in (-EINVAL, -EOPNOTSUPP)
                for f in failures
            ):
                self._destroy = False  # an older kernel: delete after an add instead
                continue
            first = failures[0]
            raise EnforcementError(
                f"nf_tables ({_where(self._netns)}) refused {first.what} in table"
                f" {TABLE_FAMILY} {TABLE_NAME}: {os.strerror(-first.error)}"
                f" (errno {-first.error}); the batch of {len(updates)} updates was rolled back"
            )

    def close(self) -> None:
        self._sock.close()

    def _messages(self, updates: Sequence[ElementUpdate], destroy: bool) -> list[_Message]:
        messages: list[_Message] = []
        for update in updates:
            if not update.elements:
                continue
            encoded = _encoded(update.kind, update.elements)
            if update.op is ElementOp.ADD:
                kinds = [NFT_MSG_NEWSETELEM]
            elif destroy:
                kinds = [NFT_MSG_DESTROYSETELEM]
            else:
                # Without DESTROYSETELEM a delete of a missing element fails the batch; an
                # add first, in the same transaction, makes it always succeed.
                kinds = [NFT_MSG_NEWSETELEM, NFT_MSG_DELSETELEM]
            for kind in kinds:
                messages += self._set_messages(kind, update.set_name, encoded)
        return messages

    def _set_messages(self, kind: int, set_name: str, encoded: _Encoded) -> list[_Message]:
        names = _set_attrs(set_name)
        flags = NLM_F_REQUEST | (NLM_F_CREATE if kind == NFT_MSG_NEWSETELEM else 0)
        verb = _VERBS[kind]
        blob, size = encoded
        chunk_bytes = max(1, MESSAGE_ELEMENT_BYTES // size) * size
        messages = []
        for start in range(0, len(blob), chunk_bytes):
            elements = blob[start : start + chunk_bytes]
            nest = _ATTR.pack(
                _ATTR.size + len(elements), NFTA_SET_ELEM_LIST_ELEMENTS | NLA_F_NESTED
            )
            self._seq = (self._seq + 1) & 0xFFFFFFFF
            data = _message(
                (NFNL_SUBSYS_NFTABLES << 8) | kind,
                flags,
                self._seq,
                NFPROTO_INET,
                0,
                names + nest + elements,
            )
            what = f"{verb} {len(elements) // size} elements of set {set_name}"
            messages.append(_Message(self._seq, kind, what, data))
        return messages

    def _send_batch(self, messages: list[_Message]) -> list[_Failure]:
        """Send one transaction; return the messages the kernel refused (then it rolled back).

        Only the last message asks for an acknowledgement: the kernel reports every failing
        message anyway and goes on after one, so the last message's answer ends the batch.
        """
        last = messages[-1]
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        begin_seq = self._seq
        begin = _message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, begin_seq, 0, _NFTABLES_RES_ID, b"")
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        end = _message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, self._seq, 0, _NFTABLES_RES_ID, b"")
        acked = _with_ack(last.data)
        body = b"".join(m.data for m in messages[:-1])
        try:
            self._sock.send(begin + body + acked + end)
        except OSError as exc:
            raise EnforcementError(f"nf_tables batch send ({_where(self._netns)}): {exc}") from exc
        by_seq = {m.seq: m for m in messages}
        failures: list[_Failure] = []
        while True:
            for seq, error in self._answers():
                if seq == begin_seq and error:
                    # The kernel could not even queue its answers (ENOMEM): the whole batch.
                    return [_Failure(NFNL_MSG_BATCH_BEGIN, "the batch", error)]
                message = by_seq.get(seq)
                if message is None:
                    continue  # an answer to an earlier, abandoned batch
                if error:
                    failures.append(_Failure(message.kind, message.what, error))
                if seq == last.seq:
                    return failures

    def _answers(self) -> list[tuple[int, int]]:
        """(sequence number, error) of each NLMSG_ERROR in one datagram."""
        try:
            data: bytes = self._sock.recv(1024 * 1024)
        except OSError as exc:
            raise EnforcementError(
                f"nf_tables batch ({_where(self._netns)}): no answer within"
                f" {RECEIVE_TIMEOUT} s ({exc})"
            ) from exc
        answers = []
        offset = 0
        while offset + _HEADER.size <= len(data):
            length, msg_type, _flags, seq, _pid = _HEADER.unpack_from(data, offset)
            if length < _HEADER.size:
                break
            if msg_type == NLMSG_ERROR:
                answers.append((seq, _ERROR.unpack_from(data, offset + _HEADER.size)[0]))
            offset += (length + 3) & ~3
        return answers


@dataclass(frozen=True, slots=True)
class _Message:
    seq: int
    kind: int
    what: str
    data: bytes


@dataclass(frozen=True, slots=True)
class _Failure:
    kind: int
    what: str
    error: int


_VERBS = {
    NFT_MSG_NEWSETELEM: "adding",
    NFT_MSG_DELSETELEM: "deleting",
    NFT_MSG_DESTROYSETELEM: "removing",
}


def _element_header(value_size: int) -> bytes:
    """LIST_ELEM { KEY { DATA_VALUE <value_size bytes> } }, all but the value and padding."""
    value_len = _ATTR.size + value_size
    key_len = _ATTR.size + value_len + (-value_len % 4)
    return (
        _ATTR.pack(_ATTR.size + key_len, NFTA_LIST_ELEM | NLA_F_NESTED)
        + _ATTR.pack(key_len, NFTA_SET_ELEM_KEY | NLA_F_NESTED)
        + _ATTR.pack(value_len, NFTA_DATA_VALUE)
    )


_MAC_HEADER, _IPV4_HEADER, _IPV6_HEADER = (_element_header(n) for n in (6, 4, 16))


class _Encoded(NamedTuple):
    """Elements as the kernel reads them, back to back, each `size` bytes long."""

    blob: bytes
    size: int


_MAC_HEADER_HEX = _MAC_HEADER.hex()


def _encoded(kind: SetKind, elements: Sequence[str]) -> _Encoded:
    """The elements (as ruleset.normalize gives them) as the kernel stores their keys (6 MAC
    bytes, or the address in network order) in their attributes, concatenated."""
    if kind is SetKind.MAC:
        # One hex string for all of them, one conversion: a 10k burst in about a millisecond.
        # With its colons where they belong, a MAC leaves 12 characters that fromhex checks.
        if any(len(e) != 17 or e[2::3] != ":::::" for e in elements):
            raise ValueError(f"set elements {list(elements)[:3]}...: expected MAC addresses")
        separator = "0000" + _MAC_HEADER_HEX  # a key's padding, then the next one's header
        hex_digits = separator.join(elements).replace(":", "")
        size = len(_MAC_HEADER) + 8
        try:
            blob = bytes.fromhex(_MAC_HEADER_HEX + hex_digits + "0000")
        except ValueError:
            blob = b""
        if len(blob) != size * len(elements):
            raise ValueError(f"set elements {list(elements)[:3]}...: expected MAC addresses")
        return _Encoded(blob, size)
    try:
        if kind is SetKind.IPV4:
            packed = [bytes(map(int, e.split("."))) for e in elements]
            if any(len(p) != 4 for p in packed):
                raise ValueError("not a dotted quad")
            return _Encoded(b"".join(_IPV4_HEADER + p for p in packed), len(_IPV4_HEADER) + 4)
        return _Encoded(
            b"".join(_IPV6_HEADER + ipaddress.IPv6Address(e).packed for e in elements),
            len(_IPV6_HEADER) + 16,
        )
    except ValueError:
        raise ValueError(
            f"set elements {list(elements)[:3]}...: expected {kind.value} values"
        ) from None


def _nothing() -> None:
    pass


@functools.lru_cache(maxsize=1024)
def _set_attrs(set_name: str) -> bytes:
    """The table and set name attributes every element message of `set_name` starts with."""
    table = _attr(NFTA_SET_ELEM_LIST_TABLE, TABLE_NAME.encode() + b"\0")
    return table + _attr(NFTA_SET_ELEM_LIST_SET, set_name.encode() + b"\0")


def _with_ack(data: bytes) -> bytes:
    length, msg_type, flags, seq, pid = _HEADER.unpack_from(data)
    return _HEADER.pack(length, msg_type, flags | NLM_F_ACK, seq, pid) + data[_HEADER.size :]


def _message(msg_type: int, flags: int, seq: int, family: int, res_id: int, body: bytes) -> bytes:
    payload = _NFGEN.pack(family, 0, res_id) + body
    return _HEADER.pack(_HEADER.size + len(payload), msg_type, flags, seq, 0) + payload


def _attr(attr_type: int, value: bytes) -> bytes:
    length = _ATTR.size + len(value)
    return _ATTR.pack(length, attr_type) + value + b"\0" * (-length % 4)


def set_elements(set_json: dict[str, Any]) -> list[str]:
    """The elements of one set object of nft's JSON output, as strings."""
    elements: list[str] = []
    for element in set_json.get("elem", []):
        # Plain sets list bare values; elements with timeouts or counters are objects.
        if isinstance(element, dict) and "elem" in element:
            element = element["elem"].get("val")
        if not isinstance(element, str):
            raise EnforcementError(
                f"set {set_json.get('name')}: expected string elements in nft's JSON,"
                f" got {element!r}"
            )
        elements.append(element)
    return elements


def _load_library() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL(LIBRARY, use_errno=True)
    except OSError as exc:
        raise EnforcementError(
            f"cannot load {LIBRARY} ({exc}); install libnftables1 (Debian) for in-process"
            " set updates"
        ) from exc
    ctx_p = ctypes.c_void_p
    lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
    lib.nft_ctx_new.restype = ctx_p
    lib.nft_ctx_free.argtypes = [ctx_p]
    lib.nft_ctx_free.restype = None
    for name in ("nft_ctx_buffer_output", "nft_ctx_buffer_error"):
        getattr(lib, name).argtypes = [ctx_p]
        getattr(lib, name).restype = ctypes.c_int
    for name in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
        getattr(lib, name).argtypes = [ctx_p]
        getattr(lib, name).restype = ctypes.c_char_p
    lib.nft_ctx_output_get_flags.argtypes = [ctx_p]
    lib.nft_ctx_output_get_flags.restype = ctypes.c_uint
    lib.nft_ctx_output_set_flags.argtypes = [ctx_p, ctypes.c_uint]
    lib.nft_ctx_output_set_flags.restype = None
    lib.nft_run_cmd_from_buffer.argtypes = [ctx_p, ctypes.c_char_p]
    lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
    return lib


@contextmanager
def entered_netns(netns: str | None) -> Iterator[None]:
    """Run the body with this thread in network namespace `netns`, then switch back.

    Sockets keep the namespace they were opened in, so a context created here keeps working
    in `netns` after the thread returns to its own namespace.
    """
    if netns is None:
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise EnforcementError(f"cannot open this thread's network namespace: {exc}") from exc
    try:
        try:
            target = os.open(os.path.join(NETNS_DIR, netns), os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise EnforcementError(
                f"network namespace {netns!r}: expected {NETNS_DIR}/{netns} ({exc.strerror})"
            ) from exc
        try:
            if libc.setns(target, CLONE_NEWNET) != 0:
                errno = ctypes.get_errno()
                raise EnforcementError(
                    f"setns into network namespace {netns!r} failed: {os.strerror(errno)}"
                )
        finally:
            os.close(target)
        try:
            yield
        finally:
            if libc.setns(own, CLONE_NEWNET) != 0:
                errno = ctypes.get_errno()
                raise EnforcementError(
                    f"setns back from network namespace {netns!r} failed: {os.strerror(errno)}"
                )
    finally:
        os.close(own)


def _where(netns: str | None) -> str:
    return f"network namespace {netns}" if netns is not None else "this network namespace"


def _summary(commands: str) -> str:
    lines = commands.strip().splitlines()
    first = lines[0] if lines else ""
    if len(first) > 120:
        first = first[:117] + "..."
    more = f" and {len(lines) - 1} more" if len(lines) > 1 else ""
    return f"{first!r}{more}"
