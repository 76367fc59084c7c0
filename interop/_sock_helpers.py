"""Helpers for the socket-level interop tests: our trio sockets against pyzmq's.

pyzmq calls block, so every one that may wait runs in a worker thread
(``trio.to_thread.run_sync``) on a socket made by the ``zmq_socket`` fixture, whose
RCVTIMEO/SNDTIMEO bound each call: a worker thread cannot be cancelled, so a bug must
make the call time out rather than hang.  One pyzmq socket is only ever used by one
thread at a time (trio's thread hand-off is a full memory barrier, which libzmq asks
for when a socket moves between threads).

:class:`Ours` and :class:`Theirs` give both kinds of socket the same small async
interface, so one scenario can run with either side in either role.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio

import zmtp
from zmtp.sockets import Socket

from ._helpers import TIMEOUT_MS, BindZmq, Endpoint, SocketFactory, ipc_path

if TYPE_CHECKING:
    import zmq

__all__ = [
    "BIG",
    "COMPATIBLE_PAIRS",
    "QUIET",
    "Lab",
    "Ours",
    "Theirs",
    "bind_ours",
    "link",
    "options",
    "our_address",
    "rebind_zmq",
    "wait_event",
]

zmq = pytest.importorskip("zmq")

#: How long a negative check ("nothing more arrives") watches, in seconds.
QUIET = 0.2

#: A 4 MiB frame with a pattern, so that a shifted or truncated copy is noticed.
BIG = bytes(range(256)) * (4 * 4096)

_S = zmtp.SocketType

#: Every compatible (ours, theirs) pair of the types the socket layer implements.
COMPATIBLE_PAIRS: list[tuple[zmtp.SocketType, zmtp.SocketType]] = [
    (_S.PUSH, _S.PULL),
    (_S.PULL, _S.PUSH),
    (_S.DEALER, _S.ROUTER),
    (_S.ROUTER, _S.DEALER),
    (_S.DEALER, _S.DEALER),
    (_S.DEALER, _S.REP),
    (_S.REP, _S.DEALER),
    (_S.REQ, _S.ROUTER),
    (_S.ROUTER, _S.REQ),
    (_S.REQ, _S.REP),
    (_S.REP, _S.REQ),
    (_S.ROUTER, _S.ROUTER),
    (_S.PAIR, _S.PAIR),
]


def our_address(transport: str, ipc_dir: Path) -> str:
    """An address for one of our sockets to bind: a free tcp port or a fresh ipc path."""
    if transport == "tcp":
        return "tcp://127.0.0.1:0"
    return f"ipc://{ipc_path(ipc_dir, 'o')}"


async def bind_ours(sock: Socket, transport: str, ipc_dir: Path) -> str:
    """Bind one of our sockets; return the endpoint a libzmq peer connects to."""
    return await sock.bind(our_address(transport, ipc_dir))


async def link(
    ours: Socket,
    theirs: zmq.Socket[bytes],
    transport: str,
    direction: str,
    *,
    ipc_dir: Path,
    bind_zmq: BindZmq,
) -> str:
    """Bind one side (ours if ``direction`` is ``"we_bind"``, else theirs) and connect
    the other; return the endpoint.  The handshake may still be under way."""
    if direction == "we_bind":
        ep = await bind_ours(ours, transport, ipc_dir)
        theirs.connect(ep)
    else:
        ep = bind_zmq(theirs, transport).zmq
        await ours.connect(ep)
    return ep


@dataclass
class Ours:
    """One of our sockets, behind the interface :class:`Theirs` also has."""

    sock: Socket

    @property
    def type(self) -> zmtp.SocketType:
        return self.sock.socket_type

    async def send(self, frames: list[bytes]) -> None:
        await self.sock.send_multipart(frames)

    async def recv(self) -> list[bytes]:
        return await self.sock.recv_multipart()

    async def nothing_arrives(self) -> None:
        with trio.move_on_after(QUIET):
            msg = await self.sock.recv_multipart()
            pytest.fail(f"unexpected message {msg!r}")


@dataclass
class Theirs:
    """A pyzmq socket; blocking calls run in a worker thread."""

    sock: zmq.Socket[bytes]
    type: zmtp.SocketType

    async def send(self, frames: list[bytes]) -> None:
        await trio.to_thread.run_sync(self.sock.send_multipart, frames)

    async def send_routed(self, frames: list[bytes]) -> None:
        """Send from a ROUTER with ROUTER_MANDATORY, retrying while the peer's handshake
        is still in progress (EHOSTUNREACH until libzmq has attached its pipe)."""

        def send() -> None:
            for _ in range(TIMEOUT_MS // 5):
                try:
                    self.sock.send_multipart(frames)
                    return
                except zmq.ZMQError as exc:
                    if exc.errno != zmq.EHOSTUNREACH:
                        raise
                time.sleep(0.005)  # bounded retries while the condition settles
            raise AssertionError(f"peer {frames[0]!r} never became routable")

        await trio.to_thread.run_sync(send)

    async def recv(self) -> list[bytes]:
        return await trio.to_thread.run_sync(self.sock.recv_multipart)

    async def recv_n(self, n: int) -> list[list[bytes]]:
        def recv() -> list[list[bytes]]:
            return [self.sock.recv_multipart() for _ in range(n)]

        return await trio.to_thread.run_sync(recv)

    async def nothing_arrives(self) -> None:
        ready = await trio.to_thread.run_sync(self.sock.poll, int(QUIET * 1000))
        if ready:
            pytest.fail(f"unexpected message {self.sock.recv_multipart()!r}")


class Lab:
    """The pyzmq fixtures of one test and its Context: makes libzmq peers (as
    :class:`Theirs`) and links them to our sockets.  The ``lab_factory`` fixture makes
    one for a Context."""

    def __init__(
        self, ctx: zmtp.Context, zmq_socket: SocketFactory, bind_zmq: BindZmq, ipc_dir: Path
    ) -> None:
        self.ctx = ctx
        self.zmq_socket = zmq_socket
        self.bind_zmq = bind_zmq
        self.ipc_dir = ipc_dir

    def theirs(self, stype: zmtp.SocketType, **opts: Any) -> Theirs:
        return Theirs(self.zmq_socket(int(stype), **opts), stype)

    async def link(self, ours: Socket, theirs: Theirs, transport: str, direction: str) -> str:
        """Bind one side and connect the other; return the endpoint."""
        return await link(
            ours, theirs.sock, transport, direction, ipc_dir=self.ipc_dir, bind_zmq=self.bind_zmq
        )


async def wait_event(mon: zmtp.Monitor, kind: zmtp.EventType) -> zmtp.SocketEvent:
    """The next monitor event of ``kind`` (earlier events of other kinds are skipped)."""
    async for event in mon:
        if event.type is kind:
            return event
    raise AssertionError(f"monitor ended before {kind}")


def rebind_zmq(make: Callable[[], zmq.Socket[bytes]], endpoint: Endpoint) -> zmq.Socket[bytes]:
    """Bind a new libzmq socket on the endpoint a closed one used.

    libzmq closes a listener in its I/O thread after ``close()`` returns, so a tcp
    port may still be busy for a moment: retry, in bounded steps.  (An ipc file is not
    in the way: libzmq 4.3.5 leaves a named one behind on close and unlinks whatever
    is at the path before binding.)  Blocking: run it in a thread.
    """
    sock = make()
    for _ in range(1000):
        try:
            sock.bind(endpoint.zmq)
            return sock
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EADDRINUSE:
                raise
            time.sleep(0.005)
    raise AssertionError(f"could not bind {endpoint.zmq} again")


def options(sock_type: zmtp.SocketType, **extra: Any) -> dict[str, Any]:
    """pyzmq options for a libzmq peer of ``sock_type`` in these tests."""
    opts: dict[str, Any] = dict(extra)
    if sock_type is _S.ROUTER:
        opts.setdefault("ROUTER_MANDATORY", 1)
    return opts
