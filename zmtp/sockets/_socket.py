"""The socket: endpoints, peers, queues, and the send/receive API.

Theory of operation
-------------------
A socket owns a set of *peers*.  A :class:`Peer` is the socket's view of one remote
party: two :class:`~zmtp.sockets._pipe.Pipe` queues (``out`` to it, ``inp`` from it),
its routing id, and how it is reached: an :class:`~zmtp.sockets._engine.Engine` running a
tcp/ipc connection, or, over inproc, the other socket's peer record directly.

Peers come and go in two ways, as in libzmq:

* ``connect()`` creates the peer at once (unless ``immediate``), so messages queue before
  the connection exists and across reconnects; a connector task opens the transport,
  runs an engine on it, and after it ends waits ``reconnect_ivl`` (doubling up to
  ``reconnect_ivl_max``) and tries again, unless the peer broke the protocol (libzmq
  stops reconnecting then, specs/libzmq-behaviour.md §2.5).
* ``bind()`` starts a listener; each accepted connection gets a peer when its handshake
  completes, and loses it when the connection ends.

What a socket *does* with its peers is its type's business.  Subclasses implement a
few hooks, named after libzmq's ``xsend``/``xrecv``/``xattach_pipe``:

* ``_attach(peer)`` / ``_detach(peer)``: a peer joined or left;
* ``_try_send(msg) -> bool``: queue one message without waiting; False means "would
  block" (the caller waits and retries), True means sent *or deliberately dropped*;
* ``_try_recv() -> msg | None``: take one message without waiting.

Send and receive never await per message when they can proceed: they check a queue,
move a message, and return.  To stay a good trio citizen they still checkpoint at
least every ``_CHECKPOINT_EVERY`` calls and whenever they wait, so a loop of sends
cannot starve other tasks.  A checkpoint happens *before* a message is queued, so a
cancelled send has sent nothing, and a cancelled receive has taken nothing.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import socket as stdsocket
import stat
import sys
import tempfile
from collections import deque
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import trio

from .._endpoint import Endpoint, parse_endpoint
from ..protocol._buffers import BytesLike
from ..protocol.errors import ZMTPError
from ..protocol.events import HandshakeComplete
from ..protocol.socket_types import SocketType
from ._engine import Engine
from ._monitor import EventType, Monitor, SocketEvent
from ._options import OPTIONS, validate_option
from ._pipe import Message, Pipe
from ._tasks import TaskGroup

if TYPE_CHECKING:
    from ._context import Context

__all__ = ["InvalidStateError", "NotSupportedError", "Peer", "Socket", "UnroutableError"]

log = logging.getLogger("zmtp")

if sys.platform == "linux":
    import fcntl
    import termios

    #: SIOCOUTQ (= TIOCOUTQ): bytes in a socket's send queue.
    _SIOCOUTQ: int | None = termios.TIOCOUTQ
else:
    _SIOCOUTQ = None

#: Send/receive calls that complete without waiting still checkpoint this often.
_CHECKPOINT_EVERY = 256


class InvalidStateError(ZMTPError):
    """The operation is not valid in the socket's current state (libzmq's EFSM).

    For example ``send`` twice on a REQ socket without a ``recv`` in between.
    """


class NotSupportedError(ZMTPError):
    """The socket type does not support the operation (libzmq's ENOTSUP)."""


class UnroutableError(ZMTPError):
    """A ROUTER with ``router_mandatory`` was asked to send to an unknown routing id
    (libzmq's EHOSTUNREACH)."""


_peer_ids = itertools.count(1)


class Peer:
    """The socket's record of one remote party (see the module docstring)."""

    __slots__ = (
        "__weakref__",
        "connected",
        "endpoint",
        "engine",
        "id",
        "identity",
        "inp",
        "link",
        "out",
        "owner",
        "persistent",
        "routing_id",
        "socket_type",
        "state",
    )

    def __init__(
        self, owner: Socket, out: Pipe, inp: Pipe, endpoint: str, *, persistent: bool = False
    ) -> None:
        self.id = next(_peer_ids)
        self.owner = owner
        self.out = out
        self.inp = inp
        # A pipe's ``peer`` is the record of whoever *reads* it: fair-queueing needs to
        # know which peer a readable pipe belongs to.  ``out`` is read by an engine or,
        # over inproc, by the other socket (which sets it when linking).
        inp.peer = self
        self.endpoint = endpoint
        #: Created by connect(): survives reconnects; removed only by disconnect/close.
        self.persistent = persistent
        self.engine: Engine | None = None
        #: For inproc peers: the other socket's Peer record for us.
        self.link: Peer | None = None
        #: The key a ROUTER routes by.
        self.routing_id: bytes = b""
        #: The Identity the peer announced.
        self.identity: bytes = b""
        self.socket_type: SocketType | None = None
        self.connected = False
        #: Per-type scratch space (subscriptions, ...).
        self.state: Any = None

    def __repr__(self) -> str:
        return f"<Peer {self.id} {self.endpoint} rid={self.routing_id!r}>"


def _snapshot(frames: Sequence[BytesLike] | BytesLike) -> Message:
    """Copy a message the caller may still mutate; validate frame types."""
    if type(frames) is list:
        # Fast path: a list of bytes (immutable) needs only a shallow copy.
        fast = frames.copy()
        for frame in fast:
            if type(frame) is not bytes:
                break
        else:
            if fast:
                return fast
    if isinstance(frames, bytes | bytearray | memoryview | str):
        raise TypeError("send_multipart() takes a sequence of frames; use send() for one frame")
    msg: Message = []
    for frame in frames:
        t = type(frame)
        if t is bytes:
            msg.append(frame)  # type: ignore[arg-type]
        elif t is memoryview and type(frame.obj) is bytes and frame.c_contiguous:  # type: ignore[union-attr]
            # Zero-copy for views of bytes (immutable): the wire encoder accepts views.
            # A read-only view of mutable memory (a bytearray, an mmap) is copied like
            # the memory itself: the caller may change it before the message goes out.
            msg.append(frame)  # type: ignore[arg-type]
        elif isinstance(frame, bytes | bytearray | memoryview):
            msg.append(bytes(frame))
        elif isinstance(frame, str):
            raise TypeError("frames must be bytes-like, not str (encode it first)")
        else:
            try:
                msg.append(bytes(memoryview(frame)))
            except TypeError:
                raise TypeError(f"frames must be bytes-like, not {t.__name__}") from None
    if not msg:
        raise ValueError("a message needs at least one frame")
    return msg


class _OptionAttr:
    """Descriptor exposing one socket option as an attribute."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.__doc__ = OPTIONS[name].doc

    def __get__(self, sock: Socket | None, owner: type) -> Any:
        if sock is None:
            return self
        return sock.get_option(self.name)

    def __set__(self, sock: Socket, value: Any) -> None:
        sock.set_option(self.name, value)


class Socket:
    """A ZeroMQ socket on trio.  Create it with :meth:`zmtp.Context.socket`.

    Use it as an async context manager, or call :meth:`aclose`.
    """

    __slots__ = (
        "__weakref__",
        "_active",
        "_closed",
        "_closing",
        "_ctx",
        "_dirty",
        "_drain_lot",
        "_endpoints",
        "_fq_peer",
        "_lender",
        "_monitors",
        "_options",
        "_peers",
        "_recv_frames",
        "_recv_lot",
        "_send_frames",
        "_send_lot",
        "_ticks",
        "last_endpoint",
    )

    socket_type: SocketType
    #: Whether connect() creates the peer at once so messages queue before the
    #: connection exists (libzmq does this for every type; ROUTER cannot route to a
    #: peer before it knows its identity, so it waits for the handshake).
    _queue_before_connect = True
    _can_send = True
    _can_recv = True
    #: Write each message to the kernel as it is sent, instead of waking the engine's
    #: writer task to batch them (REQ and REP: one message per round trip).
    _eager_send = False

    def __init__(self, context: Context, socket_type: SocketType, **options: Any) -> None:
        if socket_type is not type(self).socket_type:
            raise ValueError(f"{type(self).__name__} is a {type(self).socket_type.name} socket")
        self._ctx = context
        self._options: dict[str, Any] = {k: v.default for k, v in OPTIONS.items()}
        if "metadata" in self._options:
            self._options["metadata"] = {}
        for name, value in options.items():
            self.set_option(name, value)
        self._peers: list[Peer] = []
        self._active: deque[Peer] = deque()  # peers with inbound messages, fair-queue order
        self._recv_lot = trio.lowlevel.ParkingLot()
        # The engine a receiving task is waiting on, lent (_park_recv).
        self._lender: Engine | None = None
        self._send_lot = trio.lowlevel.ParkingLot()
        self._drain_lot = trio.lowlevel.ParkingLot()
        self._dirty: list[Engine] = []  # engines woken for output since the last park
        self._fq_peer: Peer | None = None  # where _fq_recv_msg's last message came from
        self._endpoints: dict[str, _EndpointState] = {}
        self._monitors: set[Monitor] = set()
        self._closed = False
        self._closing = False
        self._ticks = 0
        self._recv_frames: deque[bytes] = deque()  # for frame-at-a-time recv()
        self._send_frames: list[BytesLike] = []  # for send(..., more=True)
        self.last_endpoint = ""

    # ------------------------------------------------------------------ options

    def set_option(self, name: str, value: Any) -> None:
        """Set an option by name (also available as an attribute).

        Raises:
            ValueError: unknown option, wrong socket type, or a bad value.
            TypeError: a value of the wrong type.
        """
        self._options[name] = validate_option(self.socket_type, name, value)
        if name in ("sndhwm", "rcvhwm"):
            self._apply_hwm()

    def get_option(self, name: str) -> Any:
        """Current value of an option."""
        if name not in OPTIONS:
            raise ValueError(f"unknown socket option {name!r}")
        return self._options[name]

    def _apply_hwm(self) -> None:
        # New limits apply to existing tcp/ipc pipes too (libzmq applies them to pipes
        # created afterwards; applying them at once is what users expect).
        for peer in getattr(self, "_peers", ()):
            if peer.link is None:
                _set_hwm(peer.out, self._options["sndhwm"])
                _set_hwm(peer.inp, self._options["rcvhwm"])

    # ------------------------------------------------------------------ lifecycle

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` has begun."""
        return self._closed or self._closing

    def _check_open(self) -> None:
        if self._closed or self._closing:
            raise trio.ClosedResourceError("socket is closed")

    def __repr__(self) -> str:
        return f"<zmtp {self.socket_type.name} socket>"

    async def __aenter__(self) -> Socket:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self, linger: int | None = None) -> None:
        """Close the socket.

        Queued outbound messages are flushed for up to ``linger`` ms (default: the
        ``linger`` option; -1 waits until everything is sent, 0 discards at once).
        Every background task of the socket has ended when this returns.
        """
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closing = True
        self._wake_receivers()
        self._send_lot.unpark_all()
        if linger is None:
            linger = self._options["linger"]
        with trio.CancelScope(shield=True):
            if linger != 0:
                with trio.move_on_after(math.inf if linger < 0 else linger / 1000):
                    await self._wait_flushed()
            self._closed = True
            if linger == 0:
                for peer in self._peers:
                    peer.out.clear()
            for ep in list(self._endpoints.values()):
                await self._stop_endpoint(ep)
            self._endpoints.clear()
            for peer in list(self._peers):
                self._remove_peer(peer)
            self._emit(EventType.CLOSED, "")
            for mon in list(self._monitors):
                mon.close()
            self._ctx._forget(self)

    def _flushed(self) -> bool:
        for peer in self._peers:
            if peer.link is not None:
                continue  # inproc: already in the other socket's queue
            if peer.out.queue:
                return False
            eng = peer.engine
            if eng is not None and (not eng.writer_idle or eng.conn.has_data_to_send):
                return False
        return True

    async def _wait_flushed(self) -> None:
        while not self._flushed():
            await self._drain_lot.park()
        # Then until the kernel has handed our bytes to each peer.  Closing while a
        # peer has some still unread loses them with libzmq: over ipc our close is a
        # hang-up, and a libzmq engine paused at its HWM that sees a hang-up drops
        # whatever the kernel still holds for it (stream_engine_base's _io_error).
        # Nothing signals when the peer reads, so poll; linger bounds the wait.
        while any(_kernel_unsent(peer.engine) for peer in self._peers if peer.engine):
            await trio.sleep(0.005)

    # ------------------------------------------------------------------ monitor

    def monitor(self, maxlen: int = 1000) -> Monitor:
        """Observe connection events (an async iterator of :class:`SocketEvent`).

        Args:
            maxlen: events buffered before the oldest are dropped (never blocks).
        """
        if maxlen < 1:
            raise ValueError("maxlen must be >= 1")
        mon = Monitor(self, maxlen)
        self._monitors.add(mon)
        return mon

    def _emit(
        self, type_: EventType, endpoint: str, peer: str = "", reason: str = "", **detail: Any
    ) -> None:
        if self._monitors:
            event = SocketEvent(type_, endpoint, peer, reason, detail)
            for mon in list(self._monitors):
                mon._push(event)

    # ------------------------------------------------------------------ endpoints

    async def bind(self, endpoint: str) -> str:
        """Listen on ``endpoint``; return it with wildcards resolved.

        ``tcp://*:0`` binds every IPv4 interface on a free port and returns e.g.
        ``tcp://0.0.0.0:49152``.

        Raises:
            ValueError: malformed endpoint, or already bound (inproc).
            OSError: the address cannot be bound (in use, not local, ...).
        """
        self._check_open()
        ep = parse_endpoint(endpoint, bind=True)
        if ep.transport == "inproc":
            await trio.lowlevel.checkpoint()
            resolved = str(ep)
            state = _EndpointState(resolved, TaskGroup(self._ctx._nursery, resolved), bind=True)
            state.inproc = True
            self._ctx._inproc_bind(ep.path, self, state)
            self._endpoints[resolved] = state
            self.last_endpoint = resolved
            self._emit(EventType.LISTENING, resolved)
            return resolved
        try:
            listener, resolved, cleanup = await _open_listener(ep)
        except OSError as exc:
            self._emit(EventType.BIND_FAILED, endpoint, reason=str(exc))
            raise
        group = TaskGroup(self._ctx._nursery, resolved)
        state = _EndpointState(resolved, group, bind=True)
        state.listener = listener
        state.cleanup = cleanup
        self._endpoints[resolved] = state
        group.spawn(self._accept_loop, listener, state)
        self.last_endpoint = resolved
        self._emit(EventType.LISTENING, resolved)
        return resolved

    async def connect(self, endpoint: str) -> None:
        """Connect to ``endpoint`` in the background and return at once.

        Connecting, handshaking and reconnecting happen in the background; unless
        ``immediate`` is set, messages queue for this peer meanwhile.

        Raises:
            ValueError: malformed endpoint.
        """
        self._check_open()
        ep = parse_endpoint(endpoint)
        await trio.lowlevel.checkpoint()
        key = str(ep) if ep.transport != "tcp" else endpoint
        if key in self._endpoints:
            raise ValueError(f"already connected to {endpoint}")
        group = TaskGroup(self._ctx._nursery, key)
        state = _EndpointState(key, group, bind=False)
        self._endpoints[key] = state
        if ep.transport == "inproc":
            state.inproc = True
            self._ctx._inproc_connect(ep.path, self, state)
            return
        if self._queue_before_connect and not self._options["immediate"]:
            state.peer = self._new_peer(key, persistent=True)
            self._add_peer(state.peer)
        group.spawn(self._connect_loop, ep, state)

    async def unbind(self, endpoint: str) -> None:
        """Stop listening on ``endpoint`` (as returned by :meth:`bind`) and close the
        connections accepted through it."""
        await self._remove_endpoint(endpoint, bind=True)

    async def disconnect(self, endpoint: str) -> None:
        """Stop connecting to ``endpoint``; close the connection and drop its queue."""
        await self._remove_endpoint(endpoint, bind=False)

    async def _remove_endpoint(self, endpoint: str, *, bind: bool) -> None:
        self._check_open()
        key = endpoint
        state = self._endpoints.get(key)
        if state is None:
            with contextlib.suppress(ValueError):
                key = str(parse_endpoint(endpoint, bind=bind))
            state = self._endpoints.get(key)
        if state is None or state.bind != bind:
            raise ValueError(f"not {'bound' if bind else 'connected'} to {endpoint}")
        del self._endpoints[key]
        await self._stop_endpoint(state)

    async def _stop_endpoint(self, state: _EndpointState) -> None:
        await state.group.aclose()
        if state.listener is not None:
            await trio.aclose_forcefully(state.listener)
        if state.cleanup is not None:
            state.cleanup()
        if state.inproc:
            self._ctx._inproc_forget(self, state)
        for peer in list(state.peers):
            self._remove_peer(peer)
        if state.peer is not None:
            self._remove_peer(state.peer)

    async def _accept_loop(self, listener: trio.abc.Listener[Any], state: _EndpointState) -> None:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:  # e.g. EMFILE: back off rather than spin
                log.warning("%s: accept on %s failed: %s", self, state.endpoint, exc)
                await trio.sleep(0.1)
                continue
            address = _peer_address(stream)
            self._emit(EventType.ACCEPTED, state.endpoint, address)
            state.group.spawn(self._run_engine, stream, state, address, None)

    async def _run_engine(
        self, stream: trio.abc.Stream, state: _EndpointState, address: str, peer: Peer | None
    ) -> Any:
        engine = Engine(self, stream, state.endpoint, address, peer)
        engine.endpoint_state = state  # type: ignore[attr-defined]
        return await engine.run()

    async def _connect_loop(self, ep: Endpoint, state: _EndpointState) -> None:
        opts = self._options
        ivl = opts["reconnect_ivl"]
        while True:
            try:
                stream = await _open_stream(ep)
            except OSError as exc:
                self._emit(EventType.CONNECT_DELAYED, state.endpoint, reason=str(exc))
                log.debug("%s: connect to %s failed: %s", self, state.endpoint, exc)
            else:
                self._emit(EventType.CONNECTED, state.endpoint, _peer_address(stream))
                engine = Engine(self, stream, state.endpoint, state.endpoint, state.peer)
                engine.endpoint_state = state  # type: ignore[attr-defined]
                error = await engine.run()
                if error is not None and error.fatal:
                    log.warning(
                        "%s: not reconnecting to %s after protocol error: %s",
                        self,
                        state.endpoint,
                        error,
                    )
                    return
                if engine.handshake is not None:
                    ivl = opts["reconnect_ivl"]
            if ivl < 0 or opts["reconnect_ivl"] < 0:
                return
            self._emit(EventType.CONNECT_RETRIED, state.endpoint, reconnect_in=ivl / 1000)
            await trio.sleep(ivl / 1000)
            cap = opts["reconnect_ivl_max"]
            if cap > ivl:
                ivl = min(ivl * 2, cap)

    # ------------------------------------------------------------------ peers

    def _new_peer(self, endpoint: str, *, persistent: bool = False) -> Peer:
        out = Pipe(self._options["sndhwm"], None, self)
        inp = Pipe(self._options["rcvhwm"], self, None)
        return Peer(self, out, inp, endpoint, persistent=persistent)

    def _add_peer(self, peer: Peer) -> None:
        self._peers.append(peer)
        self._attach(peer)
        if self._send_lot:
            self._send_lot.unpark_all()

    def _remove_peer(self, peer: Peer) -> None:
        if peer not in self._peers:
            return
        self._peers.remove(peer)
        self._detach(peer)
        if peer.link is None:
            # Over inproc, ``out`` is the other socket's inbound queue: what is there
            # was sent, and stays readable (libzmq terminates inproc pipes with a delay
            # unless linger is 0; aclose(linger=0) clears it first).
            peer.out.clear()
        peer.out.closed = True
        if peer.link is not None:
            other = peer.link
            peer.link = None
            other.link = None
            other.owner._remove_peer(other)

    def _engine_ready(self, engine: Engine, hs: HandshakeComplete) -> Peer | None:
        """A connection completed its handshake; return the peer it serves."""
        state: _EndpointState = engine.endpoint_state  # type: ignore[attr-defined]
        peer = engine.peer
        if peer is None:
            peer = self._new_peer(state.endpoint)
            peer.identity = hs.identity
            peer.socket_type = hs.socket_type
            if not self._accept_peer(peer):
                return None
            state.peers.add(peer)
            self._add_peer(peer)
        else:
            peer.identity = hs.identity
            peer.socket_type = hs.socket_type
        peer.engine = engine
        peer.connected = True
        peer.out.reader = engine
        peer.inp.writer = engine
        self._peer_ready(peer)
        return peer

    def _engine_closed(self, engine: Engine) -> None:
        peer = engine.peer
        if peer is None or peer.engine is not engine:
            return
        peer.engine = None
        peer.connected = False
        peer.out.reader = None
        peer.inp.writer = None
        peer.inp.writer_waiting = False
        if peer.persistent:
            self._disconnected(peer)
        else:
            state: _EndpointState = engine.endpoint_state  # type: ignore[attr-defined]
            state.peers.discard(peer)
            self._remove_peer(peer)

    def _peer_ready(self, peer: Peer) -> None:
        """A peer's connection is up: run the type's hook and wake waiters."""
        self._connected(peer)
        # A connect()ed peer was added (and waiters woken) long before its connection
        # completed; wait_for_peers() counts connected peers, so wake it now.
        if self._send_lot:
            self._send_lot.unpark_all()

    # Hooks for socket types -------------------------------------------------------

    def _accept_peer(self, peer: Peer) -> bool:
        """Decide whether a newly handshaken peer joins (PAIR and ROUTER may refuse).

        ``peer.identity`` and ``peer.socket_type`` are set; not yet attached.
        """
        return True

    def _attach(self, peer: Peer) -> None:
        """A peer joined (at connect() for queued peers, else at handshake)."""

    def _detach(self, peer: Peer) -> None:
        """A peer left for good."""

    def _connected(self, peer: Peer) -> None:
        """A peer's connection completed its handshake (also after each reconnect)."""

    def _disconnected(self, peer: Peer) -> None:
        """A persistent peer's connection dropped; it will reconnect."""

    def _peer_messages(self, peer: Peer, messages: list[Message]) -> None:
        """Messages arrived from a peer (called by engines and inproc links)."""
        peer.inp.put_many(messages)

    def _peer_subscribe(self, peer: Peer, topic: bytes) -> None:
        """A SUBSCRIBE command arrived (only publishers care)."""

    def _peer_cancel(self, peer: Peer, topic: bytes) -> None:
        """A CANCEL command arrived (only publishers care)."""

    def _try_send(self, msg: Message) -> bool:
        raise NotSupportedError(f"{self.socket_type.name} sockets cannot send")

    def _try_recv(self) -> Message | None:
        raise NotSupportedError(f"{self.socket_type.name} sockets cannot receive")

    # Pipe callbacks ---------------------------------------------------------------

    def pipe_readable(self, pipe: Pipe) -> None:
        """An inbound pipe went from empty to non-empty."""
        self._active.append(pipe.peer)  # type: ignore[arg-type]
        self._wake_receivers()

    def _wake_receivers(self) -> None:
        """Wake every task blocked in a receive, to look at the socket again."""
        if self._recv_lot:
            self._recv_lot.unpark_all()
        if self._lender is not None:
            self._lender.interrupt()

    def pipe_writable(self, pipe: Pipe) -> None:
        """An outbound pipe drained below its low-water mark."""
        if self._send_lot:
            self._send_lot.unpark_all()

    async def _park_recv(self) -> None:
        """Wait for input; first put any just-queued output on the wire (eager flush)."""
        dirty = self._dirty
        if dirty:
            for engine in dirty:
                engine.flush_now()
            dirty.clear()
        peers = self._peers
        if len(peers) == 1 and self._lender is None:
            # One connection: wait on its input in this task (Engine.lend), which
            # saves waking the engine's reader first and this task second.
            only = peers[0].engine
            if only is not None and only.can_lend():
                self._lender = only
                try:
                    await only.lend()
                finally:
                    self._lender = None
                return
        await self._recv_lot.park()

    def _wait_writable(self) -> None:
        """Mark every outbound pipe so that any drain wakes a blocked sender."""
        for peer in self._peers:
            peer.out.writer_waiting = True

    # Strategy helpers -------------------------------------------------------------

    def _fq_recv(self) -> tuple[Peer, Message] | None:
        """Fair-queue: one message from the next peer in turn, with that peer."""
        msg = self._fq_recv_msg()
        return None if msg is None else (self._fq_peer, msg)  # type: ignore[return-value]

    def _fq_recv_msg(self) -> Message | None:
        """Fair-queue: one message from the next peer in turn (libzmq src/fq.cpp).

        The peer it came from is left in ``_fq_peer`` (no tuple per message).
        """
        active = self._active
        while active:
            peer = active[0]
            inp = peer.inp
            q = inp.queue
            if q:
                # The take, inlined: this is the per-message hot path.
                msg = q.popleft()
                if not q:
                    active.popleft()
                elif len(active) > 1:
                    active.rotate(-1)
                if inp.writer_waiting:
                    inp.drained()
                self._fq_peer = peer
                return msg
            active.popleft()
        return None

    # ------------------------------------------------------------------ send

    async def send_multipart(self, frames: Sequence[BytesLike]) -> None:
        """Send a multipart message, waiting while the socket cannot take it.

        Frames are bytes, bytearray or memoryview; mutable ones are copied, so the
        caller may reuse them at once.  Cancellation leaves nothing sent.

        Raises:
            TypeError: a frame is not bytes-like.
            ValueError: no frames.
            NotSupportedError: the socket type cannot send.
            InvalidStateError: out of turn (REQ/REP).
            trio.ClosedResourceError: the socket is closed.
        """
        if type(frames) is list and len(frames) == 1 and type(frames[0]) is bytes:
            msg = frames.copy()  # the commonest message, without a call
        else:
            msg = _snapshot(frames)
        ticks = self._ticks + 1
        if ticks >= _CHECKPOINT_EVERY:
            self._ticks = 0
            await trio.lowlevel.checkpoint()
        else:
            self._ticks = ticks
        if self._closing:
            raise trio.ClosedResourceError("socket is closed")
        while not self._try_send(msg):
            self._wait_writable()
            await self._send_lot.park()
            self._check_open()

    def send_multipart_nowait(self, frames: Sequence[BytesLike]) -> None:
        """Send without waiting.

        Raises:
            trio.WouldBlock: the message cannot be queued now (HWM reached, no peer).
            Everything :meth:`send_multipart` raises.
        """
        msg = _snapshot(frames)
        self._check_open()
        if not self._try_send(msg):
            raise trio.WouldBlock

    async def send(self, data: BytesLike, *, more: bool = False) -> None:
        """Send one frame; with ``more=True`` it is held until the final frame.

        The message goes out atomically when a frame without ``more`` is sent.
        """
        if isinstance(data, str):
            raise TypeError("frames must be bytes-like, not str (encode it first)")
        if more:
            self._check_open()
            if not self._can_send:
                raise NotSupportedError(f"{self.socket_type.name} sockets cannot send")
            # Checkpoint first: a cancelled call must not have held the frame.
            await trio.lowlevel.checkpoint()
            self._send_frames.append(bytes(data) if not isinstance(data, bytes) else data)
            return
        if not self._send_frames:
            await self.send_multipart([data])
            return
        await self.send_multipart([*self._send_frames, data])
        # Only once sent: if the final frame's send is cancelled (or fails), the held
        # frames stay held for the retry, so the failed call has changed nothing.
        self._send_frames = []

    async def send_many(self, messages: Iterable[Sequence[BytesLike]]) -> int:
        """Send many messages in one call, waiting where needed; return how many.

        This is the throughput form: one checkpoint for the batch, messages queued in
        bulk, one wake-up of each connection.  If cancelled, a prefix of the batch was
        sent and the rest was not (each message whole or not at all).
        """
        # A one-frame list of bytes, by far the commonest message, is copied without a
        # call; everything else goes through the full check.
        batch = [
            frames.copy()
            if type(frames) is list and len(frames) == 1 and type(frames[0]) is bytes
            else _snapshot(frames)
            for frames in messages
        ]
        await trio.lowlevel.checkpoint()
        self._check_open()
        done = 0
        total = len(batch)
        while done < total:
            done += self._try_send_many(batch, done)
            if done < total:
                self._wait_writable()
                await self._send_lot.park()
                self._check_open()
        return total

    def _send_batch_nowait(self, batch: list[Message], start: int = 0) -> int:
        """Queue messages the caller owns (no copy, no checks of frame types) from
        ``batch[start:]`` without waiting; return how many.  For the proxy, whose
        batches come from :meth:`recv_many`."""
        self._check_open()
        return self._try_send_many(batch, start)

    def _try_send_many(self, batch: list[Message], start: int) -> int:
        """Queue messages from ``batch[start:]`` without waiting; return how many.

        Types with a bulk strategy override this; the default sends one at a time.
        """
        try_send = self._try_send
        n = 0
        for i in range(start, len(batch)):
            if not try_send(batch[i]):
                break
            n += 1
        return n

    # ------------------------------------------------------------------ receive

    async def recv_multipart(self) -> list[bytes]:
        """Receive the next whole message, waiting for one if needed.

        Raises:
            NotSupportedError: the socket type cannot receive.
            InvalidStateError: out of turn (REQ/REP).
            trio.ClosedResourceError: the socket is closed.
        """
        ticks = self._ticks + 1
        if ticks >= _CHECKPOINT_EVERY:
            self._ticks = 0
            await trio.lowlevel.checkpoint()
        else:
            self._ticks = ticks
        if self._closing:
            raise trio.ClosedResourceError("socket is closed")
        if self._recv_frames:
            return self._take_partial()
        while True:
            msg = self._try_recv()
            if msg is not None:
                return msg
            await self._park_recv()
            self._check_open()

    def recv_multipart_nowait(self) -> list[bytes]:
        """Receive without waiting.

        Raises:
            trio.WouldBlock: no message is ready.
        """
        self._check_open()
        if self._recv_frames:
            return self._take_partial()
        msg = self._try_recv()
        if msg is None:
            raise trio.WouldBlock
        return msg

    async def recv_many(self, max_messages: int = 1000) -> list[list[bytes]]:
        """Receive at least one and at most ``max_messages`` messages.

        Waits only until one is available, then takes whatever else is already queued,
        fairly across peers.  A REQ or REP socket returns one message, since it must
        send before receiving again.
        """
        if max_messages < 1:
            raise ValueError("max_messages must be >= 1")
        self._ticks += 1
        if self._ticks >= _CHECKPOINT_EVERY:
            self._ticks = 0
            await trio.lowlevel.checkpoint()
        self._check_open()
        if self._recv_frames:
            return [self._take_partial()]
        while True:
            out = self._try_recv_many(max_messages)
            if out:
                return out
            await self._park_recv()
            self._check_open()

    def _try_recv_many(self, max_messages: int) -> list[Message]:
        """Take up to ``max_messages`` without waiting (possibly none).

        Types with a bulk strategy override this; the default takes one at a time.
        """
        out: list[Message] = []
        try_recv = self._try_recv
        while len(out) < max_messages:
            try:
                msg = try_recv()
            except InvalidStateError:
                # REQ/REP: after one message it is the other direction's turn.  The
                # check comes before anything is taken, so nothing is lost.
                if out:
                    break
                raise
            if msg is None:
                break
            out.append(msg)
        return out

    def _fq_take(self, max_messages: int) -> list[tuple[Peer, list[Message]]]:
        """Fair-queue in bulk: up to ``max_messages``, as (peer, messages) runs.

        Each round gives every peer with input an equal share of what is left, so a
        busy peer cannot starve the others, while a lone peer's queue is taken with a
        single C-level ``extend``.
        """
        runs: list[tuple[Peer, list[Message]]] = []
        active = self._active
        left = max_messages
        while active and left > 0:
            share = max(1, left // len(active))
            peer = active[0]
            inp = peer.inp
            q = inp.queue
            if len(q) <= share:
                if q:
                    msgs = list(q)
                    q.clear()
                    runs.append((peer, msgs))
                    left -= len(msgs)
                active.popleft()
            else:
                msgs = [q.popleft() for _ in range(share)]
                runs.append((peer, msgs))
                left -= share
                active.rotate(-1)
            if inp.writer_waiting:
                inp.drained()
        return runs

    async def recv(self) -> bytes:
        """Receive one frame; :attr:`rcvmore` tells whether more of its message follow."""
        if not self._recv_frames:
            self._recv_frames.extend(await self.recv_multipart())
        else:
            await trio.lowlevel.checkpoint()
        return self._recv_frames.popleft()

    @property
    def rcvmore(self) -> bool:
        """True if the last :meth:`recv` returned a frame with more to follow."""
        return bool(self._recv_frames)

    def _take_partial(self) -> list[bytes]:
        rest = list(self._recv_frames)
        self._recv_frames.clear()
        return rest

    # ------------------------------------------------------------------ introspection

    @property
    def peers(self) -> list[Peer]:
        """The current peers (for introspection and tests)."""
        return list(self._peers)

    async def wait_for_peers(self, count: int = 1) -> None:
        """Wait until at least ``count`` peers have completed their handshake."""
        while sum(1 for p in self._peers if p.connected) < count:
            self._check_open()
            await self._send_lot.park()


for _name in OPTIONS:
    setattr(Socket, _name, _OptionAttr(_name))


def _kernel_unsent(engine: Engine) -> int:
    """Bytes the kernel still holds for the peer: for a unix socket, not yet read by
    it; for tcp, not yet acknowledged (Linux's SIOCOUTQ).  0 where unknown."""
    sock = getattr(engine.stream, "socket", None)
    if _SIOCOUTQ is None or sock is None:
        return 0
    try:
        raw = fcntl.ioctl(sock.fileno(), _SIOCOUTQ, b"\0\0\0\0")
    except (OSError, ValueError):  # closed, or not a socket
        return 0
    return int.from_bytes(raw, sys.byteorder, signed=True)


def _set_hwm(pipe: Pipe, hwm: int) -> None:
    pipe.hwm = hwm
    pipe.lwm = (hwm + 1) // 2


class _EndpointState:
    """What a socket keeps per bound or connected endpoint."""

    def __init__(self, endpoint: str, group: TaskGroup, *, bind: bool) -> None:
        self.endpoint = endpoint
        self.group = group
        self.bind = bind
        self.listener: trio.abc.Listener[Any] | None = None
        self.cleanup: Any = None
        self.peer: Peer | None = None  # connect(): the persistent peer
        self.peers: set[Peer] = set()  # bind(): peers accepted here
        self.inproc = False


# ---------------------------------------------------------------------- transports


def _peer_address(stream: trio.abc.Stream) -> str:
    sock = getattr(stream, "socket", None)
    if sock is None:
        return ""
    try:
        addr = sock.getpeername()
    except OSError:
        return ""
    if isinstance(addr, tuple):
        host, port = addr[0], addr[1]
        return f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"
    return f"ipc://{addr}" if addr else "ipc://"


async def _open_stream(ep: Endpoint) -> trio.abc.Stream:
    if ep.transport == "tcp":
        return await trio.open_tcp_stream(ep.host, ep.port)
    path = ep.path
    if path.startswith("@"):
        path = "\0" + path[1:]
    return await trio.open_unix_socket(path)


async def _open_listener(ep: Endpoint) -> tuple[trio.SocketListener, str, Any]:
    if ep.transport == "tcp":
        host = ep.host or "0.0.0.0"
        infos = await trio.socket.getaddrinfo(
            host, ep.port, type=stdsocket.SOCK_STREAM, flags=stdsocket.AI_PASSIVE
        )
        # libzmq binds one address: prefer IPv4, as it does without ZMQ_IPV6.
        infos.sort(key=lambda info: info[0] != stdsocket.AF_INET)
        family, type_, proto, _, sockaddr = infos[0]
        sock = trio.socket.socket(family, type_, proto)
        try:
            sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_REUSEADDR, 1)
            if family == stdsocket.AF_INET6:
                sock.setsockopt(stdsocket.IPPROTO_IPV6, stdsocket.IPV6_V6ONLY, 1)
            await sock.bind(sockaddr)
            sock.listen(256)
        except BaseException:
            sock.close()
            raise
        bound = sock.getsockname()
        h = bound[0]
        resolved = f"tcp://[{h}]:{bound[1]}" if ":" in h else f"tcp://{h}:{bound[1]}"
        return trio.SocketListener(sock), resolved, None
    # ipc
    tmpdir: str | None = None
    path = ep.path
    if path == "*":
        tmpdir = tempfile.mkdtemp(prefix="zmtp-ipc-")
        path = os.path.join(tmpdir, "socket")
    abstract = path.startswith("@")
    sys_path = "\0" + path[1:] if abstract else path
    if not abstract:
        # A stale socket file left by a dead process would make bind fail; libzmq
        # removes it too.  Only sockets are removed, never regular files.
        try:
            if stat.S_ISSOCK(os.stat(path).st_mode):
                os.unlink(path)
        except FileNotFoundError:
            pass
    sock = trio.socket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
    try:
        await sock.bind(sys_path)
        sock.listen(256)
    except BaseException:
        sock.close()
        raise

    def cleanup() -> None:
        if not abstract:
            with contextlib.suppress(OSError):
                os.unlink(path)
            if tmpdir is not None:
                with contextlib.suppress(OSError):
                    os.rmdir(tmpdir)

    return trio.SocketListener(sock), f"ipc://{path}", cleanup
