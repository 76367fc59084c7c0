"""The socket's machinery: options, peers, closing, and its side of three contracts.

Theory of operation
-------------------
A socket owns a set of *peers* (:class:`~zmtp.sockets._peer.Peer`): the socket's view
of one remote party, with a queue in each direction.  Peers are reached through an
:class:`~zmtp.sockets._engine.Engine` (tcp, ipc, or any trio stream) or, over inproc,
through the other socket's peer record.  :class:`SocketBase` keeps that registry and is
the party at the other end of three narrow contracts, each written down as a Protocol
by the module that needs it:

* :class:`~zmtp.sockets._engine.EngineOwner`: an engine reports its handshake, the
  messages and subscriptions it decodes, monitor events and its end (``on_*``);
* :class:`~zmtp.sockets._endpoints.EndpointOwner`: bind/connect/reconnect ask for peers
  and engines (``open_peer``, ``run_engine``, ``remove_peer``);
* :class:`~zmtp.sockets._inproc.InprocEnd`: inproc linking adds peers directly.

What a socket *does* with its peers is its type's business.  Subclasses implement a
few hooks, named after libzmq's ``xsend``/``xrecv``/``xattach_pipe``:

* ``_accept_peer(peer)``: may a newly handshaken peer join (PAIR, ROUTER may refuse);
* ``_attach(peer)`` / ``_detach(peer)``: a peer joined or left for good;
* ``_connected(peer)`` / ``_disconnected(peer)``: its connection came up or dropped;
* ``_try_send(msg) -> bool``: queue one message without waiting; False means "would
  block" (the caller waits and retries), True means sent *or deliberately dropped*;
* ``_try_recv() -> msg | None``: take one message without waiting;
* ``_try_send_many`` / ``_try_recv_many``: the same in bulk;

and compose the routing strategies of :mod:`zmtp.sockets._routing` to do it.  The
application's API (:class:`~zmtp.sockets._socket.Socket`) sits on top.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

import trio

from ..protocol.errors import ProtocolError
from ..protocol.events import AuthenticationRequested, HandshakeComplete
from ..protocol.framing import BodyAllocator, SharedEncoding
from ..protocol.mechanisms.base import PartAllocator
from ..protocol.metadata import Metadata
from ..protocol.socket_types import SocketType
from ..protocol.zap import ZapReply, ZapRequest
from ._counters import Counters
from ._endpoints import Endpoints, EndpointState
from ._engine import Engine, EngineConfig
from ._errors import InvalidStateError, NotSupportedError, UnroutableError
from ._inproc import InprocNamespace
from ._limits import frame_limit
from ._monitor import EventType, Monitor, SocketEvent
from ._options import OPTIONS, validate_option
from ._peer import Peer, PeerInfo
from ._pipe import Message, Pipe
from ._routing import FairQueue
from ._security import SECURITY_OPTIONS, Security, check_combination, security_for

__all__ = ["SocketBase", "SocketHost"]

log = logging.getLogger("zmtp")


class SocketHost(Protocol):
    """What a socket needs of its Context."""

    @property
    def nursery(self) -> trio.Nursery:
        """Where the socket's background tasks run."""

    @property
    def inproc(self) -> InprocNamespace:
        """The inproc names of this context."""

    @property
    def on_large_body(self) -> Callable[[], object] | None:
        """Called by an engine before it first reads a large body in place."""

    @property
    def body_allocator(self) -> BodyAllocator:
        """What connections allocate large frame bodies with."""

    @property
    def part_allocator(self) -> PartAllocator | None:
        """What CURVE connections may open large parts straight into."""

    def forget(self, sock: Any) -> None:
        """The socket has closed."""

    async def zap_request(self, request: ZapRequest) -> ZapReply | None:
        """Ask the context's ZAP handler (RFC 27); None if none is bound."""


class SocketBase:
    """Options, peers, closing, and the contracts (see the module docstring).

    One class of some 450 lines, on purpose: the registry of peers and the three
    contracts that change it (engines, endpoints, inproc links) share one state, the
    peer list and the queues' wake-ups, and splitting them would put that state behind
    another interface on the per-connection path.
    """

    __slots__ = (
        "__weakref__",
        "_closed",
        "_closing",
        "_counters",
        "_dirty",
        "_drain_lot",
        "_endpoints",
        "_fq",
        "_holding",
        "_host",
        "_lender",
        "_monitors",
        "_options",
        "_peers",
        "_recv_lot",
        "_security",
        "_send_lot",
    )

    socket_type: ClassVar[SocketType]
    #: Whether the type can send and receive at all (a PULL cannot send).
    can_send: ClassVar[bool] = True
    can_recv: ClassVar[bool] = True
    #: Whether connect() creates the peer at once so messages queue before the
    #: connection exists (libzmq does this for every type; ROUTER cannot route to a
    #: peer before it knows its identity, so it waits for the handshake).
    _queue_before_connect: ClassVar[bool] = True
    #: Write each message to the kernel as it is sent, instead of waking the engine's
    #: writer task to batch them (REQ and REP: one message per round trip).
    _eager_send: ClassVar[bool] = False
    #: A receive may take a message straight from a lent connection
    #: (:meth:`_take_direct`) when nothing is queued: the types whose messages go into
    #: their peers' pipes as they arrive (the base ``_peer_messages``).
    _direct: ClassVar[bool] = False

    def __init__(self, host: SocketHost, socket_type: SocketType, **options: Any) -> None:
        if socket_type is not type(self).socket_type:
            raise ValueError(f"{type(self).__name__} is a {type(self).socket_type.name} socket")
        self._host = host
        # An ordered set (a dict): a peer leaves in O(1), where list.remove scanned
        # the peers (twice, with the membership test): 1,000 peers leaving in random
        # order cost 5 ms of scans, and it grows with the square of their number.
        self._peers: dict[Peer, None] = {}
        self._options: dict[str, Any] = {k: v.default for k, v in OPTIONS.items()}
        self._counters = Counters()  # drops, for Socket.statistics()
        self._options["metadata"] = {}
        self._security: Security | None = None
        for name, value in options.items():
            self.set_option(name, value)
        #: Fair-queued input: every type receives through it (PUB discards).
        self._fq = FairQueue()
        self._recv_lot = trio.lowlevel.ParkingLot()
        # The engine a receiving task is waiting on, lent (_park_recv).
        self._lender: Engine | None = None
        self._send_lot = trio.lowlevel.ParkingLot()
        self._drain_lot = trio.lowlevel.ParkingLot()
        # Engines woken for output since the last receive parked, to flush eagerly
        # then.  A dict, as an ordered set: a socket that only sends (PUSH, PUB, a
        # DEALER used one way) never parks in a receive, so a list appended per
        # wake-up grew for ever (the soak's PULL->PUSH proxy, 0.3 MiB/min); keyed
        # by engine it holds each live engine at most once, and on_closed drops it.
        self._dirty: dict[Engine, None] = {}
        # While a batch is queued (send_batch_nowait): the engines whose idle writers
        # it gave output, flushed when it is queued (on_output, _flush_held).
        self._holding: list[Engine] | None = None
        self._endpoints = Endpoints(self, host.nursery, host.inproc)
        self._monitors: set[Monitor] = set()
        self._closed = False
        self._closing = False

    # ------------------------------------------------------------------ options

    def set_option(self, name: str, value: Any) -> None:
        """Set an option by name (also available as an attribute).

        Raises:
            ValueError: unknown option, wrong socket type, or a bad value.
            TypeError: a value of the wrong type.
        """
        new = validate_option(self.socket_type, name, value)
        if name in SECURITY_OPTIONS:
            old = self._options[name]
            self._options[name] = new
            try:
                check_combination(self._options)
            except ValueError:
                self._options[name] = old
                raise
            self._security = None  # made again, from the new options, when needed
            return
        self._options[name] = new
        if name in ("sndhwm", "rcvhwm"):
            # New limits apply to existing tcp/ipc pipes too (libzmq applies them to
            # pipes created afterwards; applying them at once is what users expect).
            for peer in self._peers:
                if peer.link is None:
                    peer.out.set_hwm(self._options["sndhwm"])
                    peer.inp.set_hwm(self._options["rcvhwm"])

    def get_option(self, name: str) -> Any:
        """Current value of an option."""
        if name not in OPTIONS:
            raise ValueError(f"unknown socket option {name!r}")
        return self._options[name]

    # ------------------------------------------------------------------ lifecycle

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` has begun."""
        return self._closed or self._closing

    def _check_open(self) -> None:
        if self._closed or self._closing:
            raise trio.ClosedResourceError("socket is closed")

    def __repr__(self) -> str:
        return f"<zmtp {self.socket_type.name} socket>"

    async def aclose(self, linger: int | None = None) -> None:
        """Close the socket.

        Queued outbound messages are flushed for up to ``linger`` ms (default: the
        ``linger`` option; -1 waits until everything is sent, 0 discards at once).
        Every background task of the socket has ended when this returns.

        Cancellation (and KeyboardInterrupt, Ctrl-C) cuts the linger short, as trio
        expects of any ``aclose``: what is still queued is dropped, one warning is
        logged on the ``zmtp`` logger (``dropped 3 messages for tcp://...``), the
        socket closes at once, and the cancellation (or interrupt) goes on.
        """
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closing = True
        self._wake_receivers()
        self._send_lot.unpark_all()
        if linger is None:
            linger = self._options["linger"]
        interrupted: BaseException | None = None
        if linger != 0:
            # Not shielded: a cancelled or interrupted close must still return
            # promptly (trio's rule for aclose), so only this wait can be cut short.
            try:
                with trio.move_on_after(math.inf if linger < 0 else linger / 1000):
                    await self._wait_flushed()
            except BaseException as exc:  # Cancelled, KeyboardInterrupt
                interrupted = exc
        # What is left is dropped; everything from here on completes without waiting
        # on a peer, so it is shielded and the socket is always left closed.
        with trio.CancelScope(shield=True):
            self._closed = True
            dropped = self._drop_queued()
            if dropped and interrupted is not None:
                # Cancelled here also when it was a Ctrl-C: trio raises the
                # KeyboardInterrupt in its main task, which cancels the others.
                log.warning("%s: close cancelled, dropped %s", self, dropped)
            elif dropped:
                log.info("%s: linger of %d ms expired: dropped %s", self, linger, dropped)
            await self._endpoints.close_all()
            for peer in list(self._peers):
                self.remove_peer(peer)
            self.on_event(EventType.CLOSED, "")
            for mon in list(self._monitors):
                mon.close()
            self._host.forget(self)
        if interrupted is not None:
            raise interrupted

    def _drop_queued(self) -> str:
        """Empty the outbound queues; say what was dropped, per endpoint ("" if none)."""
        counts: dict[str, int] = {}
        for peer in self._peers:
            if peer.link is not None:
                continue  # inproc: already in the other socket's queue, so delivered
            n = len(peer.out.queue)
            if n:
                counts[peer.endpoint] = counts.get(peer.endpoint, 0) + n
            peer.out.clear()
        return ", ".join(f"{n} message{'s' if n != 1 else ''} for {ep}" for ep, n in counts.items())

    def _flushed(self) -> bool:
        for peer in self._peers:
            if peer.link is not None:
                continue  # inproc: already in the other socket's queue
            if peer.out.queue:
                return False
            eng = peer.engine
            if eng is not None and eng.has_unsent():
                return False
        return True

    async def _wait_flushed(self) -> None:
        while not self._flushed():
            await self._drain_lot.park()
        # Then until the kernel has handed our bytes to each peer.  Closing while a
        # peer has some still unread loses them with libzmq: over ipc our close is a
        # hang-up, and a libzmq engine paused at its HWM that sees a hang-up drops
        # whatever the kernel still holds for it (stream_engine_base's _io_error).
        # Nothing signals when the peer reads, so poll; linger bounds the wait.
        while any(p.engine.kernel_unsent() for p in self._peers if p.engine is not None):
            await trio.sleep(0.005)

    # ------------------------------------------------------------------ monitor

    def monitor(self, maxlen: int = 1000) -> Monitor:
        """Observe connection events (an async iterator of :class:`SocketEvent`).

        Args:
            maxlen: events buffered before the oldest are dropped (never blocks).
        """
        if maxlen < 1:
            raise ValueError("maxlen must be >= 1")
        mon = Monitor(self._monitors.discard, maxlen)
        self._monitors.add(mon)
        return mon

    # ------------------------------------------------------------------ peers

    def _new_peer(self, endpoint: str, *, persistent: bool = False) -> Peer:
        out = Pipe(self._options["sndhwm"], None, self)
        inp = Pipe(self._options["rcvhwm"], self, None)
        return Peer(self, out, inp, endpoint, persistent=persistent)

    @property
    def peers(self) -> list[Peer]:
        """The current peers (for introspection and tests)."""
        return list(self._peers)

    async def wait_for_peers(self, count: int = 1) -> None:
        """Wait until at least ``count`` peers have completed their handshake."""
        while sum(1 for p in self._peers if p.connected) < count:
            self._check_open()
            await self._send_lot.park()

    # ------------------------------------------------------------------ type hooks

    def _accept_peer(self, peer: Peer) -> bool:
        """Decide whether a newly handshaken peer joins (PAIR and ROUTER may refuse).

        ``peer.identity`` and ``peer.socket_type`` are set; not yet attached.
        """
        return True

    def _attach(self, peer: Peer) -> None:
        """A peer joined (at connect() for queued peers, else at handshake)."""

    def _detach(self, peer: Peer) -> None:
        """A peer left for good."""

    def _connected(self, peer: Peer) -> None:
        """A peer's connection completed its handshake (also after each reconnect)."""

    def _disconnected(self, peer: Peer) -> None:
        """A persistent peer's connection dropped; it will reconnect."""

    def _peer_messages(self, peer: Peer, messages: list[Message]) -> None:
        """Messages arrived from a peer."""
        peer.inp.put_many(messages)

    def _take_direct(self, peer: Peer, msg: Message) -> Message | None:
        """A receive takes ``msg`` from ``peer`` straight from the connection (only for
        types whose ``_direct`` is set): what one receive returns for it, as if it had
        been queued and taken through the fair queue (None: it is dropped, as that
        receive would drop it; receive again)."""
        self._fq.last = peer
        return msg

    def _peer_subscribe(self, peer: Peer, topic: bytes) -> None:
        """A SUBSCRIBE command arrived (only publishers care)."""

    def _peer_cancel(self, peer: Peer, topic: bytes) -> None:
        """A CANCEL command arrived (only publishers care)."""

    def _try_send(self, msg: Message) -> bool:
        raise NotSupportedError(f"{self.socket_type.name} sockets cannot send")

    def _try_recv(self) -> Message | None:
        raise NotSupportedError(f"{self.socket_type.name} sockets cannot receive")

    def _try_send_many(self, batch: list[Message], start: int) -> int:
        """Queue messages from ``batch[start:]`` without waiting; return how many.

        Types with a bulk strategy override this; the default sends one at a time.
        """
        try_send = self._try_send
        n = 0
        for i in range(start, len(batch)):
            try:
                if not try_send(batch[i]):
                    break
            except (InvalidStateError, UnroutableError):
                # REQ/REP: after one message it is the other direction's turn; ROUTER
                # with router_mandatory: no such peer.  The check comes before anything
                # is queued, so what went is counted and returned, and the next call
                # raises at the message that cannot go.
                if n:
                    break
                raise
            n += 1
        return n

    def _try_recv_many(self, max_messages: int) -> list[Message]:
        """Take up to ``max_messages`` without waiting (possibly none).

        Types with a bulk strategy override this; the default takes one at a time.
        """
        out: list[Message] = []
        try_recv = self._try_recv
        while len(out) < max_messages:
            try:
                msg = try_recv()
            except InvalidStateError:
                # REQ/REP: after one message it is the other direction's turn.  The
                # check comes before anything is taken, so nothing is lost.
                if out:
                    break
                raise
            if msg is None:
                break
            out.append(msg)
        return out

    # ------------------------------------------------------------------ waiting

    def _wake_receivers(self) -> None:
        """Wake every task blocked in a receive, to look at the socket again."""
        if self._recv_lot:
            self._recv_lot.unpark_all()
        if self._lender is not None:
            self._lender.interrupt()

    async def _park_recv(self) -> Message | None:
        """Wait for input; first put any just-queued output on the wire (eager flush).

        Returns a message taken for the caller straight from the connection (through
        :meth:`_take_direct`), or None: look at the queues again.
        """
        dirty = self._dirty
        if dirty:
            self._dirty = {}  # a fresh one: nothing can change this one as we go
            for engine in dirty:
                engine.flush_now()
        peers = self._peers
        if len(peers) == 1 and self._lender is None:
            # One connection: wait on its input in this task (Engine.lend), which
            # saves waking the engine's reader first and this task second.
            peer = next(iter(peers))
            only = peer.engine
            if only is not None and only.can_lend():
                self._lender = only
                try:
                    messages = await only.lend()
                finally:
                    self._lender = None
                if messages is None:
                    return None
                if (
                    len(messages) == 1
                    and self._direct
                    and not self._fq.active
                    and not peer.inp.queue
                    and peer.inp.reader is not None
                    and not self._closing
                ):
                    # One message, and nothing queued that should come first: the
                    # caller takes it without the pipe and the fair queue.
                    return self._take_direct(peer, messages[0])
                self._peer_messages(peer, messages)
                return None
        await self._recv_lot.park()
        return None

    def _wait_writable(self) -> None:
        """Mark every outbound pipe so that any drain wakes a blocked sender."""
        for peer in self._peers:
            peer.out.writer_waiting = True

    # ================================================================ contracts
    # The socket's side of its contracts with engines, endpoints and inproc links.
    # These are called by the socket layer itself, not by applications.

    # Pipes (PipeReader / PipeWriter) ---------------------------------------------

    def pipe_readable(self, pipe: Pipe) -> None:
        """An inbound pipe went from empty to non-empty."""
        peer = pipe.peer
        assert isinstance(peer, Peer)  # inbound pipes belong to our peer records
        self._fq.activate(peer)
        self._wake_receivers()

    def pipe_writable(self, pipe: Pipe) -> None:
        """An outbound pipe drained below its low-water mark."""
        if self._send_lot:
            self._send_lot.unpark_all()

    # Peers (EndpointOwner / InprocEnd / PeerOwner) --------------------------------

    def accept_peer(self, peer: Peer) -> bool:
        """May ``peer`` join (see ``_accept_peer``)."""
        return self._accept_peer(peer)

    def add_peer(self, peer: Peer) -> None:
        self._peers[peer] = None
        self._attach(peer)
        if self._send_lot:
            self._send_lot.unpark_all()

    def open_peer(self, endpoint: str) -> Peer | None:
        if not self._queue_before_connect or self._options["immediate"]:
            return None
        peer = self._new_peer(endpoint, persistent=True)
        self.add_peer(peer)
        return peer

    def remove_peer(self, peer: Peer) -> None:
        if peer not in self._peers:
            return
        del self._peers[peer]
        self._detach(peer)
        if peer.link is None:
            # Over inproc, ``out`` is the other socket's inbound queue: what is there
            # was sent, and stays readable (libzmq terminates inproc pipes with a delay
            # unless linger is 0; aclose(linger=0) clears it first).
            peer.out.clear()
        peer.out.closed = True
        if peer.link is not None:
            other = peer.link
            peer.link = None
            other.link = None
            other.owner.on_peer_gone(other)
        # A close lingering on this peer's queue is done with it: let it look again.
        if self._drain_lot:
            self._drain_lot.unpark_all()

    def on_peer_gone(self, peer: Peer) -> None:
        """The other end of an inproc link went away."""
        self.remove_peer(peer)

    def peer_ready(self, peer: Peer) -> None:
        """A peer's connection is up: run the type's hook and wake waiters."""
        self._connected(peer)
        # A connect()ed peer was added (and waiters woken) long before its connection
        # completed; wait_for_peers() counts connected peers, so wake it now.
        if self._send_lot:
            self._send_lot.unpark_all()

    async def run_engine(
        self, stream: trio.abc.Stream, state: EndpointState, address: str, peer: Peer | None
    ) -> tuple[ProtocolError | None, bool]:
        """Run one connection over ``stream`` for ``state``'s endpoint."""
        opts = self._options
        limit, limit_note = frame_limit(opts["maxmsgsize"])
        config = EngineConfig(
            self.socket_type,
            mechanism=self.security().build,
            routing_id=opts["routing_id"],
            metadata=opts["metadata"],
            maxmsgsize=limit,
            maxmsgsize_note=limit_note,
            handshake_ivl=opts["handshake_ivl"],
            heartbeat_ivl=opts["heartbeat_ivl"],
            heartbeat_timeout=opts["heartbeat_timeout"],
            heartbeat_ttl=opts["heartbeat_ttl"],
            eager_send=self._eager_send,
            on_large_body=self._host.on_large_body,
            body_allocator=self._host.body_allocator,
            part_allocator=self._host.part_allocator,
            shared_encoding=self._shared_encoding(),
        )
        engine = Engine(self, config, stream, state.endpoint, address, peer=peer, origin=state)
        error = await engine.run()
        return error, engine.handshake is not None

    def _shared_encoding(self) -> SharedEncoding | None:
        """What this socket's connections share of their encoding (see
        :class:`~zmtp.protocol.framing.SharedEncoding`): publishers send the same
        messages to every peer; other types send each message to one peer, so None."""
        return None

    def security(self) -> Security:
        """The security mechanism this socket's tcp and ipc connections run.

        Raises:
            ValueError: the security options are incomplete (a CURVE socket without
                ``curve_secretkey``...): ``bind`` and ``connect`` check it first.
        """
        # One per socket, not per connection: its factory is shared by every engine.
        security = self._security
        if security is None:
            security = self._security = security_for(self._options)
        return security

    # Engines (EngineOwner) ---------------------------------------------------------

    async def authenticate(
        self, engine: Engine, request: AuthenticationRequested
    ) -> ZapReply | None:
        """Ask the context's ZAP handler about a peer, as libzmq does: the request
        carries our ``zap_domain``, the peer's address, *our own* routing id (libzmq's
        deviation, specs/libzmq-behaviour.md §4.3) and the credentials; its request id
        is always ``1``.  None if no handler is bound."""
        zap = ZapRequest(
            domain=self._options["zap_domain"],
            address=engine.zap_address.encode("utf-8", "surrogateescape"),
            identity=self._options["routing_id"],
            mechanism=request.mechanism,
            credentials=request.credentials,
        )
        return await self._host.zap_request(zap)

    def on_handshake(self, engine: Engine, handshake: HandshakeComplete) -> Peer | None:
        """A connection completed its handshake; return the peer it serves."""
        state = engine.origin
        assert isinstance(state, EndpointState)
        peer = engine.peer
        if not isinstance(peer, Peer):
            peer = self._new_peer(state.endpoint)
            peer.identity = handshake.identity
            peer.socket_type = handshake.socket_type
            if not self._accept_peer(peer):
                return None
            state.peers.add(peer)
            self.add_peer(peer)
        else:
            peer.identity = handshake.identity
            peer.socket_type = handshake.socket_type
        properties = handshake.metadata
        if handshake.zap_metadata:
            properties = Metadata([*properties.items(), *handshake.zap_metadata.items()])
        peer.info = PeerInfo(
            mechanism=handshake.mechanism.decode("ascii", "replace"),
            user_id=handshake.user_id,
            address=engine.zap_address,
            endpoint=engine.endpoint,
            socket_type=handshake.socket_type,
            identity=handshake.identity,
            properties=properties,
        )
        peer.engine = engine
        peer.connected = True
        peer.out.reader = engine
        peer.inp.writer = engine
        self.peer_ready(peer)
        return peer

    def on_closed(self, engine: Engine) -> None:
        self._dirty.pop(engine, None)  # a dead engine has nothing left to flush
        peer = engine.peer
        if not isinstance(peer, Peer) or peer.engine is not engine:
            return
        peer.engine = None
        peer.connected = False
        peer.out.reader = None
        peer.inp.writer = None
        peer.inp.writer_waiting = False
        if peer.persistent:
            self._disconnected(peer)
            if self._drain_lot:
                self._drain_lot.unpark_all()  # its engine's bytes no longer count
        else:
            state = engine.origin
            assert isinstance(state, EndpointState)
            state.peers.discard(peer)
            self.remove_peer(peer)

    def on_messages(self, peer: Peer, messages: list[Message]) -> None:
        self._peer_messages(peer, messages)

    def on_subscribe(self, peer: Peer, topic: bytes) -> None:
        self._peer_subscribe(peer, topic)

    def on_cancel(self, peer: Peer, topic: bytes) -> None:
        self._peer_cancel(peer, topic)

    def on_event(
        self, kind: EventType, endpoint: str, peer: str = "", reason: str = "", **detail: Any
    ) -> None:
        if self._monitors:
            event = SocketEvent(kind, endpoint, peer, reason, detail)
            for mon in list(self._monitors):
                mon.push(event)

    def on_output(self, engine: Engine) -> bool:
        holding = self._holding
        if holding is not None:
            holding.append(engine)  # flushed by _flush_held when the batch is queued
            return True
        self._dirty[engine] = None
        return False

    def _flush_held(self, engines: list[Engine]) -> None:
        """Hand what a batch queued to the kernel now, from the calling task, instead
        of waking each engine's writer task to do it a scheduling round later; a
        writer is woken only for what the kernel did not take (or cannot be written
        from here: a connection ending, a sealed remainder)."""
        for engine in engines:
            if not engine.flush_now():
                engine.wake_writer()

    def on_writer_idle(self) -> None:
        if self._drain_lot:
            self._drain_lot.unpark_all()

    def on_lent_input(self) -> None:
        self._lender = None
