"""Descriptor I/O for one connection: the system calls an engine makes itself.

trio's ``SocketStream`` adds a scheduler round to every successful send and receive
(its "yield sandwich"); on the per-message path those rounds are most of a round
trip's cost.  So an engine on a plain socket calls ``os.read``/``os.readv``/
``os.writev`` on the descriptor itself, waits with ``wait_readable``/
``wait_writable`` only when the kernel says it would block, and checkpoints every
``BUDGET`` calls otherwise so a busy connection cannot starve other tasks.

:class:`Descriptor` holds that machinery and the per-descriptor knobs (``SO_RCVLOWAT``,
the ipc send buffer, the kernel-queue query, the interrupt).  Where no raw descriptor
exists (a ``trio.testing`` memory stream, an SSL stream), the engine uses the plain
stream methods instead (``fd < 0``).
"""

from __future__ import annotations

import contextlib
import os
import socket as _socket
import sys
from collections.abc import Sequence

import trio

from ..protocol._buffers import BytesLike

__all__ = ["BUDGET", "IOV_MAX", "IPC_SNDBUF", "WRITEV_BYTES", "Descriptor", "gather_end"]

if sys.platform == "linux":
    import fcntl
    import termios

    #: SIOCOUTQ (= TIOCOUTQ): bytes in a socket's send queue.
    _SIOCOUTQ: int | None = termios.TIOCOUTQ
else:
    _SIOCOUTQ = None

#: System calls an engine direction makes without waiting before it checkpoints anyway.
BUDGET = 16
#: Most buffers one writev() may carry (POSIX IOV_MAX is at least 16; Linux has 1024).
IOV_MAX = 512
#: Bytes one writev() is offered, at most (plus the one buffer that crosses it).  The
#: kernel takes what fits in the send buffer (a few hundred KiB at a time on a busy
#: loopback), and every buffer offered costs a buffer-protocol call in Python and an
#: iovec entry in the kernel whether it is taken or not: offering a whole queue of
#: 1 MiB bodies (up to IOV_MAX of them) made each write cost more than the copy.
WRITEV_BYTES = 1 << 20
#: SO_SNDBUF of ipc connections (the kernel doubles it, and caps it at wmem_max).
IPC_SNDBUF = 1024 * 1024


def gather_end(chunks: Sequence[BytesLike], start: int) -> int:
    """The end of the run of ``chunks`` from ``start`` that one writev() is offered:
    at most ``IOV_MAX`` buffers, stopping at the first that reaches ``WRITEV_BYTES``."""
    stop = min(len(chunks), start + IOV_MAX)
    total = 0
    end = start
    while end < stop:
        total += len(chunks[end])
        end += 1
        if total >= WRITEV_BYTES:
            break
    return end


class Descriptor:
    """The raw descriptor of a stream, when it has one (``fd`` is -1 otherwise)."""

    __slots__ = ("budget", "drained", "fd", "lowat", "sock")

    def __init__(self, stream: trio.abc.Stream) -> None:
        sock = getattr(stream, "socket", None)
        self.sock: trio.socket.SocketType | None = sock
        self.fd: int = sock.fileno() if sock is not None else -1
        self.budget = BUDGET
        #: The last read left the kernel buffer empty (the next read waits first).
        self.drained = False
        # SO_RCVLOWAT in force: 1 (the default), more while a body is read in place,
        # 0 where it does not apply (ipc: Unix sockets ignore it in poll).
        self.lowat = 1 if sock is not None and sock.family != _socket.AF_UNIX else 0
        if self.lowat == 0 and sock is not None:
            # Over a Unix socket, what a sender may have in flight is bounded by its own
            # send buffer (208 KiB by default), so a receiver is woken, and a sender
            # blocks, for every 208 KiB.  A larger buffer lets a 1 MiB message go in
            # one write and be read in one or two.
            with contextlib.suppress(OSError):
                sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_SNDBUF, IPC_SNDBUF)

    async def spend_budget(self) -> None:
        """Count a system call made without waiting; checkpoint every ``BUDGET``."""
        self.budget -= 1
        if self.budget <= 0:
            self.budget = BUDGET
            await trio.lowlevel.checkpoint()

    def set_lowat(self, lowat: int) -> None:
        """Ask the kernel to wake a reader only once ``lowat`` bytes are waiting."""
        assert self.sock is not None
        try:
            self.sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_RCVLOWAT, max(lowat, 1))
            self.lowat = lowat
        except OSError:  # not supported here: wake for every segment, as before
            self.lowat = 0

    # The interrupt.  Waiting on a descriptor can only be interrupted by a cancel scope,
    # which costs more than a whole request/reply hop's worth of bookkeeping, or by
    # ``notify_closing``.  We use the latter on a descriptor that stays open: every wait
    # on it (reader, writer, a lent receive) takes the ClosedResourceError for a
    # wake-up while the connection is in fact still open (interrupted()).

    def interrupted(self) -> bool:
        """After a ClosedResourceError from a wait on our descriptor: True if that was
        only an interruption, the connection being still open."""
        sock = self.sock
        return sock is not None and sock.fileno() == self.fd

    def interrupt(self) -> None:
        """Wake every task waiting on this descriptor (see above)."""
        if self.interrupted():
            trio.lowlevel.notify_closing(self.fd)

    async def wait_writable(self) -> None:
        try:
            await trio.lowlevel.wait_writable(self.fd)
        except trio.ClosedResourceError:
            if not self.interrupted():  # else a wake-up meant for a reader
                raise

    def write_now(self, chunks: Sequence[BytesLike]) -> int:
        """Write what the kernel takes at once; return the bytes written (0 if it
        would block or the connection is broken: the writer task finds out)."""
        try:
            if len(chunks) == 1:
                return os.write(self.fd, chunks[0])
            # Large payloads are separate chunks: gather them, do not join them.
            return os.writev(self.fd, chunks[: gather_end(chunks, 0)])
        except OSError:
            return 0

    async def send_chunks(self, chunks: Sequence[BytesLike]) -> None:
        """Write chunks in order, gathering them into as few system calls as possible.

        Large payloads arrive as separate chunks (never copied into the output buffer);
        ``writev`` hands them to the kernel together with their headers in one call.
        """
        fd = self.fd
        await self.spend_budget()
        if len(chunks) == 1:
            data = memoryview(chunks[0])
            while data:
                try:
                    sent = os.write(fd, data)
                except BlockingIOError:
                    await self.wait_writable()
                    continue
                data = data[sent:]
            return
        views: list[BytesLike] = list(chunks)
        first = 0  # views[:first] are written
        count = len(views)
        while first < count:
            end = gather_end(views, first)
            try:
                if end - first > 1:
                    sent = os.writev(fd, views[first:end])
                else:
                    sent = os.write(fd, views[first])
            except BlockingIOError:
                await self.wait_writable()
                continue
            # Step over what the kernel took (and any empty buffer); cut the one it
            # stopped inside.
            while first < count:
                n = len(views[first])
                if sent < n:
                    if sent:
                        views[first] = memoryview(views[first])[sent:]
                    break
                sent -= n
                first += 1

    def kernel_unsent(self) -> int:
        """Bytes the kernel still holds for the peer: for a unix socket, not yet read by
        it; for tcp, not yet acknowledged (Linux's SIOCOUTQ).  0 where unknown."""
        if _SIOCOUTQ is None or self.sock is None:
            return 0
        try:
            raw = fcntl.ioctl(self.sock.fileno(), _SIOCOUTQ, b"\0\0\0\0")
        except (OSError, ValueError):  # closed, or not a socket
            return 0
        return int.from_bytes(raw, sys.byteorder, signed=True)
