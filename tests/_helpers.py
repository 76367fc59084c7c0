"""What the unit tests share: deadlines, Contexts, endpoints, raw ZMTP peers, wire bytes.

Test modules import these with ``from ._helpers import ...``; the fixtures are in
``conftest.py``.  No test module imports another test module.
"""

from __future__ import annotations

import ast
import itertools
import os
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
import trio

import zmtp
from zmtp import Connection, SocketType
from zmtp.protocol.framing import FLAG_COMMAND, FLAG_MORE, OutputBuffer, encode_message
from zmtp.protocol.greeting import build_greeting
from zmtp.sockets import Socket

#: Upper bound on any one test; a hang fails instead of blocking the run.
TIMEOUT = 20
#: How long a negative check ("nothing more arrives") watches.
QUIET = 0.1

#: Every transport, and the two that carry bytes (a real connection and engine on each
#: side; inproc goes socket to socket).
TRANSPORTS = ["inproc", "tcp", "ipc"]
STREAM_TRANSPORTS = ["tcp", "ipc"]

_names = itertools.count()


# ----------------------------------------------------------------------- sockets


@asynccontextmanager
async def context(timeout: float = TIMEOUT, **options: Any) -> AsyncIterator[zmtp.Context]:
    """A Context (made with ``options``) inside a deadline of ``timeout`` seconds
    (virtual seconds under the autojump clock)."""
    with trio.fail_after(timeout):
        async with zmtp.Context(**options) as ctx:
            yield ctx


def bind_address(transport: str) -> str:
    """A fresh endpoint to bind for ``transport``."""
    if transport == "inproc":
        return f"inproc://test-{os.getpid()}-{next(_names)}"
    if transport == "tcp":
        return "tcp://127.0.0.1:0"
    return "ipc://*"


async def connected(
    ctx: zmtp.Context,
    bind_type: zmtp.SocketType,
    connect_type: zmtp.SocketType,
    transport: str,
    *,
    bind_opts: dict[str, Any] | None = None,
    connect_opts: dict[str, Any] | None = None,
) -> tuple[Socket, Socket]:
    """Bind one socket, connect another, wait for the handshake on both sides."""
    b = ctx.socket(bind_type, **(bind_opts or {}))
    ep = await b.bind(bind_address(transport))
    c = ctx.socket(connect_type, **(connect_opts or {}))
    await c.connect(ep)
    await c.wait_for_peers(1)
    await b.wait_for_peers(1)
    return b, c


async def nothing_arrives(sock: Socket) -> None:
    """Assert that no message arrives within :data:`QUIET` seconds."""
    with trio.move_on_after(QUIET):
        msg = await sock.recv_multipart()
        pytest.fail(f"unexpected message {msg!r}")


# ----------------------------------------------------------------------- raw peers

#: A ZMTP 3.1 greeting for the NULL mechanism (RFC 23 "Greeting"), 64 bytes.
NULL_GREETING = b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x01" + b"NULL".ljust(20, b"\x00")
NULL_GREETING += b"\x00" * 32
assert len(NULL_GREETING) == 64


async def open_stream(endpoint: str) -> trio.SocketStream:
    """A raw stream to one of our bound endpoints."""
    transport, _, address = endpoint.partition("://")
    if transport == "tcp":
        host, _, port = address.rpartition(":")
        return await trio.open_tcp_stream(host.strip("[]"), int(port))
    return await trio.open_unix_socket(address)


async def read_until_eof(stream: trio.abc.ReceiveStream) -> bytes:
    """Read (and return) everything until the other side closes."""
    data = bytearray()
    while True:
        try:
            chunk = await stream.receive_some(65536)
        except trio.BrokenResourceError:  # a reset is as good as EOF here
            return bytes(data)
        if not chunk:
            return bytes(data)
        data += chunk


class RawPeer:
    """A ZMTP peer driven by hand: the sans-IO Connection over a raw stream, so that a
    test decides exactly which bytes go out when."""

    def __init__(self, stream: trio.SocketStream, socket_type: SocketType, **kw: Any) -> None:
        self.stream = stream
        self.conn = Connection(socket_type, check_socket_type=False, **kw)

    @classmethod
    async def connect(cls, endpoint: str, socket_type: SocketType, **kw: Any) -> RawPeer:
        return cls(await open_stream(endpoint), socket_type, **kw)

    @classmethod
    async def push(cls, endpoint: str) -> RawPeer:
        """A PUSH peer connected to ``endpoint``, its handshake done."""
        peer = await cls.connect(endpoint, SocketType.PUSH)
        await peer.handshake()
        return peer

    async def flush(self) -> None:
        for chunk in self.conn.data_to_send():
            await self.stream.send_all(chunk)

    async def handshake(self) -> None:
        await self.flush()
        while self.conn.handshake is None:
            data = await self.stream.receive_some(65536)
            assert data, "closed during the handshake"
            self.conn.receive_data(data)
            await self.flush()

    def encode(self, *messages: list[bytes]) -> bytes:
        """The bytes of ``messages``, encoded but not sent."""
        self.conn.send_messages(messages)
        return self.conn.bytes_to_send()

    async def send(self, *messages: list[bytes]) -> None:
        self.conn.send_messages(messages)
        await self.flush()

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def send_offending(self, data: bytes) -> None:
        """Send what should get us dropped; the socket may close before it is all out."""
        with suppress(trio.BrokenResourceError):
            await self.stream.send_all(data)

    async def send_offending_messages(self, *messages: list[bytes]) -> None:
        self.conn.send_messages(messages)
        await self.send_offending(self.conn.bytes_to_send())

    async def pump_until_closed(self) -> None:
        """Answer the peer (greeting, READY) until it closes; ignore protocol errors."""
        await self.flush()
        while True:
            try:
                data = await self.stream.receive_some(65536)
            except trio.BrokenResourceError:
                return
            if not data:
                return
            try:
                self.conn.receive_data(data)
            except zmtp.ProtocolError:
                await read_until_eof(self.stream)
                return
            try:
                await self.flush()
            except trio.BrokenResourceError:
                return

    async def aclose(self) -> None:
        await self.stream.aclose()


@asynccontextmanager
async def served_pull(
    transport: str, *, last: list[bytes] | None = None, **options: Any
) -> AsyncIterator[tuple[zmtp.Context, Socket, Socket, str]]:
    """A bound PULL (made with ``options``) with one well-behaved PUSH of ours
    connected and checked.

    Afterwards the well-behaved peer must still be served (its message ``last``, by
    default ``[b"good", b"after"]``, arrives) and nothing else must have come through.
    """
    async with context() as ctx:
        pull = ctx.socket(zmtp.PULL, **options)
        ep = await pull.bind(bind_address(transport))
        good = ctx.socket(zmtp.PUSH)
        await good.connect(ep)
        await good.send_multipart([b"good", b"before"])
        assert await pull.recv_multipart() == [b"good", b"before"]
        yield ctx, pull, good, ep
        after = [b"good", b"after"] if last is None else last
        await good.send_multipart(after)
        assert await pull.recv_multipart() == after
        with pytest.raises(trio.WouldBlock):
            pull.recv_multipart_nowait()


def logged(caplog: pytest.LogCaptureFixture, *words: str) -> bool:
    """True if one record of the ``zmtp`` logger mentions every word."""
    return any(
        r.name == "zmtp" and all(w.lower() in r.getMessage().lower() for w in words)
        for r in caplog.records
    )


# ----------------------------------------------------------------------- wire bytes


def h(text: str) -> bytes:
    """Hex with spaces and ``'ascii'`` runs: ``h("04 07 'PING' 00")``."""
    out = bytearray()
    for part in text.split():
        if part.startswith("'") and part.endswith("'"):
            out += part[1:-1].encode()
        else:
            out += bytes.fromhex(part)
    return bytes(out)


def libzmq_greeting(routing_id_len: int = 0, mechanism: bytes = b"NULL") -> bytes:
    """A greeting as libzmq 4.3.5 sends it: routing-id length + 1 in the padding."""
    g = bytearray(build_greeting(mechanism))
    g[1:9] = (routing_id_len + 1).to_bytes(8, "big")
    return bytes(g)


def message_bytes(*frames: bytes) -> bytes:
    """One message, ``frames`` encoded as data frames."""
    out = OutputBuffer()
    encode_message(out, list(frames))
    return b"".join(bytes(c) for c in out.chunks())


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given offsets (taken modulo its length, sorted)."""
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def split_messages(
    frames: Iterable[tuple[int, bytes]],
) -> tuple[list[list[bytes] | bytes], list[bytes]]:
    """What decoded ``(flags, body)`` frames add up to: each command's body and each
    complete message, in order, and the frames of a message not yet complete."""
    items: list[list[bytes] | bytes] = []
    partial: list[bytes] = []
    for flags, body in frames:
        if flags & FLAG_COMMAND:
            items.append(body)
        elif flags & FLAG_MORE:
            partial.append(body)
        else:
            items.append([*partial, body])
            partial = []
    return items, partial


def imported_modules(path: Path, package: str) -> set[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names
