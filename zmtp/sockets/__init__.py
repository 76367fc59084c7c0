"""The trio socket layer: Context, sockets, engines, transports (tcp, ipc, inproc).

How it is put together (each module's docstring says more):

* :mod:`._context`: the Context, which owns sockets, their tasks and the inproc names;
* :mod:`._socket` (the application's API) on :mod:`._base` (peers, closing, and the
  socket's side of its contracts with engines, endpoints and inproc links);
* :mod:`._routing`: the routing strategies (load balancer, fair queue, distributor,
  routing table) that the socket types compose (:mod:`._balanced`: the load-balanced
  sending PUSH, DEALER and REQ share); the types themselves are in
  :mod:`._pipeline`, :mod:`._reqrep`, :mod:`._pair` and :mod:`._pubsub`, and
  :mod:`._registry` is their table;
* :mod:`._endpoints` (bind, connect, accept, reconnect), :mod:`._transports` (tcp and
  ipc, endpoint syntax) and :mod:`._inproc`;
* :mod:`._engine`: one connection (the sans-IO :class:`~zmtp.protocol.connection.
  Connection` on a stream), with :mod:`._reader`, :mod:`._fdio` (system calls),
  :mod:`._lending` and :mod:`._heartbeat`;
* :mod:`._pipe` (bounded message queues), :mod:`._peer`, :mod:`._monitor`,
  :mod:`._options`, :mod:`._tasks`, :mod:`._errors`, :mod:`._counters`.
"""

from ._context import Context
from ._counters import SocketStatistics
from ._engine import HandshakeTimeout
from ._errors import InvalidStateError, NotSupportedError, UnroutableError
from ._heartbeat import HeartbeatTimeout
from ._monitor import EventType, Monitor, SocketEvent
from ._options import OPTIONS, OptionSpec, validate_option
from ._pair import Pair
from ._peer import Peer, PeerInfo, Received
from ._pipeline import Pull, Push
from ._pubsub import Pub, Sub, XPub, XSub
from ._reqrep import Dealer, Rep, Req, Router
from ._socket import Socket
from ._transports import (
    Endpoint,
    Listening,
    open_listener,
    open_stream,
    parse_endpoint,
    peer_address,
)

__all__ = [
    "OPTIONS",
    "Context",
    "Dealer",
    "Endpoint",
    "EventType",
    "HandshakeTimeout",
    "HeartbeatTimeout",
    "InvalidStateError",
    "Listening",
    "Monitor",
    "NotSupportedError",
    "OptionSpec",
    "Pair",
    "Peer",
    "PeerInfo",
    "Pub",
    "Pull",
    "Push",
    "Received",
    "Rep",
    "Req",
    "Router",
    "Socket",
    "SocketEvent",
    "SocketStatistics",
    "Sub",
    "UnroutableError",
    "XPub",
    "XSub",
    "open_listener",
    "open_stream",
    "parse_endpoint",
    "peer_address",
    "validate_option",
]
