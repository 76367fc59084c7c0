"""Drive a sans-IO :class:`zmtp.Connection` over a plain trio stream, for interop tests.

The trio socket layer (``zmtp.sockets``) is deliberately not used here: these tests pin
down the wire behaviour of the core state machine alone against libzmq, so a failure
points at the core and not at the I/O layer above it.

:class:`WireConnection` is the whole pump: it writes whatever the connection has queued
with ``send_all``, reads with ``receive_some``, feeds the bytes to ``receive_data`` and
keeps every event in :attr:`WireConnection.events`.  Flushing after every read is what
makes the automatic PONG (queued by the connection when a PING arrives) actually reach
the peer.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import trio

from zmtp import (
    Connection,
    ConnectionClosed,
    Event,
    HandshakeComplete,
    Messages,
    Ping,
    Pong,
)

from ._helpers import TIMEOUT, Endpoint, ipc_path

__all__ = [
    "PeerClosed",
    "WireConnection",
    "open_stream",
    "serve_one",
]


async def open_stream(endpoint: Endpoint) -> trio.SocketStream:
    """Connect a raw trio stream to ``endpoint``."""
    if endpoint.transport == "tcp":
        return await trio.open_tcp_stream(endpoint.address, endpoint.port)
    return await trio.open_unix_socket(endpoint.address)


@asynccontextmanager
async def serve_one(
    transport: str, ipc_dir: str | os.PathLike[str]
) -> AsyncIterator[tuple[Endpoint, trio.SocketListener]]:
    """Listen on a fresh tcp port of 127.0.0.1 or a fresh ipc path; yield it and the listener.

    The caller tells the peer to connect to the endpoint, then ``accept()``s.
    """
    if transport == "tcp":
        (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
        _, port = listener.socket.getsockname()[:2]
        endpoint = Endpoint("tcp", "127.0.0.1", port)
    else:
        path = ipc_path(ipc_dir, "s")
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            await sock.bind(path)
            sock.listen()
        except BaseException:
            sock.close()
            raise
        listener = trio.SocketListener(sock)
        endpoint = Endpoint("ipc", path)
    try:
        yield endpoint, listener
    finally:
        await listener.aclose()
        if transport == "ipc":
            os.unlink(endpoint.address)


class PeerClosed(AssertionError):
    """The peer closed the stream while we were still waiting for something."""


class WireConnection:
    """A :class:`zmtp.Connection` wired to a trio stream.

    Args:
        stream: a connected stream (either side may have connected).
        conn: a fresh connection; its greeting head is already queued.
        auto_flush: send what the connection queued after every read (the default).
            False turns the automatic PONG off, to show what happens without it.
    """

    def __init__(
        self, stream: trio.abc.Stream, conn: Connection, *, auto_flush: bool = True
    ) -> None:
        self.stream = stream
        self.conn = conn
        self.auto_flush = auto_flush
        #: Every event ``receive_data`` returned, in order.
        self.events: list[Event] = []
        #: Every complete message received, in order (flattened out of Messages events).
        self.messages: list[list[bytes]] = []
        #: True once EOF (or a reset) was fed to the connection.
        self.closed = False

    async def flush(self) -> None:
        """Send everything the connection has queued."""
        for chunk in self.conn.data_to_send():
            await self.stream.send_all(chunk)

    async def _receive_once(self) -> list[Event]:
        try:
            data = await self.stream.receive_some(256 * 1024)
        except trio.BrokenResourceError:
            # A reset (libzmq closing with our bytes still unread) means the same to the
            # protocol as EOF: the peer is gone.
            data = b""
        if not data:
            self.closed = True
        events = self.conn.receive_data(data)
        self.events.extend(events)
        for event in events:
            if isinstance(event, Messages):
                self.messages.extend(event.messages)
        if self.auto_flush and not self.closed:
            await self.flush()
        return events

    async def receive_until(self, condition: Callable[[], bool]) -> None:
        """Pump until ``condition()`` holds; fail on EOF first or after :data:`TIMEOUT`.

        Protocol errors from ``receive_data`` propagate unchanged.
        """
        with trio.fail_after(TIMEOUT):
            if self.auto_flush:
                await self.flush()
            while not condition():
                if self.closed:
                    raise PeerClosed(f"peer closed the connection; events so far: {self.events}")
                await self._receive_once()

    async def receive_until_closed(self) -> ConnectionClosed:
        """Pump until the peer closes; return the ConnectionClosed event."""
        with trio.fail_after(TIMEOUT):
            if self.auto_flush:
                await self.flush()
            while not self.closed:
                await self._receive_once()
        last = self.events[-1]
        assert isinstance(last, ConnectionClosed), self.events
        return last

    async def handshake(self) -> HandshakeComplete:
        """Run the greeting and the NULL handshake; return the HandshakeComplete event."""
        await self.receive_until(lambda: self.conn.handshake is not None)
        assert self.conn.handshake is not None
        return self.conn.handshake

    async def send(self, messages: Sequence[Sequence[bytes]]) -> None:
        """Queue and send messages."""
        self.conn.send_messages(messages)
        await self.flush()

    async def receive_messages(self, count: int) -> list[list[bytes]]:
        """Pump until ``count`` more messages arrived; return exactly those."""
        start = len(self.messages)
        await self.receive_until(lambda: len(self.messages) >= start + count)
        got = self.messages[start:]
        assert len(got) == count, f"expected {count} messages, got {len(got)}"
        return got

    def pings(self) -> list[Ping]:
        """The Ping events received so far."""
        return [e for e in self.events if isinstance(e, Ping)]

    def pongs(self) -> list[Pong]:
        """The Pong events received so far."""
        return [e for e in self.events if isinstance(e, Pong)]
