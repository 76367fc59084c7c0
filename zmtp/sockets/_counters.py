"""Per-socket counters of what a socket did on its own, for operators.

A socket drops messages by design in a few places (a PUB/XPUB subscriber whose queue
is at its high-water mark misses its copy, RFC 29; a ROUTER drops what it cannot
route, as libzmq does).  Nothing reports those drops on the wire or in the API, so the
strategies that drop count here and :meth:`Socket.statistics` returns a snapshot.
Counting costs one attribute update per drop and nothing on the delivered path.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Counters", "SocketStatistics"]


@dataclass(frozen=True, slots=True)
class SocketStatistics:
    """A snapshot of a socket's counters (see :meth:`zmtp.Socket.statistics`).

    Attributes:
        dropped_hwm: message copies dropped because a peer's outbound queue was at its
            high-water mark (PUB, XPUB without ``xpub_nodrop``, XSUB upstream data,
            ROUTER without ``router_mandatory``).
        dropped_unroutable: messages a ROUTER dropped because no peer has their
            routing id.
    """

    dropped_hwm: int = 0
    dropped_unroutable: int = 0


class Counters:
    """The mutable counts behind :class:`SocketStatistics`."""

    __slots__ = ("dropped_hwm", "dropped_unroutable")

    def __init__(self) -> None:
        self.dropped_hwm = 0
        self.dropped_unroutable = 0

    def snapshot(self) -> SocketStatistics:
        return SocketStatistics(self.dropped_hwm, self.dropped_unroutable)
