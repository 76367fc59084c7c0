"""Events that :class:`zmtp.Connection` returns from ``receive_data``.

Frozen, slotted dataclasses, compared by value.  Data messages come batched in
:class:`Messages`: one event carries every message completed by one chunk of input, so
the layer above can queue them with a single ``extend`` instead of dispatching per
message.  Order is preserved: a command arriving between two messages splits the batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .greeting import Greeting, LegacyGreeting
from .metadata import NO_METADATA, Metadata
from .socket_types import SocketType

__all__ = [
    "AuthenticationRequested",
    "Cancel",
    "ConnectionClosed",
    "ErrorReceived",
    "Event",
    "GreetingReceived",
    "HandshakeComplete",
    "Messages",
    "Ping",
    "Pong",
    "Subscribe",
    "UnknownCommand",
]


@dataclass(frozen=True, slots=True)
class GreetingReceived:
    """The peer's greeting has arrived and was accepted.

    ``greeting`` is the 64-byte :class:`~zmtp.protocol.greeting.Greeting` of a 3.x peer,
    or for a ZMTP 2.0/1.0 peer a :class:`~zmtp.protocol.greeting.LegacyGreeting` (its
    revision and socket-type octets, or how an unversioned 1.0 peer was recognised).
    """

    greeting: Greeting | LegacyGreeting


@dataclass(frozen=True, slots=True)
class HandshakeComplete:
    """The security handshake succeeded; traffic may flow.

    Attributes:
        version: the peer's ``(major, minor)`` as announced (we serve 3.0 or 3.1), or
            ``(2, 0)`` / ``(1, 0)`` for the framing spoken with an old peer.
        metadata: every property the peer sent (none from a 2.0/1.0 peer).
        socket_type: the peer's Socket-Type, or None if it sent none (libzmq allows
            that); from a 2.0 peer its socket-type octet, None for a 1.0 peer.
        identity: the peer's Identity property, or a 2.0/1.0 peer's identity frame
            (empty if absent).
    """

    version: tuple[int, int]
    metadata: Metadata
    socket_type: SocketType | None
    identity: bytes = b""
    #: The security mechanism of the connection (``b"NULL"``, ``b"PLAIN"``, ``b"CURVE"``).
    mechanism: bytes = b"NULL"
    #: The User-Id the ZAP handler gave the peer (RFC 27); empty without one.
    user_id: bytes = b""
    #: The properties the ZAP handler attached to the peer (RFC 27 metadata frame).
    zap_metadata: Metadata = NO_METADATA


@dataclass(frozen=True, slots=True)
class AuthenticationRequested:
    """Our mechanism needs the authenticator's verdict (RFC 27) before going on.

    Answer with :meth:`~zmtp.protocol.connection.Connection.zap_reply` (or
    :meth:`~zmtp.protocol.connection.Connection.zap_unavailable` when no handler is
    bound); until then the connection holds whatever the peer sends.

    Attributes:
        mechanism: ``b"NULL"``, ``b"PLAIN"`` or ``b"CURVE"``.
        credentials: the request's credential frames: none for NULL, username and
            password for PLAIN (never shown in ``repr``), the client's 32-octet
            public key for CURVE.
    """

    mechanism: bytes
    credentials: tuple[bytes, ...] = field(default=(), repr=False)


@dataclass(frozen=True, slots=True)
class Messages:
    """One or more complete multipart messages, in arrival order."""

    messages: list[list[bytes]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Subscribe:
    """A SUBSCRIBE command (ZMTP 3.1).  Legacy ``\\x01topic`` frames stay data."""

    topic: bytes


@dataclass(frozen=True, slots=True)
class Cancel:
    """A CANCEL command (ZMTP 3.1).  Legacy ``\\x00topic`` frames stay data."""

    topic: bytes


@dataclass(frozen=True, slots=True)
class Ping:
    """A PING; the connection has already queued the PONG.

    Attributes:
        ttl: deciseconds the peer may stay silent before we should drop it (0: none).
        context: up to 16 octets echoed in the PONG.
    """

    ttl: int
    context: bytes = b""


@dataclass(frozen=True, slots=True)
class Pong:
    """A PONG answering one of our PINGs."""

    context: bytes = b""


@dataclass(frozen=True, slots=True)
class UnknownCommand:
    """A command with no meaning in the traffic phase (libzmq ignores these)."""

    name: bytes
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class ErrorReceived:
    """The peer sent ERROR; the connection is closed."""

    reason: bytes


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed the stream.

    Attributes:
        clean: False if it closed in the middle of a frame, a message or the handshake;
            whatever was incomplete is discarded (multipart messages are atomic).
    """

    clean: bool = True


Event = (
    GreetingReceived
    | HandshakeComplete
    | Messages
    | Subscribe
    | Cancel
    | Ping
    | Pong
    | UnknownCommand
    | ErrorReceived
    | ConnectionClosed
    | AuthenticationRequested
)
