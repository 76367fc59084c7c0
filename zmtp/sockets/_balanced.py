"""The halves socket types share: load-balanced sending (PUSH, DEALER, REQ) and
fair-queued receiving (PULL, DEALER, PAIR, XSUB)."""

from __future__ import annotations

from typing import Any

from ._peer import Peer
from ._pipe import Message
from ._routing import LoadBalancer
from ._socket import Socket

__all__ = ["FairQueued", "LoadBalanced"]


class LoadBalanced(Socket):
    """A socket that sends through a :class:`~zmtp.sockets._routing.LoadBalancer`:
    every peer joins it when it attaches, and a message goes to the next peer with
    room (none: the send waits)."""

    __slots__ = ("_lb",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lb = LoadBalancer()
        self._send_one = self._lb.send
        if type(self)._try_send is LoadBalanced._try_send:  # not REQ's, say
            self._send_lb = self._lb

    def _attach(self, peer: Peer) -> None:
        self._lb.attach(peer)

    def _detach(self, peer: Peer) -> None:
        self._lb.detach(peer)

    def _connected(self, peer: Peer) -> None:
        # ZMQ_PROBE_ROUTER (DEALER, REQ): an empty message on every new connection.
        if self._options["probe_router"]:
            peer.out.put([b""])

    def _try_send(self, msg: Message) -> bool:
        return self._lb.send(msg)

    def _try_send_many(self, batch: list[Message], start: int) -> int:
        return self._lb.send_many(batch, start)


class FairQueued(Socket):
    """A socket that receives whole messages straight from its
    :class:`~zmtp.sockets._routing.FairQueue`, one peer in turn."""

    __slots__ = ()

    _direct = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._recv_one = self._fq.recv
        if type(self)._try_recv is FairQueued._try_recv:
            self._recv_fq = self._fq

    def _try_recv(self) -> Message | None:
        return self._fq.recv()

    def _try_recv_many(self, max_messages: int) -> list[Message]:
        return self._fq.recv_many(max_messages)
