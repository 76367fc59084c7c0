"""The reading half of an engine: bytes in, events out, backpressure.

The reader receives up to ``read_size`` bytes, lets the machine decode every complete
frame in them, and hands all finished messages to the engine's owner in one call.  If
the owner's inbound pipe is at its high-water mark it stops reading, so backpressure
reaches the peer through TCP.

A large frame body (``IN_PLACE`` or more still to come) is read in place, by ``readv``
straight into the ``bytes`` the application will get, with a small scratch buffer in
the same call for the next header; over TCP, ``SO_RCVLOWAT`` makes the kernel wake us
once per ``LOWAT`` bytes of it rather than per segment.

The rest of a shorter large body (a stream of 64 KiB messages, say) is read in place
too, but together with up to ``STREAM_BUFFER`` bytes more, into a buffer that is reused:
each read then still carries several messages, and the decoder copies each body out
of it.  Reading such a stream with ``os.read`` cost a fresh ``bytes`` object of up to
``MAX_STREAM_READ`` per read: above glibc's mmap threshold, so new memory every time,
which the kernel zero-fills, one page fault per 4 KiB, before copying into it (4 to 11
faults and 5 to 20 µs of a 64 KiB message's 20 to 40 over ipc).  Such a stream is read
``READ_AHEAD`` bytes ahead of the application at most, so that the bodies alive at once,
and so glibc's heap, stay the same size from one burst to the next (_hold_back).

A sealed (CURVE) connection is read the same way: its boxes are opened where they lie,
in the body read in place or in the stream buffer, and each part is copied out as it
is opened.  (Read with ``os.read`` instead, a stream of 64 KiB sealed messages cost
about 12 faults and 20 µs per message: 85-95 µs each, against 60-65 µs so.)
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Sequence

import trio

from ..protocol.connection import Connection
from ..protocol.errors import ProtocolError
from ..protocol.events import Event, Messages
from ._fdio import Descriptor
from ._heartbeat import Heartbeat
from ._lending import Lending, ReaderDone
from ._pipe import Message, Pipe
from ._wakeup import Wakeup

__all__ = [
    "IN_PLACE",
    "LOWAT",
    "MAX_RECV_SIZE",
    "MAX_STREAM_READ",
    "RECV_SIZE",
    "STREAM_BUFFER",
    "Reader",
    "stream_buffer",
]

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
SCRATCH = 256
#: A body missing this much is read in place; less, and reading it with what follows
#: (several messages per system call, sliced out with one copy each) costs less.
IN_PLACE = 128 * 1024
#: Bytes of a large body that must be waiting before the reader is woken (TCP only).
LOWAT = 512 * 1024
#: Bytes read past the end of a shorter large body in the same system call, into a
#: buffer shared by the connections of a thread (stream_buffer).
STREAM_BUFFER = MAX_STREAM_READ
#: Reads that go to the stream buffer after a large body, even between frames: in a
#: stream of large messages, a read that ends exactly between two of them (the reader
#: caught up with the sender) is followed by more of the same.
AFTER_LARGE = 8
#: Bytes of such a stream the reader reads ahead of the application: then it waits
#: until the application has taken some of what it read (READ_AHEAD_WAIT at most).
READ_AHEAD = 512 * 1024
#: Longest that wait (seconds): the reader must still see the peer's heartbeats and
#: its end while the application does something else.
READ_AHEAD_WAIT = 0.01

_per_thread = threading.local()


def stream_buffer() -> bytearray:
    """This thread's buffer for the bytes that follow a shorter large body.

    One per thread, not per connection, so that it costs ``STREAM_BUFFER`` bytes however
    many connections there are: a reader fills it and decodes it in one step, with no
    ``await`` between, and the decoder keeps nothing of it (every body is copied out).
    Allocated once, its pages stay mapped, so the kernel copies into memory already
    faulted in.
    """
    buf: bytearray | None = getattr(_per_thread, "buffer", None)
    if buf is None:
        buf = _per_thread.buffer = bytearray(STREAM_BUFFER)
    return buf


class Reader:
    """Reads one connection's input for its engine (see the module docstring)."""

    __slots__ = (
        "_after_large",
        "_ahead",
        "_conn",
        "_dispatch",
        "_heartbeat",
        "_inbound_lot",
        "_io",
        "_lending",
        "_on_large_body",
        "_on_lent_input",
        "_scratch",
        "_stream",
        "_wake_writer",
        "read_size",
        "reading",
    )

    def __init__(
        self,
        conn: Connection,
        stream: trio.abc.Stream,
        io: Descriptor,
        heartbeat: Heartbeat,
        lending: Lending,
        *,
        dispatch: Callable[[Sequence[object]], bool],
        wake_writer: Callable[[], None],
        on_lent_input: Callable[[], None],
        on_large_body: Callable[[], object] | None,
    ) -> None:
        self._conn = conn
        self._stream = stream
        self._io = io
        self._heartbeat = heartbeat
        self._lending = lending
        #: Hands events to the owner; False: the connection ended.
        self._dispatch = dispatch
        self._wake_writer = wake_writer
        self._on_lent_input = on_lent_input
        #: Called once, before the first body read in place (then forgotten).
        self._on_large_body = on_large_body
        self._inbound_lot = Wakeup()
        self._scratch = bytearray(SCRATCH)
        #: Reads left that go to the stream buffer (AFTER_LARGE).
        self._after_large = 0
        #: Bytes read through the stream buffer since the owner last took a message.
        self._ahead = 0
        #: Bytes asked of each read (adapt_read_size).
        self.read_size = RECV_SIZE
        #: The read loop is running.
        self.reading = False

    def resume(self) -> None:
        """The owner drained the inbound pipe below its low-water mark."""
        if self._inbound_lot:
            self._inbound_lot.unpark_all()

    async def run(self, inp: Pipe | None) -> None:
        """Read until the connection ends; ``inp`` is the owner's inbound pipe."""
        self.reading = True
        try:
            await self._loop(inp)
        except ReaderDone:
            pass
        finally:
            self.reading = False

    async def _loop(self, inp: Pipe | None) -> None:
        conn = self._conn
        heartbeat = self._heartbeat
        direct = self._io.fd >= 0
        receive = self._receive_fd if direct else self._stream.receive_some
        dispatch = self._dispatch
        while True:
            try:
                missing = conn.body_remaining if direct else 0
                if missing and conn.body_buffer() is not None:
                    # A large body is arriving: the kernel copies it straight into
                    # the bytes the application will get (or, sealed, the bytes the
                    # box is opened from).
                    events = await self._receive_body(missing)
                elif self._after_large and direct:
                    # Large messages lately: no fresh buffer for this read either.
                    self._after_large -= 1
                    view = await self._receive_fd(0, stream_buffer())
                    self._ahead += len(view)
                    events = conn.receive_data(view)
                else:
                    size = self.read_size
                    big = conn.body_remaining
                    want = min(big, MAX_RECV_SIZE) if big > size else size
                    data = await receive(want)
                    self.adapt_read_size(want, len(data))
                    events = conn.receive_data(data)
            except ProtocolError as exc:
                # Messages that were complete before the bad bytes are delivered.
                dispatch(exc.events)
                raise
            if heartbeat.deadline != math.inf:
                heartbeat.deadline = math.inf  # a sign of life disarms the watchdog
            if events and not dispatch(events):
                return
            # Let go of the events before waiting again: kept in this frame until the
            # next read, they (and the message lists in them, which a ROUTER with many
            # peers has already replaced) would outlive Python's young collections
            # while this task waits, and be promoted to the oldest generation, whose
            # full collections walk every object of every connection (issue 15).
            del events
            if conn.has_data_to_send:
                self._wake_writer()
            if inp is not None and inp.full:
                # Backpressure: stop reading until the owner drains this pipe.
                # Meanwhile the peer's answers go unread, so silence proves nothing: no
                # heartbeat deadline while paused (libzmq would drop the connection).
                inp.writer_waiting = True
                heartbeat.paused = True
                heartbeat.deadline = math.inf
                while inp.writer_waiting and inp.full:
                    await self._inbound_lot.park()
                heartbeat.paused = False
            elif self._ahead >= READ_AHEAD and inp is not None:
                self._ahead = 0
                if inp:
                    await self._hold_back(inp)

    async def _hold_back(self, inp: Pipe) -> None:
        """Wait until the owner takes a message from ``inp`` (or READ_AHEAD_WAIT).

        A stream of large messages is read READ_AHEAD bytes at a time, and each read
        allocates its messages' bodies.  In trio's scheduling rounds the reader can
        get two turns in a row while the application gets none; the messages alive at
        once then double, and the heap grows past what it had, to be handed back to the
        system (glibc trims its top) when the application frees them, and faulted in
        again page by page at the next such burst: 3 to 4 faults per 64 KiB message
        over ipc.  Waiting for the application to take what we read first keeps the
        bodies alive at once, and so the heap, the same size from burst to burst.
        """
        heartbeat = self._heartbeat
        inp.writer_waiting = True  # Pipe.drained() wakes us (resume) once it takes
        heartbeat.paused = True
        heartbeat.deadline = math.inf
        with trio.move_on_after(READ_AHEAD_WAIT):
            while inp.writer_waiting and inp:
                await self._inbound_lot.park()
        inp.writer_waiting = False
        heartbeat.paused = False

    def adapt_read_size(self, want: int, n: int) -> None:
        """Adapt the read size to the traffic: a full read means more is waiting (a
        busy stream), so read more next time; a small one means we are keeping up, so
        go back to the default."""
        size = self.read_size
        if n == want and size < MAX_STREAM_READ:
            self.read_size = size * 2
        elif n < size // 4 and size > RECV_SIZE:
            self.read_size = RECV_SIZE

    async def _receive_fd(self, size: int, into: bytearray | None = None) -> bytes | memoryview:
        """Read up to ``size`` bytes, or into all of ``into`` (then return a view of
        what was read: the caller decodes it before the buffer is used again)."""
        io = self._io
        lending = self._lending
        fd = io.fd
        if io.lowat > 1:
            io.set_lowat(1)  # a body was read in place; back to waking for any byte
        if io.drained:
            # The last read left the kernel buffer empty: trying again now would only
            # fail with EAGAIN, so wait first (epoll is level-triggered; nothing that
            # arrived in between is missed).
            await lending.reader_wait()
        else:
            await io.spend_budget()
        while True:
            if lending.failure is not None:
                lending.check_failure()
            try:
                if into is None:
                    data: bytes | memoryview = os.read(fd, size)
                else:
                    size = len(into)
                    data = memoryview(into)[: os.readv(fd, [into])]
            except BlockingIOError:
                await lending.reader_wait()
                continue
            io.drained = len(data) < size
            return data

    async def lent_receive(self) -> list[Message] | None:
        """Wait for input on the calling (application's) task, read it and decode it
        (:mod:`zmtp.sockets._lending`).

        Returns the messages, undelivered, when they are all the read brought (the
        usual case: the caller delivers them, or takes one for itself); otherwise
        None, with whatever arrived already dispatched to the owner, or the wait
        interrupted (input arrived some other way, or the socket is closing).  The
        caller checks its queues again then.  Cancellation leaves nothing read.
        """
        lending = self._lending
        lending.begin()
        messages = None
        try:
            await trio.lowlevel.wait_readable(self._io.fd)
        except (trio.ClosedResourceError, trio.BusyResourceError, OSError):
            pass  # interrupted, or the connection is going away: look again
        else:
            # Nothing awaits from here on: what is read is delivered or queued.
            messages = self._read_lent()
        finally:
            lending.end(self._conn.body_remaining)
        return messages

    def _read_lent(self) -> list[Message] | None:
        """One read and its decoding, on the application's task (lent_receive)."""
        io = self._io
        size = self.read_size
        into = stream_buffer() if self._after_large else None
        try:
            if into is None:
                data: bytes | memoryview = os.read(io.fd, size)
            else:
                self._after_large -= 1
                size = len(into)
                data = memoryview(into)[: os.readv(io.fd, [into])]
        except BlockingIOError:
            return None
        except OSError as exc:  # reset, say: the reader ends the connection with it
            self._lending.failure = exc
            return None
        n = len(data)
        io.drained = n < size
        if into is None and (n == size or size > RECV_SIZE):
            self.adapt_read_size(size, n)
        heartbeat = self._heartbeat
        if heartbeat.deadline != math.inf:
            heartbeat.deadline = math.inf
        try:
            events = self._conn.receive_data(data)
        except ProtocolError as exc:
            self._on_lent_input()  # what we dispatch need not interrupt us
            self._dispatch(exc.events)
            exc.events = []
            self._lending.failure = exc
            return None
        if len(events) == 1:
            event = events[0]
            if type(event) is Messages:
                # Only messages (no command, so nothing to answer): the caller's.
                return event.messages
        self._on_lent_input()
        if events and not self._dispatch(events):
            self._lending.failure = ReaderDone()
            return None
        if self._conn.has_data_to_send:
            self._wake_writer()
        return None

    async def _wait_body(self, missing: int) -> None:
        """Wait until a useful part of the ``missing`` bytes of a body can be read.

        Over TCP the kernel wakes a reader for every segment that arrives, so a 1 MiB
        body would cost a dozen wake-ups of this task, each a full scheduler round.
        ``SO_RCVLOWAT`` asks it to wake us only once ``LOWAT`` bytes (or all that is
        missing, or EOF) are there.  It never asks for more than the body still
        needs, so it cannot wait for bytes the peer has no reason to send.

        Not on a sealed (CURVE) connection: its sender seals a whole part before
        writing any of it, and a receiver that waits for ``LOWAT`` bytes instead of
        reading what is there then idles through the sealing, as the sender idles
        through the opening (1 MiB parts: 0.44-0.46 of libzmq's rate with it, 0.56-0.69
        without, with the tuned allocator; alternating runs on an idle machine).
        """
        io = self._io
        # Not while a heartbeat deadline is armed: any byte must count as a sign of
        # life then, or a slow peer could be dropped in the middle of a large body.
        armed = self._heartbeat.deadline != math.inf
        lowat = min(missing, LOWAT) if io.lowat and not armed and not self._conn.encrypts else 1
        if lowat != io.lowat and io.lowat:
            io.set_lowat(lowat)
        await self._lending.reader_wait()

    async def _receive_body(self, missing: int) -> list[Event]:
        """Read the rest of a large body in place; return the events that completes.

        The same ``readv`` also asks for more, into a scratch buffer.  After the rest
        of a body of ``IN_PLACE`` or more, a few bytes: enough for the next frame's
        header (and a routing envelope), so a stream of large messages costs one
        system call per message.  After a shorter rest, the stream buffer, so that one
        system call still carries several messages of a stream of them.
        """
        io = self._io
        lending = self._lending
        fd = io.fd
        conn = self._conn
        scratch = self._scratch if missing >= IN_PLACE else stream_buffer()
        self._after_large = AFTER_LARGE
        hook = self._on_large_body
        if hook is not None:
            self._on_large_body = None
            hook()
        if io.drained:
            await self._wait_body(missing)
        else:
            await io.spend_budget()
        while True:
            # Ask for the view only now: while this task waited, the application's
            # task may have read part of the body itself (Engine.lend).
            if lending.failure is not None:
                lending.check_failure()
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
        io.drained = n < want + len(scratch)
        if scratch is not self._scratch:
            self._ahead += n
        # Large reads spend more of the budget (a unit per 64 KiB): after about 1 MiB
        # the reader lets the application take what arrived.  Otherwise it can read
        # many bodies ahead, and the burst of memory freed afterwards is returned to
        # the system (malloc trims the heap) only to be faulted back in page by page.
        io.budget -= n >> 16
        if n <= want:
            return conn.receive_data(b"") if n == 0 else conn.body_received(n)
        events = conn.body_received(want)
        try:
            # A view: the decoder copies out what it keeps, and the scratch is reused.
            events += conn.receive_data(memoryview(scratch)[: n - want])
        except ProtocolError as exc:
            exc.events[:0] = events
            raise
        return events
