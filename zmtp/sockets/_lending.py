"""Lending a connection's descriptor to the application's task.

When a socket's only connection is idle and the application blocks in a receive, the
application's task waits on the descriptor itself and decodes what arrives
(:meth:`Lending.lend`), instead of the engine's reader waking first and then waking
the application: one task switch less per message, a fifth of a request/reply hop.
Meanwhile the reader parks (:meth:`Lending.reader_wait`); it takes over again
``LEND_HOLD`` after the receive returns (at once if that receive left it something to
do), so heartbeats, disconnects and high-water marks are handled as always while the
application does something else, and a request/reply loop never wakes it.  Errors the
application's task meets are handed to the reader to raise (:attr:`Lending.failure`),
so a connection still ends in one place.

A lent wait is interrupted with the descriptor's interrupt (``notify_closing`` on the
still-open descriptor, see :mod:`zmtp.sockets._fdio`), not with a cancel scope: a scope
costs more than the bookkeeping of a whole hop.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import trio

from ._fdio import Descriptor
from ._wakeup import Wakeup

__all__ = ["LEND_BACKOFF_MAX", "LEND_HOLD", "Lending", "ReaderDone"]

#: How long the reader leaves the descriptor alone after the application's task
#: borrowed it (seconds): input that arrives while the application is busy elsewhere
#: is read at most this late, and a request/reply loop does not wake the reader at all.
LEND_HOLD = 0.01
#: Longest the reader parks at a time while a receive stays lent (seconds).
LEND_BACKOFF_MAX = 1.0


class ReaderDone(Exception):
    """Raised in the reader when the application's task met the end of the input."""


class Lending:
    """The lending state of one connection (see the module docstring)."""

    __slots__ = ("_io", "_lot", "_reader_until", "_reader_waiting", "failure", "held", "lent")

    def __init__(self, io: Descriptor) -> None:
        self._io = io
        #: The application's task is waiting on the descriptor now.
        self.lent = False
        #: The reader stays away until then.
        self.held = -math.inf
        #: What ended the input while the application's task read it, for the reader.
        self.failure: BaseException | None = None
        self._reader_until = -math.inf  # when the parked reader will look again
        self._reader_waiting = False  # the reader is in wait_readable
        self._lot = Wakeup()

    def check_failure(self) -> None:
        """Raise, in the reader, what ended the input while the application read it.

        Called before every read: the application's task may have read (and decoded)
        the end of the connection while the reader waited for its turn.
        """
        failure = self.failure
        if failure is not None:
            self.failure = None
            raise failure

    async def reader_wait(self) -> None:
        """The reader's wait for input: on the descriptor, unless it is lent out."""
        io = self._io
        while True:
            backoff = LEND_HOLD
            while self.lent or (self.failure is None and trio.current_time() < self.held):
                # Lent, or lent a moment ago: the application is likely to come back
                # for more before anything else needs reading, so stay out of its way
                # for LEND_HOLD rather than wake for every message.  While it stays
                # lent (an application blocked in a receive for long), wait longer each
                # time, so an idle socket costs no CPU; lend() wakes us early if we
                # would otherwise resume more than 2 * LEND_HOLD after it ends.
                until = max(self.held, trio.current_time() + backoff)
                self._reader_until = until
                with trio.move_on_at(until) as scope:
                    await self._lot.park()
                if scope.cancelled_caught:  # timed out: still lent, or the hold ran out
                    backoff = min(backoff * 2, LEND_BACKOFF_MAX)
                else:  # woken by lend()
                    backoff = LEND_HOLD
            self._reader_until = -math.inf
            self.check_failure()
            self._reader_waiting = True
            try:
                await trio.lowlevel.wait_readable(io.fd)
            except trio.ClosedResourceError:
                if not io.interrupted():
                    raise
                continue  # lend() took the descriptor
            finally:
                self._reader_waiting = False
            return

    async def lend(self, on_input: Callable[[], None], keep_reader: Callable[[], bool]) -> None:
        """Wait for input on the calling (application's) task; then call ``on_input``.

        Returns once input arrived and ``on_input`` ran, or the wait was interrupted
        (input arrived some other way, or the socket is closing).  The caller checks its
        queues again either way.  ``keep_reader()`` says, afterwards, whether the reader
        must take over at once (a large body to read in place).
        """
        io = self._io
        self.lent = True
        if self._reader_waiting:
            io.interrupt()  # the reader leaves the descriptor to us
        try:
            await trio.lowlevel.wait_readable(io.fd)
        except (trio.ClosedResourceError, trio.BusyResourceError, OSError):
            pass  # interrupted, or the connection is going away: look again
        else:
            on_input()
        finally:
            self.lent = False
            if self.failure is not None or keep_reader():
                self._lot.unpark_all()  # the reader has something to raise or read
            else:
                held = self.held = trio.current_time() + LEND_HOLD
                if self._reader_until > held + LEND_HOLD:
                    self._lot.unpark_all()  # backed off far: come back sooner
