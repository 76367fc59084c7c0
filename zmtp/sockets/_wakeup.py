"""A parking spot for one task: what a connection's loops wait on.

Each of a connection's background loops (the writer, the heartbeat watchdog, the reader
waiting for its inbound queue to drain, the reader waiting while its descriptor is
lent) is the only task that ever waits on its own wake-up.  ``trio.lowlevel.ParkingLot``
serves any number of waiters with an ordered dict per lot, and the writer and the
watchdog are parked for an idle connection's whole life: four lots made up several
hundred bytes of every idle connection (issue 15 counts them).  :class:`Wakeup` keeps
one task reference, with ParkingLot's ``park`` / ``unpark_all`` / ``bool`` surface.
"""

from __future__ import annotations

import trio

__all__ = ["Wakeup"]


class Wakeup:
    """Where one task parks until another wakes it (cancellable, like
    ``ParkingLot.park``)."""

    __slots__ = ("_task",)

    def __init__(self) -> None:
        self._task: trio.lowlevel.Task | None = None

    def __bool__(self) -> bool:
        """True while a task is parked."""
        return self._task is not None

    async def park(self) -> None:
        """Wait until :meth:`unpark_all` (or cancellation).

        Raises:
            RuntimeError: another task is already parked here.
        """
        if self._task is not None:
            raise RuntimeError("Wakeup serves one task: another one is already parked")
        self._task = trio.lowlevel.current_task()

        def abort(_: object) -> trio.lowlevel.Abort:
            self._task = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def unpark_all(self) -> None:
        """Wake the parked task, if any."""
        task = self._task
        if task is not None:
            self._task = None
            trio.lowlevel.reschedule(task)
