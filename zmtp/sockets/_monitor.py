"""Connection events: a trio-friendly socket monitor.

libzmq reports connection life-cycle events through a PAIR socket (``zmq_socket_monitor``).
Here ``sock.monitor()`` returns an async iterator of :class:`SocketEvent` records instead.
Each monitor has a bounded buffer; if the application does not keep up, the oldest
events are dropped and the next event says how many were lost, so a forgotten monitor
never slows or blocks the socket.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import trio

__all__ = ["EventType", "Monitor", "SocketEvent"]


class EventType(enum.Enum):
    """What happened (names follow libzmq's ``ZMQ_EVENT_*``)."""

    LISTENING = "listening"
    BIND_FAILED = "bind_failed"
    ACCEPTED = "accepted"
    CONNECTED = "connected"
    CONNECT_DELAYED = "connect_delayed"
    CONNECT_RETRIED = "connect_retried"
    #: zmtp extension: a connect()ed endpoint is abandoned after a protocol error
    #: (libzmq's behaviour, which it does not report); ``reason`` says which error.
    RECONNECT_STOPPED = "reconnect_stopped"
    HANDSHAKE_SUCCEEDED = "handshake_succeeded"
    HANDSHAKE_FAILED = "handshake_failed"
    DISCONNECTED = "disconnected"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class SocketEvent:
    """One connection event.

    Attributes:
        type: the kind of event.
        endpoint: the endpoint it concerns (bound or connected).
        peer: the remote address, where known.
        reason: why (for failures and disconnects), else "".
        detail: extra data (``reconnect_in`` seconds, the peer's ``identity``, ...).
        dropped: events lost just before this one because the monitor lagged.
    """

    type: EventType
    endpoint: str
    peer: str = ""
    reason: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    dropped: int = 0


class Monitor:
    """An async iterator over a socket's events; ``aclose()`` or ``with`` to stop."""

    def __init__(self, on_close: Callable[[Monitor], object], maxlen: int) -> None:
        self._on_close = on_close
        self._queue: deque[SocketEvent] = deque()
        self._maxlen = maxlen
        self._dropped = 0
        self._lot = trio.lowlevel.ParkingLot()
        self.closed = False

    def push(self, event: SocketEvent) -> None:
        """Queue an event (the socket's call; never blocks)."""
        if self.closed:
            return
        queue = self._queue
        if len(queue) >= self._maxlen:
            # The oldest goes; the count moves to the event now first in line, so that
            # events lost in several rounds are all reported (the dropped event may
            # itself have been carrying a count).
            lost = queue.popleft()
            self._dropped += lost.dropped + 1
            if queue:
                queue[0] = replace(queue[0], dropped=queue[0].dropped + self._dropped)
                self._dropped = 0
        if self._dropped:
            event = replace(event, dropped=self._dropped)
            self._dropped = 0
        queue.append(event)
        self._lot.unpark_all()

    def __aiter__(self) -> Monitor:
        return self

    async def __anext__(self) -> SocketEvent:
        await trio.lowlevel.checkpoint()
        while not self._queue:
            if self.closed:
                raise StopAsyncIteration
            await self._lot.park()
        return self._queue.popleft()

    def receive_nowait(self) -> SocketEvent:
        """The next event if one is waiting.

        Raises:
            trio.WouldBlock: none is waiting.
            trio.EndOfChannel: none is waiting and the monitor is closed.
        """
        if self._queue:
            return self._queue.popleft()
        if self.closed:
            raise trio.EndOfChannel
        raise trio.WouldBlock

    async def receive(self) -> SocketEvent:
        """The next event (raises ``trio.EndOfChannel`` once the monitor is closed)."""
        try:
            return await self.__anext__()
        except StopAsyncIteration:
            raise trio.EndOfChannel from None

    def close(self) -> None:
        """Stop receiving events; pending ones can still be read."""
        if not self.closed:
            self.closed = True
            self._on_close(self)
            self._lot.unpark_all()

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
