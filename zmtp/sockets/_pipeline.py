"""PUSH and PULL (RFC 30): a pipeline, load-balanced downstream, fair-queued up."""

from __future__ import annotations

from ..protocol.socket_types import SocketType
from ._balanced import FairQueued, LoadBalanced

__all__ = ["Pull", "Push"]


class Push(LoadBalanced):
    """PUSH: load-balances messages to PULL peers; blocks at the high-water mark."""

    __slots__ = ()

    socket_type = SocketType.PUSH
    can_recv = False


class Pull(FairQueued):
    """PULL: fair-queues messages from PUSH peers."""

    __slots__ = ()

    socket_type = SocketType.PULL
    can_send = False
