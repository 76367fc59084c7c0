"""Memory reused from one message to the next, once nothing refers to it any more.

Large transient buffers (the frames a CURVE writer seals before writing them, the bodies
a CURVE reader opens) are needed for a moment per message.  Allocated fresh each time,
a stream of them costs the process page faults: glibc hands large freed blocks back to
the system (above its mmap threshold at once, below it once more than its trim threshold
is free at the top of the heap), and the kernel zero-fills every page again when the
memory is next used.  A :class:`ReusePool` keeps a bounded set of such buffers per
thread and hands one out again only when its reference count says that nobody but the
pool holds it: every view, chunk or cdata made from it is gone, so whatever it carried
has been written or opened, or dropped with its connection.  Memory still referenced is
never reused, whoever holds it; on an interpreter whose reference counts cannot be
read that way (not CPython, or CPython without its GIL) nothing is pooled.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["ReusePool"]


def _idle_count() -> int:
    """What ``sys.getrefcount`` says of a pooled buffer nobody else holds, as
    :meth:`ReusePool.take` asks it (the pool's list, its loop variable, the call's
    argument); 0 where the count cannot be trusted: then nothing is pooled."""
    getrefcount = getattr(sys, "getrefcount", None)
    if getrefcount is None or sys.implementation.name != "cpython":
        return 0
    gil = getattr(sys, "_is_gil_enabled", None)
    if gil is not None and not gil():
        return 0  # free-threaded: another thread's references are counted apart
    pool = [bytearray(16)]
    for buf in pool:
        idle: int = getrefcount(buf)
        view = memoryview(buf)  # what a user of the buffer holds: busy
        busy = getrefcount(buf)
        view.release()
        del view
        if busy <= idle or getrefcount(buf) != idle:
            return 0
        return idle
    return 0  # pragma: no cover


_IDLE = _idle_count()


class ReusePool:
    """Buffers of at least ``min_size`` octets, made by ``allocate(size)``, at most
    ``limit`` octets of them per thread, handed out again once idle (see the module
    docstring).  ``allocate`` must return an object whose ``len()`` is its size and
    that every view of its memory refers to (a ``bytearray``, a cffi ``char[]``)."""

    __slots__ = ("_allocate", "_local", "limit", "min_size")

    def __init__(self, allocate: Callable[[int], Any], *, limit: int, min_size: int) -> None:
        self._allocate = allocate
        self.limit = limit
        self.min_size = min_size
        self._local = threading.local()

    def take(self, size: int) -> Any:
        """A buffer of at least ``size`` octets: an idle pooled one, or a new one
        (pooled if the thread's pool has room).  Its contents are whatever was there."""
        if not _IDLE:
            return self._allocate(size)
        pool: list[Any] | None = getattr(self._local, "pool", None)
        if pool is None:
            pool = self._local.pool = []
        getrefcount = sys.getrefcount
        idle = _IDLE
        best = None
        for buf in pool:  # the smallest idle buffer that is large enough
            if (
                getrefcount(buf) == idle
                and len(buf) >= size
                and (best is None or len(buf) < len(best))
            ):
                best = buf
        if best is not None:
            return best
        size = max(size, self.min_size)
        buf = self._allocate(size)
        if sum(map(len, pool)) + size <= self.limit:
            pool.append(buf)
        return buf

    def clear(self) -> None:
        """Forget this thread's pooled buffers (those still in use live on with
        their users)."""
        self._local.pool = []
