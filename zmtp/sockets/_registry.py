"""The table of socket classes: one place that knows every socket type."""

from __future__ import annotations

from ..protocol.socket_types import SocketType
from ._pair import Pair
from ._pipeline import Pull, Push
from ._pubsub import Pub, Sub, XPub, XSub
from ._reqrep import Dealer, Rep, Req, Router
from ._socket import Socket

__all__ = ["SOCKET_CLASSES"]

#: The class implementing each socket type.
SOCKET_CLASSES: dict[SocketType, type[Socket]] = {
    SocketType.PAIR: Pair,
    SocketType.PUB: Pub,
    SocketType.SUB: Sub,
    SocketType.REQ: Req,
    SocketType.REP: Rep,
    SocketType.DEALER: Dealer,
    SocketType.ROUTER: Router,
    SocketType.PULL: Pull,
    SocketType.PUSH: Push,
    SocketType.XPUB: XPub,
    SocketType.XSUB: XSub,
}
