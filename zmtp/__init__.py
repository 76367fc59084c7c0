"""zmtp: a pure-Python implementation of ZMTP 3.1, the ZeroMQ wire protocol.

The sans-IO core (greeting, framing, commands, metadata, mechanisms and the
:class:`Connection` state machine) imports nothing but the standard library.
"""

from .connection import Connection, Phase
from .errors import (
    AuthenticationFailed,
    GreetingError,
    HandshakeError,
    IncompatibleSocketType,
    LocalProtocolError,
    MechanismMismatch,
    MessageTooLarge,
    PeerError,
    ProtocolError,
    RemoteProtocolError,
    VersionError,
    ZMTPError,
)
from .events import (
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
from .greeting import Greeting
from .mechanisms import Mechanism, MechanismStatus, NullMechanism
from .metadata import Metadata
from .socket_types import SocketType

__version__ = "0.1.0"

__all__ = [
    "AuthenticationFailed",
    "Cancel",
    "Connection",
    "ConnectionClosed",
    "ErrorReceived",
    "Event",
    "Greeting",
    "GreetingError",
    "GreetingReceived",
    "HandshakeComplete",
    "HandshakeError",
    "IncompatibleSocketType",
    "LocalProtocolError",
    "Mechanism",
    "MechanismMismatch",
    "MechanismStatus",
    "MessageTooLarge",
    "Messages",
    "Metadata",
    "NullMechanism",
    "PeerError",
    "Phase",
    "Ping",
    "Pong",
    "ProtocolError",
    "RemoteProtocolError",
    "SocketType",
    "Subscribe",
    "UnknownCommand",
    "VersionError",
    "ZMTPError",
]
