"""The NULL mechanism (RFC 37 §"The NULL Security Mechanism").

Each side sends READY with its metadata as soon as the greetings are exchanged, without
waiting for the other (libzmq does the same, specs/libzmq-behaviour.md §2.3).  The
handshake is over when the peer's READY arrives.  An ERROR instead is the peer refusing
us; anything else is a protocol error.
"""

from __future__ import annotations

from ..commands import ERROR, READY, Command, encode_ready, parse_error
from ..errors import AuthenticationUnavailable, HandshakeError, PeerError
from ..metadata import DEFAULT_MAX_METADATA_SIZE, parse_properties
from .base import Mechanism, MechanismStatus

__all__ = ["NullMechanism"]


class NullMechanism(Mechanism):
    """No authentication, no encryption.

    Args:
        max_metadata_size: cap on the peer's READY properties.
        zap: ask the authenticator before sending READY (a ZAP domain is set).
        zap_enforce: with ``zap``, refuse the peer when no handler is bound.
    """

    __slots__ = ("_properties", "max_metadata_size", "zap", "zap_enforce")

    name = b"NULL"

    def __init__(
        self,
        *,
        max_metadata_size: int = DEFAULT_MAX_METADATA_SIZE,
        zap: bool = False,
        zap_enforce: bool = False,
    ) -> None:
        super().__init__()
        self.max_metadata_size = max_metadata_size
        self.zap = zap
        self.zap_enforce = zap_enforce
        # Our READY's properties, kept only while ZAP decides (start() with zap).
        self._properties: list[tuple[str, bytes]] | None = None

    @property
    def refuses_legacy_peers(self) -> bool:
        # A ZAP domain means the peer must be authenticated: a 2.0/1.0 peer never
        # would be (libzmq refuses it too).
        return self.zap

    def start(self, properties: list[tuple[str, bytes]]) -> list[bytes]:
        if self.zap:
            self._properties = list(properties)
            self._ask_zap(())
            return []
        return [encode_ready(properties)]

    def zap_unavailable(self) -> list[bytes]:
        if self.zap_enforce:
            self._zap_answered()
            raise AuthenticationUnavailable(
                "a ZAP domain is set with zap_enforce_domain, and no ZAP handler is bound "
                "at inproc://zeromq.zap.01",
                reason=b"No ZAP handler",
            )
        return super().zap_unavailable()

    def _zap_accepted(self) -> list[bytes]:
        properties, self._properties = self._properties or [], None
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
