"""The engine: one ZMTP connection over a trio stream, on behalf of a socket.

Theory of operation
-------------------
An :class:`Engine` wraps a sans-IO :class:`~zmtp.protocol.connection.Connection` around
a ``trio.abc.Stream``, the way ``trio.SSLStream`` wraps ``ssl.MemoryBIO``.  It meets its
socket at one narrow contract, :class:`EngineOwner`: it is built with an
:class:`EngineConfig` (the options it needs, read once) and reports the handshake, the
messages and subscriptions that arrive, monitor events and its end through the owner's
``on_*`` methods; the owner hands it a :class:`PeerPipes` (the outbound and inbound
queues) when the handshake completes.  It runs in three steps:

1. **Handshake**, bounded by ``handshake_ivl``: send our greeting at once, then feed
   received bytes to the machine and flush what it produces, until the handshake is
   complete.  Then the owner attaches the peer (``on_handshake``).

2. **Traffic**: the reader and the writer (plus the heartbeat watchdog and, when
   enabled, the PING timer) in one nursery.

   * The *reader* (:class:`~zmtp.sockets._reader.Reader`) decodes every complete frame
     in each read and hands all finished messages to the owner in one call; it stops
     reading while the inbound pipe is at its high-water mark, so backpressure reaches
     the peer through TCP.  Large bodies are read in place.
   * When the socket has only this connection and its application blocks in a receive,
     the application's task borrows the descriptor and does the reader's work itself
     (:meth:`Engine.lend`, :mod:`zmtp.sockets._lending`).
   * The *writer* sleeps until the outbound pipe has messages, takes all of them at once,
     encodes them into as few chunks as possible and writes them with as few system
     calls as possible (:mod:`zmtp.sockets._fdio`).  There is no await per message.
     A publisher's writers share their encodings (``EngineConfig.shared_encoding``):
     the first to encode a batch of messages leaves the bytes for the others.

3. **Teardown**: on EOF, a protocol error, a transport error or cancellation, the stream
   is closed and the owner detaches the peer (``on_closed``).  :meth:`Engine.run`
   returns the protocol error (if any), which tells a connecting socket whether
   reconnecting is worthwhile.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from ..protocol.connection import Connection, Phase
from ..protocol.errors import (
    AuthenticationFailed,
    MessageTooLarge,
    PeerError,
    ProtocolError,
    RemoteProtocolError,
)
from ..protocol.events import (
    AuthenticationRequested,
    Cancel,
    ConnectionClosed,
    ErrorReceived,
    HandshakeComplete,
    Messages,
    Ping,
    Subscribe,
)
from ..protocol.framing import BodyAllocator, SharedEncoding, portable_body
from ..protocol.mechanisms import Mechanism, NullMechanism
from ..protocol.mechanisms.base import PartAllocator
from ..protocol.socket_types import SocketType
from ..protocol.zap import ZapError, ZapReply, parse_reply_metadata
from ._fdio import Descriptor
from ._heartbeat import Heartbeat
from ._lending import Lending, ReaderDone
from ._monitor import EventType
from ._pipe import Message, Pipe
from ._reader import RECV_SIZE, Reader
from ._transports import zap_peer_address
from ._wakeup import Wakeup

__all__ = ["Engine", "EngineConfig", "EngineOwner", "HandshakeTimeout", "PeerPipes"]

log = logging.getLogger("zmtp")

STREAM_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)

#: Payload bytes sealed per writer pass on a CURVE connection (see _write_loop): 2 MiB
#: measured best of 256 KiB, 2 MiB and 4 MiB at 64 KiB and 1 MiB messages.
SEAL_BATCH = 2 * 1024 * 1024


class HandshakeTimeout(RemoteProtocolError):
    """The peer did not complete the handshake within ``handshake_ivl``."""

    fatal = False


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """What an engine needs of its socket's options, read when it is built."""

    socket_type: SocketType
    #: Makes the security mechanism of each connection (a fresh object each time).
    mechanism: Callable[[], Mechanism] = NullMechanism
    routing_id: bytes = b""
    metadata: Mapping[str, bytes] = field(default_factory=dict)
    maxmsgsize: int = -1
    #: Why ``maxmsgsize`` is what it is, when the user did not set it (for the log).
    maxmsgsize_note: str = ""
    handshake_ivl: int = 30000
    heartbeat_ivl: int = 0
    heartbeat_timeout: int = -1
    heartbeat_ttl: int = 0
    #: Write each message to the kernel as it is queued instead of waking the writer
    #: (REQ and REP: one message per round trip, nothing to batch).
    eager_send: bool = False
    #: Called once, before the first large body is read in place (allocator tuning).
    on_large_body: Callable[[], object] | None = None
    #: What large frame bodies are allocated with (zmtp._native's zero-copy one, or
    #: the protocol core's portable one).
    body_allocator: BodyAllocator = portable_body
    #: What a CURVE connection may open large parts straight into (zmtp._native's),
    #: or None.
    part_allocator: PartAllocator | None = None
    #: The socket's shared encodings of recent batches (publishers: every subscriber
    #: is sent the same messages), or None to encode every batch here.
    shared_encoding: SharedEncoding | None = None


class PeerPipes(Protocol):
    """The owner's record of the peer an engine serves: its two queues."""

    @property
    def out(self) -> Pipe: ...
    @property
    def inp(self) -> Pipe: ...


def zap_status(reason: bytes) -> int | None:
    """The ZAP status code an ERROR's reason is (300, 400 or 500), else None: libzmq's
    test (``mechanism_base_t::handle_error_reason``) for reporting a refused handshake
    as ``HANDSHAKE_FAILED_AUTH`` with that status."""
    if len(reason) == 3 and reason[1:] == b"00" and reason[:1] in (b"3", b"4", b"5"):
        return int(reason)
    return None


class EngineOwner(Protocol):
    """What an engine needs from its socket (the whole contract between them)."""

    async def authenticate(
        self, engine: Engine, request: AuthenticationRequested
    ) -> ZapReply | None:
        """Ask the ZAP handler (RFC 27) about the peer; None if no handler is bound."""

    def on_handshake(self, engine: Engine, handshake: HandshakeComplete) -> PeerPipes | None:
        """The handshake completed: attach the peer and return its pipes (None: the
        socket refuses it, and the connection idles until it ends)."""

    def on_closed(self, engine: Engine) -> None:
        """The connection ended (only called after a successful on_handshake)."""

    def on_messages(self, peer: Any, messages: list[Message]) -> None:
        """Messages arrived from ``peer`` (what on_handshake returned)."""

    def on_subscribe(self, peer: Any, topic: bytes) -> None:
        """A SUBSCRIBE command arrived."""

    def on_cancel(self, peer: Any, topic: bytes) -> None:
        """A CANCEL command arrived."""

    def on_event(
        self, kind: EventType, endpoint: str, peer: str = "", reason: str = "", **detail: Any
    ) -> None:
        """A monitor event."""

    def on_output(self, engine: Engine) -> bool:
        """Output was queued for the idle writer.  True: the owner is queueing a batch
        and flushes the engine itself when it is queued (:meth:`Engine.flush_now`,
        then :meth:`Engine.wake_writer` for what the kernel did not take), so the
        writer is not woken.  False: the writer is woken, and the owner may still
        flush it eagerly before its task blocks."""

    def on_writer_idle(self) -> None:
        """The writer has handed everything queued to the kernel (linger waits)."""

    def on_lent_input(self) -> None:
        """A lent receive saw input and dispatches it now: stop interrupting it."""


class Engine:
    """Runs one connection; see the module docstring.

    Reading, descriptor I/O, lending and heartbeats are parts of their own
    (:class:`~zmtp.sockets._reader.Reader`, ``Descriptor``, ``Lending``,
    ``Heartbeat``); what stays here is the lifecycle, the dispatch of events to the
    owner, and the writer, which share the connection's fate.

    Args:
        owner: the socket it reports to.
        config: the options it needs.
        stream: the transport.
        endpoint: the endpoint it was accepted on or connected to.
        peer_address: the remote address, for logs and monitor events.
        peer: a peer record created at connect() time, reused across reconnects.
        origin: anything the owner wants back (its per-endpoint record).
    """

    # Slots: one engine per connection, and an idle connection's memory is a figure
    # of its own (issue 15).
    __slots__ = (
        "__weakref__",
        "_eager",
        "_ending",
        "_late_error",
        "_stop_scope",
        "_transport_error",
        "_writer_lot",
        "_zap_address",
        "config",
        "conn",
        "endpoint",
        "error",
        "handshake",
        "heartbeat",
        "io",
        "lending",
        "origin",
        "owner",
        "peer",
        "peer_address",
        "reader",
        "stream",
        "writer_idle",
    )

    def __init__(
        self,
        owner: EngineOwner,
        config: EngineConfig,
        stream: trio.abc.Stream,
        endpoint: str,
        peer_address: str,
        *,
        peer: PeerPipes | None = None,
        origin: object = None,
    ) -> None:
        self.owner = owner
        self.config = config
        self.stream = stream
        self.endpoint = endpoint
        self.peer_address = peer_address
        self.peer = peer
        self.origin = origin
        self.conn = Connection(
            config.socket_type,
            mechanism=config.mechanism(),
            routing_id=config.routing_id,
            metadata=config.metadata,
            max_message_size=config.maxmsgsize,
            body_allocator=config.body_allocator,
            part_allocator=config.part_allocator,
        )
        self.io = Descriptor(stream)
        self.heartbeat = Heartbeat(self._heartbeat_armed)
        self.lending = Lending(self.io)
        self.reader = Reader(
            self.conn,
            stream,
            self.io,
            self.heartbeat,
            self.lending,
            dispatch=self.dispatch,
            wake_writer=self.wake_writer,
            on_lent_input=owner.on_lent_input,
            on_large_body=config.on_large_body,
        )
        self._eager = config.eager_send
        self._writer_lot = Wakeup()
        #: The reader has ended; the other loops return when next woken (_end_loops).
        self._ending = False
        #: True while the writer has nothing in flight (sleeping for more).
        self.writer_idle = True
        self.handshake: HandshakeComplete | None = None
        self.error: ProtocolError | None = None
        # A protocol error in the read that completed the handshake, raised only after
        # the handshake and the messages before the error are handled.
        self._late_error: ProtocolError | None = None
        self._transport_error: BaseException | None = None
        self._stop_scope = trio.CancelScope()
        self._zap_address: str | None = None

    def __repr__(self) -> str:
        return f"<Engine {self.endpoint} {self.peer_address}>"

    @property
    def zap_address(self) -> str:
        """The peer's address as a ZAP request and ``Peer-Address`` carry it (the IP for
        tcp; ``localhost:uid:gid:pid`` for ipc), computed on first use."""
        address = self._zap_address
        if address is None:
            address = self._zap_address = zap_peer_address(self.stream)
        return address

    # ------------------------------------------------------------- the owner's calls

    def pipe_readable(self, pipe: Pipe) -> None:
        """The socket queued outbound messages: wake the writer, and tell the owner an
        eager flush (:meth:`flush_now`) may save the writer a scheduling round.

        REQ and REP send one message per round trip, so batching can gain nothing:
        theirs go to the kernel at once, and the writer is woken only for a remainder.
        """
        if self._writer_lot:
            if self._eager and self.flush_now():
                return
            if self.owner.on_output(self):
                return  # the owner flushes it before its call returns
            self._writer_lot.unpark_all()

    def pipe_writable(self, pipe: Pipe) -> None:
        """The socket drained our inbound pipe below its low-water mark."""
        self.reader.resume()

    def flush_now(self) -> bool:
        """Write queued messages synchronously if the writer is idle.

        The socket calls this just before its task blocks in a receive: a request is
        then on the wire before the scheduler runs again, instead of one round later
        when the writer task gets its turn.  That round is most of a request/reply
        round trip's overhead.  Whatever the kernel does not take at once is handed
        back to the machine for the writer task; order is kept because nothing can be
        in flight while the writer is idle.

        Returns:
            True if everything queued is now with the kernel.
        """
        if not self.writer_idle or self.io.fd < 0:
            return False
        peer = self.peer
        conn = self.conn
        rest = False
        if peer is not None and peer.out.queue:
            if conn.phase is not Phase.TRAFFIC:
                return False  # ending: the reader reports it
            if conn.encrypts:
                conn.send_messages(peer.out.take_some(SEAL_BATCH))
                rest = bool(peer.out.queue)
                if rest:
                    self.wake_writer()  # the writer seals the rest, pass by pass
            else:
                conn.send_messages(peer.out.take_all(), self.config.shared_encoding)
        if not conn.has_data_to_send:
            return not rest
        chunks = conn.data_to_send()
        sent = self.io.write_now(chunks)
        for i, chunk in enumerate(chunks):
            n = len(chunk)
            if sent >= n:
                sent -= n
                continue
            # The kernel took less: the rest goes back, in order, for the writer task.
            conn.return_unsent([memoryview(chunk)[sent:] if sent else chunk, *chunks[i + 1 :]])
            self.wake_writer()
            return False
        return not rest

    def wake_writer(self) -> None:
        """Something (a PING, a subscription) was queued on the machine directly."""
        if self._writer_lot:
            self._writer_lot.unpark_all()

    def has_unsent(self) -> bool:
        """True while output is queued on the machine or being written."""
        return not self.writer_idle or self.conn.has_data_to_send

    def kernel_unsent(self) -> int:
        """Bytes written but still in the kernel (not read or acknowledged by the peer)."""
        return self.io.kernel_unsent()

    def stop(self) -> None:
        """End the connection from outside (ROUTER handover, socket shutdown)."""
        self._stop_scope.cancel()

    def interrupt(self) -> None:
        """Wake a task waiting on this connection's input (a lent receive)."""
        self.io.interrupt()

    def can_lend(self) -> bool:
        """True if the application's task may wait on this connection's input now."""
        return (
            not self.lending.lent
            and self.io.fd >= 0
            and self.lending.failure is None
            and not self.heartbeat.paused
            and self.reader.reading
            and not self.conn.body_remaining
        )

    async def lend(self) -> list[Message] | None:
        """Wait for input on the calling (application's) task.

        Returns the messages that arrived, not yet handed to the owner, when they are
        all that arrived (the caller delivers them); None once anything else arrived
        and was handed over, or the owner interrupted the wait (:meth:`interrupt`):
        the caller checks its queues again then.  See
        :meth:`~zmtp.sockets._reader.Reader.lent_receive`.
        """
        return await self.reader.lent_receive()

    def send_now(self, msg: Message) -> bool:
        """Write one message to the kernel at once, if nothing is queued or in flight
        ahead of it (the caller knows its pipe is empty) and it takes the short path
        of :meth:`Connection.encode_now`.

        A request/reply socket sends this way: the message reaches the kernel without
        passing through the pipe, the engine's queue and the writer's machinery.

        Returns:
            True if the message is sent (what the kernel did not take at once is the
            writer task's, in order); False if nothing was done: queue it.
        """
        if not self.writer_idle:
            return False
        fd = self.io.fd
        if fd < 0:
            return False
        data = self.conn.encode_now(msg)
        if data is None:
            return False
        try:
            sent = os.write(fd, data)
        except OSError:  # would block, or broken: the writer task finds out
            sent = 0
        if sent != len(data):
            self.conn.return_unsent([memoryview(data)[sent:] if sent else data])
            self.wake_writer()
        return True

    # ------------------------------------------------------------- main

    async def run(self) -> ProtocolError | None:
        """Run the connection to its end; return the protocol error that ended it, if any."""
        with self._stop_scope:
            return await self._run()
        return None

    async def _run(self) -> ProtocolError | None:
        owner = self.owner
        reason = "closed by peer"
        attached = False
        try:
            try:
                events = await self._handshake()
            except ProtocolError as exc:
                self.error = exc
                reason = str(exc)
                detail: dict[str, Any] = {"error": type(exc).__name__}
                if isinstance(exc, AuthenticationFailed):
                    # libzmq's HANDSHAKE_FAILED_AUTH carries the ZAP status code.
                    detail["status"] = int(exc.status) if exc.status else None
                elif isinstance(exc, PeerError) and zap_status(exc.reason) is not None:
                    # So does a libzmq client's, for an ERROR whose reason is one.
                    detail["status"] = zap_status(exc.reason)
                elif isinstance(exc, ZapError):
                    # A bad reply from the ZAP handler: libzmq's HANDSHAKE_FAILED_PROTOCOL
                    # carries the fault's code (ZAP_ERROR_CODES gives its number).
                    detail["code"] = exc.code
                owner.on_event(
                    EventType.HANDSHAKE_FAILED,
                    self.endpoint,
                    self.peer_address,
                    reason,
                    **detail,
                )
                log.warning(
                    "%s %s: handshake with %s failed: %s",
                    owner,
                    self.endpoint,
                    self.peer_address,
                    exc,
                )
                await self._flush_quietly()
                return exc
            if events is None:
                reason = "closed during handshake"
                return None
            hs = self.handshake
            assert hs is not None
            self.peer = owner.on_handshake(self, hs)
            attached = True
            owner.on_event(
                EventType.HANDSHAKE_SUCCEEDED,
                self.endpoint,
                self.peer_address,
                identity=hs.identity,
                socket_type=hs.socket_type.name if hs.socket_type else None,
                version=hs.version,
            )
            await self._traffic(events)
            error = self.error
            if error is not None:
                reason = str(error)
                if not isinstance(error, PeerError):
                    level = logging.INFO if not error.fatal else logging.WARNING
                    note = self.config.maxmsgsize_note
                    if note and isinstance(error, MessageTooLarge):
                        reason = f"{error} ({note})"
                        level = logging.WARNING  # not the user's own limit: say so
                    log.log(
                        level,
                        "%s %s: dropping %s: %s",
                        owner,
                        self.endpoint,
                        self.peer_address,
                        reason,
                    )
                    await self._flush_quietly()
            elif self._transport_error is not None:
                reason = f"transport error: {self._transport_error}"
            return self.error
        except STREAM_ERRORS as exc:
            reason = f"transport error: {exc}"
            return None
        finally:
            if attached:
                owner.on_closed(self)
            stream = self.stream
            if type(stream) is trio.SocketStream:
                # What its aclose() does, less the checkpoint, which aclose_forcefully
                # turns into a Cancelled raised and caught: a third of the cost of a
                # connection's end (1,000 peers leaving at once, issue 15).  Nothing
                # else can be waiting on the descriptor: every loop has ended.
                stream.socket.close()
            else:
                with trio.CancelScope(shield=True):
                    await trio.aclose_forcefully(stream)
            owner.on_event(EventType.DISCONNECTED, self.endpoint, self.peer_address, reason)

    async def _traffic(self, events: list[object]) -> None:
        cfg = self.config
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._guarded, self._write_loop, nursery)
            nursery.start_soon(self._guarded, self.heartbeat.watchdog, nursery)
            # ZMTP 2.0/1.0 peers have no PING; libzmq does not heartbeat them either.
            pinging = bool(cfg.heartbeat_ivl and self.conn.supports_commands)
            if pinging:
                ivl = cfg.heartbeat_ivl / 1000
                timeout = ivl if cfg.heartbeat_timeout < 0 else cfg.heartbeat_timeout / 1000
                ttl = min(cfg.heartbeat_ttl // 100, 0xFFFF)

                def send_ping() -> None:
                    self.conn.send_ping(ttl)
                    self.wake_writer()

                nursery.start_soon(
                    self._guarded,
                    lambda: self.heartbeat.ping_loop(ivl, timeout, send_ping),
                    nursery,
                )
            if self.dispatch(events):
                if self._late_error is not None:
                    self.error = self._late_error
                else:
                    inp = self.peer.inp if self.peer is not None else None
                    await self._recorded(lambda: self.reader.run(inp))
            self._end_loops(nursery, pinging=pinging)

    def _end_loops(self, nursery: trio.Nursery, *, pinging: bool) -> None:
        """The reader has ended: end the writer and the watchdog.

        When both are parked (the usual case: nothing is being written), they are
        woken to return by themselves; cancelling them instead raises a ``Cancelled``
        through each, which trio's nursery then describes and collects: much of what a
        connection's end cost (a ROUTER whose 1,000 peers leave at once, issue 15).  A
        writer in the middle of a write, or a PING timer, is cancelled as before.
        """
        self._ending = True
        if not pinging and self._writer_lot and self.heartbeat.parked:
            self._writer_lot.unpark_all()
            self.heartbeat.stop()
        else:
            nursery.cancel_scope.cancel()

    async def _guarded(self, fn: Callable[[], Awaitable[None]], nursery: trio.Nursery) -> None:
        """Run one of the other traffic loops; if it ends first, stop the rest."""
        await self._recorded(fn)
        if not self._ending:
            nursery.cancel_scope.cancel()

    async def _recorded(self, fn: Callable[[], Awaitable[None]]) -> None:
        """Run one traffic loop; record why it ended.

        Errors are recorded rather than raised so that they do not arrive wrapped in an
        ExceptionGroup from the nursery.
        """
        try:
            await fn()
        except ReaderDone:
            pass
        except ProtocolError as exc:
            if self.error is None:
                self.error = exc
        except STREAM_ERRORS as exc:
            if self._transport_error is None:
                self._transport_error = exc

    async def _flush_quietly(self) -> None:
        """Send what the machine queued (an ERROR command), ignoring transport errors."""
        with trio.move_on_after(1):
            try:
                for chunk in self.conn.data_to_send():
                    await self.stream.send_all(chunk)
            except STREAM_ERRORS:
                pass

    async def _handshake(self) -> list[object] | None:
        """Run greeting and handshake; return the events that arrived with its end.

        Returns None if the peer closed first.  Raises ProtocolError on failure or
        timeout (the ZAP exchange counts against ``handshake_ivl`` too, as in libzmq).
        """
        conn, stream = self.conn, self.stream
        ivl = self.config.handshake_ivl
        events: list[object] = []
        with trio.move_on_after(ivl / 1000 if ivl > 0 else math.inf) as scope:
            for chunk in conn.data_to_send():
                await stream.send_all(chunk)
            while conn.phase is not Phase.TRAFFIC:
                data = await stream.receive_some(RECV_SIZE)
                new = self._feed(conn.receive_data, data)
                while True:
                    for chunk in conn.data_to_send():
                        await stream.send_all(chunk)
                    ask: AuthenticationRequested | None = None
                    for ev in new:
                        if isinstance(ev, ConnectionClosed) and self.handshake is None:
                            return None
                        if isinstance(ev, ErrorReceived):
                            assert conn.error is not None
                            raise conn.error
                        if isinstance(ev, AuthenticationRequested):
                            ask = ev
                        elif isinstance(ev, HandshakeComplete):
                            self.handshake = ev
                        elif self.handshake is not None:
                            events.append(ev)
                    if ask is None:
                        break
                    # RFC 27: the connection holds the peer's input until the
                    # handler answers; its reply lets the handshake go on.
                    new = await self._authenticate(ask)
                if conn.phase is Phase.CLOSED:
                    # Handshake done, then an error or EOF in the same read: the
                    # events before it go to the owner first (see _run).
                    break
        if scope.cancelled_caught:
            raise HandshakeTimeout(
                f"handshake not complete after {ivl} ms (handshake_ivl)",
                reason=b"Handshake timeout",
            )
        return events

    def _feed(self, step: Callable[..., list[Any]], *args: Any) -> list[Any]:
        """Run one step of the machine; a protocol error after a completed handshake
        is kept for later (see _run), one before it is raised."""
        try:
            return step(*args)
        except ProtocolError as exc:
            if not any(isinstance(ev, HandshakeComplete) for ev in exc.events):
                raise
            # The handshake completed and traffic followed in the same read, then a
            # bad frame: the handshake succeeded; deliver what preceded the
            # violation, then drop the connection (see _run).
            self._late_error = exc
            return exc.events

    async def _authenticate(self, request: AuthenticationRequested) -> list[Any]:
        reply = await self.owner.authenticate(self, request)
        conn = self.conn
        if conn.phase is not Phase.HANDSHAKE:  # pragma: no cover - nothing reads meanwhile
            return []
        if reply is None:
            return self._feed(conn.zap_unavailable)
        metadata = parse_reply_metadata(reply)
        return self._feed(conn.zap_reply, reply.status_code, reply.user_id, metadata)

    def dispatch(self, events: Sequence[object]) -> bool:
        """Hand decoded events to the owner; return False if the connection ended."""
        owner = self.owner
        peer = self.peer
        for ev in events:
            if type(ev) is Messages:
                if peer is not None:
                    owner.on_messages(peer, ev.messages)
            elif isinstance(ev, Ping):
                # The PONG is already queued; a TTL asks us to drop the peer if it then
                # goes silent for that long (RFC 37 §"Heartbeating").
                if ev.ttl:
                    self.heartbeat.arm(ev.ttl / 10)
                self.wake_writer()
            elif isinstance(ev, Subscribe):
                if peer is not None:
                    owner.on_subscribe(peer, ev.topic)
            elif isinstance(ev, Cancel):
                if peer is not None:
                    owner.on_cancel(peer, ev.topic)
            elif isinstance(ev, ErrorReceived):
                self.error = self.conn.error
                log.warning(
                    "%s %s: peer %s sent ERROR %r",
                    owner,
                    self.endpoint,
                    self.peer_address,
                    ev.reason,
                )
                return False
            elif isinstance(ev, ConnectionClosed):
                if not ev.clean:
                    # The decoder discards the incomplete message: multipart messages
                    # are atomic, so nothing of it reaches the socket.
                    log.info(
                        "%s %s: %s closed the connection in the middle of a message; "
                        "the incomplete message is dropped",
                        owner,
                        self.endpoint,
                        self.peer_address,
                    )
                return False
        return True

    def _heartbeat_armed(self) -> None:
        # Waiting for a large body's next 512 KiB: from now on any byte is a sign of
        # life, so wake for any byte (the kernel re-checks a waiting reader).
        if self.io.lowat > 1:
            self.io.set_lowat(1)

    async def _write_loop(self) -> None:
        conn = self.conn
        peer = self.peer
        out = peer.out if peer is not None else None
        owner = self.owner
        io = self.io
        # CURVE seals every byte: a pass takes about SEAL_BATCH of payload and
        # writes it before sealing more, instead of sealing a whole queue (up to the
        # HWM: megabytes) that the kernel then reads back from memory.
        sealed = conn.encrypts
        shared = self.config.shared_encoding
        while True:
            if out is not None and out.queue:
                if conn.phase is not Phase.TRAFFIC:
                    return  # the peer's end arrived: the reader reports it, nothing goes out
                if sealed:
                    conn.send_messages(out.take_some(SEAL_BATCH))
                else:
                    conn.send_messages(out.take_all(), shared)
            if conn.has_data_to_send:
                self.writer_idle = False
                chunks = conn.data_to_send()
                if io.fd >= 0:
                    await io.send_chunks(chunks)
                else:
                    for chunk in chunks:
                        await self.stream.send_all(chunk)
                    chunk = b""
                # Written: let go of the chunks before sealing more, so that the
                # memory they were sealed into is idle again for the next pass.
                del chunks
                continue
            self.writer_idle = True
            owner.on_writer_idle()
            await self._writer_lot.park()
            if self._ending:
                return  # the reader has ended (_end_loops)
