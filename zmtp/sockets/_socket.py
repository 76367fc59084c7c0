"""The application's side of a socket: endpoints, sending and receiving.

Send and receive never await per message when they can proceed: they check a queue,
move a message, and return.  To stay a good trio citizen they still checkpoint at
least every ``CHECKPOINT_EVERY`` calls and whenever they wait, so a loop of sends
cannot starve other tasks.  A checkpoint happens *before* a message is queued, so a
cancelled send has sent nothing, and a cancelled receive has taken nothing.

The machinery underneath (peers, engines, closing) is :class:`~zmtp.sockets._base.
SocketBase`; the socket types (:mod:`zmtp.sockets._pipeline`, ``_reqrep``, ``_pair``,
``_pubsub``) fill in its hooks with the routing strategies of
:mod:`zmtp.sockets._routing`.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import trio

from ..protocol._buffers import BytesLike
from ._base import SocketBase, SocketHost
from ._counters import SocketStatistics
from ._engine import Engine
from ._errors import NotSupportedError
from ._options import OPTIONS
from ._peer import NO_PEER_INFO, PeerInfo, Received
from ._pipe import Message
from ._routing import FairQueue, LoadBalancer

__all__ = ["Socket"]

#: Send/receive calls that complete without waiting still checkpoint this often.
CHECKPOINT_EVERY = 256


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


class Socket(SocketBase):
    """A ZeroMQ socket on trio.  Create it with :meth:`zmtp.Context.socket`.

    Use it as an async context manager, or call :meth:`aclose`.  Options are keyword
    arguments of ``ctx.socket()`` and attributes (``sock.sndhwm = 10``).
    """

    __slots__ = (
        "_recv_fq",
        "_recv_frames",
        "_recv_one",
        "_send_frames",
        "_send_lb",
        "_send_one",
        "_ticks",
    )

    def __init__(self, host: SocketHost, socket_type: Any, **options: Any) -> None:
        super().__init__(host, socket_type, **options)
        # What one message takes to send and to receive: the type's hooks, bound once.
        # A type whose hook only forwards to a routing strategy binds the strategy's
        # method here instead (a call less per message).
        self._send_one: Callable[[Message], bool] = self._try_send
        self._recv_one: Callable[[], Message | None] = self._try_recv
        # A type whose one-message hooks are exactly its load balancer's send and its
        # fair queue's receive names them here, and send_multipart/recv_multipart do
        # the commonest case of each themselves (a lone peer's pipe with room, a
        # message queued): a call less per message, a sixth of the call's cost.
        self._send_lb: LoadBalancer | None = None
        self._recv_fq: FairQueue | None = None
        self._ticks = 0
        self._recv_frames: deque[bytes] = deque()  # for frame-at-a-time recv()
        self._send_frames: Message = []  # for send(..., more=True)

    async def __aenter__(self) -> Socket:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ endpoints

    @property
    def last_endpoint(self) -> str:
        """The endpoint of the last :meth:`bind` (resolved) or :meth:`connect`."""
        return self._endpoints.last_endpoint

    async def bind(self, endpoint: str) -> str:
        """Listen on ``endpoint``; return it with wildcards resolved.

        ``tcp://*:0`` binds every IPv4 interface on a free port and returns e.g.
        ``tcp://0.0.0.0:49152``.

        Raises:
            ValueError: malformed endpoint, or already bound (inproc).
            OSError: the address cannot be bound (in use, not local, ...).
        """
        self._check_open()
        self._check_security(endpoint)
        return await self._endpoints.bind(endpoint)

    async def connect(self, endpoint: str) -> None:
        """Connect to ``endpoint`` in the background and return at once.

        Connecting, handshaking and reconnecting happen in the background; unless
        ``immediate`` is set, messages queue for this peer meanwhile.

        Raises:
            ValueError: malformed endpoint, or already connected to it.
        """
        self._check_open()
        self._check_security(endpoint)
        await self._endpoints.connect(endpoint)

    def _check_security(self, endpoint: str) -> None:
        # An incomplete security configuration fails here, not in a handshake later.
        # inproc has no handshake, hence no mechanism (as in libzmq).
        if not endpoint.startswith("inproc://"):
            self.security()

    async def unbind(self, endpoint: str) -> None:
        """Stop listening on ``endpoint`` (as returned by :meth:`bind`) and close the
        connections accepted through it."""
        self._check_open()
        await self._endpoints.remove(endpoint, bind=True)

    async def disconnect(self, endpoint: str) -> None:
        """Stop connecting to ``endpoint``; close the connection and drop its queue."""
        self._check_open()
        await self._endpoints.remove(endpoint, bind=False)

    def attach_stream(self, stream: trio.abc.Stream, name: str = "stream://") -> None:
        """Speak ZMTP over an already open trio stream, as if it had been accepted on
        a bind of ``name``: a transport of your own (an SSL stream, a memory stream in
        tests).  The connection ends when the peer closes it, on a protocol error, or
        when the socket closes; ``unbind(name)`` ends every stream attached under it.

        Raises:
            trio.ClosedResourceError: the socket is closed.
        """
        self._check_open()
        self._endpoints.attach_stream(stream, name)

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
        held = self._send_frames
        if held:
            msg = held + msg  # continues a message begun with send(more=True)
        ticks = self._ticks + 1
        if ticks >= CHECKPOINT_EVERY:
            self._ticks = 0
            await trio.lowlevel.checkpoint()
        else:
            self._ticks = ticks
        if self._closing:
            raise trio.ClosedResourceError("socket is closed")
        lb = self._send_lb
        out = lb.lone if lb is not None else None
        if out is not None and not 0 < out.hwm <= len(out.queue):
            # LoadBalancer.send's lone-peer case, inlined (see LoadBalancer.lone).
            q = out.queue
            q.append(msg)
            if len(q) == 1 and out.reader is not None:
                out.reader.pipe_readable(out)
        else:
            while not self._send_one(msg):
                self._wait_writable()
                await self._send_lot.park()
                self._check_open()
        if held:
            # Only once sent: a cancelled or failed send leaves the held frames held,
            # so the call changed nothing and can be retried.
            self._send_frames = []

    def send_multipart_nowait(self, frames: Sequence[BytesLike]) -> None:
        """Send without waiting.

        Raises:
            trio.WouldBlock: the message cannot be queued now (HWM reached, no peer).
            Everything :meth:`send_multipart` raises.
        """
        msg = _snapshot(frames)
        self._check_open()
        held = self._send_frames
        if held:
            msg = held + msg
        if not self._send_one(msg):
            raise trio.WouldBlock
        if held:
            self._send_frames = []

    async def send(self, data: BytesLike, *, more: bool = False) -> None:
        """Send one frame; with ``more=True`` it is held until the final frame.

        The message goes out atomically when a frame without ``more`` is sent.  As in
        pyzmq, any send after ``send(..., more=True)`` continues that message:
        ``send(ident, more=True)`` then ``send_multipart([b"reply"])`` sends
        ``[ident, b"reply"]`` (so do ``send_multipart_nowait``, and the first message
        of ``send_many`` and ``send_batch_nowait``).
        """
        if isinstance(data, str):
            raise TypeError("frames must be bytes-like, not str (encode it first)")
        if more:
            self._check_open()
            if not self.can_send:
                raise NotSupportedError(f"{self.socket_type.name} sockets cannot send")
            # Checkpoint first: a cancelled call must not have held the frame.
            await trio.lowlevel.checkpoint()
            self._send_frames.append(bytes(data) if not isinstance(data, bytes) else data)
            return
        await self.send_multipart([data])  # which sends the held frames before it

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
        held = self._send_frames
        if held and batch:
            batch[0] = held + batch[0]
        done = 0
        total = len(batch)
        while done < total:
            done += self._try_send_many(batch, done)
            if held and done:
                self._send_frames = held = []  # they went with the first message
            if done < total:
                self._wait_writable()
                await self._send_lot.park()
                self._check_open()
        return total

    def send_batch_nowait(self, batch: list[Message], start: int = 0) -> int:
        """Queue messages from ``batch[start:]`` without waiting; return how many.

        For devices (such as a proxy) that move batches from :meth:`recv_many` of
        another socket: the messages are taken as they are, with no copy and no check
        of frame types, so ``batch`` must hold lists of ``bytes`` that the caller
        gives up.  Returns 0 when nothing can be queued now (every pipe full, no
        peer); :meth:`send_multipart` of ``batch[start]`` then waits for room.  Over
        tcp and ipc, what it queued is handed to the kernel before it returns (as much
        as the kernel takes at once; the connection's writer task sends the rest).

        Raises:
            NotSupportedError: the socket type cannot send.
            InvalidStateError: out of turn (REQ/REP).
            trio.ClosedResourceError: the socket is closed.
        """
        self._check_open()
        # The batch goes to the kernel before this returns, written from this task
        # (on_output): a device moving batches would otherwise wake each destination
        # connection's writer task for every batch, a scheduling round each.
        holding: list[Engine] = []
        self._holding = holding
        try:
            held = self._send_frames
            if held and start < len(batch):
                first = [held + batch[start]]
                if not self._try_send_many(first, 0):
                    return 0
                self._send_frames = []
                return 1 + self._try_send_many(batch, start + 1)
            return self._try_send_many(batch, start)
        finally:
            self._holding = None
            if holding:
                self._flush_held(holding)

    async def recv_multipart(self) -> list[bytes]:
        """Receive the next whole message, waiting for one if needed.

        Raises:
            NotSupportedError: the socket type cannot receive.
            InvalidStateError: out of turn (REQ/REP).
            trio.ClosedResourceError: the socket is closed.
        """
        ticks = self._ticks + 1
        if ticks >= CHECKPOINT_EVERY:
            self._ticks = 0
            await trio.lowlevel.checkpoint()
        else:
            self._ticks = ticks
        if self._closing:
            raise trio.ClosedResourceError("socket is closed")
        if self._recv_frames:
            return self._take_partial()
        fq = self._recv_fq
        if fq is not None:
            active = fq.active
            if active:
                # FairQueue.recv inlined, for when the peer in turn has a message.
                peer = active[0]
                inp = peer.inp
                q = inp.queue
                if q:
                    taken = q.popleft()
                    if not q:
                        active.popleft()
                    elif len(active) > 1:
                        active.rotate(-1)
                    if inp.writer_waiting:
                        inp.drained()
                    fq.last = peer
                    return taken
        while True:
            msg = self._recv_one()
            if msg is not None:
                return msg
            msg = await self._park_recv()
            if msg is not None:
                return msg
            self._check_open()

    def recv_multipart_nowait(self) -> list[bytes]:
        """Receive without waiting.

        Raises:
            trio.WouldBlock: no message is ready.
        """
        self._check_open()
        if self._recv_frames:
            return self._take_partial()
        msg = self._recv_one()
        if msg is None:
            raise trio.WouldBlock
        return msg

    async def recv_message(self) -> Received:
        """Receive the next whole message together with who sent it.

        libzmq attaches the sender's properties to each message (``zmq_msg_gets``:
        User-Id, Peer-Address, the handshake's metadata); here they are one
        :class:`PeerInfo` per connection, shared by its messages, so
        :meth:`recv_multipart` pays nothing for them::

            msg = await sock.recv_message()
            if msg.peer.user_id != b"admin": ...
            tenant = msg.peer.get("X-Tenant")

        Over inproc (no handshake) the info is empty (mechanism ``"NULL"``).

        Raises:
            as :meth:`recv_multipart`.
        """
        parts = await self.recv_multipart()
        return Received(parts, self._sender())

    def recv_message_nowait(self) -> Received:
        """:meth:`recv_message` without waiting.

        Raises:
            trio.WouldBlock: no message is ready.
        """
        parts = self.recv_multipart_nowait()
        return Received(parts, self._sender())

    def _sender(self) -> PeerInfo:
        # Every single receive goes through the fair queue, which records the peer it
        # took from.
        peer = self._fq.last
        info = peer.info if peer is not None else None
        return info if info is not None else NO_PEER_INFO

    async def recv_many(self, max_messages: int = 1000) -> list[list[bytes]]:
        """Receive at least one and at most ``max_messages`` messages.

        Waits only until one is available, then takes whatever else is already queued,
        fairly across peers.  A REQ or REP socket returns one message, since it must
        send before receiving again.
        """
        if max_messages < 1:
            raise ValueError("max_messages must be >= 1")
        self._ticks += 1
        if self._ticks >= CHECKPOINT_EVERY:
            self._ticks = 0
            await trio.lowlevel.checkpoint()
        self._check_open()
        if self._recv_frames:
            return [self._take_partial()]
        while True:
            out = self._try_recv_many(max_messages)
            if out:
                return out
            msg = await self._park_recv()
            if msg is not None:
                return [msg]
            self._check_open()

    async def recv(self) -> bytes:
        """Receive one frame; :attr:`rcvmore` tells whether more of its message follow."""
        if not self._recv_frames:
            self._recv_frames.extend(await self.recv_multipart())
        else:
            await trio.lowlevel.checkpoint()
        return self._recv_frames.popleft()

    # pyzmq's conveniences, one frame each (the same names and defaults).

    async def send_string(self, text: str, *, more: bool = False, encoding: str = "utf-8") -> None:
        """Send ``text`` encoded (UTF-8 by default) as one frame, like pyzmq's."""
        if not isinstance(text, str):
            raise TypeError(f"send_string() takes a str, not {type(text).__name__}")
        await self.send(text.encode(encoding), more=more)

    async def recv_string(self, *, encoding: str = "utf-8") -> str:
        """Receive one frame (see :meth:`recv`) decoded as text, like pyzmq's.

        Raises:
            UnicodeDecodeError: the frame is not valid in ``encoding``; it is consumed.
        """
        return (await self.recv()).decode(encoding)

    async def send_json(self, obj: Any, *, more: bool = False, **dumps_options: Any) -> None:
        """Send ``obj`` as one frame of UTF-8 JSON (``json.dumps(obj, **dumps_options)``)."""
        await self.send(json.dumps(obj, **dumps_options).encode(), more=more)

    async def recv_json(self, **loads_options: Any) -> Any:
        """Receive one frame (see :meth:`recv`) and parse it as JSON.

        Raises:
            ValueError: the frame is not JSON (``json.JSONDecodeError``); it is consumed.
        """
        return json.loads(await self.recv(), **loads_options)

    @property
    def rcvmore(self) -> bool:
        """True if the last :meth:`recv` returned a frame with more to follow."""
        return bool(self._recv_frames)

    def statistics(self) -> SocketStatistics:
        """Counts of messages this socket dropped on its own (see
        :class:`~zmtp.sockets._counters.SocketStatistics`); cheap, callable any time."""
        return self._counters.snapshot()

    def _take_partial(self) -> list[bytes]:
        rest = list(self._recv_frames)
        self._recv_frames.clear()
        return rest


for _name in OPTIONS:
    setattr(Socket, _name, _OptionAttr(_name))
