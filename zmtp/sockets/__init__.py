"""The trio layer: Context, sockets, transports (tcp, ipc, inproc)."""

from ._context import Context
from ._engine import HandshakeTimeout, HeartbeatTimeout
from ._monitor import EventType, Monitor, SocketEvent
from ._pubsub import Pub, Sub, XPub, XSub
from ._socket import InvalidStateError, NotSupportedError, Peer, Socket, UnroutableError
from ._types import Dealer, Pair, Pull, Push, Rep, Req, Router

__all__ = [
    "Context",
    "Dealer",
    "EventType",
    "HandshakeTimeout",
    "HeartbeatTimeout",
    "InvalidStateError",
    "Monitor",
    "NotSupportedError",
    "Pair",
    "Peer",
    "Pub",
    "Pull",
    "Push",
    "Rep",
    "Req",
    "Router",
    "Socket",
    "SocketEvent",
    "Sub",
    "UnroutableError",
    "XPub",
    "XSub",
]
