"""PUSH and PULL (RFC 30): a pipeline, load-balanced downstream, fair-queued up."""

from __future__ import annotations

from typing import Any

from ..protocol.socket_types import SocketType
from ._peer import Peer
from ._pipe import Message
from ._routing import LoadBalancer
from ._socket import Socket

__all__ = ["Pull", "Push"]


class Push(Socket):
    """PUSH: load-balances messages to PULL peers; blocks at the high-water mark."""

    __slots__ = ("_lb",)

    socket_type = SocketType.PUSH
    can_recv = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lb = LoadBalancer()
        self._send_one = self._lb.send

    def _attach(self, peer: Peer) -> None:
        self._lb.attach(peer)

    def _detach(self, peer: Peer) -> None:
        self._lb.detach(peer)

    def _try_send(self, msg: Message) -> bool:
        return self._lb.send(msg)

    def _try_send_many(self, batch: list[Message], start: int) -> int:
        return self._lb.send_many(batch, start)


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
