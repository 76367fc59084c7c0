"""The socket's record of one remote party."""

from __future__ import annotations

import itertools
from typing import Any, Protocol

from ..protocol.socket_types import SocketType
from ._engine import Engine
from ._pipe import Pipe

__all__ = ["Peer", "PeerOwner"]

_peer_ids = itertools.count(1)


class PeerOwner(Protocol):
    """What one socket's peer record needs of the socket that owns it: over inproc
    the other socket calls these directly, as an engine would (see Peer.link)."""

    def on_subscribe(self, peer: Any, topic: bytes) -> None: ...
    def on_cancel(self, peer: Any, topic: bytes) -> None: ...
    def on_peer_gone(self, peer: Any) -> None:
        """The other end of an inproc link went away: drop ``peer``."""


class Peer:
    """One remote party: two :class:`~zmtp.sockets._pipe.Pipe` queues (``out`` to it,
    ``inp`` from it), its routing id, and how it is reached: an
    :class:`~zmtp.sockets._engine.Engine` running a tcp/ipc connection, or, over
    inproc, the other socket's peer record (``link``).

    A connect()ed peer is *persistent*: created at connect() (unless ``immediate``),
    it keeps its queue across reconnects and goes only with disconnect() or close.
    """

    __slots__ = (
        "__weakref__",
        "connected",
        "endpoint",
        "engine",
        "id",
        "identity",
        "inp",
        "link",
        "out",
        "owner",
        "persistent",
        "routing_id",
        "socket_type",
        "state",
    )

    def __init__(
        self, owner: PeerOwner, out: Pipe, inp: Pipe, endpoint: str, *, persistent: bool = False
    ) -> None:
        self.id = next(_peer_ids)
        self.owner = owner
        self.out = out
        self.inp = inp
        # A pipe's ``peer`` is the record of whoever *reads* it: fair-queueing needs to
        # know which peer a readable pipe belongs to.  ``out`` is read by an engine or,
        # over inproc, by the other socket (which sets it when linking).
        inp.peer = self
        self.endpoint = endpoint
        #: Created by connect(): survives reconnects; removed only by disconnect/close.
        self.persistent = persistent
        self.engine: Engine | None = None
        #: For inproc peers: the other socket's Peer record for us.
        self.link: Peer | None = None
        #: The key a ROUTER routes by.
        self.routing_id: bytes = b""
        #: The Identity the peer announced.
        self.identity: bytes = b""
        self.socket_type: SocketType | None = None
        #: The handshake is complete (over inproc: the link is made).
        self.connected = False
        #: Per-type scratch space.
        self.state: Any = None

    def __repr__(self) -> str:
        return f"<Peer {self.id} {self.endpoint} rid={self.routing_id!r}>"
