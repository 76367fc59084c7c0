"""The per-connection ZMTP state machine (3.x, and 2.0/1.0 peers), sans-IO.

Theory of operation
-------------------
A :class:`Connection` is fed the bytes that arrive from a peer
(:meth:`~Connection.receive_data`) and returns the events they complete; whatever it
wants to send accumulates until taken with :meth:`~Connection.data_to_send`.  It does no
I/O and knows no clock: the trio layer (``zmtp.sockets``) moves the bytes and runs the
timers (handshake and heartbeat), exactly as ``trio.SSLStream`` wraps ``ssl.MemoryBIO``.

Phases, in order::

    GREETING --(peer greeting ok)--> HANDSHAKE --(mechanism READY)--> TRAFFIC
        \\________________________________\\___________________________\\--> CLOSED

* GREETING: our signature is queued the moment the object exists (never wait for the
  peer: libzmq waits for our signature, specs/libzmq-behaviour.md §1.2); our major
  version once the peer's signature shows it is versioned; the rest of our greeting
  once the peer's major version is 3 or more.  Mechanism mismatch or version byte 2
  fail here.
* Older peers branch off in GREETING (RFC 13/15, specs/libzmq-behaviour.md §8): an
  unversioned ZMTP 1.0 peer gets the routing id (our signature was its header), a
  versioned 2.0 (or 1.0-framing) peer our socket-type byte and identity frame; the
  codec becomes the 1.0 one (:mod:`~zmtp.protocol.legacy`) or stays the 3.x one (2.0
  frames are 3.x frames without commands).  HANDSHAKE then only waits for the peer's
  identity frame, and the same events follow as for 3.x: ``HandshakeComplete`` with
  version ``(2, 0)`` or ``(1, 0)``, the peer's socket-type byte and identity, then
  ``Messages``; subscriptions are ``\\x01``/``\\x00`` data frames both ways, and a PUB
  or XPUB receives a subscribe-all from an unversioned 1.0 peer, which filters itself.
  With a mechanism other than NULL, or NULL with a ZAP domain, both are refused (no
  downgrade: :attr:`Mechanism.refuses_legacy_peers`).
* HANDSHAKE: every frame must be a command, handed to the mechanism.  Data frames here
  are a protocol error (RFC 37; libzmq closes too).  When the mechanism is done, the
  peer's Socket-Type is checked against ours (RFC 37 table).
* TRAFFIC: data frames are assembled into whole multipart messages (a message is only
  delivered once its last frame is in: RFC 37 §"Messages"); PING is answered at once with
  PONG; SUBSCRIBE/CANCEL/PONG become events; other commands are reported and otherwise
  ignored, as libzmq ignores them.
* CLOSED: after EOF, an ERROR from the peer, or any protocol error.  Feeding more bytes
  raises :class:`~zmtp.protocol.errors.LocalProtocolError`.

Any :class:`~zmtp.protocol.errors.RemoteProtocolError` raised by ``receive_data`` moves the
connection to CLOSED; if it happened during the handshake an ERROR command with the
reason has been queued (RFC 37 §"Error Handling"), so the caller should flush
``data_to_send()`` before closing the transport.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import cast

from ._buffers import BytesLike as Buffer
from .commands import (
    CANCEL,
    ERROR,
    PING,
    PONG,
    SUBSCRIBE,
    encode_cancel,
    encode_command,
    encode_error,
    encode_ping,
    encode_pong,
    encode_subscribe,
    parse_command,
    parse_error,
    parse_ping,
)
from .errors import (
    HandshakeError,
    IncompatibleSocketType,
    LocalProtocolError,
    MechanismMismatch,
    PeerError,
    ProtocolError,
    RemoteProtocolError,
    VersionError,
)
from .events import (
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
from .framing import (
    FLAG_COMMAND,
    FLAG_MORE,
    BodyAllocator,
    FrameDecoder,
    OutputBuffer,
    SharedEncoding,
    portable_body,
)
from .greeting import VERSION_MAJOR, GreetingParser, LegacyGreeting, greeting_tail, signature
from .legacy import V1FrameDecoder, V1OutputBuffer, encode_v1_frame, v2_identity
from .mechanisms import Mechanism, MechanismStatus, NullMechanism
from .mechanisms.base import ZAP_STATUS_CODES, PartAllocator
from .metadata import NO_METADATA, Metadata, check_property_name
from .socket_types import SENDS_IDENTITY, SocketType, compatible

__all__ = ["Connection", "Phase"]


def _waiting_for_zap(mech: Mechanism) -> bool:
    # A function, so that a type checker does not narrow ``status`` across the call
    # that changed it.
    return mech.status is MechanismStatus.WAITING_FOR_ZAP


class Phase(enum.Enum):
    """Where a connection stands (see the module docstring)."""

    GREETING = "greeting"
    HANDSHAKE = "handshake"
    TRAFFIC = "traffic"
    CLOSED = "closed"


# Peers to which subscriptions go as \x01/\x00 data frames instead of commands.
_DATA_FRAME_SUBSCRIPTIONS = frozenset({(3, 0), (2, 0), (1, 0)})

# Properties that the connection itself sends; user metadata may not override them.
#: Batches that can key a SharedEncoding (kept as they are, measured with len()).
_SHAREABLE = frozenset({deque, list, tuple})

_RESERVED_PROPERTIES = frozenset({"socket-type", "identity", "resource", "user-id"})


class Connection:
    """One ZMTP connection, fed bytes and returning events.

    Args:
        socket_type: our socket type (sent as Socket-Type; the peer's is checked).
        mechanism: security mechanism; a fresh :class:`NullMechanism` by default.
        routing_id: our Identity, sent by REQ, DEALER and ROUTER only (<= 255 bytes).
        metadata: extra properties to send, names starting ``X-`` (RFC 37).
        max_message_size: largest frame accepted, in bytes; -1 for no limit.
        check_socket_type: enforce the RFC 37 compatibility table (default True).
        body_allocator: allocates the bodies of large incoming frames (see
            :data:`~zmtp.protocol.framing.BodyAllocator`); the portable
            :func:`~zmtp.protocol.framing.portable_body` by default.  The socket layer
            passes its Context's choice (zero-copy ``bytes`` unless native tricks are
            off).
        part_allocator: where a sealing mechanism (CURVE) may open large parts
            straight into (see :data:`~zmtp.protocol.mechanisms.base.PartAllocator`);
            None (the default): opened into a scratch buffer and copied out.  The
            socket layer passes its Context's choice, as for ``body_allocator``.

    Raises:
        ValueError: bad routing id or metadata.
        TypeError: wrong argument types.

    One class of some 430 lines, like h11's: the state machine's phases share the
    decoder, the mechanism and the output buffer, and the h11-style verbs are its whole
    public surface.
    """

    __slots__ = (
        "__weakref__",
        "_crypt",
        "_decoder",
        "_greeting",
        "_held",
        "_held_error",
        "_mechanism",
        "_out",
        "_part_allocator",
        "_partial",
        "_properties",
        "_routing_id",
        "check_socket_type",
        "error",
        "handshake",
        "legacy",
        "peer_version",
        "phase",
        "socket_type",
    )

    def __init__(
        self,
        socket_type: SocketType,
        *,
        mechanism: Mechanism | None = None,
        routing_id: bytes = b"",
        metadata: Mapping[str, bytes] | None = None,
        max_message_size: int = -1,
        check_socket_type: bool = True,
        body_allocator: BodyAllocator = portable_body,
        part_allocator: PartAllocator | None = None,
    ) -> None:
        self.socket_type = SocketType(socket_type)
        if not isinstance(routing_id, bytes):
            raise TypeError(f"routing_id must be bytes, not {type(routing_id).__name__}")
        if len(routing_id) > 255:
            raise ValueError(f"routing_id is at most 255 bytes, got {len(routing_id)}")
        if routing_id[:1] == b"\x00":
            # RFC 37 reserves ids starting with a zero byte for ROUTER-generated ones.
            raise ValueError("routing_id may not start with a zero byte (reserved)")
        if not isinstance(max_message_size, int) or max_message_size < -1:
            raise ValueError(f"max_message_size must be -1 or >= 0, got {max_message_size!r}")
        self._mechanism = mechanism if mechanism is not None else NullMechanism()
        self._properties: list[tuple[str, bytes]] = [("Socket-Type", self.socket_type.wire_name)]
        if self.socket_type in SENDS_IDENTITY:
            self._properties.append(("Identity", routing_id))
        for name, value in (metadata or {}).items():
            check_property_name(name)
            if name.lower() in _RESERVED_PROPERTIES:
                raise ValueError(f"property {name!r} is set by the connection itself")
            if not isinstance(value, bytes):
                raise TypeError(f"metadata value for {name!r} must be bytes")
            self._properties.append((name, value))
        self.check_socket_type = check_socket_type

        self.phase = Phase.GREETING
        self._routing_id = routing_id
        # Dropped once the handshake is done (see _handshake_done): nothing reads them
        # again, and an idle connection is kept small.
        self._greeting: GreetingParser | None = GreetingParser(legacy=True)
        self._decoder: FrameDecoder | V1FrameDecoder = FrameDecoder(
            max_message_size, body_allocator=body_allocator
        )
        self._part_allocator = part_allocator
        self._out = OutputBuffer()
        # Only the signature: the major version waits for the peer's (see the module
        # docstring), and the padding is what a ZMTP 1.0 peer needs it to be.
        self._out.write(signature(len(routing_id)))
        #: The legacy greeting of a ZMTP 2.0/1.0 peer (None for 3.x or not yet known).
        self.legacy: LegacyGreeting | None = None
        self._partial: list[bytes] = []
        # The mechanism that seals traffic (CURVE), once the handshake is complete.
        self._crypt: Mechanism | None = None
        # Handshake frames that arrived while the authenticator was deciding (RFC 27).
        self._held: list[tuple[int, bytes]] = []
        # A framing error found behind those frames: raised once they are processed.
        self._held_error: ProtocolError | None = None
        #: The peer's ``(major, minor)`` as announced, known once its greeting is in.
        self.peer_version: tuple[int, int] | None = None
        #: Set when the handshake completes.
        self.handshake: HandshakeComplete | None = None
        #: The error that closed the connection, if one did.
        self.error: ProtocolError | None = None

    # ------------------------------------------------------------------ properties

    @property
    def mechanism(self) -> Mechanism:
        """The security mechanism in use."""
        return self._mechanism

    @property
    def max_message_size(self) -> int:
        """Largest frame accepted from the peer (-1: unlimited)."""
        return self._decoder.max_frame_size

    @property
    def body_remaining(self) -> int:
        """Bytes still missing from a large incoming frame (a hint for read sizes)."""
        return self._decoder.body_remaining

    @property
    def encrypts(self) -> bool:
        """True once the handshake completed under a mechanism that seals the traffic
        (CURVE): every frame is then encrypted on the way out and opened on the way in."""
        return self._crypt is not None

    @property
    def legacy_subscriptions(self) -> bool:
        """True if the peer speaks ZMTP 3.0, 2.0 or 1.0 and needs ``\\x01``/``\\x00``
        data frames."""
        return self.peer_version in _DATA_FRAME_SUBSCRIPTIONS

    @property
    def supports_commands(self) -> bool:
        """False for a ZMTP 2.0 or 1.0 peer: no commands, hence no PING/PONG heartbeats
        (libzmq has none for them either, specs/libzmq-behaviour.md §8)."""
        return self.legacy is None

    # ------------------------------------------------------------------ input

    def receive_data(self, data: Buffer) -> list[Event]:
        """Feed bytes from the peer; return the events they complete, in order.

        An empty ``data`` means the peer closed its side (EOF) and yields
        :class:`~zmtp.protocol.events.ConnectionClosed`.

        Raises:
            RemoteProtocolError: (a subclass of) the peer broke the protocol; the
                connection is now CLOSED.  The events completed by the same call
                before the violation are in the exception's ``events``.
            LocalProtocolError: called after the connection closed.
        """
        if self.phase is Phase.CLOSED:
            raise LocalProtocolError("receive_data() on a closed connection")
        if self._held_error is not None and (data if type(data) is bytes else len(data)):
            return []  # bytes after a bad frame, while ZAP decides: never read
        events: list[Event] = []
        if not (data if type(data) is bytes else memoryview(data).nbytes):
            clean = (
                self.phase is Phase.TRAFFIC
                and self._decoder.at_frame_boundary
                and not self._partial
            )
            self._partial = []
            self.phase = Phase.CLOSED
            events.append(ConnectionClosed(clean=clean))
            return events
        return self._receive(data, events)

    def body_buffer(self) -> memoryview | None:
        """Where the rest of a large incoming message frame may be read to, if anywhere.

        While a large frame body is arriving, returns a writable view of its missing
        bytes, so that a transport can read straight into the body the application
        will get (no intermediate buffer, no copy); then it reports the count with
        :meth:`body_received`.  None when no such body is in progress.  Optional:
        :meth:`receive_data` accepts the same bytes too.
        """
        if self.phase is not Phase.TRAFFIC:
            return None
        return self._decoder.body_buffer()

    def body_received(self, n: int) -> list[Event]:
        """Account for ``n`` bytes written into :meth:`body_buffer`; return new events.

        Raises:
            ValueError: ``n`` does not fit the view :meth:`body_buffer` returned.
            RemoteProtocolError: as :meth:`receive_data`, when the completed frame
                breaks the protocol (a malformed command, say).
        """
        if self.phase is not Phase.TRAFFIC:
            raise LocalProtocolError(f"body_received() in phase {self.phase.name}")
        if not self._decoder.body_received(n):
            return []
        return self._receive(b"", [])  # the decoder delivers the completed body

    def _receive(self, data: Buffer, events: list[Event]) -> list[Event]:
        try:
            if self.phase is Phase.TRAFFIC:
                if self._crypt is not None:
                    # CURVE: every frame is one sealed part or command (RFC 26),
                    # opened where it lies in the received bytes.  (A CURVE peer
                    # speaks 3.x: the decoder is never the 1.0 one here.)
                    decoder = cast(FrameDecoder, self._decoder)
                    first, whole, spans = decoder.decode_spans(data)
                    self._receive_sealed(first, events, whole, spans, decoder.spans_stride)
                    return events
                # The hot path: one decoder pass yields whole messages; when no command
                # is among them (the usual case) the list becomes the event as it is.
                items, self._partial, commands = self._decoder.decode_messages(data, self._partial)
                if commands:
                    self._receive_items(items, events)
                elif items:
                    events.append(Messages(cast(list[list[bytes]], items)))
                return events
            if self.phase is Phase.GREETING:
                rest = self._receive_greeting(data, events)
                if not rest:  # greeting incomplete, or nothing after it
                    return events
                data = rest
            frames = self._decoder.decode(data)
            i = self._receive_handshake(frames, events)
            if i < len(frames):
                self._receive_traffic(frames[i:], events)
        except ProtocolError as exc:
            # Deliver what was complete before the error (RFC 37: messages are atomic,
            # and these were whole), then fail.  If one of those earlier frames is itself
            # a violation, that one is reported: it came first.
            error = exc
            items, exc.items_before = exc.items_before, []
            frames, exc.frames_before = exc.frames_before, []
            try:
                if frames and self.phase is Phase.HANDSHAKE:
                    # The frames before the bad one may finish the handshake (and then
                    # carry messages): they are processed in order, as libzmq does.
                    frames = frames[self._receive_handshake(frames, events) :]
                if self.phase is Phase.TRAFFIC:
                    if items:
                        self._receive_items(items, events)
                    if frames:
                        self._receive_traffic(frames, events)
            except ProtocolError as earlier:
                error = earlier
            if error is exc and self.awaiting_authentication:
                # Frames before the bad bytes are held for the authenticator's verdict
                # (RFC 27): in wire order they come first, so the error waits behind
                # them (fed in smaller pieces, the verdict could have come between).
                self._held_error = exc
                return events
            if error is exc and self.phase is Phase.CLOSED and self.error is not None:
                # The peer's ERROR command came before the bad bytes: in wire order the
                # connection ended there, and what followed it is never read (fed in
                # smaller pieces, it would not have been).  Report the ERROR, not the
                # bytes after it, so the outcome does not depend on segmentation.
                return events
            error.events = events
            self._fail(error)
            if error is exc:
                raise
            raise error from exc
        return events

    def _fail(self, exc: ProtocolError) -> None:
        # No ERROR to a 2.0/1.0 peer: those protocols have no commands.  None from a
        # PLAIN or CURVE client (RFC 24, RFC 26 §"ERROR"), nor for a ZAP 300 or a
        # missing ZAP handler (silent, as libzmq).  ERROR travels in clear.
        in_handshake = self.phase is Phase.HANDSHAKE and self.legacy is None
        if (
            isinstance(exc, HandshakeError)
            and in_handshake
            and not exc.silent
            and self._mechanism.sends_errors
        ):
            self._out.write(encode_error(exc.reason))
        self.phase = Phase.CLOSED
        self.error = exc

    def _receive_greeting(self, data: Buffer, events: list[Event]) -> bytes:
        """Feed greeting bytes; return what follows a complete greeting (else b"")."""
        parser = self._greeting
        assert parser is not None  # only in phase GREETING
        had_signature = parser.versioned is not None
        had_major = parser.major is not None
        rest = parser.feed(data)
        if not had_signature and parser.versioned:
            # libzmq's piece 2: the peer is versioned, so it may see our major version
            # (an unversioned 1.0 peer must not: it would be garbage in its stream).
            self._out.write(bytes((VERSION_MAJOR,)))
        if not had_major and parser.major is not None:
            if parser.major >= 3:
                # Now it is safe to commit to ZMTP 3.1 for the rest of our greeting.
                self._out.write(
                    greeting_tail(self._mechanism.name, as_server=self._mechanism.as_server)
                )
            else:
                self._answer_versioned_legacy(parser.major)
        if parser.legacy is not None:
            self._start_legacy(parser.legacy, events)
            return rest
        greeting = parser.greeting
        if greeting is None:
            return b""
        if greeting.mechanism != self._mechanism.name:
            raise MechanismMismatch(
                f"peer uses mechanism {greeting.mechanism!r}, we use {self._mechanism.name!r}",
                ours=self._mechanism.name,
                theirs=greeting.mechanism,
            )
        # RFC 23/37: talk our version to an equal or higher peer; 3.0 peers differ only
        # in subscriptions, which legacy_subscriptions accounts for.  The version is
        # kept as announced (a 4.x peer is served 3.1 all the same).
        self.peer_version = (greeting.major, greeting.minor)
        events.append(GreetingReceived(greeting))
        self.phase = Phase.HANDSHAKE
        mech = self._mechanism
        for frame in mech.start(self._properties):  # (mechanisms copy what they keep)
            self._out.write(frame)
        if mech.status is MechanismStatus.WAITING_FOR_ZAP:
            # NULL with a ZAP domain asks before its READY (specs/libzmq-behaviour.md §4.3).
            events.append(AuthenticationRequested(mech.name, mech.zap_credentials or ()))
        return rest

    # -- ZMTP 2.0 / 1.0 (specs/libzmq-behaviour.md §8) -----------------------------

    def _refuse_legacy(self, version: str, major: int) -> None:
        """No old peer under a security mechanism, nor under NULL with a ZAP domain:
        it would be a downgrade attack (the old protocols have no handshake to
        authenticate)."""
        mech = self._mechanism
        if mech.refuses_legacy_peers:
            what = (
                f"the {mech.name.decode()} mechanism"
                if mech.name != b"NULL"
                else "ZAP authentication (a zap_domain is set)"
            )
            raise VersionError(
                f"{version} peer refused: {what} needs ZMTP 3.0 or later "
                "(serving an older protocol would bypass it)",
                major=major,
                reason=b"Legacy peer refused",
            )

    def _answer_versioned_legacy(self, revision: int) -> None:
        """A versioned peer announced revision 0 or 1: our socket type and identity."""
        self._refuse_legacy("ZMTP 2.0" if revision == 1 else "ZMTP 1.0", revision)
        # One socket-type octet (XPUB = 9 and XSUB = 10 too, as libzmq sends them),
        # then our identity frame, in the framing the revision asks for.
        self._out.write(bytes((int(self.socket_type),)))
        if revision == 1:
            self._out.write(v2_identity(self._routing_id))
        else:
            self._out.write(encode_v1_frame(self._routing_id))

    def _start_legacy(self, legacy: LegacyGreeting, events: list[Event]) -> None:
        """The peer's legacy greeting is complete: switch codecs; await its identity."""
        if legacy.revision is None:
            self._refuse_legacy("ZMTP 1.0", 0)
            # Our signature was the header of a 1.0 frame of routing-id length + 1:
            # its body, the routing id itself, goes now.
            self._out.write(self._routing_id)
        if legacy.version == (1, 0):
            self._decoder = V1FrameDecoder(self._decoder.max_frame_size)
            self._out = V1OutputBuffer.taking_over(self._out)
        self.legacy = legacy
        self.peer_version = legacy.version
        events.append(GreetingReceived(legacy))
        self.phase = Phase.HANDSHAKE

    def _complete_legacy_handshake(self, identity: bytes, events: list[Event]) -> None:
        legacy = self.legacy
        assert legacy is not None
        peer_type: SocketType | None = None
        if legacy.socket_type is not None:
            # libzmq never checks this octet (specs/libzmq-behaviour.md §8): neither do we.
            try:
                peer_type = SocketType(legacy.socket_type)
            except ValueError:
                peer_type = None
        self.handshake = HandshakeComplete(
            version=legacy.version,
            metadata=NO_METADATA,
            socket_type=peer_type,
            identity=identity,
        )
        self._handshake_done()
        events.append(self.handshake)
        if legacy.revision is None and self.socket_type in (SocketType.PUB, SocketType.XPUB):
            # An unversioned 1.0 subscriber filters for itself and sends nothing
            # upstream: subscribe it to everything, as libzmq does.
            events.append(Messages([[b"\x01"]]))

    # -- handshake -------------------------------------------------------------------

    def _receive_handshake(self, frames: list[tuple[int, bytes]], events: list[Event]) -> int:
        """Feed handshake frames to the mechanism; return the index where traffic starts."""
        if self.legacy is not None:
            # An old peer's handshake is its identity frame, whatever its flags
            # (RFC 13: the identity's flags are not validated).
            if frames:
                self._complete_legacy_handshake(frames[0][1], events)
                return 1
            return 0
        mech = self._mechanism
        for i, (flags, body) in enumerate(frames):
            if mech.status is MechanismStatus.WAITING_FOR_ZAP:
                # RFC 27: nothing moves until the authenticator has answered.
                self._held.extend(frames[i:])
                return len(frames)
            if not flags & FLAG_COMMAND:
                raise HandshakeError(
                    "data frame received before the handshake completed",
                    reason=b"Data before handshake",
                )
            try:
                command = parse_command(body)
            except RemoteProtocolError:
                # Some peers' refusals do not parse (libzmq's PLAIN ERROR): the
                # mechanism knows its own.
                refusal = mech.refusal_in(body)
                if refusal is None:
                    raise
                self._peer_error(refusal, events)
                return len(frames)
            try:
                replies = mech.receive_command(command)
            except PeerError as exc:
                self._peer_error(exc, events)
                return len(frames)
            for frame in replies:
                self._out.write(frame)
            if _waiting_for_zap(mech):
                events.append(AuthenticationRequested(mech.name, mech.zap_credentials or ()))
            elif mech.status is MechanismStatus.READY:
                self._complete_handshake(events)
                return i + 1
        return len(frames)

    def _peer_error(self, exc: PeerError, events: list[Event]) -> None:
        self.phase = Phase.CLOSED
        self.error = exc
        events.append(ErrorReceived(exc.reason))

    # -- ZAP (RFC 27) ----------------------------------------------------------------

    @property
    def awaiting_authentication(self) -> bool:
        """True while the mechanism waits for the authenticator (see
        :class:`~zmtp.protocol.events.AuthenticationRequested`)."""
        return (
            self.phase is Phase.HANDSHAKE
            and self._mechanism.status is MechanismStatus.WAITING_FOR_ZAP
        )

    def zap_reply(
        self, status_code: bytes, user_id: bytes = b"", metadata: Metadata | None = None
    ) -> list[Event]:
        """Feed the ZAP handler's answer; return the events it lets through.

        ``200`` continues the handshake (and the frames held meanwhile are processed);
        ``300`` closes without an ERROR command; ``400`` and ``500`` queue an ERROR with
        the code as reason (libzmq's rule), then close.

        Raises:
            AuthenticationFailed: refused (the connection is now CLOSED; flush
                ``data_to_send()`` for the ERROR).
            RemoteProtocolError: a held frame broke the protocol, as ``receive_data``.
            LocalProtocolError: no request is outstanding, or an invalid status code.
        """
        self._check_awaiting()
        if status_code not in ZAP_STATUS_CODES:
            raise LocalProtocolError(f"invalid ZAP status code {status_code!r}")
        return self._zap_answered(lambda: self._mechanism.zap_reply(status_code, user_id, metadata))

    def zap_unavailable(self) -> list[Event]:
        """No ZAP handler is bound: the mechanism's own rule decides (libzmq's: NULL
        and CURVE go ahead unless ``zap_enforce_domain``; PLAIN refuses).

        Raises:
            AuthenticationUnavailable: refused, silently (no ERROR).
            RemoteProtocolError, LocalProtocolError: as :meth:`zap_reply`.
        """
        self._check_awaiting()
        return self._zap_answered(self._mechanism.zap_unavailable)

    def _check_awaiting(self) -> None:
        if not self.awaiting_authentication:
            raise LocalProtocolError(f"no ZAP request is outstanding (phase {self.phase.name})")

    def _zap_answered(self, answer: Callable[[], list[bytes]]) -> list[Event]:
        events: list[Event] = []
        try:
            for frame in answer():
                self._out.write(frame)
            mech = self._mechanism
            if mech.status is MechanismStatus.READY:
                self._complete_handshake(events)
            held, self._held = self._held, []
            late, self._held_error = self._held_error, None
            # The verdict may itself complete the handshake (a server's READY): then
            # everything held is traffic already.
            i = 0 if self.phase is Phase.TRAFFIC else self._receive_handshake(held, events)
            if i < len(held) and self.phase is Phase.TRAFFIC:
                self._receive_traffic(held[i:], events)
            if late is not None and self.phase is not Phase.CLOSED:
                raise late
        except ProtocolError as exc:
            exc.events = events
            self._fail(exc)
            raise
        return events

    def _complete_handshake(self, events: list[Event]) -> None:
        meta = self._mechanism.peer_metadata
        assert meta is not None
        peer_type: SocketType | None = None
        raw_type = meta.get("Socket-Type")
        if raw_type is not None:
            try:
                peer_type = SocketType.from_wire(raw_type)
            except ValueError:
                if self.check_socket_type:
                    raise IncompatibleSocketType(
                        f"peer announced unknown Socket-Type {raw_type!r}",
                        ours=self.socket_type.name,
                        theirs=raw_type.decode("ascii", "replace"),
                    ) from None
        if (
            self.check_socket_type
            and peer_type is not None
            and not compatible(self.socket_type, peer_type)
        ):
            raise IncompatibleSocketType(
                f"a {self.socket_type.name} socket cannot talk to a {peer_type.name} peer",
                ours=self.socket_type.name,
                theirs=peer_type.name,
            )
        assert self.peer_version is not None
        mech = self._mechanism
        self.handshake = HandshakeComplete(
            version=self.peer_version,
            metadata=meta,
            socket_type=peer_type,
            identity=meta.get("Identity", b""),
            mechanism=mech.name,
            user_id=mech.user_id,
            zap_metadata=mech.zap_metadata,
        )
        if mech.encrypts:
            self._crypt = mech
            # Every body is opened into the parts delivered, then dropped: large
            # ones can be read into reused memory (a CURVE peer speaks 3.x).
            cast(FrameDecoder, self._decoder).transient_bodies()
            mech.use_part_allocator(self._part_allocator)
        self._handshake_done()
        events.append(self.handshake)

    def _handshake_done(self) -> None:
        self.phase = Phase.TRAFFIC
        self._greeting = None
        self._properties = []

    def _receive_items(self, items: list[list[bytes] | bytes], events: list[Event]) -> bool:
        """Turn decoded traffic items into events: runs of messages split by commands.
        Return True if a command (ERROR) closed the connection: the rest is dropped."""
        messages: list[list[bytes]] = []
        for item in items:
            if type(item) is list:
                messages.append(item)
                continue
            if messages:
                events.append(Messages(messages))
                messages = []
            if self._receive_command(cast(bytes, item), events):
                return True
        if messages:
            events.append(Messages(messages))
        return False

    def _receive_sealed(
        self,
        frames: list[tuple[int, bytes]],
        events: list[Event],
        data: bytes | memoryview = b"",
        spans: list[int] | None = None,
        stride: int = 0,
    ) -> None:
        """CURVE traffic: open each frame (whatever its outer flags, as libzmq) and
        rebuild messages from the MORE flag inside the box; commands (PING, SUBSCRIBE,
        ...) travel sealed too, with libzmq's inner COMMAND flag (RFC 26 §"MESSAGE";
        specs/libzmq-behaviour.md §4.2).

        ``frames`` (the frames completed with bytes of earlier reads, or those of the
        call that completed the handshake) come first, then the bodies at ``spans``
        in ``data`` (see :meth:`FrameDecoder.decode_spans`; ``stride`` is its
        ``spans_stride``)."""
        crypt = self._crypt
        assert crypt is not None
        if not frames:  # the usual case: every frame whole in this read
            if not spans:
                return
            items, partial, commands, error = crypt.open_spans(data, spans, self._partial, stride)
        else:
            items = []
            partial = self._partial
            commands = False
            error = None
            for _flags, body in frames:  # few: no need for one call for them all
                got, partial, some, error = crypt.open_spans(body, (0, len(body)), partial)
                items += got
                commands = commands or some
                if error is not None:
                    break
            if spans and error is None:
                got, partial, some, error = crypt.open_spans(data, spans, partial, stride)
                items += got
                commands = commands or some
        # Whole messages before a bad box are delivered (they were whole and
        # authentic); the bad box, the part of a message before it, and what follows
        # are not.
        if commands:
            if self._receive_items(items, events):
                self._partial = []
                return  # an ERROR: what follows it is never read
        elif items:
            events.append(Messages(cast(list[list[bytes]], items)))
        if error is not None:
            self._partial = []
            raise error
        self._partial = partial

    def _receive_traffic(self, frames: list[tuple[int, bytes]], events: list[Event]) -> None:
        # Frames decoded in the call that completed the handshake (rare path).
        if self._crypt is not None:
            self._receive_sealed(frames, events)
            return
        partial = self._partial
        messages: list[list[bytes]] = []
        for flags, body in frames:
            if flags == 0:
                partial.append(body)
                messages.append(partial)
                partial = []
            elif flags == FLAG_MORE:
                partial.append(body)
            elif flags & FLAG_COMMAND:
                if messages:
                    events.append(Messages(messages))
                    messages = []
                if self._receive_command(body, events):
                    self._partial = []
                    return
        self._partial = partial
        if messages:
            events.append(Messages(messages))

    def _receive_command(self, body: bytes, events: list[Event]) -> bool:
        """Handle a traffic-phase command; return True if the connection closed."""
        if self.legacy is not None:
            # RFC 15: flag bits 2-7 MUST be zero.  libzmq would take bit 2 as a command,
            # but answering a 2.0 peer in commands it lacks helps nobody
            # (specs/discrepancies.md D-L1).
            raise RemoteProtocolError(
                "ZMTP 2.0 frame with flag bit 2 (COMMAND) set: 2.0 has no commands",
                reason=b"Invalid frame flags",
            )
        command = parse_command(body)
        name = command.name
        if name == PING:
            ttl, context = parse_ping(command.data)
            self._write_command(encode_pong(context))
            events.append(Ping(ttl, context))
        elif name == PONG:
            events.append(Pong(command.data))
        elif name == SUBSCRIBE:
            events.append(Subscribe(command.data))
        elif name == CANCEL:
            events.append(Cancel(command.data))
        elif name == ERROR:
            reason = parse_error(command.data)
            self.phase = Phase.CLOSED
            self.error = PeerError(reason)
            events.append(ErrorReceived(reason))
            return True
        else:
            events.append(UnknownCommand(name, command.data))
        return False

    # ------------------------------------------------------------------ output

    def _check_traffic(self) -> None:
        if self.phase is not Phase.TRAFFIC:
            raise LocalProtocolError(f"cannot send in phase {self.phase.name}")

    def _check_commands(self) -> None:
        self._check_traffic()
        if self.legacy is not None:
            raise LocalProtocolError(
                f"cannot send a command to a ZMTP {self.legacy.version[0]}.0 peer "
                "(that protocol has none)"
            )

    def send_message(self, frames: Sequence[Buffer]) -> int:
        """Queue one multipart message; return its body size in bytes.

        Raises:
            LocalProtocolError: the handshake is not complete or the connection closed.
            TypeError: a frame is not bytes-like.
            ValueError: no frames.
        """
        self._check_traffic()
        if self._crypt is not None:
            return self._send_sealed((frames,))
        return self._out.write_message(frames)

    def send_messages(
        self, messages: Iterable[Sequence[Buffer]], shared: SharedEncoding | None = None
    ) -> int:
        """Queue many messages at once; return their total body size.

        Args:
            messages: the messages.
            shared: the encodings that this connection's siblings made of their
                recent batches (a publisher's subscribers): if ``messages`` is one of
                them, its bytes are reused, and otherwise its encoding is kept there
                for them; ``messages`` must then be a sequence that nobody changes
                afterwards.  Ignored when the traffic is sealed (CURVE).
        """
        self._check_traffic()
        if self._crypt is not None:
            return self._send_sealed(messages)
        if shared is not None and type(messages) in _SHAREABLE:
            return shared.encode(self._out, messages)  # type: ignore[arg-type]
        return self._out.write_messages(messages)

    def encode_now(self, frames: Sequence[Buffer]) -> bytes | None:
        """One message's bytes, for a transport that writes them at once instead of
        queueing the message with :meth:`send_message` (a request/reply socket's
        send): only when nothing is queued ahead of it, in the traffic phase, in
        clear, and in 3.x/2.0 framing (see :meth:`OutputBuffer.encode_alone
        <zmtp.protocol.framing.OutputBuffer.encode_alone>`); None otherwise, and then
        the message is sent the usual way.  What the transport does not take goes
        back with :meth:`return_unsent`.
        """
        if self.phase is not Phase.TRAFFIC or self._crypt is not None:
            return None
        return self._out.encode_alone(frames)

    def _send_sealed(self, messages: Iterable[Sequence[Buffer]]) -> int:
        """CURVE: one MESSAGE per part, in one chunk for the whole batch."""
        crypt = self._crypt
        assert crypt is not None
        chunks, total = crypt.encode_messages_sized(messages)
        for chunk in chunks:
            self._out.write_large(chunk)  # fresh buffers nobody else holds: not copied
        return total

    def _write_command(self, frame: bytes) -> None:
        """Queue a command frame: as it is, or sealed in a MESSAGE under CURVE."""
        if self._crypt is None:
            self._out.write(frame)
            return
        # The sealed payload is the command's body (name-size, name, data), without
        # its frame header: 2 octets, or 9 for a long frame (RFC 37 §"Framing").
        head = 9 if frame[0] & 0x02 else 2
        self._out.write(self._crypt.encode_command(frame[head:]))

    def send_subscribe(self, topic: bytes) -> None:
        """Subscribe to ``topic``: a SUBSCRIBE command, or ``\\x01topic`` to a 3.0 peer."""
        self._check_traffic()
        if self.legacy_subscriptions:
            self.send_message([b"\x01" + topic])
        else:
            self._write_command(encode_subscribe(topic))

    def send_cancel(self, topic: bytes) -> None:
        """Cancel ``topic``: a CANCEL command, or ``\\x00topic`` to a 3.0 peer."""
        self._check_traffic()
        if self.legacy_subscriptions:
            self.send_message([b"\x00" + topic])
        else:
            self._write_command(encode_cancel(topic))

    def send_ping(self, ttl: int = 0, context: bytes = b"") -> None:
        """Queue a PING; ``ttl`` in deciseconds (0..65535), context <= 16 bytes.

        Raises:
            LocalProtocolError: as :meth:`send_command`.
        """
        self._check_commands()
        self._write_command(encode_ping(ttl, context))

    def send_command(self, name: bytes, data: bytes = b"") -> None:
        """Queue an arbitrary command frame (traffic phase).

        Raises:
            LocalProtocolError: not in the traffic phase, or the peer speaks ZMTP 2.0
                or 1.0, which have no commands (see :attr:`supports_commands`).
        """
        self._check_commands()
        self._write_command(encode_command(name, data))

    def send_error(self, reason: bytes) -> None:
        """Queue an ERROR command and close (RFC 37: the peer should not reconnect).

        A ZMTP 2.0/1.0 peer has no ERROR: the connection just closes.
        """
        if self.phase is Phase.CLOSED:
            raise LocalProtocolError("send_error() on a closed connection")
        if self.phase is Phase.GREETING:
            raise LocalProtocolError("cannot send ERROR before the greeting is complete")
        if self.legacy is None:
            self._out.write(encode_error(reason))
        self.phase = Phase.CLOSED

    def data_to_send(self) -> list[Buffer]:
        """Take everything queued for the peer, as a list of bytes-like chunks."""
        return self._out.chunks()

    def return_unsent(self, chunks: Sequence[Buffer]) -> None:
        """Hand back the part of :meth:`data_to_send`'s output that the transport did
        not take (a partial write): it is sent first, before anything queued since.

        Args:
            chunks: the unsent tail, in order (the first may be a slice of a chunk).
        """
        self._out.unshift(chunks)

    def bytes_to_send(self) -> bytes:
        """Take everything queued for the peer as one ``bytes`` (copies; for tests/tools)."""
        return b"".join(bytes(c) for c in self._out.chunks())

    @property
    def has_data_to_send(self) -> bool:
        """True if ``data_to_send()`` would return something."""
        return bool(self._out)

    def __repr__(self) -> str:
        return f"<Connection {self.socket_type.name} {self.phase.name} peer={self.peer_version}>"
