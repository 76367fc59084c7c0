"""Background tasks owned by a socket, cancellable as a group.

Sockets are created synchronously (``ctx.socket(...)``) but run tasks (listeners,
connectors, engines) in their Context's nursery.  A :class:`TaskGroup` gives each group
of tasks (one per endpoint, so ``unbind``/``disconnect`` can stop just that endpoint's
connections) a way to be cancelled and awaited, so that no task outlives its socket.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

__all__ = ["TaskGroup"]


class TaskGroup:
    """Tasks spawned into a shared nursery, cancelled and awaited together."""

    def __init__(self, nursery: trio.Nursery, name: str = "") -> None:
        self._nursery = nursery
        self._scopes: set[trio.CancelScope] = set()
        self._count = 0
        self._done = trio.lowlevel.ParkingLot()
        self.cancelled = False
        self.name = name

    def __len__(self) -> int:
        return self._count

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Start ``fn(*args)`` in the group.

        Once the group is cancelled, ``fn`` still starts, but already cancelled: it may
        have been handed a resource (an accepted stream) that only it knows to close.
        Skipping it would leak that resource.
        """
        self._count += 1
        self._nursery.start_soon(self._run, fn, args, name=f"{self.name}:{fn.__name__}")

    async def _run(self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
        try:
            with trio.CancelScope() as scope:
                if self.cancelled:
                    scope.cancel()
                self._scopes.add(scope)
                try:
                    await fn(*args)
                finally:
                    self._scopes.discard(scope)
        finally:
            self._count -= 1
            if not self._count:
                self._done.unpark_all()

    def cancel(self) -> None:
        """Cancel every task in the group, now and in the future."""
        self.cancelled = True
        for scope in self._scopes:
            scope.cancel()

    async def wait(self) -> None:
        """Wait until every task in the group has finished."""
        while self._count:
            await self._done.park()

    async def aclose(self) -> None:
        """Cancel and wait."""
        self.cancel()
        with trio.CancelScope(shield=True):
            await self.wait()
