"""Lending a connection's descriptor to the application's task.

When a socket's only connection is idle and the application blocks in a receive, the
application's task waits on the descriptor itself and decodes what arrives
(:meth:`~zmtp.sockets._reader.Reader.lent_receive`, which keeps the state here with
:meth:`Lending.begin` and :meth:`Lending.end`), instead of the engine's reader waking
first and then waking the application: one task switch less per message, a fifth of a
request/reply hop.  Meanwhile the reader parks (:meth:`Lending.reader_wait`); it takes
over again ``LEND_HOLD`` to ``2 * LEND_HOLD`` after the last receive returns (at once if
that receive left it something to do), so heartbeats, disconnects and high-water marks
are handled as always while the application does something else, and a request/reply
loop never wakes it.  Errors the application's task meets are handed to the reader to
raise (:attr:`Lending.failure`), so a connection still ends in one place.

The hold is kept without reading the clock on the receive's path: each lent receive
counts itself (:attr:`Lending.lends`), and the parked reader, when its timer expires,
looks again only if the count has not moved since it parked.

A lent wait is interrupted with the descriptor's interrupt (``notify_closing`` on the
still-open descriptor, see :mod:`zmtp.sockets._fdio`), not with a cancel scope: a scope
costs more than the bookkeeping of a whole hop.
"""

from __future__ import annotations

import trio

from ._fdio import Descriptor
from ._wakeup import Wakeup

__all__ = ["LEND_BACKOFF_MAX", "LEND_HOLD", "Lending", "ReaderDone"]

#: How long the reader leaves the descriptor alone after the application's task
#: borrowed it (seconds): input that arrives while the application is busy elsewhere
#: is read at most twice this late, and a request/reply loop does not wake the reader.
LEND_HOLD = 0.01
#: Longest the reader parks at a time while a receive stays lent (seconds).
LEND_BACKOFF_MAX = 1.0


class ReaderDone(Exception):
    """Raised in the reader when the application's task met the end of the input."""


class Lending:
    """The lending state of one connection (see the module docstring)."""

    __slots__ = (
        "_handover",
        "_io",
        "_lot",
        "_seen",
        "failure",
        "lends",
        "lent",
        "reader_backoff",
        "reader_waiting",
    )

    def __init__(self, io: Descriptor) -> None:
        self._io = io
        #: The application's task is waiting on the descriptor now.
        self.lent = False
        #: Lent receives ended so far: the reader stays parked while this moves.
        self.lends = 0
        self._seen = 0  # lends when the reader last took the descriptor
        self._handover = False  # a receive asked the reader to take over at once
        #: What ended the input while the application's task read it, for the reader.
        self.failure: BaseException | None = None
        #: How long the parked reader's current timer is (0: not parked).
        self.reader_backoff = 0.0
        #: The reader is in wait_readable (a lent receive must interrupt it).
        self.reader_waiting = False
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
        seen = self._seen
        while True:
            backoff = LEND_HOLD
            while self.lent or (self.failure is None and self.lends != seen and not self._handover):
                # Lent, or lent since we last looked: the application is likely to come
                # back for more before anything else needs reading, so stay out of its
                # way for LEND_HOLD rather than wake for every message.  While it stays
                # lent (an application blocked in a receive for long), wait longer each
                # time, so an idle socket costs no CPU; end() wakes us early from a
                # long wait.
                if self.lends != seen:
                    seen = self.lends
                    backoff = LEND_HOLD  # receives come and go: look again soon
                self.reader_backoff = backoff
                with trio.move_on_after(backoff) as scope:
                    await self._lot.park()
                self.reader_backoff = 0.0
                if scope.cancelled_caught:  # timed out: still lent, or the hold ran out
                    backoff = min(backoff * 2, LEND_BACKOFF_MAX)
                else:  # woken by end()
                    backoff = LEND_HOLD
            self._seen = seen
            self._handover = False
            self.check_failure()
            self.reader_waiting = True
            try:
                await trio.lowlevel.wait_readable(io.fd)
            except trio.ClosedResourceError:
                if not io.interrupted():
                    raise
                continue  # a lent receive took the descriptor
            finally:
                self.reader_waiting = False
            return

    def begin(self) -> None:
        """A receive on the application's task is about to wait on the descriptor."""
        self.lent = True
        if self.reader_waiting:
            self._io.interrupt()  # the reader leaves the descriptor to us

    def end(self, keep_reader: int) -> None:
        """That receive is over (whatever the outcome); ``keep_reader`` nonzero: the
        reader must take over at once (the bytes of a large body to read in place)."""
        self.lent = False
        if keep_reader or self.failure is not None:
            # The reader has something to read or raise: it takes over at once.
            self._handover = True
            self._lot.unpark_all()
            return
        self.lends += 1
        if self.reader_backoff > LEND_HOLD:
            # The reader backed off far (the receive waited long): let it look now,
            # so that it parks again for LEND_HOLD only.
            self._lot.unpark_all()
