"""Security mechanisms (RFC 23 §"Authentication and Confidentiality").

A mechanism is a sans-IO object that the connection machine feeds handshake commands
and asks for commands to send.  See :class:`~zmtp.protocol.mechanisms.base.Mechanism`.
"""

from .base import Mechanism, MechanismStatus
from .null import NullMechanism
from .plain import PlainClient, PlainCredentials, PlainServer

# CURVE (zmtp.protocol.mechanisms.curve) is not imported here: it needs PyNaCl, the
# ``curve`` extra, and NULL/PLAIN users need not install it.

__all__ = [
    "Mechanism",
    "MechanismStatus",
    "NullMechanism",
    "PlainClient",
    "PlainCredentials",
    "PlainServer",
]
