"""The socket's record of one remote party."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from ..protocol.metadata import Metadata
from ..protocol.socket_types import SocketType
from ._engine import Engine
from ._pipe import Pipe

__all__ = ["Peer", "PeerInfo", "PeerOwner", "Received"]


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """Who a message came from: what libzmq attaches to every message it receives as
    properties (``zmq_msg_gets``; pyzmq's ``Frame.get``), kept here once per
    connection instead of once per message.

    Attributes:
        mechanism: ``"NULL"``, ``"PLAIN"`` or ``"CURVE"``.
        user_id: the User-Id the ZAP handler gave the peer (RFC 27): for
            :class:`zmtp.auth.Authenticator`, the PLAIN username or the CURVE client's
            public key in Z85; empty without a handler.
        address: libzmq's ``Peer-Address``: the IP for tcp, ``localhost:uid:gid:pid``
            for ipc, "" for inproc.
        endpoint: the endpoint the connection was accepted on or made to.
        socket_type: the peer's Socket-Type, if it sent one.
        identity: the peer's Identity property.
        properties: the metadata of the peer's handshake (Socket-Type, Identity, X-...)
            followed by the properties the ZAP handler attached (RFC 27), names
            case-insensitive.
    """

    mechanism: str = "NULL"
    user_id: bytes = b""
    address: str = ""
    endpoint: str = ""
    socket_type: SocketType | None = None
    identity: bytes = b""
    properties: Metadata = field(default_factory=Metadata)

    def get(self, name: str) -> str | None:
        """A property by name, as ``zmq_msg_gets`` gives it (text, or None if absent):
        ``"User-Id"`` (only when a ZAP handler set one), ``"Peer-Address"``, or any
        property of the handshake or the ZAP reply (``"Socket-Type"``, ``"X-Tenant"``).
        """
        key = name.lower()
        if key == "user-id":
            return _text(self.user_id) if self.user_id else None
        if key == "peer-address":
            return self.address or None
        value = self.properties.get(name)
        return None if value is None else _text(value)


def _text(value: bytes) -> str:
    # libzmq hands C strings out; undecodable octets survive a round trip this way.
    return value.decode("utf-8", "surrogateescape")


class Received(NamedTuple):
    """A whole message and who sent it (:meth:`zmtp.Socket.recv_message`)."""

    parts: list[bytes]
    peer: PeerInfo


#: What an inproc peer (no handshake) or an unknown one looks like.
NO_PEER_INFO = PeerInfo()

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
        "info",
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
        #: Who the peer is, as the handshake told (None over inproc).
        self.info: PeerInfo | None = None
        #: The handshake is complete (over inproc: the link is made).
        self.connected = False
        #: Per-type scratch space.
        self.state: Any = None

    def __repr__(self) -> str:
        return f"<Peer {self.id} {self.endpoint} rid={self.routing_id!r}>"
