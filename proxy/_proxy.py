"""The proxy: move messages between two zmtp sockets, like ``zmq_proxy_steerable``.

Theory of operation
-------------------
libzmq's proxy (src/proxy.cpp, specs/libzmq-behaviour.md §6) is one thread polling up to four
sockets.  On trio it is simpler to give each *direction* its own task:

* frontend → backend exists if the frontend can receive and the backend can send;
  backend → frontend if the backend can receive and the frontend can send.  A PULL
  frontend feeding a PUSH backend therefore has one direction; a ROUTER and a DEALER
  have two.  One socket given as both frontend and backend has a single loop that
  receives from it and sends back to it (libzmq's ``frontend == backend`` case).
* Each direction loops: take a batch (``recv_many``: wait for the first message, then
  take up to :data:`BATCH_SIZE` - 1 more that are already queued; libzmq's
  ``proxy_burst_size`` is also 1000), copy each message to the capture socket, then
  hand the batch to the destination one message at a time without waiting while it
  has room.  When the destination is full, the direction waits in ``send`` and so
  stops reading its source; the source's queues fill to their high-water mark and its
  connections stop being read, so backpressure reaches the senders through TCP.  At
  most one batch per direction is held by the proxy, and the other direction keeps
  flowing because it is another task.
* A control task reads commands (below).  PAUSE stops both directions before their
  next batch by cancelling any receive in progress (a cancelled receive has taken
  nothing, so nothing is lost); a batch already received is still delivered.
  TERMINATE stops everything and :meth:`Proxy.run` returns the final statistics.

Messages move whole (a batch is a list of multipart messages) and in order within a
direction.  Statistics are counted per batch, never per frame with an await, so the
cost per message is a few attribute updates.

Capture
-------
libzmq sends to the capture socket with a blocking send, so a capture socket that
cannot keep up (a PUSH with no puller, a PAIR whose peer went away) stalls the whole
proxy (specs/libzmq-behaviour.md §6.1, cppzmq#478).  We do not copy that: a copy for the capture
socket is offered with ``send_multipart_nowait`` and, if the socket would block, it
is dropped and counted in :attr:`ProxyStatistics.capture_dropped`.  Traffic never
waits for the capture socket.  A PUB capture drops per subscriber anyway, exactly as
libzmq's does.

Control commands
----------------
The command is the last frame of a message on the control socket (a REP, PAIR, SUB,
DEALER or ROUTER control all work; whatever frames precede the command, such as a
ROUTER's routing id and delimiter, are echoed in front of the reply; a SUB control
must be subscribed, e.g. to ``b""``, by its owner):

``PAUSE``
    Stop moving messages until ``RESUME``.  Messages wait in the sockets' queues
    (and then in the peers' queues, by backpressure).
``RESUME``
    Move messages again.
``TERMINATE``
    Stop; :meth:`Proxy.run` returns the final :class:`ProxyStatistics`.
``STATISTICS``
    Reply with libzmq's 8 frames (see :meth:`ProxyStatistics.as_libzmq_frames`).

**libzmq 4.3.5 swaps PAUSE and RESUME.**  Its ``handle_control`` tests for PAUSE with
an inverted ``memcmp``, so ``PAUSE`` (or any 5-byte command) *resumes* and ``RESUME``
*pauses*; the fix (libzmq PR #4600) came after the release.  We implement the
documented meaning.  A tool written against 4.3.5's behaviour therefore gets the
opposite effect here, and the interop tests pin down both behaviours.

As in libzmq 4.3.5, every command gets a reply if the control socket can send: the
8 statistics frames for ``STATISTICS``, one empty frame otherwise (a REQ steering a
REP control needs a reply to carry on).  Replies are sent without waiting; a reply
the control socket cannot take at once is dropped with a warning.  Unknown commands
get the empty reply too, change nothing, and are logged.
"""

from __future__ import annotations

import itertools
import logging
import operator
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import trio

from zmtp import InvalidStateError, Socket, SocketType

__all__ = [
    "BATCH_SIZE",
    "CAPTURE_TYPES",
    "DirectionStatistics",
    "Proxy",
    "ProxyStatistics",
    "Traffic",
    "run",
]

log = logging.getLogger("zmtp.proxy")

#: Messages moved per turn of a direction (libzmq's ``proxy_burst_size``).
BATCH_SIZE = 1000

#: Socket types documented for the capture socket (zmq_proxy(3)).
CAPTURE_TYPES = frozenset({SocketType.PUB, SocketType.DEALER, SocketType.PUSH, SocketType.PAIR})

_PAUSE = b"PAUSE"
_RESUME = b"RESUME"
_TERMINATE = b"TERMINATE"
_STATISTICS = b"STATISTICS"

_first = operator.itemgetter(0)

# libzmq writes each counter as a uint64_t straight from memory: host byte order.
_U64 = struct.Struct("=Q")


@dataclass(frozen=True, slots=True)
class Traffic:
    """Counts of messages, frames and payload bytes."""

    messages: int = 0
    frames: int = 0
    bytes: int = 0


@dataclass(frozen=True, slots=True)
class DirectionStatistics:
    """Traffic in one direction.

    ``received`` counts what the proxy took from the source socket, ``sent`` what the
    destination socket accepted (a ROUTER destination accepts, and silently drops, a
    message for an unknown peer, exactly as libzmq counts it).  They differ only by a
    batch in flight.
    """

    received: Traffic = Traffic()
    sent: Traffic = Traffic()

    @property
    def messages(self) -> int:
        """Messages delivered to the destination."""
        return self.sent.messages

    @property
    def frames(self) -> int:
        """Frames delivered to the destination."""
        return self.sent.frames

    @property
    def bytes(self) -> int:
        """Payload bytes delivered to the destination."""
        return self.sent.bytes


@dataclass(frozen=True, slots=True)
class ProxyStatistics:
    """A snapshot of a proxy's counters."""

    frontend_to_backend: DirectionStatistics = DirectionStatistics()
    backend_to_frontend: DirectionStatistics = DirectionStatistics()
    #: Messages the capture socket could not take at once, and so did not get.
    capture_dropped: int = 0

    def as_libzmq_frames(self) -> list[bytes]:
        """The reply to ``STATISTICS`` in libzmq 4.3.5's layout.

        Eight frames, each a uint64 in host byte order: frames received from the
        frontend, their bytes, frames sent to the frontend, their bytes, then the same
        four for the backend.  libzmq counts *frames*, not messages
        (specs/libzmq-behaviour.md §6.2).
        """
        f2b, b2f = self.frontend_to_backend, self.backend_to_frontend
        values = (
            f2b.received.frames,
            f2b.received.bytes,
            b2f.sent.frames,
            b2f.sent.bytes,
            b2f.received.frames,
            b2f.received.bytes,
            f2b.sent.frames,
            f2b.sent.bytes,
        )
        return [_U64.pack(v) for v in values]

    @classmethod
    def from_libzmq_frames(cls, frames: Sequence[bytes]) -> ProxyStatistics:
        """Read a libzmq-style ``STATISTICS`` reply (from us or from libzmq).

        libzmq's reply carries no message counts, so ``messages`` are 0.

        Raises:
            ValueError: not 8 frames of 8 bytes.
        """
        if len(frames) != 8 or any(len(f) != 8 for f in frames):
            raise ValueError("a STATISTICS reply is 8 frames of 8 bytes")
        fr, frb, fs, fsb, br, brb, bs, bsb = (_U64.unpack(f)[0] for f in frames)
        return cls(
            DirectionStatistics(Traffic(0, fr, frb), Traffic(0, bs, bsb)),
            DirectionStatistics(Traffic(0, br, brb), Traffic(0, fs, fsb)),
        )


class _Counter:
    """Mutable counts behind a :class:`Traffic` snapshot."""

    __slots__ = ("bytes", "frames", "messages")

    def __init__(self) -> None:
        self.messages = 0
        self.frames = 0
        self.bytes = 0

    def add(self, batch: Sequence[Sequence[bytes]]) -> tuple[int, int]:
        """Count a batch; return its (frames, bytes) for reuse."""
        frames, nbytes = _measure(batch)
        self.add_measured(len(batch), frames, nbytes)
        return frames, nbytes

    def add_measured(self, messages: int, frames: int, nbytes: int) -> None:
        self.messages += messages
        self.frames += frames
        self.bytes += nbytes

    def snapshot(self) -> Traffic:
        return Traffic(self.messages, self.frames, self.bytes)


def _measure(batch: Sequence[Sequence[bytes]]) -> tuple[int, int]:
    """Frames and bytes in a batch, counted by C-level iteration (no per-frame bytecode)."""
    frames = sum(map(len, batch))
    if frames == len(batch):  # all single-frame messages
        return frames, sum(map(len, map(_first, batch)))
    return frames, sum(map(len, itertools.chain.from_iterable(batch)))


class _Direction:
    __slots__ = ("dst", "name", "received", "receiving", "scope", "sent", "src")

    def __init__(self, name: str, src: Socket, dst: Socket) -> None:
        self.name = name
        self.src = src
        self.dst = dst
        self.received = _Counter()
        self.sent = _Counter()
        #: The scope the direction's loop runs in (cancelled by a PAUSE that finds
        #: the direction receiving), and whether it is receiving now.
        self.scope: trio.CancelScope | None = None
        self.receiving = False

    def snapshot(self) -> DirectionStatistics:
        return DirectionStatistics(self.received.snapshot(), self.sent.snapshot())


class Proxy:
    """A proxy between two sockets, steerable from the same program.

    ``await Proxy(frontend, backend).run()`` is :func:`run`; keeping the object gives
    live :meth:`statistics` and :meth:`pause`, :meth:`resume` and :meth:`terminate`
    without a control socket.  A proxy runs once.

    Args:
        frontend, backend: any two zmtp sockets, or the same socket twice.
        capture: receives a copy of every message, both directions (PUB, DEALER,
            PUSH or PAIR).
        control: receives commands (see the module documentation).
        batch_size: most messages moved per turn of each direction.

    Raises:
        TypeError: an argument is not a zmtp socket.
        ValueError: a capture socket of another type, a control socket that cannot
            receive, or a bad ``batch_size``.
    """

    def __init__(
        self,
        frontend: Socket,
        backend: Socket,
        *,
        capture: Socket | None = None,
        control: Socket | None = None,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        for name, sock in (("frontend", frontend), ("backend", backend)):
            if not isinstance(sock, Socket):
                raise TypeError(f"{name} must be a zmtp socket, not {type(sock).__name__}")
        if capture is not None:
            if not isinstance(capture, Socket):
                raise TypeError(f"capture must be a zmtp socket, not {type(capture).__name__}")
            if capture.socket_type not in CAPTURE_TYPES:
                raise ValueError(
                    f"capture socket must be PUB, DEALER, PUSH or PAIR, "
                    f"not {capture.socket_type.name}"
                )
        if control is not None:
            if not isinstance(control, Socket):
                raise TypeError(f"control must be a zmtp socket, not {type(control).__name__}")
            # A REQ control would have to speak first; libzmq documents REP, PAIR, SUB.
            if not control.can_recv or control.socket_type is SocketType.REQ:
                raise ValueError(
                    f"a {control.socket_type.name} socket cannot be a control socket "
                    "(use REP, PAIR or SUB)"
                )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, not {batch_size!r}")
        self.frontend = frontend
        self.backend = backend
        self.capture = capture
        self.control = control
        self.batch_size = batch_size
        self._f2b = _Direction("frontend->backend", frontend, backend)
        self._b2f = _Direction("backend->frontend", backend, frontend)
        self._directions: list[_Direction] = []
        if frontend.can_recv and backend.can_send:
            self._directions.append(self._f2b)
        if backend is not frontend and backend.can_recv and frontend.can_send:
            self._directions.append(self._b2f)
        self._capture_dropped = 0
        self._paused = False
        self._resumed = trio.Event()
        self._resumed.set()
        # REQ and REP alternate receive and send; a direction that finds it is not its
        # socket's turn waits here until the other direction has moved something.
        self._turn = trio.lowlevel.ParkingLot()
        self._done = trio.Event()
        self._started = False

    # ------------------------------------------------------------------ steering

    @property
    def paused(self) -> bool:
        """True between :meth:`pause` and :meth:`resume`."""
        return self._paused

    @property
    def directions(self) -> list[str]:
        """The directions this pair of sockets allows, e.g. ``["frontend->backend"]``."""
        return [d.name for d in self._directions]

    def pause(self) -> None:
        """Stop moving messages before the next batch (the documented PAUSE)."""
        if self._paused:
            return
        self._paused = True
        self._resumed = trio.Event()
        # A receive in progress is cancelled; it has taken nothing.
        for direction in self._directions:
            if direction.receiving and direction.scope is not None:
                direction.scope.cancel()

    def resume(self) -> None:
        """Move messages again (the documented RESUME)."""
        self._paused = False
        self._resumed.set()

    def terminate(self) -> None:
        """Make :meth:`run` stop and return the statistics (the TERMINATE command)."""
        self._done.set()

    def statistics(self) -> ProxyStatistics:
        """A snapshot of the counters; callable at any time, also while running."""
        return ProxyStatistics(self._f2b.snapshot(), self._b2f.snapshot(), self._capture_dropped)

    # ------------------------------------------------------------------ running

    async def run(self) -> ProxyStatistics:
        """Move messages until :meth:`terminate` (or TERMINATE); return the statistics.

        Cancelling the caller stops the proxy cleanly: every task of the proxy has
        ended when the cancellation propagates, and the sockets stay usable.  Messages
        taken from a source but not yet accepted by a blocked destination (at most one
        batch per direction) are lost then, as they are on TERMINATE.

        Raises:
            RuntimeError: the proxy already ran.
            trio.ClosedResourceError: one of the sockets was closed meanwhile.
            zmtp.UnroutableError: a ``router_mandatory`` ROUTER could not route.
        """
        if self._started:
            raise RuntimeError("a Proxy runs only once; make a new one")
        self._started = True
        async with trio.open_nursery() as nursery:
            for direction in self._directions:
                nursery.start_soon(self._forward, direction, name=f"proxy {direction.name}")
            if self.control is not None:
                nursery.start_soon(self._control_loop, self.control, name="proxy control")
            await self._done.wait()
            nursery.cancel_scope.cancel()
        return self.statistics()

    async def _forward(self, direction: _Direction) -> None:
        src = direction.src
        batch_size = self.batch_size
        turn = self._turn
        held: list[list[bytes]] | None = None
        while True:
            if held is not None:
                # Received as a PAUSE came: delivered outside the cancelled scope.
                await self._move(direction, held)
                held = None
            while self._paused:
                await self._resumed.wait()
            # One scope for many batches, not one per receive (a scope costs more than
            # the rest of a small batch's bookkeeping).  PAUSE cancels it only while
            # ``receiving``; a receive that returns as the cancel comes keeps its batch.
            with trio.CancelScope() as scope:
                direction.scope = scope
                while not self._paused:
                    direction.receiving = True
                    try:
                        while True:
                            try:
                                batch = await src.recv_many(batch_size)
                                break
                            except InvalidStateError:
                                # REQ/REP: the socket must send first; the other
                                # direction will.
                                await turn.park()
                    finally:
                        direction.receiving = False
                    if scope.cancel_called:
                        held = batch
                        break
                    await self._move(direction, batch)
                    if len(batch) >= batch_size:
                        # A source that never runs dry must not starve the other
                        # direction or the control task: a schedule point per full
                        # batch.  A smaller batch emptied the source, so the next
                        # receive waits (a schedule point) anyway.
                        await trio.lowlevel.checkpoint()
            direction.scope = None

    async def _move(self, direction: _Direction, batch: list[list[bytes]]) -> None:
        """Count a received batch, copy it to the capture socket, deliver it."""
        measured = direction.received.add(batch)
        if self.capture is not None:
            self._capture(self.capture, batch)
        turn = self._turn
        if turn:
            turn.unpark_all()
        await self._send(direction.dst, batch, direction.sent, measured)

    async def _send(
        self,
        dst: Socket,
        batch: list[list[bytes]],
        sent: _Counter,
        measured: tuple[int, int],
    ) -> None:
        # Queueing costs no schedule point; only a full destination makes us wait, and
        # then only this direction waits.  Counting in ``finally`` keeps the statistics
        # exact if we are cancelled while waiting.
        done = 0
        turn = self._turn
        try:
            while done < len(batch):
                try:
                    # The batch came from recv_many and belongs to us: it is queued in
                    # bulk, with no defensive copy.
                    n = dst.send_batch_nowait(batch, done)
                    if not n:
                        await dst.send_multipart(batch[done])  # waits for room
                        n = 1
                except InvalidStateError:
                    # REQ/REP out of turn: wait for the other direction to receive.
                    await turn.park()
                    continue
                done += n
                if turn:
                    turn.unpark_all()
        finally:
            if done == len(batch):
                sent.add_measured(done, *measured)
            else:
                sent.add(batch[:done])

    def _capture(self, capture: Socket, batch: list[list[bytes]]) -> None:
        for msg in batch:
            try:
                capture.send_multipart_nowait(msg)
            except trio.WouldBlock:
                # Documented choice: a slow capture loses copies, never stalls traffic.
                self._capture_dropped += 1

    # ------------------------------------------------------------------ control

    async def _control_loop(self, control: Socket) -> None:
        reply_ok = control.can_send
        while True:
            msg = await control.recv_multipart()
            *envelope, command = msg
            reply = self._command(command)
            if reply_ok:
                try:
                    control.send_multipart_nowait([*envelope, *reply])
                except trio.WouldBlock:
                    log.warning("proxy: control socket cannot take the reply to %r", command)
            if command == _TERMINATE:
                self.terminate()
                return

    def _command(self, command: bytes) -> list[bytes]:
        """Carry out one control command; return the reply frames."""
        if command == _STATISTICS:
            return self.statistics().as_libzmq_frames()
        if command == _PAUSE:
            self.pause()
        elif command == _RESUME:
            self.resume()
        elif command != _TERMINATE:
            log.warning("proxy: unknown control command %r ignored", command[:64])
        return [b""]


async def run(
    frontend: Socket,
    backend: Socket,
    *,
    capture: Socket | None = None,
    control: Socket | None = None,
) -> ProxyStatistics:
    """Move messages between ``frontend`` and ``backend`` like ``zmq_proxy_steerable``.

    Any two zmtp sockets work (or one socket given twice): the classic pairs are
    ROUTER↔DEALER (shared queue), XSUB↔XPUB (forwarder, subscriptions flow upstream)
    and PULL↔PUSH (streamer).  Messages move whole and in order, in each direction the
    socket types allow.  See the :mod:`proxy._proxy` documentation for capture,
    backpressure and the control commands; use :class:`Proxy` for in-process steering
    and live statistics.

    Returns:
        The final statistics, when a TERMINATE command arrives on ``control``.
        Cancellation ends the proxy cleanly and propagates as usual.
    """
    return await Proxy(frontend, backend, capture=capture, control=control).run()
