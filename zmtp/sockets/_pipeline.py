"""PUSH and PULL (RFC 30): a pipeline, load-balanced downstream, fair-queued up."""

from __future__ import annotations

from typing import Any

from ..protocol.socket_types import SocketType
from ._balanced import LoadBalanced
from ._pipe import Message
from ._socket import Socket

__all__ = ["Pull", "Push"]


class Push(LoadBalanced):
    """PUSH: load-balances messages to PULL peers; blocks at the high-water mark."""

    __slots__ = ()

    socket_type = SocketType.PUSH
    can_recv = False


class Pull(Socket):
    """PULL: fair-queues messages from PUSH peers."""

    __slots__ = ()

    socket_type = SocketType.PULL
    can_send = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._recv_one = self._fq.recv

    def _try_recv(self) -> Message | None:
        return self._fq.recv()

    def _try_recv_many(self, max_messages: int) -> list[Message]:
        return self._fq.recv_many(max_messages)
