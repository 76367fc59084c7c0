"""zmtp: a pure-Python implementation of ZMTP 3.1, the ZeroMQ wire protocol.

Three layers:

* :mod:`zmtp.protocol`: the sans-IO core (greeting, framing, commands, metadata,
  mechanisms, the :class:`Connection` state machine, subscription matching); it
  imports nothing but the standard library, and PyNaCl for CURVE (the ``curve`` extra);
* :mod:`zmtp.sockets`: the trio layer (:class:`Context`, :class:`Socket` and the socket
  types, engines, transports);
* :mod:`zmtp.tools`: the wire-study tools (trace, decode, tap; ``python -m zmtp``).

This module re-exports the public names of the first two.
"""

from typing import Final

from . import z85 as z85  # zmtp.z85.encode/decode (RFC 32)
from ._native import enabled as native_enabled
from ._native.allocator import tune_allocator
from .protocol.connection import Connection, Phase
from .protocol.errors import (
    AuthenticationFailed,
    AuthenticationUnavailable,
    CurveError,
    CurveMessageError,
    DecryptionFailed,
    GreetingError,
    HandshakeError,
    IncompatibleSocketType,
    LocalProtocolError,
    MechanismMismatch,
    MessageTooLarge,
    NonceError,
    PeerError,
    ProtocolError,
    RemoteProtocolError,
    VersionError,
    ZMTPError,
)
from .protocol.events import (
    AuthenticationRequested,
    Cancel,
    ConnectionClosed,
    ErrorReceived,
    Event,
    GreetingReceived,
    HandshakeComplete,
    Messages,
    Ping,
    Pong,
    Subscribe,
    UnknownCommand,
)
from .protocol.greeting import Greeting
from .protocol.keys import curve_keypair, curve_public
from .protocol.mechanisms import Mechanism, MechanismStatus, NullMechanism
from .protocol.metadata import Metadata
from .protocol.socket_types import SocketType
from .protocol.zap import ZapError
from .sockets import (
    Context,
    Endpoint,
    EventType,
    HandshakeTimeout,
    HeartbeatTimeout,
    InvalidStateError,
    Monitor,
    NotSupportedError,
    PeerInfo,
    Received,
    Socket,
    SocketEvent,
    SocketStatistics,
    UnroutableError,
    parse_endpoint,
    validate_option,
)

__version__ = "0.1.0"

# The exceptions are raised from deep inside (zmtp.protocol.errors, zmtp.sockets._errors,
# ...) but are public here: show them as zmtp.X in tracebacks and reprs, and pickle
# them by that name, which stays valid whatever moves inside the package.
for _exc in (
    AuthenticationFailed,
    AuthenticationUnavailable,
    CurveError,
    CurveMessageError,
    DecryptionFailed,
    GreetingError,
    HandshakeError,
    HandshakeTimeout,
    HeartbeatTimeout,
    IncompatibleSocketType,
    InvalidStateError,
    LocalProtocolError,
    MechanismMismatch,
    MessageTooLarge,
    NonceError,
    NotSupportedError,
    PeerError,
    ProtocolError,
    RemoteProtocolError,
    UnroutableError,
    VersionError,
    ZMTPError,
    ZapError,
):
    _exc.__module__ = __name__
del _exc

# pyzmq-style constants: zmtp.ROUTER is zmtp.SocketType.ROUTER.
PAIR: Final = SocketType.PAIR
PUB: Final = SocketType.PUB
SUB: Final = SocketType.SUB
REQ: Final = SocketType.REQ
REP: Final = SocketType.REP
DEALER: Final = SocketType.DEALER
ROUTER: Final = SocketType.ROUTER
PULL: Final = SocketType.PULL
PUSH: Final = SocketType.PUSH
XPUB: Final = SocketType.XPUB
XSUB: Final = SocketType.XSUB

__all__ = [
    "DEALER",
    "PAIR",
    "PUB",
    "PULL",
    "PUSH",
    "REP",
    "REQ",
    "ROUTER",
    "SUB",
    "XPUB",
    "XSUB",
    "AuthenticationFailed",
    "AuthenticationRequested",
    "AuthenticationUnavailable",
    "Cancel",
    "Connection",
    "ConnectionClosed",
    "Context",
    "CurveError",
    "CurveMessageError",
    "DecryptionFailed",
    "Endpoint",
    "ErrorReceived",
    "Event",
    "EventType",
    "Greeting",
    "GreetingError",
    "GreetingReceived",
    "HandshakeComplete",
    "HandshakeError",
    "HandshakeTimeout",
    "HeartbeatTimeout",
    "IncompatibleSocketType",
    "InvalidStateError",
    "LocalProtocolError",
    "Mechanism",
    "MechanismMismatch",
    "MechanismStatus",
    "MessageTooLarge",
    "Messages",
    "Metadata",
    "Monitor",
    "NonceError",
    "NotSupportedError",
    "NullMechanism",
    "PeerError",
    "PeerInfo",
    "Phase",
    "Ping",
    "Pong",
    "ProtocolError",
    "Received",
    "RemoteProtocolError",
    "Socket",
    "SocketEvent",
    "SocketStatistics",
    "SocketType",
    "Subscribe",
    "UnknownCommand",
    "UnroutableError",
    "VersionError",
    "ZMTPError",
    "ZapError",
    "curve_keypair",
    "curve_public",
    "native_enabled",
    "parse_endpoint",
    "tune_allocator",
    "validate_option",
]
