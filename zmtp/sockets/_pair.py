"""PAIR (RFC 31): exactly one peer at a time.

Later peers complete the handshake but are then ignored, as in libzmq
(specs/libzmq-behaviour.md §5.6).
"""

from __future__ import annotations

from typing import Any

from ..protocol.socket_types import SocketType
from ._peer import Peer
from ._pipe import Message
from ._socket import Socket

__all__ = ["Pair"]


class Pair(Socket):
    """PAIR: exactly one peer at a time."""

    __slots__ = ("_pair",)

    socket_type = SocketType.PAIR

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pair: Peer | None = None
        self._recv_one = self._fq.recv

    def _accept_peer(self, peer: Peer) -> bool:
        return self._pair is None

    def _attach(self, peer: Peer) -> None:
        if self._pair is None:
            self._pair = peer

    def _detach(self, peer: Peer) -> None:
        if self._pair is peer:
            self._pair = None

    def _try_send(self, msg: Message) -> bool:
        peer = self._pair
        if peer is None or peer.out.full:
            return False
        peer.out.put(msg)
        return True

    def _try_recv(self) -> Message | None:
        return self._fq.recv()

    def _try_recv_many(self, max_messages: int) -> list[Message]:
        return self._fq.recv_many(max_messages)
