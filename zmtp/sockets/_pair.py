"""PAIR (RFC 31): exactly one peer at a time.

Later peers complete the handshake but are then ignored, as in libzmq
(specs/libzmq-behaviour.md §5.6).
"""

from __future__ import annotations

from typing import Any

from ..protocol.socket_types import SocketType
from ._balanced import FairQueued
from ._peer import Peer
from ._pipe import Message

__all__ = ["Pair"]


class Pair(FairQueued):
    """PAIR: exactly one peer at a time."""

    __slots__ = ("_pair",)

    socket_type = SocketType.PAIR

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pair: Peer | None = None

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
