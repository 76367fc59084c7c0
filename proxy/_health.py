"""What an operator needs to know about each of the proxy's sockets.

A :class:`SocketWatch` follows one socket's monitor (``Socket.monitor()``) and keeps
counts a proxy's traffic statistics cannot show: handshakes that failed (by error
class), reconnect attempts, and the connect()ed endpoints the socket has given up on.

The last is the dangerous one.  Like libzmq, a socket that connects out stops
reconnecting to an endpoint for good after a protocol error (a bad greeting, a peer of
an incompatible type, specs/libzmq-behaviour.md §2.5), and nothing else shows it: the
proxy keeps running and looks healthy while that upstream is gone until a restart.  So
the watch logs it at WARNING, with what to do, and :func:`health_line` puts it in the
live statistics line.

Everything else (connected peers, queue depths, messages the socket dropped on its own)
is read from the socket when :meth:`SocketWatch.snapshot` is called.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from zmtp import EventType, Socket

__all__ = ["SocketHealth", "SocketWatch", "health_line"]

log = logging.getLogger("zmtp.proxy")


@dataclass(frozen=True, slots=True)
class SocketHealth:
    """A snapshot of one socket's health.

    Attributes:
        role: ``frontend``, ``backend``, ``capture`` or ``control``.
        socket_type: the socket type's name.
        peers: connections whose handshake completed and that are still up.
        queued_out: messages waiting to be written, summed over peers.
        queued_in: messages received and not yet taken by the proxy.
        handshakes_failed: failed handshakes by error class (``GreetingError``, ...).
        reconnects: reconnection attempts scheduled (libzmq's CONNECT_RETRIED).
        abandoned: ``(endpoint, reason)`` of connect()ed endpoints the socket stopped
            reconnecting to after a protocol error.
        dropped_hwm, dropped_unroutable: see :class:`zmtp.SocketStatistics`.
    """

    role: str
    socket_type: str
    peers: int = 0
    queued_out: int = 0
    queued_in: int = 0
    handshakes_failed: dict[str, int] = field(default_factory=dict)
    reconnects: int = 0
    abandoned: tuple[tuple[str, str], ...] = ()
    dropped_hwm: int = 0
    dropped_unroutable: int = 0


class SocketWatch:
    """Follows one socket's events; :meth:`run` until cancelled, :meth:`snapshot` any time.

    Args:
        role: the socket's role in the proxy, for messages and labels.
        sock: the socket.
        advice: what the WARNING about an abandoned endpoint tells the operator to do.
    """

    def __init__(self, role: str, sock: Socket, *, advice: str = "") -> None:
        self.role = role
        self.sock = sock
        self.advice = advice
        self._failed: Counter[str] = Counter()
        self._reconnects = 0
        self._abandoned: dict[str, str] = {}
        # Opened now, not in run(): events from connect() calls made before run()
        # starts would otherwise be missed.
        self._monitor = sock.monitor()

    async def run(self) -> None:
        """Count the socket's events until cancelled (or the socket closes)."""
        with self._monitor:
            async for event in self._monitor:
                kind = event.type
                if kind is EventType.HANDSHAKE_FAILED:
                    self._failed[str(event.detail.get("error", "other"))] += 1
                elif kind is EventType.CONNECT_RETRIED:
                    self._reconnects += 1
                elif kind is EventType.RECONNECT_STOPPED:
                    self._abandoned[event.endpoint] = event.reason
                    log.warning(
                        "%s %s: NOT RECONNECTING to %s after a protocol error (%s); "
                        "this is libzmq's behaviour and nothing will reconnect it. %s",
                        self.role,
                        self.sock.socket_type.name,
                        event.endpoint,
                        event.reason,
                        self.advice,
                    )
                elif kind is EventType.HANDSHAKE_SUCCEEDED:
                    self._abandoned.pop(event.endpoint, None)

    def snapshot(self) -> SocketHealth:
        """The socket's health now (call from the proxy's trio thread)."""
        peers = self.sock.peers
        stats = self.sock.statistics()
        return SocketHealth(
            self.role,
            self.sock.socket_type.name,
            peers=sum(1 for p in peers if p.connected),
            queued_out=sum(len(p.out) for p in peers),
            queued_in=sum(len(p.inp) for p in peers),
            handshakes_failed=dict(self._failed),
            reconnects=self._reconnects,
            abandoned=tuple(self._abandoned.items()),
            dropped_hwm=stats.dropped_hwm,
            dropped_unroutable=stats.dropped_unroutable,
        )


def health_line(health: Sequence[SocketHealth]) -> str:
    """What the live statistics line adds about the sockets: "" when all is well,
    else the abandoned endpoints (loudly) and failed handshakes."""
    parts = []
    for h in health:
        for endpoint, _reason in h.abandoned:
            parts.append(f"{h.role} NOT RECONNECTING to {endpoint} (protocol error, see log)")
        failed = sum(h.handshakes_failed.values())
        if failed:
            parts.append(f"{h.role} handshakes failed {failed}")
    return " | ".join(parts)
