"""The Context: owner of sockets, their background tasks, and the inproc namespace."""

from __future__ import annotations

import logging
from typing import Any, Literal, overload

import trio

from .. import _native
from ..protocol.socket_types import SocketType, compatible
from ._pipe import Message, Pipe
from ._pubsub import Pub, Sub, XPub, XSub
from ._socket import Peer, Socket, _EndpointState
from ._types import SOCKET_CLASSES, Dealer, Pair, Pull, Push, Rep, Req, Router

__all__ = ["Context"]

log = logging.getLogger("zmtp")


class _InprocPipe(Pipe):
    """A pipe between two sockets of one context.

    Read-only memoryviews are accepted by ``send`` without copying (the tcp encoder
    writes them directly); a receiving socket must get ``bytes``, so they are
    converted here, the one place inproc messages cross between sockets.
    """

    __slots__ = ()
    inproc = True

    def put(self, msg: Message) -> None:
        for f in msg:
            if type(f) is not bytes:
                msg = [bytes(x) for x in msg]
                break
        super().put(msg)

    def put_many(self, msgs: list[Message]) -> None:
        for msg in msgs:
            self.put(msg)


class Context:
    """Owns sockets and runs their background work.

    Use as ``async with zmtp.Context() as ctx:``; leaving the block closes every socket
    it made (each honouring its ``linger``; ``linger`` is ignored if the block is left
    by an exception) and waits for all their tasks.

    Args:
        native: allow the native tricks of :mod:`zmtp._native` (CPython and glibc
            specific, each with a portable fallback): large bodies are received in
            place as ``bytes`` built through ``ctypes``, with no final copy (False: a
            ``bytearray``, copied once).  None follows ``ZMTP_NATIVE`` (0: off; default on).
        tune_allocator: let the first large message one of its sockets receives
            (one whose body is read in place: 128 KiB or more still to come) raise
            glibc's malloc thresholds to the values glibc's own
            heuristic reaches after a 32 MiB message
            (:func:`zmtp._native.allocator.tune_for_large_messages`).  Without it, every
            burst of large messages is handed back to the kernel and faulted in
            again page by page: 1 MiB messages then cost about twice the CPU to
            receive.  The price is up to 64 MiB of freed memory kept in the process
            for reuse, and the settings are the whole process's: so False (the default)
            leaves malloc alone, as does any value when native tricks are off.
    """

    def __init__(self, *, native: bool | None = None, tune_allocator: bool = False) -> None:
        policy = _native.policy(native, tune_allocator)  # checks types, reads ZMTP_NATIVE
        self.native, self.tune_allocator = policy.native, policy.tune_allocator
        self._body_allocator = policy.body_allocator
        self._nursery_cm: Any = None
        self._nursery_obj: trio.Nursery | None = None
        self._sockets: set[Socket] = set()
        self._inproc_binds: dict[str, tuple[Socket, _EndpointState]] = {}
        self._inproc_waiting: dict[str, list[tuple[Socket, _EndpointState]]] = {}

    @property
    def _nursery(self) -> trio.Nursery:
        if self._nursery_obj is None:
            raise RuntimeError("use the Context as 'async with zmtp.Context() as ctx:'")
        return self._nursery_obj

    async def __aenter__(self) -> Context:
        if self._nursery_cm is not None:
            raise RuntimeError("a Context can only be entered once")
        self._nursery_cm = trio.open_nursery()
        self._nursery_obj = await self._nursery_cm.__aenter__()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool | None:
        try:
            with trio.CancelScope(shield=exc_type is not None):
                await self.aclose(linger=0 if exc_type is not None else None)
        finally:
            try:
                result = await self._nursery_cm.__aexit__(exc_type, exc, tb)
            except BaseExceptionGroup as group:
                # The Context is a nursery, which wraps whatever leaves its body in an
                # ExceptionGroup.  When that is all there is (no background task
                # failed), give the caller back their own exception, so that
                # ``except KeyError`` around ``async with zmtp.Context()`` works as it
                # does with pyzmq.
                if exc is not None and len(group.exceptions) == 1 and group.exceptions[0] is exc:
                    raise exc from exc.__cause__
                raise
            finally:
                self._nursery_obj = None
        return result  # type: ignore[no-any-return]

    async def aclose(self, linger: int | None = None) -> None:
        """Close every socket of this context (concurrently)."""
        sockets = list(self._sockets)
        if not sockets:
            await trio.lowlevel.checkpoint()
            return
        async with trio.open_nursery() as nursery:
            for sock in sockets:
                nursery.start_soon(sock.aclose, linger)

    # Typed overloads: ctx.socket(zmtp.SUB) is a Sub, so sub.subscribe() type-checks.
    @overload
    def socket(self, socket_type: Literal[SocketType.PAIR], **options: Any) -> Pair: ...
    @overload
    def socket(self, socket_type: Literal[SocketType.PUB], **options: Any) -> Pub: ...
    @overload
    def socket(self, socket_type: Literal[SocketType.SUB], **options: Any) -> Sub: ...
    @overload
    def socket(self, socket_type: Literal[SocketType.REQ], **options: Any) -> Req: ...
    @overload
    def socket(self, socket_type: Literal[SocketType.REP], **options: Any) -> Rep: ...
    @overload
    def socket(self, socket_type: Literal[SocketType.DEALER], **options: Any) -> Dealer: ...
    @overload
    def socket(self, socket_type: Literal[SocketType.ROUTER], **options: Any) -> Router: ...
    @overload
    def socket(self, socket_type: Literal[SocketType.PULL], **options: Any) -> Pull: ...
    @overload
    def socket(self, socket_type: Literal[SocketType.PUSH], **options: Any) -> Push: ...
    @overload
    def socket(self, socket_type: Literal[SocketType.XPUB], **options: Any) -> XPub: ...
    @overload
    def socket(self, socket_type: Literal[SocketType.XSUB], **options: Any) -> XSub: ...
    @overload
    def socket(self, socket_type: SocketType | int, **options: Any) -> Socket: ...

    def socket(self, socket_type: SocketType | int, **options: Any) -> Socket:
        """Create a socket.

        Args:
            socket_type: e.g. ``zmtp.ROUTER`` (libzmq's numbers work too).
            **options: socket options by name (``sndhwm=10``, ``routing_id=b"x"``...).

        Raises:
            ValueError: unknown socket type or option, bad option value.
            TypeError: option value of the wrong type.
        """
        try:
            stype = SocketType(socket_type)
        except ValueError:
            raise ValueError(f"unknown socket type {socket_type!r}") from None
        cls = SOCKET_CLASSES.get(stype)
        if cls is None:
            raise ValueError(f"{stype.name} sockets are not implemented yet")
        if self._nursery_obj is None:
            raise RuntimeError("use the Context as 'async with zmtp.Context() as ctx:'")
        sock = cls(self, stype, **options)
        self._sockets.add(sock)
        return sock

    def _forget(self, sock: Socket) -> None:
        self._sockets.discard(sock)

    # ------------------------------------------------------------------ inproc

    def _inproc_bind(self, name: str, sock: Socket, state: _EndpointState) -> None:
        if name in self._inproc_binds:
            raise ValueError(f"inproc://{name} is already bound")
        self._inproc_binds[name] = (sock, state)
        for other, other_state in self._inproc_waiting.pop(name, []):
            self._inproc_link(other, other_state, sock, name)

    def _inproc_connect(self, name: str, sock: Socket, state: _EndpointState) -> None:
        # The connecting side's peer exists at once, so messages queue before the bind
        # (libzmq allows connect-before-bind for inproc since 4.0).
        peer = Peer(
            sock,
            _InprocPipe(sock._options["sndhwm"], None, sock),
            _InprocPipe(sock._options["rcvhwm"], sock, None),
            state.endpoint,
            persistent=True,
        )
        state.peer = peer
        sock._add_peer(peer)
        bound = self._inproc_binds.get(name)
        if bound is None:
            self._inproc_waiting.setdefault(name, []).append((sock, state))
        else:
            self._inproc_link(sock, state, bound[0], name)

    def _inproc_link(self, csock: Socket, cstate: _EndpointState, bsock: Socket, name: str) -> None:
        cpeer = cstate.peer
        assert cpeer is not None
        if not compatible(bsock.socket_type, csock.socket_type):
            log.warning(
                "inproc://%s: a %s socket cannot talk to a %s socket",
                name,
                bsock.socket_type.name,
                csock.socket_type.name,
            )
            return
        c2b, b2c = cpeer.out, cpeer.inp
        # libzmq sums both sides' limits for inproc pipes (0 on either side: unlimited).
        for pipe, snd, rcv in ((c2b, csock, bsock), (b2c, bsock, csock)):
            s, r = snd._options["sndhwm"], rcv._options["rcvhwm"]
            pipe.hwm = s + r if s and r else 0
            pipe.lwm = (pipe.hwm + 1) // 2
        c2b.reader, c2b.writer = bsock, csock
        b2c.reader, b2c.writer = csock, bsock
        bpeer = Peer(bsock, b2c, c2b, f"inproc://{name}")
        bpeer.identity = csock._options["routing_id"]
        bpeer.socket_type = csock.socket_type
        cpeer.identity = bsock._options["routing_id"]
        cpeer.socket_type = bsock.socket_type
        if not bsock._accept_peer(bpeer):
            # Refused (a duplicate ROUTER id, a second PAIR peer): the connecting side
            # keeps its queue, which is never read, like a pipe libzmq parks.  Linking
            # the records lets the connecting socket close without lingering on it.
            c2b.reader = None
            cpeer.link, bpeer.link = bpeer, cpeer
            return
        bpeer.link, cpeer.link = cpeer, bpeer
        bpeer.connected = cpeer.connected = True
        bsock._add_peer(bpeer)
        self._inproc_binds[name][1].peers.add(bpeer)
        csock._peer_ready(cpeer)
        bsock._peer_ready(bpeer)
        if c2b.queue:
            bsock.pipe_readable(c2b)

    def _inproc_forget(self, sock: Socket, state: _EndpointState) -> None:
        name = state.endpoint.partition("://")[2]
        if state.bind:
            if self._inproc_binds.get(name, (None,))[0] is sock:
                del self._inproc_binds[name]
        else:
            waiting = self._inproc_waiting.get(name, [])
            waiting[:] = [(s, st) for s, st in waiting if st is not state]
