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

A mechanism that must ask an authenticator (ZAP, RFC 27) sets its status to
``WAITING_FOR_ZAP`` and :attr:`Mechanism.zap_credentials` to what the request carries;
the machine reports that as an event, holds incoming commands, and feeds the answer back
with :meth:`Mechanism.zap_reply` (or :meth:`Mechanism.zap_unavailable` when no handler
is bound), sending what they return.  When a mechanism asks follows libzmq 4.3.5
(specs/libzmq-behaviour.md §4.3): NULL only with a ZAP domain, PLAIN's server always,
CURVE's server unless ``zap_enforce_domain`` is set without a domain.  Which of them
asks is decided by whoever builds the mechanism (``zap=True``); what an absent handler
means is the mechanism's own rule.

Mechanisms that protect traffic (CURVE: :attr:`Mechanism.encrypts`) also transform each
frame after the handshake (``encode_message``, ``encode_command``, ``decode_frame``);
the connection keeps a separate, unwrapped fast path for those that do not (NULL,
PLAIN), so their traffic pays nothing for the hook.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable, Iterable, Sequence
from typing import ClassVar, TypeAlias

from .._buffers import BytesLike
from ..commands import Command
from ..errors import AuthenticationFailed, LocalProtocolError, PeerError, ProtocolError
from ..metadata import NO_METADATA, Metadata

__all__ = [
    "INNER_COMMAND",
    "INNER_MORE",
    "ZAP_STATUS_CODES",
    "Mechanism",
    "MechanismStatus",
    "PartAllocator",
]

#: ``allocate(size) -> (part, address)``: a new, private ``bytes`` of ``size`` octets
#: not yet written, and the address of the octet just before its first, which may be
#: written for a moment if it is put back to 0xFF at once.  A mechanism that opens
#: sealed parts may open a large one straight into it, its inner flags octet landing
#: on that octet (zmtp._native.bodies.opened_part; the socket layer passes it in).
PartAllocator: TypeAlias = Callable[[int], tuple[bytes, int]]

#: The flags octet inside a sealed part (libzmq's msg_t flags, not the frame's: RFC 26
#: reserves bit 1, libzmq uses it for commands; specs/libzmq-behaviour.md §4.2).
INNER_MORE = 0x01
INNER_COMMAND = 0x02

#: The status codes a ZAP reply may carry (RFC 27): success, temporary failure (close
#: without a word), authentication failure, internal error.
ZAP_STATUS_CODES = frozenset({b"200", b"300", b"400", b"500"})


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

    # Slots: a mechanism object lives as long as its connection, and NULL's (the
    # common case) is kept small for the idle-connection memory figure (issue 15).
    __slots__ = ("peer_metadata", "status", "user_id", "zap_credentials", "zap_metadata")

    #: The mechanism field of the greeting (RFC 23), upper-case ASCII.
    name: ClassVar[bytes]
    #: Value of the greeting's as-server field.  Informational only: libzmq always
    #: sends 0 and never reads it (specs/libzmq-behaviour.md §1.4).
    as_server: ClassVar[bool] = False
    #: Whether a handshake failure of ours is answered with ERROR.  PLAIN and CURVE
    #: clients never send one (RFC 24, RFC 26 §"ERROR"); NULL peers and servers do.
    sends_errors: ClassVar[bool] = True
    #: Whether traffic goes through the mechanism after the handshake (CURVE).
    encrypts: ClassVar[bool] = False

    @property
    def refuses_legacy_peers(self) -> bool:
        """Whether a ZMTP 2.0 or 1.0 peer must be refused (no downgrade): serving it
        would skip the handshake, and with it authentication.  True for every
        mechanism but NULL, and for NULL with a ZAP domain (libzmq's
        ``zap_enabled()``: a mechanism other than NULL, or a domain)."""
        return True

    def __init__(self) -> None:
        self.status = MechanismStatus.HANDSHAKING
        self.peer_metadata: Metadata | None = None
        #: The User-Id the authenticator assigned to the peer (RFC 27), if any.
        self.user_id: bytes = b""
        #: The properties a ZAP reply attached to the peer (RFC 27 metadata).  Shared
        #: and read-only until a reply sets its own: an idle connection is kept small.
        self.zap_metadata: Metadata = NO_METADATA
        #: While ``WAITING_FOR_ZAP``: the credential frames of the request (none for
        #: NULL; username and password for PLAIN; the client's public key for CURVE).
        self.zap_credentials: tuple[bytes, ...] | None = None

    # ------------------------------------------------------------------ ZAP

    def _ask_zap(self, credentials: tuple[bytes, ...]) -> None:
        """Enter WAITING_FOR_ZAP with ``credentials`` for the request."""
        self.zap_credentials = credentials
        self.status = MechanismStatus.WAITING_FOR_ZAP

    def _zap_answered(self) -> None:
        if self.status is not MechanismStatus.WAITING_FOR_ZAP:
            raise LocalProtocolError(f"no ZAP request is outstanding ({self.status.value})")
        self.zap_credentials = None
        self.status = MechanismStatus.HANDSHAKING

    def zap_reply(
        self, status_code: bytes, user_id: bytes = b"", metadata: Metadata | None = None
    ) -> list[bytes]:
        """Feed the authenticator's answer; return the command frames to send.

        ``200`` continues the handshake where it stopped; ``300`` fails silently;
        ``400`` and ``500`` fail with an ERROR carrying the code (libzmq's rule).

        Raises:
            AuthenticationFailed: the request was refused (see :attr:`~.status`).
            LocalProtocolError: no request is outstanding, or an invalid status code.
        """
        if status_code not in ZAP_STATUS_CODES:
            raise LocalProtocolError(f"invalid ZAP status code {status_code!r}")
        self._zap_answered()
        if status_code != b"200":
            raise AuthenticationFailed(
                f"the ZAP handler refused the {self.name.decode()} peer with "
                f"{status_code.decode()}",
                reason=status_code,
                status=status_code,
            )
        self.user_id = user_id
        self.zap_metadata = metadata if metadata is not None else NO_METADATA
        return self._zap_accepted()

    def zap_unavailable(self) -> list[bytes]:
        """No ZAP handler is bound: apply the mechanism's rule for that case (libzmq's:
        accept unless ``zap_enforce_domain``; PLAIN refuses); return frames to send.

        Raises:
            AuthenticationUnavailable: the rule says refuse.
        """
        self._zap_answered()
        return self._zap_accepted()

    def _zap_accepted(self) -> list[bytes]:
        """The authenticator accepted (or was not needed): continue the handshake."""
        raise LocalProtocolError(f"the {self.name.decode()} mechanism does not ask ZAP")

    # ------------------------------------------------------------------ traffic
    # Only for mechanisms that set ``encrypts`` (CURVE); the connection calls them
    # for every frame after the handshake.

    def encode_messages_sized(
        self, messages: Iterable[Sequence[BytesLike]]
    ) -> tuple[list[bytearray | memoryview], int]:
        """Seal whole messages into frames; return them and the parts' total size."""
        raise LocalProtocolError(f"the {self.name.decode()} mechanism does not seal traffic")

    def encode_command(self, command_frame_body: bytes) -> bytes:
        """Seal one command body (name-size, name, data) into a frame."""
        raise LocalProtocolError(f"the {self.name.decode()} mechanism does not seal traffic")

    def decode_frame(self, body: BytesLike) -> tuple[bytes, bool, bool]:
        """Open one received frame body: ``(data, more, command)``."""
        raise LocalProtocolError(f"the {self.name.decode()} mechanism does not seal traffic")

    def use_part_allocator(self, allocate: PartAllocator | None) -> None:
        """Open large sealed parts straight into what ``allocate`` gives (see
        :data:`PartAllocator`), or not (None).  Mechanisms that do not seal ignore it."""
        del allocate  # nothing is opened here

    def open_spans(
        self,
        data: bytes | memoryview,
        spans: Sequence[int],
        partial: list[bytes],
        stride: int = 0,
    ) -> tuple[list[list[bytes] | bytes], list[bytes], bool, ProtocolError | None]:
        """Open the frame bodies at ``spans`` (start, end, ...) in ``data`` straight
        into ``(items, partial, commands, error)``: completed messages and command
        bodies in order, the message in progress, whether a command is among the
        items, and the first failure or None.  ``stride``: nonzero if the spans are
        one run of equal frames that far apart (FrameDecoder.spans_stride)."""
        raise LocalProtocolError(f"the {self.name.decode()} mechanism does not seal traffic")

    @abc.abstractmethod
    def start(self, properties: list[tuple[str, bytes]]) -> list[bytes]:
        """Begin the handshake right after the greeting.

        Args:
            properties: our metadata (Socket-Type, Identity, X-...), in wire order.

        Returns:
            command frames to send now (possibly none).
        """

    def refusal_in(self, body: bytes) -> PeerError | None:
        """The peer's refusal in a frame body that does not parse as a command, if this
        mechanism knows such a form (libzmq's PLAIN ERROR, see PlainClient); else
        None, and the frame is the protocol error it looks like."""
        return None

    @abc.abstractmethod
    def receive_command(self, command: Command) -> list[bytes]:
        """Process one handshake command from the peer.

        Returns:
            command frames to send in reply.

        Raises:
            HandshakeError: the command is unexpected or malformed.
            PeerError: the peer sent ERROR.
        """
