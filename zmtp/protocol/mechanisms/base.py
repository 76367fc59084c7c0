"""The interface every security mechanism implements.

Theory of operation
-------------------
The connection machine (``zmtp.protocol.connection``) owns the greeting, framing and traffic
phases; a mechanism owns only the handshake between them.  Once the greetings are
exchanged the machine calls :meth:`Mechanism.start` and sends what it returns; then it
hands each incoming command to :meth:`Mechanism.receive_command` and sends what that
returns, until :attr:`Mechanism.status` is ``READY``.  A multi-step handshake (PLAIN's
HELLO/WELCOME/INITIATE/READY, CURVE's four boxes) is just more turns of the same loop;
its states are the mechanism's business, named after the next action, libzmq-style
(``WAITING_FOR_WELCOME``).

A mechanism that must ask an authenticator (ZAP, RFC 27) returns ``WAITING_FOR_ZAP`` as
its status; the machine then holds incoming commands until the answer is fed back.

Mechanisms that protect traffic (CURVE) will also transform each frame after the
handshake; the connection keeps a separate, unwrapped fast path for those that do not
(NULL, PLAIN), so their traffic pays nothing for the hook.
"""

from __future__ import annotations

import abc
import enum
from typing import ClassVar

from ..commands import Command
from ..metadata import Metadata

__all__ = ["Mechanism", "MechanismStatus"]


class MechanismStatus(enum.Enum):
    """Where a mechanism's handshake stands."""

    HANDSHAKING = "handshaking"
    WAITING_FOR_ZAP = "waiting_for_zap"
    READY = "ready"


class Mechanism(abc.ABC):
    """A security mechanism's handshake, sans-IO.

    Subclasses set :attr:`name` (the greeting's mechanism field) and implement
    :meth:`start` and :meth:`receive_command`.  Both return whole encoded command frames
    to send, in order.  When the handshake is done they set :attr:`peer_metadata` and
    :attr:`status` to ``READY``.
    """

    #: The mechanism field of the greeting (RFC 23), upper-case ASCII.
    name: ClassVar[bytes]
    #: Value of the greeting's as-server field.  Informational only: libzmq always
    #: sends 0 and never reads it (specs/libzmq-behaviour.md §1.4).
    as_server: bool = False

    def __init__(self) -> None:
        self.status = MechanismStatus.HANDSHAKING
        self.peer_metadata: Metadata | None = None
        #: The User-Id the authenticator assigned to the peer (RFC 27), if any.
        self.user_id: bytes = b""

    @abc.abstractmethod
    def start(self, properties: list[tuple[str, bytes]]) -> list[bytes]:
        """Begin the handshake right after the greeting.

        Args:
            properties: our metadata (Socket-Type, Identity, X-...), in wire order.

        Returns:
            command frames to send now (possibly none).
        """

    @abc.abstractmethod
    def receive_command(self, command: Command) -> list[bytes]:
        """Process one handshake command from the peer.

        Returns:
            command frames to send in reply.

        Raises:
            HandshakeError: the command is unexpected or malformed.
            PeerError: the peer sent ERROR.
        """
