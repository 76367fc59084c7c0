"""The zmtp exception hierarchy.

``ZMTPError`` is the root of everything this package raises on purpose.  Protocol
violations are split, as in h11, into :class:`LocalProtocolError` (we were asked to do
something the protocol forbids) and :class:`RemoteProtocolError` (the peer sent bytes the
protocol forbids).  The sans-IO code raises the specific subclasses; the connection
machine marks every error that escapes :meth:`zmtp.Connection.receive_data` as remote.

Every protocol error carries ``reason``, the bytes to put in an ERROR command (RFC 37,
"Error Handling": at most 255 octets), and ``fatal``: whether a connecting socket should
stop reconnecting to that endpoint.  libzmq stops reconnecting after a protocol error
(specs/libzmq-behaviour.md §2.5), so most handshake failures are fatal, while an oversized message
only drops the connection.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthenticationFailed",
    "AuthenticationUnavailable",
    "CurveError",
    "CurveMessageError",
    "DecryptionFailed",
    "GreetingError",
    "HandshakeError",
    "IncompatibleSocketType",
    "LocalProtocolError",
    "MechanismMismatch",
    "MessageTooLarge",
    "NonceError",
    "PeerError",
    "ProtocolError",
    "RemoteProtocolError",
    "VersionError",
    "ZMTPError",
]


class ZMTPError(Exception):
    """Root of the zmtp exception hierarchy."""


class ProtocolError(ZMTPError):
    """A ZMTP protocol violation; never raised as itself.

    Attributes:
        reason: bytes suitable for the reason field of an ERROR command (<= 255 bytes).
        fatal: True if reconnecting with the same settings is pointless.
        frames_before: from a frame decoder, the frames completed in the same call
            before the bad header (they are valid and were sent before the error).
        items_before: the same from ``FrameDecoder.decode_messages``: messages and
            command bodies.
        events: from :meth:`zmtp.Connection.receive_data`, the events completed by the
            same call before the error; deliver them, then drop the connection, as
            libzmq delivers the messages that preceded a bad frame.
    """

    fatal: bool = True

    def __init__(self, message: str, *, reason: bytes | None = None) -> None:
        if type(self) is ProtocolError:
            raise TypeError("ProtocolError is abstract; raise a subclass")
        super().__init__(message)
        if reason is None:
            reason = message.encode("ascii", "replace")
        self.reason = reason[:255]
        self.frames_before: list[tuple[int, bytes]] = []
        self.items_before: list[Any] = []
        self.events: list[Any] = []

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception pickles as cls(*args), which the subclasses with keyword-only
        # arguments (VersionError, MessageTooLarge, ...) cannot take: rebuild the
        # instance from its args and attributes without calling __init__ again.
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[ProtocolError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    """Unpickle a :class:`ProtocolError` (see ``ProtocolError.__reduce__``)."""
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class LocalProtocolError(ProtocolError):
    """We tried to do something the protocol does not allow (a bug in the caller)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow."""


class GreetingError(RemoteProtocolError):
    """The peer's greeting is malformed (bad signature, not ZMTP at all)."""


class VersionError(GreetingError):
    """The peer speaks a ZMTP version we do not serve (major version below 3)."""

    def __init__(
        self, message: str, *, major: int, minor: int | None = None, reason: bytes | None = None
    ) -> None:
        super().__init__(message, reason=reason)
        self.major = major
        self.minor = minor


class MechanismMismatch(GreetingError):
    """The peer's security mechanism differs from ours (RFC 23 §"Authentication")."""

    def __init__(self, message: str, *, ours: bytes, theirs: bytes) -> None:
        super().__init__(message)
        self.ours = ours
        self.theirs = theirs


class HandshakeError(RemoteProtocolError):
    """The mechanism handshake failed: unexpected or malformed command or metadata.

    During the handshake the connection answers it with an ERROR command carrying
    ``reason`` (RFC 37 §"Error Handling"), unless :attr:`silent` is set or our
    mechanism is a PLAIN/CURVE client (RFC 24/26: a client never sends ERROR).
    """

    #: Close without an ERROR command (a ZAP 300 reply: RFC 27, as libzmq).
    silent: bool = False


class IncompatibleSocketType(HandshakeError):
    """The peer's Socket-Type cannot talk to ours (RFC 37 socket type table)."""

    def __init__(self, message: str, *, ours: str, theirs: str) -> None:
        super().__init__(message, reason=b"Invalid socket type")
        self.ours = ours
        self.theirs = theirs


class AuthenticationFailed(HandshakeError):
    """The peer (or our ZAP handler) refused the credentials.

    Attributes:
        status: the ZAP status code (``b"300"``, ``b"400"``, ``b"500"``) when an
            authenticator decided, else ``b""``.  A 300 (temporary failure) closes
            without an ERROR command (:attr:`HandshakeError.silent`); 400 and 500 are
            sent as ERROR with the code as reason, as libzmq does.
    """

    def __init__(self, message: str, *, reason: bytes | None = None, status: bytes = b"") -> None:
        super().__init__(message, reason=reason)
        self.status = status
        if status == b"300":
            self.silent = True


class AuthenticationUnavailable(AuthenticationFailed):
    """Authentication was required but no ZAP handler is bound in the context (a PLAIN
    server always needs one; NULL and CURVE only with ``zap_enforce_domain``).  The
    connection closes without ERROR, as libzmq's does (its monitor says
    HANDSHAKE_FAILED_NO_DETAIL)."""

    silent = True


class PeerError(RemoteProtocolError):
    """The peer sent an ERROR command; ``reason`` is what it said."""

    def __init__(self, reason: bytes) -> None:
        super().__init__(f"peer sent ERROR: {reason!r}", reason=reason)


class MessageTooLarge(RemoteProtocolError):
    """A frame announced a size above the configured limit.

    Raised from the frame header, before a byte of the body is buffered.
    """

    fatal = False

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"frame of {size} bytes exceeds the limit of {limit} bytes",
            reason=b"Message too large",
        )
        self.size = size
        self.limit = limit


class CurveError(RemoteProtocolError):
    """The peer's CURVE traffic (RFC 26) cannot be trusted; never raised as itself.

    Not a :class:`HandshakeError`: RFC 26 has a server answer a bad MESSAGE by closing,
    never with ERROR, and libzmq closes without ERROR on a bad handshake box too.
    """

    def __init__(self, message: str, *, reason: bytes | None = None) -> None:
        if type(self) is CurveError:
            raise TypeError("CurveError is abstract; raise a subclass")
        super().__init__(message, reason=reason)


class DecryptionFailed(CurveError):
    """A CURVE box did not open: altered, forged, replayed under another nonce, or sealed
    for other keys.  Its contents were not used."""


class NonceError(CurveError):
    """A CURVE short nonce did not increase: a replayed or reordered command."""


class CurveMessageError(CurveError):
    """A CURVE traffic frame that is not a well-formed MESSAGE (wrong name, too short)."""
