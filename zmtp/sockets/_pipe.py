"""Pipes: bounded message queues between a socket and one peer.

A :class:`Pipe` carries whole messages (lists of frames) in one direction.  Each socket
peer has two: ``out`` (socket to peer) and ``inp`` (peer to socket).  Over tcp and ipc
the far end of each pipe is the connection's engine; over inproc it is the other
socket, so the sockets exchange message lists directly and no bytes are encoded.

The high-water mark counts messages, never frames, so a multipart message is never split
(libzmq src/pipe.cpp).  ``hwm == 0`` means no limit.  Writers that find a pipe full wait
until it drains to the low-water mark, ``(hwm + 1) // 2`` (libzmq's ``compute_lwm`` for
small HWMs), so they wake once per half-queue rather than once per message.

Waking is by callback, not by channel: a pipe calls its reader's ``pipe_readable`` when
it goes from empty to non-empty, and its writer's ``pipe_writable`` when a waiting writer
may proceed.  Both are plain synchronous calls; the parties own their ParkingLots.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

__all__ = ["Message", "Pipe", "PipeReader", "PipeWriter"]

Message = list[bytes]


class PipeReader(Protocol):
    def pipe_readable(self, pipe: Pipe) -> None: ...


class PipeWriter(Protocol):
    def pipe_writable(self, pipe: Pipe) -> None: ...


class Pipe:
    """A one-way queue of messages with a high-water mark."""

    #: True for pipes between two sockets of one context, whose ``put`` must run (it
    #: converts zero-copy views to bytes); writers may inline ``put`` only when False.
    inproc = False

    __slots__ = ("closed", "hwm", "lwm", "peer", "queue", "reader", "writer", "writer_waiting")

    def __init__(
        self, hwm: int, reader: PipeReader | None = None, writer: PipeWriter | None = None
    ) -> None:
        self.queue: deque[Message] = deque()
        self.hwm = hwm
        self.lwm = (hwm + 1) // 2
        self.reader = reader
        self.writer = writer
        self.writer_waiting = False
        self.closed = False
        #: The socket-side peer record this pipe belongs to (set by the owner).
        self.peer: object = None

    def __len__(self) -> int:
        return len(self.queue)

    def __bool__(self) -> bool:
        return bool(self.queue)

    @property
    def full(self) -> bool:
        """True if a writer must wait (the HWM is reached)."""
        return 0 < self.hwm <= len(self.queue)

    def room(self, wanted: int) -> int:
        """How many of ``wanted`` more messages fit below the HWM (all, with none)."""
        if self.hwm <= 0:
            return wanted
        return max(0, min(wanted, self.hwm - len(self.queue)))

    def set_hwm(self, hwm: int) -> None:
        """Change the high-water mark (and with it the low-water mark)."""
        self.hwm = hwm
        self.lwm = (hwm + 1) // 2

    def put(self, msg: Message) -> None:
        """Append one message (the caller checked ``full`` if it cares)."""
        q = self.queue
        q.append(msg)
        if len(q) == 1 and self.reader is not None:
            self.reader.pipe_readable(self)

    def put_many(self, msgs: list[Message]) -> None:
        """Append many messages at once."""
        q = self.queue
        was_empty = not q
        q.extend(msgs)
        if was_empty and q and self.reader is not None:
            self.reader.pipe_readable(self)

    def drained(self) -> None:
        """Call after taking messages while ``writer_waiting``: wake the writer once
        the queue is down to the low-water mark.  (Readers inline the take itself; the
        ``writer_waiting`` test keeps this call off their per-message path.)"""
        if len(self.queue) <= self.lwm:
            self.writer_waiting = False
            if self.writer is not None:
                self.writer.pipe_writable(self)

    def take_all(self) -> deque[Message]:
        """Take every queued message at once (for engines that batch writes)."""
        q = self.queue
        self.queue = deque()
        if self.writer_waiting:
            self.drained()
        return q

    def take_some(self, max_bytes: int) -> list[Message]:
        """Take messages from the front up to about ``max_bytes`` of payload (at least
        one), judging the count by the first message's size: for engines whose
        encoding is costly per byte (CURVE seals every part), so that a pass seals
        what fits in the caches and writes it before sealing the next."""
        q = self.queue
        first = q[0]
        size = 64 + sum(len(part) for part in first)
        n = max(1, max_bytes // size)
        if n >= len(q):
            return list(self.take_all())
        batch = [q.popleft() for _ in range(n)]
        if self.writer_waiting:
            self.drained()
        return batch

    def clear(self) -> int:
        """Drop everything queued; return how many messages were dropped."""
        n = len(self.queue)
        self.queue.clear()
        if self.writer_waiting:
            self.drained()
        return n
