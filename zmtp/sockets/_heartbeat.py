"""Heartbeats: the PING timer and the watchdog that drops a silent peer (RFC 37).

libzmq 4.3.5 (specs/libzmq-behaviour.md §3.2) has two timers, both disarmed by every
inbound frame: the heartbeat timeout, armed by each PING we send unless already armed,
and the peer's TTL, armed by each PING received with a TTL.  Either expiring drops the
connection.  Since the same thing disarms both, one deadline (the earlier of the two)
stands for them: the engine resets :attr:`Heartbeat.deadline` to ``inf`` whenever bytes
arrive, :meth:`Heartbeat.arm` brings it forward.  Explicit disarming, rather than
comparing timestamps of the last read and the last arming, stays right when both
happen at the same clock reading (coarse clocks, trio's MockClock).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import trio

from ..protocol.errors import RemoteProtocolError
from ._wakeup import Wakeup

__all__ = ["Heartbeat", "HeartbeatTimeout"]


class HeartbeatTimeout(RemoteProtocolError):
    """The peer went silent after a PING (``heartbeat_timeout`` or its own TTL)."""

    fatal = False


class Heartbeat:
    """One connection's heartbeat state (see the module docstring)."""

    __slots__ = ("_lot", "_on_armed", "_stopped", "deadline", "paused")

    def __init__(self, on_armed: Callable[[], None]) -> None:
        #: The connection is dropped at this time unless something arrives first (inf:
        #: disarmed).  The engine writes ``inf`` here itself on every read: that is the
        #: per-read hot path, so no method call.
        self.deadline = math.inf
        #: Reading is stopped by backpressure: the peer's answers go unread, so silence
        #: proves nothing, and nothing is armed (libzmq would drop the connection).
        self.paused = False
        self._lot = Wakeup()
        self._on_armed = on_armed
        self._stopped = False

    @property
    def parked(self) -> bool:
        """True while the watchdog waits (for its deadline, or to be woken)."""
        return bool(self._lot)

    def stop(self) -> None:
        """Make the watchdog return (the connection is ending)."""
        self._stopped = True
        self._lot.unpark_all()

    def arm(self, timeout: float) -> None:
        """Drop the connection unless something arrives within ``timeout`` seconds
        (unless an earlier deadline is already armed: RFC 37 §Heartbeating)."""
        if self.paused:
            return
        deadline = trio.current_time() + timeout
        if deadline < self.deadline:
            self.deadline = deadline
            self._lot.unpark_all()
            self._on_armed()

    async def ping_loop(self, ivl: float, timeout: float, send_ping: Callable[[], None]) -> None:
        """Every ``ivl`` seconds call ``send_ping`` and arm ``timeout`` (if > 0)."""
        while True:
            await trio.sleep(ivl)
            send_ping()
            if timeout > 0:
                self.arm(timeout)

    async def watchdog(self) -> None:
        """Return only once stopped (:meth:`stop`); raise :class:`HeartbeatTimeout`
        when the deadline passes."""
        while True:
            if self._stopped:
                return
            deadline = self.deadline
            if trio.current_time() >= deadline:
                break
            # Woken early by arm() when the deadline moves forward; when it was
            # disarmed meanwhile, this wakes at the old deadline and waits again.
            with trio.move_on_at(deadline):
                await self._lot.park()
        raise HeartbeatTimeout(
            "no traffic from the peer within the heartbeat timeout", reason=b"Heartbeat timeout"
        )
