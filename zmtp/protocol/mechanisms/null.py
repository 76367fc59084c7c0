"""The NULL mechanism (RFC 37 §"The NULL Security Mechanism").

Each side sends READY with its metadata as soon as the greetings are exchanged, without
waiting for the other (libzmq does the same, specs/libzmq-behaviour.md §2.3).  The
handshake is over when the peer's READY arrives.  An ERROR instead is the peer refusing
us; anything else is a protocol error.
"""

from __future__ import annotations

from ..commands import ERROR, READY, Command, encode_ready, parse_error
from ..errors import HandshakeError, PeerError
from ..metadata import DEFAULT_MAX_METADATA_SIZE, parse_properties
from .base import Mechanism, MechanismStatus

__all__ = ["NullMechanism"]


class NullMechanism(Mechanism):
    """No authentication, no encryption.

    Args:
        max_metadata_size: cap on the peer's READY properties.
    """

    name = b"NULL"

    def __init__(self, *, max_metadata_size: int = DEFAULT_MAX_METADATA_SIZE) -> None:
        super().__init__()
        self.max_metadata_size = max_metadata_size

    def start(self, properties: list[tuple[str, bytes]]) -> list[bytes]:
        return [encode_ready(properties)]

    def receive_command(self, command: Command) -> list[bytes]:
        if self.status is MechanismStatus.READY:
            raise HandshakeError(
                f"unexpected {command.name!r} after the NULL handshake completed",
                reason=b"Unexpected command",
            )
        if command.name == READY:
            self.peer_metadata = parse_properties(command.data, max_size=self.max_metadata_size)
            self.status = MechanismStatus.READY
            return []
        if command.name == ERROR:
            raise PeerError(parse_error(command.data))
        raise HandshakeError(
            f"expected READY or ERROR in the NULL handshake, got {command.name!r}",
            reason=b"Unexpected command",
        )
