"""The engine: one ZMTP connection over a trio stream, on behalf of a socket.

Theory of operation
-------------------
An :class:`Engine` wraps a sans-IO :class:`zmtp.Connection` around a ``trio.abc.Stream``,
the way ``trio.SSLStream`` wraps ``ssl.MemoryBIO``.  It runs in three steps:

1. **Handshake**, bounded by ``handshake_ivl``: send our greeting at once, then feed
   received bytes to the machine and flush what it produces, until the handshake is
   complete.  Then the socket attaches the peer (``Socket._engine_ready``), which gives
   the engine a :class:`~zmtp.sockets._pipe.Pipe` in each direction.

2. **Traffic**: two loops (plus a heartbeat watchdog when enabled) in one nursery.

   * The *reader* receives up to ``RECV_SIZE`` bytes, lets the machine decode every
     complete frame in them, and hands all finished messages to the socket in one call
     (``put_many``).  If the socket's inbound pipe is at its high-water mark, it stops
     reading, so backpressure reaches the peer through TCP.  A large frame body (128 KiB
     or more still to come) is read in place, by ``readv`` straight into the ``bytes``
     the application will get (see "Direct system calls" and ``_receive_body``).
   * When the socket has only this connection and its application blocks in a receive,
     the application's task borrows the descriptor and does the reader's work itself
     (``lend``): one task switch less per message (see "Lending").
   * The *writer* sleeps until the outbound pipe has messages, takes all of them at once,
     encodes them into as few chunks as possible and writes them with one ``send_all``
     per chunk.  There is no await per message on either path.

3. **Teardown**: on EOF, a protocol error, a transport error or cancellation, the stream
   is closed and the socket detaches the peer.  ``run()`` returns the protocol error (if
   any), which tells a connecting socket whether reconnecting is worthwhile.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket as _socket
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import trio

from .._native import allocator
from ..protocol._buffers import BytesLike as Buffer
from ..protocol.connection import Connection, Phase
from ..protocol.errors import PeerError, ProtocolError, RemoteProtocolError
from ..protocol.events import (
    Cancel,
    ConnectionClosed,
    ErrorReceived,
    Event,
    HandshakeComplete,
    Messages,
    Ping,
    Subscribe,
)
from ._monitor import EventType
from ._pipe import Pipe

if TYPE_CHECKING:
    from ._socket import Peer, Socket

__all__ = ["Engine", "HandshakeTimeout", "HeartbeatTimeout"]

log = logging.getLogger("zmtp")

#: Bytes asked of the transport per receive: enough for thousands of small frames, and
#: small enough to stay below malloc's mmap threshold (each receive allocates it).
RECV_SIZE = 64 * 1024
#: While a large frame body is arriving, reads grow up to this size, so a 1 MiB frame
#: takes a few receives rather than sixteen.
MAX_RECV_SIZE = 4 * 1024 * 1024
#: Reads grow up to this size while they keep coming back full (a busy stream of
#: small messages): larger reads would only cost fresh pages for every buffer.
MAX_STREAM_READ = 256 * 1024
#: Bytes read past the end of a large body in the same system call: a frame header and
#: a small routing envelope, so the next large body can be read in place in turn.
_SCRATCH = 256
#: How long the reader leaves the descriptor alone after the application's task
#: borrowed it (seconds): input that arrives while the application is busy elsewhere
#: is read at most this late, and a request/reply loop does not wake the reader at all.
_LEND_HOLD = 0.01
#: Longest the reader parks at a time while a receive stays lent (seconds).
_LEND_BACKOFF_MAX = 1.0
#: SO_SNDBUF of ipc connections (the kernel doubles it, and caps it at wmem_max).
IPC_SNDBUF = 1024 * 1024
#: A body missing this much is read in place; less, and reading it with what follows
#: (several messages per system call, sliced out with one copy each) costs less.
_IN_PLACE = 128 * 1024
#: Bytes of a large body that must be waiting before the reader is woken (TCP only).
_LOWAT = 512 * 1024
#: Most buffers one writev() may carry (POSIX IOV_MAX is at least 16; Linux has 1024).
_IOV_MAX = 512
#: System calls an engine direction makes without waiting before it checkpoints anyway.
_BUDGET = 16

_STREAM_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


class _ReaderDone(Exception):
    """Raised in the reader when the application's task met the end of the input."""


class HandshakeTimeout(RemoteProtocolError):
    """The peer did not complete the handshake within ``handshake_ivl``."""

    fatal = False


class HeartbeatTimeout(RemoteProtocolError):
    """The peer went silent after a PING (``heartbeat_timeout`` or its own TTL)."""

    fatal = False


class Engine:
    """Runs one connection; see the module docstring."""

    def __init__(
        self,
        socket: Socket,
        stream: trio.abc.Stream,
        endpoint: str,
        peer_address: str,
        peer: Peer | None = None,
    ) -> None:
        self.socket = socket
        self.stream = stream
        self.endpoint = endpoint
        self.peer_address = peer_address
        #: A peer created at connect() time, reused across reconnects; else None.
        self.peer = peer
        opts = socket._options
        self.conn = Connection(
            socket.socket_type,
            routing_id=opts["routing_id"],
            metadata=opts["metadata"],
            max_message_size=opts["maxmsgsize"],
        )
        self._writer_lot = trio.lowlevel.ParkingLot()
        self._inbound_lot = trio.lowlevel.ParkingLot()
        self.writer_idle = True
        self.handshake: HandshakeComplete | None = None
        self.error: ProtocolError | None = None
        # A protocol error in the read that completed the handshake, raised only after
        # the handshake and the messages before the error are handled.
        self._late_error: ProtocolError | None = None
        # Heartbeat/TTL watchdog: unless something arrives first, the connection is
        # dropped at ``_deadline`` (inf: disarmed).  See "heartbeats" below.
        self._deadline = math.inf
        self._paused = False  # reading stopped by backpressure
        self._watch_lot = trio.lowlevel.ParkingLot()
        self._transport_error: BaseException | None = None
        self._stop_scope = trio.CancelScope()
        # A file descriptor for eager flushes, when the transport is a plain socket.
        sock_obj = getattr(stream, "socket", None)
        self._fd: int = sock_obj.fileno() if sock_obj is not None else -1
        self._budget = _BUDGET
        self._drained = False
        self._scratch = bytearray(_SCRATCH)
        self._read_size = RECV_SIZE  # bytes asked of each read (_adapt_read_size)
        # Lending the descriptor to the application's task (see lend()).
        self._lent = False
        self._held = -math.inf  # the reader stays away until then (see _wait_readable)
        self._reader_until = -math.inf  # when the parked reader will look again
        self._lend_lot = trio.lowlevel.ParkingLot()
        self._reader_waiting = False  # the reader is in wait_readable
        self._app_failure: BaseException | None = None
        self._reading = False  # the read loop is running
        # SO_RCVLOWAT in force: 1 (the default), more while a body is read in place
        # (_wait_body), 0 where it does not apply (ipc: Unix sockets ignore it in poll).
        self._lowat = 1 if sock_obj is not None and sock_obj.family != _socket.AF_UNIX else 0
        if self._lowat == 0 and sock_obj is not None:
            # Over a Unix socket, what a sender may have in flight is bounded by its own
            # send buffer (208 KiB by default), so a receiver is woken, and a sender
            # blocks, for every 208 KiB.  A larger buffer lets a 1 MiB message go in
            # one write and be read in one or two.
            with contextlib.suppress(OSError):
                sock_obj.setsockopt(_socket.SOL_SOCKET, _socket.SO_SNDBUF, IPC_SNDBUF)

    # ------------------------------------------------------------- pipe callbacks

    def pipe_readable(self, pipe: Pipe) -> None:
        """The socket queued outbound messages: wake the writer, and note that an
        eager flush (:meth:`flush_now`) may save the writer a scheduling round.

        REQ and REP send one message per round trip, so batching can gain nothing:
        theirs go to the kernel at once, and the writer is woken only for a remainder.
        """
        if self._writer_lot:
            if self.socket._eager_send and self.flush_now():
                return
            self._writer_lot.unpark_all()
            self.socket._dirty.append(self)

    def flush_now(self) -> bool:
        """Write queued messages synchronously if the writer is idle.

        The socket calls this just before its task blocks in a receive: a request is
        then on the wire before the scheduler runs again, instead of one round later
        when the writer task gets its turn.  That round is most of a request/reply
        round trip's overhead.  Whatever the kernel does not take at once is left to
        the writer task; order is kept because nothing can be in flight while the
        writer is idle.

        Returns:
            True if everything queued is now with the kernel.
        """
        if not self.writer_idle or self._fd < 0:
            return False
        out = self.peer.out if self.peer is not None else None
        conn = self.conn
        if out is not None and out.queue:
            conn.send_messages(out.take_all())
        if not conn.has_data_to_send:
            return True
        chunks = conn.data_to_send()
        try:
            if len(chunks) == 1:
                sent = os.write(self._fd, chunks[0])
            else:  # large payloads are separate chunks: gather them, do not join
                sent = os.writev(self._fd, chunks[:_IOV_MAX])
        except OSError:  # would block, or broken: the writer task will find out
            sent = 0
        for i, chunk in enumerate(chunks):
            n = len(chunk)
            if sent >= n:
                sent -= n
                continue
            # The kernel took less: the rest goes back, in order, for the writer task.
            out_buf = conn._out
            out_buf.write_large(memoryview(chunk)[sent:] if sent else chunk)
            for rest in chunks[i + 1 :]:
                out_buf.write_large(rest)
            self.wake_writer()
            return False
        return True

    def pipe_writable(self, pipe: Pipe) -> None:
        """The socket drained our inbound pipe below its low-water mark."""
        if self._inbound_lot:
            self._inbound_lot.unpark_all()

    def wake_writer(self) -> None:
        """Something (a PING, a subscription) was queued on the machine directly."""
        if self._writer_lot:
            self._writer_lot.unpark_all()

    def stop(self) -> None:
        """End the connection from outside (ROUTER handover, socket shutdown)."""
        self._stop_scope.cancel()

    # ------------------------------------------------------------- main

    async def run(self) -> ProtocolError | None:
        """Run the connection to its end; return the protocol error that ended it, if any."""
        with self._stop_scope:
            return await self._run()
        return None

    async def _run(self) -> ProtocolError | None:
        sock = self.socket
        reason = "closed by peer"
        attached = False
        try:
            try:
                events = await self._handshake()
            except ProtocolError as exc:
                self.error = exc
                reason = str(exc)
                sock._emit(
                    EventType.HANDSHAKE_FAILED,
                    self.endpoint,
                    self.peer_address,
                    reason,
                    error=type(exc).__name__,
                )
                log.warning(
                    "%s %s: handshake with %s failed: %s",
                    sock,
                    self.endpoint,
                    self.peer_address,
                    exc,
                )
                await self._flush_quietly()
                return exc
            if events is None:
                reason = "closed during handshake"
                return None
            assert self.handshake is not None
            self.peer = sock._engine_ready(self, self.handshake)
            attached = True
            sock._emit(
                EventType.HANDSHAKE_SUCCEEDED,
                self.endpoint,
                self.peer_address,
                identity=self.handshake.identity,
                socket_type=self.handshake.socket_type.name if self.handshake.socket_type else None,
                version=self.handshake.version,
            )
            self._setup_heartbeat()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._guarded, self._write_loop, nursery)
                nursery.start_soon(self._guarded, self._watchdog_loop, nursery)
                if sock._options["heartbeat_ivl"]:
                    nursery.start_soon(self._guarded, self._heartbeat_loop, nursery)
                if self._dispatch(events):
                    if self._late_error is not None:
                        self.error = self._late_error
                    else:
                        await self._guarded(self._read_loop, nursery)
                nursery.cancel_scope.cancel()
            error = self.error
            if error is not None:
                reason = str(error)
                if not isinstance(error, PeerError):
                    level = logging.INFO if not error.fatal else logging.WARNING
                    log.log(
                        level, "%s %s: dropping %s: %s", sock, self.endpoint, self.peer_address,
                        error,
                    )
                    await self._flush_quietly()
            elif self._transport_error is not None:
                reason = f"transport error: {self._transport_error}"
            return self.error
        except _STREAM_ERRORS as exc:
            reason = f"transport error: {exc}"
            return None
        finally:
            if attached:
                sock._engine_closed(self)
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(self.stream)
            sock._emit(EventType.DISCONNECTED, self.endpoint, self.peer_address, reason)

    async def _guarded(self, fn: Callable[[], Awaitable[None]], nursery: trio.Nursery) -> None:
        """Run one traffic loop; record why it ended and stop the others.

        Errors are recorded rather than raised so that they do not arrive wrapped in an
        ExceptionGroup from the nursery.
        """
        try:
            await fn()
        except ProtocolError as exc:
            if self.error is None:
                self.error = exc
        except _STREAM_ERRORS as exc:
            if self._transport_error is None:
                self._transport_error = exc
        nursery.cancel_scope.cancel()

    async def _flush_quietly(self) -> None:
        """Send what the machine queued (an ERROR command), ignoring transport errors."""
        with trio.move_on_after(1):
            try:
                for chunk in self.conn.data_to_send():
                    await self.stream.send_all(chunk)
            except _STREAM_ERRORS:
                pass

    async def _handshake(self) -> list[object] | None:
        """Run greeting and handshake; return the events that arrived with its end.

        Returns None if the peer closed first.  Raises ProtocolError on failure or timeout.
        """
        conn, stream = self.conn, self.stream
        ivl = self.socket._options["handshake_ivl"]
        events: list[object] = []
        with trio.move_on_after(ivl / 1000 if ivl > 0 else math.inf) as scope:
            for chunk in conn.data_to_send():
                await stream.send_all(chunk)
            while conn.phase is not Phase.TRAFFIC:
                data = await stream.receive_some(RECV_SIZE)
                try:
                    new = conn.receive_data(data)
                except ProtocolError as exc:
                    if not any(isinstance(ev, HandshakeComplete) for ev in exc.events):
                        raise
                    # The handshake completed and traffic followed in the same read,
                    # then a bad frame: the handshake succeeded; deliver what preceded
                    # the violation, then drop the connection (see _run).
                    self._late_error = exc
                    new = exc.events
                for chunk in conn.data_to_send():
                    await stream.send_all(chunk)
                for ev in new:
                    if isinstance(ev, ConnectionClosed) and self.handshake is None:
                        return None
                    if isinstance(ev, ErrorReceived):
                        assert conn.error is not None
                        raise conn.error
                    if isinstance(ev, HandshakeComplete):
                        self.handshake = ev
                    elif self.handshake is not None:
                        events.append(ev)
                if conn.phase is Phase.CLOSED:
                    # Handshake done, then an error or EOF in the same read: the
                    # events before it go to the socket first (see _run).
                    break
        if scope.cancelled_caught:
            raise HandshakeTimeout(
                f"handshake not complete after {ivl} ms (handshake_ivl)",
                reason=b"Handshake timeout",
            )
        return events

    def _dispatch(self, events: Sequence[object]) -> bool:
        """Hand decoded events to the socket; return False if the connection ended."""
        sock = self.socket
        peer = self.peer
        for ev in events:
            if type(ev) is Messages:
                if peer is not None:
                    sock._peer_messages(peer, ev.messages)
            elif isinstance(ev, Ping):
                # The PONG is already queued; a TTL asks us to drop the peer if it then
                # goes silent for that long (RFC 37 §"Heartbeating").
                if ev.ttl:
                    self._arm(ev.ttl / 10)
                self.wake_writer()
            elif isinstance(ev, Subscribe):
                if peer is not None:
                    sock._peer_subscribe(peer, ev.topic)
            elif isinstance(ev, Cancel):
                if peer is not None:
                    sock._peer_cancel(peer, ev.topic)
            elif isinstance(ev, ErrorReceived):
                self.error = self.conn.error
                log.warning(
                    "%s %s: peer %s sent ERROR %r",
                    sock,
                    self.endpoint,
                    self.peer_address,
                    ev.reason,
                )
                return False
            elif isinstance(ev, ConnectionClosed):
                if not ev.clean:
                    # The decoder discards the incomplete message: multipart messages
                    # are atomic, so nothing of it reaches the socket.
                    log.info(
                        "%s %s: %s closed the connection in the middle of a message; "
                        "the incomplete message is dropped",
                        sock,
                        self.endpoint,
                        self.peer_address,
                    )
                return False
        return True

    async def _read_loop(self) -> None:
        self._reading = True
        try:
            await self._read_traffic()
        except _ReaderDone:
            pass
        finally:
            self._reading = False

    async def _read_traffic(self) -> None:
        conn = self.conn
        direct = self._fd >= 0
        receive = self._receive_fd if direct else self.stream.receive_some
        peer = self.peer
        inp = peer.inp if peer is not None else None
        while True:
            try:
                missing = conn.body_remaining if direct else 0
                if missing >= _IN_PLACE and conn.body_buffer() is not None:
                    # A large body is arriving: the kernel copies it straight into
                    # the bytes the application will get.
                    events = await self._receive_body(missing)
                else:
                    size = self._read_size
                    big = conn.body_remaining
                    want = min(big, MAX_RECV_SIZE) if big > size else size
                    data = await receive(want)
                    self._adapt_read_size(want, len(data))
                    events = conn.receive_data(data)
            except ProtocolError as exc:
                # Messages that were complete before the bad bytes are delivered.
                self._dispatch(exc.events)
                raise
            if self._deadline != math.inf:
                self._deadline = math.inf  # a sign of life disarms the watchdog
            if events and not self._dispatch(events):
                return
            if conn.has_data_to_send:
                self.wake_writer()
            if inp is not None and inp.full:
                # Backpressure: stop reading until the socket drains this pipe.
                # Meanwhile the peer's answers go unread, so silence proves nothing: no
                # heartbeat deadline while paused (libzmq would drop the connection).
                inp.writer_waiting = True
                self._paused = True
                self._deadline = math.inf
                while inp.writer_waiting and inp.full:
                    await self._inbound_lot.park()
                self._paused = False

    def _adapt_read_size(self, want: int, n: int) -> None:
        """Adapt the read size to the traffic: a full read means more is waiting (a
        busy stream), so read more next time; a small one means we are keeping up, so
        go back to the default."""
        size = self._read_size
        if n == want and size < MAX_STREAM_READ:
            self._read_size = size * 2
        elif n < size // 4 and size > RECV_SIZE:
            self._read_size = RECV_SIZE

    async def _write_loop(self) -> None:
        conn = self.conn
        peer = self.peer
        out = peer.out if peer is not None else None
        sock = self.socket
        while True:
            if out is not None and out.queue:
                conn.send_messages(out.take_all())
            if conn.has_data_to_send:
                self.writer_idle = False
                await self._send_chunks(conn.data_to_send())
                continue
            self.writer_idle = True
            if sock._drain_lot:
                sock._drain_lot.unpark_all()
            await self._writer_lot.park()

    # Direct system calls on the socket's descriptor.  trio's SocketStream adds a
    # scheduler round to every successful send and receive (its "yield sandwich");
    # on this path those rounds are most of a round trip's cost, so the engine calls
    # os.read/os.writev itself, waits with wait_readable/wait_writable only when the
    # kernel says it would block, and checkpoints every _BUDGET calls otherwise so a
    # busy connection cannot starve other tasks.

    async def _spend_budget(self) -> None:
        """Count a system call made without waiting; checkpoint every ``_BUDGET``."""
        self._budget -= 1
        if self._budget <= 0:
            self._budget = _BUDGET
            await trio.lowlevel.checkpoint()

    async def _receive_fd(self, size: int) -> bytes:
        fd = self._fd
        if self._lowat > 1:
            self._set_lowat(1)  # a body was read in place; back to waking for any byte
        if self._drained:
            # The last read left the kernel buffer empty: trying again now would only
            # fail with EAGAIN, so wait first (epoll is level-triggered; nothing that
            # arrived in between is missed).
            await self._wait_readable()
        else:
            await self._spend_budget()
        while True:
            if self._app_failure is not None:
                self._check_app_failure()
            try:
                data = os.read(fd, size)
            except BlockingIOError:
                await self._wait_readable()
                continue
            self._drained = len(data) < size
            return data

    # Lending.  The descriptor is lent to the application's task: when a socket's only
    # connection is idle and the application blocks in a receive, the application's
    # task waits on the descriptor itself and decodes what arrives (lend()), instead
    # of this engine's reader waking first and then waking the application: one task
    # switch less per message, a fifth of a request/reply hop.  Meanwhile the reader
    # parks; it takes over again _LEND_HOLD after the receive returns (at once if that
    # receive left it something to do), so heartbeats, disconnects and high-water
    # marks are handled as always while the application does something else, and a
    # request/reply loop never wakes it.  Errors the application's task meets are
    # handed to the reader to raise, so a connection still ends in one place
    # (_guarded).

    async def _wait_readable(self) -> None:
        """The reader's wait for input: on the descriptor, unless it is lent out."""
        while True:
            backoff = _LEND_HOLD
            while self._lent or (self._app_failure is None and trio.current_time() < self._held):
                # Lent, or lent a moment ago: the application is likely to come back
                # for more before anything else needs reading, so stay out of its way
                # for _LEND_HOLD rather than wake for every message.  While it stays
                # lent (an application blocked in a receive for long), wait longer each
                # time, so an idle socket costs no CPU; lend() wakes us early if we
                # would otherwise resume more than 2 * _LEND_HOLD after it ends.
                until = max(self._held, trio.current_time() + backoff)
                self._reader_until = until
                with trio.move_on_at(until) as scope:
                    await self._lend_lot.park()
                if scope.cancelled_caught:  # timed out: still lent, or the hold ran out
                    backoff = min(backoff * 2, _LEND_BACKOFF_MAX)
                else:  # woken by lend()
                    backoff = _LEND_HOLD
            self._reader_until = -math.inf
            self._check_app_failure()
            self._reader_waiting = True
            try:
                await trio.lowlevel.wait_readable(self._fd)
            except trio.ClosedResourceError:
                if not self._interrupted():
                    raise
                continue  # lend() took the descriptor
            finally:
                self._reader_waiting = False
            return

    def _interrupted(self) -> bool:
        """After a ClosedResourceError from a wait on our descriptor: True if that was
        only an interruption (see interrupt()), the connection being still open."""
        sock = getattr(self.stream, "socket", None)
        return sock is not None and sock.fileno() == self._fd

    def interrupt(self) -> None:
        """Wake the task waiting on our input (the application's, in lend()).

        Waiting on a descriptor can only be interrupted by a cancel scope, which costs
        more than a whole request/reply hop's worth of bookkeeping per receive, or by
        ``notify_closing``.  We use the latter on a descriptor that stays open: every
        wait on it here (reader, writer, lend) takes the ClosedResourceError for a
        wake-up while the connection is in fact still open (_interrupted()).
        """
        if self._interrupted():
            trio.lowlevel.notify_closing(self._fd)

    def _check_app_failure(self) -> None:
        """Raise, in the reader, what ended the input while the application read it.

        Called before every read: the application's task may have read (and
        decoded) the end of the connection while this task waited for its turn.
        """
        failure = self._app_failure
        if failure is not None:
            self._app_failure = None
            raise failure

    def can_lend(self) -> bool:
        """True if the application's task may wait on this connection's input now."""
        return (
            not self._lent
            and self._fd >= 0
            and self._app_failure is None
            and not self._paused
            and self._reading
            and not self.conn.body_remaining
        )

    async def lend(self) -> None:
        """Wait for input on the application's task and feed it to the socket.

        Returns once something arrived and was handed to the socket, or the socket
        interrupted the wait (interrupt(): input arrived some other way, or it is
        closing).  The caller checks its queues again either way.
        """
        self._lent = True
        if self._reader_waiting:
            self.interrupt()  # the reader leaves the descriptor to us
        try:
            await trio.lowlevel.wait_readable(self._fd)
        except (trio.ClosedResourceError, trio.BusyResourceError, OSError):
            pass  # interrupted, or the connection is going away: look again
        else:
            self.socket._lender = None  # what we dispatch need not interrupt us
            self._read_for_app()
        finally:
            self._lent = False
            if self._app_failure is not None or self.conn.body_remaining:
                # The reader has something to raise, or a large body to read in place.
                self._lend_lot.unpark_all()
            else:
                held = self._held = trio.current_time() + _LEND_HOLD
                if self._reader_until > held + _LEND_HOLD:
                    self._lend_lot.unpark_all()  # backed off far: come back sooner

    def _read_for_app(self) -> None:
        """One read and its dispatch, as the reader would do it (see lend())."""
        size = self._read_size
        try:
            data = os.read(self._fd, size)
        except BlockingIOError:
            return
        except OSError as exc:  # reset, say: the reader ends the connection with it
            self._app_failure = exc
            return
        n = len(data)
        self._drained = n < size
        if n == size or size > RECV_SIZE:
            self._adapt_read_size(size, n)
        if self._deadline != math.inf:
            self._deadline = math.inf
        conn = self.conn
        try:
            events = conn.receive_data(data)
        except ProtocolError as exc:
            self._dispatch(exc.events)
            exc.events = []
            self._app_failure = exc
            return
        if events and not self._dispatch(events):
            self._app_failure = _ReaderDone()
            return
        if conn.has_data_to_send:
            self.wake_writer()

    async def _wait_body(self, missing: int) -> None:
        """Wait until a useful part of the ``missing`` bytes of a body can be read.

        Over TCP the kernel wakes a reader for every segment that arrives, so a 1 MiB
        body would cost a dozen wake-ups of this task, each a full scheduler round.
        ``SO_RCVLOWAT`` asks it to wake us only once ``_LOWAT`` bytes (or all that is
        missing, or EOF) are there.  It never asks for more than the body still
        needs, so it cannot wait for bytes the peer has no reason to send.
        """
        # Not while a heartbeat deadline is armed: any byte must count as a sign of
        # life then, or a slow peer could be dropped in the middle of a large body.
        lowat = min(missing, _LOWAT) if self._lowat and self._deadline == math.inf else 1
        if lowat != self._lowat and self._lowat:
            self._set_lowat(lowat)
        await self._wait_readable()

    def _set_lowat(self, lowat: int) -> None:
        try:
            self.stream.socket.setsockopt(  # type: ignore[attr-defined]
                _socket.SOL_SOCKET, _socket.SO_RCVLOWAT, max(lowat, 1)
            )
            self._lowat = lowat
        except OSError:  # not supported here: wake for every segment, as before
            self._lowat = 0

    async def _receive_body(self, missing: int) -> list[Event]:
        """Read the rest of a large body in place; return the events that completes.

        The same ``readv`` also asks for a few bytes more, into a small scratch buffer:
        enough for the next frame's header (and a routing envelope), so a stream of
        large messages costs one system call per message.
        """
        fd = self._fd
        scratch = self._scratch
        conn = self.conn
        if allocator._tuned is None and self.socket._ctx.tune_allocator:
            allocator.tune_for_large_messages()
        if self._drained:
            await self._wait_body(missing)
        else:
            await self._spend_budget()
        while True:
            # Ask for the view only now: while this task waited, the application's
            # task may have read part of the body itself (Engine.lend).
            if self._app_failure is not None:
                self._check_app_failure()
            view = conn.body_buffer()
            if view is None:
                return []  # completed meanwhile; the loop looks again
            try:
                n = os.readv(fd, [view, scratch])
            except BlockingIOError:
                await self._wait_body(len(view))
                continue
            break
        want = len(view)
        self._drained = n < want + len(scratch)
        # Large reads spend more of the budget (a unit per 64 KiB): after about 1 MiB
        # the reader lets the application take what arrived.  Otherwise it can read
        # many bodies ahead, and the burst of memory freed afterwards is returned to
        # the system (malloc trims the heap) only to be faulted back in page by page.
        self._budget -= n >> 16
        if n <= want:
            return conn.receive_data(b"") if n == 0 else conn.body_received(n)
        events = conn.body_received(want)
        try:
            events += conn.receive_data(bytes(memoryview(scratch)[: n - want]))
        except ProtocolError as exc:
            exc.events[:0] = events
            raise
        return events

    async def _wait_writable(self) -> None:
        try:
            await trio.lowlevel.wait_writable(self._fd)
        except trio.ClosedResourceError:
            if not self._interrupted():  # else a wake-up meant for the reader
                raise

    async def _send_chunks(self, chunks: list[Buffer]) -> None:
        """Write chunks in order, gathering them into as few system calls as possible.

        Large payloads arrive as separate chunks (never copied into the output buffer);
        ``writev`` hands them to the kernel together with their headers in one call.
        """
        fd = self._fd
        if fd < 0:
            for chunk in chunks:
                await self.stream.send_all(chunk)
            return
        await self._spend_budget()
        if len(chunks) == 1:
            data = memoryview(chunks[0])
            while data:
                try:
                    sent = os.write(fd, data)
                except BlockingIOError:
                    await self._wait_writable()
                    continue
                data = data[sent:]
            return
        views = [memoryview(c) for c in chunks]
        while views:
            try:
                sent = os.writev(fd, views[:_IOV_MAX])
            except BlockingIOError:
                await self._wait_writable()
                continue
            while sent:
                first = views[0]
                if sent >= len(first):
                    sent -= len(first)
                    del views[0]
                else:
                    views[0] = first[sent:]
                    sent = 0

    # ------------------------------------------------------------- heartbeats

    # libzmq 4.3.5 (specs/libzmq-behaviour.md §3.2) has two timers, both disarmed by every inbound
    # frame: the heartbeat timeout, armed by each PING we send unless already armed,
    # and the peer's TTL, armed by each PING received with a TTL.  Either expiring
    # drops the connection.  Since the same thing disarms both, one deadline (the
    # earlier of the two) stands for them: the read loop resets it to inf whenever
    # bytes arrive, _arm() brings it forward.  Explicit disarming, rather than
    # comparing timestamps of the last read and the last arming, stays right when
    # both happen at the same clock reading (coarse clocks, trio's MockClock).

    def _setup_heartbeat(self) -> None:
        self._deadline = math.inf

    def _arm(self, timeout: float) -> None:
        """Drop the connection unless something arrives within ``timeout`` seconds
        (unless an earlier deadline is already armed: RFC 37 §Heartbeating)."""
        if self._paused:
            return
        deadline = trio.current_time() + timeout
        if deadline < self._deadline:
            self._deadline = deadline
            self._watch_lot.unpark_all()
            if self._lowat > 1:
                # Waiting for a large body's next 512 KiB: from now on any byte is a
                # sign of life, so wake for any byte (the kernel re-checks a waiting
                # reader against the new mark).
                self._set_lowat(1)

    async def _heartbeat_loop(self) -> None:
        opts = self.socket._options
        ivl = opts["heartbeat_ivl"] / 1000
        if not ivl:
            return
        timeout = opts["heartbeat_timeout"]
        timeout = ivl if timeout < 0 else timeout / 1000
        ttl = min(opts["heartbeat_ttl"] // 100, 0xFFFF)
        while True:
            await trio.sleep(ivl)
            self.conn.send_ping(ttl)
            self.wake_writer()
            if timeout > 0:
                self._arm(timeout)

    async def _watchdog_loop(self) -> None:
        while True:
            deadline = self._deadline
            if trio.current_time() >= deadline:
                break
            # Woken early by _arm() when the deadline moves forward; when it was
            # disarmed meanwhile, this wakes at the old deadline and waits again.
            with trio.move_on_at(deadline):
                await self._watch_lot.park()
        raise HeartbeatTimeout(
            "no traffic from the peer within the heartbeat timeout", reason=b"Heartbeat timeout"
        )
