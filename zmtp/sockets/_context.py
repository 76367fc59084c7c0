"""The Context: owner of sockets, their background tasks, and the inproc namespace."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal, overload

import trio

from .. import _native
from .._native import allocator
from ..protocol.framing import BodyAllocator
from ..protocol.mechanisms.base import PartAllocator
from ..protocol.socket_types import SocketType
from ..protocol.zap import ZAP_ENDPOINT, ZapError, ZapReply, ZapRequest, encode_request, parse_reply
from ._inproc import InprocNamespace
from ._pair import Pair
from ._pipeline import Pull, Push
from ._pubsub import Pub, Sub, XPub, XSub
from ._registry import SOCKET_CLASSES
from ._reqrep import Dealer, Rep, Req, Router
from ._socket import Socket

__all__ = ["Context"]

log = logging.getLogger("zmtp")


class Context:
    """Owns sockets and runs their background work.

    Use as ``async with zmtp.Context() as ctx:``; leaving the block closes every socket
    it made (each honouring its ``linger``; ``linger`` is ignored if the block is left
    by an exception) and waits for all their tasks.  Cancellation or Ctrl-C during that
    close cuts the lingers short (see :meth:`Socket.aclose`) and goes on as itself.

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
        self._part_allocator = policy.part_allocator
        self._nursery_cm: Any = None
        self._nursery_obj: trio.Nursery | None = None
        self._sockets: set[Socket] = set()
        self._inproc = InprocNamespace()
        self._closed = False

    # The sockets' view of their context (SocketHost).

    @property
    def nursery(self) -> trio.Nursery:
        """Where the sockets' background tasks run."""
        if self._nursery_obj is None:
            self._check_usable()
        assert self._nursery_obj is not None
        return self._nursery_obj

    @property
    def closed(self) -> bool:
        """True once the ``async with`` block has been left."""
        return self._closed

    def _check_usable(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("this Context is closed")
        if self._nursery_obj is None:
            raise RuntimeError("use the Context as 'async with zmtp.Context() as ctx:'")

    @property
    def inproc(self) -> InprocNamespace:
        """The inproc names of this context."""
        return self._inproc

    @property
    def body_allocator(self) -> BodyAllocator:
        """What its sockets' connections allocate large frame bodies with."""
        return self._body_allocator

    @property
    def part_allocator(self) -> PartAllocator | None:
        """What its sockets' CURVE connections open large parts straight into."""
        return self._part_allocator

    @property
    def on_large_body(self) -> Callable[[], object] | None:
        """What an engine calls before it first reads a large body in place."""
        return allocator.tune_for_large_messages if self.tune_allocator else None

    def forget(self, sock: Socket) -> None:
        """A socket of this context has closed."""
        self._sockets.discard(sock)

    async def zap_request(self, request: ZapRequest) -> ZapReply | None:
        """Ask the ZAP handler bound at ``inproc://zeromq.zap.01`` in this context
        (RFC 27); None if there is none.

        Each request gets a DEALER of its own, connected for that one exchange, as
        libzmq gives each handshake its own pipe to the handler: a handler that is a
        ROUTER or a REP (our :class:`zmtp.auth.Authenticator`, or one written by hand)
        sees one peer per request and answers it through its envelope.

        Raises:
            ZapError: the handler's reply breaks RFC 27 (libzmq's checks).
        """
        if not self._inproc.bound(ZAP_ENDPOINT.partition("://")[2]):
            return None
        sock = self.socket(SocketType.DEALER, linger=0)
        try:
            await sock.connect(ZAP_ENDPOINT)
            await sock.send_multipart([b"", *encode_request(request)])
            frames = await sock.recv_multipart()
        finally:
            with trio.CancelScope(shield=True):
                await sock.aclose()
        if not frames or frames[0] != b"":
            raise ZapError(
                "ZAP reply without its empty delimiter frame",
                code="ZAP_UNSPECIFIED",
                reason=b"Malformed ZAP reply",
            )
        return parse_reply(frames[1:], request_id=request.request_id)

    async def __aenter__(self) -> Context:
        if self._closed:
            raise trio.ClosedResourceError("this Context is closed")
        if self._nursery_cm is not None:
            raise RuntimeError("a Context can only be entered once")
        self._nursery_cm = trio.open_nursery()
        self._nursery_obj = await self._nursery_cm.__aenter__()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool | None:
        try:
            with trio.CancelScope(shield=exc_type is not None):
                await self.aclose(linger=0 if exc_type is not None else None)
        except BaseException as close_exc:
            # The close was cancelled or interrupted (Ctrl-C): the sockets are closed
            # all the same (see Socket.aclose); the nursery below cancels whatever
            # else runs in it, and the cancellation or interrupt goes on.
            if exc is None:
                exc_type, exc, tb = type(close_exc), close_exc, close_exc.__traceback__
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
            self._closed = True
        return result  # type: ignore[no-any-return]

    async def aclose(self, linger: int | None = None) -> None:
        """Close every socket of this context (concurrently).

        Cancellation and Ctrl-C cut every socket's linger short (see
        :meth:`Socket.aclose`); a KeyboardInterrupt is raised as itself, not wrapped
        in an ExceptionGroup.
        """
        sockets = list(self._sockets)
        if not sockets:
            await trio.lowlevel.checkpoint()
            return
        if len(sockets) == 1:
            await sockets[0].aclose(linger)
            return
        try:
            async with trio.open_nursery() as nursery:
                for sock in sockets:
                    nursery.start_soon(sock.aclose, linger)
        except BaseExceptionGroup as group:
            # Ctrl-C reaches the task waiting here (trio's main task), which cancels
            # the closes; it is the only exception then.
            if all(isinstance(e, KeyboardInterrupt) for e in group.exceptions):
                raise group.exceptions[0] from None
            raise

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
    def socket(self, socket_type: SocketType | int | str, **options: Any) -> Socket: ...

    def socket(self, socket_type: SocketType | int | str, **options: Any) -> Socket:
        """Create a socket.

        Args:
            socket_type: e.g. ``zmtp.ROUTER``; libzmq's numbers (``zmq.ROUTER``) and
                names in any case (``"router"``, as ``python -m proxy`` takes them)
                work too.
            **options: socket options by name (``sndhwm=10``, ``routing_id=b"x"``...).

        Raises:
            ValueError: unknown socket type or option, bad option value.
            TypeError: a socket type that is not a SocketType, int or str; an option
                value of the wrong type.
        """
        stype = _socket_type(socket_type)
        cls = SOCKET_CLASSES.get(stype)
        if cls is None:
            raise ValueError(f"{stype.name} sockets are not implemented yet")
        if self._nursery_obj is None:
            self._check_usable()
        sock = cls(self, stype, **options)
        self._sockets.add(sock)
        return sock


def _socket_type(value: object) -> SocketType:
    """The SocketType a ``ctx.socket()`` argument names."""
    if isinstance(value, SocketType):
        return value
    if isinstance(value, str):
        try:
            return SocketType[value.upper()]
        except KeyError:
            names = ", ".join(t.name for t in SocketType)
            raise ValueError(f"unknown socket type {value!r} (one of {names})") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"socket type must be a zmtp.SocketType, int or str, not {type(value).__name__}"
        )
    try:
        return SocketType(value)
    except ValueError:
        raise ValueError(f"unknown socket type {value!r}") from None
